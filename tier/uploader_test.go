package tier

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func testUploader(s ObjectStore, src Source, objectBytes int64) *Uploader {
	return NewUploader(UploaderConfig{Store: s, Source: src, Log: zerolog.Nop(), ObjectBytes: objectBytes,
		Parallel: 3, Attempts: 4, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
}

// TestUploadReadRoundTrip: sealed data of several partitions goes up as
// objects; every offset reads back byte for byte, through a fresh
// manifest load as after a restart.
func TestUploadReadRoundTrip(t *testing.T) {
	ctx := context.Background()
	rng := newRand(3)
	store := NewMemStore()
	src := newTestSource(t)
	parts := []Partition{testPart(0), testPart(1), testPart(2), testPart(3)}
	src.addSegment(rng, parts, 40, 3000)
	up := testUploader(store, src, 20_000)
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	src.addSegment(rng, parts[:2], 25, 3000) // more data later: appended objects
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	r := NewReader(ReaderConfig{Store: store, CacheBytes: 1 << 20, ReadAheadBytes: 8000})
	for _, p := range parts {
		m, err := LoadManifest(ctx, store, p)
		if err != nil {
			t.Fatal(err)
		}
		if m.NextOffset() != src.sealed[p] || src.uploaded[p] != src.sealed[p] {
			t.Fatalf("%v: tier ends at %d, uploaded %d, sealed %d", p, m.NextOffset(), src.uploaded[p], src.sealed[p])
		}
		if len(m.Objects) < 2 {
			t.Fatalf("%v: %d objects; want several at ObjectBytes 20000", p, len(m.Objects))
		}
		mine, err := up.Manifest(ctx, p)
		if err != nil || mine.Seq != m.Seq {
			t.Fatalf("uploader's manifest seq %d, bucket's %d (%v)", mine.Seq, m.Seq, err)
		}
		expectRead(t, ctx, r, m, src, 1)    // one entry at a time
		expectRead(t, ctx, r, m, src, 9000) // several
		expectRead(t, ctx, NewReader(ReaderConfig{Store: store}), m, src, 1<<30)
		if _, err := r.Read(ctx, m, m.NextOffset(), 1); !errors.Is(err, ErrNotTiered) {
			t.Fatalf("read past end: %v", err)
		}
	}
	if src.pinned != 0 {
		t.Fatalf("%d Sealed releases outstanding", src.pinned)
	}
	// Nothing new: no more objects.
	before := store.Calls(OpPut)
	if err := up.UploadAll(ctx); err != nil || store.Calls(OpPut) != before {
		t.Fatalf("idle upload made %d puts (%v)", store.Calls(OpPut)-before, err)
	}
}

// TestUploadRetriesFaults: injected put faults are retried; a step that
// exhausts its attempts leaves the bucket's manifest as it was, and the
// next run (also from a fresh uploader, as after a crash) completes.
func TestUploadRetriesFaults(t *testing.T) {
	ctx := context.Background()
	rng := newRand(5)
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	src.addSegment(rng, []Partition{p}, 30, 2000)

	store.FailNth(OpPut, 1, nil) // first object put
	store.FailNth(OpPut, 3, nil) // the manifest version's first try
	store.FailNth(OpPut, 5, nil) // the pointer: the retry finds its own version there
	up := testUploader(store, src, 10_000)
	if _, err := up.UploadPartition(ctx, p); err != nil {
		t.Fatalf("upload with transient faults: %v", err)
	}
	m1, err := LoadManifest(ctx, store, p)
	if err != nil || m1.NextOffset() != src.sealed[p] {
		t.Fatalf("manifest after retries: %+v %v", m1, err)
	}

	// Crash between object and manifest: the manifest put fails every
	// attempt. The bucket still describes the old log.
	src.addSegment(rng, []Partition{p}, 10, 2000)
	for i := 2; i <= 5; i++ {
		store.FailNth(OpPut, i, nil) // object succeeds (call 1), every manifest attempt fails
	}
	if _, err := up.UploadPartition(ctx, p); !errors.Is(err, ErrInjected) {
		t.Fatalf("upload with a dead manifest put: %v", err)
	}
	m2, err := LoadManifest(ctx, store, p)
	if err != nil || m2.Seq != m1.Seq {
		t.Fatalf("manifest moved without its publish: seq %d -> %d (%v)", m1.Seq, m2.Seq, err)
	}
	if src.uploaded[p] != m1.NextOffset() {
		t.Fatalf("Uploaded(%d) reported beyond the published manifest (%d)", src.uploaded[p], m1.NextOffset())
	}
	// Restart: a new uploader continues from the bucket.
	up2 := testUploader(store, src, 10_000)
	if _, err := up2.UploadPartition(ctx, p); err != nil {
		t.Fatal(err)
	}
	m3, err := LoadManifest(ctx, store, p)
	if err != nil || m3.NextOffset() != src.sealed[p] {
		t.Fatalf("after restart: %+v %v", m3, err)
	}
	expectRead(t, ctx, NewReader(ReaderConfig{Store: store}), m3, src, 5000)
}

// TestPointerLags: a crash after a manifest version but before the pointer
// moves loses nothing: readers list past the pointer.
func TestPointerLags(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	rng := newRand(7)
	src.addSegment(rng, []Partition{p}, 10, 1000)
	up := testUploader(store, src, 1500)
	if _, err := up.UploadPartition(ctx, p); err != nil {
		t.Fatal(err)
	}
	m, _ := LoadManifest(ctx, store, p)
	if m.Seq < 3 {
		t.Fatalf("want several versions, got seq %d", m.Seq)
	}
	dir := p.Dir() + "manifest/"
	old := encodePointer(1)
	if err := store.Put(ctx, pointerKey(dir), bytes.NewReader(old), int64(len(old)), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := LoadManifest(ctx, store, p)
	if err != nil || got.Seq != m.Seq {
		t.Fatalf("with a lagging pointer: seq %d (%v), want %d", got.Seq, err, m.Seq)
	}
	if err := store.Delete(ctx, pointerKey(dir)); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadManifest(ctx, store, p); err != nil || got.Seq != m.Seq {
		t.Fatalf("without a pointer: seq %d (%v)", got.Seq, err)
	}
}

// TestTwoWritersFenced: a second writer for the same partition cannot
// overwrite a manifest version the first published.
func TestTwoWritersFenced(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	p := testPart(0)
	rng := newRand(9)
	srcA, srcB := newTestSource(t), newTestSource(t)
	srcA.addSegment(rng, []Partition{p}, 5, 100)
	// b's object must not share a's key: the data PUT is unconditional,
	// so a second writer would replace a's object under a's manifest.
	// Manifest fencing cannot stop that; ownership of the prefix does
	// (owner.go, TestOwner*).
	srcB.addSegment(rng, []Partition{p}, 4, 100)
	a, b := testUploader(store, srcA, 1<<20), testUploader(store, srcB, 1<<20)
	if _, err := a.Manifest(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Manifest(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UploadPartition(ctx, p); err != nil {
		t.Fatal(err)
	}
	// b's version 1 loses to a's; b reloads and finds nothing of its own
	// past a's end, so it publishes nothing.
	if n, err := b.UploadPartition(ctx, p); err != nil || n != 0 {
		t.Fatalf("stale writer: %d objects, %v; want 0, nil", n, err)
	}
	m, err := LoadManifest(ctx, store, p)
	if err != nil || m.Seq != 1 {
		t.Fatalf("manifest: %+v %v", m, err)
	}
	expectRead(t, ctx, NewReader(ReaderConfig{Store: store}), m, srcA, 1)
}

// countingStore records the most puts in flight at once.
type countingStore struct {
	ObjectStore
	in, most atomic.Int32
	gate     chan struct{} // puts wait here until released
}

func (c *countingStore) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) error {
	n := c.in.Add(1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	if c.gate != nil {
		<-c.gate
	}
	defer c.in.Add(-1)
	return c.ObjectStore.Put(ctx, key, body, size, opts)
}

// TestUploadParallelBound: at most Parallel partitions upload at once,
// and that many do run together.
func TestUploadParallelBound(t *testing.T) {
	ctx := context.Background()
	rng := newRand(11)
	src := newTestSource(t)
	var parts []Partition
	for i := range 10 {
		parts = append(parts, testPart(i))
	}
	src.addSegment(rng, parts, 3, 500)
	cs := &countingStore{ObjectStore: NewMemStore(), gate: make(chan struct{})}
	up := testUploader(cs, src, 1<<20) // Parallel 3
	done := make(chan error, 1)
	go func() { done <- up.UploadAll(ctx) }()
	waitFor(t, 10*time.Second, "3 puts in flight", func() bool { return cs.in.Load() == 3 })
	close(cs.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if most := cs.most.Load(); most != 3 {
		t.Fatalf("at most %d puts in flight, want 3", most)
	}
	for _, p := range parts {
		if src.uploaded[p] != src.sealed[p] {
			t.Fatalf("%v not fully uploaded", p)
		}
	}
}

// TestRetain: retention publishes the shortened manifest, then deletes
// the dropped objects; the rest still reads byte for byte.
func TestRetain(t *testing.T) {
	ctx := context.Background()
	store, src, _ := uploadedFixture(t, 60, 2000, 10_000)
	p := testPart(0)
	up := testUploader(store, src, 10_000)
	m, err := up.Manifest(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Objects) < 4 {
		t.Fatalf("%d objects", len(m.Objects))
	}
	cut := m.Objects[2].BaseOffset + 1 // inside object 2
	n, err := up.Retain(ctx, p, cut)
	if err != nil || n != 2 {
		t.Fatalf("Retain: %d objects deleted, %v", n, err)
	}
	got, err := LoadManifest(ctx, store, p)
	if err != nil || got.LogStartOffset != cut || len(got.Objects) != len(m.Objects)-2 {
		t.Fatalf("after retain: %+v %v", got, err)
	}
	for i := range 2 {
		if _, err := store.Head(ctx, m.ObjectKey(i)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("dropped object %d still there: %v", i, err)
		}
	}
	r := NewReader(ReaderConfig{Store: store})
	if _, err := r.Read(ctx, got, cut-1, 1); !errors.Is(err, ErrNotTiered) {
		t.Fatalf("read below log start: %v", err)
	}
	if b, err := r.Read(ctx, got, cut, 1); err != nil || len(b) == 0 {
		t.Fatalf("read at log start: %d bytes, %v", len(b), err)
	}
	// Only the newest keepManifestVersions manifest versions remain.
	var versions int
	if err := store.List(ctx, p.Dir()+"manifest/v/", "", func(ObjectInfo) error { versions++; return nil }); err != nil {
		t.Fatal(err)
	}
	if versions != keepManifestVersions {
		t.Fatalf("%d manifest versions kept, want %d", versions, keepManifestVersions)
	}
	// Retaining everything up to the tier's end leaves an empty manifest
	// whose next offset is that end; past it, the tier restarts at the
	// new log start (TestRetainRestartsTier).
	end := got.NextOffset()
	if _, err := up.Retain(ctx, p, end); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadManifest(ctx, store, p); len(got.Objects) != 0 || got.NextOffset() != end || got.LogStartOffset != end {
		t.Fatalf("after retaining all: %+v", got)
	}
}

// TestUploadStaleViewReloads: a manifest version published behind the
// uploader's back (a cancelled round whose PUT landed) makes the next
// publish hit ErrExists; the uploader reloads and carries on from the
// bucket's manifest instead of failing the round.
func TestUploadStaleViewReloads(t *testing.T) {
	ctx := context.Background()
	rng := newRand(7)
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	src.addSegment(rng, []Partition{p}, 20, 2000)

	stale := testUploader(store, src, 10_000)
	if _, err := stale.Manifest(ctx, p); err != nil { // loads "nothing tiered"
		t.Fatal(err)
	}
	// Other object boundaries, so its versions differ from the ones the
	// stale uploader would publish (identical ones count as its own).
	other := testUploader(store, src, 50_000)
	if _, err := other.UploadPartition(ctx, p); err != nil {
		t.Fatal(err)
	}
	src.addSegment(rng, []Partition{p}, 10, 2000)
	n, err := stale.UploadPartition(ctx, p)
	if err != nil {
		t.Fatalf("stale uploader: %v", err)
	}
	if n == 0 {
		t.Fatal("stale uploader uploaded nothing new")
	}
	m, err := LoadManifest(ctx, store, p)
	if err != nil || m.NextOffset() != src.sealed[p] {
		t.Fatalf("manifest ends at %d, sealed %d (%v)", m.NextOffset(), src.sealed[p], err)
	}
	r := NewReader(ReaderConfig{Store: store, CacheBytes: 1 << 20})
	expectRead(t, ctx, r, m, src, 5000)
}

// growingSource is a partition whose producer never pauses: every Sealed
// call finds one more durable chunk behind the ones it returns.
type growingSource struct {
	*testSource
	rng *rand.Rand
	p   Partition
}

func (g *growingSource) Sealed(p Partition, from, maxBytes int64, dst []SourceChunk) ([]SourceChunk, func(), error) {
	g.addSegment(g.rng, []Partition{g.p}, 1, 200)
	return g.testSource.Sealed(p, from, maxBytes, dst)
}

// TestUploadRoundEndsUnderEndlessProducer: a round ends after about one
// Interval even though the partition always has a new chunk, so the
// metadata snapshot that follows each round is published while producers
// run (before, the round went on as long as the producer did, and a broker
// killed under load had no snapshot to recover from).
func TestUploadRoundEndsUnderEndlessProducer(t *testing.T) {
	ctx := context.Background()
	rng := newRand(11)
	src := newTestSource(t)
	p := testPart(0)
	src.addSegment(rng, []Partition{p}, 4, 1000)
	g := &growingSource{testSource: src, rng: rng, p: p}
	up := NewUploader(UploaderConfig{Store: NewMemStore(), Source: g, Log: zerolog.Nop(), ObjectBytes: 1 << 20,
		Interval: 20 * time.Millisecond, Parallel: 1, Attempts: 4, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- up.UploadAll(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the upload round never ended while the source kept growing")
	}
	select {
	case <-up.Published():
	default:
		t.Fatal("no publish signal after the round")
	}
}
