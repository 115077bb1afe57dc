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
// The channel is closed when ctx is done or the watch fails. The function
// returned with it waits for the watch to end and says why: nil when ctx
// ended it. Call it once done with the channel.
func (c *Client) Watch(ctx context.Context, pattern string) (<-chan *Info, func() error, error) {
	return watch(ctx, c, stateBucket, pattern, func(_ string, record []byte) (*Info, error) {
		info := new(Info)
		if err := json.Unmarshal(record, info); err != nil {
			c.log.Warn("queue: watch: bad record", "error", err)
			return nil, nil
		}
		if info.ResultApart && (info.State == Succeeded || info.State == Dead) {
			var err error
			if info.Result, err = c.results.GetBytes(ctx, info.ID); err != nil {
				return nil, fmt.Errorf("queue: job %s: result: %w", info.ID, err)
			}
		}
		return info, nil
	})
}

// watch follows the keys of a bucket that match pattern: it sends what
// decode makes of the latest value of each, then of each new value, until
// ctx is done. Deleted keys are skipped, as are values decode makes nil
// of; an error from decode ends the watch.
//
// It reads the bucket's stream through an ordered consumer that expects a
// heartbeat every second, so that a watch whose server went away (a node
// of a cluster lost) starts again on another within seconds. When the
// client reconnects to another server, the watch starts over on it, and
// sends the latest value of each key again.
func watch[T any](ctx context.Context, c *Client, bucket, pattern string, decode func(key string, value []byte) (*T, error)) (<-chan *T, func() error, error) {
	prefix := "$KV." + bucket + "."
	start := func() (jetstream.MessagesContext, error) {
		cons, err := c.js.OrderedConsumer(ctx, "KV_"+bucket, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{prefix + pattern},
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
		return nil, nil, fmt.Errorf("queue: watch %s: %w", pattern, err)
	}
	out := make(chan *T, 64)
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(out)
		for {
			restart, err := follow(ctx, msgs, reconnected, prefix, decode, out)
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
				c.log.Debug("queue: watch: starting again", "pattern", pattern, "error", err)
				select {
				case <-time.After(500 * time.Millisecond):
				case <-ctx.Done():
					return
				}
			}
		}
	})
	return out, func() error { wg.Wait(); return werr }, nil
}

// follow sends what decode makes of each message to out until ctx is
// done (nil), decode or the consumer fails (the error), or the client
// reconnects (restart).
func follow[T any](ctx context.Context, msgs jetstream.MessagesContext, reconnected <-chan struct{}, prefix string, decode func(key string, value []byte) (*T, error), out chan<- *T) (restart bool, err error) {
	var wg sync.WaitGroup
	defer wg.Wait()
	ended := make(chan struct{})
	defer close(ended)
	var stopped atomic.Bool // by a reconnect
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-reconnected:
			stopped.Store(true)
		case <-ended:
			return
		}
		msgs.Stop() // ends Next below
	})
	for {
		msg, err := msgs.Next()
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
		v, err := decode(strings.TrimPrefix(msg.Subject(), prefix), msg.Data())
		if err != nil {
			return false, err
		}
		if v == nil {
			continue
		}
		select {
		case out <- v:
		case <-ctx.Done():
			return false, nil
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
}

// Stats are the figures of the whole queue.
type Stats struct {
	Queues  []QueueStats `json:"queues"`
	Dead    uint64       `json:"dead"`
	Records uint64       `json:"records"` // jobs the queue has a record of, finished ones included
}

// Stats returns the figures of every named queue that has had jobs or
// workers.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	info, err := c.jobs.Info(ctx, jetstream.WithSubjectFilter(jobsSubject+".>"))
	if err != nil {
		return nil, fmt.Errorf("queue: stats: %w", err)
	}
	byName := map[string]*QueueStats{}
	get := func(queue, prio string) *QueueStats {
		key := queue + "." + prio
		if q := byName[key]; q != nil {
			return q
		}
		q := &QueueStats{Queue: queue, Priority: parsePriority(prio)}
		byName[key] = q
		return q
	}
	for subj, n := range info.State.Subjects {
		parts := strings.Split(subj, ".")
		if len(parts) == 4 {
			get(parts[2], parts[3]).Waiting += n
		}
	}
	// A queue served by workers has consumers, which know better.
	names := c.jobs.ListConsumers(ctx)
	for ci := range names.Info() {
		parts := strings.Split(ci.Config.FilterSubject, ".")
		if len(parts) != 4 {
			continue
		}
		q := get(parts[2], parts[3])
		q.Waiting = ci.NumPending
		q.InFlight = ci.NumAckPending
		q.Delivered = ci.Delivered.Consumer
		q.Redelivered = ci.NumRedelivered
		q.IdleFetches = ci.NumWaiting
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("queue: stats: %w", err)
	}
	st := &Stats{}
	for _, q := range byName {
		st.Queues = append(st.Queues, *q)
	}
	slices.SortFunc(st.Queues, func(a, b QueueStats) int {
		if c := strings.Compare(a.Queue, b.Queue); c != 0 {
			return c
		}
		return int(b.Priority - a.Priority)
	})
	for bucket, n := range map[jetstream.KeyValue]*uint64{c.dead: &st.Dead, c.state: &st.Records} {
		s, err := bucket.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("queue: stats: %w", err)
		}
		*n = s.Values()
	}
	return st, nil
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
	err := c.each(ctx, queue, func(id string, msg []byte) bool {
		info, err := c.Info(ctx, id)
		if err != nil { // no record (it expired): the message is the record
			if info, err = c.decode(ctx, msg); err != nil {
				return true
			}
		}
		infos = append(infos, info)
		return len(infos) < limit
	})
	return infos, err
}

// each calls fn with the id and message of every job in the queue, oldest
// first, until fn returns false.
func (c *Client) each(ctx context.Context, queue string, fn func(id string, msg []byte) bool) error {
	filter := jobsSubject + ".>"
	if queue != "" {
		filter = jobsSubject + "." + queue + ".>"
	}
	for seq := uint64(1); ; seq++ {
		m, err := c.jobs.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("queue: list: %w", err)
		}
		seq = m.Sequence
		var head struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(m.Data, &head) != nil || head.ID == "" {
			continue
		}
		if !fn(head.ID, m.Data) {
			return nil
		}
	}
}

// Purge removes every job waiting in a queue ("" means every named queue),
// with its record, and returns how many it removed. Jobs already running
// finish.
func (c *Client) Purge(ctx context.Context, queue string) (int, error) {
	var ids []string
	if err := c.each(ctx, queue, func(id string, _ []byte) bool {
		ids = append(ids, id)
		return true
	}); err != nil {
		return 0, err
	}
	filter := jobsSubject + ".>"
	if queue != "" {
		filter = jobsSubject + "." + queue + ".>"
	}
	if err := c.jobs.Purge(ctx, jetstream.WithPurgeSubject(filter)); err != nil {
		return 0, fmt.Errorf("queue: purge: %w", err)
	}
	for _, id := range ids {
		info, rev, err := c.info(ctx, id)
		if err != nil || info.State == Succeeded || info.State == Dead || info.State == Running {
			continue // gone, or ran meanwhile
		}
		if err := c.state.Delete(ctx, id, jetstream.LastRevision(rev)); err != nil && !isConflict(err) {
			return 0, fmt.Errorf("queue: purge: record of %s: %w", id, err)
		}
	}
	return len(ids), nil
}

// isConflict reports whether err is a write refused because the record
// changed meanwhile.
func isConflict(err error) bool {
	return wrongLastSequence(err) || errors.Is(err, jetstream.ErrKeyExists)
}
