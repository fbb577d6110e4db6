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

// Info identifies the connection, as in Request.Conn.
func (h Conn) Info() ConnInfo { return h.c.info }

// Context is cancelled when the connection closes.
func (h Conn) Context() context.Context { return h.c.context() }

// Close closes the connection now, whatever it has in flight (counted as
// CloseHandler). It does nothing once the connection is closed.
func (h Conn) Close() { h.c.closeAsync(CloseHandler) }
