package main

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"io"
	"iter"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goherd/herd"
	"github.com/goherd/herd/internal/command"
	"github.com/goherd/herd/internal/input"
	"github.com/goherd/herd/queue"
)

// slotMarker stands for the job slot in a command line expanded before
// the job has a slot: the slot is put in when the job starts, and a job log
// row may have been written with any slot. slotText is how it reads.
const slotMarker = math.MinInt

var slotText = strconv.Itoa(slotMarker)

// job is one command to run.
type job struct {
	seq   int
	args  []string
	line  string // expanded with slotMarker for {%}
	stdin []byte // --pipe: the block for its standard input
}

// outcome is what became of a job.
type outcome struct {
	job      job
	skipped  bool // never started: herd was stopping
	line     string
	res      command.Result
	slot     int
	host     string // where it ran, if not here
	stdout   spool  // grouped output
	stderr   spool
	received int64
}

// runner is one herd run in progress.
type runner struct {
	p              *plan
	stdout, stderr io.Writer
	outMu          sync.Mutex // one job's output at a time
	env            []string

	devNull *os.File // every job's standard input, unless --pipe gives one
	paths   sync.Map // program name → its path on PATH, or the error finding it

	slots    chan int
	kill     context.Context // cancelled to kill every running job
	killAll  context.CancelFunc
	stopping atomic.Bool // start no more jobs
	stopSig  atomic.Int32
	log      *joblog
	bar      *progress

	mu         sync.Mutex
	done       int
	failed     int
	haltStatus int // set when --halt stopped the run
	halted     bool
	runtimes   medianTracker
	nextStart  time.Time
	inputErr   error
}

func (p *plan) run(ctx context.Context, sigs <-chan os.Signal, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "herd run: %v\n", err)
		return exitError
	}
	if !p.o.retryFailed && p.o.attach == "" {
		// A command the shell cannot parse would fail in every job.
		sample := p.template.Expand([]string{"x"}, 1, 1, false)
		if err := command.Check(p.o.shell, sample); err != nil {
			hint := ""
			if !p.template.HasReplacement() {
				hint = " (it has no replacement string such as {}, so each input is appended to it)"
			}
			return fail(fmt.Errorf("the command is not valid shell%s: %v", hint, err))
		}
	}
	jobs, total, cleanup, err := p.jobSource(stdin, stderr)
	if err != nil {
		return fail(err)
	}
	defer cleanup()

	if p.o.dryRun {
		for j, err := range jobs {
			if err != nil {
				return fail(err)
			}
			fmt.Fprintln(stdout, strings.ReplaceAll(j.line, slotText, "1"))
		}
		return 0
	}

	r := &runner{p: p, stdout: stdout, stderr: stderr, env: os.Environ()}
	var c *queue.Client
	if p.remote {
		// The queue's warnings are printed as herd's own, above a --bar.
		logTo := writerFunc(func(b []byte) (int, error) {
			r.outMu.Lock()
			defer r.outMu.Unlock()
			return r.stderr.Write(b)
		})
		if c, err = p.o.conn.open(ctx, logTo); err != nil {
			return fail(err)
		}
		defer c.Close()
	}
	if p.joblog != "" {
		keep := p.appendLog || p.o.resume || p.o.resumeFailed || p.o.retryFailed
		if r.log, err = openJoblog(p.joblog, keep); err != nil {
			return fail(err)
		}
		defer r.log.Close()
	}
	if r.devNull, err = os.Open(os.DevNull); err != nil {
		return fail(err)
	}
	defer r.devNull.Close()
	r.slots = make(chan int, p.jobs)
	for i := range p.jobs {
		r.slots <- i + 1
	}
	var cancel context.CancelFunc
	r.kill, cancel = context.WithCancel(ctx)
	r.killAll = cancel
	defer cancel()
	if p.o.bar || p.o.eta || p.o.progress {
		if r.bar = newProgress(stderr, p.o); r.bar != nil {
			// Messages and the jobs' output go above the display.
			r.outMu.Lock()
			r.stderr = r.bar
			if isTerminal(stdout) {
				r.stdout = r.bar
			}
			r.outMu.Unlock()
			defer r.bar.finish()
		}
	}

	if p.remote {
		if err := r.remoteRun(ctx, c, jobs, total, sigs); err != nil {
			return fail(err)
		}
		return r.status()
	}

	var wg sync.WaitGroup
	finished := make(chan struct{})
	wg.Go(func() { r.watchSignals(sigs, finished) })
	defer wg.Wait()
	defer close(finished)

	started := r.feed(jobs, total)
	mapFn := herd.MapUnordered[job, *outcome]
	if p.o.keepOrder && !p.o.lineBuffer && !p.o.ungroup {
		mapFn = herd.Map[job, *outcome]
	}
	// Map's own context is never cancelled: killed jobs still report, so
	// that each gets its job log row and its output is printed.
	for o := range mapFn(context.Background(), p.jobs, started, r.runJob) {
		if o.skipped {
			continue
		}
		r.print(o)
	}
	return r.status()
}

// status is herd run's exit status, once the run is over.
func (r *runner) status() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.inputErr != nil:
		fmt.Fprintf(r.stderr, "herd run: %v\n", r.inputErr)
		return exitError
	case r.halted:
		return r.haltStatus
	case r.stopSig.Load() != 0:
		return 128 + int(r.stopSig.Load())
	case r.failed > 100:
		return exitManyFailed
	}
	return r.failed
}

// jobSource returns the jobs to run, in order, and their number if known
// up front (-1 if not).
func (p *plan) jobSource(stdin io.Reader, stderr io.Writer) (jobs iter.Seq2[job, error], total int, cleanup func(), err error) {
	cleanup = func() {}
	if p.o.attach != "" {
		return sliceJobs(nil), 0, cleanup, nil // the jobs are those of the run
	}
	if p.o.retryFailed {
		rows, order, err := readJoblog(p.joblog)
		if err != nil {
			return nil, 0, cleanup, err
		}
		var list []job
		for _, seq := range order {
			if r := rows[seq]; r.failed() {
				list = append(list, job{seq: seq, line: r.command})
			}
		}
		return sliceJobs(list), len(list), cleanup, nil
	}

	if p.o.pipe {
		jobs = p.pipeJobs(stdin)
	} else {
		cfg := p.input
		cfg.Stdin = stdin
		rd, err := input.Open(cfg)
		if err != nil {
			return nil, 0, cleanup, err
		}
		cleanup = func() { rd.Close() }
		jobs = func(yield func(job, error) bool) {
			seq := 0
			for args, err := range rd.Jobs() {
				if err != nil {
					yield(job{}, err)
					return
				}
				seq++
				if !yield(job{seq: seq, args: args, line: p.template.Expand(args, seq, slotMarker, p.o.raw)}, nil) {
					return
				}
			}
		}
	}
	total = -1

	if p.o.resume || p.o.resumeFailed {
		rows, _, err := readJoblog(p.joblog)
		if err != nil {
			return nil, 0, cleanup, err
		}
		if jobs, err = p.skipLogged(jobs, rows); err != nil {
			return nil, 0, cleanup, err
		}
	}
	if p.o.shuf || ((p.o.bar || p.o.eta) && isTerminal(stderr)) {
		// --bar and --eta need the number of jobs: read them all first.
		var list []job
		for j, err := range jobs {
			if err != nil {
				return nil, 0, cleanup, err
			}
			list = append(list, j)
		}
		if p.o.shuf {
			rand.Shuffle(len(list), func(a, b int) { list[a], list[b] = list[b], list[a] })
		}
		return sliceJobs(list), len(list), cleanup, nil
	}
	return jobs, total, cleanup, nil
}

func sliceJobs(list []job) iter.Seq2[job, error] {
	return func(yield func(job, error) bool) {
		for _, j := range list {
			if !yield(j, nil) {
				return
			}
		}
	}
}

// skipLogged drops the jobs that the job log says are done (with
// --resume-failed, done and succeeded). Before anything runs, it reads the
// input as far as the job log goes and checks that every logged job had the
// command line that the same job number has now: if the input or command
// changed, skipping by number would skip the wrong jobs.
func (p *plan) skipLogged(jobs iter.Seq2[job, error], rows map[int]logRow) (iter.Seq2[job, error], error) {
	maxSeq := 0
	for seq := range rows {
		maxSeq = max(maxSeq, seq)
	}
	next, stop := iter.Pull2(jobs)
	var prefix []job
	for len(prefix) < maxSeq {
		j, err, ok := next()
		if err != nil {
			stop()
			return nil, err
		}
		if !ok {
			break
		}
		prefix = append(prefix, j)
	}
	for _, j := range prefix {
		if r, ok := rows[j.seq]; ok && !matches(r.command, j.line, slotText) {
			stop()
			return nil, fmt.Errorf("--joblog %s does not match this run: job %d ran\n\t%s\nbut the same job is now\n\t%s\nherd will not guess which jobs are done: give a new job log, or delete this one to start over",
				p.joblog, j.seq, r.command, strings.ReplaceAll(j.line, slotText, "{%}"))
		}
	}
	for seq := range rows {
		if seq > len(prefix) {
			stop()
			return nil, fmt.Errorf("--joblog %s has job %d, but the input now makes only %d jobs: give a new job log, or delete this one to start over", p.joblog, seq, len(prefix))
		}
	}
	done := func(seq int) bool {
		r, ok := rows[seq]
		return ok && (p.o.resume || !r.failed())
	}
	return func(yield func(job, error) bool) {
		defer stop()
		for _, j := range prefix {
			if !done(j.seq) && !yield(j, nil) {
				return
			}
		}
		for {
			j, err, ok := next()
			if !ok || !yield(j, err) || err != nil {
				return
			}
		}
	}, nil
}

// feed passes on jobs until the input ends or herd stops starting jobs.
func (r *runner) feed(jobs iter.Seq2[job, error], total int) iter.Seq[job] {
	if total >= 0 {
		r.bar.setTotal(total)
	}
	return func(yield func(job) bool) {
		n := 0
		for j, err := range jobs {
			if err != nil {
				r.mu.Lock()
				r.inputErr = err
				r.mu.Unlock()
				r.stopping.Store(true)
				return
			}
			if r.stopping.Load() || !yield(j) {
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

// runJob runs one job, with its retries, on a worker of herd's pool.
func (r *runner) runJob(_ context.Context, j job) (*outcome, error) {
	o := &outcome{job: j}
	if r.stopping.Load() {
		o.skipped = true
		return o, nil
	}
	o.slot = <-r.slots
	defer func() { r.slots <- o.slot }()
	if !r.waitTurn() {
		o.skipped = true
		return o, nil
	}
	o.line = strings.ReplaceAll(j.line, slotText, strconv.Itoa(o.slot))
	for attempt := 1; ; attempt++ {
		o.stdout.reset()
		o.stderr.reset()
		r.attempt(o)
		if !o.res.Failed() || attempt >= r.p.attempts || r.kill.Err() != nil || r.stopping.Load() {
			break
		}
	}
	r.finish(o)
	return o, nil
}

// waitTurn waits out --delay since the last start. It reports false if herd
// started stopping meanwhile.
func (r *runner) waitTurn() bool {
	if r.p.delay == 0 {
		return true
	}
	r.mu.Lock()
	at := r.nextStart
	if now := time.Now(); at.Before(now) {
		at = now
	}
	r.nextStart = at.Add(r.p.delay)
	r.mu.Unlock()
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
		return !r.stopping.Load()
	case <-r.kill.Done():
		return false
	}
}

// attempt runs the job once.
func (r *runner) attempt(o *outcome) {
	ctx := r.kill
	if d := r.timeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	cj := command.Job{
		Line:  o.line,
		Shell: r.p.o.shell,
		Env:   append(r.env[:len(r.env):len(r.env)], "PARALLEL_SEQ="+strconv.Itoa(o.job.seq), "PARALLEL_JOBSLOT="+strconv.Itoa(o.slot)),
	}
	cj.Stdin = r.devNull
	if o.job.stdin != nil {
		cj.Stdin = bytes.NewReader(o.job.stdin)
	}
	cj.LookPath = r.lookPath
	received := &counter{}
	switch {
	case r.p.o.ungroup:
		cj.Stdout = io.MultiWriter(r.direct(r.stdout), received)
		cj.Stderr = r.direct(r.stderr)
		if f, ok := r.stdout.(*os.File); ok {
			cj.Stdout = f // the job writes to herd's output itself, uncounted
		}
		if f, ok := r.stderr.(*os.File); ok {
			cj.Stderr = f
		}
	case r.p.o.lineBuffer:
		tag := r.tag(o)
		out := &lineWriter{r: r, w: r.stdout, tag: tag}
		errw := &lineWriter{r: r, w: r.stderr, tag: tag}
		defer out.flush()
		defer errw.flush()
		cj.Stdout, cj.Stderr = io.MultiWriter(out, received), errw
	default:
		cj.Stdout, cj.Stderr = io.MultiWriter(&o.stdout, received), &o.stderr
	}
	o.res = command.Run(ctx, cj)
	o.received = received.n
}

// lookPath is exec.LookPath, remembered for the run: the same few programs
// are looked up for thousands of jobs.
func (r *runner) lookPath(name string) (string, error) {
	type found struct {
		path string
		err  error
	}
	if f, ok := r.paths.Load(name); ok {
		return f.(found).path, f.(found).err
	}
	path, err := exec.LookPath(name)
	r.paths.Store(name, found{path, err})
	return path, err
}

// timeout is the time limit of a job starting now.
func (r *runner) timeout() time.Duration {
	if r.p.timeoutPc == 0 {
		return r.p.timeout
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runtimes.len() < 3 {
		return 0 // too few jobs to know what is normal
	}
	return time.Duration(float64(r.runtimes.median()) * r.p.timeoutPc / 100)
}

// finish records a finished job: its job log row, the counts, and --halt.
func (r *runner) finish(o *outcome) {
	if r.log != nil {
		if err := r.log.write(o.job.seq, o.host, o.res, int64(len(o.job.stdin)), o.received, o.line); err != nil {
			r.warn("writing the job log: %v", err)
		}
	}
	if o.res.Err != nil && o.res.Exit != 127 {
		r.warn("job %d: %v", o.job.seq, o.res.Err)
	}
	failed := o.res.Failed()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
	if failed {
		r.failed++
	} else {
		r.runtimes.add(o.res.Duration)
	}
	h := r.p.halt
	if h.on == "" || r.halted {
		return
	}
	n := r.done
	switch h.on {
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
	if (h.count > 0 && n >= h.count) || (h.percent > 0 && float64(n)*100 >= h.percent*float64(r.done)) {
		r.halted = true
		r.haltStatus = o.res.Exit
		if o.res.Signal != 0 {
			r.haltStatus = 128 + o.res.Signal
		}
		r.stopping.Store(true)
		how := "waiting for the running jobs to finish"
		if h.now {
			how = "killing the running jobs"
			r.killAll()
		}
		r.warn("halting after job %d (--halt %s): %s", o.job.seq, r.p.o.halt, how)
	}
}

// print writes a job's grouped output, whole.
func (r *runner) print(o *outcome) {
	if r.p.o.ungroup || r.p.o.lineBuffer {
		r.bar.add(o.res.Failed())
		return
	}
	tag := r.tag(o)
	r.outMu.Lock()
	defer r.outMu.Unlock()
	if err := o.stdout.writeTo(r.stdout, tag); err != nil {
		fmt.Fprintf(r.stderr, "herd run: job %d: output: %v\n", o.job.seq, err)
	}
	if err := o.stderr.writeTo(r.stderr, tag); err != nil {
		fmt.Fprintf(r.stderr, "herd run: job %d: error output: %v\n", o.job.seq, err)
	}
	o.stdout.close()
	o.stderr.close()
	r.bar.add(o.res.Failed())
}

// tag is the prefix of each of a job's output lines, if any.
func (r *runner) tag(o *outcome) string {
	switch {
	case r.p.tagTmpl != nil && !r.p.tagTmpl.HasReplacement():
		return r.p.o.tagString + "\t" // unlike a command, a tag is not followed by the inputs
	case r.p.tagTmpl != nil:
		return r.p.tagTmpl.Expand(o.job.args, o.job.seq, o.slot, true) + "\t"
	case r.p.o.tag:
		return strings.Join(o.job.args, "\t") + "\t"
	}
	return ""
}

// writeTagged writes b with tag before every line.
func writeTagged(w io.Writer, b []byte, tag string) {
	(&tagWriter{w: w, tag: tag}).Write(b)
}

// lineWriter passes on a job's output a whole line at a time.
type lineWriter struct {
	r   *runner
	w   io.Writer
	tag string
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		l.r.outMu.Lock()
		writeTagged(l.w, l.buf[:i+1], l.tag)
		l.r.outMu.Unlock()
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	return len(p), nil
}

func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.r.outMu.Lock()
		writeTagged(l.w, l.buf, l.tag)
		l.r.outMu.Unlock()
		l.buf = nil
	}
}

// direct returns w for a job to write to at any time, one write at a time.
func (r *runner) direct(w io.Writer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		r.outMu.Lock()
		defer r.outMu.Unlock()
		return w.Write(p)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// counter counts the bytes written to it.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// warn prints a message on standard error.
func (r *runner) warn(format string, args ...any) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprintf(r.stderr, "herd run: "+format+"\n", args...)
}

// watchSignals stops the run on signals: the first stops starting jobs, a
// second SIGINT or SIGTERM kills the running ones.
func (r *runner) watchSignals(sigs <-chan os.Signal, finished <-chan struct{}) {
	n := 0
	for {
		select {
		case <-finished:
			return
		case s := <-sigs:
			sig, _ := s.(syscall.Signal)
			n++
			if n == 1 {
				r.stopSig.Store(int32(sig))
				r.stopping.Store(true)
				r.warn("got %v: starting no more jobs, waiting for the running ones (signal again to kill them)", s)
				continue
			}
			if sig == syscall.SIGHUP {
				continue
			}
			r.warn("got %v again: killing the running jobs", s)
			r.killAll()
		}
	}
}

// medianTracker keeps the median of durations added one at a time: a
// max-heap of the lower half and a min-heap of the upper half.
type medianTracker struct {
	lo maxHeap
	hi minHeap
}

func (m *medianTracker) len() int { return m.lo.Len() + m.hi.Len() }

func (m *medianTracker) add(d time.Duration) {
	if m.lo.Len() == 0 || d <= m.lo.durs[0] {
		heap.Push(&m.lo, d)
	} else {
		heap.Push(&m.hi, d)
	}
	if m.lo.Len() > m.hi.Len()+1 {
		heap.Push(&m.hi, heap.Pop(&m.lo))
	} else if m.hi.Len() > m.lo.Len() {
		heap.Push(&m.lo, heap.Pop(&m.hi))
	}
}

func (m *medianTracker) median() time.Duration {
	if m.lo.Len() == 0 {
		return 0
	}
	return m.lo.durs[0]
}

type durations struct{ durs []time.Duration }

func (h durations) Len() int      { return len(h.durs) }
func (h durations) Swap(i, j int) { h.durs[i], h.durs[j] = h.durs[j], h.durs[i] }
func (h *durations) Push(x any)   { h.durs = append(h.durs, x.(time.Duration)) }
func (h *durations) Pop() (x any) {
	x, h.durs = h.durs[len(h.durs)-1], h.durs[:len(h.durs)-1]
	return x
}

type maxHeap struct{ durations }
type minHeap struct{ durations }

func (h maxHeap) Less(i, j int) bool { return h.durs[i] > h.durs[j] }
func (h minHeap) Less(i, j int) bool { return h.durs[i] < h.durs[j] }
