package herd

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets up a [Pool]. The zero value is a pool of GOMAXPROCS workers
// with a queue of 64, no timeout, no retries and no rate limit.
type Config struct {
	// Workers is how many tasks run at once. Zero means GOMAXPROCS.
	Workers int

	// QueueSize is how many submitted tasks may wait in the queue before
	// a submit blocks. A worker takes one task at a time: a task waits in
	// the queue until a worker is free to start it. Zero means Workers or
	// 64, whichever is larger: a queue much shorter than that makes
	// submitters and workers take turns sleeping and waking for every short
	// task.
	QueueSize int

	// TaskTimeout bounds each attempt of a task: its context is cancelled
	// with cause [ErrTimeout] after this long. Zero means no timeout.
	TaskTimeout time.Duration

	// Retries is how many more times a task that returns an error is run.
	// Panics are never retried. Zero means no retries.
	Retries int

	// Backoff is the wait before the first retry; each later retry waits
	// twice as long as the one before, up to MaxBackoff, and every wait is
	// drawn at random from its upper half (jitter). Zero means 100ms.
	Backoff time.Duration

	// MaxBackoff caps every wait between retries, the first included.
	// Zero means 10s, or Backoff if that is longer. A MaxBackoff shorter
	// than Backoff is an error.
	MaxBackoff time.Duration

	// Rate limits how many task attempts start per second, across all
	// workers. Zero means no limit.
	Rate float64

	// Burst is how many attempts may start at once when the pool has been
	// idle under a Rate limit. Zero means 1.
	Burst int

	// OnError, if set, is called on the worker's goroutine with the error
	// of every task submitted with [Pool.Go] or [Pool.TryGo] that fails, a
	// [*PanicError] included. Tasks of a [Group] report to the group
	// instead. When OnError is nil, failures are only counted in
	// [Metrics], except the first panic, which [Pool.Close] and
	// [Pool.Shutdown] return so that it is never lost.
	OnError func(error)
}

// Pool is a fixed number of workers pulling tasks off a bounded queue.
//
// A Pool must be made with [New] and closed with [Pool.Close] or
// [Pool.Shutdown], which wait for every worker to exit. All methods are safe
// for concurrent use.
type Pool struct {
	cfg Config

	ctx     context.Context // given to tasks: carries the pool, cancelled by a hard stop
	cancel  context.CancelCauseFunc
	limiter *limiter
	plain   bool // no timeout, retries or rate limit: call tasks directly

	// The queue: see sched.go.
	tasks    chan item
	notify   atomic.Pointer[chan struct{}] // closed to wake the idle workers
	closed   atomic.Bool                   // no more submits but those under way; set under mu
	shrink   atomic.Int64                  // workers asked to exit
	dropping atomic.Bool                   // Shutdown's deadline passed: discard what is queued

	closeOnce sync.Once
	mu        sync.Mutex // guards what follows
	workers   map[*worker]struct{}
	target    int
	retired   counts // totals of workers that have exited
	panicked  *PanicError
	exited    chan struct{} // closed when the pool is closed and the last worker exits

	helper        worker        // counts for tasks run by submitters and waiters that help out
	submittedSeen atomic.Uint64 // the most Metrics has reported as Submitted
}

// item is one queued task. g is nil for tasks submitted straight to the
// pool.
type item struct {
	fn func(context.Context) error
	g  *Group
}

type poolKey struct{}

// New starts a pool of workers as cfg describes.
func New(cfg Config) (*Pool, error) {
	switch {
	case cfg.Workers < 0:
		return nil, fmt.Errorf("herd: new pool: workers %d is negative", cfg.Workers)
	case cfg.QueueSize < 0:
		return nil, fmt.Errorf("herd: new pool: queue size %d is negative", cfg.QueueSize)
	case cfg.TaskTimeout < 0:
		return nil, fmt.Errorf("herd: new pool: task timeout %v is negative", cfg.TaskTimeout)
	case cfg.Retries < 0:
		return nil, fmt.Errorf("herd: new pool: retries %d is negative", cfg.Retries)
	case cfg.Backoff < 0 || cfg.MaxBackoff < 0:
		return nil, fmt.Errorf("herd: new pool: backoff %v, max backoff %v: must not be negative", cfg.Backoff, cfg.MaxBackoff)
	case cfg.MaxBackoff > 0 && cfg.Backoff > cfg.MaxBackoff:
		return nil, fmt.Errorf("herd: new pool: backoff %v is longer than max backoff %v", cfg.Backoff, cfg.MaxBackoff)
	case cfg.Rate < 0 || cfg.Burst < 0:
		return nil, fmt.Errorf("herd: new pool: rate %v, burst %d: must not be negative", cfg.Rate, cfg.Burst)
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = max(cfg.Workers, 64)
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(10*time.Second, cfg.Backoff)
	}
	p := &Pool{
		cfg:     cfg,
		tasks:   make(chan item, cfg.QueueSize),
		workers: make(map[*worker]struct{}),
		exited:  make(chan struct{}),
	}
	p.notify.Store(new(make(chan struct{})))
	if cfg.Rate > 0 {
		p.limiter = newLimiter(cfg.Rate, max(cfg.Burst, 1))
	}
	p.plain = p.limiter == nil && cfg.TaskTimeout == 0 && cfg.Retries == 0
	ctx, cancel := context.WithCancelCause(context.Background())
	p.ctx, p.cancel = context.WithValue(ctx, poolKey{}, p), cancel
	p.mu.Lock()
	p.target = cfg.Workers
	for range cfg.Workers {
		p.startWorker()
	}
	p.mu.Unlock()
	return p, nil
}

// Go submits task to the pool, waiting for room in the queue if it is full.
// It returns nil once the task is queued; the task then runs exactly once
// (more with [Config.Retries]) unless [Pool.Shutdown] gives up on it.
//
// If ctx is done before there is room, Go returns ctx's error and the task
// never runs. If the pool is closed, Go returns [ErrClosed].
//
// A task may submit more tasks to its own pool. When it passes the context
// it was given and the queue is full, Go runs queued tasks on the calling
// goroutine until there is room, rather than waiting for a worker that may
// be the caller itself.
//
// The task's error, if any, goes to [Config.OnError]; use a [Group] to wait
// for tasks and collect their errors.
func (p *Pool) Go(ctx context.Context, task func(ctx context.Context) error) error {
	return p.submit(ctx, nil, item{fn: task})
}

// TryGo submits task if there is room in the queue right now, and reports
// whether it did. It never waits.
func (p *Pool) TryGo(task func(ctx context.Context) error) bool {
	return p.try(item{fn: task})
}

func (p *Pool) try(it item) bool {
	if p.closed.Load() {
		return false
	}
	select {
	case p.tasks <- it:
		p.queued()
		return true
	default:
		return false
	}
}

// submit queues it, waiting for room if need be. caller is the context of
// whoever submits: its being done ends the wait, and if it is the context
// of one of this pool's tasks, the caller runs queued tasks while it waits.
// The wait also ends when also, if not nil, is done; submit then returns
// also's error.
func (p *Pool) submit(caller, also context.Context, it item) error {
	if err := caller.Err(); err != nil {
		return err
	}
	if also != nil && also.Err() != nil {
		return also.Err()
	}
	if p.closed.Load() {
		return ErrClosed
	}
	select {
	case p.tasks <- it:
	default:
		if err := p.await(caller, also, it); err != nil {
			return err
		}
	}
	p.queued()
	return nil
}

// await waits for room in the full queue to queue it. A submit that waits
// may queue its task even once the pool is closing: the workers run every
// task until the queue is empty.
func (p *Pool) await(caller, also context.Context, it item) error {
	var alsoDone <-chan struct{}
	if also != nil {
		alsoDone = also.Done()
	}
	// A caller that is one of this pool's tasks might wait for itself: it
	// runs queued tasks meanwhile.
	helping := p.helping(caller)
	for {
		select {
		case p.tasks <- it:
			return nil
		case other := <-helping:
			p.help(other)
		case <-caller.Done():
			return caller.Err()
		case <-alsoDone:
			return also.Err()
		}
	}
}

// Resize changes the number of workers to n. New workers start at once;
// when shrinking, workers exit as they finish their current task.
func (p *Pool) Resize(n int) error {
	if n < 1 {
		return fmt.Errorf("herd: resize: workers %d must be at least 1", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return ErrClosed
	}
	for ; p.target < n; p.target++ {
		if p.exiting() {
			continue // cancel a pending exit instead of starting a worker
		}
		p.startWorker()
	}
	if p.target > n {
		p.shrink.Add(int64(p.target - n))
		p.target = n
		p.poke() // idle workers exit at once
	}
	return nil
}

// Close stops the pool accepting tasks, runs every task already queued, and
// waits for all workers to exit. It returns the first panic of a task
// submitted with [Pool.Go] when [Config.OnError] is nil, and nil otherwise.
func (p *Pool) Close() error {
	return p.Shutdown(context.Background())
}

// Shutdown stops the pool accepting tasks and waits for the queued and
// running tasks to finish, like [net/http.Server.Shutdown]. If ctx is done
// first, Shutdown cancels the context of the running tasks, discards the
// tasks still queued (their groups see [ErrNotRun]) and waits for the
// running ones to return. It then reports ctx's error and how many tasks
// never ran. Either way no worker is left running when it returns.
func (p *Pool) Shutdown(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed.Store(true)
		p.mu.Unlock()
		p.poke() // idle workers exit once the queue is empty
	})
	var errs []error
	select {
	case <-p.exited: // first, alone: a pool already closed is no error
	default:
		select {
		case <-p.exited:
		case <-ctx.Done():
			errs = p.giveUp(ctx)
		}
	}
	p.mu.Lock()
	if p.panicked != nil {
		errs = append(errs, p.panicked)
	}
	p.mu.Unlock()
	p.cancel(ErrClosed)
	return errors.Join(errs...)
}

// giveUp ends a Shutdown whose ctx is done: it discards the queue, cancels
// the running tasks and waits for the workers to exit.
func (p *Pool) giveUp(ctx context.Context) []error {
	p.dropping.Store(true)
	p.cancel(fmt.Errorf("herd: pool shut down: %w", context.Cause(ctx)))
	<-p.exited
	return []error{fmt.Errorf("herd: shutdown: %d queued tasks never ran: %w", p.Metrics().NotRun, ctx.Err())}
}

// startWorker starts one worker. p.mu must be held.
func (p *Pool) startWorker() {
	w := new(worker)
	p.workers[w] = struct{}{}
	go p.work(w)
}

// work is a worker's goroutine: it runs tasks until the pool is closed and
// drained or a shrink asks one worker to go.
func (p *Pool) work(w *worker) {
	for p.serve(w) {
	}
}

// serve runs tasks on w until w is to exit, and reports false then. A task
// that panics is reported by serve's deferred function, and serve reports
// true: the worker goes on. Recovering once per panic rather than once per
// task keeps a deferred call off the path of every task.
func (p *Pool) serve(w *worker) (again bool) {
	var cur item // the task running, if running
	running := false
	defer func() {
		if !running {
			return
		}
		err := escaped(recover())
		p.report(w, cur.g, err)
		if err == errGoexit {
			// The goroutine ends whatever we do: another takes its place.
			p.replace(w)
			return
		}
		again = true
	}()
	for {
		var it item
		select {
		case it = <-p.tasks:
		default:
			w.publish() // about to wait: make the counts exact
			var ok bool
			if it, ok = p.wait(w); !ok {
				return false
			}
		}
		w.received.Add(1) // at once: Metrics counts it as running
		w.seq++
		if w.timeAll || w.seq%latencySampleEvery == 1 {
			start := time.Now()
			cur, running = it, true
			err := p.runTask(it)
			running = false
			d := time.Since(start)
			w.latency.record(d)
			w.timeAll = d >= timeAllAbove
			p.report(w, it.g, err)
		} else {
			cur, running = it, true
			err := p.runTask(it)
			running = false
			p.report(w, it.g, err)
		}
		if w.unpublished >= publishEvery {
			w.publish()
		}
		if p.shrink.Load() > 0 && p.exiting() {
			p.retire(w)
			return false
		}
	}
}

// replace retires a worker ended by a task calling runtime.Goexit, and
// starts another in its place to keep the pool at its size.
func (p *Pool) replace(w *worker) {
	w.publish()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startWorker() // first: the pool is never without workers before it is drained
	p.retireLocked(w)
}

// runTask runs one task, unless Shutdown gave up on the tasks queued.
func (p *Pool) runTask(it item) error {
	if p.dropping.Load() {
		return errNotStarted
	}
	ctx := p.ctx
	if it.g != nil {
		ctx = it.g.taskCtx
	}
	if p.plain {
		return it.fn(ctx)
	}
	return p.call(ctx, it.fn)
}

// runItem runs one task on the calling goroutine, one not a worker's, and
// reports its outcome, whatever way it ends.
func (p *Pool) runItem(w *worker, it item) {
	returned := false
	var err error
	defer func() {
		if !returned {
			err = escaped(recover())
		}
		p.report(w, it.g, err)
	}()
	err = p.runTask(it)
	returned = true
}

// call runs fn with the pool's timeout, retries and rate limit.
// A task still waiting for its first start when Shutdown gives up never
// ran: call returns errNotStarted for it.
func (p *Pool) call(ctx context.Context, fn func(context.Context) error) error {
	var err error
	for attempt := 0; ; attempt++ {
		if p.limiter != nil {
			if werr := p.limiter.wait(ctx); werr != nil {
				switch {
				case attempt > 0:
					return err // the last attempt's
				case p.dropping.Load():
					return errNotStarted
				}
				return werr
			}
		}
		err = p.attempt(ctx, fn)
		if err == nil || attempt == p.cfg.Retries {
			return err
		}
		t := time.NewTimer(Backoff(attempt+1, p.cfg.Backoff, p.cfg.MaxBackoff))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

func (p *Pool) attempt(ctx context.Context, fn func(context.Context) error) error {
	if p.cfg.TaskTimeout == 0 {
		return fn(ctx)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, p.cfg.TaskTimeout, ErrTimeout)
	defer cancel()
	return fn(ctx)
}

// report counts a finished task and hands its error to whoever waits for it.
func (p *Pool) report(w *worker, g *Group, err error) {
	if err == errNotStarted {
		w.notRun.Add(1)
		if g != nil {
			g.finish(ErrNotRun)
		}
		return
	}
	if err == nil {
		if w == &p.helper {
			w.succeeded.Add(1)
		} else {
			w.unpublished++ // only the worker's own goroutine runs its tasks
		}
		if g != nil {
			g.finish(nil)
		}
		return
	}
	pe, panicked := errors.AsType[*PanicError](err)
	if panicked {
		w.panicked.Add(1)
	} else {
		w.failed.Add(1)
	}
	switch {
	case g != nil:
		g.finish(err)
	case p.cfg.OnError != nil:
		p.cfg.OnError(err)
	case panicked:
		p.mu.Lock()
		if p.panicked == nil {
			p.panicked = pe
		}
		p.mu.Unlock()
	}
}
