package netloop

import (
	"sync"
	"sync/atomic"
)

// budget is the broker-wide cap on request bytes held in memory (Kafka's
// queued.max.request.bytes). What counts is the frame buffers netloop
// holds: a frame's buffer is charged as it grows with the bytes that arrive
// (see parser), and given back when it is released: when the handler calls
// Request.ReleaseFrame, after the response is written or dropped, or when
// the connection closes part-way through the frame.
//
// The cap gates the start of frames only. A frame is admitted while the
// bytes of whole frames held are below the cap, whatever its size, and once
// admitted it may always grow to its end: so a frame as large as the cap
// (or larger) is never stuck waiting for room that only its own completion
// could free, and a client that announces 100 MiB and sends nothing holds
// nothing. Frames still being read are counted (used) but do not hold
// others back: a client that sends most of a few large frames and then
// stalls would otherwise stop every connection from starting a frame, for
// as long as it trickles. Their bytes are in transit, bounded per
// connection like gnet's buffer. (Kafka reserves the declared size up front
// instead, which lets a few clients that announce and stall starve everyone
// of the budget.) Bytes a client sends while its
// next frame waits stay unparsed in gnet's buffer, which gnet fills whatever
// we do; Config.MaxInboundBufferedBytes bounds them per connection.
//
// Connections refused a frame wait on the budget; when bytes are released
// below the cap every waiter is scheduled on its loop to try again. No loop
// ever blocks.
type budget struct {
	max  int64        // 0: no cap (bytes are still counted)
	used atomic.Int64 // bytes of frame buffers held; atomic
	// partial is the part of used held by frames still being read; atomic.
	partial atomic.Int64

	// The connections holding a frame back for the budget, in the order
	// they first asked: a list through conn.budgetPrev/budgetNext, so one
	// that closes leaves it in O(1) (a flood of waiters that all close must
	// not cost the loops O(waiters) each under a lock they all share).
	nwait atomic.Int32 // waiters listed, read without mu on release
	mu    sync.Mutex
	head  *conn // first waiter, guarded by mu
	tail  *conn // last waiter, guarded by mu
}

// admit reports whether a new frame may start. Any goroutine.
func (b *budget) admit() bool { return b.max == 0 || b.whole() < b.max }

// whole is the bytes held by frames read to their end.
func (b *budget) whole() int64 { return b.used.Load() - b.partial.Load() }

// charge counts n more bytes of buffer for a frame being read. Any goroutine.
func (b *budget) charge(n int64) {
	b.partial.Add(n)
	b.used.Add(n)
}

// completed moves a frame of n bytes, read to its end, from partial to
// whole. Loop only.
func (b *budget) completed(n int64) { b.partial.Add(-n) }

// releasePartial gives back the n bytes of a frame dropped part-read.
// Loop only.
func (b *budget) releasePartial(n int64) {
	b.partial.Add(-n)
	b.release(n)
}

// release gives n bytes back and wakes the waiters once there is room.
// Any goroutine.
func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	if b.used.Add(-n); b.nwait.Load() > 0 && b.whole() < b.max {
		b.wakeAll()
	}
}

// wait records that c holds a frame back for the budget; c is scheduled on
// its loop when room appears. Loop only (c's).
func (b *budget) wait(c *conn) {
	c.s.st.budgetWaits.Add(1)
	b.enlist(c)
	// Room may have appeared between the refusal and the registration,
	// with nobody left to wake c: look again.
	if b.whole() < b.max {
		b.wakeAll()
	}
}

// enlist puts c at the end of the waiters, unless it is listed already
// (then it keeps its place).
func (b *budget) enlist(c *conn) {
	b.mu.Lock()
	if !c.budgetWait {
		c.budgetWait, c.budgetPrev, c.budgetNext = true, b.tail, nil
		if b.tail != nil {
			b.tail.budgetNext = c
		} else {
			b.head = c
		}
		b.tail = c
		b.nwait.Add(1)
	}
	b.mu.Unlock()
}

// forget drops c from the waiters when it closes, so a closed connection
// is not kept until the next release. Loop only (c's).
func (b *budget) forget(c *conn) {
	b.mu.Lock()
	if c.budgetWait {
		if c.budgetPrev != nil {
			c.budgetPrev.budgetNext = c.budgetNext
		} else {
			b.head = c.budgetNext
		}
		if c.budgetNext != nil {
			c.budgetNext.budgetPrev = c.budgetPrev
		} else {
			b.tail = c.budgetPrev
		}
		c.budgetWait, c.budgetPrev, c.budgetNext = false, nil, nil
		b.nwait.Add(-1)
	}
	b.mu.Unlock()
}

// wakeAll schedules every waiter, in order, to try again.
func (b *budget) wakeAll() {
	for _, c := range b.take() {
		c.schedule()
	}
}

// take empties the waiters and returns them in order. The links are
// cleared under mu: once scheduled, a woken connection may wait again (on
// its loop) before the caller has scheduled the rest.
func (b *budget) take() []*conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.head == nil {
		return nil
	}
	ws := make([]*conn, 0, b.nwait.Load())
	for c := b.head; c != nil; {
		next := c.budgetNext
		c.budgetWait, c.budgetPrev, c.budgetNext = false, nil, nil
		ws = append(ws, c)
		c = next
	}
	b.head, b.tail = nil, nil
	b.nwait.Store(0)
	return ws
}
