package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Priority orders the jobs of a queue: a worker takes high ones first.
type Priority int

// The priorities.
const (
	Low     Priority = -1
	Default Priority = 0
	High    Priority = 1
)

func (p Priority) subject() string {
	switch {
	case p > 0:
		return "high"
	case p < 0:
		return "low"
	}
	return "default"
}

// Options are the optional settings of a job. The zero value is a job with
// a fresh id on the default queue at default priority, to run now, at most
// 25 times, with no time limit.
type Options struct {
	ID          string        // unique id: a job enqueued twice with the same id runs once; empty means a fresh one
	Queue       string        // named queue; empty means "default"
	Priority    Priority      // High, Default or Low
	RunAt       time.Time     // not before this time; zero means now
	Delay       time.Duration // not before this long from now
	MaxAttempts int           // attempts before the job is dead; zero means 25
	Timeout     time.Duration // each attempt's limit; zero means none
}

// State is where a job is in its life.
type State string

// The states of a job.
const (
	Queued    State = "queued"    // waiting for a worker
	Scheduled State = "scheduled" // waiting for its time
	Running   State = "running"   // a worker has been running it for 50ms or more
	Retrying  State = "retrying"  // failed, waiting for its next attempt
	Succeeded State = "succeeded" // done
	Dead      State = "dead"      // failed its last attempt, or failed for good
)

// Info is what the queue knows of a job.
type Info struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Queue       string    `json:"queue"`
	Priority    Priority  `json:"priority"`
	Payload     []byte    `json:"payload,omitempty"`
	State       State     `json:"state"`
	Attempts    int       `json:"attempts"`
	MaxAttempts int       `json:"max_attempts"`
	Timeout     Duration  `json:"timeout,omitempty"`
	RunAt       time.Time `json:"run_at,omitzero"`
	Errors      []string  `json:"errors,omitempty"` // one per failed attempt, oldest first
	Result      []byte    `json:"result,omitempty"`
	EnqueuedAt  time.Time `json:"enqueued_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Duration is a time.Duration that encodes in JSON as a string like "1m30s".
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// ErrNotFound is returned for a job id the queue does not know.
var ErrNotFound = errors.New("queue: no such job")

// NewJob is one job for [Client.EnqueueBatch].
type NewJob struct {
	Kind    string
	Payload []byte
	Options Options
}

// Enqueue adds a job of the given kind with a raw payload, and returns its
// id once the queue has stored it. With an [Options.ID] that the queue has
// seen before, it stores nothing and returns the id.
func (c *Client) Enqueue(ctx context.Context, kind string, payload []byte, opts Options) (string, error) {
	ids, err := c.EnqueueBatch(ctx, []NewJob{{Kind: kind, Payload: payload, Options: opts}})
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// Enqueue adds a job whose payload is v encoded as JSON; see
// [Client.Enqueue]. A handler reads it back with [Decode].
func Enqueue[T any](ctx context.Context, c *Client, kind string, v T, opts Options) (string, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("queue: enqueue %s: payload: %w", kind, err)
	}
	return c.Enqueue(ctx, kind, payload, opts)
}

// EnqueueBatch adds jobs, publishing them together, and returns their ids
// in order once the queue has stored every one. If one fails, it returns
// the error; the jobs that were stored will run, and enqueueing them again
// with the same ids stores nothing twice.
func (c *Client) EnqueueBatch(ctx context.Context, jobs []NewJob) ([]string, error) {
	now := time.Now()
	infos := make([]*Info, len(jobs))
	for i, j := range jobs {
		info, err := newInfo(j, now)
		if err != nil {
			return nil, err
		}
		infos[i] = info
	}
	// Each job is a state record and a message in the stream, both
	// published without waiting, so that a batch costs about one round
	// trip. A job with an id of the caller's gets its record created
	// first, and waited for: an id seen before fails there.
	type pending struct {
		info   *Info
		record jetstream.PubAckFuture // nil when created synchronously
		job    jetstream.PubAckFuture
	}
	sent := make([]pending, 0, len(infos))
	var errs []error
	for i, info := range infos {
		data, _ := json.Marshal(info)
		p := pending{info: info}
		if jobs[i].Options.ID != "" {
			if _, err := c.state.Create(ctx, info.ID, data); err != nil {
				if errors.Is(err, jetstream.ErrKeyExists) {
					sent = append(sent, p) // enqueued before: runs once
					continue
				}
				errs = append(errs, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err))
				break
			}
		} else {
			f, err := c.js.PublishAsync(recordSubject(info.ID), data)
			if err != nil {
				errs = append(errs, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err))
				break
			}
			p.record = f
		}
		f, err := c.js.PublishAsync(subject(info), data, jetstream.WithMsgID(info.ID))
		if err != nil {
			errs = append(errs, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err))
			break
		}
		p.job = f
		sent = append(sent, p)
	}
	ids := make([]string, 0, len(sent))
	for _, p := range sent {
		for _, f := range []jetstream.PubAckFuture{p.record, p.job} {
			if f == nil {
				continue
			}
			select {
			case <-f.Ok():
			case err := <-f.Err():
				errs = append(errs, fmt.Errorf("queue: enqueue %s %s: %w", p.info.Kind, p.info.ID, err))
			case <-ctx.Done():
				return ids, fmt.Errorf("queue: enqueue: %w", ctx.Err())
			}
		}
		ids = append(ids, p.info.ID)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ids, nil
}

// recordSubject is where a job's state record is published: the key-value
// bucket is a stream, and this is its key's subject.
func recordSubject(id string) string { return "$KV." + stateBucket + "." + id }

func newInfo(j NewJob, now time.Time) (*Info, error) {
	o := j.Options
	if j.Kind == "" {
		return nil, errors.New("queue: enqueue: a job needs a kind")
	}
	if o.MaxAttempts < 0 || o.Timeout < 0 || o.Delay < 0 {
		return nil, fmt.Errorf("queue: enqueue %s: max attempts %d, timeout %v, delay %v: must not be negative", j.Kind, o.MaxAttempts, o.Timeout, o.Delay)
	}
	for _, name := range []string{o.ID, o.Queue} {
		if strings.ContainsAny(name, ".*> \t\r\n") {
			return nil, fmt.Errorf("queue: enqueue %s: %q: ids and queue names may not contain dots, spaces, * or >", j.Kind, name)
		}
	}
	info := &Info{
		ID:          o.ID,
		Kind:        j.Kind,
		Queue:       o.Queue,
		Priority:    max(min(o.Priority, High), Low),
		Payload:     j.Payload,
		State:       Queued,
		MaxAttempts: o.MaxAttempts,
		Timeout:     Duration(o.Timeout),
		RunAt:       o.RunAt,
		EnqueuedAt:  now,
		UpdatedAt:   now,
	}
	if info.ID == "" {
		var b [12]byte
		rand.Read(b[:])
		info.ID = hex.EncodeToString(b[:])
	}
	if info.Queue == "" {
		info.Queue = "default"
	}
	if info.MaxAttempts == 0 {
		info.MaxAttempts = 25
	}
	if o.Delay > 0 {
		info.RunAt = now.Add(o.Delay)
	}
	if info.RunAt.After(now) {
		info.State = Scheduled
	}
	return info, nil
}

func subject(info *Info) string {
	return jobsSubject + "." + info.Queue + "." + info.Priority.subject()
}

// Info returns what the queue knows of the job with the given id.
func (c *Client) Info(ctx context.Context, id string) (*Info, error) {
	info, _, err := c.info(ctx, id)
	return info, err
}

func (c *Client) info(ctx context.Context, id string) (*Info, uint64, error) {
	e, err := c.state.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("queue: job %s: %w", id, err)
	}
	var info Info
	if err := json.Unmarshal(e.Value(), &info); err != nil {
		return nil, 0, fmt.Errorf("queue: job %s: bad record: %w", id, err)
	}
	return &info, e.Revision(), nil
}

// Wait waits until the job with the given id has succeeded or is dead, and
// returns what the queue knows of it then.
//
// It watches the job's record, and also reads it once a second, so that a
// watch stalled by a server failing over does not keep it waiting.
func (c *Client) Wait(ctx context.Context, id string) (*Info, error) {
	// check reads the record, giving up after a moment: during a failover
	// a read can go unanswered, and the next tick will try again.
	check := func() (info *Info, done bool, err error) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		info, err = c.Info(rctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil, true, err
		case err != nil:
			return nil, false, nil
		}
		return info, info.State == Succeeded || info.State == Dead, nil
	}
	if info, done, err := check(); done {
		return info, err
	}
	w, err := c.state.Watch(ctx, id, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("queue: wait for %s: %w", id, err)
	}
	defer w.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	updates := w.Updates()
	for {
		select {
		case e, ok := <-updates:
			if !ok {
				updates = nil // the watch ended: the ticker carries on
				continue
			}
			if e == nil {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
			}
			var info Info
			if err := json.Unmarshal(e.Value(), &info); err != nil {
				return nil, fmt.Errorf("queue: job %s: bad record: %w", id, err)
			}
			if info.State == Succeeded || info.State == Dead {
				return &info, nil
			}
		case <-tick.C:
			if info, done, err := check(); done {
				return info, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Dead lists the dead jobs: those that failed their last attempt or failed
// for good.
func (c *Client) Dead(ctx context.Context) ([]*Info, error) {
	keys, err := c.state.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: dead jobs: %w", err)
	}
	defer keys.Stop()
	var dead []*Info
	for id := range keys.Keys() {
		info, err := c.Info(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		if info.State == Dead {
			dead = append(dead, info)
		}
	}
	return dead, nil
}

// Retry puts a dead job back in its queue, with its attempts counted from
// zero again; its error history is kept.
func (c *Client) Retry(ctx context.Context, id string) error {
	info, rev, err := c.info(ctx, id)
	if err != nil {
		return err
	}
	if info.State != Dead {
		return fmt.Errorf("queue: retry %s: the job is %s, not dead", id, info.State)
	}
	info.State, info.Attempts, info.RunAt, info.UpdatedAt = Queued, 0, time.Time{}, time.Now()
	data, _ := json.Marshal(info)
	if _, err := c.state.Update(ctx, id, data, rev); err != nil {
		return fmt.Errorf("queue: retry %s: %w", id, err)
	}
	// A fresh message id: the original one may still be in the stream's
	// duplicate window.
	if _, err := c.js.Publish(ctx, subject(info), data, jetstream.WithMsgID(fmt.Sprintf("%s-retry-%d", id, rev))); err != nil {
		return fmt.Errorf("queue: retry %s: %w", id, err)
	}
	return nil
}

// Delete forgets a job that is not waiting to run: a dead or finished one.
func (c *Client) Delete(ctx context.Context, id string) error {
	info, rev, err := c.info(ctx, id)
	if err != nil {
		return err
	}
	if info.State != Dead && info.State != Succeeded {
		return fmt.Errorf("queue: delete %s: the job is %s; only dead and succeeded jobs can be deleted", id, info.State)
	}
	if err := c.state.Delete(ctx, id, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("queue: delete %s: %w", id, err)
	}
	return nil
}
