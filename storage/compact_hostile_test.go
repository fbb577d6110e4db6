package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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
	s, _, clock := newCompactStore(t, fsys)
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

// idempotent sets a batch's producer id, epoch and base sequence.
func idempotent(b []byte, pid int64, epoch int16, seq int32) []byte {
	be := binary.BigEndian
	be.PutUint64(b[batchProducerIDAt:], uint64(pid))
	be.PutUint16(b[batchProducerEpochAt:], uint16(epoch))
	be.PutUint32(b[batchBaseSequenceAt:], uint32(seq))
	be.PutUint32(b[batchCRCAt:], crc32.Checksum(b[batchAttributesAt:], castagnoli))
	return b
}

// An idempotent producer's retry must still dedupe once compaction has
// emptied and dropped its batches and freed the WAL segments that held
// them, across a restart too: producer state lives in the index
// checkpoints, not in the batches.
func TestCompactIdempotentRetryAfterCompaction(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, cfg, clock := newCompactStore(t, fsys)
	if _, err := s.CreateTopic("c", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	ts := clock.ms.Load()
	const pid, epoch = 7, 0
	keyed := func(seq int32) []byte {
		return idempotent(makeKeyedBatch(t, codecNone, ts, kv{key: []byte("p0"), val: make([]byte, 3000)}, kv{key: []byte("p1"), val: []byte("x")}), pid, epoch, seq)
	}
	var sent []AppendResult
	for seq := int32(0); seq < 40; seq += 2 {
		r := appendWait(t, s, "c", 0, keyed(seq), true)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		sent = append(sent, r)
	}
	// Others overwrite the producer's keys, then fill sealed segments.
	appendKeyed(t, s, "c", ts, 10, "p0", "p1")
	for i := range 60 {
		appendKeyed(t, s, "c", ts, 4000, fmt.Sprintf("f%d", i%3))
	}
	waitCheckpoints(t, s)
	walBefore := len(walFiles(t, fsys, cfg))
	s.Compact()
	s.freePass()
	if n := len(walFiles(t, fsys, cfg)); n >= walBefore-1 {
		t.Fatalf("WAL segments %d before compaction, %d after: the producer's not freed", walBefore, n)
	}
	if end := s.compEnd("c"); end <= sent[len(sent)-1].BaseOffset+1 {
		t.Fatalf("cleaned end %d: the producer's batches not compacted", end)
	}
	retry := func(s *Store, when string) {
		t.Helper()
		_, hwm, _ := s.Offsets("c", 0)
		for k := len(sent) - 5; k < len(sent); k++ { // Kafka dedupes the last five
			r := appendWait(t, s, "c", 0, keyed(int32(2*k)), true)
			if r.Err != nil || r.BaseOffset != sent[k].BaseOffset {
				t.Fatalf("%s: retry of seq %d: offset %d, %v; the original got %d", when, 2*k, r.BaseOffset, r.Err, sent[k].BaseOffset)
			}
		}
		if _, h, _ := s.Offsets("c", 0); h != hwm {
			t.Fatalf("%s: retries appended: hwm %d, was %d", when, h, hwm)
		}
		if r := appendWait(t, s, "c", 0, keyed(100), true); !errors.Is(r.Err, ErrOutOfOrderSequence) {
			t.Fatalf("%s: a sequence gap: %v", when, r.Err)
		}
	}
	retry(s, "after compaction")
	s.Close()
	s = mustOpen(t, cfg)
	defer s.Close()
	retry(s, "after restart")
	if r := appendWait(t, s, "c", 0, keyed(40), true); r.Err != nil {
		t.Fatalf("next sequence after restart: %v", r.Err)
	}
}

// An operator switches a compacted topic to cleanup.policy=delete:
// retention then moves the log start past everything compacted, and the
// compacted file, of no use any more, must go, as Kafka deletes the old
// segments; reads from the new log start and switching back keep working.
func TestCompactPolicySwitchedToDelete(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, cfg, clock := newCompactStore(t, fsys)
	defer s.Close()
	f := newFixture(t, s, clock, codecNone, nil)
	f.produce(50, 7, 300, 0)
	waitCheckpoints(t, s)
	s.Compact()
	end := s.compEnd("c")
	if end == 0 {
		t.Fatal("nothing compacted")
	}
	if err := s.SetTopicConfigs("c", map[string]string{"cleanup.policy": "delete", "retention.ms": "100000"}); err != nil {
		t.Fatal(err)
	}
	clock.ms.Add(200_000)
	_, young, _ := s.Offsets("c", 0)
	f.produce(50, 7, 100, 0)
	waitCheckpoints(t, s)
	s.retentionPass(s.maint.ctx)
	start, _, _ := s.Offsets("c", 0)
	if start < end || start > young {
		t.Fatalf("log start %d after retention; cleaned end %d, young data from %d", start, end, young)
	}
	s.Compact()
	if names, _ := fsys.List(cfg.Dir + "/" + compDirName); len(names) != 0 {
		t.Fatalf("log start %d past the cleaned end %d, but the compacted dir still holds %v", start, end, names)
	}
	got := readLog(t, s, "c", 0)
	if len(got) == 0 || got[0].off != start {
		t.Fatalf("read from the log start %d: %d records", start, len(got))
	}
	// And back to compact.
	if err := s.SetTopicConfigs("c", map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	f.produce(50, 7, 100, 0)
	waitCheckpoints(t, s)
	s.Compact()
	if e := s.compEnd("c"); e <= start {
		t.Fatalf("compact again: cleaned end %d, log start %d", e, start)
	}
	for _, r := range readLog(t, s, "c", 0) {
		if w := f.sent[r.off]; w.key != r.key || w.val != r.val || r.off < start {
			t.Fatalf("offset %d: %+v, sent %+v", r.off, r, w)
		}
	}
}

// ListOffsets -3 (max timestamp, KIP-734) on a partition whose data is
// all compacted (a quiet table topic, its last chunk in a sealed segment:
// the WAL index holds none of it) must still name a surviving record, as
// must one whose log start DeleteRecords moved into the compacted file.
func TestCompactMaxTimestampAfterRemoval(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, _, clock := newCompactStore(t, fsys)
	defer s.Close()
	if _, err := s.CreateTopic("c", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTopic("other", 1, nil); err != nil {
		t.Fatal(err)
	}
	ts := clock.ms.Load()
	for i := range 30 {
		appendKeyed(t, s, "c", ts+int64(i), 3000, fmt.Sprintf("k%d", i%5))
	}
	maxOff := appendKeyed(t, s, "c", ts+1000, 3000, "k2") // the max timestamp
	for i := range 4 {
		appendKeyed(t, s, "c", ts+int64(i), 3000, fmt.Sprintf("k%d", 5+i))
	}
	for i := range 40 { // other topics' data seals the shard's segments
		appendTs(t, s, "other", 0, ts, 4000+i)
	}
	waitCheckpoints(t, s)
	s.Compact()
	_, hwm, _ := s.Offsets("c", 0)
	if end := s.compEnd("c"); end != hwm {
		t.Fatalf("cleaned end %d, hwm %d: not all compacted", end, hwm)
	}
	off, mts, err := s.MaxTimestamp("c", 0)
	if err != nil || off != maxOff || mts != ts+1000 {
		t.Fatalf("MaxTimestamp of a compacted partition: offset %d, ts %d, %v; want %d, %d", off, mts, err, maxOff, ts+1000)
	}
	// DeleteRecords into the compacted file, below the max.
	if _, err := s.DeleteRecords("c", 0, maxOff-3); err != nil {
		t.Fatal(err)
	}
	off, mts, err = s.MaxTimestamp("c", 0)
	if err != nil || off != maxOff || mts != ts+1000 {
		t.Fatalf("MaxTimestamp after DeleteRecords: offset %d, ts %d, %v; want %d, %d", off, mts, err, maxOff, ts+1000)
	}
}

// walDiskBytes is the bytes the shard's WAL segment files take.
func walDiskBytes(t testing.TB, fsys vfs.FS, cfg Config) int64 {
	t.Helper()
	var n int64
	for _, name := range walFiles(t, fsys, cfg) {
		f, err := fsys.Open(cfg.Dir + "/shard-000/" + name)
		if err != nil {
			t.Fatal(err)
		}
		sz, _ := f.Size()
		_ = f.Close()
		n += sz
	}
	return n
}

// A client that creates a compacted topic with segment.ms=1 (Kafka's
// minimum) and writes a record now and then makes every pass roll the
// shard's active segment, which other topics share: each roll must not
// leave a whole preallocated segment on disk for a few bytes of data that
// other topics' retention keeps for days.
func TestCompactForcedRollsDoNotWasteSegments(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, cfg, clock := newCompactStore(t, fsys)
	defer s.Close()
	if _, err := s.CreateTopic("c", 1, map[string]string{"cleanup.policy": "compact", "segment.ms": "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTopic("other", 1, nil); err != nil {
		t.Fatal(err)
	}
	rolls0 := s.Stats().SegmentsRoll
	const rounds = 20
	for i := range rounds {
		appendKeyed(t, s, "c", clock.ms.Load(), 10, fmt.Sprintf("k%d", i%3))
		appendTs(t, s, "other", 0, clock.ms.Load(), 10)
		clock.ms.Add(10)
		s.Compact()
	}
	if rolls := s.Stats().SegmentsRoll - rolls0; rolls < rounds/2 {
		t.Fatalf("%d forced rolls in %d passes: the test does not force them", rolls, rounds)
	}
	if n := walDiskBytes(t, fsys, cfg); n > 3*cfg.SegmentBytes {
		t.Fatalf("WAL files take %d bytes (%d segments of %d) for %d tiny appends", n, len(walFiles(t, fsys, cfg)), cfg.SegmentBytes, 2*rounds)
	}
	if got := s.walBytes.Load(); got != walDiskBytes(t, fsys, cfg) {
		t.Fatalf("walBytes %d, files %d", got, walDiskBytes(t, fsys, cfg))
	}
	// What was written reads back, then after a restart too: every record
	// of the other topic, the latest record of each key of the compacted one.
	check := func(s *Store) {
		t.Helper()
		if _, hwm, _ := s.Offsets("other", 0); hwm != rounds {
			t.Fatalf("other: hwm %d, %d acknowledged", hwm, rounds)
		}
		if n := len(readLog(t, s, "other", 0)); n != rounds {
			t.Fatalf("other: read %d records, %d acknowledged", n, rounds)
		}
		latest := map[int64]bool{}
		for _, r := range readLog(t, s, "c", 0) {
			latest[r.off] = true
		}
		for off := int64(rounds - 3); off < rounds; off++ {
			if !latest[off] {
				t.Fatalf("c: the latest record of its key, offset %d, is gone", off)
			}
		}
	}
	check(s)
	// A power loss now (the last cut perhaps not durable), then a clean
	// restart: every acknowledged record of the other topic reads back.
	for _, mode := range []vfs.CrashMode{vfs.CrashDropUnsynced, vfs.CrashKeepUnsynced} {
		ccfg := cfg
		ccfg.FS = fsys.CrashClone(mode, 1)
		cs := mustOpen(t, ccfg)
		check(cs)
		cs.Close()
	}
	s.Close()
	s = mustOpen(t, cfg)
	defer s.Close()
	check(s)
}
