package netloop

import (
	"sync"
	"testing"
	"time"
)

// observing echoes frames, tagging each request with its first byte, and
// records what Written reports.
type observing struct {
	mu   sync.Mutex
	tags []uint32
	took []time.Duration
}

func (o *observing) Serve(r *Request) {
	if len(r.Frame) > 0 {
		r.Tag = uint32(r.Frame[0])
	}
	r.Respond(Response{Parts: []Part{BytesPart(r.Frame)}})
}

func (o *observing) Written(r *Request, took time.Duration) {
	o.mu.Lock()
	o.tags = append(o.tags, r.Tag)
	o.took = append(o.took, took)
	o.mu.Unlock()
}

// TestObserverWritten: a Handler that is an Observer hears of every
// written response once, in order per connection, with its Tag and a
// positive duration.
func TestObserverWritten(t *testing.T) {
	o := &observing{}
	s := startServer(t, Config{}, o)
	c := dial(t, s)
	for i := range 50 {
		c.send([]byte{byte(i), 'x'})
	}
	for range 50 {
		c.read()
	}
	waitFor(t, "50 Written calls", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.tags) >= 50
	})
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.tags) != 50 {
		t.Fatalf("%d Written calls for 50 responses", len(o.tags))
	}
	for i, tag := range o.tags {
		if tag != uint32(i) || o.took[i] <= 0 {
			t.Fatalf("Written %d: tag %d took %v", i, tag, o.took[i])
		}
	}
}
