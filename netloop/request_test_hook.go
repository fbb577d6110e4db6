package netloop

import "context"

// NewRequest builds a Request outside netloop, for handler tests in other
// packages: respond receives the Response the handler gives. netloop itself
// never calls it.
func NewRequest(frame []byte, conn ConnInfo, respond func(Response)) *Request {
	return &Request{
		Frame:   frame,
		Conn:    conn,
		respond: func(_ *Request, resp Response) { respond(resp) },
	}
}

// NewRequestContext is NewRequest whose Context is ctx, for handler tests
// that close the "connection" by cancelling ctx.
func NewRequestContext(ctx context.Context, frame []byte, conn ConnInfo, respond func(Response)) *Request {
	r := NewRequest(frame, conn, respond)
	r.ctx = ctx
	return r
}
