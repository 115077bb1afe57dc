package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Repair puts back in their queues the jobs that damaged files left with
// a record and no message to run them: jobs that had started (running,
// retrying, or handed back) or were retried by hand, whose message was
// in a part of a file the server could not read, while their record, in
// a later part, was read. Their records hold all the job was enqueued
// with, so each goes back from it, attempts and errors kept, to run now.
// It returns the ids of the jobs it put back.
//
// A job that no worker had taken has no record, only its message; if that
// is lost, nothing of the job is left to rebuild it from. [Client.Lost]
// names such jobs among the ids it is given.
//
// A client with the embedded server, and [Serve], repair the queue when
// they start if the server found its files damaged or not closed cleanly;
// herd queue repair does it for a queue on any server. Repair reads every
// record: 100,000 take about a second.
func (c *Client) Repair(ctx context.Context) ([]string, error) {
	n, err := c.count(ctx, recRoot+".>")
	if err != nil || n == 0 {
		return nil, err
	}
	// An ordered consumer reads the records in the stream's order, far
	// faster than reads by subject, each of which makes the server count
	// the records after it.
	cons, err := c.js.OrderedConsumer(ctx, streamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{recRoot + ".>"}})
	if err != nil {
		return nil, fmt.Errorf("queue: repair: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return nil, fmt.Errorf("queue: repair: %w", err)
	}
	defer it.Stop()
	const batch = 256
	var back []string
	recs := make([]storedMsg, 0, batch)
	for pending := true; pending; {
		next, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := it.Next(jetstream.NextContext(next))
		cancel()
		if err != nil {
			return back, fmt.Errorf("queue: repair: reading the records: %w", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return back, fmt.Errorf("queue: repair: %w", err)
		}
		pending = meta.NumPending > 0
		// The record of a finished job expires: it has a time to live
		// (newRecordMsg), and need not be decoded.
		if m.Headers().Get("Nats-TTL") == "" {
			recs = append(recs, storedMsg{subject: m.Subject(), seq: meta.Sequence.Stream, data: m.Data()})
		}
		if len(recs) < batch && pending {
			continue
		}
		ids, err := c.putBack(ctx, recs)
		back = append(back, ids...)
		if err != nil {
			return back, fmt.Errorf("queue: repair: %w", err)
		}
		recs = recs[:0]
	}
	return back, nil
}

// putBack puts back the jobs of the records in recs that are not finished
// and have no message, and returns their ids.
func (c *Client) putBack(ctx context.Context, recs []storedMsg) ([]string, error) {
	var infos []*Info
	var seqs []uint64
	var subjects []string
	for _, r := range recs {
		info := new(Info)
		if json.Unmarshal(r.data, info) != nil || info.ID == "" || info.State.Finished() {
			continue
		}
		infos, seqs, subjects = append(infos, info), append(seqs, r.seq), append(subjects, jobSubject(info))
	}
	have, err := c.lasts(ctx, subjects, len(subjects))
	if err != nil {
		return nil, err
	}
	waiting := make(map[string]bool, len(have))
	for _, m := range have {
		waiting[m.subject] = true
	}
	var lost []*Info
	var msgs []*nats.Msg
	for i, info := range infos {
		if waiting[subjects[i]] {
			continue
		}
		info.State, info.RunAt, info.UpdatedAt = Queued, time.Time{}, time.Now()
		m, err := newJobMsg(info, false)
		if err != nil {
			return nil, err
		}
		// Stored only if the record is still the job's last message: a
		// job cancelled or purged meanwhile stays so.
		expectLast(m, info.ID, seqs[i])
		lost, msgs = append(lost, info), append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	errs, err := c.commit.store(ctx, msgs)
	if err != nil {
		return nil, err
	}
	var ids []string
	for i, err := range errs {
		switch {
		case err == nil:
			ids = append(ids, lost[i].ID)
		case !wrongLastSequence(err):
			return ids, fmt.Errorf("put back %s: %w", lost[i].ID, err)
		}
	}
	return ids, nil
}

// repairAtStart repairs the queue when its server found the files of the
// queue's stream damaged, or rebuilt them after a crash, and says what it
// did.
func (c *Client) repairAtStart(ctx context.Context) {
	start := time.Now()
	ids, err := c.Repair(ctx)
	switch {
	case err != nil:
		c.log.Error("queue: the server rebuilt the queue from its files; checking the jobs' records failed: call Client.Repair (herd queue repair)", "error", err)
	case len(ids) > 0:
		c.log.Error("queue: the queue's files were damaged: jobs that had started lost their messages; put them back in their queues from their records",
			"jobs", len(ids), "ids", abbreviate(ids, 20))
	default:
		c.log.Info("queue: the server rebuilt the queue from its files; every record of a job not finished has its job", "took", time.Since(start).Round(time.Millisecond))
	}
}

// abbreviate returns the first n of ids, and how many more there are.
func abbreviate(ids []string, n int) string {
	if len(ids) <= n {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%v and %d more", ids[:n], len(ids)-n)
}
