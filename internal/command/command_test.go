package command

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
)

func TestWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
		ok   bool
	}{
		{"true", []string{"true"}, true},
		{"echo a  'b c' 'it'\\''s'", nil, false},
		{"echo a 'b c'", []string{"echo", "a", "b c"}, true},
		{"echo 'a''b' x=y", []string{"echo", "ab", "x=y"}, true},
		{"x=1 echo", nil, false},
		{"echo $HOME", nil, false},
		{"echo a; rm b", nil, false},
		{"echo a | wc", nil, false},
		{"echo ~", nil, false},
		{"echo *", nil, false},
		{"echo 'unterminated", nil, false},
		{"if true", nil, false},
		{"echo a # comment", nil, false},
		{"echo \"q\"", nil, false},
		{"", nil, true},
	} {
		got, ok := Words(tc.line)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("Words(%q) = %q, %v; want %q, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestExitAndOutput(t *testing.T) {
	for _, tc := range []struct {
		line   string
		out    string
		exit   int
		signal int
	}{
		{"echo 'a b'", "a b\n", 0, 0},
		{"echo x; exit 3", "x\n", 3, 0},
		{"false", "", 1, 0},
		{"kill -9 $$", "", -1, 9},
		{"no-such-command-herd", "", 127, 0},
		{"printf %s \"$PARALLEL_SEQ\"", "42", 0, 0},
	} {
		var out strings.Builder
		res := Run(t.Context(), Job{Line: tc.line, Stdout: &out, Env: append(os.Environ(), "PARALLEL_SEQ=42")})
		if out.String() != tc.out || res.Exit != tc.exit || res.Signal != tc.signal || res.Err != nil {
			t.Errorf("Run(%q) = %q, %+v; want %q, exit %d, signal %d", tc.line, out.String(), res, tc.out, tc.exit, tc.signal)
		}
	}
}

// alive reports whether the process with the pid written in file still runs
// a second after the job ended: signals take a moment to be delivered.
func alive(t *testing.T, file string) (int, bool) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("reading pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid %q: %v", b, err)
	}
	// Dead soon, but on a busy machine maybe not within a second: only the
	// backstop says it lives on.
	for deadline := time.Now().Add(testutil.Backstop); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		// A zombie is dead for our purposes; kill(pid, 0) still finds
		// it, so look at its state.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return pid, false
		}
		if fields := strings.Fields(string(stat)); len(fields) > 2 && fields[2] == "Z" {
			return pid, false
		}
	}
	return pid, true
}

func TestCancelKillsTheWholeGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild")
	ctx, cancel := context.WithCancel(t.Context())
	started := time.Now()
	go func() {
		for {
			if _, err := os.Stat(pidFile); err == nil {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// The grandchild ignores SIGTERM: only the SIGKILL at the end of the
	// termination sequence ends it.
	line := fmt.Sprintf(`sh -c 'trap "" TERM; echo $$ > %s.tmp; mv %s.tmp %s; sleep 100' & sleep 100`, pidFile, pidFile, pidFile)
	res := Run(ctx, Job{Line: line, TermSeq: []Term{{syscall.SIGTERM, 100 * time.Millisecond}}})
	if res.Signal == 0 {
		t.Errorf("Run = %+v, want the job killed by a signal", res)
	}
	// Not a measure of speed: proof that Run did not wait for the sleeps'
	// 100 seconds, with room for a busy machine.
	if d := time.Since(started); d > 60*time.Second {
		t.Errorf("cancelled job took %v to stop: Run waited for its processes to end by themselves", d)
	}
	if pid, ok := alive(t, pidFile); ok {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("grandchild %d survived the job's cancellation", pid)
	}
}

func TestLeftoversKilledWhenJobExits(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "bg")
	line := fmt.Sprintf(`sleep 100 & echo $! > %s; echo done`, pidFile)
	var out strings.Builder
	res := Run(t.Context(), Job{Line: line, Stdout: &out})
	if res.Failed() || out.String() != "done\n" {
		t.Errorf("Run = %q, %+v", out.String(), res)
	}
	if pid, ok := alive(t, pidFile); ok {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("background process %d outlived its job", pid)
	}
}

// A job's termination sends its signals in order, each with its wait,
// and ends there if the job does.
func TestTermSeq(t *testing.T) {
	got := filepath.Join(t.TempDir(), "got")
	ready := got + ".ready"
	line := fmt.Sprintf(`trap 'echo usr1 >> %s' USR1; trap 'echo term >> %s; exit 3' TERM; touch %s; while :; do sleep 0.01; done`, got, got, ready)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(ready); err == nil {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	res := Run(ctx, Job{Line: line, TermSeq: []Term{{syscall.SIGUSR1, 300 * time.Millisecond}, {syscall.SIGTERM, 5 * time.Second}}})
	b, _ := os.ReadFile(got)
	if string(b) != "usr1\nterm\n" || res.Exit != 3 || !res.Killed {
		t.Errorf("the job got %q and ended %+v; want usr1 then term, exit 3, killed", b, res)
	}
}

// A command named like an exported bash function runs the function, in
// the shell, though a program of that name is on PATH.
func TestExportedFunction(t *testing.T) {
	var out bytes.Buffer
	env := append(os.Environ(), "BASH_FUNC_true%%=() {  echo function\n}")
	res := Run(t.Context(), Job{Line: "true", Shell: "/bin/bash", Env: env, Stdout: &out})
	if res.Failed() || out.String() != "function\n" {
		t.Errorf("true with an exported function true: %+v, output %q; want the function's", res, out.String())
	}
}

func TestTooLong(t *testing.T) {
	long := strings.Repeat("x", MaxArg+1)
	for line, want := range map[string]bool{
		"echo " + long:                      true,  // a word over the limit
		"echo " + long[1:] + " " + long[1:]: false, // words under it, the line over: fine without a shell
		"echo " + long[1:] + "; true":       true,  // the shell's line over it
		"echo short":                        false,
	} {
		if _, got := TooLong(line); got != want {
			t.Errorf("TooLong(%.20q... of %d bytes) = %v, want %v", line, len(line), got, want)
		}
	}
}

// slowWriter is a job's output whose reader is slow: its first write takes
// a while, as a busy machine's can.
type slowWriter struct {
	buf  bytes.Buffer
	once bool
}

func (w *slowWriter) Write(p []byte) (int, error) {
	if !w.once {
		w.once = true
		time.Sleep(500 * time.Millisecond)
	}
	return w.buf.Write(p)
}

// All of a job's output is kept, however slowly it is read: what is still
// in the pipe when the job exits is read to its end. (It was dropped 100ms
// after the job exited: under load, a job's output came back empty.)
func TestSlowOutputKept(t *testing.T) {
	var out slowWriter
	res := Run(t.Context(), Job{Line: "echo first; sleep 0.05; echo second", Stdout: &out})
	if res.Failed() || out.buf.String() != "first\nsecond\n" {
		t.Errorf("result %+v, output %q; want all of it", res, out.buf.String())
	}
}

// A job whose background process left its process group (setsid) and holds
// its output does not hold herd for ever: its output is taken as it is
// once the job's group is gone and a while has passed.
func TestOutputHeldOutsideTheGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "bg")
	var out bytes.Buffer
	line := fmt.Sprintf(`echo hi; setsid sh -c 'echo $$ > %s; exec sleep 60' & sleep 0.3`, pidFile)
	res := Run(t.Context(), Job{Line: line, Stdout: &out})
	b, _ := os.ReadFile(pidFile)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || syscall.Kill(pid, 0) != nil {
		t.Errorf("the process outside the group (%q) was not running when the job ended: the test proves nothing", b)
	} else {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if res.Failed() || out.String() != "hi\n" {
		t.Errorf("result %+v, output %q", res, out.String())
	}
}
