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
//
// # Tasks that submit and wait
//
// The pool's Workers bound how many tasks run at once: a submit or a Wait
// that must wait blocks its caller. The one exception avoids the deadlock of
// tasks that wait for tasks queued behind them: a caller that is itself one
// of the pool's tasks runs queued tasks on its own goroutine while it waits
// (it is suspended meanwhile, so the bound holds). herd knows the caller is
// a task from its context, the one the task was given or one derived from
// it, used on the task's own goroutine:
//
//   - a group made with a task's context is that task's group: its Go and
//     Wait run queued tasks while they wait. The task and its subtasks may
//     use it; other goroutines must not.
//   - [Group.GoContext] and [Group.WaitContext] take the caller's context,
//     for a task that adds to or waits for a group made elsewhere.
//   - a group made with any other context, used through Go and Wait, never
//     runs tasks on its caller's goroutine.
type Group struct {
	p        *Pool
	own      bool // p belongs to the group: Wait closes it
	failFast bool
	ctx      context.Context // cancelled with the group; carries the pool only if made in a task
	taskCtx  context.Context // given to tasks: ctx, marked as a task's
	cancel   context.CancelCauseFunc
	stop     func() bool   // stops the pool-shutdown hook
	sem      chan struct{} // SetLimit: one token per task queued or running

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
	g.ctx, g.cancel = context.WithCancelCause(ctx)
	g.stop = context.AfterFunc(g.p.ctx, func() { g.cancel(context.Cause(g.p.ctx)) })
	g.taskCtx = context.WithValue(g.ctx, poolKey{}, g.p)
	g.pending.Store(1)
	return g
}

// SetLimit limits the group to n tasks queued or running at once, like
// errgroup's SetLimit: Go waits for one of them to finish before it queues
// another. The group's tasks still share the pool's workers with everything
// else on the pool. A negative n means no limit, the default; zero lets no
// task in. SetLimit must be called before the first Go, or when none of the
// group's tasks is queued or running; otherwise it panics.
func (g *Group) SetLimit(n int) {
	if g.pending.Load() != 1 {
		panic("herd: SetLimit on a group with tasks queued or running")
	}
	if n < 0 {
		g.sem = nil
		return
	}
	g.sem = make(chan struct{}, n)
}

// Go submits task to the group's pool, waiting for room in the queue if it
// is full, and under [Group.SetLimit] for one of the group's tasks to finish.
// It returns nil once the task is queued. Otherwise it returns why the task
// will never run: the group's context is done or the pool is closed. That
// reason also reaches [Group.Wait], so the result of Go may be ignored.
//
// Go may be called from the group's tasks at any time, and from elsewhere
// until Wait is called. It waits as the type's documentation says: a task
// adding to a group that is not its own should use [Group.GoContext].
func (g *Group) Go(task func(ctx context.Context) error) error {
	return g.add(g.ctx, nil, task)
}

// GoContext is [Group.Go] for a caller with a context of its own. It stops
// waiting for room when ctx is done: the task then never runs, and ctx's
// error is returned and reaches [Group.Wait]. When ctx is the context of one
// of the pool's tasks, GoContext runs queued tasks while it waits.
func (g *Group) GoContext(ctx context.Context, task func(ctx context.Context) error) error {
	return g.add(ctx, g.ctx, task)
}

// TryGo submits task if the group's limit and the pool's queue have room
// right now, and reports whether it did. It never waits, and a task it did
// not submit leaves no trace in Wait's result.
func (g *Group) TryGo(task func(ctx context.Context) error) bool {
	if g.ctx.Err() != nil {
		return false
	}
	if g.sem != nil {
		select {
		case g.sem <- struct{}{}:
		default:
			return false
		}
	}
	g.pending.Add(1)
	if !g.p.try(item{fn: task, g: g}) {
		g.release(true)
		return false
	}
	return true
}

func (g *Group) add(caller, also context.Context, task func(ctx context.Context) error) error {
	g.pending.Add(1)
	err := g.acquire(caller, also)
	if err == nil {
		err = g.p.submit(caller, also, item{fn: task, g: g})
		if err != nil && g.sem != nil {
			<-g.sem
		}
	}
	if err != nil {
		if cause := context.Cause(g.ctx); cause != nil {
			err = cause
		}
		g.mu.Lock()
		if g.submitErr == nil {
			g.submitErr = err
		}
		g.mu.Unlock()
		g.release(false)
	}
	return err
}

// acquire takes a token of the group's limit, if it has one, waiting as
// submit does.
func (g *Group) acquire(caller, also context.Context) error {
	if g.sem == nil {
		return nil
	}
	select {
	case g.sem <- struct{}{}:
		return nil
	default:
	}
	var alsoDone <-chan struct{}
	if also != nil {
		alsoDone = also.Done()
	}
	helping := g.p.helping(caller) // nil unless the caller is a task of the pool
	for {
		select {
		case g.sem <- struct{}{}:
			return nil
		case it := <-helping:
			g.p.help(it)
		case <-caller.Done():
			return caller.Err()
		case <-alsoDone:
			return also.Err()
		}
	}
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
	g.release(true)
}

// release drops one count of pending, and the task's token if it holds one.
func (g *Group) release(token bool) {
	if token && g.sem != nil {
		<-g.sem
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
// Wait runs queued tasks while it waits only for a group made with the
// context of one of the pool's tasks (see [Group]); a task waiting for a
// group made elsewhere should use [Group.WaitContext].
func (g *Group) Wait() error {
	return g.WaitContext(g.ctx)
}

// WaitContext is [Group.Wait] for a caller with a context of its own. When
// ctx is the context of one of the pool's tasks, it runs queued tasks while
// it waits. If ctx is done first, WaitContext cancels the group's tasks,
// with ctx's cause, and still waits for them to return.
func (g *Group) WaitContext(ctx context.Context) error {
	g.release(false)            // the group's own count
	helping := g.p.helping(ctx) // nil unless the caller is a task of the pool
	stop := ctx.Done()
	for waiting := true; waiting; {
		select {
		case <-g.done:
			waiting = false
		case it := <-helping:
			g.p.help(it)
		case <-stop:
			g.cancel(context.Cause(ctx))
			stop = nil
		}
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
