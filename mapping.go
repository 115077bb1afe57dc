package herd

import (
	"context"
	"iter"
	"runtime"
	"sync"
)

// Map runs fn on every value of in with the given number of workers (zero
// means GOMAXPROCS) and yields the results in input order, each as soon as
// it and every result before it are ready. An error from fn is yielded in
// its place; a panic in fn is yielded as a [*PanicError].
//
// At most a bounded window of values is in flight ahead of the consumer, so
// memory stays bounded for an endless in. Breaking out of the range loop
// cancels the context given to the running calls of fn, stops reading in,
// and returns once every goroutine Map started has exited; so does ctx
// being cancelled, after which no more results are yielded.
//
// in is read on a goroutine of its own. It must return soon after its yield
// returns false, as every well-behaved iterator does.
func Map[T, R any](ctx context.Context, workers int, in iter.Seq[T], fn func(context.Context, T) (R, error)) iter.Seq2[R, error] {
	return func(yield func(R, error) bool) {
		m := startMapper(ctx, workers, in, fn, true)
		defer m.stop()
		ring := m.ring
		for next := 0; ; next++ {
			s := &ring[next%len(ring)]
			select {
			case <-s.ready:
			case <-m.fed:
				if next == m.total {
					return
				}
				select {
				case <-s.ready:
				case <-m.ctx.Done():
					return
				}
			case <-m.ctx.Done():
				return
			}
			r, err := s.r, s.err
			var zero R
			s.r, s.err = zero, nil
			<-m.window
			if m.stopped() || !yield(r, err) {
				return
			}
		}
	}
}

// MapUnordered is [Map] yielding each result as soon as it is ready,
// whatever its place in the input. Put whatever identifies the input in R
// when the consumer needs it.
func MapUnordered[T, R any](ctx context.Context, workers int, in iter.Seq[T], fn func(context.Context, T) (R, error)) iter.Seq2[R, error] {
	return func(yield func(R, error) bool) {
		m := startMapper(ctx, workers, in, fn, false)
		defer m.stop()
		for {
			select {
			case res, open := <-m.out:
				if !open || m.stopped() || !yield(res.r, res.err) {
					return
				}
			case <-m.ctx.Done():
				return
			}
		}
	}
}

// MapSlice runs fn on every element of in with the given number of workers
// (zero means GOMAXPROCS) and returns the results in input order. At the
// first error, in input order, it cancels the remaining calls and returns
// that error with no results.
func MapSlice[T, R any](ctx context.Context, workers int, in []T, fn func(context.Context, T) (R, error)) ([]R, error) {
	out := make([]R, 0, len(in))
	for r, err := range Map(ctx, workers, func(yield func(T) bool) {
		for _, v := range in {
			if !yield(v) {
				return
			}
		}
	}, fn) {
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := ctx.Err(); err != nil && len(out) < len(in) {
		return nil, err
	}
	return out, nil
}

// mapper is the machinery behind one range loop over Map or MapUnordered:
// a feeder goroutine reading in, workers calling fn, and a window that
// bounds how far the feeder may run ahead of the consumer.
type mapper[T, R any] struct {
	ctx    context.Context
	cancel context.CancelFunc
	fn     func(context.Context, T) (R, error)
	wg     sync.WaitGroup

	jobs   chan job[T]
	window chan struct{} // ordered: one token per value in flight

	ring  []slot[R] // ordered: results by index modulo len(ring)
	fed   chan struct{}
	total int // set before fed is closed

	out     chan result[R] // unordered
	running sync.WaitGroup // unordered: the workers, for closing out
}

type job[T any] struct {
	i int
	v T
}

type slot[R any] struct {
	r     R
	err   error
	ready chan struct{}
}

type result[R any] struct {
	r   R
	err error
}

func startMapper[T, R any](ctx context.Context, workers int, in iter.Seq[T], fn func(context.Context, T) (R, error), ordered bool) *mapper[T, R] {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	window := max(16*workers, 64)
	m := &mapper[T, R]{fn: fn, jobs: make(chan job[T], workers)}
	m.ctx, m.cancel = context.WithCancel(ctx)
	if ordered {
		m.window = make(chan struct{}, window)
		m.ring = make([]slot[R], window)
		for i := range m.ring {
			m.ring[i].ready = make(chan struct{}, 1)
		}
		m.fed = make(chan struct{})
	} else {
		m.out = make(chan result[R], window)
		m.running.Add(workers)
		m.wg.Go(func() {
			m.running.Wait()
			close(m.out)
		})
	}
	m.wg.Go(func() { m.feed(in) })
	for range workers {
		m.wg.Go(m.work)
	}
	return m
}

// stopped reports whether ctx is done, without waiting.
func (m *mapper[T, R]) stopped() bool {
	select {
	case <-m.ctx.Done():
		return true
	default:
		return false
	}
}

// stop cancels whatever is still running and waits for every goroutine.
func (m *mapper[T, R]) stop() {
	m.cancel()
	m.wg.Wait()
}

func (m *mapper[T, R]) feed(in iter.Seq[T]) {
	defer close(m.jobs)
	done := m.ctx.Done()
	n := 0
	defer func() {
		if m.fed != nil {
			m.total = n
			close(m.fed)
		}
	}()
	for v := range in {
		if m.window != nil {
			select {
			case m.window <- struct{}{}:
			case <-done:
				return
			}
		}
		select {
		case m.jobs <- job[T]{n, v}:
			n++
		case <-done:
			return
		}
	}
}

func (m *mapper[T, R]) work() {
	if m.out != nil {
		defer m.running.Done()
	}
	for j := range m.jobs {
		if m.ctx.Err() != nil {
			continue // stopping: drain so that the feeder is not stuck
		}
		m.run(j)
	}
}

// run calls fn on one value and delivers its result, turning a panic into a
// *PanicError. A call of runtime.Goexit ends the worker's goroutine whatever
// we do; its value gets an error and a new worker takes its place.
func (m *mapper[T, R]) run(j job[T]) {
	var (
		r        R
		err      error
		returned bool
	)
	defer func() {
		if !returned {
			if v := recover(); v != nil {
				err = newPanicError(v)
			} else {
				err = errGoexit
				if m.out != nil {
					m.running.Add(1)
				}
				m.wg.Go(m.work)
			}
		}
		m.deliver(j.i, r, err)
	}()
	r, err = m.fn(m.ctx, j.v)
	returned = true
}

func (m *mapper[T, R]) deliver(i int, r R, err error) {
	if m.ring != nil {
		s := &m.ring[i%len(m.ring)]
		s.r, s.err = r, err
		s.ready <- struct{}{} // never blocks: the window keeps i's slot free
		return
	}
	select {
	case m.out <- result[R]{r, err}:
	case <-m.ctx.Done():
	}
}
