package netloop

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// conn is netloop's state for one connection.
//
// Ownership: fields marked "loop" are touched only on the connection's event
// loop (gnet callbacks and runnables handed to Execute). Fields under mu are
// shared with Respond, which runs on any goroutine, and with the ticker.
type conn struct {
	s    *Server
	gc   gnet.Conn
	info ConnInfo // loop; ID, Remote and Listener never change after newConn
	// tlsInfo is info.TLS, published for Conn.Info on other goroutines; atomic.
	tlsInfo atomic.Pointer[tls.ConnectionState]
	// value is the handler's (Conn.SetValue): written in ConnOpened, before
	// the first frame, read-only after.
	value any

	active     atomic.Bool  // a byte was read or written since the last tick; atomic
	seenActive int64        // unix ns of the last tick that found the conn active; ticker only
	reason     atomic.Int32 // close reason + 1; the first one set wins; atomic
	queuedB    atomic.Int64 // bytes of completed responses not yet written; atomic
	// mutedUntil is the unix ns before which no new frame starts
	// (Response.Throttle); 0 when never throttled; atomic.
	mutedUntil atomic.Int64
	// frameLimit is the largest frame the connection may start now
	// (Conn.SetMaxFrameBytes); 0 means Config.MaxFrameBytes; atomic.
	frameLimit atomic.Int32

	// loop
	p             parser
	nextSeq       uint64
	queue         []*Request // requests handed to the handler, in order, from qHead
	qHead         int
	inflightReqs  int        // admitted frames whose responses are not fully written
	inflightBytes int64      // their frame bytes
	held          bool       // the next frame is held back by a cap (counted in Stats.HeldConns)
	budgetWait    bool       // listed in s.mem's waiters; guarded by s.mem.mu
	budgetPrev    *conn      // before c in s.mem's waiters; guarded by s.mem.mu
	budgetNext    *conn      // after c in s.mem's waiters; guarded by s.mem.mu
	closing       bool       // a close was asked for; stop all work
	gone          bool       // OnClose ran
	parked        bool       // a write met a full socket; awaitWritable will resume it
	budget        int64      // bytes this pump may still write before yielding the loop
	w             writeState // progress through the response at the head of queue
	dup           *os.File   // dup of the socket, watched by Go's poller while parked
	tls           *tlsState  // nil on a plaintext listener
	closeAfterOut bool       // close once the TLS output is written (a Response asked to close)
	admitFn       func(int) bool
	runFn         gnet.Runnable // pump, from schedule
	writableFn    gnet.Runnable // resume after park

	mu        sync.Mutex
	closed    bool // OnClose ran: Respond releases instead of queueing
	scheduled bool // runFn is queued on the loop
	onLoop    bool // the loop is parsing and will flush afterwards: Respond need not wake it
	// ctx is cancelled when the connection closes; made on first use
	// (Request.Context), so connections that never ask pay nothing.
	ctx    context.Context
	cancel context.CancelFunc
}

func newConn(s *Server, gc gnet.Conn, listener int) *conn {
	c := &conn{
		s:    s,
		gc:   gc,
		info: ConnInfo{ID: s.nextID.Add(1), Remote: cloneAddr(gc.RemoteAddr()), Listener: listener},
		p:    parser{maxFrameBytes: s.cfg.MaxFrameBytes, charge: s.mem.charge},
	}
	c.seenActive = time.Now().UnixNano() // before the conn is published under s.mu
	c.admitFn = c.admit
	c.runFn = gnet.RunnableFunc(func(context.Context) error {
		c.mu.Lock()
		c.scheduled = false
		c.mu.Unlock()
		c.onLoopRun()
		return nil
	})
	c.writableFn = gnet.RunnableFunc(func(context.Context) error {
		c.parked = false
		c.onLoopRun()
		return nil
	})
	return c
}

// onLoopRun is the body of runnables queued with Execute. They run on the
// loop but outside OnTraffic, so a close is done here rather than by
// returning gnet.Close.
func (c *conn) onLoopRun() {
	if c.gone {
		return
	}
	c.pump()
	if c.closing && !c.gone {
		_ = c.gc.EventLoop().Close(c.gc)
	}
}

// pump reads frames and writes responses until neither makes progress. Loop only.
func (c *conn) pump() {
	c.budget = writeBudgetBytes
	if t := c.tls; t != nil && !t.ready {
		// The handshake goroutine reads what is fed and writes through
		// the pipe; flush sends its output.
		t.pipe.feed()
		if !t.begun && t.pipe.helloIn() {
			t.begun = true
			c.s.hs.start(c)
		}
		c.flush()
		c.checkInbound()
		if !c.closing && c.s.draining.Load() {
			c.closeWith(CloseShutdown)
		}
		return
	}
	for !c.closing {
		dispatched := c.parse()
		finished := c.flush()
		if dispatched == 0 && finished == 0 && (c.tls == nil || !c.tls.outDrained()) {
			break
		}
	}
	if !c.closing && c.s.draining.Load() && c.inflightReqs == 0 && (c.tls == nil || !c.tls.outPending()) {
		c.closeWith(CloseShutdown)
	}
}

// parse hands whole frames to the handler while the caps admit them. Loop only.
func (c *conn) parse() (dispatched int) {
	if c.s.draining.Load() || c.closeAfterOut {
		c.dropPartial()
		c.checkInbound()
		return 0
	}
	c.setOnLoop(true)
	var src source = c.gc
	if c.tls != nil {
		src = c.tls
	}
	var in int
	for !c.closing {
		if c.p.hdrN < sizePrefixBytes {
			c.p.maxFrameBytes = c.s.cfg.MaxFrameBytes
			if l := c.frameLimit.Load(); l > 0 {
				c.p.maxFrameBytes = l
			}
		}
		f, ok, n, err := c.p.next(src, c.admitFn)
		in += n
		if err != nil {
			if c.tlsOnPlaintext() {
				break
			}
			c.s.warn.Warn().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).
				Int32("size", int32(binary.BigEndian.Uint32(c.p.hdr[:]))).
				Int32("max_frame_bytes", c.p.maxFrameBytes).Msg("bad frame size, closing")
			c.closeWith(CloseBadFrame)
			break
		}
		if !ok {
			break
		}
		c.s.mem.completed(int64(len(f.b)))
		c.dispatch(f)
		dispatched++
	}
	c.setOnLoop(false)
	c.s.st.bytesIn.Add(int64(in))
	if c.tls != nil && !c.closing {
		if reason, failed := c.tls.readFailed(); failed {
			if reason == CloseTLS {
				c.s.warn.Warn().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).
					Err(c.tls.err).Msg("bad TLS record, closing")
			}
			c.closeWith(reason)
		}
	}

	held := (c.p.pending() || (c.tls != nil && c.tls.outFull)) && !c.closing
	if held != c.held {
		c.held = held
		if held {
			c.s.st.heldConns.Add(1)
		} else {
			c.s.st.heldConns.Add(-1)
		}
	}
	if held {
		c.checkInbound()
	}
	return dispatched
}

// checkInbound closes a connection whose unparsed bytes, which gnet keeps
// reading and buffering while netloop holds frames back, pass the cap. Loop only.
func (c *conn) checkInbound() {
	limit := c.s.cfg.MaxInboundBufferedBytes
	if c.tls != nil {
		// TLS records wait whole in gnet's buffer (tlsPipe.readRecord).
		limit = max(limit, tlsRecordHeaderBytes+maxTLSRecordBytes)
	}
	if b := c.gc.InboundBuffered(); int64(b) > limit {
		c.s.warn.Warn().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).
			Int("buffered", b).Int("inflight", c.inflightReqs).
			Int64("queued_bytes", c.queuedB.Load()).Msg("peer sends past the inbound cap, closing")
		c.closeWith(CloseInboundOverflow)
	}
}

// admit decides whether a frame of size bytes may start: the connection's
// own caps first, then the server-wide budget. Loop only.
func (c *conn) admit(size int) bool {
	cfg := &c.s.cfg
	if c.tlsOnPlaintext() {
		return false
	}
	if u := c.mutedUntil.Load(); u != 0 && time.Now().UnixNano() < u {
		return false // respond armed a timer that pumps at u
	}
	if c.inflightReqs >= cfg.MaxInflightRequests ||
		(c.inflightBytes > 0 && c.inflightBytes+int64(size) > cfg.MaxInflightBytes) ||
		c.queuedB.Load() > cfg.MaxOutboundBytes {
		return false
	}
	if !c.s.mem.admit() {
		c.s.mem.wait(c)
		return false
	}
	c.inflightReqs++
	c.inflightBytes += int64(size)
	return true
}

// tlsOnPlaintext closes a plaintext connection whose first bytes are a TLS
// ClientHello rather than a frame, and reports whether it did. Loop only.
func (c *conn) tlsOnPlaintext() bool {
	if c.tls != nil || c.nextSeq != 0 || c.p.hdrN < 2 ||
		c.p.hdr[0] != tlsRecordTypeHandshake || c.p.hdr[1] != tlsMajorVersion {
		return false
	}
	c.s.warn.Warn().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).
		Int("listener", c.info.Listener).Msg("TLS client on a plaintext listener, closing")
	c.closeWith(CloseTLS)
	return true
}

// dropPartial abandons a frame being read (Stop). Loop only.
func (c *conn) dropPartial() {
	if size, ok := c.p.admittedSize(); ok {
		c.inflightReqs--
		c.inflightBytes -= int64(size)
	}
	c.releasePartial()
}

// releasePartial returns a part-read frame's buffer and budget. Loop only.
func (c *conn) releasePartial() {
	c.s.mem.releasePartial(int64(c.p.held()))
	c.p.release()
}

func (c *conn) dispatch(f frame) {
	r := &Request{
		Frame:     f.b,
		Conn:      c.info,
		respond:   respondConn,
		seq:       c.nextSeq,
		conn:      c,
		frameSize: int32(len(f.b)),
	}
	if c.s.obs != nil {
		r.arrived = nanotime()
	}
	r.buf.Store(f.buf)
	c.nextSeq++
	if c.qHead > 0 && len(c.queue) == cap(c.queue) {
		n := copy(c.queue, c.queue[c.qHead:])
		clear(c.queue[n:])
		c.queue, c.qHead = c.queue[:n], 0
	}
	c.queue = append(c.queue, r)
	c.s.st.frames.Add(1)
	c.s.st.inflightRequests.Add(1)
	c.s.h.Serve(r)
}

func (c *conn) setOnLoop(v bool) {
	c.mu.Lock()
	c.onLoop = v
	c.mu.Unlock()
}

// respondConn is Request.respond for requests read by netloop.
func respondConn(r *Request, resp Response) { r.conn.respond(r, resp) }

// respond records a response. Any goroutine.
func (c *conn) respond(r *Request, resp Response) {
	if resp.Throttle > 0 {
		c.mute(resp.Throttle)
	}
	size, file, ok := wireSize(resp)
	c.mu.Lock()
	if r.done {
		c.mu.Unlock()
		c.s.st.doubleResponds.Add(1)
		if resp.Release != nil {
			resp.Release()
		}
		return
	}
	r.done = true
	if c.closed {
		c.mu.Unlock()
		r.resp = resp
		c.s.drop(r)
		return
	}
	r.resp, r.size, r.file, r.bad = resp, size, file, !ok
	if ok && size > 0 {
		binary.BigEndian.PutUint32(r.hdr[:], uint32(size-sizePrefixBytes))
	}
	c.s.st.noteQueued(c.queuedB.Add(size))
	c.s.st.queuedBytes.Add(size)
	if !c.onLoop && !c.scheduled {
		c.scheduled = true
		// Under mu: OnClose cannot run meanwhile, so the loop's poller is
		// still open (gnet closes it only after closing every conn).
		_ = c.gc.EventLoop().Execute(context.Background(), c.runFn)
	}
	c.mu.Unlock()
}

// mute holds back the connection's next frames for d from now, and arms a
// timer that pumps the loop when d has passed (a runtime timer, not a
// goroutine, and only for throttled responses). Any goroutine.
func (c *conn) mute(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := c.mutedUntil.Load()
		if cur >= until {
			return // a later mute's timer covers this one
		}
		if c.mutedUntil.CompareAndSwap(cur, until) {
			break
		}
	}
	time.AfterFunc(d, c.schedule)
}

// wireSize returns the bytes a response takes on the wire (0 for no parts),
// whether it has file parts, and whether netloop can write it.
func wireSize(resp Response) (size int64, file, ok bool) {
	if len(resp.Parts) == 0 {
		return 0, false, true
	}
	var n int64
	for _, p := range resp.Parts {
		if p.File != nil {
			if p.Len < 0 || p.Off < 0 {
				return 0, false, false
			}
			n += p.Len
			file = true
		} else {
			n += int64(len(p.Bytes))
		}
		if n > math.MaxInt32 {
			return 0, false, false
		}
	}
	return n + sizePrefixBytes, file, true
}

// schedule queues a pump on the loop. Any goroutine.
func (c *conn) schedule() {
	c.mu.Lock()
	if !c.closed && !c.scheduled {
		c.scheduled = true
		_ = c.gc.EventLoop().Execute(context.Background(), c.runFn)
	}
	c.mu.Unlock()
}

// closeWith asks for a close from the loop; the caller's entry point does it.
func (c *conn) closeWith(r CloseReason) {
	c.reason.CompareAndSwap(0, int32(r)+1)
	c.closing = true
}

// closeAsync closes from any goroutine.
func (c *conn) closeAsync(r CloseReason) {
	c.mu.Lock()
	if !c.closed {
		c.reason.CompareAndSwap(0, int32(r)+1)
		_ = c.gc.Close()
	}
	c.mu.Unlock()
}

// onClose releases everything the connection holds. Loop only (OnClose).
func (c *conn) onClose(err error) {
	c.gone = true
	c.mu.Lock()
	c.closed = true
	cancel := c.cancel
	var done []*Request
	for _, r := range c.queue[c.qHead:] {
		if r.done {
			done = append(done, r)
		}
	}
	c.mu.Unlock()
	// Requests not yet answered stay with the handler, which learns of the
	// close through Request.Context; Respond drops them.
	if cancel != nil {
		cancel()
	}
	for _, r := range done {
		c.s.drop(r)
	}
	c.queue, c.qHead = nil, 0
	c.releasePartial()
	c.s.mem.forget(c)
	c.w.reset()
	if c.dup != nil {
		_ = c.dup.Close()
		c.dup = nil
	}
	if c.held {
		c.s.st.heldConns.Add(-1)
	}
	c.queuedB.Store(0)

	reason := ClosePeer
	if v := c.reason.Load(); v > 0 {
		reason = CloseReason(v - 1)
	} else if err == nil && c.s.draining.Load() {
		reason = CloseShutdown
	}
	if t := c.tls; t != nil {
		c.s.hs.forget(c)
		if !t.ready && t.hs != nil && reason == CloseHandshakeTimeout {
			c.s.st.tlsFailures.Add(1)
			c.s.tlsWarn.Warn().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).
				Int("listener", c.info.Listener).Dur("took", time.Since(t.hs.start)).
				Msg("TLS handshake timed out, closing")
		}
		t.release()
	}
	c.s.st.closes[reason].Add(1)
	c.s.st.connsOpen.Add(-1)
	c.s.unregister(c)
	c.s.log.Debug().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).
		Stringer("reason", reason).AnErr("error", err).Msg("closed")
}

// drop releases a request whose response will not be written.
func (s *Server) drop(r *Request) {
	if r.size > 0 {
		s.st.queuedBytes.Add(-r.size)
	}
	s.st.inflightRequests.Add(-1)
	r.release()
}

// release hands the response's resources and the frame buffer back.
func (r *Request) release() {
	if r.resp.Release != nil {
		r.resp.Release()
	}
	r.releaseFrame()
	r.Frame, r.resp = nil, Response{}
}

// releaseFrame returns the frame buffer to its pool and its bytes to the
// budget, once. Any goroutine.
func (r *Request) releaseFrame() {
	if bp := r.buf.Swap(nil); bp != nil {
		putBuf(bp)
		if r.conn != nil {
			r.conn.s.mem.release(int64(r.frameSize))
		}
	}
}

// context returns the context cancelled when c closes. Any goroutine.
func (c *conn) context() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancel(context.Background())
		if c.closed {
			c.cancel()
		}
	}
	return c.ctx
}

// head returns the oldest request whose response is not yet written, or nil. Loop only.
func (c *conn) head() *Request {
	if c.qHead == len(c.queue) {
		return nil
	}
	return c.queue[c.qHead]
}

// popHead removes the head request. Loop only.
func (c *conn) popHead() {
	c.queue[c.qHead] = nil
	c.qHead++
	if c.qHead == len(c.queue) {
		c.queue, c.qHead = c.queue[:0], 0
	}
}

// cloneAddr copies a remote address: gnet returns an IPv6 zone's bytes to a
// pool when the connection closes, and requests may outlive it.
func cloneAddr(a net.Addr) net.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return &net.TCPAddr{IP: slices.Clone(t.IP), Port: t.Port, Zone: strings.Clone(t.Zone)}
	}
	return a
}
