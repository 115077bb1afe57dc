package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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
	ResultApart bool      `json:"result_apart,omitempty"` // a big result, kept apart from the record; Info and Wait read it back
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
	type pending struct {
		info   *Info
		data   []byte
		unique bool // the id is the caller's: enqueue it only if it is new
		seen   bool // it was not new
		record jetstream.PubAckFuture
		job    jetstream.PubAckFuture
	}
	ps := make([]pending, len(jobs))
	for i, j := range jobs {
		info, err := newInfo(j, now)
		if err != nil {
			return nil, err
		}
		data, err := json.Marshal(info)
		if err != nil {
			return nil, fmt.Errorf("queue: enqueue %s: %w", j.Kind, err)
		}
		ps[i] = pending{info: info, data: data, unique: j.Options.ID != ""}
	}
	fail := func(p *pending, err error) error {
		return fmt.Errorf("queue: enqueue %s %s: %w", p.info.Kind, p.info.ID, err)
	}
	await := func(f jetstream.PubAckFuture) (uint64, error) {
		select {
		case ack := <-f.Ok():
			return ack.Sequence, nil
		case err := <-f.Err():
			return 0, err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}

	// Every job's record and message are published without waiting, so
	// that a batch costs a round trip or two rather than one per job. A job
	// with an id of the caller's has its record published only if that key
	// has never been written, and its message once that is confirmed: an id
	// seen before stops there, and its job runs once.
	for i := range ps {
		p := &ps[i]
		var opts []jetstream.PublishOpt
		if p.unique {
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(0))
		}
		f, err := c.js.PublishAsync(recordSubject(p.info.ID), p.data, opts...)
		if err != nil {
			return nil, fail(p, err)
		}
		p.record = f
		if !p.unique {
			if p.job, err = c.js.PublishAsync(subject(p.info), p.data, jetstream.WithMsgID(p.info.ID)); err != nil {
				return nil, fail(p, err)
			}
		}
	}
	var errs []error
	for i := range ps {
		p := &ps[i]
		seq, err := await(p.record)
		if err != nil && p.unique && wrongLastSequence(err) {
			// The key was written before. If it was deleted since, the id
			// is free again: Create knows how to tell.
			if seq, err = c.state.Create(ctx, p.info.ID, p.data); errors.Is(err, jetstream.ErrKeyExists) {
				p.seen, err = true, nil
			}
		}
		if err != nil {
			errs = append(errs, fail(p, err))
			continue
		}
		if !p.unique || p.seen {
			continue
		}
		// The message id, for the stream to drop a copy sent again, names
		// this record: a job deleted and enqueued again is a new message.
		msgID := p.info.ID + "@" + strconv.FormatUint(seq, 10)
		if p.job, err = c.js.PublishAsync(subject(p.info), p.data, jetstream.WithMsgID(msgID)); err != nil {
			errs = append(errs, fail(p, err))
		}
	}
	ids := make([]string, 0, len(ps))
	for i := range ps {
		p := &ps[i]
		if p.job != nil {
			if _, err := await(p.job); err != nil {
				errs = append(errs, fail(p, err))
				continue
			}
		}
		ids = append(ids, p.info.ID)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ids, nil
}

// wrongLastSequence reports whether err is a publish refused because the
// subject had been written to.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
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
	if o.ID != "" && !validID(o.ID) {
		return nil, fmt.Errorf("queue: enqueue %s: id %q: want letters, digits and - _ = / ., with no dot first, last or twice in a row", j.Kind, o.ID)
	}
	if o.Queue != "" && (!validID(o.Queue) || strings.Contains(o.Queue, ".")) {
		return nil, fmt.Errorf("queue: enqueue %s: queue %q: want letters, digits and - _ = /", j.Kind, o.Queue)
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

// validID reports whether s can be a job's id: a key of the bucket of
// records.
func validID(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=/.", r)
		if !ok {
			return false
		}
	}
	return true
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
	info, err := c.decode(ctx, e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("queue: job %s: %w", id, err)
	}
	return info, e.Revision(), nil
}

// decode decodes a job's record, and reads back its result if it is kept
// apart.
func (c *Client) decode(ctx context.Context, record []byte) (*Info, error) {
	info := new(Info)
	if err := json.Unmarshal(record, info); err != nil {
		return nil, fmt.Errorf("bad record: %w", err)
	}
	if info.ResultApart {
		var err error
		if info.Result, err = c.results.GetBytes(ctx, info.ID); err != nil {
			return nil, fmt.Errorf("result: %w", err)
		}
	}
	return info, nil
}

// Wait waits until the job with the given id has succeeded or is dead, and
// returns what the queue knows of it then.
//
// It watches the job's record, and also reads it once a second, so that a
// watch stalled by a server failing over (or one that cannot be set up
// until the failover is over) does not keep it waiting.
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
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	updates := make(chan []byte)
	wg.Go(func() {
		w, err := c.state.Watch(wctx, id, jetstream.UpdatesOnly(), jetstream.IgnoreDeletes())
		if err != nil {
			return // the ticker carries on
		}
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				select {
				case updates <- e.Value():
				case <-wctx.Done():
					return
				}
			case <-wctx.Done():
				return
			}
		}
	})
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case record := <-updates:
			info, err := c.decode(ctx, record)
			if err != nil {
				return nil, fmt.Errorf("queue: job %s: %w", id, err)
			}
			if info.State == Succeeded || info.State == Dead {
				return info, nil
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
	keys, err := c.dead.ListKeys(ctx)
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
	if err := c.dead.Purge(ctx, id); err != nil {
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
	var errs []error
	if info.State == Dead {
		errs = append(errs, c.dead.Purge(ctx, id))
	}
	if info.ResultApart {
		errs = append(errs, c.results.Delete(ctx, id))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("queue: delete %s: %w", id, err)
	}
	return nil
}
