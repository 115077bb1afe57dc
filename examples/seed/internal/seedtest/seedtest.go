// Package seedtest holds the helpers that the tour's tests share: a writer
// that records when each line was printed, and a way to run a step's main
// function as a real process.
package seedtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Line is one line of output and the time since the [Recorder] was made at
// which it was written.
type Line struct {
	At   time.Duration
	Text string
}

// Recorder is an io.Writer, safe for concurrent use, that remembers every
// line written to it and when. Inside a testing/synctest bubble the times are
// the bubble's fake clock, so they are exact.
type Recorder struct {
	mu    sync.Mutex
	start time.Time
	buf   []byte
	lines []Line
}

// NewRecorder returns a Recorder whose clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Write records each complete line in p.
func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			break
		}
		r.lines = append(r.lines, Line{At: time.Since(r.start), Text: string(r.buf[:i])})
		r.buf = r.buf[i+1:]
	}
	return len(p), nil
}

// Lines returns a copy of the lines recorded so far.
func (r *Recorder) Lines() []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Line(nil), r.lines...)
}

// Texts returns the text of the lines recorded so far.
func (r *Recorder) Texts() []string {
	var out []string
	for _, l := range r.Lines() {
		out = append(out, l.Text)
	}
	return out
}

const childEnv = "HERD_SEED_RUN_MAIN"

// MaybeRunMain runs main and exits when the test binary was started by
// [RunProcess]. Call it first thing in TestMain.
func MaybeRunMain(main func()) {
	if os.Getenv(childEnv) == "1" {
		main()
		os.Exit(0)
	}
}

// Result is what a step printed as a real process, and how long it ran.
type Result struct {
	Stdout   string
	Elapsed  time.Duration
	TimedOut bool // the process was still running after the timeout and was killed
}

// RunProcess runs the step's main function in a child copy of the test
// binary, killing it after timeout. Extra environment variables may be given
// as "KEY=value".
func RunProcess(t *testing.T, timeout time.Duration, env ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"=1"), env...)
	var out strings.Builder
	cmd.Stdout = &out
	start := time.Now()
	err := cmd.Run()
	res := Result{Stdout: out.String(), Elapsed: time.Since(start), TimedOut: ctx.Err() != nil}
	if err != nil && !res.TimedOut {
		t.Fatalf("step process: %v", err)
	}
	return res
}
