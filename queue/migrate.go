package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The streams of layout 1, written by herd before group commits: a
// work-queue stream of jobs, and a key-value bucket of their records.
const (
	layout1Jobs  = "HERD_JOBS"
	layout1State = "KV_HERD_STATE"
)

// migrate moves a queue left in layout 1 to this layout: each waiting
// job, with its record if it has one, and each record of a finished job.
// A record whose job message was lost is put back in the queue. Then it
// removes the old streams. A job is stored once by its id, so a migration
// cut short is finished by the next Open. Workers of the earlier herd must
// be stopped first: they know only the old streams.
func (c *Client) migrate(ctx context.Context) error {
	jobs, err := c.js.Stream(ctx, layout1Jobs)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", layout1Jobs, err)
	}
	c.log.Warn("queue: moving the jobs of an earlier herd to this herd's layout")
	records := map[string]*Info{}
	var order []string // of the records, oldest first
	state, err := c.js.Stream(ctx, layout1State)
	if err == nil {
		err = readStream(ctx, state, func(m *jetstream.RawStreamMsg) {
			if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
				return
			}
			info := new(Info)
			if json.Unmarshal(m.Data, info) == nil && info.ID != "" {
				if records[info.ID] == nil {
					order = append(order, info.ID)
				}
				records[info.ID] = info
			}
		})
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("migrate: %w", err)
	}
	var msgs []*nats.Msg
	var unique []bool
	var queues []*Info // a job of each queue and priority, for its consumer
	add := func(info *Info, job bool) {
		var m *nats.Msg
		var err error
		if job {
			m, err = newJobMsg(info, true)
			queues = append(queues, info)
		} else {
			m, err = c.newRecordMsg(info)
		}
		if err == nil {
			msgs, unique = append(msgs, m), append(unique, job)
		}
	}
	// Waiting jobs, in their order.
	if err := readStream(ctx, jobs, func(m *jetstream.RawStreamMsg) {
		info := new(Info)
		if json.Unmarshal(m.Data, info) != nil || info.ID == "" {
			return
		}
		if rec := records[info.ID]; rec != nil {
			info = rec
		}
		if info.State == Succeeded || info.State == Dead {
			return // the record follows
		}
		if info.State == Running {
			info.State = Queued
		}
		delete(records, info.ID)
		add(info, true)
	}); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// Records without a waiting job: finished jobs, and jobs whose message
	// was lost, which go back in the queue.
	lost := 0
	for _, id := range order {
		info := records[id]
		if info == nil {
			continue
		}
		if info.State == Succeeded || info.State == Dead {
			add(info, false)
			continue
		}
		lost++
		info.State = Queued
		add(info, true)
	}
	for _, info := range queues {
		if err := c.ensureConsumer(ctx, info.Queue, info.Priority); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	errs, err := c.commit.store(ctx, msgs)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for i, err := range errs {
		if err != nil && !(unique[i] && wrongLastSequence(err)) {
			return fmt.Errorf("migrate: %s: %w", msgs[i].Subject, err)
		}
	}
	for _, name := range []string{layout1Jobs, layout1State} {
		if err := c.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("migrate: removing %s: %w", name, err)
		}
	}
	c.log.Warn("queue: moved the jobs of an earlier herd", "jobs and records", len(msgs), "put back in the queue", lost)
	return nil
}

// readStream calls fn with each message of a stream, oldest first.
func readStream(ctx context.Context, s jetstream.Stream, fn func(*jetstream.RawStreamMsg)) error {
	for seq := uint64(1); ; seq++ {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		seq = m.Sequence
		fn(m)
	}
}

// layout2Dead is the bucket in which layout 2 kept the ids of dead jobs.
const layout2Dead = "HERD_DEAD"

// migrateDead moves a queue of layout 2 to this one: each job listed in
// its dead bucket gets its mark in the stream (the stream takes them
// already), then the stream says it has this layout, and the bucket goes.
// A move cut short is done again by the next Open: a mark is stored once
// by its subject.
func (c *Client) migrateDead(ctx context.Context) error {
	kv, err := c.js.KeyValue(ctx, layout2Dead)
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("migrate: %s: %w", layout2Dead, err)
	}
	moved := 0
	if kv != nil {
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %s: %w", layout2Dead, err)
		}
		for id := range keys.Keys() {
			info, err := c.Info(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				keys.Stop()
				return fmt.Errorf("migrate: %w", err)
			}
			if info.State != Dead {
				continue
			}
			if _, err := c.js.PublishMsg(ctx, c.newDeadMsg(info)); err != nil {
				keys.Stop()
				return fmt.Errorf("migrate: marking %s dead: %w", id, err)
			}
			moved++
		}
	}
	cfg := c.stream.CachedInfo().Config
	cfg.Metadata[layoutKey] = layoutVersion
	s, err := c.js.UpdateStream(ctx, cfg)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	c.stream, c.upgrade = s, false
	if kv != nil {
		if err := c.js.DeleteKeyValue(ctx, layout2Dead); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Errorf("migrate: removing %s: %w", layout2Dead, err)
		}
	}
	c.log.Info("queue: moved to layout "+layoutVersion, "dead jobs", moved)
	return c.durable()
}
