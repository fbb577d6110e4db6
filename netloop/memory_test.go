package netloop

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
)

// A frame's buffer follows the bytes that have arrived: nothing for a size
// prefix alone, at most twice what arrived (or minBodyBytes) while it fills,
// and the charges add up to the frame's size when it is whole. Cut at every
// chunk size, the frame read is the frame sent.
func TestParserGrowsWithInput(t *testing.T) {
	const size = 1<<20 + 12345
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 7)
	}
	in := frameBytes(body)
	for _, chunk := range []int{1, 3, 1000, 4096, 65536, 300000, len(in)} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			var charged int64
			p := &parser{maxFrameBytes: 2 << 20, charge: func(d int64) { charged += d }}
			var got []byte
			for off := 0; off < len(in); off += chunk {
				src := &sliceSource{b: in[off:min(off+chunk, len(in))]}
				f, ok, _, err := p.next(src, admitAll)
				if err != nil {
					t.Fatal(err)
				}
				arrived := min(off+chunk, len(in)) - sizePrefixBytes
				if ok {
					got = bytes.Clone(f.b)
					putBuf(f.buf)
					continue
				}
				if src.off != len(src.b) {
					t.Fatalf("parser left %d bytes unread", len(src.b)-src.off)
				}
				if held := p.held(); int64(held) != charged || held > max(2*arrived, minBodyBytes) {
					t.Fatalf("after %d body bytes: buffer %d, charged %d", arrived, held, charged)
				}
			}
			if !bytes.Equal(got, body) {
				t.Fatal("frame differs")
			}
			if charged != size {
				t.Fatalf("charged %d for a %d-byte frame", charged, size)
			}
		})
	}
}

// A size prefix followed by nothing takes no buffer and charges nothing.
func TestParserPrefixAlone(t *testing.T) {
	var charged int64
	p := &parser{maxFrameBytes: 128 << 20, charge: func(d int64) { charged += d }}
	src := &sliceSource{b: binary.BigEndian.AppendUint32(nil, 100<<20)}
	if _, ok, _, err := p.next(src, admitAll); ok || err != nil {
		t.Fatalf("ok %v err %v", ok, err)
	}
	if p.held() != 0 || charged != 0 || p.buf != nil {
		t.Fatalf("a bare 100 MiB prefix holds %d bytes, charged %d", p.held(), charged)
	}
	src = &sliceSource{b: []byte("abc")}
	if _, ok, _, _ := p.next(src, admitAll); ok || p.held() > minBodyBytes {
		t.Fatalf("three bytes in: buffer %d", p.held())
	}
	p.release()
}

// Past MaxQueuedRequestBytes no connection starts a new frame; when the
// handler answers (and the frames are released) the held ones go on.
func TestQueuedBytesCapHoldsAndResumes(t *testing.T) {
	const limit = 64 << 10
	h := &holder{}
	s := startServer(t, Config{MaxQueuedRequestBytes: limit}, h)
	a, b := dial(t, s), dial(t, s)
	a.send(make([]byte, limit)) // fills the budget alone
	waitFor(t, "first frame", func() bool { return h.count() == 1 })
	if got := s.Stats().RequestBytes; got != limit {
		t.Fatalf("RequestBytes %d, want %d", got, limit)
	}
	b.send([]byte("small"))
	a.send([]byte("more"))
	waitFor(t, "both held", func() bool { return s.Stats().HeldConns == 2 })
	if n := h.count(); n != 1 {
		t.Fatalf("%d frames admitted past the cap", n)
	}
	h.answerAll()
	if n := len(a.read()); n != limit+3 {
		t.Fatalf("response %d bytes", n)
	}
	waitFor(t, "held frames admitted", func() bool { return h.count() == 2 })
	h.answerAll()
	if got := string(b.read()); got != "ok:small" {
		t.Fatalf("got %q", got)
	}
	if got := string(a.read()); got != "ok:more" {
		t.Fatalf("got %q", got)
	}
	waitFor(t, "budget empty", func() bool { return s.Stats().RequestBytes == 0 })
	if st := s.Stats(); st.BudgetWaits == 0 || st.HeldConns != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Frames as large as the cap, and larger, from several connections at once
// all go through: one is let in whenever the budget is below the cap and is
// always read to its end, so none waits for room only it could free.
func TestQueuedBytesCapFrameAsLargeAsCap(t *testing.T) {
	const limit = 256 << 10
	s := startServer(t, Config{MaxQueuedRequestBytes: limit, MaxFrameBytes: 4 * limit}, echo)
	sizes := []int{limit, 2 * limit, limit - 1, 3 * limit, 10}
	var wg sync.WaitGroup
	for i := range 4 {
		c := dial(t, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var all []byte
			for j, n := range sizes {
				all = append(all, frameBytes(bytes.Repeat([]byte{byte(i*10 + j)}, n))...)
			}
			if _, err := c.c.Write(all); err != nil {
				t.Error(err)
				return
			}
			for j, n := range sizes {
				b, err := c.tryRead()
				if err != nil || len(b) != n || b[0] != byte(i*10+j) || b[n-1] != byte(i*10+j) {
					t.Errorf("conn %d frame %d: %d bytes, err %v", i, j, len(b), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "budget empty", func() bool { return s.Stats().RequestBytes == 0 })
}

// A client that announces a huge frame and sends nothing more holds no
// budget: others are served under a small cap.
func TestQueuedBytesCapIgnoresBarePrefix(t *testing.T) {
	s := startServer(t, Config{MaxQueuedRequestBytes: 64 << 10, MaxFrameBytes: 128 << 20}, echo)
	for range 10 {
		c := dial(t, s)
		if _, err := c.c.Write(binary.BigEndian.AppendUint32(nil, 100<<20)); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, s)
	c.send([]byte("hello"))
	if got := string(c.read()); got != "hello" {
		t.Fatalf("got %q", got)
	}
	// The echo's frame is given back just after its response is written,
	// which may be after the client reads it.
	waitFor(t, "bare prefixes to hold no budget", func() bool { return s.Stats().RequestBytes == 0 })
}

// ReleaseFrame gives the budget back before the response: a handler that
// keeps requests (long polls) but not their frames does not hold others back.
func TestReleaseFrameFreesBudget(t *testing.T) {
	const limit = 64 << 10
	var mu sync.Mutex
	var kept []*Request
	h := handlerFunc(func(r *Request) {
		r.ReleaseFrame()
		if r.Frame != nil {
			t.Error("Frame kept after ReleaseFrame")
		}
		r.ReleaseFrame() // a second call does nothing
		mu.Lock()
		kept = append(kept, r)
		mu.Unlock()
	})
	s := startServer(t, Config{MaxQueuedRequestBytes: limit}, h)
	c := dial(t, s)
	for range 20 {
		c.send(make([]byte, limit))
	}
	waitFor(t, "every frame admitted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(kept) == 20
	})
	if b := s.Stats().RequestBytes; b != 0 {
		t.Fatalf("released frames hold %d bytes", b)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range kept {
		r.Respond(Response{Parts: []Part{BytesPart([]byte("x"))}})
	}
}

// Request.Context is cancelled when the connection closes, so a handler can
// drop requests it parked.
func TestRequestContextCancelledOnClose(t *testing.T) {
	got := make(chan *Request, 1)
	s := startServer(t, Config{}, handlerFunc(func(r *Request) { got <- r }))
	c := dial(t, s)
	c.send([]byte("park me"))
	r := <-got
	ctx := r.Context()
	if ctx.Err() != nil {
		t.Fatal("context cancelled while the connection is open")
	}
	c.c.Close()
	<-ctx.Done()
	r.Respond(Response{Parts: []Part{BytesPart([]byte("late"))}}) // dropped, not written
	waitFor(t, "request dropped", func() bool { return s.Stats().InflightRequests == 0 })
	if r.Context().Err() == nil {
		t.Fatal("a closed connection's context is live")
	}
}

// A connection that closes while it waits for the budget is forgotten at
// once, not kept until bytes are next released.
func TestQueuedBytesCapForgetsClosedWaiters(t *testing.T) {
	const limit = 64 << 10
	h := &holder{}
	s := startServer(t, Config{MaxQueuedRequestBytes: limit}, h)
	a := dial(t, s)
	a.send(make([]byte, limit))
	waitFor(t, "budget full", func() bool { return h.count() == 1 })
	for range 5 {
		c := dial(t, s)
		c.send([]byte("x"))
		waitFor(t, "held", func() bool { return s.mem.nwait.Load() == 1 })
		c.c.Close()
		waitFor(t, "forgotten", func() bool { return s.mem.nwait.Load() == 0 })
	}
	if n := s.mem.waiting(t); n != 0 {
		t.Fatalf("%d closed connections still listed", n)
	}
	h.answerAll()
}
