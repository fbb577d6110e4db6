package tier

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestS3Rewrite: a compaction rewrite against versitygw. A partition of
// about 40 objects is rewritten keeping half its batches; a fresh reader
// on a fresh manifest load reads the kept batches from every offset, the
// replaced objects are gone, and the objects of a rewrite that never
// committed (a crash) are deleted before the next one.
func TestS3Rewrite(t *testing.T) {
	endpoint := startVersitygw(t)
	store := newVersitygwStore(t, endpoint, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := testPart(7)
	src := newTestSource(t)
	src.addSegment(newRand(21), []Partition{p}, 500, 500)
	up := NewUploader(UploaderConfig{Store: store, Source: src, Log: zerolog.Nop(), ObjectBytes: 4000,
		Attempts: 3, Backoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	r := NewReader(ReaderConfig{Store: store, CacheBytes: 1 << 20})
	m, err := up.Manifest(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	all := allTestBatches(t, src, p)
	end := m.NextOffset()

	// A rewrite cut off before its commit leaves orphans.
	if _, err := rewriteKeep(t, ctx, up, r, m, end, everyFifth, noClock); err != nil {
		t.Fatal(err)
	}
	up2 := NewUploader(UploaderConfig{Store: store, Source: src, Log: zerolog.Nop(), ObjectBytes: 4000,
		Attempts: 3, Backoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	start := time.Now()
	w, err := rewriteKeep(t, ctx, up2, r, m, end, odd, noClock)
	if err != nil {
		t.Fatal(err)
	}
	put, deleted, err := w.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	var in int64
	for _, o := range m.Objects {
		in += o.DataBytes
	}
	t.Logf("rewrote %d objects (%d data bytes) in %v: %.2f MB/s in; bucket bytes put %d, deleted %d",
		len(m.Objects), in, took, float64(in)/took.Seconds()/1e6, put, deleted)
	m2, err := LoadManifest(ctx, store, p)
	if err != nil {
		t.Fatal(err)
	}
	kept := func(b rwBatch) bool { return odd(b) || b.last == end-1 }
	expectSparse(t, ctx, NewReader(ReaderConfig{Store: store}), m2, all, kept)
	var keys []string
	if err := store.List(ctx, p.Dir()+"data/", "", func(o ObjectInfo) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(m2.Objects) {
		t.Fatalf("%d data objects in the bucket, the manifest references %d: %v", len(keys), len(m2.Objects), keys)
	}
}
