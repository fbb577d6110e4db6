package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/netloop"
)

// serveObserved serves frame and, once answered, reports it written as
// netloop would, after took.
func (hs *harness) serveObserved(t testing.TB, frame []byte, took time.Duration) netloop.Response {
	t.Helper()
	done := make(chan netloop.Response, 1)
	nr := netloop.NewRequestContext(context.Background(), frame, netloop.ConnInfo{ID: 3}, func(r netloop.Response) { done <- r })
	hs.h.Serve(nr)
	var r netloop.Response
	select {
	case r = <-done:
	case <-time.After(waitFor):
		t.Fatal("no response")
	}
	hs.h.Written(nr, took)
	if r.Release != nil {
		r.Release()
	}
	return r
}

// TestRequestMetrics: a written response counts in its API's histogram,
// and one with an error code counts under that code; the tag carries
// both from the handler to Written.
func TestRequestMetrics(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	ok := encodeRequest(produceReq(9, 1, "t", [16]byte{}, 0, makeBatch(batchOpts{records: 2, payload: 10})), testCorr)
	bad := encodeRequest(produceReq(9, 1, "t", [16]byte{}, 5, makeBatch(batchOpts{records: 2, payload: 10})), testCorr)
	hs.serveObserved(t, ok, time.Millisecond)
	hs.serveObserved(t, ok, 3*time.Millisecond)
	hs.serveObserved(t, bad, time.Millisecond)
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 12
	hs.serveObserved(t, encodeRequest(meta, testCorr), time.Millisecond)

	m := hs.h.RequestMetrics()
	if n := m.Latency[0].Count(); n != 3 {
		t.Errorf("Produce latency count %d, want 3", n)
	}
	if sum := time.Duration(m.Latency[0].Sum); sum != 5*time.Millisecond {
		t.Errorf("Produce latency sum %v, want 5ms", sum)
	}
	if n := m.Latency[3].Count(); n != 1 {
		t.Errorf("Metadata latency count %d, want 1", n)
	}
	if n := m.Errors[[2]int16{0, kerr.UnknownTopicOrPartition.Code}]; n != 1 {
		t.Errorf("Produce UNKNOWN_TOPIC_OR_PARTITION %d, want 1 (errors %v)", n, m.Errors)
	}
	if len(m.Errors) != 1 {
		t.Errorf("errors %v, want only the one", m.Errors)
	}
}

// BenchmarkWritten is the per-response cost of the request metrics, on
// the event loop.
func BenchmarkWritten(b *testing.B) {
	hs := newHarness(b)
	nr := netloop.NewRequestContext(context.Background(), nil, netloop.ConnInfo{ID: 3}, func(netloop.Response) {})
	nr.Tag = tagKnown // Produce (key 0), no error
	b.ReportAllocs()
	for b.Loop() {
		hs.h.Written(nr, 2*time.Millisecond)
	}
}
