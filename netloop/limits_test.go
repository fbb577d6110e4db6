package netloop

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBadInputClosesOnlyThatConn(t *testing.T) {
	s := startServer(t, Config{MaxFrameBytes: 1 << 20}, echo)
	good := dial(t, s)
	cases := map[string][]byte{
		"negative size": binary.BigEndian.AppendUint32(nil, 0x80000000),
		"huge size":     binary.BigEndian.AppendUint32(nil, 1<<20+1),
		"garbage":       []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"after a frame": append(frameBytes([]byte("fine")), 0xff, 0xff, 0xff, 0xff),
	}
	var n int64
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			c := dial(t, s)
			if _, err := c.c.Write(in); err != nil {
				t.Fatal(err)
			}
			c.expectClosed()
			n++
			waitFor(t, "bad frame counted", func() bool { return s.Stats().Closes[CloseBadFrame] == n })
		})
	}
	good.send([]byte("still here"))
	if got := string(good.read()); got != "still here" {
		t.Fatalf("got %q", got)
	}
}

// bigResponder answers every frame with size bytes, without waiting.
type bigResponder struct {
	size     int
	released atomic.Int64
}

func (h *bigResponder) Serve(r *Request) {
	r.Respond(Response{Parts: []Part{BytesPart(make([]byte, h.size))}, Release: func() { h.released.Add(1) }})
}

// A client that never reads its responses must not grow the server's memory:
// the responses queued for it stay under the outbound cap (plus one response),
// and once it sends past the inbound cap it is disconnected.
func TestNeverReadingClient(t *testing.T) {
	const respSize, outCap, inCap = 256 << 10, 1 << 20, 1 << 20
	h := &bigResponder{size: respSize}
	s := startServer(t, Config{
		MaxFrameBytes:           64 << 10,
		MaxOutboundBytes:        outCap,
		MaxInboundBufferedBytes: inCap,
	}, h)
	c := dial(t, s)
	sendErr := make(chan error, 1)
	go func() {
		req := frameBytes(make([]byte, 1000))
		for {
			if _, err := c.c.Write(req); err != nil {
				sendErr <- err
				return
			}
		}
	}()
	waitFor(t, "held conn", func() bool { return s.Stats().HeldConns == 1 || s.Stats().Closes[CloseInboundOverflow] == 1 })
	waitFor(t, "overflow close", func() bool { return s.Stats().Closes[CloseInboundOverflow] == 1 })
	<-sendErr
	st := s.Stats()
	if st.MaxConnQueued > outCap+respSize+4 {
		t.Fatalf("queued %d bytes for one conn, cap %d", st.MaxConnQueued, outCap)
	}
	if st.QueuedBytes != 0 || st.InflightRequests != 0 || st.ConnsOpen != 0 {
		t.Fatalf("stats after close %+v", st)
	}
	if h.released.Load() != st.Frames {
		t.Fatalf("released %d of %d responses", h.released.Load(), st.Frames)
	}
}

// A reader that stalls with a modest backlog is held at the cap, then closed
// by the idle timeout because its writes make no progress.
func TestStalledReaderIdleClose(t *testing.T) {
	const respSize, outCap = 256 << 10, 1 << 20
	h := &bigResponder{size: respSize}
	s := startServer(t, Config{MaxOutboundBytes: outCap, IdleTimeout: 300 * time.Millisecond}, h)
	c := dial(t, s)
	w := bufio.NewWriter(c.c)
	for range 200 {
		w.Write(frameBytes([]byte("x")))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "idle close", func() bool { return s.Stats().Closes[CloseIdle] == 1 })
	st := s.Stats()
	if st.MaxConnQueued > outCap+respSize+4 || st.Frames == 200 {
		t.Fatalf("stats %+v", st)
	}
	waitFor(t, "releases", func() bool { return h.released.Load() == s.Stats().Frames })
}

func TestIdleTimeout(t *testing.T) {
	s := startServer(t, Config{IdleTimeout: 100 * time.Millisecond}, echo)
	busy, idle := dial(t, s), dial(t, s)
	idle.send([]byte("once"))
	idle.read()
	done := make(chan struct{})
	go func() {
		idle.expectClosed()
		close(done)
	}()
	// The busy connection keeps talking while the idle one times out.
	for i := 0; ; i++ {
		select {
		case <-done:
			if got := s.Stats().Closes[CloseIdle]; got != 1 {
				t.Fatalf("idle closes %d", got)
			}
			busy.send([]byte("still open"))
			busy.read()
			return
		default:
		}
		busy.send([]byte(fmt.Sprint(i)))
		busy.read()
		time.Sleep(5 * time.Millisecond) // pacing: stay well under the timeout
	}
}

func TestMaxConns(t *testing.T) {
	s := startServer(t, Config{MaxConns: 2}, echo)
	a, b := dial(t, s), dial(t, s)
	for _, c := range []*client{a, b} {
		c.send([]byte("hi"))
		c.read()
	}
	refused := dial(t, s)
	refused.expectClosed()
	if st := s.Stats(); st.Closes[CloseRefused] != 1 || st.ConnsOpen != 2 {
		t.Fatalf("stats %+v", st)
	}
	a.c.Close()
	waitFor(t, "a closed", func() bool { return s.Stats().ConnsOpen == 1 })
	c := dial(t, s)
	c.send([]byte("room again"))
	if got := string(c.read()); got != "room again" {
		t.Fatalf("got %q", got)
	}
}

// holder keeps requests until told to answer them.
type holder struct {
	mu       sync.Mutex
	reqs     []*Request
	released atomic.Int64
}

func (h *holder) Serve(r *Request) {
	h.mu.Lock()
	h.reqs = append(h.reqs, r)
	h.mu.Unlock()
}

func (h *holder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.reqs)
}

func (h *holder) answerAll() {
	h.mu.Lock()
	reqs := h.reqs
	h.reqs = nil
	h.mu.Unlock()
	for _, r := range reqs {
		r.Respond(Response{Parts: []Part{BytesPart([]byte("ok:")), BytesPart(r.Frame)}, Release: func() { h.released.Add(1) }})
	}
}

func TestInflightCapHoldsFrames(t *testing.T) {
	h := &holder{}
	s := startServer(t, Config{MaxInflightRequests: 4}, h)
	c := dial(t, s)
	for i := range 10 {
		c.send([]byte(fmt.Sprint(i)))
	}
	waitFor(t, "held at the cap", func() bool { return h.count() == 4 && s.Stats().HeldConns == 1 })
	for got := 0; got < 10; {
		waitFor(t, "requests", func() bool { return h.count() > 0 })
		n := h.count()
		if n > 4 {
			t.Fatalf("%d requests in flight, cap 4", n)
		}
		h.answerAll()
		for range n {
			if b, want := string(c.read()), fmt.Sprint("ok:", got); b != want {
				t.Fatalf("got %q want %q", b, want)
			}
			got++
		}
	}
	if st := s.Stats(); st.HeldConns != 0 || st.Frames != 10 {
		t.Fatalf("stats %+v", st)
	}
}

func TestInflightBytesCap(t *testing.T) {
	h := &holder{}
	s := startServer(t, Config{MaxInflightBytes: 1000}, h)
	c := dial(t, s)
	c.send(make([]byte, 5000)) // over the cap alone: admitted, as nothing is in flight
	c.send(make([]byte, 10))
	waitFor(t, "first frame in, second held", func() bool { return h.count() == 1 && s.Stats().HeldConns == 1 })
	h.answerAll()
	waitFor(t, "second frame", func() bool { return h.count() == 1 && s.Stats().HeldConns == 0 })
	h.answerAll()
	if n := len(c.read()); n != 5003 {
		t.Fatalf("first response %d bytes", n)
	}
	if n := len(c.read()); n != 13 {
		t.Fatalf("second response %d bytes", n)
	}
}

func TestCloseAfterResponse(t *testing.T) {
	var released atomic.Int64
	s := startServer(t, Config{}, handlerFunc(func(r *Request) {
		rel := func() { released.Add(1) }
		if string(r.Frame) == "bye" {
			r.Respond(Response{Parts: []Part{BytesPart([]byte("goodbye"))}, Close: true, Release: rel})
			return
		}
		r.Respond(Response{Parts: []Part{BytesPart(r.Frame)}, Release: rel})
	}))
	c := dial(t, s)
	c.send([]byte("hello"))
	c.send([]byte("bye"))
	c.send([]byte("never answered"))
	if got := string(c.read()); got != "hello" {
		t.Fatalf("got %q", got)
	}
	if got := string(c.read()); got != "goodbye" {
		t.Fatalf("got %q", got)
	}
	c.expectClosed()
	waitFor(t, "closed by handler", func() bool { return s.Stats().Closes[CloseHandler] == 1 })
	waitFor(t, "releases", func() bool { return released.Load() == s.Stats().Frames })
}

func TestDoubleRespond(t *testing.T) {
	var released atomic.Int64
	rel := func() { released.Add(1) }
	s := startServer(t, Config{}, handlerFunc(func(r *Request) {
		r.Respond(Response{Parts: []Part{BytesPart([]byte("first"))}, Release: rel})
		r.Respond(Response{Parts: []Part{BytesPart([]byte("second"))}, Release: rel})
	}))
	c := dial(t, s)
	c.send([]byte("x"))
	c.send([]byte("y"))
	for range 2 {
		if got := string(c.read()); got != "first" {
			t.Fatalf("got %q", got)
		}
	}
	waitFor(t, "releases", func() bool { return released.Load() == 4 })
	if st := s.Stats(); st.DoubleResponds != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStopFinishesInflight(t *testing.T) {
	h := &holder{}
	s := startServer(t, Config{}, h)
	c := dial(t, s)
	for i := range 5 {
		c.send([]byte(fmt.Sprint(i)))
	}
	waitFor(t, "requests in flight", func() bool { return h.count() == 5 })
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(context.Background()) }()

	// Stopping: new connections are refused.
	waitFor(t, "refusing", func() bool {
		nc, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			return true
		}
		defer nc.Close()
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = nc.Read(make([]byte, 1))
		return err != nil
	})
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v with requests in flight", err)
	default:
	}
	h.answerAll()
	for i := range 5 {
		if got, want := string(c.read()), fmt.Sprint("ok:", i); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
	c.expectClosed()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if h.released.Load() != 5 {
		t.Fatalf("released %d", h.released.Load())
	}
}

func TestStopDeadline(t *testing.T) {
	h := &holder{}
	s := startServer(t, Config{}, h)
	c := dial(t, s)
	c.send([]byte("never"))
	waitFor(t, "request in flight", func() bool { return h.count() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v", err)
	}
	c.expectClosed()
	// The handler answers after the connection is gone: released, not written.
	h.answerAll()
	if h.released.Load() != 1 {
		t.Fatalf("released %d", h.released.Load())
	}
	if st := s.Stats(); st.InflightRequests != 0 || st.ConnsOpen != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{Addr: "nope"},
		{Addr: "127.0.0.1:0", MaxFrameBytes: -1},
		{Addr: "127.0.0.1:0", IdleTimeout: -time.Second},
		{Addr: "127.0.0.1:0", MaxConns: -1},
	} {
		if _, err := New(cfg, echo); err == nil {
			t.Fatalf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{Addr: "127.0.0.1:0"}, nil); err == nil {
		t.Fatal("nil handler accepted")
	}
}

func TestBadResponseCloses(t *testing.T) {
	var released atomic.Int64
	rel := func() { released.Add(1) }
	s := startServer(t, Config{}, handlerFunc(func(r *Request) {
		switch string(r.Frame) {
		case "bad":
			r.Respond(Response{Parts: []Part{{File: memFile{}, Len: -1}}, Release: rel})
		case "quit":
			r.Respond(Response{Close: true, Release: rel})
		default:
			r.Respond(Response{Parts: []Part{BytesPart(r.Frame)}, Release: rel})
		}
	}))
	for msg, reason := range map[string]CloseReason{"bad": CloseBadResponse, "quit": CloseHandler} {
		c := dial(t, s)
		c.send([]byte("first"))
		c.send([]byte(msg))
		if got := string(c.read()); got != "first" {
			t.Fatalf("got %q", got)
		}
		c.expectClosed()
		waitFor(t, reason.String(), func() bool { return s.Stats().Closes[reason] == 1 })
	}
	waitFor(t, "releases", func() bool { return released.Load() == 4 })
}
