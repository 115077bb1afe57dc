package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// The limits of one commit: JetStream takes at most 1,000 messages in an
// atomic batch, and a batch's messages travel together.
const (
	maxCommitMsgs  = 1000
	maxCommitBytes = 8 << 20
)

// commitRetryFor is how long a commit is tried again while the server does
// not answer (it restarts, or a cluster elects a leader).
const commitRetryFor = 30 * time.Second

// A committer stores messages in the queue's stream in group commits: the
// messages handed to it while a commit is under way go together in the
// next one, as one atomic batch, which the server stores with one write to
// disk (and, on a cluster, one round of replication). A lone message goes
// at once, as an ordinary publish: an idle queue adds no wait.
//
// Commits are made one at a time, in the order the messages came, so a
// job's records are stored in the order they were written.
type committer struct {
	nc  *nats.Conn
	log *slog.Logger

	mu     sync.RWMutex // held to send on in; Close takes it to close in
	closed bool
	in     chan *write
	done   chan struct{} // closed when run returns

	commits atomic.Int64 // commits made, for tests and figures
}

// A write is one message to store. done is called once, from the
// committer's goroutine, when the message is stored or cannot be: it must
// not block.
type write struct {
	msg  *nats.Msg
	done func(err error)
}

func newCommitter(nc *nats.Conn, log *slog.Logger) *committer {
	cm := &committer{nc: nc, log: log, in: make(chan *write, 4*maxCommitMsgs), done: make(chan struct{})}
	go cm.run()
	return cm
}

// errClosed is a write handed to a committer that is closing.
var errClosed = errors.New("queue: client closed")

// add hands a write to the committer, waiting while it is busy with as
// many as it holds.
func (cm *committer) add(ctx context.Context, w *write) error {
	cm.mu.RLock()
	defer cm.mu.RUnlock()
	if cm.closed {
		return errClosed
	}
	select {
	case cm.in <- w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// store stores msgs and returns the error of each (nil if it was stored),
// or the context's error if ctx ends first; msgs stored by then stay.
func (cm *committer) store(ctx context.Context, msgs []*nats.Msg) ([]error, error) {
	errs := make([]error, len(msgs))
	var left atomic.Int64
	left.Store(int64(len(msgs)))
	finished := make(chan struct{})
	for i, m := range msgs {
		w := &write{msg: m, done: func(err error) {
			errs[i] = err
			if left.Add(-1) == 0 {
				close(finished)
			}
		}}
		if err := cm.add(ctx, w); err != nil {
			return nil, err
		}
	}
	select {
	case <-finished:
		return errs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close stores what was handed over, then stops.
func (cm *committer) close() {
	cm.mu.Lock()
	if !cm.closed {
		cm.closed = true
		close(cm.in)
	}
	cm.mu.Unlock()
	<-cm.done
}

func (cm *committer) run() {
	defer close(cm.done)
	batch := make([]*write, 0, maxCommitMsgs)
	var next *write // taken, for the next batch
	for {
		if next == nil {
			w, ok := <-cm.in
			if !ok {
				return
			}
			next = w
		}
		batch = append(batch[:0], next)
		size := len(next.msg.Data)
		// Two expectations on one subject in a batch would both be checked
		// against the stream as it was before the batch: a second job with
		// the id of the first goes in the next batch.
		var expected map[string]bool
		expect := func(w *write) bool {
			s := w.msg.Header.Get("Nats-Expected-Last-Subject-Sequence-Subject")
			if s == "" {
				return true
			}
			if expected[s] {
				return false
			}
			if expected == nil {
				expected = make(map[string]bool)
			}
			expected[s] = true
			return true
		}
		expect(next)
		next = nil
	gather:
		for len(batch) < maxCommitMsgs && size < maxCommitBytes {
			select {
			case w, ok := <-cm.in:
				if !ok {
					break gather
				}
				if !expect(w) {
					next = w
					break gather
				}
				batch = append(batch, w)
				size += len(w.msg.Data)
			default:
				break gather
			}
		}
		cm.commit(batch)
		clear(batch) // let the messages go
	}
}

// commit stores a batch and calls each write's done.
func (cm *committer) commit(batch []*write) {
	cm.commits.Add(1)
	var err error
	if len(batch) == 1 {
		err = cm.retry(func() error { return cm.publish(batch[0].msg) })
	} else {
		msgs := make([]*nats.Msg, len(batch))
		for i, w := range batch {
			msgs[i] = w.msg
		}
		err = cm.atomic(msgs)
		if wrongLastSequence(err) {
			// A job id seen before (or another expectation not met) fails
			// the whole batch without saying which: store each alone.
			for _, w := range batch {
				w.msg.Header.Del("Nats-Batch-Id")
				w.msg.Header.Del("Nats-Batch-Sequence")
				w.msg.Header.Del("Nats-Batch-Commit")
				w.msg.Header.Del("Nats-Msg-Id")
				w.done(cm.retry(func() error { return cm.publish(w.msg) }))
			}
			return
		}
	}
	for _, w := range batch {
		w.done(err)
	}
}

// retry calls publish until it succeeds, fails for a reason other than a
// server that does not answer, or commitRetryFor has passed.
func (cm *committer) retry(publish func() error) error {
	deadline := time.Now().Add(commitRetryFor)
	wait := 50 * time.Millisecond
	for tries := 1; ; tries++ {
		err := publish()
		if err == nil || !transient(err) || time.Now().After(deadline) || cm.nc.IsClosed() {
			return err
		}
		if tries == 2 {
			cm.log.Warn("queue: the server does not answer; trying again", "error", err)
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// transient reports whether a publish failed for want of a server that
// answers, so that the same publish may succeed later.
func transient(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrConnectionReconnecting)
}

// publish stores one message. A message sent again after an answer that
// was lost is stored once: its id is in the stream's window of duplicates.
func (cm *committer) publish(m *nats.Msg) error {
	if m.Header.Get("Nats-Msg-Id") == "" {
		m.Header.Set("Nats-Msg-Id", nuid.Next())
	}
	reply, err := cm.nc.RequestMsg(m, 5*time.Second)
	if err != nil {
		return err
	}
	return ackError(reply, false)
}

// atomic stores msgs as one atomic batch, all or none, trying again while
// the server does not answer. It may be called beside the committer's own
// commits.
func (cm *committer) atomic(msgs []*nats.Msg) error {
	id := nuid.Next()
	return cm.retry(func() error { return cm.publishBatch(id, msgs) })
}

// publishBatch stores a batch of messages atomically: all of them or none.
// The first message carries the batch's id as its message id, so a batch
// sent again after an answer that was lost is stored once.
func (cm *committer) publishBatch(id string, batch []*nats.Msg) error {
	for i, m := range batch {
		h := m.Header
		h.Set("Nats-Batch-Id", id)
		h.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i == 0 {
			h.Set("Nats-Msg-Id", id)
		}
		if i < len(batch)-1 {
			if err := cm.nc.PublishMsg(m); err != nil {
				return err
			}
		}
	}
	last := batch[len(batch)-1]
	last.Header.Set("Nats-Batch-Commit", "1")
	reply, err := cm.nc.RequestMsg(last, 10*time.Second)
	if err != nil {
		return err
	}
	return ackError(reply, true)
}

// ackError reads JetStream's answer to a publish.
func ackError(reply *nats.Msg, batch bool) error {
	if reply.Header.Get("Status") == "503" {
		return nats.ErrNoResponders
	}
	var ack struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return fmt.Errorf("bad answer %q: %w", reply.Data, err)
	}
	if ack.Error == nil {
		return nil
	}
	if batch && ack.Error.ErrorCode == jsErrAtomicDuplicate {
		return nil // this batch was stored before; its answer was lost
	}
	return ack.Error
}

// jsErrAtomicDuplicate is JetStream's error for an atomic batch holding a
// message id seen before.
const jsErrAtomicDuplicate = 10201
