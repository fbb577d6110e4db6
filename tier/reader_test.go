package tier

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func uploadedFixture(t testing.TB, chunks, maxChunk int, objectBytes int64) (*MemStore, *testSource, *Manifest) {
	t.Helper()
	ctx := context.Background()
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	src.addSegment(newRand(21), []Partition{p}, chunks, maxChunk)
	if _, err := testUploader(store, src, objectBytes).UploadPartition(ctx, p); err != nil {
		t.Fatal(err)
	}
	m, err := LoadManifest(ctx, store, p)
	if err != nil {
		t.Fatal(err)
	}
	return store, src, m
}

// TestReaderExactRange: a random (non-sequential) read GETs exactly the
// entry holding the offset, nothing more; a repeat is a cache hit.
func TestReaderExactRange(t *testing.T) {
	ctx := context.Background()
	store, src, m := uploadedFixture(t, 50, 4000, 1<<20)
	r := NewReader(ReaderConfig{Store: store, ReadAheadBytes: 1 << 20})
	chunks := src.chunks[m.Part]
	// Warm the object's index; entry 0 is not next to the ones below.
	if _, err := r.Read(ctx, m, chunks[0].BaseOffset, 1); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{40, 7, 23} {
		c := chunks[i]
		before := r.Stats()
		got, err := r.Read(ctx, m, c.BaseOffset, 1)
		if err != nil {
			t.Fatal(err)
		}
		after := r.Stats()
		data := after.GetBytes - before.GetBytes
		if after.Gets-before.Gets != 1 || data != int64(c.Len) || len(got) != int(c.Len) {
			t.Fatalf("chunk %d: %d GETs, %d bytes fetched, %d returned; want 1 GET of %d", i, after.Gets-before.Gets, data, len(got), c.Len)
		}
		if _, err := r.Read(ctx, m, c.LastOffset, 1); err != nil || r.Stats().Gets != after.Gets || r.Stats().Hits != after.Hits+1 {
			t.Fatalf("repeat read of chunk %d was not a cache hit: %+v", i, r.Stats())
		}
	}
}

// TestReaderReadAhead: a sequential consumer fetches ReadAheadBytes per
// GET, so far fewer GETs than entries, and still gets every byte.
func TestReaderReadAhead(t *testing.T) {
	ctx := context.Background()
	store, src, m := uploadedFixture(t, 200, 1000, 1<<20)
	if len(m.Objects) != 1 {
		t.Fatalf("%d objects", len(m.Objects))
	}
	r := NewReader(ReaderConfig{Store: store, ReadAheadBytes: 20_000})
	expectRead(t, ctx, r, m, src, 1)
	st := r.Stats()
	// 1 index GET, 1 exact GET for entry 0, then ~20 KB per GET.
	var total int64
	for _, c := range src.chunks[m.Part] {
		total += int64(c.Len)
	}
	if maxGets := 2 + total/(20_000-1000) + 1; st.Gets > maxGets {
		t.Fatalf("%d GETs for %d bytes with 20 KB read-ahead; want at most %d", st.Gets, total, maxGets)
	}
	if st.GetBytes != total+m.Objects[0].Size-m.Objects[0].DataBytes {
		t.Fatalf("fetched %d bytes, want each byte once (%d data)", st.GetBytes, total)
	}
}

// TestReaderCacheBound: the cache never holds more than CacheBytes, and
// reads stay correct while it evicts.
func TestReaderCacheBound(t *testing.T) {
	ctx := context.Background()
	store, src, m := uploadedFixture(t, 300, 2000, 50_000)
	const limit = 30_000
	r := NewReader(ReaderConfig{Store: store, CacheBytes: limit, ReadAheadBytes: 10_000})
	for range 3 {
		expectRead(t, ctx, r, m, src, 4000)
		if used := r.cache.usedBytes(); used > limit {
			t.Fatalf("cache holds %d bytes, limit %d", used, limit)
		}
	}
	// An item larger than the whole cache is served but not kept.
	small := NewReader(ReaderConfig{Store: store, CacheBytes: 100})
	expectRead(t, ctx, small, m, src, 1<<20)
	if used := small.cache.usedBytes(); used > 100 {
		t.Fatalf("tiny cache holds %d", used)
	}
}

// TestReaderHitAllocs: a cache hit allocates nothing.
func TestReaderHitAllocs(t *testing.T) {
	ctx := context.Background()
	store, src, m := uploadedFixture(t, 20, 1000, 1<<20)
	r := NewReader(ReaderConfig{Store: store})
	off := src.chunks[m.Part][5].BaseOffset
	if _, err := r.Read(ctx, m, off, 1<<20); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := r.Read(ctx, m, off, 1<<20); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("cache hit: %v allocs", n)
	}
}

func BenchmarkReaderHit(b *testing.B) {
	ctx := context.Background()
	store, src, m := uploadedFixture(b, 20, 1000, 1<<20)
	r := NewReader(ReaderConfig{Store: store})
	c := src.chunks[m.Part][5]
	if _, err := r.Read(ctx, m, c.BaseOffset, 1); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(c.Len))
	for b.Loop() {
		if _, err := r.Read(ctx, m, c.BaseOffset, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReaderConcurrent: many goroutines reading the same and different
// offsets get the right bytes while the cache evicts.
func TestReaderConcurrent(t *testing.T) {
	ctx := context.Background()
	store, src, m := uploadedFixture(t, 100, 3000, 40_000)
	store.SetLatency(2 * time.Millisecond) // widen the window for sharing
	r := NewReader(ReaderConfig{Store: store, CacheBytes: 60_000, ReadAheadBytes: 10_000})
	chunks := src.chunks[m.Part]
	// Chunk i's bytes start at sum of earlier lengths.
	starts := make([]int64, len(chunks))
	for i := 1; i < len(chunks); i++ {
		starts[i] = starts[i-1] + int64(chunks[i-1].Len)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := newRand(uint64(g))
			for range 50 {
				i := rng.IntN(len(chunks))
				if g%2 == 0 {
					i = 42 // a hot spot
				}
				got, err := r.Read(ctx, m, chunks[i].BaseOffset, 5000)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, src.data[m.Part][starts[i]:starts[i]+int64(len(got))]) || len(got) < int(chunks[i].Len) {
					errs <- fmt.Errorf("chunk %d: wrong bytes", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if used := r.cache.usedBytes(); used > 60_000 {
		t.Fatalf("cache holds %d bytes", used)
	}
}

// gatedStore holds every GetRange until gate is closed.
type gatedStore struct {
	ObjectStore
	gate chan struct{}
}

func (g *gatedStore) GetRange(ctx context.Context, key string, off int64, p []byte) error {
	<-g.gate
	return g.ObjectStore.GetRange(ctx, key, off, p)
}

// TestReaderSharedMiss: readers missing on the same entry at once share
// one GET.
func TestReaderSharedMiss(t *testing.T) {
	ctx := context.Background()
	store, src, m := uploadedFixture(t, 20, 1000, 1<<20)
	r := NewReader(ReaderConfig{Store: store})
	off := src.chunks[m.Part][7].BaseOffset
	if _, err := r.Read(ctx, m, src.chunks[m.Part][0].BaseOffset, 1); err != nil { // load the index
		t.Fatal(err)
	}
	gs := &gatedStore{ObjectStore: store, gate: make(chan struct{})}
	r.cfg.Store = gs
	before := r.Stats()
	const readers = 8
	var wg sync.WaitGroup
	results := make([][]byte, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := r.Read(ctx, m, off, 1)
			if err != nil {
				t.Error(err)
			}
			results[i] = b
		}()
	}
	waitFor(t, 10*time.Second, "all readers to miss", func() bool { return r.Stats().Misses-before.Misses == readers })
	close(gs.gate)
	wg.Wait()
	if gets := r.Stats().Gets - before.Gets; gets != 1 {
		t.Fatalf("%d GETs for %d concurrent readers of one entry, want 1", gets, readers)
	}
	for i := 1; i < readers; i++ {
		if !bytes.Equal(results[i], results[0]) || len(results[i]) != int(src.chunks[m.Part][7].Len) {
			t.Fatalf("reader %d got %d bytes", i, len(results[i]))
		}
	}
}
