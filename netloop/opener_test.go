package netloop

import (
	"crypto/tls"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// opener echoes frames and records the connections it saw open.
type opener struct {
	mu    sync.Mutex
	conns []Conn
}

func (o *opener) Serve(r *Request) { echo.Serve(r) }

func (o *opener) ConnOpened(c Conn) {
	o.mu.Lock()
	o.conns = append(o.conns, c)
	o.mu.Unlock()
}

func (o *opener) opened() []Conn {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Conn(nil), o.conns...)
}

// TestOpener: a Handler that is an Opener sees each connection open before
// its first frame, and can close it from another goroutine through the
// handle, which then cancels its context and does nothing more.
func TestOpener(t *testing.T) {
	o := &opener{}
	s := startServer(t, Config{}, o)
	a, b := dial(t, s), dial(t, s)
	a.send([]byte("a"))
	a.read()
	waitFor(t, "two opens", func() bool { return len(o.opened()) == 2 })
	conns := o.opened()
	if conns[0].Info().ID == conns[1].Info().ID {
		t.Fatal("two connections, one id")
	}
	var victim Conn
	for _, c := range conns {
		if c.Info().Remote.String() == b.c.LocalAddr().String() {
			victim = c
		}
	}
	if victim.c == nil {
		t.Fatal("the silent connection was not announced")
	}
	ctx := victim.Context()
	go victim.Close()
	b.expectClosed()
	<-ctx.Done()
	victim.Close() // after the close: harmless
	a.send([]byte("still here"))
	if got := string(a.read()); got != "still here" {
		t.Fatalf("other connection answered %q", got)
	}
	waitFor(t, "handler close counted", func() bool { return s.Stats().Closes[CloseHandler] == 1 })
}

// infoWatcher is an Opener that reads Conn.Info from another goroutine
// from the moment the connection opens until it shows the TLS state.
type infoWatcher struct {
	opener
	sawTLS chan ConnInfo
}

func (w *infoWatcher) ConnOpened(c Conn) {
	w.opener.ConnOpened(c)
	go func() {
		for c.Context().Err() == nil {
			if ci := c.Info(); ci.TLS != nil {
				w.sawTLS <- ci
				return
			}
			runtime.Gosched()
		}
	}()
}

// TestConnInfoDuringHandshake: Conn.Info is usable from any goroutine
// while the loop finishes the TLS handshake and publishes the TLS state
// (run with -race: a plain read of the field the loop writes is a race),
// and it shows that state once the handshake is done.
func TestConnInfoDuringHandshake(t *testing.T) {
	cfg, ca := tlsListeners(t, nil)
	w := &infoWatcher{sawTLS: make(chan ConnInfo, 1)}
	s := startServer(t, cfg, w)
	c := dialTLS(t, s, ca, nil)
	c.send([]byte("x"))
	c.read()
	select {
	case ci := <-w.sawTLS:
		if ci.Listener != 1 || ci.TLS.Version < tls.VersionTLS12 || ci.ID == 0 {
			t.Fatalf("Info after the handshake: %+v", ci)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Info never showed the TLS state")
	}
}

// TestConnValue: the value attached in ConnOpened comes with every request
// of the connection, and only that connection's.
func TestConnValue(t *testing.T) {
	h := &valueHandler{}
	s := startServer(t, Config{}, h)
	a, b := dial(t, s), dial(t, s)
	for i := 0; i < 3; i++ {
		a.send([]byte("a"))
		b.send([]byte("b"))
	}
	for i := 0; i < 3; i++ {
		if got, want := string(a.read()), "a:"+fmt.Sprint(h.idOf(a)); got != want {
			t.Fatalf("a got %q, want %q", got, want)
		}
		if got, want := string(b.read()), "b:"+fmt.Sprint(h.idOf(b)); got != want {
			t.Fatalf("b got %q, want %q", got, want)
		}
	}
}

// valueHandler attaches each connection's id as its value and answers a
// frame with the frame and the value it came with.
type valueHandler struct {
	mu  sync.Mutex
	ids map[string]uint64 // by remote address
}

func (h *valueHandler) ConnOpened(c Conn) {
	ci := c.Info()
	c.SetValue(ci.ID)
	h.mu.Lock()
	if h.ids == nil {
		h.ids = map[string]uint64{}
	}
	h.ids[ci.Remote.String()] = ci.ID
	h.mu.Unlock()
}

func (h *valueHandler) Serve(r *Request) {
	v, _ := r.ConnValue().(uint64)
	r.Respond(Response{Parts: []Part{BytesPart([]byte(fmt.Sprintf("%s:%d", r.Frame, v)))}})
}

func (h *valueHandler) idOf(c *client) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ids[c.c.LocalAddr().String()]
}
