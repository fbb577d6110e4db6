package netloop

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// TLS on the event loop.
//
// crypto/tls runs over tlsPipe, an in-memory net.Conn: its Read takes bytes
// the loop has received, its Write appends ciphertext to a buffer the loop
// writes to the socket. After the handshake the loop drives the tls.Conn
// itself: a Read that finds no bytes returns a temporary net.Error, which
// crypto/tls passes back without failing the connection, and the next Read
// carries on where it stopped. The handshake cannot be suspended that way
// (crypto/tls keeps any handshake error for good), so it runs on a
// goroutine of its own, blocking on the pipe while the loop feeds it; at
// most Config.MaxHandshakes run at once, and a connection whose handshake
// has not finished HandshakeTimeout after accept is closed. A connection
// takes a slot (or its place in line for one) only once its first record
// has arrived whole: a client that connects and says nothing, or sends a
// few bytes and stalls, holds no slot, so a crowd of them cannot keep
// every other client's handshake waiting until its deadline. Then the
// connection is handed back to its loop and no goroutine is left.
//
// Plaintext connections have no tlsState (conn.tls is nil) and pay one
// pointer for all this.

const (
	// tlsWriteChunkBytes is the plaintext encrypted at a time: four full
	// records. Ciphertext for it fits tlsOutBytes, so the output buffer of
	// a busy connection is one pooled buffer that is never regrown.
	tlsWriteChunkBytes = 64 << 10
	tlsOutBytes        = 128 << 10
	// tlsPlainBytes holds one record's plaintext (2^14, RFC 8446 5.1).
	tlsPlainBytes = 16 << 10
	// maxHandshakeInBytes bounds what the loop passes to a handshake in
	// progress; the rest waits in gnet's buffer (and counts against
	// MaxInboundBufferedBytes there).
	maxHandshakeInBytes = 64 << 10
	// tlsRecordTypeHandshake and tlsMajorVersion start every TLS
	// ClientHello (type 22, version 3.x), so a plaintext listener reads
	// them as a size prefix of about 369 MB.
	tlsRecordTypeHandshake = 0x16
	tlsMajorVersion        = 0x03
	// tlsRecordHeaderBytes is a record's type, version and length.
	tlsRecordHeaderBytes = 5
)

// errWouldBlock is what tlsPipe.Read returns on the loop when no byte is
// buffered: crypto/tls treats a temporary net.Error as "try again later".
var errWouldBlock error = wouldBlockError{}

type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "netloop: no bytes buffered" }
func (wouldBlockError) Timeout() bool   { return true }
func (wouldBlockError) Temporary() bool { return true }

// tlsState is a TLS connection's state: the tls.Conn, the pipe under it and
// the decrypted bytes not yet parsed.
//
// Memory: an idle connection holds tlsState and the tls.Conn, nothing
// else of ours: the pipe's buffers and the plaintext buffer go back to the
// pool when drained, and what only the handshake needs (hs, the pipe's
// channels) is dropped when it hands back. The tls.Conn keeps its ciphers
// (2x896 B with AES-GCM) and its own 912 B; its record and handshake
// buffers, which it would keep at the largest size they reached, are
// released by tls_bufs.go while the layout check there holds.
type tlsState struct {
	tc   *tls.Conn
	pipe tlsPipe
	hs   *tlsHandshake // until the handshake succeeds; nil after

	// loop only
	begun    bool  // the first record arrived: the handshake has a slot or waits for one
	ready    bool  // handshake finished: tc is driven on the loop
	err      error // a read failed for good (bad record, alert, EOF)
	outCap   int   // Config.MaxOutboundBytes, at least a response chunk's ciphertext
	outFull  bool  // reading stopped: ciphertext past outCap waits for the socket
	plain    *[]byte
	plainOff int
	plainN   int
	lent     *[]byte // pooled buffer tc's rawInput holds during a Read (tls_bufs.go)
}

// tlsHandshake is the state a connection needs only until its handshake
// has handed it back to the loop.
type tlsHandshake struct {
	doneFn gnet.Runnable // handshakeDone, queued by the handshake goroutine
	err    error         // handshake result, written by its goroutine before it hands back
	timer  *time.Timer   // HandshakeTimeout; stopped when the handshake ends
	start  time.Time

	// the handshakes waiting line; under Server.hs.mu
	queued       bool
	qPrev, qNext *conn
}

// tlsPipe is the net.Conn under a tls.Conn. During the handshake its Read
// runs on the handshake goroutine and waits for bytes the loop feeds; after
// it, everything runs on the loop and Read takes bytes from gnet directly.
type tlsPipe struct {
	gc     gnet.Conn
	onLoop bool   // set on the loop when the handshake hands back; read by Read
	sched  func() // during the handshake: have the loop write out; nil after

	mu     sync.Mutex
	in     *[]byte // bytes fed by the loop, not yet read by tls: (*in)[inOff:]
	inOff  int
	hdr    [tlsRecordHeaderBytes]byte // the current record's header: hdrN bytes read, hdrOff handed to tls
	hdrN   uint8
	hdrOff uint8
	body   int32   // bytes of the current record's body not yet handed to tls
	out    *[]byte // ciphertext not yet written to the socket: (*out)[outOff:]
	outOff int
	closed bool
	wake   chan struct{} // cap 1: bytes were fed; nil after the handshake
	done   chan struct{} // closed by Close; nil after the handshake
}

func newTLSState(c *conn, cfg *tls.Config) *tlsState {
	t := &tlsState{hs: &tlsHandshake{start: time.Now()}, outCap: int(min(max(c.s.cfg.MaxOutboundBytes, tlsOutBytes), math.MaxInt32))}
	t.pipe = tlsPipe{gc: c.gc, sched: c.schedule, wake: make(chan struct{}, 1), done: make(chan struct{})}
	t.tc = tls.Server(&t.pipe, cfg)
	return t
}

// Read hands crypto/tls the bytes fed during the handshake, then those
// gnet holds, never past the end of the record it is in (readRecord).
func (p *tlsPipe) Read(b []byte) (int, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return 0, net.ErrClosed
		}
		n, dry := p.readRecord(b)
		onLoop := p.onLoop
		p.mu.Unlock()
		if dry && !onLoop {
			// gnet may hold more of this flight than feed took; no new
			// traffic will make the loop feed it (the client waits for
			// us), so ask.
			p.sched()
		}
		if n > 0 {
			return n, nil
		}
		if onLoop {
			return 0, errWouldBlock
		}
		select {
		case <-p.wake:
		case <-p.done:
		}
	}
}

// readRecord copies into b what is buffered (fed bytes first, then gnet's
// on the loop), at most to the end of the current record, so crypto/tls
// never holds part of the next one and its rawInput is empty after each
// record (see returnRaw). On the loop it also waits for a record to be
// whole before handing any of it: a peer trickling a record costs gnet's
// buffer, not a lent one. It reports whether the fed bytes ran dry. p.mu held.
func (p *tlsPipe) readRecord(b []byte) (n int, dry bool) {
	whole, dry := p.header()
	if !whole || p.onLoop && p.hdrOff == 0 && !p.bodyIn() {
		return 0, dry
	}
	if p.hdrOff < tlsRecordHeaderBytes {
		n = copy(b, p.hdr[p.hdrOff:])
		p.hdrOff += uint8(n)
	}
	if p.hdrOff == tlsRecordHeaderBytes {
		k, d := p.take(b[n:min(len(b), n+int(p.body))])
		n += k
		p.body -= int32(k)
		dry = dry || d
		if p.body == 0 {
			p.hdrN, p.hdrOff = 0, 0
		}
	}
	return n, dry
}

// recordIn reports whether readRecord has something to hand on the loop:
// fed bytes, or a whole record in gnet. Loop only.
func (p *tlsPipe) recordIn() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.in != nil || p.hdrOff > 0 {
		return true
	}
	whole, _ := p.header()
	return whole && p.bodyIn()
}

// header reads the current record's header as far as it can, and reports
// whether it is whole and whether the fed bytes ran dry. p.mu held.
func (p *tlsPipe) header() (whole, dry bool) {
	if p.hdrN < tlsRecordHeaderBytes {
		var k int
		k, dry = p.take(p.hdr[p.hdrN:])
		p.hdrN += uint8(k)
		if p.hdrN < tlsRecordHeaderBytes {
			return false, dry
		}
		p.body = int32(binary.BigEndian.Uint16(p.hdr[3:5]))
	}
	return true, dry
}

// bodyIn reports whether the rest of the current record's body is
// buffered, or is too long for crypto/tls to wait for. p.mu held.
func (p *tlsPipe) bodyIn() bool {
	return p.body > maxTLSRecordBytes || p.buffered() >= int(p.body)
}

// buffered is what take can copy now. p.mu held.
func (p *tlsPipe) buffered() int {
	n := 0
	if p.in != nil {
		n = len(*p.in) - p.inOff
	}
	if p.onLoop {
		n += p.gc.InboundBuffered()
	}
	return n
}

// take copies into b from the fed bytes, then (on the loop) from gnet,
// and reports whether the fed bytes ran dry. p.mu held.
func (p *tlsPipe) take(b []byte) (n int, dry bool) {
	if len(b) == 0 {
		return 0, false
	}
	if p.in != nil {
		n = copy(b, (*p.in)[p.inOff:])
		p.inOff += n
		if p.inOff == len(*p.in) {
			putBuf(p.in)
			p.in, p.inOff, dry = nil, 0, true
		}
	}
	if p.onLoop && n < len(b) {
		k, _ := p.gc.Read(b[n:])
		n += k
	}
	return n, dry
}

func (p *tlsPipe) Write(b []byte) (int, error) {
	n0 := len(b)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, net.ErrClosed
	}
	if p.onLoop && p.out == nil {
		// Nothing queued: try the socket first and keep only what it
		// does not take (an error shows again when drain retries).
		if n, _ := unix.Write(p.gc.Fd(), b); n > 0 {
			b = b[n:]
		}
	}
	if len(b) > 0 {
		// A busy connection's output takes one buffer that is never
		// regrown; a handshake flight (a few KiB) one its size, so a
		// storm of handshakes does not churn 128 KiB buffers.
		minCap := tlsOutBytes
		if !p.onLoop {
			minCap = 0
		}
		p.out = appendPooled(p.out, b, minCap)
	}
	p.mu.Unlock()
	if !p.onLoop {
		p.sched() // the loop writes it (flush drains out first)
	}
	return n0, nil
}

// Close ends the pipe: a waiting Read returns, later Writes fail. crypto/tls
// calls it when a handshake context ends; netloop when the connection closes.
func (p *tlsPipe) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		if p.done != nil {
			close(p.done)
		}
		putBuf(p.in)
		putBuf(p.out)
		p.in, p.inOff, p.out, p.outOff = nil, 0, nil, 0
	}
	p.mu.Unlock()
	return nil
}

func (p *tlsPipe) LocalAddr() net.Addr              { return p.gc.LocalAddr() }
func (p *tlsPipe) RemoteAddr() net.Addr             { return p.gc.RemoteAddr() }
func (p *tlsPipe) SetDeadline(time.Time) error      { return nil }
func (p *tlsPipe) SetReadDeadline(time.Time) error  { return nil }
func (p *tlsPipe) SetWriteDeadline(time.Time) error { return nil }

// appendPooled appends b to a pooled buffer, taking one of at least minCap
// bytes or regrowing it as needed.
func appendPooled(bp *[]byte, b []byte, minCap int) *[]byte {
	if bp == nil {
		bp = getBuf(max(len(b), minCap))
		*bp = (*bp)[:0]
	}
	if cap(*bp)-len(*bp) < len(b) {
		nb := getBuf(len(*bp) + len(b))
		*nb = append((*nb)[:0], *bp...)
		putBuf(bp)
		bp = nb
	}
	*bp = append(*bp, b...)
	return bp
}

// helloIn reports whether the handshake should start: the first record
// (the ClientHello) has arrived whole, or what has arrived is no TLS
// handshake record at all, which crypto/tls refuses at once. Loop only.
func (p *tlsPipe) helloIn() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.in == nil {
		return false
	}
	in := (*p.in)[p.inOff:]
	switch {
	case len(in) == 0:
		return false
	case in[0] != tlsRecordTypeHandshake:
		return true
	case len(in) < tlsRecordHeaderBytes:
		return false
	}
	n := int(binary.BigEndian.Uint16(in[3:5]))
	return len(in) >= tlsRecordHeaderBytes+n || tlsRecordHeaderBytes+n > maxHandshakeInBytes
}

// feed moves bytes gnet has buffered into the pipe for the handshake. Loop only.
func (p *tlsPipe) feed() {
	avail := p.gc.InboundBuffered()
	if avail == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	have := 0
	if p.in != nil {
		have = len(*p.in) - p.inOff
	}
	take := min(avail, maxHandshakeInBytes-have)
	if take <= 0 {
		return
	}
	if p.in == nil {
		p.in = getBuf(take)
		*p.in = (*p.in)[:0]
	} else if cap(*p.in)-len(*p.in) < take {
		nb := getBuf(have + take)
		*nb = append((*nb)[:0], (*p.in)[p.inOff:]...)
		putBuf(p.in)
		p.in, p.inOff = nb, 0
	}
	n0 := len(*p.in)
	n, _ := p.gc.Read((*p.in)[n0 : n0+take])
	*p.in = (*p.in)[:n0+n]
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// outPending reports whether ciphertext waits for the socket. Loop only.
func (t *tlsState) outPending() bool {
	t.pipe.mu.Lock()
	defer t.pipe.mu.Unlock()
	return t.pipe.out != nil
}

// outDrained reports, once, that reading stopped at outCap may go on now:
// the pump's loop then parses again rather than wait for traffic. Loop only.
func (t *tlsState) outDrained() bool {
	if t.outFull && t.outBytes() <= t.outCap {
		t.outFull = false
		return true
	}
	return false
}

// outBytes is the ciphertext waiting for the socket. Loop only.
func (t *tlsState) outBytes() int {
	t.pipe.mu.Lock()
	defer t.pipe.mu.Unlock()
	if t.pipe.out == nil {
		return 0
	}
	return len(*t.pipe.out) - t.pipe.outOff
}

// drain writes pending ciphertext to the socket. Loop only.
func (c *conn) drainTLS() (writeStatus, error) {
	p := &c.tls.pipe
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.out != nil {
		n, err := unix.Write(c.gc.Fd(), (*p.out)[p.outOff:])
		if n > 0 {
			p.outOff += n
			c.active.Store(true)
			if p.outOff == len(*p.out) {
				putBuf(p.out)
				p.out, p.outOff = nil, 0
			}
		}
		if st, err := writeResult(err); err != nil || st == blocked {
			return st, err
		}
	}
	return wrote, nil
}

// writev encrypts plaintext from iov, at most tlsWriteChunkBytes, once
// earlier ciphertext has gone out; it returns the plaintext bytes taken and
// EAGAIN when the socket still holds earlier ciphertext back. Loop only.
func (c *conn) writevTLS(iov [][]byte) (int, error) {
	if st, err := c.drainTLS(); err != nil || st == blocked {
		if err == nil {
			err = unix.EAGAIN
		}
		return 0, err
	}
	var n int
	var err error
	if len(iov) == 1 {
		b := iov[0]
		n, err = c.tls.tc.Write(b[:min(len(b), tlsWriteChunkBytes)])
	} else {
		stage := getBuf(tlsWriteChunkBytes)
		for _, b := range iov {
			k := copy((*stage)[n:], b)
			n += k
			if k < len(b) {
				break
			}
		}
		n, err = c.tls.tc.Write((*stage)[:n])
		putBuf(stage)
	}
	// pipe.Write tried the socket already; flush drains what is left
	// before its next write.
	return n, err
}

// Read and InboundBuffered make a TLS connection the parser's source: they
// serve decrypted bytes, one record at a time. Loop only.
func (t *tlsState) Read(b []byte) (int, error) {
	if t.plainOff == t.plainN && len(b) >= tlsPlainBytes {
		// Room for a whole record: decrypt straight into b. Nothing is
		// left behind in tc, so InboundBuffered stays exact.
		return t.read(b), nil
	}
	if t.plainOff == t.plainN && !t.fill() {
		return 0, nil
	}
	n := copy(b, (*t.plain)[t.plainOff:t.plainN])
	t.plainOff += n
	if t.plainOff == t.plainN {
		t.dropPlain()
	}
	return n, nil
}

func (t *tlsState) InboundBuffered() int {
	if t.plainOff == t.plainN && !t.fill() {
		return 0
	}
	return t.plainN - t.plainOff
}

// fill decrypts the next record's plaintext, when whole records are
// buffered, and reports whether there is plaintext. Loop only.
func (t *tlsState) fill() bool {
	if t.err != nil {
		return false
	}
	if t.plain == nil {
		t.plain = getBuf(tlsPlainBytes)
	}
	n := t.read(*t.plain)
	t.plainOff, t.plainN = 0, n
	if n == 0 {
		t.dropPlain()
		return false
	}
	return true
}

// read decrypts into b (at least a record long); a failure other than
// "no whole record yet" is kept in t.err. Loop only.
//
// Reading can make crypto/tls write (a KeyUpdate answered, an alert), and
// a peer that asks for those and never reads would pile ciphertext up in
// the pipe: while more than outCap of it waits, nothing is decrypted, and
// the connection is held like one whose responses pass the outbound cap.
func (t *tlsState) read(b []byte) int {
	if t.err != nil {
		return 0
	}
	if t.outFull = t.outBytes() > t.outCap; t.outFull {
		return 0
	}
	if tlsBufs.ok {
		if raw, _, _ := tlsConnBufs(t.tc); raw.Len() == 0 && !t.pipe.recordIn() {
			return 0 // nothing to parse: no call that would regrow rawInput
		}
		t.lendRaw()
	}
	n, err := t.tc.Read(b)
	t.returnRaw()
	if err != nil && !errors.Is(err, errWouldBlock) {
		t.err = err
	}
	return n
}

func (t *tlsState) dropPlain() {
	putBuf(t.plain)
	t.plain, t.plainOff, t.plainN = nil, 0, 0
}

// readFailed reports why reading stopped for good once every decrypted
// byte is parsed: ClosePeer for a clean end, CloseTLS for a bad record.
func (t *tlsState) readFailed() (CloseReason, bool) {
	if t.err == nil || t.plainOff < t.plainN {
		return 0, false
	}
	if errors.Is(t.err, io.EOF) {
		return ClosePeer, true
	}
	return CloseTLS, true
}

// release frees the TLS buffers. Loop only (OnClose).
func (t *tlsState) release() {
	if t.hs != nil && t.hs.timer != nil {
		t.hs.timer.Stop()
	}
	t.pipe.Close()
	t.dropPlain()
	t.lent = nil // tc may point at it still: left to the collector, not the pool
}

// startTLS begins the handshake of a new connection on a TLS listener. Loop only (OnOpen).
func (c *conn) startTLS(cfg *tls.Config) {
	s := c.s
	c.tls = newTLSState(c, cfg)
	c.tls.hs.timer = time.AfterFunc(s.cfg.HandshakeTimeout, func() { c.closeAsync(CloseHandshakeTimeout) })
	c.tls.hs.doneFn = gnet.RunnableFunc(func(context.Context) error {
		c.handshakeDone()
		return nil
	})
	// The slot is taken in pump, once the first record is in (helloIn).
}

// handshake runs one TLS handshake on its own goroutine, then hands the
// connection back to its loop.
func (c *conn) handshake() {
	t := c.tls
	c.s.st.tlsRunning.Add(1)
	err := t.tc.Handshake()
	if err == nil {
		t.returnRaw() // the handshake's buffers, before the loop owns tc
	}
	c.s.st.tlsRunning.Add(-1)
	c.s.hs.done()
	t.hs.err = err
	c.mu.Lock()
	if !c.closed {
		_ = c.gc.EventLoop().Execute(context.Background(), t.hs.doneFn)
	} else if err != nil && c.reason.Load() != int32(CloseHandshakeTimeout)+1 {
		// The peer left before the loop took the connection back (for
		// example on the alert the failed handshake wrote): handshakeDone
		// will not run, so the failure is counted here. A timeout was
		// counted when it closed the connection.
		c.s.st.tlsFailures.Add(1)
	}
	c.mu.Unlock()
}

// handshakeDone takes the connection back after its handshake. Loop only.
func (c *conn) handshakeDone() {
	if c.gone {
		return
	}
	t, s := c.tls, c.s
	t.hs.timer.Stop()
	t.hs.timer = nil
	if err := t.hs.err; err != nil {
		s.st.tlsFailures.Add(1)
		s.tlsWarn.Warn().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).
			Int("listener", c.info.Listener).Dur("took", time.Since(t.hs.start)).Err(err).
			Msg("TLS handshake failed, closing")
		_, _ = c.drainTLS() // the alert, when there is one: best effort
		c.closeWith(CloseTLS)
		_ = c.gc.EventLoop().Close(c.gc)
		return
	}
	s.st.tlsHandshakes.Add(1)
	st := s.tlsStates.get(t.tc.ConnectionState())
	c.info.TLS = st // requests from now on carry it
	c.tlsInfo.Store(st)
	t.ready = true
	t.hs = nil
	p := &t.pipe
	p.mu.Lock()
	p.onLoop = true
	p.sched, p.wake, p.done = nil, nil, nil
	p.mu.Unlock()
	c.onLoopRun()
}

// maxSharedTLSStates bounds tlsStates' map: the server name in a key is
// the client's to choose.
const maxSharedTLSStates = 64

// tlsStates hands out the ConnInfo.TLS of connections. Connections without
// peer certificates (no mTLS) and without per-connection values (TLS 1.3
// has no tls-unique) share one read-only state per distinct content,
// so an idle connection pays nothing for its own; others get a lean copy.
type tlsStates struct {
	mu     sync.Mutex
	shared map[tlsStateKey]*tls.ConnectionState
}

type tlsStateKey struct {
	version, suite         uint16
	curve                  tls.CurveID
	resumed, hrr, ech      bool
	serverName, negotiated string
}

func (ts *tlsStates) get(st tls.ConnectionState) *tls.ConnectionState {
	if st.PeerCertificates != nil || st.VerifiedChains != nil || st.TLSUnique != nil ||
		st.SignedCertificateTimestamps != nil || st.OCSPResponse != nil {
		return leanState(st)
	}
	k := tlsStateKey{version: st.Version, suite: st.CipherSuite, curve: st.CurveID, resumed: st.DidResume,
		hrr: st.HelloRetryRequest, ech: st.ECHAccepted, serverName: st.ServerName, negotiated: st.NegotiatedProtocol}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if p, ok := ts.shared[k]; ok {
		return p
	}
	p := leanState(st)
	if len(ts.shared) < maxSharedTLSStates {
		if ts.shared == nil {
			ts.shared = map[tlsStateKey]*tls.ConnectionState{}
		}
		ts.shared[k] = p
	}
	return p
}

// leanState is st without what an idle connection need not keep: its
// ExportKeyingMaterial (a closure holding the exporter secret) is left out,
// and answers an error. The certificates are the tls.Conn's own, not copies.
func leanState(st tls.ConnectionState) *tls.ConnectionState {
	return &tls.ConnectionState{
		Version:                     st.Version,
		HandshakeComplete:           st.HandshakeComplete,
		DidResume:                   st.DidResume,
		CipherSuite:                 st.CipherSuite,
		CurveID:                     st.CurveID,
		NegotiatedProtocol:          st.NegotiatedProtocol,
		ServerName:                  st.ServerName,
		PeerCertificates:            st.PeerCertificates,
		VerifiedChains:              st.VerifiedChains,
		SignedCertificateTimestamps: st.SignedCertificateTimestamps,
		OCSPResponse:                st.OCSPResponse,
		TLSUnique:                   st.TLSUnique,
		ECHAccepted:                 st.ECHAccepted,
		HelloRetryRequest:           st.HelloRetryRequest,
	}
}

// handshakes bounds the TLS handshakes in progress; connections past the
// cap wait in order for one to finish. The waiting line is a list through
// the connections' tlsState, so one that closes leaves it in O(1): a flood
// of queued connections that all time out must not cost the loops
// O(queue length) each.
type handshakes struct {
	max     int
	mu      sync.Mutex
	running int
	head    *conn // first waiting
	tail    *conn // last waiting
	n       int   // waiting
}

// start runs c's handshake now or when a slot frees. Any goroutine.
func (h *handshakes) start(c *conn) {
	if h.enqueue(c) {
		go c.handshake()
	}
}

// done frees a slot, or passes it to the next waiting handshake.
func (h *handshakes) done() {
	if next := h.next(); next != nil {
		go next.handshake()
	}
}

// enqueue takes a slot for c and reports true, or puts c at the end of
// the waiting line.
func (h *handshakes) enqueue(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running < h.max {
		h.running++
		return true
	}
	t := c.tls.hs
	t.queued, t.qPrev, t.qNext = true, h.tail, nil
	if h.tail != nil {
		h.tail.tls.hs.qNext = c
	} else {
		h.head = c
	}
	h.tail = c
	h.n++
	return false
}

// next hands the slot of a finished handshake to the first waiting
// connection and returns it, or frees the slot and returns nil.
func (h *handshakes) next() *conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.head
	if c == nil {
		h.running--
		return nil
	}
	h.unlink(c)
	return c
}

// forget drops c from the waiting line when it closes first. Loop only (c's).
func (h *handshakes) forget(c *conn) {
	h.mu.Lock()
	if c.tls.hs != nil && c.tls.hs.queued {
		h.unlink(c)
	}
	h.mu.Unlock()
}

// waiting is the length of the waiting line.
func (h *handshakes) waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// unlink takes a waiting c out of the line. h.mu held.
func (h *handshakes) unlink(c *conn) {
	t := c.tls.hs
	if t.qPrev != nil {
		t.qPrev.tls.hs.qNext = t.qNext
	} else {
		h.head = t.qNext
	}
	if t.qNext != nil {
		t.qNext.tls.hs.qPrev = t.qPrev
	} else {
		h.tail = t.qPrev
	}
	t.queued, t.qPrev, t.qNext = false, nil, nil
	h.n--
}
