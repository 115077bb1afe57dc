package run

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	Stream   *os.File // or --round-robin's pipe: then one attempt only
	DevNull  *os.File
	Attempts int            // in all, 1 or more
	TermSeq  []command.Term // how an attempt is killed; nil means the default
	Nice     int            // the jobs' niceness, if not 0
	Dir      string         // where the job runs (--workdir); empty means herd's folder
	// Pass, with Stdin, gives the job its block in a file instead of on
	// its standard input: "cat", a temporary file (--cat); "fifo", a named
	// pipe that herd writes it to (--fifo). PathText in Line stands for
	// the file's name.
	Pass string

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
		if !res.Failed() || attempt >= a.Attempts || a.Stream != nil || ctx.Err() != nil || (a.Again != nil && !a.Again()) {
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
	j := command.Job{Line: a.Line, Shell: a.Shell, Env: env, Stdin: a.DevNull, LookPath: a.LookPath, TermSeq: a.TermSeq, Nice: a.Nice, Dir: a.Dir}
	switch {
	case a.Stdin != nil && a.Pass != "":
		path, cleanup, err := passBlock(a.Pass, a.Stdin)
		if err != nil {
			return command.Result{Start: time.Now(), Exit: -1, Err: fmt.Errorf("--%s: %w", a.Pass, err)}
		}
		defer cleanup()
		j.Line = strings.ReplaceAll(j.Line, PathText, path)
	case a.Stdin != nil:
		j.Stdin = bytes.NewReader(a.Stdin)
	case a.Stream != nil:
		j.Stdin, j.OwnStdin = a.Stream, true
	}
	var done func()
	j.Stdout, j.Stderr, done = a.Output()
	defer done()
	return command.Run(ctx, j)
}

// passBlock puts a --pipe block where a job reads it by name: in a
// temporary file ("cat"), or through a named pipe ("fifo") that a
// goroutine writes it to once the job opens it. cleanup, called once the
// job has ended, removes the file, and lets the writer go if the job never
// read it all.
func passBlock(how string, block []byte) (path string, cleanup func(), err error) {
	if how == "cat" {
		f, err := os.CreateTemp("", "herd-cat-*")
		if err != nil {
			return "", nil, err
		}
		_, err = f.Write(block)
		if err := cmp.Or(err, f.Close()); err != nil {
			os.Remove(f.Name())
			return "", nil, err
		}
		return f.Name(), func() { os.Remove(f.Name()) }, nil
	}
	dir, err := os.MkdirTemp("", "herd-fifo-*")
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		f, err := os.OpenFile(path, os.O_WRONLY, 0) // once the job opens it
		if err != nil {
			return
		}
		f.Write(block) // fails once the job closed it: it read what it wanted
		f.Close()
	}()
	return path, func() {
		// A job that never opened the pipe leaves the writer waiting for
		// a reader: be that reader, for a moment.
		if r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			r.Close()
		}
		<-written
		os.RemoveAll(dir)
	}, nil
}
