package herd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// Group is a set of tasks run on a [Pool] that can be waited for together.
//
// A group made with [NewGroup] runs every task and [Group.Wait] returns all
// their errors joined; one made with [NewFailFastGroup] cancels the rest at
// the first error and Wait returns that error. A task that panics counts as
// failed with a [*PanicError], which carries the panic's value and stack.
//
// Tasks receive a context that is cancelled when the parent context is, when
// a fail-fast group fails (its [context.Cause] is the first error), or when
// the pool is shut down before they finish.
type Group struct {
	p        *Pool
	own      bool // p belongs to the group: Wait closes it
	nested   bool // made inside a task of p: Wait helps run the queue
	failFast bool
	ctx      context.Context
	cancel   context.CancelCauseFunc
	stop     func() bool // stops the pool-shutdown hook

	// pending counts unfinished tasks plus one for the group itself, which
	// Wait releases, so that it reaches zero only once Wait has been called
	// and every task has finished.
	pending atomic.Int64
	done    chan struct{}

	mu        sync.Mutex
	errs      []error // task errors; for a fail-fast group only the first
	submitErr error   // the first reason a Go call failed
}

// NewGroup returns a group that runs its tasks on p and collects every
// error. If p is nil the group has a pool of its own, with the zero
// [Config], which Wait closes.
func NewGroup(ctx context.Context, p *Pool) *Group {
	return newGroup(ctx, p, false)
}

// NewFailFastGroup returns a group that runs its tasks on p and stops at the
// first error: it cancels the context of the other tasks with that error as
// the cause, and tasks submitted after it never run. If p is nil the group
// has a pool of its own, with the zero [Config], which Wait closes.
func NewFailFastGroup(ctx context.Context, p *Pool) *Group {
	return newGroup(ctx, p, true)
}

func newGroup(ctx context.Context, p *Pool, failFast bool) *Group {
	g := &Group{p: p, failFast: failFast, done: make(chan struct{})}
	if p == nil {
		g.p, _ = New(Config{}) // the zero Config is always valid
		g.own = true
	}
	g.nested = ctx.Value(poolKey{}) == g.p
	ctx, g.cancel = context.WithCancelCause(ctx)
	g.stop = context.AfterFunc(g.p.ctx, func() { g.cancel(context.Cause(g.p.ctx)) })
	// The group's context carries the pool, as a task's context does, so
	// that tasks submitting to their own group help rather than deadlock.
	g.ctx = context.WithValue(ctx, poolKey{}, g.p)
	g.pending.Store(1)
	return g
}

// Go submits task to the group's pool, waiting for room in the queue if it
// is full (when called from one of the pool's tasks, it runs queued tasks
// meanwhile instead, so that a task can always submit more). It returns nil
// once the task is queued. Otherwise it returns why the task will never
// run: the group's context is done or the pool is closed. That reason also
// reaches [Group.Wait], so the result of Go may be ignored.
//
// Go may be called from the group's tasks at any time, and from elsewhere
// until Wait is called.
func (g *Group) Go(task func(ctx context.Context) error) error {
	g.pending.Add(1)
	err := g.p.submit(g.ctx, item{fn: task, g: g})
	if err != nil {
		if cause := context.Cause(g.ctx); cause != nil {
			err = cause
		}
		g.mu.Lock()
		if g.submitErr == nil {
			g.submitErr = err
		}
		g.mu.Unlock()
		g.finish(nil)
	}
	return err
}

// finish records the end of one task.
func (g *Group) finish(err error) {
	if err != nil {
		g.mu.Lock()
		switch {
		case !g.failFast:
			g.errs = append(g.errs, err)
		case len(g.errs) == 0:
			g.errs = append(g.errs, err)
			g.cancel(err)
		}
		g.mu.Unlock()
	}
	if g.pending.Add(-1) == 0 {
		close(g.done)
	}
}

// Wait waits for every task of the group to finish and returns their
// errors: all of them joined with [errors.Join], or for a fail-fast group
// the first. If the parent context was cancelled before some tasks could be
// submitted, Wait returns the context's error among them.
//
// Wait called from a task of the same pool runs queued tasks while it waits,
// so that tasks waiting for their subtasks cannot take every worker and
// deadlock the pool.
func (g *Group) Wait() error {
	g.finish(nil) // release the group's own count
	if g.nested {
		for waiting := true; waiting; {
			select {
			case <-g.done:
				waiting = false
			case it, open := <-g.p.queue:
				if !open {
					<-g.done
					waiting = false
					break
				}
				g.p.runItem(&g.p.helper, it)
			}
		}
	} else {
		<-g.done
	}
	g.stop()
	g.cancel(context.Canceled)
	if g.own {
		g.p.Close()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failFast && len(g.errs) > 0 {
		return g.errs[0]
	}
	return errors.Join(append(g.errs, g.submitErr)...)
}
