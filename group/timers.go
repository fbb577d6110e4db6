package group

import (
	"container/heap"
	"time"
)

// timer is one deadline in the coordinator's heap. The owner keeps the
// timer value and re-arms it in place, so a heartbeat costs an O(log n)
// fix-up and no allocation.
type timer struct {
	at  time.Time
	fn  func() // runs on the loop
	idx int    // position in the heap, -1 when not armed; loop only
}

func newTimer(fn func()) *timer { return &timer{fn: fn, idx: -1} }

func (t *timer) armed() bool { return t.idx >= 0 }

// timerHeap is a min-heap of deadlines (container/heap), indexed so timers
// can move.
type timerHeap []*timer

// in reports whether t is armed in h.
func (h timerHeap) in(t *timer) bool { return t.idx >= 0 && t.idx < len(h) && h[t.idx] == t }

func (h *timerHeap) set(t *timer, at time.Time) {
	t.at = at
	if h.in(t) {
		heap.Fix(h, t.idx)
		return
	}
	heap.Push(h, t)
}

func (h *timerHeap) remove(t *timer) {
	if h.in(t) {
		heap.Remove(h, t.idx)
	}
	t.idx = -1
}

func (h *timerHeap) pop() *timer { return heap.Pop(h).(*timer) }

// heap.Interface; use the methods above.

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }

func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.idx = len(*h)
	*h = append(*h, t)
}

func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}
