package netloop

import (
	"fmt"
	"testing"
)

// queuedConns is n conns with just enough state to wait in a handshakes
// queue.
func queuedConns(n int) []*conn {
	cs := make([]*conn, n)
	for i := range cs {
		cs[i] = &conn{tls: &tlsState{hs: &tlsHandshake{}}}
	}
	return cs
}

// TestHandshakeQueueOrder: waiting handshakes start in arrival order, and
// one that closed while waiting never starts.
func TestHandshakeQueueOrder(t *testing.T) {
	h := handshakes{max: 1, running: 1} // the one slot is taken
	cs := queuedConns(6)
	for _, c := range cs {
		if h.enqueue(c) {
			t.Fatal("a slot was free")
		}
	}
	h.forget(cs[0])
	h.forget(cs[3])
	h.forget(cs[5])
	h.forget(cs[3]) // twice: no harm
	var got []*conn
	for {
		next := h.next()
		if next == nil {
			break
		}
		got = append(got, next)
	}
	if want := []*conn{cs[1], cs[2], cs[4]}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("started %v, want %v", got, want)
	}
	if h.running != 0 || h.waiting() != 0 {
		t.Fatalf("running %d, waiting %d after the queue drained", h.running, h.waiting())
	}
	h.forget(cs[1]) // started, then closed: not in the queue any more
	if !h.enqueue(cs[2]) || h.running != 1 {
		t.Fatal("a free slot was not taken")
	}
}

// BenchmarkHandshakeQueueForget: a flood of n connections queued behind
// MaxHandshakes that all close (the handshake deadline, or the flooder
// hanging up) costs O(1) each on the loops, not O(queue length).
func BenchmarkHandshakeQueueForget(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cs := queuedConns(n)
			for b.Loop() {
				h := handshakes{max: 1, running: 1}
				for _, c := range cs {
					h.enqueue(c)
				}
				for _, c := range cs {
					h.forget(c)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/conn")
		})
	}
}
