package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

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

// Settled is how many of the queue's jobs were handed to workers and are
// no longer in flight: its rate over time is the queue's throughput.
func (q QueueStats) Settled() uint64 {
	return q.Delivered - min(uint64(max(q.InFlight, 0)), q.Delivered)
}

// Stats are the figures of the whole queue.
type Stats struct {
	Queues []QueueStats `json:"queues"`
	Dead   uint64       `json:"dead"`
	// DeadIn counts the dead jobs of each named queue that has some.
	DeadIn map[string]uint64 `json:"dead_in,omitempty"`
	// Pending jobs wait for their parents (see [Options.After]); they
	// are not in Waiting until their parents have succeeded. PendingIn
	// counts those of each named queue that has some.
	Pending   uint64            `json:"pending"`
	PendingIn map[string]uint64 `json:"pending_in,omitempty"`
	Records   uint64            `json:"records"` // jobs the queue has a record of, finished ones included
	// Limits are those of each limited queue ([Client.SetLimits]).
	Limits []QueueLimits `json:"limits,omitempty"`
}

// QueueLimits are a queue's limits and what is held under them.
type QueueLimits struct {
	Queue string `json:"queue"`
	Limits
	// Running counts the slots of Concurrency held now: the jobs of the
	// queue running across every worker (0 without a Concurrency limit).
	Running int `json:"running"`
	// Held counts the jobs workers have taken and hold until a slot
	// frees, as their last heartbeat said. The queue's other jobs not
	// started wait in the queue (QueueStats.Waiting).
	Held int `json:"held"`
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
			qs.Oldest = c.oldest(ctx, ci.Delivered.Stream+1, ci.Config.FilterSubject)
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
		for _, k := range []struct {
			filter string
			in     *map[string]uint64
		}{{deadFilter(qs.Queue), &st.DeadIn}, {pendingFilter(qs.Queue), &st.PendingIn}} {
			n, err := c.count(ctx, k.filter)
			if err != nil {
				return nil, fmt.Errorf("queue: stats: %w", err)
			}
			if n > 0 {
				if *k.in == nil {
					*k.in = map[string]uint64{}
				}
				(*k.in)[qs.Queue] = n
			}
		}
	}
	limits, err := c.Limits(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: stats: %w", err)
	}
	held := map[string]int{}
	if len(limits) > 0 {
		workers, err := c.Workers(ctx)
		if err != nil {
			return nil, fmt.Errorf("queue: stats: %w", err)
		}
		for _, w := range workers {
			for _, j := range w.Held {
				held[j.Queue]++
			}
		}
	}
	for _, q := range slices.Sorted(maps.Keys(limits)) {
		ql := QueueLimits{Queue: q, Limits: limits[q], Held: held[q]}
		if ql.Concurrency > 0 {
			if ql.Running, err = c.heldSlots(ctx, q); err != nil {
				return nil, fmt.Errorf("queue: stats: %w", err)
			}
		}
		st.Limits = append(st.Limits, ql)
	}
	if st.Dead, err = c.count(ctx, deadFilter("")); err != nil {
		return nil, fmt.Errorf("queue: stats: %w", err)
	}
	if st.Pending, err = c.count(ctx, pendingFilter("")); err != nil {
		return nil, fmt.Errorf("queue: stats: %w", err)
	}
	// A job has a record once a worker has had it; before, its message
	// is its record.
	recs, err := c.count(ctx, recRoot+".>")
	if err != nil {
		return nil, fmt.Errorf("queue: stats: %w", err)
	}
	st.Records = recs + waiting + st.Pending
	return st, nil
}

// oldest returns when the first job from stream sequence seq on whose
// subject matches filter could first run: the job that has waited longest
// in its queue, when seq follows the last one handed out. It reads the 16
// messages from seq on first (the job is most often the first of them): a
// read by a subject with wildcards makes the server look through what
// follows, which takes long when millions wait. Only when the job is not
// among them (jobs of other queues come first, or those from seq on were
// removed) does it ask for the next message on filter. Zero if no job
// waits.
func (c *Client) oldest(ctx context.Context, seq uint64, filter string) time.Time {
	prefix := strings.TrimSuffix(filter, ">")
	msgs, err := c.readRange(ctx, seq, seq+15)
	if err != nil {
		return time.Time{}
	}
	if !slices.ContainsFunc(msgs, func(m storedMsg) bool { return strings.HasPrefix(m.subject, prefix) }) {
		if msgs, err = c.directGet(ctx, map[string]any{"seq": seq, "next_by_subj": filter}, 1); err != nil {
			return time.Time{}
		}
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
