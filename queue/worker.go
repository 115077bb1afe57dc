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
	// Zero means 30s. It is a setting of the queue, shared by its workers:
	// give them all the same.
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
	stopJobs context.CancelFunc // of the running Run: cancels its jobs
	aborted  bool
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

	pool, err := herd.New(herd.Config{Workers: w.cfg.Concurrency, QueueSize: 2 * w.cfg.Concurrency})
	if err != nil {
		return err
	}
	// Jobs run under their own context, which outlives ctx by the
	// shutdown timeout.
	jobsCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopJobs()
	w.mu.Lock()
	w.stopJobs = stopJobs
	if w.aborted {
		stopJobs()
	}
	w.mu.Unlock()
	var running atomic.Int64
	free := make(chan struct{}, 1) // a slot came free

	for ctx.Err() == nil {
		// Take up to twice the concurrency: jobs waiting in the pool's
		// queue start the moment a slot frees, without a round trip.
		n := 2*w.cfg.Concurrency - int(running.Load())
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

// Abort cancels the jobs running now, as the end of the shutdown timeout
// does: a worker whose Run's context is done hands them back at once
// instead of letting them finish. Jobs that finish anyway count as done.
func (w *Worker) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.aborted = true
	if w.stopJobs != nil {
		w.stopJobs()
	}
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

// maxRecordedResult is the largest result kept in a job's record; bigger
// ones are kept apart in an object store. A record must fit in one NATS
// message (1MiB by default), with the payload and the error history.
const maxRecordedResult = 64 << 10

// runningAfter is how long a job runs before its record says so.
const runningAfter = 50 * time.Millisecond

// handle runs one delivered job and records how it went.
//
// The message carries the job's whole record as it was enqueued. On a first
// delivery that is all there is to know, so the worker goes straight to
// work; a job delivered again, scheduled, or retried by hand has its record
// read first, for its attempts and errors so far. Records are written
// without waiting, except the last, which is confirmed before the message
// is acknowledged: a job leaves the queue only once its outcome is kept.
func (w *Worker) handle(jobsCtx, runCtx context.Context, msg jetstream.Msg) {
	if runCtx.Err() != nil {
		msg.Nak() // taken but not started before the worker began to stop: hand it back
		return
	}
	info := new(Info)
	if err := json.Unmarshal(msg.Data(), info); err != nil || info.ID == "" {
		w.c.log.Error("queue: dropping a message that is not a job", "subject", msg.Subject(), "error", err)
		msg.Term()
		return
	}
	ctx := context.WithoutCancel(jobsCtx)
	meta, err := msg.Metadata()
	if err != nil || meta.NumDelivered > 1 || !info.RunAt.IsZero() {
		cur, err := w.c.Info(ctx, info.ID)
		switch {
		case err == nil:
			info = cur
		case !errors.Is(err, ErrNotFound): // not found: expired or deleted, the message is the record
			w.c.log.Warn("queue: job record unreadable; trying later", "id", info.ID, "error", err)
			msg.NakWithDelay(time.Second)
			return
		}
		if info.State == Succeeded || info.State == Dead {
			msg.Ack() // delivered again after it finished: nothing to do
			return
		}
		if wait := time.Until(info.RunAt); wait > 0 {
			msg.NakWithDelay(wait)
			return
		}
	}

	info.State, info.Attempts, info.UpdatedAt = Running, info.Attempts+1, time.Now()
	// A job that is done within runningAfter never shows as running: for
	// short jobs that record would cost a store write each, for a state
	// no one could see in time.
	// Nothing changes info while the handler runs, so the timer may read
	// it; and handle waits for the timer before changing it again.
	recorded := make(chan struct{})
	t := time.AfterFunc(runningAfter, func() {
		defer close(recorded)
		// The handler does not wait for this record: the state is only
		// news. But the outcome must not be published until this one is
		// settled, stored or given up on: during a failover the client
		// sends a publish again a moment later, and a running record sent
		// again after the outcome would overwrite it.
		if f, err := w.record(info); err == nil {
			select {
			case <-f.Ok():
			case <-f.Err():
			}
		}
	})
	result, err := w.run(jobsCtx, msg, info)
	if !t.Stop() {
		<-recorded // so that the outcome is published after it, and wins
	}
	info.UpdatedAt = time.Now()
	switch {
	case err != nil && jobsCtx.Err() != nil && runCtx.Err() != nil:
		// Cancelled because this worker is stopping: hand the job back
		// without counting the attempt.
		info.State, info.Attempts = Queued, info.Attempts-1
		w.finish(ctx, msg, info, msg.Nak)
	case err == nil:
		info.State, info.Result = Succeeded, result
		w.finish(ctx, msg, info, msg.Ack)
	default:
		info.Errors = append(info.Errors, fmt.Sprintf("attempt %d: %v", info.Attempts, err))
		if _, permanent := errors.AsType[permanentError](err); permanent || info.Attempts >= info.MaxAttempts {
			info.State = Dead
			w.c.log.Warn("queue: job is dead", "id", info.ID, "kind", info.Kind, "attempts", info.Attempts, "error", err)
			if _, err := w.c.dead.Put(ctx, info.ID, nil); err != nil {
				w.c.log.Warn("queue: job not listed as dead; it will run again", "id", info.ID, "error", err)
				msg.Nak()
				return
			}
			w.finish(ctx, msg, info, msg.Ack)
			return
		}
		info.State = Retrying
		delay := w.backoff(info.Attempts)
		w.finish(ctx, msg, info, func() error { return msg.NakWithDelay(delay) })
	}
}

// record publishes a job's record without waiting for the store.
func (w *Worker) record(info *Info) (jetstream.PubAckFuture, error) {
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	return w.c.js.PublishAsync(recordSubject(info.ID), data)
}

// finish stores a job's record and, once it is stored, settles the message
// with settle. If the record cannot be stored, the message is left to be
// delivered again.
func (w *Worker) finish(ctx context.Context, msg jetstream.Msg, info *Info, settle func() error) {
	var err error
	if len(info.Result) > maxRecordedResult {
		// Too big for the record: kept apart, under the job's id.
		if _, err = w.c.results.PutBytes(ctx, info.ID, info.Result); err == nil {
			info.Result, info.ResultApart = nil, true
		}
	}
	var f jetstream.PubAckFuture
	if err == nil {
		f, err = w.record(info)
	}
	if err == nil {
		select {
		case <-f.Ok():
			settle()
			return
		case err = <-f.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	w.c.log.Warn("queue: job outcome not stored; it will run again", "id", info.ID, "error", err)
	msg.Nak()
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

// backoff is the wait before the retry that follows attempt n.
func (w *Worker) backoff(n int) time.Duration {
	d := w.cfg.Backoff
	for i := 1; i < n && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}
