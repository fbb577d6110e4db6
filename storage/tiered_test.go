package storage

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

// memCold is an in-memory ColdLog: whole batches per partition, one
// manifest object per batch.
type memCold struct {
	mu      sync.Mutex
	parts   map[tier.Partition][]readBatch
	fail    error // Read and OffsetForTime fail with it while set
	reads   int
	retains map[tier.Partition]int64
}

func newMemCold() *memCold {
	return &memCold{parts: map[tier.Partition][]readBatch{}, retains: map[tier.Partition]int64{}}
}

func (f *memCold) set(tp tier.Partition, bs []readBatch) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parts[tp] = bs
}

func (f *memCold) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func batchLast(b readBatch) int64 { return b.base + int64(b.records) - 1 }

func batchMaxTs(b readBatch) int64 {
	h, _ := ParseBatchHeader(b.raw)
	return h.MaxTimestamp
}

func (f *memCold) Manifest(ctx context.Context, tp tier.Partition) (*tier.Manifest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bs := f.parts[tp]
	if len(bs) == 0 {
		return nil, nil
	}
	m := &tier.Manifest{Seq: 1, Part: tp, LogStartOffset: bs[0].base}
	for _, b := range bs {
		m.Objects = append(m.Objects, tier.ObjectRef{BaseOffset: b.base, LastOffset: batchLast(b),
			Size: int64(len(b.raw)), DataBytes: int64(len(b.raw)), Entries: 1, MaxTimestamp: batchMaxTs(b)})
	}
	return m, nil
}

func (f *memCold) Read(ctx context.Context, tp tier.Partition, offset, maxBytes int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.fail != nil {
		return nil, f.fail
	}
	bs := f.parts[tp]
	i := slices.IndexFunc(bs, func(b readBatch) bool { return b.base <= offset && offset <= batchLast(b) })
	if i < 0 {
		return nil, tier.ErrNotTiered
	}
	var out []byte
	for ; i < len(bs); i++ {
		if len(out) > 0 && int64(len(out)+len(bs[i].raw)) > maxBytes {
			break
		}
		out = append(out, bs[i].raw...)
	}
	return out, nil
}

func (f *memCold) OffsetForTime(ctx context.Context, tp tier.Partition, ts int64) (int64, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return -1, -1, f.fail
	}
	for _, b := range f.parts[tp] {
		if mt := batchMaxTs(b); mt >= ts {
			return b.base, mt, nil
		}
	}
	return -1, -1, nil
}

func (f *memCold) Retain(tp tier.Partition, offset int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retains[tp] = offset
}

func (f *memCold) Forget(tp tier.Partition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.parts, tp)
}

func tierOf(ti TopicInfo, part int32) tier.Partition {
	return tier.Partition{Topic: ti.Name, TopicID: ti.ID, Partition: part}
}

// appendN appends n single-batch appends of recs records each, timestamps
// from ts on (step 10), and returns the partition's batches read back.
func appendN(t *testing.T, s *Store, topic string, part int32, n, recs int, ts int64, value []byte) {
	t.Helper()
	for i := range n {
		r := appendWait(t, s, topic, part, makeBatch(batchSpec{records: recs, ts: ts + 10*int64(i), value: value}), true)
		if r.Err != nil {
			t.Fatalf("append: %v", r.Err)
		}
	}
}

// readFrom reads a partition's batches from off to the high watermark.
func readFrom(t *testing.T, s *Store, topic string, part int32, off int64) []readBatch {
	t.Helper()
	return readBatches(t, s, topic, part, off, 8<<10)
}

func sameBatches(t *testing.T, what string, got, want []readBatch) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d batches, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].base != want[i].base || !bytes.Equal(got[i].raw, want[i].raw) {
			t.Fatalf("%s: batch %d at %d differs from the one at %d", what, i, got[i].base, want[i].base)
		}
	}
}

// coldSetup fills a source store with data, snapshots it and restores a
// second store whose logs continue after it, with the source's batches
// as its tier. Partition 0's cold batches have timestamps 1000+, its
// local ones 5000+; partition 1's cold ones 1000+, local ones 500+.
func coldSetup(t *testing.T) (src, dst *Store, cold *memCold, ti TopicInfo, srcBatches [2][]readBatch) {
	src = mustOpen(t, testConfig(vfs.NewMemFS()))
	t.Cleanup(func() { src.Close() })
	ti = mustCreate(t, src, "t", 2)
	for part := range int32(2) {
		appendN(t, src, "t", part, 10, 2, 1000, []byte("cold"))
		srcBatches[part] = readAllBatches(t, src, "t", part)
	}
	cold = newMemCold()
	cfg := testConfig(vfs.NewMemFS())
	cfg.Cold = cold
	dst = mustOpen(t, cfg)
	t.Cleanup(func() { dst.Close() })
	snap := src.Snapshot()
	snap.Topics[0].LogStart[1] = 3
	next := map[tier.Partition]int64{}
	for part := range int32(2) {
		tp := tierOf(ti, part)
		cold.set(tp, srcBatches[part])
		_, hwm, _ := src.Offsets("t", part)
		next[tp] = hwm
	}
	if err := dst.Restore(&snap, next); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	appendN(t, dst, "t", 0, 5, 2, 5000, []byte("hot"))
	appendN(t, dst, "t", 1, 5, 2, 500, []byte("hot"))
	return src, dst, cold, ti, srcBatches
}

func TestColdReadBelowLocalStart(t *testing.T) {
	_, s, cold, _, srcBatches := coldSetup(t)

	all := readFrom(t, s, "t", 0, 0)
	if len(all) != 15 {
		t.Fatalf("read %d batches, want 10 cold + 5 local", len(all))
	}
	sameBatches(t, "cold part", all[:10], srcBatches[0])
	for i, b := range all[10:] {
		if b.base != 20+2*int64(i) {
			t.Fatalf("local batch %d at %d, want %d", i, b.base, 20+2*i)
		}
	}

	res := s.Read("t", 0, 5, 1<<20)
	if res.Err != nil || len(res.Chunks) != 1 || res.Chunks[0].File.Fd() != vfs.NoFd {
		t.Fatalf("cold read: %+v", res)
	}
	if res.HighWatermark != 30 || res.LogStartOffset != 0 || res.Bytes != res.Chunks[0].Len {
		t.Fatalf("cold read: hwm %d, log start %d, bytes %d", res.HighWatermark, res.LogStartOffset, res.Bytes)
	}
	head := make([]byte, BatchHeaderBytes)
	if _, err := res.Chunks[0].File.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if h, _ := ParseBatchHeader(head); h.BaseOffset != 4 {
		t.Fatalf("cold read at 5 starts at %d, want the batch at 4", h.BaseOffset)
	}
	res.Release()

	// Partition 1 starts at 3 (the snapshot's log start).
	if r := s.Read("t", 1, 2, 1<<20); !errors.Is(r.Err, ErrOffsetOutOfRange) {
		t.Fatalf("read below log start: %v", r.Err)
	}
	if ls, hwm, err := s.Offsets("t", 1); err != nil || ls != 3 || hwm != 30 {
		t.Fatalf("Offsets(t/1) = %d, %d, %v", ls, hwm, err)
	}
	got := readFrom(t, s, "t", 1, 3)
	sameBatches(t, "partition 1 from its log start", got[:9], srcBatches[1][1:])

	// A tier failure is a retriable storage error; the partition stays up.
	cold.setFail(errors.New("bucket unreachable"))
	if r := s.Read("t", 0, 0, 1<<20); !errors.Is(r.Err, ErrStorage) {
		t.Fatalf("read with the tier down: %v", r.Err)
	}
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{ts: 6000}), true); r.Err != nil || r.BaseOffset != 30 {
		t.Fatalf("append with the tier down: %+v", r)
	}
	// An object missing at or above the log start is lost data, not an
	// offset out of range (which would send clients to their reset
	// policy, skipping or re-reading the partition).
	cold.setFail(tier.ErrNotFound)
	if r := s.Read("t", 0, 0, 1<<20); !errors.Is(r.Err, ErrStorage) {
		t.Fatalf("read of an object missing above the log start: %v", r.Err)
	}
	cold.setFail(nil)
	if r := s.Read("t", 0, 0, 1<<20); r.Err != nil || r.Bytes == 0 {
		t.Fatalf("read after the tier is back: %v", r.Err)
	}
}

func TestColdOffsetForTimeAndMaxTimestamp(t *testing.T) {
	src, s, _, _, _ := coldSetup(t)

	for _, ts := range []int64{0, 1000, 1001, 1035, 1091} {
		wantOff, wantTs, err := src.OffsetForTime("t", 0, ts)
		if err != nil {
			t.Fatal(err)
		}
		off, gotTs, err := s.OffsetForTime("t", 0, ts)
		if err != nil || off != wantOff || gotTs != wantTs {
			t.Fatalf("OffsetForTime(%d) = %d, %d, %v; want %d, %d (tier)", ts, off, gotTs, err, wantOff, wantTs)
		}
	}
	for _, c := range []struct{ ts, off, mts int64 }{{1092, 20, 5001}, {5015, 24, 5021}, {5041, 28, 5041}, {5042, -1, -1}} {
		off, mts, err := s.OffsetForTime("t", 0, c.ts)
		if err != nil || off != c.off || mts != c.mts {
			t.Fatalf("OffsetForTime(%d) = %d, %d, %v; want %d, %d (local)", c.ts, off, mts, err, c.off, c.mts)
		}
	}
	// Partition 1: the tier's batches are the newest by timestamp, and
	// the tier's answer is raised to the log start (3).
	if off, mts, err := s.OffsetForTime("t", 1, 0); err != nil || off != 3 || mts != 1001 {
		t.Fatalf("OffsetForTime(t/1, 0) = %d, %d, %v; want 3, 1001", off, mts, err)
	}
	if off, mts, err := s.MaxTimestamp("t", 0); err != nil || off != 28 || mts != 5041 {
		t.Fatalf("MaxTimestamp(t/0) = %d, %d, %v; want the local 28, 5041", off, mts, err)
	}
	if off, mts, err := s.MaxTimestamp("t", 1); err != nil || off != 18 || mts != 1091 {
		t.Fatalf("MaxTimestamp(t/1) = %d, %d, %v; want the tiered 18, 1091", off, mts, err)
	}
}

// sealedStore fills one partition over several segments: single-batch
// appends of about 3 KiB, and one append of three batches (one chunk).
func sealedStore(t *testing.T) (*Store, TopicInfo, []readBatch) {
	cfg := testConfig(vfs.NewMemFS())
	cfg.MaxChunkBytes = 4 << 10
	s := mustOpen(t, cfg)
	t.Cleanup(func() { s.Close() })
	ti := mustCreate(t, s, "t", 1)
	value := bytes.Repeat([]byte("v"), 1000)
	appendN(t, s, "t", 0, 30, 3, 100, value)
	multi := slices.Concat(makeBatch(batchSpec{ts: 900}), makeBatch(batchSpec{ts: 950}), makeBatch(batchSpec{ts: 920}))
	if r := appendWait(t, s, "t", 0, multi, true); r.Err != nil || r.BaseOffset != 90 {
		t.Fatalf("multi-batch append: %+v", r)
	}
	appendN(t, s, "t", 0, 30, 3, 1000, value)
	if s.Stats().SegmentsRoll < 2 {
		t.Fatalf("only %d rolls: the test needs several segments", s.Stats().SegmentsRoll)
	}
	return s, ti, readAllBatches(t, s, "t", 0)
}

// rawRange concatenates the batches holding offsets [base, last].
func rawRange(bs []readBatch, base, last int64) []byte {
	var out []byte
	for _, b := range bs {
		if b.base >= base && batchLast(b) <= last {
			out = append(out, b.raw...)
		}
	}
	return out
}

// maxTsIn returns the largest batch max timestamp in [base, last] and the
// base offset of the first batch with it.
func maxTsIn(bs []readBatch, base, last int64) (int64, int64) {
	mts, mto := int64(-1), int64(-1)
	for _, b := range bs {
		if b.base >= base && batchLast(b) <= last {
			if ts := batchMaxTs(b); mto < 0 || ts > mts {
				mts, mto = ts, b.base
			}
		}
	}
	return mts, mto
}

func TestSealedWalksChunks(t *testing.T) {
	s, ti, batches := sealedStore(t)
	tp := tierOf(ti, 0)
	if ps := s.Partitions(); len(ps) != 1 || ps[0] != tp {
		t.Fatalf("Partitions() = %v", ps)
	}
	_, hwm, _ := s.Offsets("t", 0)
	const maxBytes = 10 << 10
	var from int64
	var dst []tier.SourceChunk
	for calls := 0; ; calls++ {
		chunks, release, err := s.Sealed(tp, from, maxBytes, dst[:0])
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) == 0 {
			release()
			break
		}
		var total int64
		for i, c := range chunks {
			if c.BaseOffset != from {
				t.Fatalf("call %d chunk %d starts at %d, want %d", calls, i, c.BaseOffset, from)
			}
			if i > 0 && total >= maxBytes {
				t.Fatalf("call %d took chunk %d with %d bytes already", calls, i, total)
			}
			b := make([]byte, c.Len)
			if _, err := c.File.ReadAt(b, c.Pos); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, rawRange(batches, c.BaseOffset, c.LastOffset)) {
				t.Fatalf("chunk [%d, %d] bytes differ from a read", c.BaseOffset, c.LastOffset)
			}
			if mts, mto := maxTsIn(batches, c.BaseOffset, c.LastOffset); c.MaxTimestamp != mts || c.MaxTimestampOffset != mto {
				t.Fatalf("chunk [%d, %d] max timestamp %d at %d, want %d at %d", c.BaseOffset, c.LastOffset, c.MaxTimestamp, c.MaxTimestampOffset, mts, mto)
			}
			total += int64(c.Len)
			from = c.LastOffset + 1
		}
		release()
		release() // twice is harmless
		dst = chunks
	}
	if from != hwm {
		t.Fatalf("chunks end at %d, high watermark %d", from, hwm)
	}

	// From inside the three-batch chunk [90, 92]: the rest of it, exactly.
	chunks, release, err := s.Sealed(tp, 91, 1, nil)
	if err != nil || len(chunks) != 1 {
		t.Fatalf("Sealed(91): %v, %v", chunks, err)
	}
	c := chunks[0]
	if c.BaseOffset != 91 || c.LastOffset != 92 || c.MaxTimestamp != 950 || c.MaxTimestampOffset != 91 {
		t.Fatalf("Sealed(91) = %+v", c)
	}
	b := make([]byte, c.Len)
	if _, err := c.File.ReadAt(b, c.Pos); err != nil || !bytes.Equal(b, rawRange(batches, 91, 92)) {
		t.Fatalf("Sealed(91) bytes: %v", err)
	}
	release()

	if _, _, err := s.Sealed(tier.Partition{Topic: "t", Partition: 0}, 0, 1, nil); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("Sealed with a wrong topic id: %v", err)
	}

	s.Uploaded(tp, 40)
	s.Uploaded(tp, 20)
	if p, _ := s.lookup("t", 0); p.tieredEnd.Load() != 40 {
		t.Fatalf("tiered end %d, want 40 (it never decreases)", p.tieredEnd.Load())
	}
}

func TestSealedPinsSegments(t *testing.T) {
	s, ti, batches := sealedStore(t)
	chunks, release, err := s.Sealed(tierOf(ti, 0), 0, 1<<30, nil)
	if err != nil || len(chunks) == 0 {
		t.Fatalf("Sealed: %v", err)
	}
	s.Close() // drops the store's references; the pins keep the files open
	for _, c := range chunks {
		b := make([]byte, c.Len)
		if _, err := c.File.ReadAt(b, c.Pos); err != nil {
			t.Fatalf("pinned chunk [%d, %d] unreadable: %v", c.BaseOffset, c.LastOffset, err)
		}
		if !bytes.Equal(b, rawRange(batches, c.BaseOffset, c.LastOffset)) {
			t.Fatalf("pinned chunk [%d, %d] differs", c.BaseOffset, c.LastOffset)
		}
	}
	release()
	if _, err := chunks[0].File.ReadAt(make([]byte, 1), chunks[0].Pos); err == nil {
		t.Fatal("segment still open after release")
	}
}

func TestSealedStopsAtHighWatermark(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	ti := mustCreate(t, s, "t", 1)
	tp := tierOf(ti, 0)
	if chunks, release, err := s.Sealed(tp, 0, 1<<20, nil); err != nil || len(chunks) != 0 {
		t.Fatalf("empty partition: %v, %v", chunks, err)
	} else {
		release()
	}
	appendN(t, s, "t", 0, 3, 1, 0, nil)
	// The active segment's fsynced chunks count.
	chunks, release, err := s.Sealed(tp, 0, 1<<20, nil)
	if err != nil || len(chunks) != 3 || chunks[2].LastOffset != 2 {
		t.Fatalf("Sealed = %+v, %v", chunks, err)
	}
	release()
	if chunks, release, err := s.Sealed(tp, 3, 1<<20, nil); err != nil || len(chunks) != 0 {
		t.Fatalf("Sealed at the high watermark: %v, %v", chunks, err)
	} else {
		release()
	}
}
