package tier

import (
	"context"
	"testing"
	"time"
)

// countingOps sums a MemStore's calls of every kind.
func countingOps(m *MemStore) int {
	n := 0
	for op := range numOps {
		n += m.Calls(op)
	}
	return n
}

// TestUploaderReportsTierEndOnStart: a fresh uploader (a restarted broker)
// tells the source where the bucket's copy ends on its first look at a
// partition, even with nothing new to upload; idle partitions cost no
// requests after that.
func TestUploaderReportsTierEndOnStart(t *testing.T) {
	ctx := context.Background()
	store, _, m := uploadedFixture(t, 30, 2000, 10_000)
	p := testPart(0)
	src := newTestSource(t) // a restarted broker: nothing reported yet
	src.addSegment(newRand(51), []Partition{p}, 0, 1)
	src.mu.Lock()
	src.parts = []Partition{p}
	src.mu.Unlock()
	up := testUploader(store, src, 10_000)
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if src.uploaded[p] != m.NextOffset() {
		t.Fatalf("Uploaded(%d) after start; want the manifest's end %d", src.uploaded[p], m.NextOffset())
	}
	before := countingOps(store)
	for range 3 {
		if err := up.UploadAll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := countingOps(store) - before; n != 0 {
		t.Fatalf("idle rounds made %d store calls", n)
	}
}

// TestRunFlushesAndSurvivesOutage: Run uploads new data each interval
// without a Kick; while the store is down it keeps retrying (with
// backoff), loses nothing, and catches up once the store is back.
func TestRunFlushesAndSurvivesOutage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := NewMemStore()
	src := newTestSource(t)
	parts := []Partition{testPart(0), testPart(1)}
	rng := newRand(53)
	src.addSegment(rng, parts, 20, 2000)
	up := NewUploader(UploaderConfig{Store: store, Source: src, ObjectBytes: 10_000, Parallel: 2,
		Attempts: 2, Backoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Interval: 20 * time.Millisecond})
	done := make(chan struct{})
	go func() { up.Run(ctx); close(done) }()
	caughtUp := func() bool { return src.caughtUp(parts) }
	waitFor(t, 10*time.Second, "first flush", caughtUp)

	// New data arrives with no Kick: the interval flushes it.
	src.addSegment(rng, parts, 3, 500)
	waitFor(t, 10*time.Second, "interval flush", caughtUp)

	store.SetDown(ErrInjected)
	src.addSegment(rng, parts, 15, 2000)
	up.Kick()
	before := store.Calls(OpPut)
	waitFor(t, 10*time.Second, "several failed rounds", func() bool { return store.Calls(OpPut) > before+3*2 })
	if caughtUp() {
		t.Fatal("caught up while the store was down")
	}
	store.SetDown(nil)
	waitFor(t, 10*time.Second, "catch up after the outage", caughtUp)
	cancel()
	<-done
	r := NewReader(ReaderConfig{Store: store})
	for _, p := range parts {
		m, err := LoadManifest(context.Background(), store, p)
		if err != nil || m.NextOffset() != src.sealed[p] {
			t.Fatalf("%v: %+v %v", p, m, err)
		}
		expectRead(t, context.Background(), r, m, src, 4000)
	}
}
