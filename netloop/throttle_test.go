package netloop

import (
	"sync"
	"testing"
	"time"
)

// A response with Throttle goes out at once, and the connection's next
// frame is not served before Throttle has passed since Respond (KIP-219
// muting); a connection without throttle is served meanwhile.
func TestThrottleMutesConnection(t *testing.T) {
	const throttle = 300 * time.Millisecond
	var mu sync.Mutex
	var responded time.Time
	served := map[string]time.Time{}
	h := handlerFunc(func(r *Request) {
		now := time.Now()
		mu.Lock()
		served[string(r.Frame)] = now
		mu.Unlock()
		resp := Response{Parts: []Part{BytesPart(r.Frame)}}
		if string(r.Frame) == "first" {
			resp.Throttle = throttle
			mu.Lock()
			responded = time.Now()
			mu.Unlock()
		}
		r.Respond(resp)
	})
	s := startServer(t, Config{}, h)
	c := dial(t, s)
	c.send([]byte("first"))
	if got := string(c.read()); got != "first" {
		t.Fatalf("got %q", got)
	}
	c.send([]byte("second"))
	other := dial(t, s)
	other.send([]byte("other"))
	if got := string(other.read()); got != "other" {
		t.Fatalf("other connection got %q", got)
	}
	if got := string(c.read()); got != "second" {
		t.Fatalf("got %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if gap := served["second"].Sub(responded); gap < throttle {
		t.Fatalf("next frame served %v after a response throttled for %v", gap, throttle)
	}
}
