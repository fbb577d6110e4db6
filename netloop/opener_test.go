package netloop

import (
	"sync"
	"testing"
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
