package queue

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Counts are this client's own figures since it opened: the jobs it
// enqueued, and what became of the attempts its workers ran. Like any
// process's counters they start from zero in each process; add them up
// over the processes (Prometheus's sum does) for the whole queue's. The
// queue's own figures, the same whoever asks, are [Client.Stats].
type Counts struct {
	Queues []QueueCounts // by queue name
}

// QueueCounts are a client's figures for one named queue.
type QueueCounts struct {
	Queue    string
	Enqueued uint64
	// Attempts that ended, by outcome: Failed ones are to be tried again,
	// Dead ones failed their last attempt (or for good).
	Succeeded, Failed, Dead, Cancelled uint64
	// Duration is how long attempts ran; Wait how long jobs waited from
	// when they could run to their first attempt.
	Duration, Wait Histogram
}

// Histogram counts durations in buckets.
type Histogram struct {
	Bounds []time.Duration // the buckets' upper bounds, ascending
	Counts []uint64        // Counts[i] is how many were at most Bounds[i]
	Count  uint64          // how many in all
	Sum    time.Duration
}

// histogramBounds fit jobs from milliseconds to an hour.
var histogramBounds = [...]time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour,
}

// counts holds a client's counters, a set per named queue.
type counts struct {
	queues sync.Map // name -> *queueCounts
}

type queueCounts struct {
	enqueued, succeeded, failed, dead, cancelled atomic.Uint64
	duration, wait                               histogram
}

type histogram struct {
	buckets [len(histogramBounds) + 1]atomic.Uint64 // the last: above every bound
	sum     atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	i, _ := slices.BinarySearch(histogramBounds[:], d)
	h.buckets[i].Add(1)
	h.sum.Add(int64(d))
}

func (h *histogram) snapshot() Histogram {
	s := Histogram{Bounds: histogramBounds[:], Counts: make([]uint64, len(histogramBounds)), Sum: time.Duration(h.sum.Load())}
	for i := range h.buckets {
		s.Count += h.buckets[i].Load()
		if i < len(s.Counts) {
			s.Counts[i] = s.Count
		}
	}
	return s
}

func (cs *counts) of(queue string) *queueCounts {
	if q, ok := cs.queues.Load(queue); ok {
		return q.(*queueCounts)
	}
	q, _ := cs.queues.LoadOrStore(queue, new(queueCounts))
	return q.(*queueCounts)
}

// finished counts an attempt's outcome.
func (cs *counts) finished(info *Info, ran time.Duration) {
	q := cs.of(info.Queue)
	switch info.State {
	case Succeeded:
		q.succeeded.Add(1)
	case Retrying:
		q.failed.Add(1)
	case Dead:
		q.dead.Add(1)
	case Cancelled:
		q.cancelled.Add(1)
	default:
		return // handed back: not an attempt
	}
	q.duration.observe(ran)
}

// started counts the wait of a job's first attempt.
func (cs *counts) started(info *Info, now time.Time) {
	if info.Attempts != 1 {
		return
	}
	from := info.EnqueuedAt
	if info.RunAt.After(from) {
		from = info.RunAt
	}
	cs.of(info.Queue).wait.observe(max(now.Sub(from), 0))
}

// Counts returns this client's figures.
func (c *Client) Counts() Counts {
	var out Counts
	c.counts.queues.Range(func(k, v any) bool {
		q := v.(*queueCounts)
		out.Queues = append(out.Queues, QueueCounts{
			Queue: k.(string), Enqueued: q.enqueued.Load(),
			Succeeded: q.succeeded.Load(), Failed: q.failed.Load(), Dead: q.dead.Load(), Cancelled: q.cancelled.Load(),
			Duration: q.duration.snapshot(), Wait: q.wait.snapshot(),
		})
		return true
	})
	slices.SortFunc(out.Queues, func(a, b QueueCounts) int { return strings.Compare(a.Queue, b.Queue) })
	return out
}
