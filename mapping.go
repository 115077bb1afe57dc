package herd

import (
	"context"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Map runs fn on every value of in with the given number of workers (zero
// means GOMAXPROCS) and yields the results in input order, each as soon as
// it and every result before it are ready. An error from fn is yielded in
// its place; a panic in fn is yielded as a [*PanicError].
//
// A bounded window of values is in flight ahead of the consumer, so memory
// stays bounded for an endless in. Breaking out of the range loop cancels
// the context given to the running calls of fn, stops reading in, and
// returns once every goroutine Map started has exited; so does ctx being
// cancelled, after which no more results are yielded.
//
// When fn is quick, values are handed to workers in small batches, sized so
// that a batch takes some tens of microseconds, to keep the cost per value
// low; a value is never held back waiting for more input while a worker is
// idle.
//
// in is read on a goroutine of its own. It must return soon after its yield
// returns false, as every well-behaved iterator does.
func Map[T, R any](ctx context.Context, workers int, in iter.Seq[T], fn func(context.Context, T) (R, error)) iter.Seq2[R, error] {
	return func(yield func(R, error) bool) {
		m := startMapper(ctx, workers, in, fn, true)
		defer m.stop()
		done := m.ctx.Done()
		for {
			var c *chunk[T, R]
			select {
			case c = <-m.order:
			case <-done:
				return
			}
			if c == nil {
				return // in is exhausted
			}
			select {
			case <-c.ready:
			case <-done:
				return
			}
			if !m.yieldAll(c, yield) {
				return
			}
		}
	}
}

// MapUnordered is [Map] yielding results as soon as they are ready, whatever
// their place in the input. Put whatever identifies the input in R when the
// consumer needs it.
func MapUnordered[T, R any](ctx context.Context, workers int, in iter.Seq[T], fn func(context.Context, T) (R, error)) iter.Seq2[R, error] {
	return func(yield func(R, error) bool) {
		m := startMapper(ctx, workers, in, fn, false)
		defer m.stop()
		done := m.ctx.Done()
		for {
			select {
			case c, open := <-m.finished:
				if !open || !m.yieldAll(c, yield) {
					return
				}
			case <-done:
				return
			}
		}
	}
}

// MapSlice runs fn on every element of in with the given number of workers
// (zero means GOMAXPROCS) and returns the results in input order. At the
// first error it cancels the calls still running, starts no more, and
// returns that error with no results. A panic in fn is returned as a
// [*PanicError].
func MapSlice[T, R any](ctx context.Context, workers int, in []T, fn func(context.Context, T) (R, error)) ([]R, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := make([]R, len(in))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next     atomic.Int64
		failed   atomic.Bool
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		if failed.CompareAndSwap(false, true) {
			firstErr = err
			cancel(err)
		}
	}
	work := func() {
		// Workers claim indexes one at a time; each result goes straight
		// to its place, so nothing needs reordering. A panic or Goexit
		// fails the whole call, which only needs noticing once per worker.
		finished := false
		defer func() {
			if !finished {
				if v := recover(); v != nil {
					fail(newPanicError(v))
				} else {
					fail(errGoexit)
				}
			}
		}()
		for ctx.Err() == nil {
			i := int(next.Add(1) - 1)
			if i >= len(in) {
				break
			}
			var err error
			if out[i], err = fn(ctx, in[i]); err != nil {
				fail(err)
				break
			}
		}
		finished = true
	}
	for range min(workers, len(in)) {
		wg.Go(work)
	}
	wg.Wait()
	if failed.Load() {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

const (
	chunkTarget  = 20 * time.Microsecond // how long a batch of values should take
	maxChunk     = 128                   // values per batch at most
	chunksPerJob = 4                     // batches in flight per worker: the window
)

// mapper is the machinery behind one range loop over Map or MapUnordered: a
// feeder goroutine reading in and cutting it into chunks, workers calling fn
// on each value of a chunk, and a fixed set of chunks that bounds how far the
// feeder may run ahead of the consumer.
type mapper[T, R any] struct {
	ctx    context.Context
	cancel context.CancelFunc
	fn     func(context.Context, T) (R, error)
	wg     sync.WaitGroup

	free     chan *chunk[T, R] // chunks not in flight: the window
	jobs     chan *chunk[T, R] // unbuffered, so a send succeeds only to an idle worker
	order    chan *chunk[T, R] // ordered: chunks in input order, then nil
	finished chan *chunk[T, R] // unordered: chunks done, closed after the last
	running  sync.WaitGroup    // unordered: the workers, for closing finished

	perValue atomic.Int64 // recent nanoseconds per call of fn
}

type chunk[T, R any] struct {
	vals  []T
	res   []R
	errs  []error
	ready chan struct{} // ordered: receives once res and errs are set
}

func startMapper[T, R any](ctx context.Context, workers int, in iter.Seq[T], fn func(context.Context, T) (R, error), ordered bool) *mapper[T, R] {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	window := chunksPerJob * workers
	m := &mapper[T, R]{
		fn:   fn,
		free: make(chan *chunk[T, R], window),
		jobs: make(chan *chunk[T, R]),
	}
	m.ctx, m.cancel = context.WithCancel(ctx)
	for range window {
		c := new(chunk[T, R])
		if ordered {
			c.ready = make(chan struct{}, 1)
		}
		m.free <- c
	}
	if ordered {
		m.order = make(chan *chunk[T, R], window+1)
	} else {
		m.finished = make(chan *chunk[T, R], window)
		m.running.Add(workers)
		m.wg.Go(func() {
			m.running.Wait()
			close(m.finished)
		})
	}
	m.wg.Go(func() { m.feed(in) })
	for range workers {
		m.wg.Go(func() { m.work(nil, 0) })
	}
	return m
}

// stop cancels whatever is still running and waits for every goroutine.
func (m *mapper[T, R]) stop() {
	m.cancel()
	m.wg.Wait()
}

// yieldAll yields the results of c, then puts it back in the window.
func (m *mapper[T, R]) yieldAll(c *chunk[T, R], yield func(R, error) bool) bool {
	done := m.ctx.Done()
	for i := range c.vals {
		select {
		case <-done:
			return false
		default:
		}
		if !yield(c.res[i], c.errs[i]) {
			return false
		}
	}
	clear(c.vals)
	clear(c.res)
	clear(c.errs)
	c.vals, c.res, c.errs = c.vals[:0], c.res[:0], c.errs[:0]
	m.free <- c // never blocks: there are only as many chunks as room
	return true
}

// chunkLimit is how many values the next chunk may hold: enough to take
// about chunkTarget, judging by the calls so far.
func (m *mapper[T, R]) chunkLimit() int {
	per := m.perValue.Load()
	if per <= 0 {
		return 1 // nothing measured yet
	}
	return int(min(max(int64(chunkTarget)/per, 1), maxChunk))
}

func (m *mapper[T, R]) feed(in iter.Seq[T]) {
	defer func() {
		close(m.jobs)
		if m.order != nil {
			m.order <- nil // never blocks: order has room for every chunk and this
		}
	}()
	done := m.ctx.Done()
	var c *chunk[T, R]
	limit := 1
	send := func(blocking bool) bool {
		if blocking {
			select {
			case m.jobs <- c:
			case <-done:
				return false
			}
		} else {
			select {
			case m.jobs <- c:
			default:
				return false
			}
		}
		if m.order != nil {
			m.order <- c
		}
		c = nil
		return true
	}
	for v := range in {
		if c == nil {
			select {
			case c = <-m.free:
			case <-done:
				return
			}
			limit = m.chunkLimit()
		}
		c.vals = append(c.vals, v)
		if len(c.vals) >= limit {
			if !send(true) {
				return
			}
			continue
		}
		send(false) // a worker is idle: don't make it wait for more input
	}
	if c != nil {
		send(true)
	}
}

// work runs chunks until jobs is closed, starting with the values of c from
// index from on, if c is not nil.
func (m *mapper[T, R]) work(c *chunk[T, R], from int) {
	if m.finished != nil {
		defer m.running.Done()
	}
	if c != nil {
		m.run(c, from)
	}
	for c := range m.jobs {
		m.run(c, 0)
	}
}

// run calls fn on the values of c from index from on and hands c on.
func (m *mapper[T, R]) run(c *chunk[T, R], from int) {
	n := len(c.vals)
	if cap(c.res) < n {
		c.res, c.errs = make([]R, n), make([]error, n)
	}
	c.res, c.errs = c.res[:n], c.errs[:n]
	start := time.Now()
	for i := from; i < n; i++ {
		if m.ctx.Err() != nil {
			c.errs[i] = m.ctx.Err()
			continue
		}
		m.call(c, i)
	}
	if from == 0 {
		per := int64(time.Since(start)) / int64(n)
		m.perValue.Store((m.perValue.Load() + per + 1) / 2)
	}
	if c.ready != nil {
		c.ready <- struct{}{}
	} else {
		m.finished <- c // never blocks: finished has room for every chunk
	}
}

// call runs fn on value i of c, turning a panic into a *PanicError. A call
// of runtime.Goexit ends this goroutine whatever we do; the value gets an
// error and a new worker carries on with the rest of the chunk.
func (m *mapper[T, R]) call(c *chunk[T, R], i int) {
	returned := false
	defer func() {
		if !returned {
			if v := recover(); v != nil {
				c.errs[i] = newPanicError(v)
			} else {
				c.errs[i] = errGoexit
				if m.finished != nil {
					m.running.Add(1)
				}
				m.wg.Go(func() { m.work(c, i+1) })
			}
		}
	}()
	c.res[i], c.errs[i] = m.fn(m.ctx, c.vals[i])
	returned = true
}
