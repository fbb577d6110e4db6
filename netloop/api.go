// Package netloop runs the network side of klite on gnet v2 reactor loops.
//
// It knows frames, not Kafka: a frame is a 4-byte big-endian size followed by
// that many bytes. Each whole frame is handed to a Handler; the handler answers
// with a Response, possibly from another goroutine and possibly out of order,
// and netloop writes responses back strictly in request order per connection.
// Response parts that name a file range go out with sendfile(2).
//
// Invariants:
//   - A frame handed to Serve is a private copy (a pooled buffer), never a
//     slice of gnet's shared read buffer.
//   - Memory per connection is bounded: in-flight requests and bytes are capped,
//     and a peer that keeps sending past the caps or stops reading its
//     responses past the outbound cap is disconnected.
//   - Frame buffers grow with the bytes that have arrived, never with the
//     size a prefix announces. Past Config.MaxQueuedRequestBytes of whole
//     frames held server-wide, no connection starts a new frame until
//     bytes are released (frames still being read do not hold others back); frames already started are read to their end,
//     so a frame as large as the cap cannot deadlock. Bytes still in
//     transit (a part-read frame, unparsed bytes gnet buffered for a
//     held connection) are bounded per connection, not server-wide: gnet
//     gives no way to stop reading a socket.
//   - Request.Context is cancelled when the connection closes.
//   - A response for a connection that has closed is released, not written.
//   - Response.Release is called exactly once, whatever happens.
//
// How it works. All per-connection state lives on the connection's event loop;
// Respond only marks a request done under a small mutex and, when the loop is
// not already going to look, queues one Execute to it. The loop writes done
// responses from the head of the connection's queue, so order is netloop's, not
// gnet's queues'. netloop writes to the socket itself (writev, sendfile) and
// never uses gnet's outbound buffer, so unsent bytes stay in the handler's
// buffers and count against MaxOutboundBytes. When the socket is full the
// connection parks: a goroutine waits for writability on a dup of the socket
// through Go's poller and resumes the connection on its loop. gnet keeps
// reading sockets whatever netloop does, so a connection held back by a cap
// has its unparsed bytes counted and is closed past MaxInboundBufferedBytes.
//
// Several listeners (Config.Listeners) share the loops; a listener with a
// tls.Config speaks TLS on the same loops (see tls.go): the handshake on a
// short-lived goroutine, records decrypted and responses encrypted on the
// loop, file parts read and encrypted rather than sent with sendfile.
package netloop

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Handler serves request frames. netloop defines it; the protocol layer implements it.
type Handler interface {
	// Serve handles one request. It runs on the connection's event loop and
	// must not block: it answers at once with req.Respond, or hands the work
	// to another goroutine that calls req.Respond later, exactly once.
	Serve(req *Request)
}

// Observer is an optional interface of a Handler that wants each
// request's latency: Written runs on the connection's event loop once the
// last byte of r's response is handed to the socket (not for a response
// dropped because its connection closed), with the time from the frame's
// last byte read to then. It must not block; r.Frame is nil if the
// handler released it. The handler gives r's meaning through r.Tag.
type Observer interface {
	Written(r *Request, took time.Duration)
}

// ConnInfo identifies the connection a request came from.
type ConnInfo struct {
	ID     uint64 // unique for the life of the process
	Remote net.Addr
	// Listener is the index, in Config.Listeners, of the listener the
	// connection came in on (0 with one listener).
	Listener int
	// TLS is the connection's TLS state once its handshake has finished
	// (before its first frame is served, so every Request carries it); nil
	// on a plaintext listener. See Conn.Info for it before the first frame.
	// Read only: connections with the same state may share it. Its
	// ExportKeyingMaterial is not kept (it answers an error).
	TLS *tls.ConnectionState
}

// Request is one frame read from a connection.
type Request struct {
	// Frame holds the bytes after the size prefix. It belongs to the handler
	// until Respond is called. netloop returns the buffer to its pool only
	// after the response has been written (or dropped), so response Parts may
	// alias Frame; nothing may keep a slice of it past that.
	Frame []byte
	Conn  ConnInfo

	respond func(*Request, Response) // set by netloop (or NewRequest)
	seq     uint64                   // position in the connection's response order
	conn    *conn                    // netloop's per-connection state; nil from NewRequest

	buf       atomic.Pointer[[]byte] // pooled buffer behind Frame; nil for an empty frame or once released
	frameSize int32                  // set when the request is read, immutable after (at most MaxFrameBytes)
	// Tag is the handler's, for its Observer: netloop never reads or
	// changes it. Set it before Respond. (Here, beside frameSize, it
	// keeps Request in its allocation size class.)
	Tag     uint32
	ctx     context.Context // from NewRequestContext; nil for netloop's own
	arrived int64           // nanotime the frame was whole, for Observer; immutable after

	// Guarded by conn.mu until done is seen true on the loop; immutable after.
	resp Response
	size int64 // bytes on the wire: 0 when Parts is empty, else 4 + sum of parts
	done bool
	bad  bool    // the response is malformed (negative length, over 2 GiB): close
	file bool    // some part is a file range
	hdr  [4]byte // size prefix, so a writev can point at it
}

// ConnValue is the value the handler attached to the request's connection
// with Conn.SetValue; nil when it attached none, and for a request made by
// NewRequest.
func (r *Request) ConnValue() any {
	if r.conn == nil {
		return nil
	}
	return r.conn.value
}

// Respond completes the request. Safe from any goroutine; call exactly once.
// A second call releases the given response and is otherwise ignored.
func (r *Request) Respond(resp Response) { r.respond(r, resp) }

// ReleaseFrame gives the frame's buffer back before the response, for a
// handler that has decoded the request into memory of its own and keeps no
// slice of Frame (a long-polling fetch, for one). Frame is nil afterwards.
// The buffer's bytes then stop counting against Config.MaxQueuedRequestBytes.
// Call it from the goroutine that owns the request; later calls do nothing.
func (r *Request) ReleaseFrame() {
	r.Frame = nil
	r.releaseFrame()
}

// Context returns a context that is cancelled when the request's connection
// closes, so a handler that parks a request (a long poll) can drop it and
// free what it holds at once. Respond must still be called; netloop releases
// the response of a closed connection without writing it.
func (r *Request) Context() context.Context {
	if r.conn == nil {
		if r.ctx == nil {
			return context.Background()
		}
		return r.ctx
	}
	return r.conn.context()
}

// Response is what goes back for one request.
//
// An empty Parts with Close false means "no response" (Kafka acks=0): the
// request still keeps its place in the order, so later responses wait for it.
type Response struct {
	// Parts are written in order after a 4-byte size prefix that netloop adds.
	Parts []Part
	// Release, when set, is called exactly once after the parts have been
	// written or dropped (connection closed). Pooled buffers and segment
	// references are returned here.
	Release func()
	// Close closes the connection after Parts are written.
	Close bool
	// Throttle, when positive, stops netloop from starting the
	// connection's next frames until Throttle has passed from Respond
	// (KIP-219: the response goes out at once, then the connection is
	// muted). Frames already started are read to their end; bytes the
	// peer sends meanwhile wait in gnet's buffer, under
	// Config.MaxInboundBufferedBytes.
	Throttle time.Duration
}

// Part is one piece of a response: bytes, or a range of a file.
type Part struct {
	Bytes []byte
	// File, when non-nil, sends Len bytes from offset Off of File instead of
	// Bytes, by sendfile when File has a usable descriptor, else by ReadAt.
	File SendFile
	Off  int64
	Len  int64
}

// SendFile is a file whose ranges can be sent. Fd returns ^uintptr(0) when
// the file has no kernel descriptor (in-memory test files); netloop then
// copies with ReadAt.
type SendFile interface {
	io.ReaderAt
	Fd() uintptr
}

// BytesPart is a convenience for a byte part.
func BytesPart(b []byte) Part { return Part{Bytes: b} }
