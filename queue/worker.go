package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goherd/herd"
	"github.com/nats-io/nats.go/jetstream"
)

// Job is a job as its handler sees it.
type Job struct {
	ID          string
	Kind        string
	Queue       string
	Payload     []byte
	Attempt     int // 1 for the first attempt
	MaxAttempts int
}

// Decode decodes a job's JSON payload, as [Enqueue] encoded it.
func Decode[T any](j *Job) (T, error) {
	var v T
	if err := json.Unmarshal(j.Payload, &v); err != nil {
		return v, fmt.Errorf("queue: job %s: payload: %w", j.ID, err)
	}
	return v, nil
}

// Handler runs a job. The result it returns, if any, is kept with the job;
// an error makes the job try again later, unless it is [Permanent] or the
// job has had all its attempts.
type Handler func(ctx context.Context, job *Job) (result []byte, err error)

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as final: the job fails at once, without retries.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// WorkerConfig sets up a [Worker]. The zero value serves the default queue
// with GOMAXPROCS jobs at once.
type WorkerConfig struct {
	// Queues are the named queues to serve. Empty means "default".
	Queues []string

	// Concurrency is how many jobs run at once. Zero means GOMAXPROCS.
	Concurrency int

	// Lease is how long a job may go without a sign of life before the
	// queue gives it to another worker. A running job's lease is renewed
	// while its handler runs, so only a worker that died loses its jobs.
	// Zero means 30s.
	Lease time.Duration

	// Backoff is the wait before the first retry; each retry waits twice
	// as long as the one before, up to MaxBackoff, drawn at random from
	// the upper half of that. Zero means 1s and 10m.
	Backoff, MaxBackoff time.Duration

	// ShutdownTimeout is how long a stopping worker lets running jobs
	// finish before it cancels them and hands them back. Zero means 30s.
	ShutdownTimeout time.Duration
}

// Worker runs jobs of the kinds it has handlers for.
type Worker struct {
	c        *Client
	cfg      WorkerConfig
	mu       sync.Mutex
	handlers map[string]Handler
}

// NewWorker returns a worker taking jobs from this client's queue.
func (c *Client) NewWorker(cfg WorkerConfig) (*Worker, error) {
	if cfg.Concurrency < 0 || cfg.Lease < 0 || cfg.Backoff < 0 || cfg.MaxBackoff < 0 || cfg.ShutdownTimeout < 0 {
		return nil, fmt.Errorf("queue: new worker: %+v: no setting may be negative", cfg)
	}
	if len(cfg.Queues) == 0 {
		cfg.Queues = []string{"default"}
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = runtime.GOMAXPROCS(0)
	}
	if cfg.Lease == 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	return &Worker{c: c, cfg: cfg, handlers: make(map[string]Handler)}, nil
}

// Handle registers the handler of a kind of job.
func (w *Worker) Handle(kind string, h Handler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handlers[kind] = h
}

func (w *Worker) handler(kind string) Handler {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.handlers[kind]
}

// Run takes jobs and runs them until ctx is done. It then takes no more,
// lets the running jobs finish for up to [WorkerConfig.ShutdownTimeout],
// cancels those still running and hands them back to the queue, and
// returns nil. A job of a worker that dies without handing it back is
// given to another worker when its lease runs out.
func (w *Worker) Run(ctx context.Context) error {
	var consumers []jetstream.Consumer
	for _, prio := range []Priority{High, Default, Low} {
		for _, q := range w.cfg.Queues {
			name := fmt.Sprintf("herd_%s_%s", q, prio.subject())
			cons, err := w.c.js.CreateOrUpdateConsumer(ctx, jobsStream, jetstream.ConsumerConfig{
				Durable:       name,
				FilterSubject: jobsSubject + "." + q + "." + prio.subject(),
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       w.cfg.Lease,
				MaxDeliver:    -1,
				MaxAckPending: 100_000,
			})
			if err != nil {
				return fmt.Errorf("queue: worker: consumer %s: %w", name, err)
			}
			consumers = append(consumers, cons)
		}
	}

	pool, err := herd.New(herd.Config{Workers: w.cfg.Concurrency})
	if err != nil {
		return err
	}
	// Jobs run under their own context, which outlives ctx by the
	// shutdown timeout.
	jobsCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopJobs()
	var running atomic.Int64
	free := make(chan struct{}, 1) // a slot came free

	for ctx.Err() == nil {
		n := w.cfg.Concurrency - int(running.Load())
		if n <= 0 {
			select {
			case <-free:
			case <-ctx.Done():
			}
			continue
		}
		msgs := w.fetch(ctx, consumers, n)
		for _, msg := range msgs {
			running.Add(1)
			pool.Go(jobsCtx, func(context.Context) error {
				defer func() {
					running.Add(-1)
					select {
					case free <- struct{}{}:
					default:
					}
				}()
				w.handle(jobsCtx, ctx, msg)
				return nil
			})
		}
	}

	// Stopping: let the running jobs finish, up to the timeout.
	timer := time.AfterFunc(w.cfg.ShutdownTimeout, stopJobs)
	defer timer.Stop()
	pool.Close()
	return nil
}

// fetch takes up to n jobs, high priority first. When there are none it
// waits a moment for one.
func (w *Worker) fetch(ctx context.Context, consumers []jetstream.Consumer, n int) []jetstream.Msg {
	var msgs []jetstream.Msg
	for _, cons := range consumers {
		batch, err := cons.FetchNoWait(n - len(msgs))
		if err != nil {
			continue
		}
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == n {
			return msgs
		}
	}
	if len(msgs) > 0 || ctx.Err() != nil {
		return msgs
	}
	// Nothing waiting: wait on the default priority of the first queue,
	// which is where most jobs arrive; the others are looked at again
	// after the wait.
	batch, err := consumers[len(w.cfg.Queues)].Fetch(n, jetstream.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		// The server is away: don't spin while the client reconnects.
		w.c.log.Debug("queue: fetch", "error", err)
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	}
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	return msgs
}

// handle runs one delivered job and records how it went.
func (w *Worker) handle(jobsCtx, runCtx context.Context, msg jetstream.Msg) {
	var sent Info
	if err := json.Unmarshal(msg.Data(), &sent); err != nil || sent.ID == "" {
		w.c.log.Error("queue: dropping a message that is not a job", "subject", msg.Subject(), "error", err)
		msg.Term()
		return
	}
	ctx := context.WithoutCancel(jobsCtx)
	info, rev, err := w.c.info(ctx, sent.ID)
	if errors.Is(err, ErrNotFound) {
		// The record expired or was deleted: the message is the record.
		info = &sent
		data, _ := json.Marshal(info)
		if rev, err = w.c.state.Create(ctx, info.ID, data); err != nil {
			msg.Nak()
			return
		}
	} else if err != nil {
		w.c.log.Warn("queue: job record unreadable; trying later", "id", sent.ID, "error", err)
		msg.NakWithDelay(time.Second)
		return
	}
	switch info.State {
	case Succeeded, Dead:
		msg.Ack() // delivered again after it finished: nothing to do
		return
	}
	if wait := time.Until(info.RunAt); wait > 0 {
		msg.NakWithDelay(wait)
		return
	}

	info.State, info.Attempts, info.UpdatedAt = Running, info.Attempts+1, time.Now()
	if rev, err = w.update(ctx, info, rev); err != nil {
		msg.NakWithDelay(time.Second) // another worker has it, or the store is away
		return
	}
	result, err := w.run(jobsCtx, msg, info)

	if err != nil && jobsCtx.Err() != nil && runCtx.Err() != nil {
		// Cancelled because this worker is stopping: hand the job back
		// without counting the attempt.
		info.State, info.Attempts, info.UpdatedAt = Queued, info.Attempts-1, time.Now()
		w.update(ctx, info, rev)
		msg.Nak()
		return
	}
	info.UpdatedAt = time.Now()
	if err == nil {
		info.State, info.Result = Succeeded, result
		if _, err := w.update(ctx, info, rev); err != nil {
			msg.Nak() // the result is not stored: run the job again
			return
		}
		msg.Ack()
		return
	}
	info.Errors = append(info.Errors, fmt.Sprintf("attempt %d: %v", info.Attempts, err))
	if _, permanent := errors.AsType[permanentError](err); permanent || info.Attempts >= info.MaxAttempts {
		info.State = Dead
		if _, uerr := w.update(ctx, info, rev); uerr != nil {
			msg.Nak()
			return
		}
		w.c.log.Warn("queue: job is dead", "id", info.ID, "kind", info.Kind, "attempts", info.Attempts, "error", err)
		msg.Ack()
		return
	}
	info.State = Retrying
	if _, uerr := w.update(ctx, info, rev); uerr != nil {
		msg.Nak()
		return
	}
	msg.NakWithDelay(w.backoff(info.Attempts))
}

// run calls the job's handler, renewing its lease meanwhile, with the job's
// time limit, and turns a panic into an error that carries the stack.
func (w *Worker) run(ctx context.Context, msg jetstream.Msg, info *Info) (result []byte, err error) {
	h := w.handler(info.Kind)
	if h == nil {
		return nil, fmt.Errorf("no handler for kind %q", info.Kind)
	}
	if info.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(info.Timeout))
		defer cancel()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		t := time.NewTicker(w.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				msg.InProgress()
			case <-stop:
				return
			}
		}
	})
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v\n\n%s", v, debug.Stack())
		}
	}()
	job := &Job{ID: info.ID, Kind: info.Kind, Queue: info.Queue, Payload: info.Payload, Attempt: info.Attempts, MaxAttempts: info.MaxAttempts}
	return h(ctx, job)
}

func (w *Worker) update(ctx context.Context, info *Info, rev uint64) (uint64, error) {
	data, err := json.Marshal(info)
	if err != nil {
		return 0, err
	}
	return w.c.state.Update(ctx, info.ID, data, rev)
}

// backoff is the wait before the retry that follows attempt n.
func (w *Worker) backoff(n int) time.Duration {
	d := w.cfg.Backoff
	for i := 1; i < n && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}
