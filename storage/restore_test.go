package storage

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

func TestProducerSnapshotEncoding(t *testing.T) {
	var e producerEntry
	e.epoch, e.lastMs = 3, 12345
	for i := range int32(7) { // wraps the ring: the oldest two are gone
		e.push(producerBatch{firstSeq: i * 2, lastSeq: i*2 + 1, base: int64(i) * 10, last: int64(i)*10 + 1})
	}
	in := []snapProducer{
		{topic: TopicID{1}, part: 2, pid: 7, e: e},
		{topic: TopicID{2}, part: 0, pid: 8, e: producerEntry{epoch: 1}},
	}
	b := encodeProducerSnapshot(4000, in, nil)
	limit, out, _, err := decodeProducerSnapshot(b)
	if err != nil || limit != 4000 || len(out) != 2 {
		t.Fatalf("decode: %d, %d entries, %v", limit, len(out), err)
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.topic != b.topic || a.part != b.part || a.pid != b.pid || a.e.epoch != b.e.epoch || a.e.lastMs != b.e.lastMs || a.e.n != b.e.n {
			t.Fatalf("entry %d: %+v, want %+v", i, b, a)
		}
		for k := 0; k < int(a.e.n); k++ {
			if a.e.b[(int(a.e.head)+k)%producerBatchesKept] != b.e.b[(int(b.e.head)+k)%producerBatchesKept] {
				t.Fatalf("entry %d batch %d differs", i, k)
			}
		}
	}
	if _, ps, _, err := decodeProducerSnapshot(nil); err != nil || ps != nil {
		t.Fatalf("empty: %v, %v", ps, err)
	}
	for i := range b {
		bad := slices.Clone(b)
		bad[i] ^= 0x40
		if _, _, _, err := decodeProducerSnapshot(bad); !errors.Is(err, errProducerSnapshot) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	if _, _, _, err := decodeProducerSnapshot(b[:len(b)-1]); !errors.Is(err, errProducerSnapshot) {
		t.Fatalf("truncated: %v", err)
	}
}

func idemBatch(pid int64, seq int32, value string) []byte {
	return makeBatch(batchSpec{pid: pid, epoch: 0, seq: seq, value: []byte(value)})
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer src.Close()
	a, err := src.CreateTopic("a", 2, map[string]string{"retention.ms": "1000", "cleanup.policy": "delete"})
	if err != nil {
		t.Fatal(err)
	}
	b := mustCreate(t, src, "b", 1)
	var pid int64
	for pid == 0 { // makeBatch takes pid 0 for "not idempotent"
		if pid, _, err = src.InitProducerID(); err != nil {
			t.Fatal(err)
		}
	}
	for seq := range int32(3) { // offsets 0, 1, 2
		if r := appendWait(t, src, "a", 0, idemBatch(pid, seq, "idem"), true); r.Err != nil || r.BaseOffset != int64(seq) {
			t.Fatalf("idempotent append %d: %+v", seq, r)
		}
	}
	appendN(t, src, "a", 1, 4, 1, 0, nil)
	appendN(t, src, "b", 0, 3, 1, 0, nil)

	snap := src.Snapshot()
	if len(snap.Topics) != 2 || snap.Topics[0].Name != "a" || snap.Topics[1].Name != "b" ||
		snap.Topics[0].ID != a.ID || snap.Topics[0].Partitions != 2 || !maps.Equal(snap.Topics[0].Configs, a.Configs) ||
		!slices.Equal(snap.Topics[0].LogStart, []int64{0, 0}) || len(snap.Producers) == 0 {
		t.Fatalf("snapshot: %+v", snap)
	}
	// As if DeleteRecords had moved b/0's log start to 2 before the disaster.
	snap.Topics[1].LogStart[0] = 2
	// a/0's last batch (offset 2) never reached the bucket; b/0 has no
	// manifest at all.
	next := map[tier.Partition]int64{tierOf(a, 0): 2, tierOf(a, 1): 4}

	fsys := vfs.NewMemFS()
	dst := mustOpen(t, testConfig(fsys))
	if err := dst.Restore(&snap, next); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if err := dst.Restore(&snap, next); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("second Restore: %v", err)
	}
	check := func(s *Store, what string, want map[string][2]int64) {
		t.Helper()
		topics := s.Topics()
		if len(topics) != 2 || topics[0].ID != a.ID || topics[1].ID != b.ID || topics[0].Partitions != 2 ||
			!maps.Equal(topics[0].Configs, a.Configs) || len(topics[1].Configs) != 0 {
			t.Fatalf("%s: topics %+v", what, topics)
		}
		if ti, ok := s.TopicByID(b.ID); !ok || ti.Name != "b" {
			t.Fatalf("%s: TopicByID(b) = %+v, %v", what, ti, ok)
		}
		for key, w := range want {
			part := int32(key[len(key)-1] - '0')
			ls, hwm, err := s.Offsets(key[:1], part)
			if err != nil || ls != w[0] || hwm != w[1] {
				t.Fatalf("%s: Offsets(%s) = %d, %d, %v; want %d, %d", what, key, ls, hwm, err, w[0], w[1])
			}
		}
	}
	check(dst, "restored", map[string][2]int64{"a/0": {0, 2}, "a/1": {0, 4}, "b/0": {2, 2}})

	// The producer's batch at offset 1 is a duplicate; the one at 2 was
	// lost with the disk, so its retry is written again.
	if r := appendWait(t, dst, "a", 0, idemBatch(pid, 1, "idem"), true); r.Err != nil || r.BaseOffset != 1 {
		t.Fatalf("retry of a restored batch: %+v", r)
	}
	if r := appendWait(t, dst, "a", 0, idemBatch(pid, 2, "idem"), true); r.Err != nil || r.BaseOffset != 2 {
		t.Fatalf("retry of a lost batch: %+v", r)
	}
	if r := appendWait(t, dst, "a", 0, idemBatch(pid, 5, "idem"), true); !errors.Is(r.Err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence gap after restore: %+v", r)
	}
	if r := appendWait(t, dst, "b", 0, makeBatch(batchSpec{}), true); r.Err != nil || r.BaseOffset != 2 {
		t.Fatalf("append to b/0: %+v", r)
	}
	if npid, _, err := dst.InitProducerID(); err != nil || npid <= pid {
		t.Fatalf("InitProducerID after restore = %d, %v; the source handed out %d", npid, err, pid)
	}
	want := map[string][2]int64{"a/0": {0, 3}, "a/1": {0, 4}, "b/0": {2, 3}}
	check(dst, "after appends", want)
	got := readFrom(t, dst, "a", 0, 2)
	if len(got) != 1 || got[0].base != 2 {
		t.Fatalf("a/0 from 2: %+v", got)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}

	// Without the bucket, a restart keeps topics, log starts and offsets.
	re := mustOpen(t, testConfig(fsys))
	defer re.Close()
	check(re, "reopened", want)
	if r := appendWait(t, re, "a", 1, makeBatch(batchSpec{}), true); r.Err != nil || r.BaseOffset != 4 {
		t.Fatalf("append to a/1 after reopen: %+v", r)
	}
	if got := readFrom(t, re, "b", 0, 2); len(got) != 1 || got[0].base != 2 {
		t.Fatalf("b/0 after reopen: %+v", got)
	}
}

func TestRestoreRejects(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	id := [16]byte{9}
	bad := []tier.MetaSnapshot{
		{Topics: []tier.SnapshotTopic{{Name: "x", ID: id, Partitions: 0}}},
		{Topics: []tier.SnapshotTopic{{Name: "x", ID: id, Partitions: 1}, {Name: "y", ID: id, Partitions: 1}}},
		{Topics: []tier.SnapshotTopic{{Name: "", ID: id, Partitions: 1}}},
		{Topics: []tier.SnapshotTopic{{Name: "x", ID: id, Partitions: 1}}, Producers: []byte("not a snapshot")},
	}
	for i, snap := range bad {
		if err := s.Restore(&snap, nil); err == nil {
			t.Fatalf("snapshot %d restored", i)
		}
	}
	if len(s.Topics()) != 0 {
		t.Fatalf("a rejected restore left topics: %+v", s.Topics())
	}
	mustCreate(t, s, "t", 1)
	ok := tier.MetaSnapshot{Topics: []tier.SnapshotTopic{{Name: "x", ID: id, Partitions: 1}}}
	if err := s.Restore(&ok, nil); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into a store with topics: %v", err)
	}
}

// tierCold is the real tier as a ColdLog for tests: an uploader's
// manifests (none until u is set) and a Reader. It has no timestamp lookup.
type tierCold struct {
	u atomic.Pointer[tier.Uploader]
	r *tier.Reader
}

func newTierCold(ms tier.ObjectStore) *tierCold {
	return &tierCold{r: tier.NewReader(tier.ReaderConfig{Store: ms})}
}

func (c *tierCold) Manifest(ctx context.Context, p tier.Partition) (*tier.Manifest, error) {
	u := c.u.Load()
	if u == nil {
		return nil, nil
	}
	return u.Manifest(ctx, p)
}

func (c *tierCold) Read(ctx context.Context, p tier.Partition, offset, maxBytes int64) ([]byte, error) {
	m, err := c.Manifest(ctx, p)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, tier.ErrNotTiered
	}
	return c.r.Read(ctx, m, offset, maxBytes)
}

func (*tierCold) OffsetForTime(context.Context, tier.Partition, int64) (int64, int64, error) {
	return -1, -1, nil
}
func (*tierCold) Retain(tier.Partition, int64) {}
func (*tierCold) Forget(tier.Partition)        {}

// TestUploadToTierAndRestore wires the real uploader to the store: every
// byte below the high watermark reaches the bucket unchanged, the store
// learns its tiered end, and a store restored from the bucket reads the
// same batches back through the tier.
func TestUploadToTierAndRestore(t *testing.T) {
	src, ti, batches := sealedStore(t)
	ctx := context.Background()
	ms := tier.NewMemStore()
	u := tier.NewUploader(tier.UploaderConfig{Store: ms, Source: src, ObjectBytes: 32 << 10})
	if err := u.UploadAll(ctx); err != nil {
		t.Fatalf("UploadAll: %v", err)
	}
	tp := tierOf(ti, 0)
	_, hwm, _ := src.Offsets("t", 0)
	m, err := tier.LoadManifest(ctx, ms, tp)
	if err != nil {
		t.Fatal(err)
	}
	if m.LogStartOffset != 0 || m.NextOffset() != hwm || len(m.Objects) < 3 {
		t.Fatalf("manifest [%d, %d) in %d objects; want [0, %d) in several", m.LogStartOffset, m.NextOffset(), len(m.Objects), hwm)
	}
	for i, o := range m.Objects {
		data, err := tier.Get(ctx, ms, m.ObjectKey(i), o.Size)
		if err != nil {
			t.Fatal(err)
		}
		if want := rawRange(batches, o.BaseOffset, o.LastOffset); !slices.Equal(data[:o.DataBytes], want) {
			t.Fatalf("object %d [%d, %d]: data differs from the log", i, o.BaseOffset, o.LastOffset)
		}
		if mts, _ := maxTsIn(batches, o.BaseOffset, o.LastOffset); o.MaxTimestamp != mts {
			t.Fatalf("object %d max timestamp %d, want %d", i, o.MaxTimestamp, mts)
		}
	}
	if p, _ := src.lookup("t", 0); p.tieredEnd.Load() != hwm {
		t.Fatalf("tiered end %d, want %d", p.tieredEnd.Load(), hwm)
	}
	// Nothing new: another round uploads nothing.
	if n, err := u.UploadPartition(ctx, tp); err != nil || n != 0 {
		t.Fatalf("second upload: %d objects, %v", n, err)
	}

	// Disaster: a new store from the bucket alone.
	u2 := tier.NewUploader(tier.UploaderConfig{Store: ms, Source: src})
	cold := newTierCold(ms)
	cold.u.Store(u2)
	cfg := testConfig(vfs.NewMemFS())
	cfg.Cold = cold
	dst := mustOpen(t, cfg)
	defer dst.Close()
	snap := src.Snapshot()
	m2, err := u2.Manifest(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(&snap, map[tier.Partition]int64{tp: m2.NextOffset()}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	sameBatches(t, "restored from the tier", readFrom(t, dst, "t", 0, 0), batches)
	if r := appendWait(t, dst, "t", 0, makeBatch(batchSpec{}), true); r.Err != nil || r.BaseOffset != hwm {
		t.Fatalf("append after restore: %+v", r)
	}
}

// TestColdReadAfterLocalFree: with a tier, uploaded segments are freed
// locally (HotBytes tiny) and reads below the WAL go to the bucket.
func TestColdReadAfterLocalFree(t *testing.T) {
	ms := tier.NewMemStore()
	cold := newTierCold(ms)
	cfg := testConfig(vfs.NewMemFS())
	cfg.MaxChunkBytes = 4 << 10
	cfg.Cold = cold
	cfg.HotBytes = 1
	s := mustOpen(t, cfg)
	defer s.Close()
	mustCreate(t, s, "t", 1)
	appendN(t, s, "t", 0, 60, 3, 100, bytes.Repeat([]byte("v"), 1000))
	batches := readAllBatches(t, s, "t", 0)
	u := tier.NewUploader(tier.UploaderConfig{Store: ms, Source: s, ObjectBytes: 32 << 10})
	cold.u.Store(u)
	p, _ := s.lookup("t", 0)
	eventually(t, "uploaded segments freed", func() bool {
		if err := u.UploadAll(context.Background()); err != nil {
			t.Fatalf("UploadAll: %v", err)
		}
		return localStart(p.idx.view(), p.hwm.Load()) > 0
	})
	if ls, _, _ := s.Offsets("t", 0); ls != 0 {
		t.Fatalf("log start %d: freeing uploaded data must not move it", ls)
	}
	sameBatches(t, "read across the tier and the WAL", readFrom(t, s, "t", 0, 0), batches)
}
