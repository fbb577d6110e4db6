// Package s3fault is a reverse proxy for tests that stands between an S3
// client and a real S3 server and injects faults, switchable at runtime:
// pass requests through, fail them all (503 SlowDown, as S3 throttles, or
// a reset connection, as a dead network does), or delay them.
package s3fault

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what the proxy does with a request.
type Mode int32

const (
	// Pass forwards requests (after the delay, if one is set).
	Pass Mode = iota
	// SlowDown answers every request with 503 SlowDown.
	SlowDown
	// Reset closes every connection with a TCP reset, no response.
	Reset
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case SlowDown:
		return "slowdown"
	case Reset:
		return "reset"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

const slowDownBody = `<?xml version="1.0" encoding="UTF-8"?>` +
	`<Error><Code>SlowDown</Code><Message>Please reduce your request rate (s3fault).</Message></Error>`

// Proxy is a running fault-injecting proxy on a loopback port.
type Proxy struct {
	target *url.URL
	rp     *httputil.ReverseProxy
	srv    *http.Server
	ln     net.Listener
	served chan struct{}

	mode     atomic.Int32
	delay    atomic.Int64                  // nanoseconds
	hold     atomic.Pointer[chan struct{}] // non-nil: requests wait until it closes
	requests atomic.Int64
	faults   atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu: open client connections
}

// New starts a proxy to target (an http:// URL) on 127.0.0.1, in mode Pass.
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, errors.New("s3fault: target must be an http:// URL")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: u, ln: ln, served: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			// The client signed the request for the proxy's host; S3
			// checks the signature against Host, so keep it.
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
		// A failed upstream request is a 502 to the client; the S3
		// client's retry handles it, tests need no log line for it.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second, ConnState: p.track}
	go func() {
		defer close(p.served)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// URL is the proxy's endpoint for S3 clients.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetMode switches the fault mode for requests that arrive from now on.
// Leaving Pass also drops open client connections, so pooled connections
// do not carry a request past the switch.
func (p *Proxy) SetMode(m Mode) {
	p.mode.Store(int32(m))
	if m != Pass {
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
	}
}

// Mode returns the current mode.
func (p *Proxy) Mode() Mode { return Mode(p.mode.Load()) }

// SetDelay delays every request by d before it is handled (0: none).
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Hold makes requests that arrive from now on wait until Release (or
// until their client gives up), so a test can look at a client stuck on
// the bucket without racing it.
func (p *Proxy) Hold() {
	ch := make(chan struct{})
	p.hold.Store(&ch)
}

// Release lets held requests and later ones through.
func (p *Proxy) Release() {
	if ch := p.hold.Swap(nil); ch != nil {
		close(*ch)
	}
}

// Requests is how many requests arrived; Faults how many got a fault.
func (p *Proxy) Requests() int64 { return p.requests.Load() }
func (p *Proxy) Faults() int64   { return p.faults.Load() }

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	<-p.served
	return err
}

func (p *Proxy) track(c net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateNew:
		p.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(p.conns, c)
	}
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	if d := time.Duration(p.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if ch := p.hold.Load(); ch != nil {
		select {
		case <-*ch:
		case <-r.Context().Done():
			return
		}
	}
	switch Mode(p.mode.Load()) {
	case SlowDown:
		p.faults.Add(1)
		// Read what the client sends so it sees the answer, not a broken
		// pipe; the bytes go nowhere.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("Content-Length", strconv.Itoa(len(slowDownBody)))
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, slowDownBody)
	case Reset:
		p.faults.Add(1)
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		c, _, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST
		}
		_ = c.Close()
	default:
		p.rp.ServeHTTP(w, r)
	}
}
