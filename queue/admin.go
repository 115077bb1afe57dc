package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Watch sends the records of the jobs whose ids match pattern, where * stands
// for one dot-separated part of an id and > for the rest ("run1.*" matches
// "run1.7"): first each one's current record, then every change, until ctx is
// done. A big result kept apart is read back for finished jobs only. After
// the client reconnects to another server, the watch starts over there and
// sends each job's current record again: callers take records as states,
// not as events.
//
// The watcher's channel is closed when ctx is done, the watcher is
// stopped, or the watch fails. Stop it once done with it.
func (c *Client) Watch(ctx context.Context, pattern string) (*Watcher[Info], error) {
	filters := []string{jobRoot + ".*.*." + pattern, recRoot + ".*.*." + pattern}
	// A job's record replaces its message once a worker has it: while the
	// watch catches up, a job's message is held back until it is clear
	// that no record of the job follows, so that only current records are
	// sent.
	keyOf := func(subject string) (string, bool) { return idOf(subject), strings.HasPrefix(subject, jobRoot+".") }
	return watch(ctx, c, streamName, filters, keyOf, func(_ string, record []byte) (*Info, error) {
		info := new(Info)
		if err := json.Unmarshal(record, info); err != nil {
			c.log.Warn("queue: watch: bad record", "error", err)
			return nil, nil
		}
		if info.ResultApart && info.State.Finished() {
			var err error
			if info.Result, err = c.results.GetBytes(ctx, info.ID); err != nil {
				return nil, fmt.Errorf("queue: job %s: result: %w", info.ID, err)
			}
		}
		return info, nil
	})
}

// A Watcher sends what it watches on a channel: the records of jobs
// ([Client.Watch]) or shared values ([Client.WatchMeta]).
type Watcher[T any] struct {
	updates <-chan *T
	stop    context.CancelFunc
	wait    func() error
}

// Updates is the channel the watcher sends on. It is closed when the watch
// ends.
func (w *Watcher[T]) Updates() <-chan *T { return w.updates }

// Stop ends the watch, waits until it has ended, and says why it did: nil
// when Stop or the watch's context ended it.
func (w *Watcher[T]) Stop() error {
	w.stop()
	return w.wait()
}

// watch follows the subjects of a stream that match filters: it sends what
// decode makes of the latest message of each, then of each new message,
// until ctx is done or the watcher is stopped. Deleted keys of a key-value bucket are skipped, as are
// values decode makes nil of; an error from decode ends the watch.
//
// keyOf, if set, names the thing each subject is about, and whether its
// message is to be held back while the watch catches up: a held message is
// dropped if a later one about the same thing comes before the watch has
// caught up.
//
// It reads the bucket's stream through an ordered consumer that expects a
// heartbeat every second, so that a watch whose server went away (a node
// of a cluster lost) starts again on another within seconds. When the
// client reconnects to another server, the watch starts over on it, and
// sends the latest value of each key again.
func watch[T any](ctx context.Context, c *Client, stream string, filters []string, keyOf func(subject string) (key string, hold bool), decode func(subject string, value []byte) (*T, error)) (*Watcher[T], error) {
	ctx, stop := context.WithCancel(ctx)
	start := func() (jetstream.MessagesContext, error) {
		cons, err := c.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: filters,
			DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
		})
		if err != nil {
			return nil, err
		}
		return cons.Messages(jetstream.PullExpiry(4*time.Second), jetstream.PullHeartbeat(time.Second))
	}
	reconnected := c.reconnectSignal()
	msgs, err := start()
	if err != nil {
		stop()
		return nil, fmt.Errorf("queue: watch %s: %w", filters[0], err)
	}
	out := make(chan *T, 64)
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(out)
		for {
			restart, err := follow(ctx, msgs, reconnected, keyOf, decode, out)
			if !restart {
				werr = err
				return
			}
			// Start over on the server the client is connected to now,
			// trying until it answers.
			for {
				reconnected = c.reconnectSignal()
				if msgs, err = start(); err == nil {
					break
				}
				c.log.Debug("queue: watch: starting again", "filter", filters[0], "error", err)
				select {
				case <-time.After(500 * time.Millisecond):
				case <-ctx.Done():
					return
				}
			}
		}
	})
	return &Watcher[T]{updates: out, stop: stop, wait: func() error { wg.Wait(); return werr }}, nil
}

// stopAfter is how long a watch ending waits for its consumer's Next to
// return before it stops the consumer under it.
const stopAfter = 2 * time.Second

// follow sends what decode makes of each message to out until ctx is
// done (nil), decode or the consumer fails (the error), or the client
// reconnects (restart).
func follow[T any](ctx context.Context, msgs jetstream.MessagesContext, reconnected <-chan struct{}, keyOf func(string) (string, bool), decode func(subject string, value []byte) (*T, error), out chan<- *T) (restart bool, err error) {
	var wg sync.WaitGroup
	defer wg.Wait()
	ended := make(chan struct{})
	defer close(ended)
	var stopped atomic.Bool // by a reconnect
	// Next below ends when its context does, and the consumer is stopped
	// then, on this goroutine. Stopping it while Next runs can race with
	// the consumer resetting itself after a lost heartbeat, which then
	// starts a new subscription that nothing stops. Only a reset that takes
	// longer than stopAfter (a server that does not answer) is stopped
	// while it runs, since that is the only way to end it.
	next, endNext := context.WithCancel(ctx)
	defer endNext()
	defer msgs.Stop()
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-reconnected:
			stopped.Store(true)
		case <-ended:
			return
		}
		endNext() // ends Next below
		select {
		case <-ended:
		case <-time.After(stopAfter):
			msgs.Stop()
		}
	})
	send := func(v *T) bool {
		select {
		case out <- v:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// Messages held back while catching up, by key, in order.
	held := map[string]*T{}
	var heldKeys []string
	live := keyOf == nil
	for {
		msg, err := msgs.Next(jetstream.NextContext(next))
		if err != nil {
			switch {
			case stopped.Load():
				return true, nil
			case ctx.Err() != nil:
				return false, nil
			}
			return false, fmt.Errorf("queue: watch: %w", err)
		}
		if op := msg.Headers().Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			continue
		}
		v, err := decode(msg.Subject(), msg.Data())
		if err != nil {
			return false, err
		}
		if v != nil && live && !send(v) {
			return false, nil
		}
		if live {
			continue
		}
		if key, hold := keyOf(msg.Subject()); v != nil && hold {
			if _, ok := held[key]; !ok {
				heldKeys = append(heldKeys, key)
			}
			held[key] = v
		} else {
			delete(held, key)
			if v != nil && !send(v) {
				return false, nil
			}
		}
		if meta, err := msg.Metadata(); err == nil && meta.NumPending == 0 {
			// Caught up: what is still held is current.
			for _, k := range heldKeys {
				if v, ok := held[k]; ok && !send(v) {
					return false, nil
				}
			}
			held, heldKeys, live = nil, nil, true
		}
	}
}

// QueueStats are the figures of one queue at one priority.
type QueueStats struct {
	Queue    string   `json:"queue"`
	Priority Priority `json:"priority"`
	// Waiting jobs have not been taken by a worker yet (this counts
	// scheduled ones too).
	Waiting uint64 `json:"waiting"`
	// InFlight jobs have been taken and are running, or waiting for their
	// next attempt.
	InFlight int `json:"in_flight"`
	// Delivered counts the jobs handed to workers so far, Redelivered those
	// handed out again (after a failure or a lost worker) and not yet
	// settled.
	Delivered   uint64 `json:"delivered"`
	Redelivered int    `json:"redelivered"`
	// IdleFetches is how many fetches from workers are waiting for a job: idle
	// capacity. Zero while every worker is busy, or when there are none.
	IdleFetches int `json:"idle_fetches"`
	// Paused is set while the queue is paused (see [Client.Pause]).
	Paused bool `json:"paused,omitempty"`
	// Oldest is when the oldest job not yet handed to a worker could
	// first run; zero when none waits.
	Oldest time.Time `json:"oldest,omitzero"`
}

// Stats are the figures of the whole queue.
type Stats struct {
	Queues []QueueStats `json:"queues"`
	Dead   uint64       `json:"dead"`
	// DeadIn counts the dead jobs of each named queue that has some.
	DeadIn  map[string]uint64 `json:"dead_in,omitempty"`
	Records uint64            `json:"records"` // jobs the queue has a record of, finished ones included
}

// Stats returns the figures of every named queue that has had jobs or
// workers. They come from the queue's own counts, not from reading jobs, so
// they take as long for a million jobs as for none.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	st := &Stats{}
	var waiting uint64
	// Each queue has a consumer at each priority it has had jobs at.
	names := c.stream.ListConsumers(ctx)
	for ci := range names.Info() {
		parts := strings.Split(ci.Config.FilterSubject, ".")
		if len(parts) != 5 || parts[0]+"."+parts[1] != jobRoot {
			continue
		}
		qs := QueueStats{
			Queue:       parts[2],
			Priority:    parsePriority(parts[3]),
			Waiting:     ci.NumPending,
			InFlight:    ci.NumAckPending,
			Delivered:   ci.Delivered.Consumer,
			Redelivered: ci.NumRedelivered,
			IdleFetches: ci.NumWaiting,
			Paused:      ci.Paused,
		}
		if qs.Waiting > 0 {
			qs.Oldest = c.oldest(ctx, ci.Delivered.Stream+1, strings.TrimSuffix(ci.Config.FilterSubject, ">"))
		}
		st.Queues = append(st.Queues, qs)
		waiting += ci.NumPending
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("queue: stats: %w", err)
	}
	slices.SortFunc(st.Queues, func(a, b QueueStats) int {
		if c := strings.Compare(a.Queue, b.Queue); c != 0 {
			return c
		}
		return int(b.Priority - a.Priority)
	})
	counted := map[string]bool{}
	for _, qs := range st.Queues {
		if counted[qs.Queue] {
			continue
		}
		counted[qs.Queue] = true
		n, err := c.count(ctx, deadFilter(qs.Queue))
		if err != nil {
			return nil, fmt.Errorf("queue: stats: %w", err)
		}
		if n > 0 {
			if st.DeadIn == nil {
				st.DeadIn = map[string]uint64{}
			}
			st.DeadIn[qs.Queue] = n
		}
	}
	var err error
	if st.Dead, err = c.count(ctx, deadFilter("")); err != nil {
		return nil, fmt.Errorf("queue: stats: %w", err)
	}
	// A job has a record once a worker has had it; before, its message
	// is its record.
	recs, err := c.count(ctx, recRoot+".>")
	if err != nil {
		return nil, fmt.Errorf("queue: stats: %w", err)
	}
	st.Records = recs + waiting
	return st, nil
}

// oldest returns when the first job from stream sequence seq on whose
// subject starts with prefix could first run: the job that has waited
// longest in its queue, when seq follows the last one handed out. It
// reads the 16 messages from seq on (the job is most often the first):
// a read by a subject with wildcards, or of a batch, would make the
// server count what follows, which takes long when millions wait. Zero
// if none is found there.
func (c *Client) oldest(ctx context.Context, seq uint64, prefix string) time.Time {
	msgs, err := c.readRange(ctx, seq, seq+15)
	if err != nil {
		return time.Time{}
	}
	for _, m := range msgs {
		info := new(Info)
		if strings.HasPrefix(m.subject, prefix) && json.Unmarshal(m.data, info) == nil {
			if info.RunAt.After(info.EnqueuedAt) {
				return info.RunAt
			}
			return info.EnqueuedAt
		}
	}
	return time.Time{}
}

func parsePriority(s string) Priority {
	switch s {
	case "high":
		return High
	case "low":
		return Low
	}
	return Default
}

// List returns up to limit jobs still in the queue (waiting, running or
// waiting to retry), oldest first; queue "" means every named queue.
func (c *Client) List(ctx context.Context, queue string, limit int) ([]*Info, error) {
	var infos []*Info
	err := c.each(ctx, queue, func(info *Info) bool {
		if info.ResultApart {
			info, _ = c.Info(ctx, info.ID) // with its result
		}
		if info != nil {
			infos = append(infos, info)
		}
		return len(infos) < limit
	})
	return infos, err
}

// each calls fn with the current record of every job still in the queue
// (not finished), oldest first, until fn returns false. It reads them a
// page at a time ([Client.Jobs]).
func (c *Client) each(ctx context.Context, queue string, fn func(*Info) bool) error {
	q := JobQuery{Queue: queue, Limit: 256}
	for {
		page, err := c.Jobs(ctx, q)
		if err != nil {
			return err
		}
		for _, info := range page.Jobs {
			if !fn(info) {
				return nil
			}
		}
		if page.Next == 0 {
			return nil
		}
		q.After = page.Next
	}
}

// Purge removes every job waiting in a queue ("" means every named queue),
// with its record, and returns how many it removed. Jobs already running
// finish.
func (c *Client) Purge(ctx context.Context, queue string) (int, error) {
	var left []*Info
	if err := c.each(ctx, queue, func(info *Info) bool {
		left = append(left, info)
		return true
	}); err != nil {
		return 0, err
	}
	if err := c.stream.Purge(ctx, jetstream.WithPurgeSubject(queueFilter(queue))); err != nil {
		return 0, fmt.Errorf("queue: purge: %w", err)
	}
	for _, info := range left {
		if info.State == Queued || info.State == Scheduled {
			continue // its message was its record
		}
		if err := c.stream.Purge(ctx, jetstream.WithPurgeSubject(recSubject(info))); err != nil {
			return 0, fmt.Errorf("queue: purge: record of %s: %w", info.ID, err)
		}
	}
	if err := c.durable(); err != nil {
		return 0, fmt.Errorf("queue: purge: %w", err)
	}
	return len(left), nil
}

// Lost returns those of ids of which the queue keeps nothing: no job
// waiting to run, no record. A job that was never enqueued, or was
// deleted, is lost; so is one whose data a damaged store lost (its
// server's log says so when it starts). A job that has a record is not
// named, even if its message was lost: [Client.Repair] puts it back.
//
// On a cluster the answer may come from a server that has not yet stored
// the latest writes: a job enqueued a moment ago may seem lost. Ask again
// after a while before acting on it.
func (c *Client) Lost(ctx context.Context, ids []string) ([]string, error) {
	var lost []string
	for chunk := range slices.Chunk(ids, 256) {
		subjects := make([]string, len(chunk))
		for i, id := range chunk {
			if !validID(id) {
				return nil, fmt.Errorf("queue: lost: %w: %q", ErrNotFound, id)
			}
			subjects[i] = idSubject(id)
		}
		// Each id has two subjects: its job's and its record's.
		msgs, err := c.lasts(ctx, subjects, 2*len(subjects))
		if err != nil {
			return nil, fmt.Errorf("queue: lost: %w", err)
		}
		kept := map[string]bool{}
		for _, m := range msgs {
			kept[idOf(m.subject)] = true
		}
		for _, id := range chunk {
			if !kept[id] {
				lost = append(lost, id)
			}
		}
	}
	return lost, nil
}
