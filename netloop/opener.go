package netloop

import "context"

// Opener is an optional interface of a Handler that must see connections
// from their start, before any frame (an authentication deadline, for one).
// ConnOpened runs on the connection's event loop and must not block.
type Opener interface {
	ConnOpened(c Conn)
}

// Conn is a handle on an open connection, usable from any goroutine for as
// long as the handler keeps it; after the close its methods are harmless.
type Conn struct{ c *conn }

// Info identifies the connection, as in Request.Conn. Its TLS field is
// nil until the connection's handshake has finished: the loop publishes
// the state atomically (conn.tlsInfo), so Info may run on any goroutine
// while the handshake completes. Requests carry it from their first frame.
func (h Conn) Info() ConnInfo {
	c := h.c
	// Field by field: c.info.TLS is the loop's, written when the
	// handshake ends; the other fields never change after newConn.
	return ConnInfo{ID: c.info.ID, Remote: c.info.Remote, Listener: c.info.Listener, TLS: c.tlsInfo.Load()}
}

// SetValue attaches the handler's own per-connection value, which
// Request.ConnValue returns for every request of the connection. Call it
// from ConnOpened only: the loop serves no frame of the connection before
// ConnOpened returns, so every request sees the value without further
// synchronization, on the loop and on any goroutine the request is handed
// to.
func (h Conn) SetValue(v any) { h.c.value = v }

// Context is cancelled when the connection closes.
func (h Conn) Context() context.Context { return h.c.context() }

// Close closes the connection now, whatever it has in flight (counted as
// CloseHandler). It does nothing once the connection is closed.
func (h Conn) Close() { h.c.closeAsync(CloseHandler) }
