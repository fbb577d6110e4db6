package netloop

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
