package run

import (
	"context"
	"io"
	"iter"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/goherd/herd"
	"github.com/goherd/herd/internal/command"
)

// Local runs the jobs on this machine, Config.Jobs at a time, on herd's
// pool.
type Local struct{}

// local is a Local executor at work.
type local struct {
	r       *Runner
	cfg     *Config
	env     []string
	devNull *os.File // every job's standard input, unless --pipe gives one; the terminal with --tty
	paths   sync.Map // program name → its path on PATH, or the error finding it
	slots   chan int

	mu        sync.Mutex
	runtimes  medianTracker // of the jobs that succeeded, for --timeout N%
	nextStart time.Time     // for --delay
}

// Execute runs the jobs.
func (Local) Execute(_ context.Context, r *Runner, jobs iter.Seq[Job]) error {
	// As in GNU parallel, a job run here has ":" for its login and host.
	env := append(os.Environ(), r.cfg.Env...)
	env = append(env, "PARALLEL_SSHLOGIN=:", "PARALLEL_SSHHOST=:")
	l := &local{r: r, cfg: r.cfg, env: env, slots: make(chan int, r.cfg.Jobs)}
	if r.cfg.TTY {
		// As GNU parallel does, a run with no terminal gives its jobs
		// /dev/null instead.
		l.devNull, _ = os.Open("/dev/tty")
	}
	if l.devNull == nil {
		var err error
		if l.devNull, err = os.Open(os.DevNull); err != nil {
			return err
		}
	}
	defer l.devNull.Close()
	for i := range r.cfg.Jobs {
		l.slots <- i + 1
	}
	// The pool's own context is never cancelled: killed jobs still report,
	// so that each gets its job log row and its output is printed.
	for range herd.MapUnordered(context.Background(), r.cfg.Jobs, jobs, l.run) {
	}
	return nil
}

// run runs one job, with its retries, on a worker of herd's pool.
func (l *local) run(_ context.Context, j Job) (struct{}, error) {
	r := l.r
	if l.cfg.KeepOrder && l.cfg.LineBuffer {
		defer r.kept.finish(j.Seq)
	}
	if r.Stopping() {
		return struct{}{}, nil
	}
	o := &Outcome{Job: j, Slot: <-l.slots}
	defer func() { l.slots <- o.Slot }()
	if !l.waitTurn() {
		return struct{}{}, nil
	}
	o.Line = Shown(j.Line, o.Slot)
	dir, leave, err := EnterWorkdir(l.cfg.Workdir.Name(j, false), j.Seq, l.cfg.Cleanup)
	if err != nil {
		r.Starting(o)
		o.Result = command.Result{Start: time.Now(), Exit: -1, Err: err}
		r.Done(o)
		return struct{}{}, nil
	}
	defer leave()
	var received *counter
	a := &Attempts{
		Line: WithSlot(j.Line, o.Slot), Shell: l.cfg.Shell, Seq: j.Seq, Slot: o.Slot, Env: l.env, Stdin: j.Stdin, Stream: j.Stream, DevNull: l.devNull,
		Attempts: l.cfg.Attempts, TermSeq: l.cfg.TermSeq, Nice: l.cfg.Nice, Pass: l.cfg.Pass, Timeout: l.timeout, LookPath: l.lookPath,
		Dir: dir, Again: func() bool { return !r.Stopping() },
		Output: func() (io.Writer, io.Writer, func()) {
			received = &counter{}
			return l.output(o, received)
		},
	}
	r.Starting(o)
	o.Result = a.Run(r.JobContext())
	o.Received = received.n
	if !o.Result.Failed() {
		l.mu.Lock()
		l.runtimes.add(o.Result.Duration)
		l.mu.Unlock()
	}
	r.Done(o)
	return struct{}{}, nil
}

// output returns where an attempt of the job writes, and what to call
// when it ends.
func (l *local) output(o *Outcome, received *counter) (stdout, stderr io.Writer, done func()) {
	r := l.r
	switch {
	case l.cfg.Ungroup:
		stdout = io.MultiWriter(r.locked(func() io.Writer { return r.stdout }), received)
		stderr = r.locked(func() io.Writer { return r.stderr })
		if f, ok := r.stdout.(*os.File); ok {
			stdout = f // the job writes to herd's output itself, uncounted
		}
		if f, ok := r.stderr.(*os.File); ok {
			stderr = f
		}
		return stdout, stderr, func() {}
	case l.cfg.LineBuffer:
		tag := r.tag(o)
		out := &lineWriter{r: r, w: r.stdout, tag: tag}
		errw := &lineWriter{r: r, w: r.stderr, tag: tag}
		if l.cfg.KeepOrder { // flushed by r.kept.finish
			stdout, stderr := r.kept.writers(o.Job.Seq, out, errw)
			return io.MultiWriter(stdout, received), stderr, func() {}
		}
		return io.MultiWriter(out, received), errw, func() { out.flush(); errw.flush() }
	}
	o.Stdout.reset()
	o.Stderr.reset()
	return io.MultiWriter(&o.Stdout, received), &o.Stderr, func() {}
}

// waitTurn waits out --delay since the last start. It reports false if the
// run started stopping meanwhile.
func (l *local) waitTurn() bool {
	if l.cfg.Delay == 0 {
		return true
	}
	l.mu.Lock()
	at := l.nextStart
	if now := time.Now(); at.Before(now) {
		at = now
	}
	l.nextStart = at.Add(l.cfg.Delay)
	l.mu.Unlock()
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
		return !l.r.Stopping()
	case <-l.r.JobContext().Done():
		return false
	}
}

// timeout is the time limit of an attempt starting now.
func (l *local) timeout() time.Duration {
	if l.cfg.TimeoutPercent == 0 {
		return l.cfg.Timeout
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runtimes.len() < 3 {
		return 0 // too few jobs to know what is normal
	}
	return time.Duration(float64(l.runtimes.median()) * l.cfg.TimeoutPercent / 100)
}

// lookPath is exec.LookPath, remembered for the run: the same few programs
// are looked up for thousands of jobs.
func (l *local) lookPath(name string) (string, error) {
	type found struct {
		path string
		err  error
	}
	if f, ok := l.paths.Load(name); ok {
		return f.(found).path, f.(found).err
	}
	path, err := exec.LookPath(name)
	l.paths.Store(name, found{path, err})
	return path, err
}
