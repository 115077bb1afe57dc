package run

import (
	"container/heap"
	"time"
)

// medianTracker keeps the median of durations added one at a time: a
// max-heap of the lower half and a min-heap of the upper half.
type medianTracker struct {
	lo maxHeap
	hi minHeap
}

func (m *medianTracker) len() int { return m.lo.Len() + m.hi.Len() }

func (m *medianTracker) add(d time.Duration) {
	if m.lo.Len() == 0 || d <= m.lo.durs[0] {
		heap.Push(&m.lo, d)
	} else {
		heap.Push(&m.hi, d)
	}
	if m.lo.Len() > m.hi.Len()+1 {
		heap.Push(&m.hi, heap.Pop(&m.lo))
	} else if m.hi.Len() > m.lo.Len() {
		heap.Push(&m.lo, heap.Pop(&m.hi))
	}
}

func (m *medianTracker) median() time.Duration {
	if m.lo.Len() == 0 {
		return 0
	}
	return m.lo.durs[0]
}

type durations struct{ durs []time.Duration }

func (h durations) Len() int      { return len(h.durs) }
func (h durations) Swap(i, j int) { h.durs[i], h.durs[j] = h.durs[j], h.durs[i] }
func (h *durations) Push(x any)   { h.durs = append(h.durs, x.(time.Duration)) }
func (h *durations) Pop() (x any) {
	x, h.durs = h.durs[len(h.durs)-1], h.durs[:len(h.durs)-1]
	return x
}

type maxHeap struct{ durations }
type minHeap struct{ durations }

func (h maxHeap) Less(i, j int) bool { return h.durs[i] > h.durs[j] }
func (h minHeap) Less(i, j int) bool { return h.durs[i] < h.durs[j] }
