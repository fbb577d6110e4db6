package netloop

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// A response with Throttle goes out at once and mutes its connection only:
// the connection's next frame, already at the server, is held back, while
// another connection on the same event loop is served; once the throttle
// has passed, the held frame is served. (A whole-server or whole-loop mute
// would hold the other connection too.) Nothing here measures time: the
// long throttle is never waited out, and the short one is waited for as a
// condition.
func TestThrottleMutesConnection(t *testing.T) {
	var mu sync.Mutex
	var served []string
	h := handlerFunc(func(r *Request) {
		mu.Lock()
		served = append(served, string(r.Frame))
		mu.Unlock()
		resp := Response{Parts: []Part{BytesPart(r.Frame)}}
		switch string(r.Frame) {
		case "first":
			resp.Throttle = time.Hour // outlives the test
		case "brief":
			resp.Throttle = 10 * time.Millisecond
		}
		r.Respond(resp)
	})
	s := startServer(t, Config{Loops: 1}, h)
	wasServed := func(frame string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(served, frame)
	}

	c := dial(t, s)
	c.send([]byte("first"))
	if got := string(c.read()); got != "first" {
		t.Fatalf("got %q", got)
	}
	c.send([]byte("second"))
	// The frame has reached the server and is held back by the mute.
	waitFor(t, "the throttled connection's next frame held", func() bool { return s.Stats().HeldConns == 1 })

	other := dial(t, s)
	for i := range 3 {
		other.send([]byte("other"))
		if got := string(other.read()); got != "other" {
			t.Fatalf("other connection, round %d: got %q", i, got)
		}
	}
	if wasServed("second") || s.Stats().HeldConns != 1 {
		t.Fatal("the throttled connection's next frame was served while it was muted")
	}

	// A throttle that ends: the held frame is then served, in order.
	b := dial(t, s)
	b.send([]byte("brief"))
	if got := string(b.read()); got != "brief" {
		t.Fatalf("got %q", got)
	}
	b.send([]byte("after"))
	if got := string(b.read()); got != "after" {
		t.Fatalf("after the throttle: got %q", got)
	}
	if wasServed("second") {
		t.Fatal("the connection muted for an hour was served")
	}
}
