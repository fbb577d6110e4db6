package tier

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// testBatch is one record batch written by addBatchSegment.
type testBatch struct {
	base, last, maxTS int64
}

// addBatchSegment writes a segment file holding, for p, nChunks chunks of
// batchesPer v2 batches each (header fields Cold reads filled in, plus a
// few payload bytes), with max timestamps from ts(i) for the ith batch of
// the partition, and seals everything. It returns the batches written.
func (s *testSource) addBatchSegment(p Partition, nChunks, batchesPer int, ts func(i int) int64) []testBatch {
	f := s.newSegmentFile()
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.nextOffset(p)
	var out []testBatch
	var pos int64
	for range nChunks {
		var chunk []byte
		c := SourceChunk{BaseOffset: next, MaxTimestamp: -1, File: f, Pos: pos}
		for range batchesPer {
			n := int64(len(s.data[p]) + len(chunk)) // any varying amount
			records := 1 + n%3
			b := make([]byte, batchHeaderBytes+int(n%17))
			tb := testBatch{base: next, last: next + records - 1, maxTS: ts(len(out))}
			putTestBatch(b, next, int32(records-1), tb.maxTS)
			out = append(out, tb)
			if tb.maxTS > c.MaxTimestamp {
				c.MaxTimestamp, c.MaxTimestampOffset = tb.maxTS, tb.base
			}
			chunk = append(chunk, b...)
			next = tb.last + 1
		}
		if _, err := f.WriteAt(chunk, pos); err != nil {
			s.t.Fatal(err)
		}
		c.LastOffset, c.Len = next-1, int32(len(chunk))
		s.chunks[p] = append(s.chunks[p], c)
		s.data[p] = append(s.data[p], chunk...)
		s.sealed[p] = next
		pos += int64(len(chunk))
	}
	return out
}

func testCold(store ObjectStore, src Source, objectBytes int64) (*Cold, *Uploader) {
	up := testUploader(store, src, objectBytes)
	c := NewCold(ColdConfig{Uploader: up, Reader: NewReader(ReaderConfig{Store: store}), Log: zerolog.Nop(),
		Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	return c, up
}

// TestColdRead: Cold reads what the reader reads over the uploader's
// published manifest; partitions with nothing tiered have no manifest and
// read as ErrNotTiered.
func TestColdRead(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	src.addSegment(newRand(41), []Partition{p}, 40, 3000)
	c, up := testCold(store, src, 20_000)
	defer c.Close()

	if m, err := c.Manifest(ctx, p); m != nil || err != nil {
		t.Fatalf("manifest before any upload: %v, %v; want nil, nil", m, err)
	}
	if _, err := c.Read(ctx, p, 0, 100); !errors.Is(err, ErrNotTiered) {
		t.Fatalf("read with nothing tiered: %v", err)
	}
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := c.Manifest(ctx, p)
	if err != nil || m == nil || m.NextOffset() != src.sealed[p] {
		t.Fatalf("manifest after upload: %+v, %v", m, err)
	}
	data := src.data[p]
	var pos int64
	for _, ch := range src.chunks[p] {
		got, err := c.Read(ctx, p, ch.LastOffset, 1)
		if err != nil {
			t.Fatalf("read %d: %v", ch.LastOffset, err)
		}
		if !bytes.Equal(got, data[pos:pos+int64(ch.Len)]) {
			t.Fatalf("read %d: %d bytes differ from chunk at %d", ch.LastOffset, len(got), pos)
		}
		pos += int64(ch.Len)
	}
	if _, err := c.Read(ctx, p, m.NextOffset(), 1); !errors.Is(err, ErrNotTiered) {
		t.Fatalf("read at the tier's end: %v", err)
	}
	if m, err := c.Manifest(ctx, testPart(9)); m != nil || err != nil {
		t.Fatalf("unknown partition: %v, %v", m, err)
	}
}

// TestColdOffsetForTime: against a brute-force scan of the batches, for
// timestamps before, between, on and after them, with timestamps not
// monotonic in offset; and after retention moved the log start into an
// object.
func TestColdOffsetForTime(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	// Mostly rising timestamps with dips, so an object's max is not its
	// last batch's.
	batches := src.addBatchSegment(p, 30, 4, func(i int) int64 {
		if i%7 == 3 {
			return 1000 + int64(i)*10 - 45
		}
		return 1000 + int64(i)*10
	})
	c, up := testCold(store, src, 1500)
	defer c.Close()
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	m, _ := c.Manifest(ctx, p)
	if len(m.Objects) < 3 {
		t.Fatalf("%d objects; want several", len(m.Objects))
	}
	check := func(logStart int64) {
		t.Helper()
		for ts := int64(900); ts <= 1000+int64(len(batches))*10+20; ts += 5 {
			wantOff, wantTS := int64(-1), int64(-1)
			for _, b := range batches {
				if b.last >= logStart && b.maxTS >= ts {
					wantOff, wantTS = b.base, b.maxTS
					break
				}
			}
			off, gotTS, err := c.OffsetForTime(ctx, p, ts)
			if err != nil || off != wantOff || gotTS != wantTS {
				t.Fatalf("log start %d, ts %d: (%d, %d, %v), want (%d, %d)", logStart, ts, off, gotTS, err, wantOff, wantTS)
			}
		}
	}
	check(0)
	cut := m.Objects[1].BaseOffset + 2
	if _, err := up.Retain(ctx, p, cut); err != nil {
		t.Fatal(err)
	}
	check(cut)
	if off, ts, err := c.OffsetForTime(ctx, testPart(5), 0); off != -1 || ts != -1 || err != nil {
		t.Fatalf("untiered partition: %d %d %v", off, ts, err)
	}
}

// manifestGate blocks manifest version puts while gate is set, counting
// them, so a test controls when a retention pass finishes.
type manifestGate struct {
	ObjectStore
	mu       sync.Mutex
	gate     chan struct{} // nil: open
	versions int           // manifest version puts seen
	waiting  int
}

func (g *manifestGate) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) error {
	if strings.Contains(key, "/manifest/v/") {
		g.mu.Lock()
		g.versions++
		gate := g.gate
		g.waiting++
		g.mu.Unlock()
		if gate != nil {
			<-gate
		}
		g.mu.Lock()
		g.waiting--
		g.mu.Unlock()
	}
	return g.ObjectStore.Put(ctx, key, body, size, opts)
}

func (g *manifestGate) counts() (versions, waiting int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.versions, g.waiting
}

// TestColdRetainCoalesces: Retain returns at once; calls made while a pass
// is under way collapse into one more pass at the largest offset.
func TestColdRetainCoalesces(t *testing.T) {
	ctx := context.Background()
	mem, src, _ := uploadedFixture(t, 60, 2000, 10_000)
	p := testPart(0)
	gs := &manifestGate{ObjectStore: mem, gate: make(chan struct{})}
	c, up := testCold(gs, src, 10_000)
	defer c.Close()
	m, err := up.Manifest(ctx, p)
	if err != nil || len(m.Objects) < 5 {
		t.Fatalf("fixture: %+v %v", m, err)
	}
	c.Retain(p, m.Objects[1].BaseOffset)
	waitFor(t, 10*time.Second, "first retention pass to block", func() bool { _, w := gs.counts(); return w == 1 })
	for i := 2; i < 5; i++ {
		c.Retain(p, m.Objects[i].BaseOffset+1)
	}
	c.Retain(p, m.Objects[2].BaseOffset) // smaller: the largest wins
	close(gs.gate)
	want := m.Objects[4].BaseOffset + 1
	waitFor(t, 10*time.Second, "log start to reach the last Retain", func() bool {
		got, err := LoadManifest(ctx, mem, p)
		return err == nil && got.LogStartOffset == want
	})
	waitFor(t, 10*time.Second, "retention worker to finish", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.jobs) == 0
	})
	if v, _ := gs.counts(); v != 2 {
		t.Fatalf("%d manifest versions published for 5 Retain calls; want 2 (one pass, then one coalesced)", v)
	}
	for i := range 4 {
		if _, err := mem.Head(ctx, m.ObjectKey(i)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("object %d below the log start still there: %v", i, err)
		}
	}
}

// TestColdRetainRetries: with the store down, retention keeps retrying in
// the background and completes once the store is back.
func TestColdRetainRetries(t *testing.T) {
	ctx := context.Background()
	mem, src, m := uploadedFixture(t, 40, 2000, 10_000)
	p := testPart(0)
	c, up := testCold(mem, src, 10_000)
	defer c.Close()
	if _, err := up.Manifest(ctx, p); err != nil {
		t.Fatal(err)
	}
	mem.SetDown(ErrInjected)
	before := mem.Calls(OpPut)
	cut := m.Objects[2].BaseOffset
	c.Retain(p, cut)
	// Several passes, each of Attempts tries, fail while it is down.
	waitFor(t, 10*time.Second, "retention to retry", func() bool { return mem.Calls(OpPut) > before+2*4 })
	mem.SetDown(nil)
	waitFor(t, 10*time.Second, "retention after the outage", func() bool {
		got, err := LoadManifest(ctx, mem, p)
		return err == nil && got.LogStartOffset == cut
	})
}

// TestColdForget: a forgotten partition's objects, versions and pointer
// are all deleted; another partition's are untouched.
func TestColdForget(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	src := newTestSource(t)
	gone, kept := testPart(0), testPart(1)
	src.addSegment(newRand(43), []Partition{gone, kept}, 30, 2000)
	c, up := testCold(store, src, 8000)
	defer c.Close()
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	keysUnder := func(p Partition) int {
		n := 0
		for _, k := range store.Keys() {
			if strings.HasPrefix(k, p.Dir()) {
				n++
			}
		}
		return n
	}
	keptBefore := keysUnder(kept)
	if keysUnder(gone) < 4 || keptBefore < 4 {
		t.Fatalf("fixture: %d and %d keys", keysUnder(gone), keptBefore)
	}
	c.Retain(gone, 5) // a retention pass queued before the delete is harmless
	c.Forget(gone)
	waitFor(t, 10*time.Second, "partition deleted", func() bool { return keysUnder(gone) == 0 })
	if keysUnder(kept) != keptBefore {
		t.Fatalf("other partition lost keys: %d -> %d", keptBefore, keysUnder(kept))
	}
	if m, err := c.Manifest(ctx, gone); m != nil || err != nil {
		t.Fatalf("manifest of a forgotten partition: %+v %v", m, err)
	}
}

// TestColdCloseWhileDown: Close returns while background work is stuck
// retrying against a dead store.
func TestColdCloseWhileDown(t *testing.T) {
	mem, src, m := uploadedFixture(t, 20, 2000, 10_000)
	c, _ := testCold(mem, src, 10_000)
	mem.SetDown(ErrInjected)
	c.Retain(testPart(0), m.Objects[1].BaseOffset)
	c.Forget(testPart(3))
	before := mem.Calls(OpPut) + mem.Calls(OpList)
	waitFor(t, 10*time.Second, "background work to start failing", func() bool {
		return mem.Calls(OpPut)+mem.Calls(OpList) > before+2
	})
	c.Close()
	c.Retain(testPart(0), m.Objects[2].BaseOffset) // after Close: ignored
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.jobs) > 2 {
		t.Fatalf("%d jobs after Close", len(c.jobs))
	}
}

// TestColdOffsetForTimeSpikeBelowLogStart: retention moved the log start
// just past a batch whose timestamp is far above its neighbours', inside
// the chunk (index entry) holding it. The entry's max timestamp is then
// that of a batch below the log start: a lookup between the two must go
// on to the next batch that qualifies, not report the entry corrupt.
func TestColdOffsetForTimeSpikeBelowLogStart(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	batches := src.addBatchSegment(p, 20, 4, func(i int) int64 {
		if i%4 == 1 {
			return 1000 + int64(i)*10 + 500 // a spike in every chunk
		}
		return 1000 + int64(i)*10
	})
	c, up := testCold(store, src, 1500)
	defer c.Close()
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	cut := batches[5].last + 1 // just past the second chunk's spike
	if _, err := up.Retain(ctx, p, cut); err != nil {
		t.Fatal(err)
	}
	for ts := int64(900); ts <= 1000+int64(len(batches))*10+520; ts += 5 {
		wantOff, wantTS := int64(-1), int64(-1)
		for _, b := range batches {
			if b.last >= cut && b.maxTS >= ts {
				wantOff, wantTS = b.base, b.maxTS
				break
			}
		}
		off, gotTS, err := c.OffsetForTime(ctx, p, ts)
		if err != nil || off != wantOff || gotTS != wantTS {
			t.Fatalf("log start %d, ts %d: (%d, %d, %v), want (%d, %d)", cut, ts, off, gotTS, err, wantOff, wantTS)
		}
	}
}

// hookStore runs before once, before the first GetRange through it.
type hookStore struct {
	ObjectStore
	before func()
}

func (h *hookStore) GetRange(ctx context.Context, key string, off int64, p []byte) error {
	if f := h.before; f != nil {
		h.before = nil
		f()
	}
	return h.ObjectStore.GetRange(ctx, key, off, p)
}

// TestColdOffsetForTimeObjectsReplaced: a timestamp lookup that took the
// manifest just before retention or a compaction published a newer one
// and deleted the objects it read retries with the newer manifest, as
// Read does, instead of failing as if the bucket had lost an object.
func TestColdOffsetForTimeObjectsReplaced(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	batches := src.addBatchSegment(p, 30, 4, func(i int) int64 { return 1000 + int64(i)*10 })
	up := testUploader(store, src, 1500)
	hs := &hookStore{ObjectStore: store}
	c := NewCold(ColdConfig{Uploader: up, Reader: NewReader(ReaderConfig{Store: hs}), Log: zerolog.Nop(),
		Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	defer c.Close()
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	m, _ := c.Manifest(ctx, p)
	cut := m.Objects[1].BaseOffset + 1
	hs.before = func() {
		if _, err := up.Retain(ctx, p, cut); err != nil {
			t.Error(err)
		}
	}
	var want testBatch
	for _, b := range batches {
		if b.last >= cut {
			want = b
			break
		}
	}
	off, ts, err := c.OffsetForTime(ctx, p, 0)
	if err != nil || off != want.base || ts != want.maxTS {
		t.Fatalf("OffsetForTime(0) with the objects deleted meanwhile: (%d, %d, %v), want (%d, %d)", off, ts, err, want.base, want.maxTS)
	}
	if st := c.Stats(); st.Missing != 0 {
		t.Fatalf("stats %+v: a replaced object counted as missing", st)
	}
}

// TestColdObjectDataReplaced: compaction reading an object that retention
// replaced meanwhile (published a manifest without it, then deleted it)
// gets ErrRewriteStale, not a missing object: nothing is lost, the next
// pass starts from the newer manifest, and no operator is alarmed.
func TestColdObjectDataReplaced(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	src.addBatchSegment(p, 30, 4, func(i int) int64 { return 1000 + int64(i)*10 })
	c, up := testCold(store, src, 1500)
	defer c.Close()
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	m, _ := c.Manifest(ctx, p)
	if _, err := up.Retain(ctx, p, m.Objects[1].BaseOffset); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ObjectData(ctx, m, 0, nil); !errors.Is(err, ErrRewriteStale) {
		t.Fatalf("reading a replaced object: %v", err)
	}
	if st := c.Stats(); st.Missing != 0 || st.ReadErrors != 0 {
		t.Fatalf("stats %+v: a replaced object counted as a failed read", st)
	}
	// An object the current manifest still lists is missing for real.
	m, _ = c.Manifest(ctx, p)
	if err := store.Delete(ctx, m.ObjectKey(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ObjectData(ctx, m, 0, nil); !errors.Is(err, ErrNotFound) || c.Stats().Missing != 1 {
		t.Fatalf("reading a lost object: %v, stats %+v", err, c.Stats())
	}
}

// TestColdMaxTimestampBelowLogStart: ListOffsets -3 on tiered data answers
// the largest max timestamp at or above the log start, also when the
// largest of all lies in a batch that retention cut off the first object
// (the manifest's per-object maximum still counts it), and at every cut,
// including ones inside an index entry.
func TestColdMaxTimestampBelowLogStart(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	batches := src.addBatchSegment(p, 20, 4, func(i int) int64 {
		switch i {
		case 2:
			return 9000 // the largest of all, early in the first object
		case 9, 13:
			return 5000 // ties: the first one above the cut wins
		}
		return 1000 + int64(i)*10
	})
	c, up := testCold(store, src, 1500)
	defer c.Close()
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Manifest(ctx, p); err != nil || len(m.Objects) < 2 {
		t.Fatalf("manifest %v, %v: want several objects", m, err)
	}
	cut := int64(0)
	for _, b := range batches {
		if b.base > cut {
			cut = b.base
		} else {
			cut = b.base + 1 // inside a batch: it still counts
		}
		if _, err := up.Retain(ctx, p, cut); err != nil {
			t.Fatal(err)
		}
		wantOff, wantTS := int64(-1), int64(-1)
		for _, b := range batches {
			if b.last >= cut && (wantOff < 0 || b.maxTS > wantTS) {
				wantOff, wantTS = b.base, b.maxTS
			}
		}
		off, ts, err := c.MaxTimestamp(ctx, p)
		if err != nil || off != wantOff || ts != wantTS {
			t.Fatalf("log start %d: (%d, %d, %v), want (%d, %d)", cut, off, ts, err, wantOff, wantTS)
		}
	}
}
