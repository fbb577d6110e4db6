package tier

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// dropBelow moves p's log start in the source to start, freeing the chunks
// wholly below it: Sealed then offers the chunk holding start first, as
// storage does once its log start has moved past the tier's end.
func (s *testSource) dropBelow(p Partition, start int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chunks[p]
	var pos int64
	i := 0
	for i < len(cs) && cs[i].LastOffset < start {
		pos += int64(cs[i].Len)
		i++
	}
	s.chunks[p] = cs[i:]
	s.data[p] = s.data[p][pos:]
}

// chunkInside returns a chunk of p past offset after holding several
// offsets, so a log start can fall inside it.
func (s *testSource) chunkInside(t *testing.T, p Partition, after int64) SourceChunk {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.chunks[p] {
		if c.BaseOffset > after && c.LastOffset > c.BaseOffset {
			return c
		}
	}
	t.Fatalf("no multi-offset chunk after %d", after)
	return SourceChunk{}
}

// expectTier checks that p's newest manifest in store is the source's data
// from start on: the first object holds start, the tier ends where the
// source is sealed, and every chunk's first readable and last offsets read
// back as the chunk's bytes.
func expectTier(t *testing.T, ctx context.Context, store ObjectStore, p Partition, s *testSource, start int64) {
	t.Helper()
	m, err := LoadManifest(ctx, store, p)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	chunks, data, sealed := s.chunks[p], s.data[p], s.sealed[p]
	s.mu.Unlock()
	if m.LogStartOffset != start || len(m.Objects) == 0 || m.Objects[0].BaseOffset != chunks[0].BaseOffset ||
		m.NextOffset() != sealed {
		t.Fatalf("manifest [%d, %d) from object at %d; want [%d, %d) from the chunk at %d",
			m.LogStartOffset, m.NextOffset(), m.Objects[0].BaseOffset, start, sealed, chunks[0].BaseOffset)
	}
	r := NewReader(ReaderConfig{Store: store})
	var pos int64
	for _, c := range chunks {
		for _, off := range []int64{max(c.BaseOffset, start), c.LastOffset} {
			got, err := r.Read(ctx, m, off, 1)
			if err != nil || !bytes.Equal(got, data[pos:pos+int64(c.Len)]) {
				t.Fatalf("read %d: %d bytes (%v), want the chunk [%d, %d]", off, len(got), err, c.BaseOffset, c.LastOffset)
			}
		}
		pos += int64(c.Len)
	}
	if _, err := r.Read(ctx, m, start-1, 1); !errors.Is(err, ErrNotTiered) {
		t.Fatalf("read below the tier's log start: %v", err)
	}
}

// TestRetainRestartsTier: the partition's log start jumps past the tier's
// end (DeleteRecords within one flush interval) and the data in between is
// freed. An upload before the tier hears of it is a gap; Retain restarts
// the tiered log empty at the new start and deletes the old objects; the
// next upload continues from there, holding nothing below the log start.
func TestRetainRestartsTier(t *testing.T) {
	ctx := context.Background()
	rng := newRand(31)
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	src.addSegment(rng, []Partition{p}, 30, 2000)
	up := testUploader(store, src, 10_000)
	if _, err := up.UploadPartition(ctx, p); err != nil {
		t.Fatal(err)
	}
	m1, err := LoadManifest(ctx, store, p)
	if err != nil || len(m1.Objects) < 2 {
		t.Fatalf("fixture: %+v %v", m1, err)
	}
	end := m1.NextOffset()

	src.addSegment(rng, []Partition{p}, 30, 2000) // never uploaded
	holder := src.chunkInside(t, p, end+20)
	start := holder.BaseOffset + 1 // a log start inside a chunk
	src.dropBelow(p, start)

	if _, err := up.UploadPartition(ctx, p); !errors.Is(err, ErrGap) {
		t.Fatalf("upload before the tier restarts: %v, want ErrGap", err)
	}
	if m, _ := LoadManifest(ctx, store, p); m.Seq != m1.Seq {
		t.Fatalf("a refused upload published seq %d", m.Seq)
	}

	n, err := up.Retain(ctx, p, start)
	if err != nil || n != len(m1.Objects) {
		t.Fatalf("Retain past the tier's end: %d objects deleted (%v), want %d", n, err, len(m1.Objects))
	}
	m2, err := LoadManifest(ctx, store, p)
	if err != nil || m2.Seq != m1.Seq+1 || len(m2.Objects) != 0 || m2.LogStartOffset != start || m2.NextOffset() != start {
		t.Fatalf("restarted manifest: %+v %v; want none, starting at %d", m2, err, start)
	}
	for i := range m1.Objects {
		if _, err := store.Head(ctx, m1.ObjectKey(i)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("old object %d still there: %v", i, err)
		}
	}
	if n, err := up.Retain(ctx, p, start); err != nil || n != 0 {
		t.Fatalf("repeated Retain: %d, %v", n, err)
	}
	if m, _ := LoadManifest(ctx, store, p); m.Seq != m2.Seq {
		t.Fatalf("repeated Retain published seq %d", m.Seq)
	}

	if n, err := up.UploadPartition(ctx, p); err != nil || n == 0 {
		t.Fatalf("upload after the restart: %d objects, %v", n, err)
	}
	expectTier(t, ctx, store, p, src, start)
	if src.uploaded[p] != src.sealed[p] {
		t.Fatalf("Uploaded(%d), sealed %d", src.uploaded[p], src.sealed[p])
	}

	// It goes on from there, also for a new uploader (a restart).
	src.addSegment(rng, []Partition{p}, 10, 2000)
	if _, err := testUploader(store, src, 10_000).UploadPartition(ctx, p); err != nil {
		t.Fatal(err)
	}
	expectTier(t, ctx, store, p, src, start)
}

// TestRetainBeforeFirstUpload: a log start moved before anything was
// uploaded. Retain first publishes an empty manifest at it; upload first
// starts the tier at the chunk holding it and Retain then raises the log
// start to it. Either way the tier holds nothing below that chunk.
func TestRetainBeforeFirstUpload(t *testing.T) {
	ctx := context.Background()
	for _, retainFirst := range []bool{true, false} {
		rng := newRand(41)
		store := NewMemStore()
		src := newTestSource(t)
		p := testPart(1)
		src.addSegment(rng, []Partition{p}, 40, 2000)
		holder := src.chunkInside(t, p, 10)
		start := holder.BaseOffset + 1
		src.dropBelow(p, start)
		up := testUploader(store, src, 10_000)
		if retainFirst {
			if _, err := up.Retain(ctx, p, start); err != nil {
				t.Fatal(err)
			}
			if m, err := LoadManifest(ctx, store, p); err != nil || m.Seq != 1 || m.NextOffset() != start {
				t.Fatalf("Retain on an untiered partition: %+v %v", m, err)
			}
		}
		if _, err := up.UploadPartition(ctx, p); err != nil {
			t.Fatalf("retain first %v: upload: %v", retainFirst, err)
		}
		if !retainFirst {
			if m, _ := LoadManifest(ctx, store, p); m.LogStartOffset != holder.BaseOffset {
				t.Fatalf("first upload starts the tier at %d, want %d", m.LogStartOffset, holder.BaseOffset)
			}
			if _, err := up.Retain(ctx, p, start); err != nil {
				t.Fatal(err)
			}
		}
		expectTier(t, ctx, store, p, src, start)
	}
}

// TestColdRetainRacesUploads: Cold's background Retain past the tier's end
// runs while upload rounds keep going. Rounds fail only with ErrGap, and
// only until the restart; then the tier is whole from the new log start.
func TestColdRetainRacesUploads(t *testing.T) {
	ctx := context.Background()
	rng := newRand(51)
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(2)
	src.addSegment(rng, []Partition{p}, 30, 2000)
	c, up := testCold(store, src, 10_000)
	defer c.Close()
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	m1, _ := up.Manifest(ctx, p)
	src.addSegment(rng, []Partition{p}, 30, 2000)
	holder := src.chunkInside(t, p, m1.NextOffset()+5)
	start := holder.BaseOffset + 1
	src.dropBelow(p, start)

	stop := make(chan struct{})
	rounds := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				rounds <- nil
				return
			default:
			}
			if err := up.UploadAll(ctx); err != nil && !errors.Is(err, ErrGap) {
				rounds <- err
				return
			}
		}
	}()
	c.Retain(p, start)
	waitFor(t, 10*time.Second, "the tier to restart and catch up", func() bool {
		m, err := up.Manifest(ctx, p)
		return err == nil && m.LogStartOffset == start && m.NextOffset() == src.sealed[p]
	})
	close(stop)
	if err := <-rounds; err != nil {
		t.Fatalf("upload round: %v", err)
	}
	if err := up.UploadAll(ctx); err != nil {
		t.Fatalf("round after the restart: %v", err)
	}
	expectTier(t, ctx, store, p, src, start)
	for i := range m1.Objects {
		if _, err := store.Head(ctx, m1.ObjectKey(i)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("old object %d still there: %v", i, err)
		}
	}
}
