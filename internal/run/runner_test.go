package run

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/command"
	"github.com/goherd/herd/internal/input"
	"github.com/goherd/herd/internal/replace"
)

// fake is an executor that runs nothing: it takes every job, then reports
// them in reverse order, each exiting with exit(seq) and writing its line.
type fake struct {
	exit  func(seq int) int
	taken []Job
}

func (f *fake) Execute(_ context.Context, r *Runner, jobs iter.Seq[Job]) error {
	for j := range jobs {
		f.taken = append(f.taken, j)
	}
	for i := len(f.taken) - 1; i >= 0; i-- {
		f.report(r, f.taken[i])
	}
	return nil
}

func (f *fake) report(r *Runner, j Job) {
	o := &Outcome{Job: j, Line: j.Line, Host: "box", Result: commandResult(f.exit(j.Seq))}
	fmt.Fprintf(&o.Stdout, "out %d\n", j.Seq)
	r.Done(o)
}

func commandResult(exit int) command.Result {
	return command.Result{Start: time.Unix(1e9, 0), Duration: time.Second, Exit: exit}
}

// testConfig is a run of echo over the inputs.
func testConfig(inputs ...string) *Config {
	return &Config{
		Template: replace.Parse("echo", replace.Options{}),
		Shell:    "/bin/sh",
		Input:    input.Config{Sources: []input.Source{{Args: inputs}}},
		Jobs:     2,
		Attempts: 1,
	}
}

func runFake(t *testing.T, cfg *Config, exec Executor, sigs <-chan os.Signal) (status int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	status, err := New(cfg, strings.NewReader(""), &out, &errOut).Run(t.Context(), exec, sigs)
	if err != nil {
		fmt.Fprintf(&errOut, "herd run: %v\n", err) // as cmd/herd says it
	}
	return status, out.String(), errOut.String()
}

// With -k, the output comes in input order however the outcomes come;
// without it, as they come. The exit status counts the failed jobs.
func TestKeepOrder(t *testing.T) {
	for _, keep := range []bool{true, false} {
		cfg := testConfig("1", "2", "3", "4")
		cfg.KeepOrder = keep
		status, out, _ := runFake(t, cfg, &fake{exit: func(seq int) int { return seq % 2 }}, nil)
		want := "out 1\nout 2\nout 3\nout 4\n"
		if !keep {
			want = "out 4\nout 3\nout 2\nout 1\n"
		}
		if status != 2 || out != want {
			t.Errorf("-k %v: status %d, output %q; want 2 and %q", keep, status, out, want)
		}
	}
}

// Every outcome has its row in the job log, with the host it ran on.
func TestJoblogRows(t *testing.T) {
	cfg := testConfig("a", "b", "c")
	cfg.Joblog = filepath.Join(t.TempDir(), "log.tsv")
	if status, _, _ := runFake(t, cfg, &fake{exit: func(seq int) int { return seq - 1 }}, nil); status != 2 {
		t.Errorf("status %d, want 2", status)
	}
	rows, order, err := ReadJoblog(cfg.Joblog)
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 3 || order[0] != 3 {
		t.Errorf("rows in the order %v, want the order the jobs finished in: 3 2 1", order)
	}
	for seq, arg := range map[int]string{1: "a", 2: "b", 3: "c"} {
		if r := rows[seq]; r.Exit != seq-1 || r.Command != "echo "+arg {
			t.Errorf("row of job %d: %+v", seq, r)
		}
	}
	b, _ := os.ReadFile(cfg.Joblog)
	if !strings.Contains(string(b), "\tbox\t") {
		t.Errorf("the job log does not name the host the jobs ran on:\n%s", b)
	}
}

// one reports each job as soon as it takes it.
type one struct{ fake }

func (f *one) Execute(_ context.Context, r *Runner, jobs iter.Seq[Job]) error {
	for j := range jobs {
		f.taken = append(f.taken, j)
		f.report(r, j)
	}
	return nil
}

// --halt soon,fail=1 stops the feed after the first failure, and the run
// exits with that job's status.
func TestHaltStopsFeed(t *testing.T) {
	cfg := testConfig("1", "2", "3", "4", "5")
	cfg.Halt = Halt{On: "fail", Count: 1, Text: "soon,fail=1"}
	f := &one{fake{exit: func(seq int) int {
		if seq == 2 {
			return 7
		}
		return 0
	}}}
	status, _, errOut := runFake(t, cfg, f, nil)
	if status != 7 || len(f.taken) != 2 || !strings.Contains(errOut, "halting after job 2 (--halt soon,fail=1)") {
		t.Errorf("status %d, %d jobs taken, messages %q; want 7, 2 and the halt", status, len(f.taken), errOut)
	}
}

// waiter takes the jobs, then waits until the run detaches, or stops
// starting jobs and then for a moment to see whether it kills the running
// ones.
type waiter struct {
	detached chan os.Signal
	killed   bool
}

func (w *waiter) Execute(_ context.Context, r *Runner, jobs iter.Seq[Job]) error {
	for range jobs {
	}
	select {
	case <-r.Stopped():
	case sig := <-w.detached:
		w.detached <- sig // for the test to see
		return nil
	}
	select {
	case <-r.JobContext().Done():
		w.killed = true
	case <-w.detached:
	case <-time.After(200 * time.Millisecond):
	}
	return nil
}

type detacher struct{ waiter }

func (d *detacher) Detach(sig os.Signal) { d.detached <- sig }

// As in GNU parallel, SIGINT or SIGTERM kills the running jobs and SIGHUP
// lets them finish; an executor that can detach is left to on SIGHUP. The
// exit status says which signal stopped the run.
func TestSignals(t *testing.T) {
	for _, tc := range []struct {
		sig          syscall.Signal
		canDetach    bool
		killed, gone bool
	}{
		{syscall.SIGINT, false, true, false},
		{syscall.SIGTERM, true, true, false},
		{syscall.SIGHUP, false, false, false},
		{syscall.SIGHUP, true, false, true},
	} {
		sigs := make(chan os.Signal, 1)
		sigs <- tc.sig
		w := &waiter{detached: make(chan os.Signal, 1)}
		var exec Executor = w
		if tc.canDetach {
			exec = &detacher{*w}
		}
		status, _, _ := runFake(t, testConfig("1"), exec, sigs)
		killed, gone := w.killed, len(w.detached) > 0
		if d, ok := exec.(*detacher); ok {
			killed, gone = d.killed, len(d.detached) > 0
		}
		if status != 128+int(tc.sig) || killed != tc.killed || gone != tc.gone {
			t.Errorf("%v (detachable %v): status %d, killed %v, detached %v; want %d, %v, %v",
				tc.sig, tc.canDetach, status, killed, gone, 128+int(tc.sig), tc.killed, tc.gone)
		}
	}
}
