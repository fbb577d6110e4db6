package netloop

import (
	"slices"
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
// bytes in use are below the cap, whatever its size, and once admitted it
// may always grow to its end: so a frame as large as the cap (or larger) is
// never stuck waiting for room that only its own completion could free, and
// a client that announces 100 MiB and sends nothing holds nothing. (Kafka
// reserves the declared size up front instead, which lets a few such
// clients starve everyone of the budget.) Bytes a client sends while its
// next frame waits stay unparsed in gnet's buffer, which gnet fills whatever
// we do; Config.MaxInboundBufferedBytes bounds them per connection.
//
// Connections refused a frame wait on the budget; when bytes are released
// below the cap every waiter is scheduled on its loop to try again. No loop
// ever blocks.
type budget struct {
	max  int64        // 0: no cap (bytes are still counted)
	used atomic.Int64 // bytes of frame buffers held; atomic

	nwait   atomic.Int32 // len(waiters), read without mu on release
	mu      sync.Mutex
	waiters []*conn // connections holding a frame back for the budget, guarded by mu
}

// admit reports whether a new frame may start. Any goroutine.
func (b *budget) admit() bool { return b.max == 0 || b.used.Load() < b.max }

// charge counts n more bytes of frame buffer. Any goroutine.
func (b *budget) charge(n int64) { b.used.Add(n) }

// release gives n bytes back and wakes the waiters once there is room.
// Any goroutine.
func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	if u := b.used.Add(-n); b.nwait.Load() > 0 && u < b.max {
		b.wakeAll()
	}
}

// wait records that c holds a frame back for the budget; c is scheduled on
// its loop when room appears. Loop only (c's).
func (b *budget) wait(c *conn) {
	c.s.st.budgetWaits.Add(1)
	b.mu.Lock()
	if !c.budgetWait {
		c.budgetWait = true
		b.waiters = append(b.waiters, c)
		b.nwait.Add(1)
	}
	b.mu.Unlock()
	// Room may have appeared between the refusal and the registration,
	// with nobody left to wake c: look again.
	if b.used.Load() < b.max {
		b.wakeAll()
	}
}

// forget drops c from the waiters when it closes, so a closed connection
// is not kept until the next release. Loop only (c's).
func (b *budget) forget(c *conn) {
	b.mu.Lock()
	if c.budgetWait {
		c.budgetWait = false
		if i := slices.Index(b.waiters, c); i >= 0 {
			b.waiters = slices.Delete(b.waiters, i, i+1)
			b.nwait.Add(-1)
		}
	}
	b.mu.Unlock()
}

func (b *budget) wakeAll() {
	b.mu.Lock()
	ws := b.waiters
	b.waiters = nil
	b.nwait.Store(0)
	for _, c := range ws {
		c.budgetWait = false
	}
	b.mu.Unlock()
	for _, c := range ws {
		c.schedule()
	}
}
