package tier

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// rwBatch is one batch of a test object: its offsets and bytes.
type rwBatch struct {
	base, last int64
	b          []byte
}

// eachTestBatch splits verified batch bytes.
func eachTestBatch(t testing.TB, b []byte) []rwBatch {
	t.Helper()
	var out []rwBatch
	for len(b) > 0 {
		size := batchLengthPrefixLen + int(binary.BigEndian.Uint32(b[batchLengthAt:]))
		base := int64(binary.BigEndian.Uint64(b))
		out = append(out, rwBatch{base, base + int64(binary.BigEndian.Uint32(b[batchLastDeltaAt:])), b[:size]})
		b = b[size:]
	}
	return out
}

// rewriteKeep rewrites [m.LogStartOffset, end) of p keeping the batches
// keep says (and always the last), with tombstone clock clock(batch).
func rewriteKeep(t *testing.T, ctx context.Context, up *Uploader, r *Reader, m *Manifest, end int64,
	keep func(b rwBatch) bool, clock func(b rwBatch) int64) (*Rewrite, error) {
	t.Helper()
	w, err := up.NewRewrite(ctx, m.Part, m, end)
	if err != nil {
		return nil, err
	}
	for i := range m.Objects {
		if m.Objects[i].BaseOffset >= end {
			break
		}
		data, err := r.ObjectData(ctx, m, i, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range eachTestBatch(t, data) {
			if b.last < m.LogStartOffset || (!keep(b) && b.last != end-1) {
				continue
			}
			if err := w.Add(ctx, b.b, clock(b)); err != nil {
				w.Abort(ctx)
				return nil, err
			}
		}
	}
	return w, nil
}

// expectSparse checks that reading every offset of m from its log start
// yields first the kept batch (of all, the source's batches) that ends at
// or after it.
func expectSparse(t *testing.T, ctx context.Context, r *Reader, m *Manifest, all []rwBatch, kept func(rwBatch) bool) {
	t.Helper()
	var want []rwBatch
	for _, b := range all {
		if b.last >= m.LogStartOffset && b.last < m.NextOffset() && kept(b) {
			want = append(want, b)
		}
	}
	j := 0
	for off := m.LogStartOffset; off < m.NextOffset(); off++ {
		for want[j].last < off {
			j++
		}
		got, err := r.Read(ctx, m, off, 1)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		if !bytes.HasPrefix(got, want[j].b) {
			gb := eachTestBatch(t, got)
			t.Fatalf("read %d: got batch [%d, %d], want [%d, %d]", off, gb[0].base, gb[0].last, want[j].base, want[j].last)
		}
	}
}

func allTestBatches(t *testing.T, src *testSource, p Partition) []rwBatch {
	src.mu.Lock()
	defer src.mu.Unlock()
	return eachTestBatch(t, append([]byte(nil), src.data[p]...))
}

func TestVerifySparse(t *testing.T) {
	b := make([]byte, 0, 300)
	for _, base := range []int64{12, 20} {
		x := make([]byte, batchHeaderBytes+10)
		putTestBatch(x, base, 2, 1)
		b = append(b, x...)
	}
	// Batches [12, 14] and [20, 22] in an entry [10, 29].
	if err := verifyBatches(b, 10, 29, true); err != nil {
		t.Fatalf("sparse entry: %v", err)
	}
	if err := verifyBatches(b, 12, 22, false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("version 1 entry with a gap: %v", err)
	}
	for _, r := range [][2]int64{{13, 29}, {10, 21}} { // batch before base, after last
		if err := verifyBatches(b, r[0], r[1], true); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("sparse entry [%d, %d]: %v", r[0], r[1], err)
		}
	}
	// Out of order in a sparse entry.
	rev := append(append([]byte(nil), b[len(b)/2:]...), b[:len(b)/2]...)
	if err := verifyBatches(rev, 10, 29, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("batches out of order: %v", err)
	}
	// Trailer versions: 2 decodes as sparse, 3 is refused.
	idx, _ := appendIndex(nil, []IndexEntry{{BaseOffset: 10, LastOffset: 29, Len: int32(len(b))}}, objectVersionV2)
	tr, err := DecodeTrailer(idx[len(idx)-trailerBytes:])
	if err != nil || !tr.Sparse() {
		t.Fatalf("v2 trailer: %+v %v", tr, err)
	}
	idx, _ = appendIndex(nil, []IndexEntry{{BaseOffset: 10, LastOffset: 29, Len: int32(len(b))}}, 3)
	if _, err := DecodeTrailer(idx[len(idx)-trailerBytes:]); err == nil || !strings.Contains(err.Error(), "object version 3") {
		t.Fatalf("v3 trailer: %v", err)
	}
}

func TestManifestV2(t *testing.T) {
	m := &Manifest{Seq: 7, Part: testPart(1), LogStartOffset: 5, Objects: []ObjectRef{
		{BaseOffset: 0, LastOffset: 9, Size: 100 + 44 + 48, DataBytes: 100, Entries: 1, MaxTimestamp: 3},
		{BaseOffset: 10, LastOffset: 19, Size: 100 + 88 + 48, DataBytes: 100, Entries: 2, MaxTimestamp: 4},
	}}
	b, err := m.AppendBinary(nil)
	if err != nil || b[4] != manifestVersion {
		t.Fatalf("all Gen 0: version %d (%v); want 1", b[4], err)
	}
	m.Objects[0].Gen, m.Objects[0].CleanedAt = 3, 1234
	m.Objects[1].CleanedAt = 0
	b, err = m.AppendBinary(nil)
	if err != nil || b[4] != manifestVersionV2 {
		t.Fatalf("Gen 3: version %d (%v); want 2", b[4], err)
	}
	got, err := DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Objects[0] != m.Objects[0] || got.Objects[1] != m.Objects[1] || got.LogStartOffset != 5 {
		t.Fatalf("round trip: %+v", got.Objects)
	}
	got.fillKeys(nil)
	if k := got.ObjectKey(0); !strings.HasSuffix(k, "data/00000000000000000000-00000000000000000009-g0000000003.klo") {
		t.Fatalf("key %s", k)
	}
	b[len(b)-5] ^= 1
	if _, err := DecodeManifest(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
}

// uploadedPart uploads a partition of nChunks one-batch chunks in objects
// of about objectBytes and returns the uploader, a reader and the manifest.
func uploadedPart(t *testing.T, store *MemStore, nChunks int) (*testSource, *Uploader, *Reader, *Manifest) {
	t.Helper()
	ctx := context.Background()
	src := newTestSource(t)
	src.addSegment(newRand(9), []Partition{testPart(0)}, nChunks, 500)
	up := testUploader(store, src, 6000)
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := up.Manifest(ctx, testPart(0))
	if err != nil {
		t.Fatal(err)
	}
	return src, up, NewReader(ReaderConfig{Store: store, CacheBytes: 1 << 20}), m
}

func odd(b rwBatch) bool        { return b.base%2 == 1 }
func noClock(rwBatch) int64     { return -1 }
func everyFifth(b rwBatch) bool { return b.base%5 == 0 }

// TestRewriteReads: a rewritten prefix reads as the kept batches at their
// offsets, from every offset, also through a fresh manifest load, and the
// replaced objects are gone.
func TestRewriteReads(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	src, up, r, m := uploadedPart(t, store, 120)
	p := testPart(0)
	all := allTestBatches(t, src, p)
	end := m.Objects[len(m.Objects)-2].LastOffset + 1
	w, err := rewriteKeep(t, ctx, up, r, m, end, odd, noClock)
	if err != nil {
		t.Fatal(err)
	}
	put, deleted, err := w.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := up.Manifest(ctx, p)
	kept := func(b rwBatch) bool { return b.last >= end || odd(b) || b.last == end-1 }
	t.Logf("objects %d -> %d; bytes put %d, deleted %d", len(m.Objects), len(m2.Objects), put, deleted)
	if m2.Seq != m.Seq+1 || m2.NextOffset() != m.NextOffset() || m2.Objects[0].Gen != 1 || m2.Objects[len(m2.Objects)-1] != m.Objects[len(m.Objects)-1] {
		t.Fatalf("manifest after rewrite: seq %d, objects %+v", m2.Seq, m2.Objects)
	}
	if put >= deleted {
		t.Fatalf("put %d bytes for %d deleted keeping half", put, deleted)
	}
	expectSparse(t, ctx, r, m2, all, kept)
	fresh, err := LoadManifest(ctx, store, p)
	if err != nil {
		t.Fatal(err)
	}
	expectSparse(t, ctx, NewReader(ReaderConfig{Store: store}), fresh, all, kept)
	// A reader still holding the old manifest finds its objects gone.
	if _, err := NewReader(ReaderConfig{Store: store}).Read(ctx, m, 0, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old manifest read: %v", err)
	}
	// Compacting again (a second generation over the first and the rest).
	m3 := fresh
	w, err = rewriteKeep(t, ctx, up, r, m3, m3.NextOffset(), everyFifth, noClock)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	m4, _ := up.Manifest(ctx, p)
	if m4.Objects[0].Gen != 2 {
		t.Fatalf("second rewrite gen %d", m4.Objects[0].Gen)
	}
	kept2 := func(b rwBatch) bool { return kept(b) && (everyFifth(b) || b.last == m3.NextOffset()-1) }
	expectSparse(t, ctx, r, m4, all, kept2)
	if n, err := up.CleanOrphans(ctx, p); n != 0 || err != nil {
		t.Fatalf("orphans after clean rewrites: %d %v", n, err)
	}
	if keys := store.Keys(); len(keys) != len(m4.Objects)+keepManifestVersions+1 {
		t.Fatalf("%d keys for %d objects: %v", len(keys), len(m4.Objects), keys)
	}
}

// TestRewriteTombstoneClocks: batches with different tombstone clocks go
// to different objects, each object carrying its clock; batches without
// tombstones join any object.
func TestRewriteTombstoneClocks(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	_, up, r, m := uploadedPart(t, store, 60)
	end := m.NextOffset()
	clock := func(b rwBatch) int64 {
		switch {
		case b.base < 20 && b.base%3 == 0:
			return 100
		case b.base >= 20 && b.base%3 == 0:
			return 200
		}
		return -1
	}
	w, err := rewriteKeep(t, ctx, up, r, m, end, func(rwBatch) bool { return true }, clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	m2, _ := up.Manifest(ctx, testPart(0))
	seen := map[int64]bool{}
	for _, o := range m2.Objects {
		seen[o.CleanedAt] = true
		data, err := r.ObjectData(ctx, m2, m2.Find(o.BaseOffset), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range eachTestBatch(t, data) {
			if c := clock(b); c >= 0 && c != o.CleanedAt {
				t.Fatalf("batch %d with clock %d in object with clock %d", b.base, c, o.CleanedAt)
			}
		}
	}
	if !seen[100] || !seen[200] {
		t.Fatalf("clocks %v", seen)
	}
}

// TestRewriteRaces: an upload between the start of a rewrite and its
// commit is kept; retention inside the rewritten range moves the log
// start; retention past its end makes the commit stale, nothing published
// and the new objects deleted.
func TestRewriteRaces(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	src, up, r, m := uploadedPart(t, store, 80)
	p := testPart(0)
	end := m.NextOffset()
	w, err := rewriteKeep(t, ctx, up, r, m, end, odd, noClock)
	if err != nil {
		t.Fatal(err)
	}
	src.addSegment(newRand(11), []Partition{p}, 30, 500)
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	mid := m.Objects[1].BaseOffset + 1
	if _, err := up.Retain(ctx, p, mid); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	m2, _ := up.Manifest(ctx, p)
	if m2.LogStartOffset != mid || m2.NextOffset() != src.sealed[p] {
		t.Fatalf("after commit: log start %d, end %d; want %d, %d", m2.LogStartOffset, m2.NextOffset(), mid, src.sealed[p])
	}
	all := allTestBatches(t, src, p)
	expectSparse(t, ctx, r, m2, all, func(b rwBatch) bool { return b.last >= end || odd(b) || b.last == end-1 })

	// Retention past the end of the next rewrite's range.
	end2 := m2.Objects[len(m2.Objects)-2].LastOffset + 1
	w, err = rewriteKeep(t, ctx, up, r, m2, end2, everyFifth, noClock)
	if err != nil {
		t.Fatal(err)
	}
	before := store.Keys()
	if _, err := up.Retain(ctx, p, end2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Commit(ctx); !errors.Is(err, ErrRewriteStale) {
		t.Fatalf("commit after retention past its end: %v", err)
	}
	for _, k := range store.Keys() {
		if strings.Contains(k, "-g0000000002") {
			t.Fatalf("stale rewrite left %s (keys before retention %d)", k, len(before))
		}
	}
	m3, _ := up.Manifest(ctx, p)
	if m3.LogStartOffset != end2 {
		t.Fatalf("log start %d", m3.LogStartOffset)
	}
}

// TestRewriteOrphans: objects of a rewrite that never committed are
// deleted before the next rewrite after a restart; objects at or past the
// manifest's end (an upload in flight) are not.
func TestRewriteOrphans(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	_, up, r, m := uploadedPart(t, store, 60)
	p := testPart(0)
	w, err := rewriteKeep(t, ctx, up, r, m, m.NextOffset(), odd, noClock)
	if err != nil {
		t.Fatal(err)
	}
	_ = w // crash: never committed; its full objects are in the bucket
	inflight := p.ObjectKey(m.NextOffset(), m.NextOffset()+10)
	if err := store.Put(ctx, inflight, bytes.NewReader([]byte("x")), 1, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var orphans int
	for _, k := range store.Keys() {
		if strings.Contains(k, "-g") {
			orphans++
		}
	}
	if orphans == 0 {
		t.Fatal("the unfinished rewrite put no object")
	}
	up2 := testUploader(store, newTestSource(t), 6000) // a restart
	n, err := up2.CleanOrphans(ctx, p)
	if err != nil || n != orphans {
		t.Fatalf("cleaned %d of %d orphans: %v", n, orphans, err)
	}
	keys := store.Keys()
	if !contains(keys, inflight) {
		t.Fatal("an object past the manifest's end was deleted")
	}
	for i := range m.Objects {
		if !contains(keys, m.ObjectKey(i)) {
			t.Fatalf("referenced %s deleted", m.ObjectKey(i))
		}
	}
}

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// TestRewriteCrashEveryStep fails every PUT and DELETE of a rewrite in
// turn (as a crash there would stop it): the bucket's manifest always
// reads back consistently, as the old or the new log, and a rewrite from
// a fresh uploader (a restart) then finishes and leaves no orphan.
func TestRewriteCrashEveryStep(t *testing.T) {
	ctx := context.Background()
	for _, op := range []Op{OpPut, OpDelete} {
		for n := 1; ; n++ {
			store := NewMemStore()
			src, up, r, m := uploadedPart(t, store, 60)
			p := testPart(0)
			all := allTestBatches(t, src, p)
			up.cfg.Attempts = 1
			puts, dels := store.Calls(OpPut), store.Calls(OpDelete)
			store.FailNth(op, n, nil)
			w, err := rewriteKeep(t, ctx, up, r, m, m.NextOffset(), odd, noClock)
			if err == nil {
				_, _, err = w.Commit(ctx)
			}
			steps := store.Calls(OpPut) - puts
			if op == OpDelete {
				steps = store.Calls(OpDelete) - dels
			}
			if err == nil && steps < n {
				t.Logf("%v: %d steps failed in turn", op, n-1)
				break // the rewrite has fewer steps than n: all covered
			}
			end := m.NextOffset()
			kept := func(b rwBatch) bool { return odd(b) || b.last == end-1 }
			cur, lerr := LoadManifest(ctx, store, p)
			if lerr != nil {
				t.Fatalf("%v %d: %v", op, n, lerr)
			}
			fresh := NewReader(ReaderConfig{Store: store})
			if cur.Seq == m.Seq {
				expectSparse(t, ctx, fresh, cur, all, func(rwBatch) bool { return true })
			} else {
				expectSparse(t, ctx, fresh, cur, all, kept)
			}
			up2 := testUploader(store, newTestSource(t), 6000)
			m2, _ := up2.Manifest(ctx, p)
			w, err = rewriteKeep(t, ctx, up2, fresh, m2, m2.NextOffset(), odd, noClock)
			if err != nil {
				t.Fatalf("%v %d: rewrite after restart: %v", op, n, err)
			}
			if _, _, err := w.Commit(ctx); err != nil {
				t.Fatalf("%v %d: commit after restart: %v", op, n, err)
			}
			m3, _ := up2.Manifest(ctx, p)
			expectSparse(t, ctx, fresh, m3, all, kept)
			if k, err := up2.CleanOrphans(ctx, p); k != 0 || err != nil {
				t.Fatalf("%v %d: %d orphans left (%v)", op, n, k, err)
			}
		}
	}
}

// TestRewriteAfterForget: a rewrite whose partition is deleted (its topic
// deleted: Cold.forget empties its prefix) before the commit publishes
// nothing and leaves nothing in the bucket, neither a manifest nor the
// objects it put.
func TestRewriteAfterForget(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	_, up, r, m := uploadedPart(t, store, 60)
	p := testPart(0)
	w, err := rewriteKeep(t, ctx, up, r, m, m.NextOffset(), odd, noClock)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCold(ColdConfig{Uploader: up, Reader: r, Log: zerolog.Nop()})
	defer c.Close()
	if err := c.forget(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Commit(ctx); !errors.Is(err, ErrRewriteStale) {
		t.Fatalf("commit after the partition was forgotten: %v", err)
	}
	for _, k := range store.Keys() {
		if strings.HasPrefix(k, p.Dir()) {
			t.Fatalf("%s left under the deleted partition", k)
		}
	}
}

// TestRewritePublishLandedThenOrphans: a commit whose manifest version
// landed but whose publish still failed (here the pointer put after it,
// with no attempt left; as well an answer lost in flight) leaves the
// bucket on the new manifest while the uploader cannot know it. The
// orphan cleaning that follows in the same process must go by the
// bucket's manifest, not the one in memory, or it deletes the objects
// the published manifest references.
func TestRewritePublishLandedThenOrphans(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	src, up, r, m := uploadedPart(t, store, 60)
	p := testPart(0)
	all := allTestBatches(t, src, p)
	up.cfg.Attempts = 1
	end := m.NextOffset()
	w, err := rewriteKeep(t, ctx, up, r, m, end, odd, noClock)
	if err != nil {
		t.Fatal(err)
	}
	store.FailNth(OpPut, 3, nil) // the last object, the version, then the pointer
	if _, _, err := w.Commit(ctx); err == nil {
		t.Fatal("commit with its pointer put failing succeeded")
	}
	cur, err := LoadManifest(ctx, store, p)
	if err != nil || cur.Seq != m.Seq+1 {
		t.Fatalf("bucket manifest seq %d (%v), want the rewrite's %d", cur.Seq, err, m.Seq+1)
	}
	if _, err := up.CleanOrphansOnce(ctx, p); err != nil {
		t.Fatal(err)
	}
	cur, _ = LoadManifest(ctx, store, p)
	kept := func(b rwBatch) bool { return odd(b) || b.last == end-1 }
	expectSparse(t, ctx, NewReader(ReaderConfig{Store: store}), cur, all, kept)
	if mm, _ := up.Manifest(ctx, p); mm.Seq != cur.Seq {
		t.Fatalf("uploader still on manifest %d, bucket on %d", mm.Seq, cur.Seq)
	}
}
