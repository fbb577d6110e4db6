package group

import "time"

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

// timerHeap is a min-heap of deadlines, indexed so timers can move.
type timerHeap []*timer

func (h *timerHeap) set(t *timer, at time.Time) {
	t.at = at
	if t.idx >= 0 && t.idx < len(*h) && (*h)[t.idx] == t {
		h.fix(t.idx)
		return
	}
	t.idx = len(*h)
	*h = append(*h, t)
	h.up(t.idx)
}

func (h *timerHeap) remove(t *timer) {
	i := t.idx
	if i < 0 || i >= len(*h) || (*h)[i] != t {
		t.idx = -1
		return
	}
	last := len(*h) - 1
	h.swap(i, last)
	(*h)[last] = nil
	*h = (*h)[:last]
	if i < last {
		h.fix(i)
	}
	t.idx = -1
}

func (h *timerHeap) pop() *timer {
	t := (*h)[0]
	h.remove(t)
	return t
}

func (h timerHeap) less(i, j int) bool { return h[i].at.Before(h[j].at) }

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h timerHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}
