package storage

import (
	"fmt"
	"testing"

	"github.com/klite/klite/vfs"
)

// Hostile tests of compaction: what consumers, operators and crashes do
// to a compacted partition that the happy path does not.

// appendKeyed appends one batch of keyed records (value size valBytes) and
// returns its base offset.
func appendKeyed(t testing.TB, s *Store, topic string, ts int64, valBytes int, keys ...string) int64 {
	t.Helper()
	var recs []kv
	for _, k := range keys {
		recs = append(recs, kv{key: []byte(k), val: make([]byte, valBytes)})
	}
	res := appendWait(t, s, topic, 0, makeKeyedBatch(t, codecNone, ts, recs...), true)
	if res.Err != nil {
		t.Fatalf("append: %v", res.Err)
	}
	return res.BaseOffset
}

// firstBatchOf returns the base and last offset of the first batch a Read
// at offset answers with.
func firstBatchOf(t testing.TB, s *Store, topic string, offset, maxBytes int64) (base, last int64) {
	t.Helper()
	res := s.Read(topic, 0, offset, maxBytes)
	defer res.Release()
	if res.Err != nil || len(res.Chunks) == 0 {
		t.Fatalf("Read(@%d, %d bytes): %d chunks, %v", offset, maxBytes, len(res.Chunks), res.Err)
	}
	var hdr [BatchHeaderBytes]byte
	c := res.Chunks[0]
	if _, err := c.File.ReadAt(hdr[:], c.Off); err != nil {
		t.Fatal(err)
	}
	h, _ := ParseBatchHeader(hdr[:])
	return h.BaseOffset, h.BaseOffset + int64(h.LastOffsetDelta)
}

// A fetch at an offset whose batch compaction removed (a consumer's
// committed offset, just past the batch it read last) must start at the
// next surviving batch, as Kafka's does, not at the batch before the gap:
// a batch wholly below the fetch offset that alone exceeds the fetch
// budget is all a KIP-74 read returns, the consumer skips its records and
// asks for the same offset again, forever.
func TestCompactFetchInsideRemovedBatch(t *testing.T) {
	fsys := vfs.NewMemFS()
	clock := &fakeClock{}
	clock.ms.Store(1_000_000)
	s, _ := newCompactStore(t, fsys, clock)
	defer s.Close()
	if _, err := s.CreateTopic("c", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	ts := clock.ms.Load()
	a := appendKeyed(t, s, "c", ts, 4000, "a0", "a1", "a2") // survives, 12 KB
	b := appendKeyed(t, s, "c", ts, 10, "b0", "b1", "b2")   // superseded below
	c := appendKeyed(t, s, "c", ts, 10, "c0", "c1", "c2")   // survives
	appendKeyed(t, s, "c", ts, 10, "b0", "b1", "b2")
	for i := range 40 { // seal the segments above
		appendKeyed(t, s, "c", ts, 4000, fmt.Sprintf("f%d", i%3))
	}
	waitCheckpoints(t, s)
	s.Compact()
	if end := s.compEnd("c"); end <= c {
		t.Fatalf("cleaned end %d, want past %d", end, c)
	}
	if base, _ := firstBatchOf(t, s, "c", a, 1<<20); base != a {
		t.Fatalf("Read@%d starts at batch %d", a, base)
	}
	for off := b; off < c; off++ {
		for _, maxBytes := range []int64{1, 1 << 20} {
			base, last := firstBatchOf(t, s, "c", off, maxBytes)
			if last < off {
				t.Fatalf("Read@%d (maxBytes %d) starts with batch [%d,%d] wholly below it: the consumer cannot advance", off, maxBytes, base, last)
			}
			if base != c {
				t.Fatalf("Read@%d (maxBytes %d) starts at batch %d, want %d", off, maxBytes, base, c)
			}
		}
	}
}
