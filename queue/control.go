package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A queue is paused by pausing its consumers, one per priority, in
// JetStream itself (a consumer's PauseUntil): a paused consumer hands out
// nothing until it is resumed, the state is kept with the consumer's
// configuration, so it survives restarts of servers and workers, and the
// consumer's figures say it is paused. Enqueueing is untouched.

// pausedFor is how long a pause lasts: until Resume, in practice.
const pausedFor = 100 * 365 * 24 * time.Hour

// Pause stops the workers of a named queue taking its jobs until [Client.Resume];
// the jobs running go on to finish, and jobs can still be enqueued.
func (c *Client) Pause(ctx context.Context, queue string) error {
	if !validQueue(queue) {
		return fmt.Errorf("queue: pause: queue %q: want letters, digits and - _ = /", queue)
	}
	until := time.Now().Add(pausedFor)
	for _, p := range []Priority{High, Default, Low} {
		if err := c.ensureConsumer(ctx, queue, p); err != nil {
			return fmt.Errorf("queue: pause %s: %w", queue, err)
		}
		name := consumerConfig(queue, p, 0).Durable
		if _, err := c.js.PauseConsumer(ctx, streamName, name, until); err != nil {
			return fmt.Errorf("queue: pause %s: %w", queue, err)
		}
	}
	return nil
}

// Resume lets the workers of a paused queue take its jobs again.
func (c *Client) Resume(ctx context.Context, queue string) error {
	if !validQueue(queue) {
		return fmt.Errorf("queue: resume: queue %q: want letters, digits and - _ = /", queue)
	}
	for _, p := range []Priority{High, Default, Low} {
		name := consumerConfig(queue, p, 0).Durable
		_, err := c.js.ResumeConsumer(ctx, streamName, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue // never had jobs at this priority: nothing to resume
		}
		if err != nil {
			return fmt.Errorf("queue: resume %s: %w", queue, err)
		}
	}
	return nil
}

// workerConsumer returns the consumer through which a worker takes the jobs
// of a queue at a priority, with the worker's lease; it keeps a pause.
func (c *Client) workerConsumer(ctx context.Context, queue string, p Priority, lease time.Duration) (jetstream.Consumer, error) {
	cc := consumerConfig(queue, p, lease)
	cons, err := c.js.Consumer(ctx, streamName, cc.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		cons, err = c.js.CreateConsumer(ctx, streamName, cc)
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			return cons, err
		}
		return c.workerConsumer(ctx, queue, p, lease) // made meanwhile by another
	case err != nil:
		return nil, err
	}
	have := cons.CachedInfo().Config
	if have.AckWait == lease {
		return cons, nil
	}
	cc.PauseUntil = have.PauseUntil // a pause is kept when the lease changes
	return c.js.UpdateConsumer(ctx, streamName, cc)
}

// A job is cancelled in three steps, each of which closes one way for it to
// run: its record says cancelled (written only if the record did not change
// since it was read, so a job that just finished stays finished); its
// message is taken out of the stream, so that no worker is given it; and a
// notice on cancelSubject(id) tells the worker that has it, if any, to
// cancel its context. A worker given the job just before the notice came
// cancels it when it takes it in hand (see Worker.Run).

// cancelRoot is where cancel notices are published: not stored, so
// outside the stream's subjects.
const cancelRoot = "herd-cancel"

func cancelSubject(id string) string { return cancelRoot + "." + id }

// ErrFinished is returned when cancelling a job that has finished already.
var ErrFinished = errors.New("queue: the job has finished")

// errCancelled is the cause of a cancelled job's context.
var errCancelled = errors.New("queue: job cancelled")

// Cancel cancels a job that has not finished: a queued, scheduled or
// retrying job never runs again, and a running one has its context
// cancelled on the worker that runs it, which then records it as
// [Cancelled] (a job's handler should return when its context is done).
// Cancelling a finished job is an error that wraps [ErrFinished]; an
// unknown id, one that wraps [ErrNotFound].
//
// A worker cut off from the queue when the notice is sent finishes the job,
// then finds it cancelled when it is back, and keeps it so.
func (c *Client) Cancel(ctx context.Context, id string) error {
	var info *Info
	for tries := 0; ; tries++ {
		var rev uint64
		var err error
		if info, rev, err = c.info(ctx, id); err != nil {
			return err
		}
		if info.State.Finished() {
			return fmt.Errorf("%w: %s %s", ErrFinished, id, finishedAs(info.State))
		}
		info.State, info.UpdatedAt, info.Registering = Cancelled, time.Now(), false
		rec, err := c.newRecordMsg(info)
		if err != nil {
			return fmt.Errorf("queue: cancel %s: %w", id, err)
		}
		expectLast(rec, id, rev)
		err = c.commit.atomic([]*nats.Msg{rec})
		if wrongLastSequence(err) && tries < 5 {
			continue // the job moved on meanwhile: look again
		}
		if err != nil {
			return fmt.Errorf("queue: cancel %s: %w", id, err)
		}
		break
	}
	for _, subject := range []string{jobSubject(info), waitSubject(info)} {
		if err := c.stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
			return fmt.Errorf("queue: cancel %s: %w", id, err)
		}
	}
	// The jobs that wait for this one will not run. No edge is added
	// once the record above is stored: those there now are all.
	if err := c.settle(ctx, info); err != nil {
		return fmt.Errorf("queue: cancel %s: %w", id, err)
	}
	if err := c.nc.Publish(cancelSubject(id), nil); err != nil {
		return fmt.Errorf("queue: cancel %s: %w", id, err)
	}
	if err := c.durable(); err != nil {
		return fmt.Errorf("queue: cancel %s: %w", id, err)
	}
	return nil
}

func finishedAs(s State) string {
	switch s {
	case Succeeded:
		return "succeeded"
	case Dead:
		return "is dead"
	}
	return "was cancelled"
}

// cancels keeps track, for a worker, of the jobs in its hands and of the
// cancel notices it got, so that a notice reaches a job taken just before
// or just after it came.
type cancels struct {
	mu      sync.Mutex
	running map[string]held
	notices map[string]time.Time // recent notices, by job id
}

// noticeKept is how long a worker remembers a cancel notice for a job it
// does not have (yet).
const noticeKept = time.Minute

// held is a job in a worker's hands.
type held struct {
	cancel context.CancelCauseFunc
	job    RunningJob
}

// take registers a job the worker is about to run and returns its context,
// already cancelled if a notice for it came; done unregisters it.
func (cs *cancels) take(parent context.Context, info *Info) (ctx context.Context, done func()) {
	id := info.ID
	ctx, cancel := context.WithCancelCause(parent)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, ok := cs.notices[id]; ok {
		cancel(errCancelled)
	}
	if cs.running == nil {
		cs.running = map[string]held{}
	}
	cs.running[id] = held{cancel, RunningJob{ID: id, Kind: info.Kind, Queue: info.Queue, Since: time.Now()}}
	return ctx, func() {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		delete(cs.running, id)
		cancel(nil)
	}
}

// notice handles a cancel notice for a job.
func (cs *cancels) notice(id string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if h, ok := cs.running[id]; ok {
		h.cancel(errCancelled)
	}
	now := time.Now()
	if cs.notices == nil {
		cs.notices = map[string]time.Time{}
	}
	cs.notices[id] = now
	for k, at := range cs.notices {
		if now.Sub(at) > noticeKept {
			delete(cs.notices, k)
		}
	}
}
