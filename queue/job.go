package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
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

// String names the priority as herd's commands and subjects do: "high",
// "default" or "low".
func (p Priority) String() string {
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

	// Key groups jobs for their queue's KeyConcurrency limit (see
	// [Limits]): at most that many jobs of one key run at once, across
	// every worker. A customer's or a tenant's id is a typical key.
	Key string

	// After are the ids of jobs in the queue that this one waits for: it
	// runs once every one of them has succeeded, and is Skipped if one
	// fails for good. [Client.EnqueueGraph] enqueues jobs that wait for
	// each other.
	After []string
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
	Cancelled State = "cancelled" // cancelled by [Client.Cancel] before it finished
	Pending   State = "pending"   // waiting for its parents to succeed ([Options.After], [Graph])
	Skipped   State = "skipped"   // not run: a parent failed for good (Info.SkippedBy says which)
)

// Finished reports whether a job in state s is done with: it succeeded, is
// dead, was cancelled, or was skipped.
func (s State) Finished() bool { return s == Succeeded || s == Dead || s == Cancelled || s == Skipped }

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
	Key         string    `json:"key,omitempty"`
	RunAt       time.Time `json:"run_at,omitzero"`
	Errors      []string  `json:"errors,omitempty"` // one per failed attempt, oldest first
	Result      []byte    `json:"result,omitempty"`
	ResultApart bool      `json:"result_apart,omitempty"` // a big result, kept apart from the record; Info and Wait read it back
	EnqueuedAt  time.Time `json:"enqueued_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Worker is the id of the worker that ran its last attempt (see
	// [WorkerInfo]), and StartedAt when that attempt started; a finished
	// attempt ended at UpdatedAt.
	Worker    string    `json:"worker,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`

	Parents   []string `json:"parents,omitempty"`    // the jobs it waits for, or waited for
	SkippedBy []string `json:"skipped_by,omitempty"` // the parents that failed, if it is Skipped
	// Waiters are the jobs of its graph that wait for it.
	Waiters []Waiter `json:"waiters,omitempty"`
	// Children is set on a finished job's record when jobs enqueued
	// after it, with Options.After, wait for it.
	Children bool `json:"children,omitempty"`
	// Registering is set while the edges from a waiting job's parents
	// are written: it is not released before.
	Registering bool `json:"registering,omitempty"`
}

// A Waiter is a job of a graph that waits for another: its id, and the
// other's place in its Parents.
type Waiter struct {
	ID      string `json:"id"`
	Place   int    `json:"place"`
	Parents int    `json:"parents"` // how many jobs it waits for
}

// waited reports whether jobs wait for a job: its outcome is to be passed
// on to them.
func (info *Info) waited() bool { return info.Children || len(info.Waiters) > 0 }

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

// EnqueueBatch adds jobs and returns their ids in order once the queue has
// stored every one. The jobs are stored together with those that other
// calls hand over meanwhile, in few writes to disk. If one fails, it
// returns the error; the jobs that were stored will run, and enqueueing
// them again with the same ids stores nothing twice.
//
// A job with Options.After waits for those jobs: it is stored as a graph
// of one ([Client.EnqueueGraph]).
func (c *Client) EnqueueBatch(ctx context.Context, jobs []NewJob) ([]string, error) {
	if slices.ContainsFunc(jobs, func(j NewJob) bool { return len(j.Options.After) > 0 }) {
		return c.enqueueEach(ctx, jobs)
	}
	now := time.Now()
	ids := make([]string, len(jobs))
	infos := make([]*Info, 0, len(jobs))
	msgs := make([]*nats.Msg, 0, len(jobs))
	var seen map[string]bool // the caller's ids in this batch
	for i, j := range jobs {
		info, err := newInfo(j, now)
		if err != nil {
			return nil, err
		}
		ids[i] = info.ID
		unique := j.Options.ID != ""
		if unique {
			if seen[info.ID] {
				continue // the same job twice: it runs once
			}
			if seen == nil {
				seen = make(map[string]bool)
			}
			seen[info.ID] = true
		}
		if err := c.ensureConsumer(ctx, info.Queue, info.Priority); err != nil {
			return nil, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err)
		}
		m, err := newJobMsg(info, unique)
		if err != nil {
			return nil, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err)
		}
		infos, msgs = append(infos, info), append(msgs, m)
	}
	errs, err := c.commit.store(ctx, msgs)
	if err != nil {
		return nil, fmt.Errorf("queue: enqueue: %w", err)
	}
	var failed []error
	var which []int // the failed jobs, in infos
	for i, err := range errs {
		if err != nil && !(seen[infos[i].ID] && wrongLastSequence(err)) { // an id seen before is no error
			failed, which = append(failed, err), append(which, i)
		}
	}
	for i, info := range infos {
		if errs[i] == nil {
			c.counts.of(info.Queue).enqueued.Add(1)
		}
	}
	if len(failed) == 0 {
		return ids, nil
	}
	if len(failed) > 1 && !slices.ContainsFunc(failed, func(err error) bool { return err.Error() != failed[0].Error() }) {
		// One reason for all, such as a full store: said once.
		first, last := infos[which[0]], infos[which[len(which)-1]]
		return nil, fmt.Errorf("queue: enqueue: %d of %d jobs (%s ... %s): %w", len(failed), len(jobs), first.ID, last.ID, failed[0])
	}
	for i, err := range failed {
		failed[i] = fmt.Errorf("queue: enqueue %s %s: %w", infos[which[i]].Kind, infos[which[i]].ID, err)
	}
	return nil, errors.Join(failed...)
}

// enqueueEach enqueues jobs of which some wait for others, as one graph
// whose jobs do not wait for each other. A job whose id the queue has
// already, or that comes twice, is stored once, as EnqueueBatch does.
func (c *Client) enqueueEach(ctx context.Context, jobs []NewJob) ([]string, error) {
	var given []string
	for _, j := range jobs {
		if j.Options.ID != "" {
			given = append(given, j.Options.ID)
		}
	}
	have, err := c.records(ctx, given)
	if err != nil {
		return nil, fmt.Errorf("queue: enqueue: %w", err)
	}
	var g Graph
	seen := make(map[string]bool)
	for i, j := range jobs {
		id := j.Options.ID
		if id != "" && (seen[id] || have[id] != nil && !have[id].Registering) {
			continue // sent again: stored once
		}
		seen[id] = id != ""
		g.Add(strconv.Itoa(i), j)
	}
	byName, err := c.EnqueueGraph(ctx, &g)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		if ids[i] = byName[strconv.Itoa(i)]; ids[i] == "" {
			ids[i] = j.Options.ID
		}
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
	if o.Queue != "" && !validQueue(o.Queue) {
		return nil, fmt.Errorf("queue: enqueue %s: queue %q: want letters, digits and - _ = /", j.Kind, o.Queue)
	}
	if len(o.Key) > maxKey {
		return nil, fmt.Errorf("queue: enqueue %s: a key of %d bytes: at most %d", j.Kind, len(o.Key), maxKey)
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
		Key:         o.Key,
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

// maxKey is the longest Options.Key: it is stored with every record.
const maxKey = 1024

// validQueue reports whether s can name a queue: an id with no dots.
func validQueue(s string) bool { return validID(s) && !strings.Contains(s, ".") }

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

// Info returns what the queue knows of the job with the given id.
func (c *Client) Info(ctx context.Context, id string) (*Info, error) {
	info, _, err := c.info(ctx, id)
	return info, err
}

func (c *Client) info(ctx context.Context, id string) (*Info, uint64, error) {
	if !validID(id) {
		return nil, 0, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	m, err := c.last(ctx, idSubject(id))
	if err != nil {
		return nil, 0, fmt.Errorf("queue: job %s: %w", id, err)
	}
	if m == nil {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	info, err := c.decode(ctx, m.data)
	if err != nil {
		return nil, 0, fmt.Errorf("queue: job %s: %w", id, err)
	}
	return info, m.seq, nil
}

// decode decodes a job's record, and reads back its result if it is kept
// apart.
func (c *Client) decode(ctx context.Context, record []byte) (*Info, error) {
	info := new(Info)
	if err := json.Unmarshal(record, info); err != nil {
		return nil, fmt.Errorf("bad record: %w", err)
	}
	if info.State.Finished() {
		if err := c.settled(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.readResult(ctx, info); err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	return info, nil
}

// readResult reads back a job's result if it was kept apart, too big for
// its record.
func (c *Client) readResult(ctx context.Context, info *Info) error {
	if !info.ResultApart || info.Result != nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		// Megabytes may take longer than the client's default timeout of
		// a request to come when the server is busy.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	b, err := c.results.GetBytes(ctx, info.ID)
	if err != nil {
		return err
	}
	info.Result = b
	return nil
}

// Wait waits until the job with the given id has finished (succeeded, is
// dead, or was cancelled), and returns what the queue knows of it then.
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
		return info, info.State.Finished(), nil
	}
	if info, done, err := check(); done {
		return info, err
	}
	// The watch is set up aside: during a failover that can take a while,
	// and the ticker carries on meanwhile.
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	updates := make(chan *Info)
	wg.Go(func() {
		w, err := c.Watch(wctx, id)
		if err != nil {
			return
		}
		defer w.Stop()
		for info := range w.Updates() {
			select {
			case updates <- info:
			case <-wctx.Done():
				return
			}
		}
	})
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case info := <-updates:
			if info.State.Finished() {
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
// for good. [Client.Jobs] reads them a page at a time.
func (c *Client) Dead(ctx context.Context) ([]*Info, error) {
	var dead []*Info
	q := JobQuery{State: Dead, Limit: 1024}
	for {
		page, err := c.Jobs(ctx, q)
		if err != nil {
			return nil, err
		}
		dead = append(dead, page.Jobs...)
		if page.Next == 0 {
			return dead, nil
		}
		q.After = page.Next
	}
}

// Retry puts a finished job back in its queue, to run again: a dead one
// most often, or one that was cancelled or succeeded. Its attempts count
// from zero again; its error history is kept.
func (c *Client) Retry(ctx context.Context, id string) error {
	info, rev, err := c.info(ctx, id)
	if err != nil {
		return err
	}
	if !info.State.Finished() {
		return fmt.Errorf("queue: retry %s: the job is %s, not finished", id, info.State)
	}
	if info.State == Skipped {
		return fmt.Errorf("queue: retry %s: the job did not run because %s failed: retry that, and this one runs once it succeeds", id, strings.Join(info.SkippedBy, ", "))
	}
	info.State, info.Attempts, info.RunAt, info.UpdatedAt = Queued, 0, time.Time{}, time.Now()
	// The job goes back in its queue with a record that says so, which
	// replaces the one that says it is dead; the two are stored together,
	// unless the record changed meanwhile.
	rec, err := c.newRecordMsg(info)
	if err != nil {
		return fmt.Errorf("queue: retry %s: %w", id, err)
	}
	expectLast(rec, id, rev)
	job, err := newJobMsg(info, false)
	if err == nil {
		err = c.commit.atomic([]*nats.Msg{rec, job})
	}
	if err != nil {
		return fmt.Errorf("queue: retry %s: %w", id, err)
	}
	if err := c.stream.Purge(ctx, jetstream.WithPurgeSubject(deadSubject(info))); err != nil {
		return fmt.Errorf("queue: retry %s: %w", id, err)
	}
	if err := c.durable(); err != nil {
		return fmt.Errorf("queue: retry %s: %w", id, err)
	}
	// The jobs skipped because it failed wait for it again.
	if err := c.unskip(ctx, id); err != nil {
		return fmt.Errorf("queue: retry %s: %w", id, err)
	}
	return nil
}

// Delete forgets a job that is not waiting to run: a dead or finished one.
func (c *Client) Delete(ctx context.Context, id string) error {
	info, _, err := c.info(ctx, id)
	if err != nil {
		return err
	}
	if !info.State.Finished() {
		return fmt.Errorf("queue: delete %s: the job is %s; only finished jobs (succeeded, dead, cancelled) can be deleted", id, info.State)
	}
	if err := c.stream.Purge(ctx, jetstream.WithPurgeSubject(idSubject(id))); err != nil {
		return fmt.Errorf("queue: delete %s: %w", id, err)
	}
	var errs []error
	if info.State == Dead {
		errs = append(errs, c.stream.Purge(ctx, jetstream.WithPurgeSubject(deadSubject(info))))
	}
	if info.ResultApart {
		errs = append(errs, c.results.Delete(ctx, id))
	}
	errs = append(errs, c.durable())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("queue: delete %s: %w", id, err)
	}
	return nil
}
