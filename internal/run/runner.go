package run

import (
	"context"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/goherd/herd/internal/command"
	"github.com/goherd/herd/internal/replace"
)

// Exit statuses of herd run, as GNU parallel's: 0 when every job
// succeeded, 1 to 100 the number of jobs that failed, 101 more than 100,
// and 255 for any other error, such as a bad option. A run stopped by a
// signal exits 128 plus the signal's number ([SignalStatus]), as a shell
// reports it.
const (
	StatusManyFailed = 101
	StatusError      = 255
)

// SignalStatus is the exit status of a herd command stopped by sig, as a
// shell reports it: 128 plus the signal's number.
func SignalStatus(sig os.Signal) int {
	n, _ := sig.(syscall.Signal)
	return 128 + int(n)
}

// An Executor runs a run's jobs: here (Local), or elsewhere.
//
// Execute takes jobs from jobs until they end or the run stops starting
// jobs (Runner.Stopping), and calls r.Done with the outcome of each job
// that ran; a job taken and never reported counts as not started. It
// kills the running jobs when r.JobContext is done. It returns once every
// outcome is reported, or with an error if the run could not start.
type Executor interface {
	Execute(ctx context.Context, r *Runner, jobs iter.Seq[Job]) error
}

// A Detacher is an executor whose jobs run on without herd run: SIGHUP, or
// a third signal, calls Detach, and Execute then returns at once.
type Detacher interface {
	Detach(sig os.Signal)
}

// A Runner is one herd run: it reads the jobs, hands them to an executor,
// and keeps the run's books as their outcomes come back: the job log, the
// output (grouped, tagged, in order with -k), the counts and --halt,
// progress, signals, and the exit status.
type Runner struct {
	cfg            *Config
	stdin          io.Reader
	stdout, stderr io.Writer
	outMu          sync.Mutex // one job's output, or one message, at a time

	log     *joblog
	results *resultWriter
	bar     *progress

	jobCtx   context.Context // cancelled to kill every running job
	kill     context.CancelFunc
	stopping atomic.Bool   // start no more jobs
	stopped  chan struct{} // closed when stopping starts
	stopOnce sync.Once
	stopSig  atomic.Int32

	mu         sync.Mutex
	done       int
	failed     int
	haltStatus int // set when --halt stopped the run
	halted     bool
	err        error // why the run ended early, if it did

	prints chan printItem // to the printer
	order  reorder
	kept   keptLines // -k with --line-buffer
}

// New returns a Runner of a run set up by cfg.
func New(cfg *Config, stdin io.Reader, stdout, stderr io.Writer) *Runner {
	return &Runner{cfg: cfg, stdin: stdin, stdout: stdout, stderr: stderr, stopped: make(chan struct{})}
}

// Config is the run's configuration.
func (r *Runner) Config() *Config { return r.cfg }

// Log is where messages go, printed as herd run's own: above a progress
// display, between the jobs' output.
func (r *Runner) Log() io.Writer {
	return r.locked(func() io.Writer { return r.stderr })
}

// Warn prints a message.
func (r *Runner) Warn(format string, args ...any) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprintf(r.stderr, "herd run: "+format+"\n", args...)
}

// Stopping reports whether the run starts no more jobs.
func (r *Runner) Stopping() bool { return r.stopping.Load() }

// Stopped is closed when the run starts no more jobs.
func (r *Runner) Stopped() <-chan struct{} { return r.stopped }

// JobContext is the context of the running jobs: done when they are to be
// killed.
func (r *Runner) JobContext() context.Context { return r.jobCtx }

// Fail ends the run with err, starting no more jobs: herd run prints it
// and exits 255. The first error wins.
func (r *Runner) Fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	r.stop()
}

// SetTotal sets the number of jobs shown by a progress display.
func (r *Runner) SetTotal(n int) { r.bar.setTotal(n) }

func (r *Runner) stop() {
	r.stopping.Store(true)
	r.stopOnce.Do(func() { close(r.stopped) })
}

// Run runs the jobs on exec and returns herd run's exit status, or, with
// [StatusError], why the run could not start or was failed by something
// other than its jobs ([Runner.Fail]): the caller says it.
func (r *Runner) Run(ctx context.Context, exec Executor, sigs <-chan os.Signal) (int, error) {
	fail := func(err error) (int, error) {
		return StatusError, err
	}
	cfg := r.cfg
	if cfg.Template != nil && !cfg.RetryFailed {
		// A command the shell cannot parse would fail in every job.
		sample := cfg.Template.Expand([]string{"x"}, 1, 1, false)
		if err := command.Check(cfg.Shell, sample); err != nil {
			hint := ""
			if !cfg.Template.HasReplacement() {
				hint = " (it has no replacement string such as {}, so each input is appended to it)"
			}
			return fail(fmt.Errorf("the command is not valid shell%s: %v", hint, err))
		}
	}
	// --bar and --eta need the number of jobs: read them all first.
	count := (cfg.Bar || cfg.ETA) && IsTerminal(r.stderr)
	jobs, total, cleanup, err := Jobs(cfg, r.stdin, count)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			r.Warn("%v", err)
		}
	}()
	if cfg.DryRun || cfg.ShellQuote {
		for j, err := range jobs {
			if err != nil {
				return fail(err)
			}
			if cfg.ShellQuote {
				fmt.Fprintln(r.stdout, replace.Quote(strings.Join(j.Args, " ")))
			} else {
				fmt.Fprintln(r.stdout, Shown(j.Line, 1))
			}
		}
		return 0, nil
	}

	if cfg.Joblog != "" {
		keep := cfg.AppendLog || cfg.Resume || cfg.ResumeFailed || cfg.RetryFailed
		if r.log, err = openJoblog(cfg.Joblog, keep); err != nil {
			return fail(err)
		}
		defer r.log.Close()
	}
	if cfg.Results != nil {
		if r.results, err = newResultWriter(cfg.Results, cfg.Input); err != nil {
			return fail(err)
		}
		defer r.results.close()
	}
	r.jobCtx, r.kill = context.WithCancel(ctx)
	defer r.kill()
	if cfg.Bar || cfg.ETA || cfg.Progress {
		if r.bar = newProgress(r.stderr, cfg); r.bar != nil {
			// Messages and the jobs' output go above the display.
			r.outMu.Lock()
			r.stderr = r.bar
			if IsTerminal(r.stdout) {
				r.stdout = r.bar
			}
			r.outMu.Unlock()
			defer r.bar.finish()
		}
	}

	var wg sync.WaitGroup
	finished := make(chan struct{})
	wg.Go(func() { r.watchSignals(sigs, finished, exec) })
	r.prints = make(chan printItem, 64)
	wg.Go(r.printAll)
	err = exec.Execute(ctx, r, r.feed(jobs, total))
	close(finished)
	close(r.prints)
	wg.Wait()
	if err != nil {
		return fail(err)
	}
	return r.status()
}

// status is herd run's exit status, once the run is over.
func (r *Runner) status() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.err != nil:
		return StatusError, r.err
	case r.halted:
		return r.haltStatus, nil
	case r.stopSig.Load() != 0:
		return SignalStatus(syscall.Signal(r.stopSig.Load())), nil
	case r.failed > 100:
		return StatusManyFailed, nil
	}
	return r.failed, nil
}

// feed passes on jobs until the input ends or the run stops starting
// jobs, noting their order for -k.
func (r *Runner) feed(jobs iter.Seq2[Job, error], total int) iter.Seq[Job] {
	if total >= 0 {
		r.bar.setTotal(total)
	}
	return func(yield func(Job) bool) {
		n := 0
		warnedNUL := false
		for j, err := range jobs {
			if err != nil {
				r.Fail(err)
				return
			}
			if r.Stopping() {
				return
			}
			if strings.IndexByte(j.Line, 0) >= 0 {
				// No argument can hold a NUL: pass it on as GNU parallel
				// does, written \0, and say so once.
				if !warnedNUL {
					r.Warn("warning: a NUL character in the input was replaced with \\0: no command line can hold one (did you mean -0 or --null?)")
					warnedNUL = true
				}
				j.Line = strings.ReplaceAll(j.Line, "\x00", `\0`)
				for i, a := range j.Args {
					j.Args[i] = strings.ReplaceAll(a, "\x00", `\0`)
				}
			}
			if n, long := command.TooLong(j.Line); long {
				// As GNU parallel does: no job of such a run could start.
				r.Fail(fmt.Errorf("command line too long (%d >= %d) at input %d, which starts %.50q", n, command.MaxArg+1, j.Seq-1, strings.Join(j.Args, " ")))
				return
			}
			r.order.fed(j.Seq)
			if r.cfg.KeepOrder && r.cfg.LineBuffer {
				r.kept.fed(j.Seq)
			}
			if !yield(j) {
				return
			}
			n++
			if total < 0 {
				r.bar.read()
			}
		}
		r.bar.setTotal(n)
	}
}

// Starting says that a job starts: with -t, its command line goes to
// standard error, after the output of the jobs that finished before (and
// with -v to standard output, if its output is written as it comes). An
// executor that hears of its jobs only once they ended calls it just
// before Done.
func (r *Runner) Starting(o *Outcome) {
	if r.echoAtStart() {
		// Now, not through printAll: the job's output, written as it
		// comes, must not overtake it.
		r.outMu.Lock()
		writeTagged(r.stdout, []byte(o.Line+"\n"), r.tag(o))
		r.outMu.Unlock()
	}
	if r.cfg.Verbose {
		r.prints <- printItem{o, true}
	}
}

// echoAtStart reports whether -v prints a job's command as it starts: when
// the job's output is written as it comes, not whole once it ends.
func (r *Runner) echoAtStart() bool { return r.cfg.Echo && (r.cfg.Ungroup || r.cfg.LineBuffer) }

// A printItem is a job's outcome to print, or with started its command
// line as it starts.
type printItem struct {
	o       *Outcome
	started bool
}

// Done takes the outcome of a job: its job log row, the counts and
// --halt, then its output. It may be called from any goroutine.
func (r *Runner) Done(o *Outcome) {
	if !o.Skipped {
		r.finish(o)
	}
	r.prints <- printItem{o, false}
}

// finish records a finished job: its job log row, the counts, and --halt.
func (r *Runner) finish(o *Outcome) {
	if r.log != nil {
		if err := r.log.write(o.Job.Seq, o.Host, o.Result, int64(len(o.Job.Stdin)), o.Received, o.Line); err != nil {
			r.Warn("writing the job log: %v", err)
		}
	}
	if o.Result.Err != nil { // a job that could not start, or was lost: say why
		r.Warn("job %d: %v", o.Job.Seq, o.Result.Err)
	}
	failed := o.Result.Failed()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
	if failed {
		r.failed++
	}
	h := r.cfg.Halt
	if h.On == "" || r.halted {
		return
	}
	n := r.done
	switch h.On {
	case "fail":
		n = r.failed
		if !failed {
			return
		}
	case "success":
		n = r.done - r.failed
		if failed {
			return
		}
	}
	if (h.Count > 0 && n >= h.Count) || (h.Percent > 0 && float64(n)*100 >= h.Percent*float64(r.done)) {
		r.halted = true
		r.haltStatus = o.Result.Exit
		if o.Result.Signal != 0 {
			r.haltStatus = SignalStatus(syscall.Signal(o.Result.Signal))
		}
		r.stop()
		how := "waiting for the running jobs to finish"
		if h.Now {
			how = "killing the running jobs"
			r.kill()
		}
		r.Warn("halting after job %d (--halt %s): %s", o.Job.Seq, h.Text, how)
	}
}

// printAll prints the outcomes handed to Done, in the order the jobs were
// fed with -k, until Run closes r.prints.
func (r *Runner) printAll() {
	keep := r.cfg.KeepOrder && !r.cfg.LineBuffer && !r.cfg.Ungroup
	var held []*Outcome // of jobs fed elsewhere: printed in job order at the end
	for item := range r.prints {
		o := item.o
		switch {
		case item.started:
			r.outMu.Lock()
			fmt.Fprintln(r.stderr, o.Line)
			r.outMu.Unlock()
		case !keep:
			r.print(o)
		case r.cfg.Template == nil:
			held = append(held, o)
		default:
			for _, o := range r.order.ready(o) {
				r.print(o)
			}
		}
	}
	for _, o := range r.order.rest() {
		r.print(o)
	}
	slices.SortFunc(held, func(a, b *Outcome) int { return a.Job.Seq - b.Job.Seq })
	for _, o := range held {
		r.print(o)
	}
}

// reorder holds the outcomes of jobs that finished before a job fed
// earlier, for -k.
type reorder struct {
	mu      sync.Mutex
	seqs    []int // the jobs fed and not printed yet, in order
	pending map[int]*Outcome
}

// fed notes that the job with number seq was fed.
func (q *reorder) fed(seq int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seqs = append(q.seqs, seq)
}

// ready takes an outcome, and returns those that can be printed now.
func (q *reorder) ready(o *Outcome) []*Outcome {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending == nil {
		q.pending = map[int]*Outcome{}
	}
	q.pending[o.Job.Seq] = o
	var out []*Outcome
	for len(q.seqs) > 0 && q.pending[q.seqs[0]] != nil {
		out = append(out, q.pending[q.seqs[0]])
		delete(q.pending, q.seqs[0])
		q.seqs = q.seqs[1:]
	}
	return out
}

// rest returns the outcomes held, in order, once no more come: those
// after a job that was never reported.
func (q *reorder) rest() []*Outcome {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*Outcome
	for _, seq := range q.seqs {
		if o := q.pending[seq]; o != nil {
			out = append(out, o)
		}
	}
	q.seqs, q.pending = nil, nil
	return out
}

// print writes a job's grouped output, whole.
func (r *Runner) print(o *Outcome) {
	if o.Skipped {
		return
	}
	if r.cfg.Ungroup || r.cfg.LineBuffer {
		r.bar.add(o.Result.Failed())
		return
	}
	if r.results != nil {
		if err := r.results.write(o, r); err != nil {
			r.Warn("job %d: --results: %v", o.Job.Seq, err)
		}
		o.Stdout.close()
		o.Stderr.close()
		r.bar.add(o.Result.Failed())
		return
	}
	tag := r.tag(o)
	r.outMu.Lock()
	defer r.outMu.Unlock()
	if r.cfg.Echo {
		writeTagged(r.stdout, []byte(o.Line+"\n"), tag)
	}
	if err := o.Stdout.writeTo(r.stdout, tag); err != nil {
		fmt.Fprintf(r.stderr, "herd run: job %d: output: %v\n", o.Job.Seq, err)
	}
	if err := o.Stderr.writeTo(r.stderr, tag); err != nil {
		fmt.Fprintf(r.stderr, "herd run: job %d: error output: %v\n", o.Job.Seq, err)
	}
	o.Stdout.close()
	o.Stderr.close()
	r.bar.add(o.Result.Failed())
}

// tag is the prefix of each of a job's output lines, if any.
func (r *Runner) tag(o *Outcome) string {
	switch {
	case r.cfg.TagTmpl != nil && !r.cfg.TagTmpl.HasReplacement():
		return r.cfg.TagString + "\t" // unlike a command, a tag is not followed by the inputs
	case r.cfg.TagTmpl != nil:
		return r.cfg.TagTmpl.Expand(o.Job.Args, o.Job.Seq, o.Slot, true) + "\t"
	case r.cfg.Tag:
		return strings.Join(o.Job.Args, " ") + "\t" // GNU parallel's: the inputs, a space between
	}
	return ""
}

// watchSignals stops the run on signals, as GNU parallel does: SIGINT or
// SIGTERM kills the running jobs (Config.TermSeq) and starts no more;
// SIGHUP starts no more and lets the running ones finish. With an executor
// whose jobs run on without herd run (a Detacher), SIGHUP, or a second
// SIGINT or SIGTERM, leaves the jobs to it. The exit status is 128 plus
// the first signal's number.
func (r *Runner) watchSignals(sigs <-chan os.Signal, finished <-chan struct{}, exec Executor) {
	detacher, _ := exec.(Detacher)
	killing := false
	Signals(sigs, finished, func(_ int, s os.Signal) {
		sig, _ := s.(syscall.Signal)
		r.stopSig.CompareAndSwap(0, int32(sig))
		switch {
		case detacher != nil && (sig == syscall.SIGHUP || killing):
			detacher.Detach(s)
		case sig == syscall.SIGHUP:
			if !r.Stopping() {
				r.Warn("got %v: starting no more jobs, waiting for the running ones (SIGINT or SIGTERM to kill them)", s)
			}
			r.stop()
		case killing:
		default:
			killing = true
			r.stop()
			r.kill()
			if detacher != nil {
				r.Warn("got %v: killing the running jobs (signal again to leave them to the workers)", s)
			} else {
				r.Warn("got %v: killing the running jobs", s)
			}
		}
	})
}

// Signals calls on with each signal that comes on sigs, and the number of
// signals so far, until done is closed.
func Signals(sigs <-chan os.Signal, done <-chan struct{}, on func(n int, sig os.Signal)) {
	for n := 1; ; n++ {
		select {
		case <-done:
			return
		case s := <-sigs:
			on(n, s)
		}
	}
}
