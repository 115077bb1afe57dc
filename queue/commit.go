package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// The limits of one commit.
const (
	maxCommitMsgs  = 1000 // JetStream's most in an atomic batch
	maxCommitBytes = 8 << 20
)

// commitRetryFor is how long a commit is tried again while the server does
// not answer (it restarts, or a cluster elects a leader).
const commitRetryFor = 30 * time.Second

// A committer stores messages in the queue's stream in group commits: the
// messages handed to it while a commit is under way go together in the
// next one, and are made durable together. A lone message goes at once:
// an idle queue adds no wait.
//
// How a group is made durable depends on where the server is. With the
// embedded server, which writes every message to its files as it stores
// it, the committer syncs those files itself once the group is stored: one
// fsync for the group (see doc.go). With a server elsewhere, which syncs as
// it is set up to, a large group goes as one atomic batch, which a server
// set to sync every write syncs once (and a cluster replicates in one
// round); a small one goes as separate publishes, since an atomic batch
// costs the server a few milliseconds to set up.
//
// Commits are made one at a time, in the order the messages came, so a
// job's records are stored in the order they were written.
type committer struct {
	nc  *nats.Conn
	log *slog.Logger

	// sync, if set, makes what the server stored durable.
	sync func() error
	// atomicMin is the smallest group sent as an atomic batch; 0: none.
	atomicMin int

	mu     sync.RWMutex // held to send on in; Close takes it to close in
	closed bool
	in     chan *write
	done   chan struct{} // closed when run returns

	acks  *nats.Subscription // the answers to the committer's publishes
	inbox string
	gen   uint64 // of the group under way, in the answers' subjects

	commits atomic.Int64 // commits made, for tests and figures

	// Lazy writes are stored without a sync of their own: the next
	// commit's sync makes them durable, or one made lazySyncAfter after
	// the first of them if none comes.
	owed      time.Time     // when the first lazy write not synced yet was stored; zero if none
	lazyAfter time.Duration // lazySyncAfter, but in tests
	syncMu    sync.Mutex
	stored    uint64            // commits begun, whose messages a reader may see before they are durable
	synced    uint64            // how many of them the last sync covered
	syncErr   error             // the last sync's error
	onSync    []func(err error) // called at the next sync
}

// lazySyncAfter is how long lazy writes wait for another commit's sync
// at most, before the committer syncs them itself.
const lazySyncAfter = 2 * time.Millisecond

// A write is one message to store. done is called once, from the
// committer's goroutine, when the message is stored or cannot be: it must
// not block.
//
// A lazy write is one whose loss in a power cut the writer makes good (it
// is redone from what was made durable before it): done is called once it
// is stored, before it is durable; flush waits until it is.
type write struct {
	msg  *nats.Msg
	done func(err error)
	lazy bool
}

func newCommitter(nc *nats.Conn, log *slog.Logger, sync func() error, atomicMin int) (*committer, error) {
	cm := &committer{nc: nc, log: log, sync: sync, atomicMin: atomicMin,
		in: make(chan *write, 4*maxCommitMsgs), done: make(chan struct{}), inbox: nc.NewInbox(),
		lazyAfter: lazySyncAfter}
	var err error
	if cm.acks, err = nc.SubscribeSync(cm.inbox + ".>"); err != nil {
		return nil, err
	}
	cm.acks.SetPendingLimits(-1, -1)
	go cm.run()
	return cm, nil
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
	return cm.storeAs(ctx, msgs, false)
}

// storeLazy is store of lazy writes: they are stored, and durable only
// once flush returns.
func (cm *committer) storeLazy(ctx context.Context, msgs []*nats.Msg) ([]error, error) {
	return cm.storeAs(ctx, msgs, true)
}

func (cm *committer) storeAs(ctx context.Context, msgs []*nats.Msg, lazy bool) ([]error, error) {
	errs := make([]error, len(msgs))
	var left atomic.Int64
	left.Store(int64(len(msgs)))
	finished := make(chan struct{})
	for i, m := range msgs {
		w := &write{msg: m, lazy: lazy, done: func(err error) {
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

// flush waits until the writes stored so far, lazy or not, are durable,
// and returns the error of the sync that made them so. A record read from
// the server may be one the committer is storing now, synced a moment
// after.
func (cm *committer) flush(ctx context.Context) error {
	synced := make(chan error, 1)
	cm.afterSync(func(err error) { synced <- err })
	select {
	case err := <-synced:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// afterSync calls fn once the writes stored so far are durable, with
// the error of the sync that made them so: at once if they are, else from
// the committer's goroutine (fn must not block).
func (cm *committer) afterSync(fn func(err error)) {
	cm.syncMu.Lock()
	if cm.synced == cm.stored {
		err := cm.syncErr
		cm.syncMu.Unlock()
		fn(err)
		return
	}
	cm.onSync = append(cm.onSync, fn)
	cm.syncMu.Unlock()
}

// syncNow syncs what the server stored, and tells those who wait for the
// writes stored before.
func (cm *committer) syncNow() error {
	err := cm.sync()
	if err != nil {
		cm.log.Error("queue: syncing the store to disk", "error", err)
	}
	cm.syncMu.Lock()
	cm.synced, cm.syncErr, cm.owed = cm.stored, err, time.Time{}
	told := cm.onSync
	cm.onSync = nil
	cm.syncMu.Unlock()
	for _, fn := range told {
		fn(err)
	}
	return err
}

// storedNothing takes back the count of a commit that stored nothing (a
// full store, a server gone), and tells those who waited only for it.
func (cm *committer) storedNothing() {
	cm.syncMu.Lock()
	cm.stored--
	var told []func(err error)
	if cm.synced == cm.stored {
		told, cm.onSync = cm.onSync, nil
	}
	err := cm.syncErr
	cm.syncMu.Unlock()
	for _, fn := range told {
		fn(err)
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
	cm.acks.Unsubscribe()
}

func (cm *committer) run() {
	defer close(cm.done)
	batch := make([]*write, 0, maxCommitMsgs)
	var next *write // taken, for the next batch
	for {
		if next == nil && !cm.owed.IsZero() {
			// Lazy writes wait for the next commit's sync, a little.
			t := time.NewTimer(time.Until(cm.owed.Add(cm.lazyAfter)))
			select {
			case w, ok := <-cm.in:
				t.Stop()
				if !ok {
					cm.syncNow()
					return
				}
				next = w
			case <-t.C:
				cm.syncNow()
				continue
			}
		}
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
	if cm.sync != nil {
		cm.syncMu.Lock()
		cm.stored++
		cm.syncMu.Unlock()
	}
	msgs := make([]*nats.Msg, len(batch))
	for i, w := range batch {
		msgs[i] = w.msg
	}
	var errs []error
	if cm.atomicMin > 0 && len(msgs) >= cm.atomicMin {
		err := cm.atomic(msgs)
		if wrongLastSequence(err) {
			// A job id seen before (or another expectation not met) fails
			// the whole batch without saying which: store each alone.
			for _, m := range msgs {
				for _, h := range []string{"Nats-Batch-Id", "Nats-Batch-Sequence", "Nats-Batch-Commit", "Nats-Msg-Id"} {
					m.Header.Del(h)
				}
			}
			errs = cm.publishAll(msgs)
		} else {
			errs = make([]error, len(msgs))
			for i := range errs {
				errs[i] = err
			}
		}
	} else {
		errs = cm.publishAll(msgs)
	}
	lazy := !slices.ContainsFunc(batch, func(w *write) bool { return !w.lazy })
	switch {
	case cm.sync == nil:
	case !slices.Contains(errs, nil):
		cm.storedNothing()
	case lazy && (cm.owed.IsZero() || time.Since(cm.owed) < cm.lazyAfter):
		cm.syncMu.Lock()
		if cm.owed.IsZero() {
			cm.owed = time.Now()
		}
		cm.syncMu.Unlock()
	default:
		if err := cm.syncNow(); err != nil {
			for i := range errs {
				if errs[i] == nil {
					errs[i] = fmt.Errorf("sync: %w", err)
				}
			}
		}
	}
	for i, w := range batch {
		w.done(errs[i])
	}
}

// publishAll stores msgs with one publish each, all sent before the first
// answer is awaited, and returns the error of each. Those that fail for
// want of a server that answers are sent again, until commitRetryFor has
// passed. A message sent again after an answer that was lost is stored
// once all the same: every subject of the stream keeps its last message
// only, and a job's id is in its subjects.
func (cm *committer) publishAll(msgs []*nats.Msg) []error {
	errs := make([]error, len(msgs))
	left := make([]int, len(msgs)) // the indexes still to store
	for i := range left {
		left[i] = i
	}
	cm.retry(func() error {
		cm.gen++
		prefix := cm.inbox + "." + strconv.FormatUint(cm.gen, 10) + "."
		sent := 0
		for _, i := range left {
			m := msgs[i]
			m.Reply = prefix + strconv.Itoa(i)
			if errs[i] = cm.nc.PublishMsg(m); errs[i] == nil {
				errs[i] = nats.ErrTimeout // until answered
				sent++
			}
		}
		end := time.Now().Add(10 * time.Second)
		for sent > 0 {
			a, err := cm.acks.NextMsg(time.Until(end))
			if err != nil {
				break // the server does not answer: the rest time out
			}
			rest, ok := strings.CutPrefix(a.Subject, prefix)
			i, err := strconv.Atoi(rest)
			if !ok || err != nil || i < 0 || i >= len(msgs) {
				continue // the answer to an earlier try
			}
			errs[i] = ackError(a, false)
			sent--
		}
		left = slices.DeleteFunc(left, func(i int) bool { return !transient(errs[i]) })
		if len(left) > 0 {
			return errs[left[0]] // try those again
		}
		return nil
	})
	return errs
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
	var e *jetstream.APIError
	var netErr *net.OpError // the connection broke under the write (a server killed)
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.As(err, &netErr) || errors.As(err, &e) && e.ErrorCode == jsErrAtomicIncomplete
}

// atomic stores msgs as one atomic batch, all or none, trying again while
// the server does not answer. It may be called beside the committer's own
// commits.
func (cm *committer) atomic(msgs []*nats.Msg) error {
	id := nuid.Next()
	return cm.retry(func() error { return cm.publishBatch(id, msgs) })
}

// publishBatch stores a batch of messages atomically: all of them or none.
// The first message carries id as its message id, so a batch sent again
// after an answer that was lost is stored once. Each sending is a batch of
// its own to the server: one cut short by a server that went (its start
// sent to that server, its rest, held while the client reconnected, to the
// next) is sent again whole.
func (cm *committer) publishBatch(id string, batch []*nats.Msg) error {
	batchID := nuid.Next()
	for i, m := range batch {
		h := m.Header
		h.Set("Nats-Batch-Id", batchID)
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
	return fullError(ack.Error)
}

// ErrFull is returned, wrapped, for a write that the queue's server
// refused for want of storage: it has stored as much as it may (herd queue
// serve --max-store, or JetStream's share of the disk), or its disk is
// full. Finished jobs leave the queue when their records expire
// ([Config.Retention]); [Client.Purge] and [Client.Delete] make room at
// once.
var ErrFull = errors.New("queue: the server's storage is full")

// fullError returns err, wrapped in [ErrFull] if JetStream refused a write
// for want of storage.
func fullError(err error) error {
	var e *jetstream.APIError
	if !errors.As(err, &e) {
		return err
	}
	switch {
	case e.ErrorCode == jsErrInsufficientResources, e.ErrorCode == jsErrStorageResourcesExceeded, e.ErrorCode == jsErrAccountResourcesExceeded,
		e.ErrorCode == jsErrStreamStoreFailed && strings.Contains(e.Description, "no space left"):
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// JetStream's errors for a write refused for want of storage.
const (
	jsErrAccountResourcesExceeded = 10002 // the limit the server keeps below the disk's free space
	jsErrInsufficientResources    = 10023
	jsErrStorageResourcesExceeded = 10047
	jsErrStreamStoreFailed        = 10077
)

// jsErrAtomicDuplicate is JetStream's error for an atomic batch holding a
// message id seen before.
const jsErrAtomicDuplicate = 10201

// jsErrAtomicIncomplete is JetStream's error for an atomic batch that came
// without its start: its start went to a server that is gone.
const jsErrAtomicIncomplete = 10176
