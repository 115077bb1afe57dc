package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/internal/testutil"
)

// The helpers of herd's end-to-end tests, in one place: herd processes and
// queue servers started for a test, and waits for what they print.

// proc is a herd process under test.
type proc struct {
	cmd         *exec.Cmd
	out, errOut *testutil.Pipe
	exited      chan struct{} // the process has exited and its output has ended
	left        []string      // what the process left running, holding its output
}

// startProc starts herd with args in dir; the test kills it at the end if
// it is still running.
func startProc(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	return startProcIn(t, dir, env, nil, args...)
}

// orphanWait is how long a process's output may stay open after it exited:
// the jobs of a herd killed outright (SIGKILL) may run on for a while.
const orphanWait = 30 * time.Second

// startProcIn is startProc with stdin as the process's standard input.
func startProcIn(t *testing.T, dir string, env []string, stdin io.Reader, args ...string) *proc {
	t.Helper()
	p := &proc{exited: make(chan struct{})}
	var err error
	if p.out, err = testutil.NewPipe(); err != nil {
		t.Fatal(err)
	}
	if p.errOut, err = testutil.NewPipe(); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(herdBinary(t), args...)
	p.cmd.SysProcAttr = dieWithTests()
	p.cmd.Dir = dir
	p.cmd.Stdin = stdin
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p.out.File()
	p.cmd.Stderr = p.errOut.File()
	err = p.cmd.Start()
	p.out.Started()
	p.errOut.Started()
	if err != nil {
		p.out.End(0)
		p.errOut.End(0)
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		p.left = append(p.out.End(orphanWait), p.errOut.End(orphanWait)...)
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		p.checkLeft(t)
	})
	return p
}

// checkLeft fails the test if the process, once it exited, left processes
// running that held its output. A herd killed outright cannot stop its
// jobs' children; that is only logged.
func (p *proc) checkLeft(t *testing.T) {
	t.Helper()
	if len(p.left) == 0 {
		return
	}
	report := t.Errorf
	if st, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && st.Signaled() && st.Signal() == syscall.SIGKILL {
		report = t.Logf
	}
	report("herd %v exited, and %v later these processes it left still held its output (now killed):\n%s",
		p.cmd.Args[1:], orphanWait, strings.Join(p.left, "\n"))
	p.left = nil
}

// status waits for the process to exit and returns its exit status.
func (p *proc) status(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(testutil.Backstop):
		t.Fatalf("herd %v did not exit within %v; its error output:\n%s", p.cmd.Args[1:], testutil.Backstop, p.errOut.String())
	}
	p.checkLeft(t)
	return p.cmd.ProcessState.ExitCode()
}

// waitOutput waits until the process's error output matches re, and
// returns the match's first group.
func (p *proc) waitOutput(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	testutil.Eventually(t, fmt.Sprintf("herd %v to write %q", p.cmd.Args[1:], re), func() bool {
		m = rx.FindStringSubmatch(p.errOut.String())
		return m != nil
	})
	return m[len(m)-1]
}

// serveQueue runs herd queue serve on a free loopback port and returns
// its URL.
func serveQueue(t *testing.T, args ...string) string {
	t.Helper()
	p := startProc(t, t.TempDir(), nil, append([]string{"queue", "serve", "--listen", "127.0.0.1:0", "--dir", t.TempDir()}, args...)...)
	rx := regexp.MustCompile(`serving (\S+)`)
	var m []string
	testutil.Eventually(t, "herd queue serve to start", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("herd queue serve exited with status %d; its error output:\n%s", p.cmd.ProcessState.ExitCode(), p.errOut.String())
		default:
		}
		m = rx.FindStringSubmatch(p.out.String())
		return m != nil
	})
	return m[1]
}

// fixedServer is a herd queue serve that a test can kill and start again
// at the same address and data folder.
type fixedServer struct {
	listen, url, data string
	*proc
}

// serveFixed starts herd queue serve on a free loopback port.
func serveFixed(t *testing.T) *fixedServer {
	t.Helper()
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePorts(t, 1)[0])
	s := &fixedServer{listen: listen, url: "nats://" + listen, data: t.TempDir()}
	s.start(t)
	return s
}

// start starts the server, and waits until it serves.
func (s *fixedServer) start(t *testing.T) {
	t.Helper()
	s.proc = startProc(t, t.TempDir(), nil, "queue", "serve", "--listen", s.listen, "--dir", s.data)
	testutil.Eventually(t, "herd queue serve to start", func() bool { return strings.Contains(s.out.String(), "serving") })
}

// kill kills the server outright, and waits until it is gone.
func (s *fixedServer) kill(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.status(t)
}

// startWorkers starts n herd work processes on the queue at url.
func startWorkers(t *testing.T, url string, n int, args ...string) []*proc {
	t.Helper()
	var ws []*proc
	for range n {
		w := startProc(t, t.TempDir(), nil, append([]string{"work", "--queue", url, "--lease", "2s"}, args...)...)
		w.waitOutput(t, "running jobs of")
		ws = append(ws, w)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, w := range ws {
				t.Logf("worker %d said:\n%s", i, w.errOut.String())
			}
		}
	})
	return ws
}

// jobRows are a job log's rows without their times and hosts: what must be
// the same wherever the jobs ran.
func jobRows(t *testing.T, path string) []string {
	t.Helper()
	rows := logRows(t, path)
	var out []string
	for seq, r := range rows {
		out = append(out, fmt.Sprintf("%d\t%d\t%d\t%s", seq, r.Exit, r.Signal, r.Command))
	}
	slices.Sort(out)
	return out
}

func inputs(n int) []string {
	var in []string
	for i := 1; i <= n; i++ {
		in = append(in, strconv.Itoa(i))
	}
	return in
}

// queueCLI returns a function that runs a herd queue command on the queue
// at url, in dir, and returns its output and exit status. The --queue
// option goes right after the command's name, before its arguments, which
// may end with a command of their own (cron add).
func queueCLI(t *testing.T, dir, url string) func(args ...string) (string, int) {
	return func(args ...string) (string, int) {
		t.Helper()
		n := min(2, len(args)) // queue SUBCOMMAND
		if n == 2 && args[1] == "cron" {
			n = min(3, len(args)) // queue cron add|ls|rm
		}
		full := append(append(append([]string{}, args[:n]...), "--queue", url), args[n:]...)
		p := startProc(t, dir, nil, full...)
		st := p.status(t)
		return p.out.String() + p.errOut.String(), st
	}
}

// waitFiles waits until every file exists in dir.
func waitFiles(t *testing.T, dir string, files ...string) {
	t.Helper()
	for _, f := range files {
		testutil.EventuallyNil(t, f+" to appear", func() error {
			_, err := os.Stat(filepath.Join(dir, f))
			return err
		})
	}
}

// assertEachOnce checks that output has "done N" once for each job, and
// reports whether it has.
func assertEachOnce(t *testing.T, output string, n int) bool {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(output), "\n")
	slices.Sort(lines)
	var want []string
	for _, in := range inputs(n) {
		want = append(want, "done "+in)
	}
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Errorf("output has %d lines, want each of %d jobs once:\n%s", len(lines), n, output)
		return false
	}
	return true
}

// waitStdout waits until the process's standard output matches re.
func waitStdout(t *testing.T, p *proc, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m string
	testutil.Eventually(t, fmt.Sprintf("herd %v to print %q", p.cmd.Args[1:], re), func() bool {
		m = rx.FindString(p.out.String())
		return m != ""
	})
	return m
}

// statusError is herd's exit status for an error that is not a job's.
const statusError = run.StatusError

// dieWithTests makes a process the tests start get SIGKILL when the test
// binary dies: a test that times out panics without running its cleanups,
// and would leave its servers and workers running.
func dieWithTests() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// timesRun reads a file to which each job appended its input, and says how
// many times each input's job ran.
func timesRun(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{}
	for job := range strings.FieldsSeq(string(b)) {
		runs[job]++
	}
	return runs
}
