package netloop

import (
	"sync/atomic"
	"time"
)

// epoch anchors nanotime.
var epoch = time.Now()

// nanotime is monotonic nanoseconds since the process started netloop
// (never 0: Request.arrived 0 means not stamped).
func nanotime() int64 { return int64(time.Since(epoch)) + 1 }

// CloseReason says why netloop closed a connection.
type CloseReason int32

// Close reasons, the index into Stats.Closes.
const (
	ClosePeer             CloseReason = iota // the peer closed or reset it, or a read failed
	CloseIdle                                // no byte read or written for IdleTimeout
	CloseBadFrame                            // negative size prefix or one above MaxFrameBytes
	CloseInboundOverflow                     // unparsed inbound bytes above MaxInboundBufferedBytes
	CloseHandler                             // a Response asked for it (Close true)
	CloseBadResponse                         // a Response netloop cannot write (negative length, over 2 GiB)
	CloseWriteError                          // a write, sendfile or file read failed
	CloseShutdown                            // Server.Stop
	CloseRefused                             // MaxConns reached, or the server is stopping
	CloseTLS                                 // a TLS handshake failed, a TLS record was bad, or TLS came to a plaintext listener
	CloseHandshakeTimeout                    // a TLS handshake did not finish within HandshakeTimeout
	CloseConnRate                            // the client's address opened connections faster than MaxConnCreationRatePerIP
	numCloseReasons
)

var closeReasonNames = [numCloseReasons]string{
	"peer", "idle", "bad_frame", "inbound_overflow", "handler", "bad_response", "write_error", "shutdown", "refused",
	"tls", "handshake_timeout", "conn_rate",
}

func (r CloseReason) String() string {
	if r < 0 || r >= numCloseReasons {
		return "unknown"
	}
	return closeReasonNames[r]
}

// Stats is a snapshot of a Server's counters. Gauges say so; the rest only grow.
type Stats struct {
	ConnsOpen     int64 // gauge: connections open now (refused ones never count)
	ConnsAccepted int64 // connections accepted, refused ones included
	Frames        int64 // request frames handed to the handler
	BytesIn       int64 // bytes parsed from connections
	BytesOut      int64 // bytes written to connections, size prefixes and file bytes included
	SendfileBytes int64 // of BytesOut, bytes sent with sendfile(2)
	FileCopyBytes int64 // of BytesOut, file bytes copied with ReadAt (no descriptor, or sendfile refused)
	WriteParks    int64 // times a write met a full socket and waited for it to drain

	InflightRequests int64 // gauge: requests handed to the handler, response not yet written or dropped
	QueuedBytes      int64 // gauge: bytes of completed responses not yet written
	MaxConnQueued    int64 // high-water mark of one connection's queued response bytes
	HeldConns        int64 // gauge: connections whose next frame is held back by a cap
	RequestBytes     int64 // gauge: request frame bytes reserved against MaxQueuedRequestBytes
	BudgetWaits      int64 // times a frame was held back because MaxQueuedRequestBytes was reached

	DoubleResponds int64 // Respond called more than once for a request (a handler bug)

	TLSHandshakes        int64 // TLS handshakes completed
	TLSHandshakeFailures int64 // TLS handshakes that failed or timed out
	TLSHandshaking       int64 // gauge: TLS handshakes running now (at most MaxHandshakes)

	Closes [numCloseReasons]int64 // connections closed, by reason
}

// counters are the live values behind Stats. All atomic.
type counters struct {
	connsOpen, connsAccepted                 atomic.Int64
	frames, bytesIn, bytesOut, sendfileBytes atomic.Int64
	fileCopyBytes, writeParks                atomic.Int64
	inflightRequests, queuedBytes, heldConns atomic.Int64
	doubleResponds, maxConnQueued            atomic.Int64
	budgetWaits                              atomic.Int64
	tlsHandshakes, tlsFailures, tlsRunning   atomic.Int64
	closes                                   [numCloseReasons]atomic.Int64
}

func (c *counters) snapshot() Stats {
	s := Stats{
		ConnsOpen:            c.connsOpen.Load(),
		ConnsAccepted:        c.connsAccepted.Load(),
		Frames:               c.frames.Load(),
		BytesIn:              c.bytesIn.Load(),
		BytesOut:             c.bytesOut.Load(),
		SendfileBytes:        c.sendfileBytes.Load(),
		FileCopyBytes:        c.fileCopyBytes.Load(),
		WriteParks:           c.writeParks.Load(),
		InflightRequests:     c.inflightRequests.Load(),
		QueuedBytes:          c.queuedBytes.Load(),
		MaxConnQueued:        c.maxConnQueued.Load(),
		HeldConns:            c.heldConns.Load(),
		DoubleResponds:       c.doubleResponds.Load(),
		BudgetWaits:          c.budgetWaits.Load(),
		TLSHandshakes:        c.tlsHandshakes.Load(),
		TLSHandshakeFailures: c.tlsFailures.Load(),
		TLSHandshaking:       c.tlsRunning.Load(),
	}
	for i := range c.closes {
		s.Closes[i] = c.closes[i].Load()
	}
	return s
}

// noteQueued raises the high-water mark of one connection's queued bytes.
func (c *counters) noteQueued(v int64) {
	for {
		old := c.maxConnQueued.Load()
		if v <= old || c.maxConnQueued.CompareAndSwap(old, v) {
			return
		}
	}
}
