package herd

import (
	"context"
	"sync"
)

// ResultGroup is a [Group] whose tasks each return a value. Wait returns
// the values in the order the tasks were submitted, with the group's errors,
// like conc's ResultErrorPool or pond's result pools.
//
// Each call of Go or GoContext takes the next place in the results, whether
// or not the task is queued; a task that never ran leaves the zero R there,
// and a failed task what it returned with its error (the zero R if it
// panicked). A TryGo that returns false takes no place.
type ResultGroup[R any] struct {
	g *Group

	mu     sync.Mutex
	n      int
	blocks []*[resultBlock]R // never moved once handed to a task
}

const resultBlock = 256

// NewResultGroup returns a result group that runs its tasks on p and
// collects every error, as [NewGroup] does.
func NewResultGroup[R any](ctx context.Context, p *Pool) *ResultGroup[R] {
	return &ResultGroup[R]{g: NewGroup(ctx, p)}
}

// NewFailFastResultGroup returns a result group that stops at the first
// error, as [NewFailFastGroup] does.
func NewFailFastResultGroup[R any](ctx context.Context, p *Pool) *ResultGroup[R] {
	return &ResultGroup[R]{g: NewFailFastGroup(ctx, p)}
}

// SetLimit is [Group.SetLimit].
func (r *ResultGroup[R]) SetLimit(n int) { r.g.SetLimit(n) }

// Go is [Group.Go] for a task with a result.
func (r *ResultGroup[R]) Go(task func(ctx context.Context) (R, error)) error {
	return r.g.Go(r.place(task))
}

// GoContext is [Group.GoContext] for a task with a result.
func (r *ResultGroup[R]) GoContext(ctx context.Context, task func(ctx context.Context) (R, error)) error {
	return r.g.GoContext(ctx, r.place(task))
}

// TryGo is [Group.TryGo] for a task with a result.
func (r *ResultGroup[R]) TryGo(task func(ctx context.Context) (R, error)) bool {
	r.mu.Lock()
	defer r.mu.Unlock() // TryGo never waits, and no other place is taken meanwhile
	if r.g.TryGo(r.placeLocked(task)) {
		return true
	}
	r.n--
	return false
}

// place gives task the next place in the results.
func (r *ResultGroup[R]) place(task func(ctx context.Context) (R, error)) func(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.placeLocked(task)
}

func (r *ResultGroup[R]) placeLocked(task func(ctx context.Context) (R, error)) func(context.Context) error {
	i := r.n
	r.n++
	if i%resultBlock == 0 && i/resultBlock == len(r.blocks) {
		r.blocks = append(r.blocks, new([resultBlock]R))
	}
	slot := &r.blocks[i/resultBlock][i%resultBlock]
	return func(ctx context.Context) error {
		var err error
		*slot, err = task(ctx)
		return err
	}
}

// Wait is [Group.Wait], returning the results in submission order as well.
func (r *ResultGroup[R]) Wait() ([]R, error) {
	err := r.g.Wait()
	return r.results(), err
}

// WaitContext is [Group.WaitContext], returning the results in submission
// order as well.
func (r *ResultGroup[R]) WaitContext(ctx context.Context) ([]R, error) {
	err := r.g.WaitContext(ctx)
	return r.results(), err
}

func (r *ResultGroup[R]) results() []R {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]R, 0, r.n)
	for i, b := range r.blocks {
		out = append(out, b[:min(resultBlock, r.n-i*resultBlock)]...)
	}
	return out
}
