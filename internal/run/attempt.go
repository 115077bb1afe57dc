package run

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/goherd/herd/internal/command"
)

// An Attempts runs a job's command line, again while it fails, as herd run
// and herd work both run their jobs: in a shell, in a process group of its
// own, with PARALLEL_SEQ and PARALLEL_JOBSLOT in its environment, each
// attempt with its own time limit.
type Attempts struct {
	Line     string // with its slot
	Shell    string
	Seq      int
	Slot     int
	Env      []string // the environment, less PARALLEL_SEQ and PARALLEL_JOBSLOT
	Stdin    []byte   // --pipe's block; nil means DevNull
	DevNull  *os.File
	Attempts int            // in all, 1 or more
	TermSeq  []command.Term // how an attempt is killed; nil means the default
	Nice     int            // the jobs' niceness, if not 0

	// Timeout returns the time limit of an attempt starting now; nil or 0
	// means none.
	Timeout func() time.Duration
	// Output returns where an attempt writes, and what to call when it
	// ends: called before each attempt, so that it can drop what the one
	// before wrote.
	Output func() (stdout, stderr io.Writer, done func())
	// Again, if set, reports whether a failed attempt may be followed by
	// another (false once the run is stopping).
	Again func() bool
	// LookPath, if set, finds programs run without a shell.
	LookPath func(string) (string, error)
}

// Run runs the attempts until one succeeds, the last one ends, or ctx is
// done, and returns the last one's result.
func (a *Attempts) Run(ctx context.Context) command.Result {
	env := append(a.Env[:len(a.Env):len(a.Env)], "PARALLEL_SEQ="+strconv.Itoa(a.Seq), "PARALLEL_JOBSLOT="+strconv.Itoa(a.Slot))
	for attempt := 1; ; attempt++ {
		res := a.once(ctx, env)
		if !res.Failed() || attempt >= a.Attempts || ctx.Err() != nil || (a.Again != nil && !a.Again()) {
			return res
		}
	}
}

func (a *Attempts) once(ctx context.Context, env []string) command.Result {
	if a.Timeout != nil {
		if d := a.Timeout(); d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
	}
	j := command.Job{Line: a.Line, Shell: a.Shell, Env: env, Stdin: a.DevNull, LookPath: a.LookPath, TermSeq: a.TermSeq, Nice: a.Nice}
	if a.Stdin != nil {
		j.Stdin = bytes.NewReader(a.Stdin)
	}
	var done func()
	j.Stdout, j.Stderr, done = a.Output()
	defer done()
	return command.Run(ctx, j)
}
