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
