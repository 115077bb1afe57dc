package queue

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// outcomes stores the outcomes of a worker's jobs: each job's record, with
// its result kept apart if it is big, and its dead mark if it died. A job
// is settled (acknowledged, or handed back for a retry) only once its
// outcome is stored.
//
// An outcome that cannot be stored — the server's storage is full, or the
// server is away longer than the committer tries — is kept, and stored
// again later, while the job's lease is renewed: the job is not run again
// for it. Meanwhile the worker takes no new jobs, whose outcomes could not
// be stored either. When the worker stops before the outcome could be
// stored, the job is handed back to the queue, to run again later.
type outcomes struct {
	w         *Worker
	stop      <-chan struct{} // closed when the worker gives up its jobs
	pending   sync.WaitGroup  // outcomes not settled yet
	unsettled atomic.Int64    // their number
	settled   chan<- struct{} // told, without blocking, when one is settled

	mu      sync.Mutex
	failing error         // why outcomes cannot be stored now; nil if they can
	stored  chan struct{} // closed when an outcome is stored again

	// The stored outcomes of jobs that others wait for, to pass on to
	// them, and the goroutine that does, while it runs.
	passMu  sync.Mutex
	toPass  []*outcome
	passing sync.WaitGroup
	passes  bool
}

// The wait before storing an outcome again doubles from storeRetryFirst up
// to storeRetryMax, or a third of the lease if that is shorter.
const (
	storeRetryFirst = time.Second
	storeRetryMax   = 30 * time.Second
)

// An outcome is a finished job's, to store.
type outcome struct {
	msg    *nats.Msg
	info   *Info
	settle func() error // acknowledges the message, or hands it back
	listed bool         // a dead job is marked dead
	wait   time.Duration
}

// add stores a job's outcome and then settles its message.
func (oc *outcomes) add(ctx context.Context, msg *nats.Msg, info *Info, settle func() error) {
	oc.pending.Add(1)
	oc.unsettled.Add(1)
	oc.store(ctx, &outcome{msg: msg, info: info, settle: settle, wait: storeRetryFirst})
}

func (oc *outcomes) store(ctx context.Context, o *outcome) {
	c := oc.w.c
	info := o.info
	if info.State == Dead && !o.listed {
		if _, err := c.js.PublishMsg(ctx, c.newDeadMsg(info)); err != nil {
			oc.retry(ctx, o, fullError(err))
			return
		}
		o.listed = true
	}
	if len(info.Result) > maxRecordedResult {
		// Too big for the record: kept apart, under the job's id.
		if _, err := c.results.PutBytes(ctx, info.ID, info.Result); err != nil {
			oc.retry(ctx, o, fullError(err))
			return
		}
		info.Result, info.ResultApart = nil, true
	}
	m, err := c.newRecordMsg(info)
	if err == nil {
		final := info.State == Succeeded || info.State.failed()
		if final && !info.Children {
			expectNoChildren(m, info.ID)
		}
		// The outcome of a job that others wait for is stored without a
		// sync of its own: its children start at once, and the job is
		// settled once a sync has made both durable (pass).
		err = c.commit.add(ctx, &write{msg: m, lazy: final && info.waited(), done: func(err error) {
			switch {
			case final && !info.Children && wrongLastSequence(err):
				// Jobs wait for this one: its record says so, and once it
				// is stored they are told.
				info.Children = true
				go oc.store(ctx, o) // not from the committer's goroutine, which store may wait for
			case err != nil:
				oc.retry(ctx, o, err)
			case final && info.waited():
				oc.ok()
				oc.pass(ctx, o)
			default:
				oc.ok()
				o.settle()
				oc.done()
			}
		}})
	}
	if err != nil {
		oc.retry(ctx, o, err)
	}
}

// pass passes a stored outcome on to the jobs that wait for its job, and
// settles the job once a sync has made both durable. The outcomes stored
// while others are passed on go together next, in one round of reads and
// writes. If that fails, their jobs are handed back: the worker that
// takes one again passes its outcome on.
func (oc *outcomes) pass(ctx context.Context, o *outcome) {
	oc.passMu.Lock()
	defer oc.passMu.Unlock()
	oc.toPass = append(oc.toPass, o)
	if !oc.passes {
		oc.passes = true
		oc.passing.Go(func() { oc.passAll(ctx) })
	}
}

// passAll passes on the outcomes handed to pass until none is left. Their
// jobs are settled once the committer has synced their outcomes and what
// passing them on stored, without waiting for it here.
func (oc *outcomes) passAll(ctx context.Context) {
	c := oc.w.c
	for {
		oc.passMu.Lock()
		batch := oc.toPass
		oc.toPass = nil
		oc.passes = len(batch) > 0
		oc.passMu.Unlock()
		if len(batch) == 0 {
			return
		}
		infos := make([]*Info, len(batch))
		for i, o := range batch {
			infos[i] = o.info
		}
		released, err := c.passOn(ctx, infos)
		if err != nil {
			c.log.Warn("queue: passing jobs' outcomes on to the jobs that wait for them; trying later", "jobs", len(batch), "error", err)
		}
		c.commit.afterSync(func(syncErr error) {
			for _, o := range batch {
				if err != nil || syncErr != nil {
					o.msg.NakWithDelay(time.Second)
				} else {
					o.settle()
				}
				oc.done()
			}
			if err == nil && syncErr == nil {
				c.tidier.add(released...)
			}
		})
	}
}

// retry stores an outcome again after a wait, renewing the job's lease,
// unless the worker gives up its jobs meanwhile: then the job is handed
// back. It does not block: the committer calls it.
func (oc *outcomes) retry(ctx context.Context, o *outcome, err error) {
	oc.mu.Lock()
	if oc.failing == nil {
		oc.w.c.log.Warn("queue: job outcomes cannot be stored; taking no new jobs until they can, and keeping the outcomes of those done", "error", err)
		oc.stored = make(chan struct{})
	}
	oc.failing = err
	oc.mu.Unlock()

	wait := min(o.wait, oc.w.cfg.Lease/3)
	o.wait = min(2*o.wait, storeRetryMax)
	o.msg.InProgress()
	go func() { // owned through pending, which it leaves when it settles the job
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
			o.msg.InProgress()
			oc.store(ctx, o)
		case <-oc.stop:
			oc.w.c.log.Warn("queue: job outcome not stored; the job will run again", "id", o.info.ID, "error", err)
			o.msg.NakWithDelay(wait)
			oc.done()
		}
	}()
}

// done notes that an outcome's job was settled.
func (oc *outcomes) done() {
	oc.unsettled.Add(-1)
	oc.pending.Done()
	select {
	case oc.settled <- struct{}{}:
	default:
	}
}

// ok notes that an outcome was stored.
func (oc *outcomes) ok() {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.failing != nil {
		oc.w.c.log.Info("queue: job outcomes are stored again; taking jobs")
		oc.failing = nil
		close(oc.stored)
	}
}

// blocked returns a channel closed once outcomes are stored again, or nil
// if they are stored now.
func (oc *outcomes) blocked() <-chan struct{} {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.failing == nil {
		return nil
	}
	return oc.stored
}
