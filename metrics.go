package herd

import (
	"context"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics is a snapshot of a [Pool]'s counters, taken by [Pool.Metrics].
// The counters are read one by one while the pool runs, so they agree with
// each other only approximately; and a busy worker reports its successes
// in batches of up to 64, counting them as running until then. They are
// exact whenever the workers are idle, and after Close.
type Metrics struct {
	Workers   int    // workers running now
	Submitted uint64 // tasks accepted by Go, TryGo and groups
	Waiting   int    // tasks queued, not yet picked up
	Running   int    // tasks being run now
	Succeeded uint64 // tasks that returned nil
	Failed    uint64 // tasks that returned an error, after their retries
	Panicked  uint64 // tasks that panicked
	NotRun    uint64 // tasks discarded by Shutdown

	// Latency summarises how long tasks ran, retries included. To keep the
	// cost off the hot path of quick tasks, a worker times one task in 64
	// (the first included) while its tasks take less than 50µs, and every
	// task otherwise.
	Latency Latency
}

// Latency summarises the sampled run times of tasks. The quantiles are
// upper bounds, exact to within a factor of two.
type Latency struct {
	Samples       uint64
	Mean          time.Duration
	P50, P90, P99 time.Duration
	Max           time.Duration
}

const (
	latencySampleEvery = 64 // reading the clock twice costs about as much as a no-op task
	timeAllAbove       = 50 * time.Microsecond
)

// Metrics returns a snapshot of the pool's counters.
func (p *Pool) Metrics() Metrics {
	p.mu.Lock()
	c := p.retired
	for w := range p.workers {
		c.add(w.snapshot())
	}
	workers := len(p.workers)
	p.mu.Unlock()
	c.add(p.helper.snapshot())

	m := Metrics{
		Workers:   workers,
		Waiting:   len(p.tasks),
		Succeeded: c.succeeded,
		Failed:    c.failed,
		Panicked:  c.panicked,
		NotRun:    c.notRun,
		Latency:   c.latency.summary(),
	}
	// A task a worker has just taken may be in neither count for a moment,
	// never in both (the workers' counts are read first): the sum is at
	// most the true count, and the largest sum reported so far keeps
	// Submitted from going back, as a counter must.
	m.Submitted = raise(&p.submittedSeen, c.received+uint64(m.Waiting))
	if finished := c.succeeded + c.failed + c.panicked + c.notRun; c.received > finished {
		m.Running = int(c.received - finished)
	}
	return m
}

// raise makes v at least n and returns what it is then.
func raise(v *atomic.Uint64, n uint64) uint64 {
	for {
		old := v.Load()
		if old >= n || v.CompareAndSwap(old, n) {
			return max(old, n)
		}
	}
}

// worker holds one worker's counters. Only the worker writes them; Metrics
// reads them, so they are atomic, but never contended. Successes, the
// common case, are counted in batch and published every publishEvery tasks
// and whenever the worker is about to wait, which keeps an atomic add off
// the path of every task.
type worker struct {
	received, succeeded, failed, panicked, notRun atomic.Uint64
	latency                                       histogram
	unpublished                                   uint64 // successes not yet published

	// Only the worker's goroutine uses these.
	seq     uint32 // tasks taken, for sampling their run times
	timeAll bool   // the tasks are slow enough to time each one
}

const publishEvery = 64

// publish adds the batched successes to the published count. Only the
// worker's own goroutine calls it.
func (w *worker) publish() {
	if w.unpublished > 0 {
		w.succeeded.Add(w.unpublished)
		w.unpublished = 0
	}
}

type counts struct {
	received, succeeded, failed, panicked, notRun uint64
	latency                                       histogramSnapshot
}

func (w *worker) snapshot() counts {
	return counts{
		received:  w.received.Load(),
		succeeded: w.succeeded.Load(),
		failed:    w.failed.Load(),
		panicked:  w.panicked.Load(),
		notRun:    w.notRun.Load(),
		latency:   w.latency.snapshot(),
	}
}

func (c *counts) add(o counts) {
	c.received += o.received
	c.succeeded += o.succeeded
	c.failed += o.failed
	c.panicked += o.panicked
	c.notRun += o.notRun
	c.latency.add(o.latency)
}

// histogram counts durations in power-of-two buckets of nanoseconds.
type histogram struct {
	buckets [64]atomic.Uint64
	sum     atomic.Int64
	max     atomic.Int64
}

type histogramSnapshot struct {
	buckets  [64]uint64
	sum, max int64
}

func (h *histogram) record(d time.Duration) {
	ns := max(int64(d), 0)
	h.buckets[bits.Len64(uint64(ns))%64].Add(1)
	h.sum.Add(ns)
	if ns > h.max.Load() {
		h.max.Store(ns)
	}
}

func (h *histogram) snapshot() histogramSnapshot {
	var s histogramSnapshot
	for i := range h.buckets {
		s.buckets[i] = h.buckets[i].Load()
	}
	s.sum, s.max = h.sum.Load(), h.max.Load()
	return s
}

func (s *histogramSnapshot) add(o histogramSnapshot) {
	for i := range s.buckets {
		s.buckets[i] += o.buckets[i]
	}
	s.sum += o.sum
	s.max = max(s.max, o.max)
}

func (s *histogramSnapshot) summary() Latency {
	var n uint64
	for _, b := range s.buckets {
		n += b
	}
	if n == 0 {
		return Latency{}
	}
	quantile := func(q float64) time.Duration {
		rank := uint64(q * float64(n))
		var seen uint64
		for i, b := range s.buckets {
			seen += b
			if seen > rank {
				// Bucket i holds durations below 2^i ns.
				return min(time.Duration(uint64(1)<<i), time.Duration(s.max))
			}
		}
		return time.Duration(s.max)
	}
	return Latency{
		Samples: n,
		Mean:    time.Duration(s.sum / int64(n)),
		P50:     quantile(0.50),
		P90:     quantile(0.90),
		P99:     quantile(0.99),
		Max:     time.Duration(s.max),
	}
}

// limiter spaces task starts evenly at a rate, allowing a burst after idle
// time. It is a token bucket kept as the time the next start is allowed.
type limiter struct {
	mu       sync.Mutex
	interval time.Duration
	burst    time.Duration // how far behind now next may fall
	next     time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	interval := time.Duration(float64(time.Second) / rate)
	return &limiter{interval: interval, burst: time.Duration(burst-1) * interval}
}

// wait blocks until the caller may start, or ctx is done.
func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	now := time.Now()
	if earliest := now.Add(-l.burst); l.next.Before(earliest) {
		l.next = earliest
	}
	at := l.next
	l.next = l.next.Add(l.interval)
	l.mu.Unlock()

	d := at.Sub(now)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
