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
// returns once every goroutine Map started has exited. If ctx is cancelled,
// Map does the same after yielding ctx's error once, with the zero R.
//
// When fn is quick, values are handed to workers in small batches, sized so
// that a batch takes some tens of microseconds, to keep the cost per value
// low. A value is never held back while a worker is idle: not to wait for
// more input, which may itself wait for the consumer, nor behind a slow call
// on another worker.
//
// in is read on a goroutine of its own. If it panics (or calls
// runtime.Goexit), the values it yielded before are mapped and yielded, then
// the panic is yielded as a [*PanicError] with the zero R, and Map ends. in
// must return soon after its yield returns false, as every well-behaved
// iterator does.
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
				m.cancelled(yield)
				return
			}
			if c == nil { // in is exhausted
				if m.inErr != nil {
					var zero R
					yield(zero, m.inErr)
				}
				return
			}
			for i := 0; ; i++ {
				if !c.ready(i) && !m.await(c, i) || m.ctx.Err() != nil {
					m.cancelled(yield)
					return
				}
				if i == c.n {
					break
				}
				if !yield(c.res[i], c.errs[i]) {
					return
				}
			}
			m.unref(c)
		}
	}
}

// MapUnordered is [Map] yielding results as they are ready, whatever their
// place in the input: each result as soon as its call returns. Put whatever
// identifies the input in R when the consumer needs it.
func MapUnordered[T, R any](ctx context.Context, workers int, in iter.Seq[T], fn func(context.Context, T) (R, error)) iter.Seq2[R, error] {
	return func(yield func(R, error) bool) {
		m := startMapper(ctx, workers, in, fn, false)
		defer m.stop()
		done := m.ctx.Done()
		fed := m.fed
		var batch []readyValue[T, R]
		for yielded := int64(0); ; {
			m.rmu.Lock()
			batch, m.ready = m.ready, batch[:0]
			m.rmu.Unlock()
			for _, d := range batch {
				if m.ctx.Err() != nil {
					m.cancelled(yield)
					return
				}
				if !yield(d.c.res[d.i], d.c.errs[d.i]) {
					return
				}
				yielded++
				if d.c.yielded++; d.c.yielded == d.c.n {
					m.unref(d.c)
				}
			}
			if len(batch) > 0 {
				clear(batch)
				continue // look again before waiting
			}
			if fed == nil && yielded == m.values.Load() {
				if m.inErr != nil {
					var zero R
					yield(zero, m.inErr)
				}
				return
			}
			m.waiting.Store(true)
			m.rmu.Lock()
			more := len(m.ready) > 0 // done between the look and the flag
			m.rmu.Unlock()
			if !more {
				select {
				case <-m.wake:
				case <-fed:
					fed = nil // m.values is final
				case <-done:
					m.cancelled(yield)
					return
				}
			}
			m.waiting.Store(false)
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
				fail(escaped(recover()))
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

// mapper is the machinery behind one range loop over Map or MapUnordered.
//
// A feeder goroutine reads in and appends its values to a pending chunk,
// which it seals, handing it to the workers, when it is full (see
// chunkLimit) or a worker is idle. A worker that finds nothing else to do
// seals the pending chunk itself, so a value never waits for the next one,
// which may be waiting for the consumer. Workers claim the values of sealed
// chunks one by one, oldest chunk first, so an idle worker shares a chunk
// that another is busy with. A fixed set of chunks (the window) bounds how
// far the feeder may run ahead of the consumer.
type mapper[T, R any] struct {
	parent  context.Context
	ctx     context.Context // cancelled when the range loop ends
	cancel  context.CancelFunc
	fn      func(context.Context, T) (R, error)
	ordered bool
	wg      sync.WaitGroup

	free   chan *chunk[T, R] // chunks not in flight: the window
	order  chan *chunk[T, R] // ordered: chunks in input order, then nil
	fed    chan struct{}     // closed once the feeder has sealed its last chunk
	values atomic.Int64      // values in sealed chunks
	inErr  error             // in's panic; read after fed or the nil on order

	rmu   sync.Mutex         // unordered: guards ready
	ready []readyValue[T, R] // unordered: values done and not yet taken by the consumer

	mu      sync.Mutex
	cond    sync.Cond      // on mu: workers wait for a chunk
	pending *chunk[T, R]   // being filled by the feeder, not sealed yet
	open    []*chunk[T, R] // sealed chunks with values not claimed yet, oldest first
	idle    int            // workers waiting on cond
	ended   bool           // no more chunks will come, or the loop ended

	waiting atomic.Bool   // the consumer waits on wake
	wake    chan struct{} // a value is done, or (ordered) a chunk sealed

	perValue atomic.Int64 // recent nanoseconds per call of fn
}

// readyValue names a value whose result is ready: value i of c.
type readyValue[T, R any] struct {
	c *chunk[T, R]
	i int
}

type chunk[T, R any] struct {
	vals    []T
	res     []R
	errs    []error
	done    []atomic.Bool // ordered: value i's result is set
	n       int           // the number of values, set when sealed
	sealed  atomic.Bool
	next    atomic.Int64 // the next value to claim
	yielded int          // unordered: values the consumer has yielded

	// refs counts who may still use the chunk: the consumer, and each
	// worker that took it. The last to let go puts it back in the window.
	refs atomic.Int32
}

func startMapper[T, R any](ctx context.Context, workers int, in iter.Seq[T], fn func(context.Context, T) (R, error), ordered bool) *mapper[T, R] {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	window := chunksPerJob * workers
	m := &mapper[T, R]{
		parent:  ctx,
		fn:      fn,
		ordered: ordered,
		free:    make(chan *chunk[T, R], window),
		fed:     make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
	m.ctx, m.cancel = context.WithCancel(ctx)
	m.cond.L = &m.mu
	for range window {
		m.free <- new(chunk[T, R])
	}
	if ordered {
		m.order = make(chan *chunk[T, R], window+1)
	}
	m.wg.Go(func() { m.feed(in) })
	for range workers {
		m.wg.Go(m.work)
	}
	return m
}

// stop cancels whatever is still running and waits for every goroutine.
func (m *mapper[T, R]) stop() {
	m.cancel()
	m.mu.Lock()
	m.ended = true
	m.cond.Broadcast()
	m.mu.Unlock()
	m.wg.Wait()
}

// cancelled yields the error of the parent context, if that is why the
// loop ends.
func (m *mapper[T, R]) cancelled(yield func(R, error) bool) {
	if err := m.parent.Err(); err != nil {
		var zero R
		yield(zero, err)
	}
}

// await waits until value i of c is done, or c is sealed with fewer
// values. It reports false if the loop is cancelled first.
func (m *mapper[T, R]) await(c *chunk[T, R], i int) bool {
	done := m.ctx.Done()
	for !c.ready(i) {
		m.waiting.Store(true)
		if c.ready(i) { // done between the check and the flag
			m.waiting.Store(false)
			break
		}
		select {
		case <-m.wake:
		case <-done:
			m.waiting.Store(false)
			return false
		}
		m.waiting.Store(false)
	}
	return true
}

func (c *chunk[T, R]) ready(i int) bool {
	return c.sealed.Load() && (i == c.n || c.done[i].Load())
}

// signal wakes the consumer if it waits.
func (m *mapper[T, R]) signal() {
	if m.waiting.Load() {
		select {
		case m.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// unref lets go of c; the last user clears it and puts it back in the
// window.
func (m *mapper[T, R]) unref(c *chunk[T, R]) {
	if c.refs.Add(-1) > 0 {
		return
	}
	clear(c.vals)
	clear(c.res)
	clear(c.errs)
	for i := range c.done {
		c.done[i].Store(false)
	}
	c.done = c.done[:0]
	c.vals = c.vals[:0]
	c.sealed.Store(false)
	m.free <- c // never blocks: there are only as many chunks as room
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
	returned := false
	defer func() {
		if !returned {
			m.inErr = escaped(recover())
		}
		m.mu.Lock()
		if m.pending != nil {
			m.seal()
		}
		m.ended = true
		m.cond.Broadcast()
		m.mu.Unlock()
		close(m.fed)
		if m.ordered {
			m.order <- nil // never blocks: order has room for every chunk and this
		}
	}()
	done := m.ctx.Done()
	var c *chunk[T, R] // the chunk the feeder fills, unless a worker sealed it
	limit := 1
	for v := range in {
		if c != nil {
			m.mu.Lock()
			if m.pending == c {
				c.vals = append(c.vals, v)
				if len(c.vals) >= limit {
					m.seal()
					c = nil
				}
				m.mu.Unlock()
				continue
			}
			m.mu.Unlock()
		}
		select {
		case c = <-m.free:
		case <-done:
			returned = true
			return
		}
		limit = m.chunkLimit()
		if m.ordered {
			m.order <- c
		}
		m.mu.Lock()
		c.vals = append(c.vals, v)
		m.pending = c
		if limit == 1 {
			m.seal()
			c = nil
		} else if m.idle > 0 {
			m.cond.Signal() // it takes what the chunk holds when it wakes
		}
		m.mu.Unlock()
	}
	returned = true
}

// seal hands the pending chunk to the workers. m.mu must be held.
func (m *mapper[T, R]) seal() {
	c := m.pending
	m.pending = nil
	c.n = len(c.vals)
	c.res = resize(c.res, c.n)
	c.errs = resize(c.errs, c.n)
	if m.ordered {
		c.done = resize(c.done, c.n)
	}
	c.next.Store(0)
	c.yielded = 0
	c.refs.Store(1) // the consumer's
	m.values.Add(int64(c.n))
	m.open = append(m.open, c)
	c.sealed.Store(true)
	if m.idle > 1 && c.n > 1 {
		m.cond.Broadcast()
	} else if m.idle > 0 {
		m.cond.Signal()
	}
	if m.ordered {
		m.signal() // the consumer may wait to know c.n
	}
}

func resize[S ~[]E, E any](s S, n int) S {
	if cap(s) < n {
		return make(S, n)
	}
	return s[:n]
}

// work runs values until no more will come.
func (m *mapper[T, R]) work() {
	for c := m.take(); c != nil; c = m.take() {
		m.run(c)
	}
}

// take returns the oldest chunk with values to claim, waiting for one, or
// nil when no more will come.
func (m *mapper[T, R]) take() *chunk[T, R] {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		switch {
		case m.ctx.Err() != nil:
			return nil
		case len(m.open) > 0:
			c := m.open[0]
			c.refs.Add(1)
			return c
		case m.pending != nil:
			m.seal() // don't wait for more input: it may wait for the consumer
			continue
		case m.ended:
			return nil
		}
		m.idle++
		m.cond.Wait()
		m.idle--
	}
}

// run claims values of c and calls fn on them until none is left, then
// lets go of c.
func (m *mapper[T, R]) run(c *chunk[T, R]) {
	start := time.Now()
	ran := 0
	for {
		i := int(c.next.Add(1) - 1)
		if i >= c.n {
			break
		}
		if i == c.n-1 { // the last claim: no worker need take c any more
			m.close(c)
		}
		if err := m.ctx.Err(); err != nil {
			c.errs[i] = err
		} else {
			m.call(c, i)
			ran++
		}
		m.finish(c, i)
	}
	if ran > 0 {
		per := int64(time.Since(start)) / int64(ran)
		m.perValue.Store((m.perValue.Load() + per + 1) / 2)
	}
	m.unref(c)
}

// close takes c, all of whose values are claimed, off the open list.
func (m *mapper[T, R]) close(c *chunk[T, R]) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, o := range m.open {
		if o == c {
			m.open = append(m.open[:i], m.open[i+1:]...)
			return
		}
	}
}

// finish publishes the result of value i of c.
func (m *mapper[T, R]) finish(c *chunk[T, R], i int) {
	if m.ordered {
		c.done[i].Store(true)
	} else {
		m.rmu.Lock()
		m.ready = append(m.ready, readyValue[T, R]{c, i})
		m.rmu.Unlock()
	}
	m.signal()
}

// call runs fn on value i of c, turning a panic into a *PanicError. A call
// of runtime.Goexit ends this goroutine whatever we do; the value gets an
// error and a new worker carries on.
func (m *mapper[T, R]) call(c *chunk[T, R], i int) {
	returned := false
	defer func() {
		if !returned {
			c.errs[i] = escaped(recover())
			if c.errs[i] == errGoexit {
				m.finish(c, i)
				m.unref(c)
				m.wg.Go(m.work)
			}
		}
	}()
	c.res[i], c.errs[i] = m.fn(m.ctx, c.vals[i])
	returned = true
}
