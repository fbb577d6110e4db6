package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

// markerWait writes a transaction marker and waits for its result.
func markerWait(t testing.TB, s *Store, topic string, part int32, pid int64, epoch int16, commit bool) AppendResult {
	t.Helper()
	ch := make(chan AppendResult, 1)
	s.WriteTxnMarker(topic, part, pid, epoch, commit, 3, func(r AppendResult) { ch <- r })
	select {
	case r := <-ch:
		return r
	case <-time.After(waitFor):
		t.Fatalf("marker on %s/%d did not complete", topic, part)
		return AppendResult{}
	}
}

func txnBatch(pid int64, epoch int16, seq int32, records int) []byte {
	return makeBatch(batchSpec{records: records, pid: pid, epoch: epoch, seq: seq, txn: true})
}

func mustAppend(t testing.TB, s *Store, topic string, part int32, data []byte) int64 {
	t.Helper()
	r := appendWait(t, s, topic, part, data, true)
	if r.Err != nil {
		t.Fatalf("append: %v", r.Err)
	}
	return r.BaseOffset
}

func mustMarker(t testing.TB, s *Store, topic string, part int32, pid int64, epoch int16, commit bool) int64 {
	t.Helper()
	r := markerWait(t, s, topic, part, pid, epoch, commit)
	if r.Err != nil {
		t.Fatalf("marker: %v", r.Err)
	}
	return r.BaseOffset
}

func lsoOf(t testing.TB, s *Store, topic string, part int32) int64 {
	t.Helper()
	lso, err := s.LastStableOffset(topic, part)
	if err != nil {
		t.Fatal(err)
	}
	return lso
}

func abortedOf(t testing.TB, s *Store, topic string, part int32) []AbortedTxn {
	t.Helper()
	a, err := s.AbortedTxns(topic, part, 0, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestTxnMarkerFormat: the marker is Kafka's control batch, readable by
// kmsg as a client reads it, and valid as any stored batch.
func TestTxnMarkerFormat(t *testing.T) {
	for _, commit := range []bool{false, true} {
		b := MarkerBatch(42, 7, commit, 9, 1234)
		h, err := ValidateBatch(b)
		if err != nil {
			t.Fatalf("ValidateBatch: %v", err)
		}
		if !h.Control() || !h.Transactional() || h.ProducerID != 42 || h.ProducerEpoch != 7 || h.NumRecords != 1 ||
			h.LastOffsetDelta != 0 || h.BaseSequence != -1 || h.Compression() != 0 {
			t.Fatalf("header %+v", h)
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
		var rec kmsg.Record
		if err := rec.ReadFrom(rb.Records); err != nil {
			t.Fatal(err)
		}
		var key kmsg.ControlRecordKey
		var val kmsg.EndTxnMarker
		if err := key.ReadFrom(rec.Key); err != nil {
			t.Fatal(err)
		}
		if err := val.ReadFrom(rec.Value); err != nil {
			t.Fatal(err)
		}
		wantType := kmsg.ControlRecordKeyTypeAbort
		if commit {
			wantType = kmsg.ControlRecordKeyTypeCommit
		}
		if key.Version != 0 || key.Type != wantType || val.Version != 0 || val.CoordinatorEpoch != 9 {
			t.Fatalf("key %+v value %+v", key, val)
		}
		if got, ok := MarkerCommit(b); !ok || got != commit {
			t.Fatalf("markerCommit = %v, %v", got, ok)
		}
		if err := ValidateRecords(b, &h, 1<<20, false); err != nil {
			t.Fatalf("ValidateRecords: %v", err)
		}
	}
	if _, ok := MarkerCommit(makeBatch(batchSpec{records: 1})); ok {
		t.Fatal("a data batch read as a marker")
	}
}

// txnScenario writes, on t/0: a committed transaction of pid 1, an aborted
// one of pid 2 interleaved with plain data, and leaves pid 3's open. It
// returns what a reader must see.
type txnWant struct {
	aborted []AbortedTxn
	lso     int64
	hwm     int64
}

func txnScenario(t *testing.T, s *Store) txnWant {
	t.Helper()
	var w txnWant
	mustAppend(t, s, "t", 0, makeBatch(batchSpec{records: 2}))                 // 0-1 plain
	a1 := mustAppend(t, s, "t", 0, txnBatch(1, 0, 0, 3))                       // 2-4 pid 1
	a2 := mustAppend(t, s, "t", 0, txnBatch(2, 0, 0, 2))                       // 5-6 pid 2
	mustAppend(t, s, "t", 0, makeBatch(batchSpec{records: 1, pid: 5, seq: 0})) // 7 idempotent
	if got := lsoOf(t, s, "t", 0); got != a1 {
		t.Fatalf("LSO with two open = %d, want %d", got, a1)
	}
	mustAppend(t, s, "t", 0, txnBatch(2, 0, 2, 1)) // 8 pid 2 again
	m1 := mustMarker(t, s, "t", 0, 1, 0, true)     // 9 commit pid 1
	if got := lsoOf(t, s, "t", 0); got != a2 {
		t.Fatalf("LSO after commit = %d, want %d", got, a2)
	}
	m2 := mustMarker(t, s, "t", 0, 2, 0, false) // 10 abort pid 2
	if m1 != 9 || m2 != 10 {
		t.Fatalf("markers at %d, %d", m1, m2)
	}
	_, hwm, _ := s.Offsets("t", 0)
	if got := lsoOf(t, s, "t", 0); got != hwm {
		t.Fatalf("LSO with none open = %d, want hwm %d", got, hwm)
	}
	w.aborted = []AbortedTxn{{ProducerID: 2, FirstOffset: a2, LastOffset: m2}}
	a3 := mustAppend(t, s, "t", 0, txnBatch(3, 0, 0, 1)) // 11 pid 3, stays open
	mustAppend(t, s, "t", 0, makeBatch(batchSpec{records: 1}))
	w.lso = a3
	_, w.hwm, _ = s.Offsets("t", 0)
	return w
}

func checkTxnState(t *testing.T, s *Store, w txnWant, when string) {
	t.Helper()
	if got := lsoOf(t, s, "t", 0); got != w.lso {
		t.Fatalf("%s: LSO %d, want %d", when, got, w.lso)
	}
	if got := abortedOf(t, s, "t", 0); !slices.Equal(got, w.aborted) {
		t.Fatalf("%s: aborted %+v, want %+v", when, got, w.aborted)
	}
	res := s.ReadCommitted("t", 0, 0, 1<<20)
	defer res.Release()
	if res.Err != nil || res.LastStableOffset != w.lso || res.HighWatermark != w.hwm {
		t.Fatalf("%s: ReadCommitted %+v, want LSO %d hwm %d", when, res, w.lso, w.hwm)
	}
	var end int64
	for _, c := range res.Chunks {
		b := make([]byte, c.Len)
		if _, err := c.File.ReadAt(b, c.Off); err != nil {
			t.Fatal(err)
		}
		for len(b) > 0 {
			batch, rest, err := NextBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := ParseBatchHeader(batch)
			if h.BaseOffset >= w.lso {
				t.Fatalf("%s: read_committed returned the batch at %d, at or past the LSO %d", when, h.BaseOffset, w.lso)
			}
			end = h.BaseOffset + int64(h.LastOffsetDelta) + 1
			b = rest
		}
	}
	if end != w.lso {
		t.Fatalf("%s: read_committed read up to %d, want the LSO %d", when, end, w.lso)
	}
	at := s.ReadCommitted("t", 0, w.lso, 1<<20)
	if at.Err != nil || len(at.Chunks) != 0 {
		t.Fatalf("%s: ReadCommitted at the LSO: %+v", when, at)
	}
	at.Release()
	if got, _ := s.OpenTxnStart("t", 0, 3); got != w.lso {
		t.Fatalf("%s: OpenTxnStart(3) = %d, want %d", when, got, w.lso)
	}
	if got, _ := s.OpenTxnStart("t", 0, 2); got != -1 {
		t.Fatalf("%s: OpenTxnStart(2) = %d, want -1", when, got)
	}
	checkProducers(t, s, w.lso, when)
}

// checkProducers: Producers shows txnScenario's producers with their last
// sequences and pid 3's open transaction; partition 0 listed twice gets
// two answers, a partition that does not exist ErrUnknownTopic.
func checkProducers(t *testing.T, s *Store, open int64, when string) {
	t.Helper()
	want := []Producer{
		{ID: 1, LastSequence: 2, TxnStart: -1},
		{ID: 2, LastSequence: 2, TxnStart: -1},
		{ID: 3, LastSequence: 0, TxnStart: open},
		{ID: 5, LastSequence: 0, TxnStart: -1},
	}
	got := s.Producers("t", []int32{0, 7, 0})
	if len(got) != 3 || !errors.Is(got[1].Err, ErrUnknownTopic) || got[1].Partition != 7 {
		t.Fatalf("%s: Producers %+v", when, got)
	}
	for _, pp := range []PartitionProducers{got[0], got[2]} {
		if pp.Err != nil || pp.Partition != 0 || len(pp.Producers) != len(want) {
			t.Fatalf("%s: Producers of partition 0: %+v, want %+v", when, pp, want)
		}
		for i, p := range pp.Producers {
			if p.LastTimestamp <= 0 {
				t.Fatalf("%s: producer %d has last timestamp %d", when, p.ID, p.LastTimestamp)
			}
			p.LastTimestamp = 0
			if p != want[i] {
				t.Fatalf("%s: producer %+v, want %+v", when, p, want[i])
			}
		}
	}
}

// TestTxnLogState: opens, commits and aborts move the LSO and fill the
// aborted index; read_committed stops at the LSO; all of it comes back
// after a restart, from checkpoints, from a scan without them, and after
// a crash that drops everything unsynced.
func TestTxnLogState(t *testing.T) {
	fsys := vfs.NewMemFS()
	cfg := testConfig(fsys)
	cfg.Shards = 1
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 1)
	w := txnScenario(t, s)
	checkTxnState(t, s, w, "live")

	crashed := fsys.CrashClone(vfs.CrashDropUnsynced, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, cfg)
	checkTxnState(t, s, w, "reopened")
	// The open transaction ends after the restart.
	m3 := mustMarker(t, s, "t", 0, 3, 0, false)
	w.aborted = append(w.aborted, AbortedTxn{ProducerID: 3, FirstOffset: w.lso, LastOffset: m3})
	if got := abortedOf(t, s, "t", 0); !slices.Equal(got, w.aborted) {
		t.Fatalf("aborted %+v, want %+v", got, w.aborted)
	}
	if lso := lsoOf(t, s, "t", 0); lso != m3+1 {
		t.Fatalf("LSO %d after the last abort, want %d", lso, m3+1)
	}
	s.Close()

	cfg.FS = crashed
	s = mustOpen(t, cfg)
	w.aborted = w.aborted[:1]
	checkTxnState(t, s, w, "after a crash")
	s.Close()
}

// TestTxnStateAcrossSegments: many transactions over many sealed
// segments; the aborted index and the open transactions come back the
// same from checkpoints and from scanning every segment.
func TestTxnStateAcrossSegments(t *testing.T) {
	fsys := vfs.NewMemFS()
	cfg := testConfig(fsys)
	cfg.Shards = 1
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 2)
	val := make([]byte, 900)
	var want [2][]AbortedTxn
	seq := map[[2]int64]int32{}
	for i := range 120 {
		part := int32(i % 2)
		pid := int64(100 + i%7)
		k := [2]int64{pid, int64(part)}
		first := mustAppend(t, s, "t", part, makeBatch(batchSpec{records: 2, pid: pid, seq: seq[k], value: val, txn: true}))
		seq[k] += 2
		mustAppend(t, s, "t", part, makeBatch(batchSpec{records: 1, value: val}))
		commit := i%3 != 0
		m := mustMarker(t, s, "t", part, pid, 0, commit)
		if !commit {
			want[part] = append(want[part], AbortedTxn{ProducerID: pid, FirstOffset: first, LastOffset: m})
		}
	}
	open := mustAppend(t, s, "t", 1, makeBatch(batchSpec{records: 1, pid: 999, txn: true}))
	if s.Stats().SegmentsRoll < 3 {
		t.Fatalf("only %d rolls: the test wants several sealed segments", s.Stats().SegmentsRoll)
	}
	check := func(when string) {
		t.Helper()
		for part := range int32(2) {
			if got := abortedOf(t, s, "t", part); !slices.Equal(got, want[part]) {
				t.Fatalf("%s: partition %d aborted %d entries %+v, want %d", when, part, len(got), got, len(want[part]))
			}
		}
		if got := lsoOf(t, s, "t", 1); got != open {
			t.Fatalf("%s: LSO %d, want %d", when, got, open)
		}
		_, hwm, _ := s.Offsets("t", 0)
		if got := lsoOf(t, s, "t", 0); got != hwm {
			t.Fatalf("%s: partition 0 LSO %d, want hwm %d", when, got, hwm)
		}
	}
	check("live")
	eventually(t, "checkpoints", func() bool { return s.Stats().SegmentsRoll > 0 && allCheckpointed(s) })
	s.Close()
	s = mustOpen(t, cfg)
	if st := s.Stats().Recovery; st.FromCheckpoint == 0 {
		t.Fatalf("no checkpoint used: %+v", st)
	}
	check("from checkpoints")
	s.Close()
	names, _ := fsys.List("/data/shard-000")
	for _, n := range names {
		if strings.HasSuffix(n, idxSuffix) {
			if err := fsys.Remove("/data/shard-000/" + n); err != nil {
				t.Fatal(err)
			}
		}
	}
	s = mustOpen(t, cfg)
	if st := s.Stats().Recovery; st.FromCheckpoint != 0 || st.Scanned < 3 {
		t.Fatalf("want every segment scanned: %+v", st)
	}
	check("scanned")
	s.Close()
	// The scan rewrote the checkpoints, version 2 with the aborted lists.
	s = mustOpen(t, cfg)
	check("from rewritten checkpoints")
	s.Close()
}

func allCheckpointed(s *Store) bool {
	for _, sh := range s.shards {
		sh.segsMu.Lock()
		for _, seg := range sh.segs {
			if seg.sealed && !seg.ckDone.Load() {
				sh.segsMu.Unlock()
				return false
			}
		}
		sh.segsMu.Unlock()
	}
	return true
}

// TestTxnMarkerEpochs: a marker of an older epoch is refused; one of a
// newer epoch (KIP-890's bump at every end) takes the producer to it with
// a fresh sequence; a marker without an open transaction is written and
// changes nothing else.
func TestTxnMarkerEpochs(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	mustCreate(t, s, "t", 1)
	mustAppend(t, s, "t", 0, txnBatch(1, 4, 0, 2))
	if r := markerWait(t, s, "t", 0, 1, 3, false); !errors.Is(r.Err, ErrInvalidProducerEpoch) {
		t.Fatalf("old-epoch marker: %v", r.Err)
	}
	if got := lsoOf(t, s, "t", 0); got != 0 {
		t.Fatalf("LSO %d after a refused marker, want 0", got)
	}
	mustMarker(t, s, "t", 0, 1, 5, true) // bumped epoch ends it
	if got := abortedOf(t, s, "t", 0); len(got) != 0 {
		t.Fatalf("a commit made aborted entries: %+v", got)
	}
	// Next transaction: epoch 5, sequence 0.
	b := mustAppend(t, s, "t", 0, txnBatch(1, 5, 0, 1))
	if got := lsoOf(t, s, "t", 0); got != b {
		t.Fatalf("LSO %d, want %d", got, b)
	}
	if r := appendWait(t, s, "t", 0, txnBatch(1, 4, 2, 1), true); !errors.Is(r.Err, ErrInvalidProducerEpoch) {
		t.Fatalf("old epoch batch after the bump: %v", r.Err)
	}
	mustMarker(t, s, "t", 0, 1, 5, false)
	// A marker for a producer with nothing open: written, nothing else.
	m := mustMarker(t, s, "t", 0, 77, 0, false)
	_, hwm, _ := s.Offsets("t", 0)
	if m != hwm-1 || lsoOf(t, s, "t", 0) != hwm {
		t.Fatalf("marker at %d, hwm %d, LSO %d", m, hwm, lsoOf(t, s, "t", 0))
	}
	if got := abortedOf(t, s, "t", 0); len(got) != 1 || got[0].ProducerID != 1 {
		t.Fatalf("aborted %+v", got)
	}
}

// TestAbortedTxnsRange: the lookup returns the entries overlapping
// [from, to), sorted by first offset, as Fetch wants them.
func TestAbortedTxnsRange(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	mustCreate(t, s, "t", 1)
	// pid 1 opens at 0, pid 2 at 1; pid 2 aborts first (marker 2), then
	// pid 1 (marker 3): marker order differs from first-offset order.
	mustAppend(t, s, "t", 0, txnBatch(1, 0, 0, 1))
	mustAppend(t, s, "t", 0, txnBatch(2, 0, 0, 1))
	mustMarker(t, s, "t", 0, 2, 0, false)
	mustMarker(t, s, "t", 0, 1, 0, false)
	for i := range 5 { // 4..13: pid 3 aborts five single-batch transactions
		mustAppend(t, s, "t", 0, txnBatch(3, 0, int32(i), 1))
		mustMarker(t, s, "t", 0, 3, 0, false)
	}
	a := func(pid, first, last int64) AbortedTxn {
		return AbortedTxn{ProducerID: pid, FirstOffset: first, LastOffset: last}
	}
	cases := []struct {
		from, to int64
		want     []AbortedTxn
	}{
		{0, 4, []AbortedTxn{a(1, 0, 3), a(2, 1, 2)}},
		{3, 4, []AbortedTxn{a(1, 0, 3)}},
		{4, 6, []AbortedTxn{a(3, 4, 5)}},
		{5, 7, []AbortedTxn{a(3, 4, 5), a(3, 6, 7)}},
		{13, 14, []AbortedTxn{a(3, 12, 13)}},
		{14, 20, nil},
		{0, 1, []AbortedTxn{a(1, 0, 3)}},
	}
	for _, tc := range cases {
		got, err := s.AbortedTxns("t", 0, tc.from, tc.to)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("[%d, %d): %+v, %v; want %+v", tc.from, tc.to, got, err, tc.want)
		}
	}
	if _, err := s.AbortedTxns("nope", 0, 0, 1); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
}

// TestTxnRetention: entries wholly below the log start leave the index at
// the next checkpoint and restart; the LSO is never below the log start.
func TestTxnRetention(t *testing.T) {
	fsys := vfs.NewMemFS()
	cfg := testConfig(fsys)
	cfg.Shards = 1
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 1)
	mustAppend(t, s, "t", 0, txnBatch(1, 0, 0, 2))         // 0-1
	m1 := mustMarker(t, s, "t", 0, 1, 0, false)            // 2
	f2 := mustAppend(t, s, "t", 0, txnBatch(2, 0, 0, 2))   // 3-4
	m2 := mustMarker(t, s, "t", 0, 2, 0, false)            // 5
	open := mustAppend(t, s, "t", 0, txnBatch(3, 0, 0, 2)) // 6-7, stays open
	if _, err := s.DeleteRecords("t", 0, m1+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = mustOpen(t, cfg)
	want := []AbortedTxn{{ProducerID: 2, FirstOffset: f2, LastOffset: m2}}
	if got := abortedOf(t, s, "t", 0); !slices.Equal(got, want) {
		t.Fatalf("aborted after DeleteRecords and restart: %+v, want %+v", got, want)
	}
	// Past the open transaction's start: the LSO follows the log start.
	if _, err := s.DeleteRecords("t", 0, open+1); err != nil {
		t.Fatal(err)
	}
	if got := lsoOf(t, s, "t", 0); got != open+1 {
		t.Fatalf("LSO %d below the log start %d", got, open+1)
	}
	s.Close()
	s = mustOpen(t, cfg)
	defer s.Close()
	if got := abortedOf(t, s, "t", 0); len(got) != 0 {
		t.Fatalf("aborted below the log start kept: %+v", got)
	}
}

// TestTxnOpenSurvivesExpiry: a producer with an open transaction is not
// expired at a seal, so its transaction keeps holding the LSO.
func TestTxnOpenSurvivesExpiry(t *testing.T) {
	fsys := vfs.NewMemFS()
	now := time.UnixMilli(1_000_000)
	cfg := testConfig(fsys)
	cfg.Shards = 1
	cfg.ProducerExpiry = time.Minute
	cfg.Now = func() time.Time { return now }
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 1)
	first := mustAppend(t, s, "t", 0, txnBatch(1, 0, 0, 1))
	now = now.Add(time.Hour)
	val := make([]byte, 4000)
	for s.Stats().SegmentsRoll < 2 {
		mustAppend(t, s, "t", 0, makeBatch(batchSpec{value: val}))
	}
	eventually(t, "checkpoints", func() bool { return allCheckpointed(s) })
	s.Close()
	s = mustOpen(t, cfg)
	defer s.Close()
	if got := lsoOf(t, s, "t", 0); got != first {
		t.Fatalf("LSO %d, want the open transaction's %d", got, first)
	}
	mustMarker(t, s, "t", 0, 1, 0, false)
	if got := abortedOf(t, s, "t", 0); len(got) != 1 || got[0].FirstOffset != first {
		t.Fatalf("aborted %+v", got)
	}
}

func TestCheckpointV1Decodes(t *testing.T) {
	prod, np := encodeProducers(producerMap{{pid: 1, key: 2}: {epoch: 3, txnOpen: true, txnFirst: 9}})
	entries := []ckEntry{{key: 2, base: 0, last: 4, pos: 40, length: 100, maxTs: 5, maxTsOff: 0}}
	b := encodeCheckpoint(7, entries, prod, np, []ckAborted{{key: 2, AbortedTxn: AbortedTxn{1, 2, 3}}})
	ck, err := decodeCheckpoint(b, 7)
	if err != nil || len(ck.aborted) != 1 || ck.aborted[0].AbortedTxn != (AbortedTxn{1, 2, 3}) ||
		!ck.producers[producerKey{1, 2}].txnOpen || ck.producers[producerKey{1, 2}].txnFirst != 9 {
		t.Fatalf("v2 round trip: %+v, %v", ck, err)
	}
	// A version 1 checkpoint (no aborted section, producer flags 0).
	prod1, np1 := encodeProducers(producerMap{{pid: 1, key: 2}: {epoch: 3}})
	v1 := encodeCheckpointV1(7, entries, prod1, np1)
	ck, err = decodeCheckpoint(v1, 7)
	if err != nil || len(ck.aborted) != 0 || len(ck.entries) != 1 || ck.producers[producerKey{1, 2}].epoch != 3 {
		t.Fatalf("v1: %+v, %v", ck, err)
	}
	for i := range b {
		c := slices.Clone(b)
		c[i] ^= 0x40
		if _, err := decodeCheckpoint(c, 7); err == nil {
			t.Fatalf("flipped byte %d decoded", i)
		}
	}
}

// encodeCheckpointV1 writes the pre-transaction format, as older klite did.
func encodeCheckpointV1(segID uint64, entries []ckEntry, producers []byte, n int) []byte {
	b := encodeCheckpoint(segID, entries, producers, n, nil)
	// Drop the empty aborted section (its count) and re-stamp.
	at := ckHeaderBytes + len(entries)*ckEntryBytes
	v1 := append(slices.Clone(b[:at]), b[at+4:len(b)-4]...)
	v1[4], v1[5] = 0, ckVersion1
	return appendCRC(v1)
}

func appendCRC(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// TestTxnSnapshotRestore: the S3 metadata snapshot carries the open
// transactions and the aborted index; a restore brings back those whose
// data is below the restored log end, and a restart keeps them (the
// restored producers and aborted lists reach the next checkpoint).
func TestTxnSnapshotRestore(t *testing.T) {
	src := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer src.Close()
	ti := mustCreate(t, src, "t", 1)
	w := txnScenario(t, src)
	// An open transaction past the restored end is lost with its data.
	mustAppend(t, src, "t", 0, txnBatch(4, 0, 0, 1))
	snap := src.Snapshot()

	_, _, ab, err := decodeProducerSnapshot(snap.Producers)
	if err != nil || len(ab) != 1 || ab[0].AbortedTxn != w.aborted[0] {
		t.Fatalf("snapshot aborted %+v, %v", ab, err)
	}
	fsys := vfs.NewMemFS()
	cfg := testConfig(fsys)
	dst := mustOpen(t, cfg)
	next := map[tier.Partition]int64{tierOf(ti, 0): w.hwm}
	if err := dst.Restore(&snap, next); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store, when string) {
		t.Helper()
		if got := lsoOf(t, s, "t", 0); got != w.lso {
			t.Fatalf("%s: LSO %d, want %d", when, got, w.lso)
		}
		if got := abortedOf(t, s, "t", 0); !slices.Equal(got, w.aborted) {
			t.Fatalf("%s: aborted %+v, want %+v", when, got, w.aborted)
		}
		if got, _ := s.OpenTxnStart("t", 0, 4); got != -1 {
			t.Fatalf("%s: pid 4's transaction past the restored end is open at %d", when, got)
		}
	}
	check(dst, "restored")
	// The open transaction ends on the restored store.
	m := mustMarker(t, dst, "t", 0, 3, 0, false)
	w.aborted = append(w.aborted, AbortedTxn{ProducerID: 3, FirstOffset: w.lso, LastOffset: m})
	w.lso = m + 1
	check(dst, "after the abort")
	dst.Close()
}

// TestTxnCrashRecovery crashes a store while producers run transactions
// (data and markers, all durable) and checks after reopening that the
// rebuilt state is what the recovered log says (open transactions, the
// LSO, the aborted index, replayed here from the batches themselves), and
// that every acknowledged marker is in it.
func TestTxnCrashRecovery(t *testing.T) {
	modes := []vfs.CrashMode{vfs.CrashDropUnsynced, vfs.CrashKeepUnsynced, vfs.CrashTorn}
	iters := 12
	if testing.Short() {
		iters = 2
	}
	for seed := uint64(1); seed <= uint64(iters); seed++ {
		for _, mode := range modes {
			txnCrashOnce(t, seed, mode)
		}
	}
}

type ackedTxn struct {
	pid         int64
	part        int32
	first, last int64
	abort       bool
}

func txnCrashOnce(t *testing.T, seed uint64, mode vfs.CrashMode) {
	t.Helper()
	fsys := vfs.NewMemFS()
	cfg := testConfig(fsys)
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 3)
	var mu sync.Mutex
	var acked []ackedTxn
	var nacked atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	pad := make([]byte, 300+int(seed*97%900))
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pid := int64(100 + w)
			seqs := map[int32]int32{}
			wait := func(f func(func(AppendResult))) (AppendResult, bool) {
				ch := make(chan AppendResult, 1)
				f(func(r AppendResult) { ch <- r })
				r := <-ch
				return r, r.Err == nil
			}
			for i := 0; !stop.Load(); i++ {
				p := int32((w + i) % 3)
				first := int64(-1)
				for j := range 1 + i%2 {
					b := makeBatch(batchSpec{records: 1 + j, pid: pid, seq: seqs[p], value: pad, txn: true})
					r, ok := wait(func(done func(AppendResult)) { s.Append("t", p, b, true, done) })
					if !ok {
						return
					}
					seqs[p] += int32(1 + j)
					if first < 0 {
						first = r.BaseOffset
					}
				}
				abort := i%3 == 0
				r, ok := wait(func(done func(AppendResult)) { s.WriteTxnMarker("t", p, pid, 0, !abort, 0, done) })
				if !ok {
					return
				}
				mu.Lock()
				acked = append(acked, ackedTxn{pid: pid, part: p, first: first, last: r.BaseOffset, abort: abort})
				mu.Unlock()
				nacked.Add(1)
			}
		}()
	}
	crashAfter := int64(10 + (seed*31)%80)
	eventually(t, "acked transactions", func() bool { return nacked.Load() >= crashAfter })
	mu.Lock()
	want := slices.Clone(acked)
	mu.Unlock()
	clone := fsys.CrashClone(mode, seed)
	stop.Store(true)
	wg.Wait()
	s.Close()

	cfg.FS = clone
	s2 := mustOpen(t, cfg)
	defer s2.Close()
	what := fmt.Sprintf("seed %d mode %d", seed, mode)
	for p := range int32(3) {
		// Replay the recovered log: open transactions and aborts.
		open := map[int64]int64{}
		var aborted []AbortedTxn
		for _, b := range readBatches(t, s2, "t", p, 0, 1<<20) {
			h, _ := ParseBatchHeader(b.raw)
			if !h.Control() {
				if _, ok := open[h.ProducerID]; !ok {
					open[h.ProducerID] = h.BaseOffset
				}
				continue
			}
			commit, ok := MarkerCommit(b.raw)
			if !ok {
				t.Fatalf("%s: control batch at %d is not a marker", what, h.BaseOffset)
			}
			if first, ok := open[h.ProducerID]; ok && !commit {
				aborted = append(aborted, AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset})
			}
			delete(open, h.ProducerID)
		}
		slices.SortFunc(aborted, func(a, b AbortedTxn) int { return int(a.FirstOffset - b.FirstOffset) })
		if got := abortedOf(t, s2, "t", p); !slices.Equal(got, aborted) {
			t.Fatalf("%s: partition %d aborted %+v, the log says %+v", what, p, got, aborted)
		}
		_, hwm, _ := s2.Offsets("t", p)
		lso := hwm
		for pid, first := range open {
			lso = min(lso, first)
			if got, _ := s2.OpenTxnStart("t", p, pid); got != first {
				t.Fatalf("%s: partition %d pid %d open at %d, the log says %d", what, p, pid, got, first)
			}
		}
		if got := lsoOf(t, s2, "t", p); got != lso {
			t.Fatalf("%s: partition %d LSO %d, the log says %d", what, p, got, lso)
		}
		// Every acknowledged end is there.
		for _, a := range want {
			if a.part != p {
				continue
			}
			in := slices.Contains(aborted, AbortedTxn{ProducerID: a.pid, FirstOffset: a.first, LastOffset: a.last})
			if in != a.abort || a.last >= hwm {
				t.Fatalf("%s: acknowledged %+v: in the aborted index %v, hwm %d", what, a, in, hwm)
			}
		}
	}
}

// TestTxnAppendChecks: inside an open transaction a producer's batches
// must be transactional and of its epoch; a retry of one of them is still
// a duplicate.
func TestTxnAppendChecks(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	mustCreate(t, s, "t", 1)
	b0 := txnBatch(1, 2, 0, 2)
	mustAppend(t, s, "t", 0, b0)
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{pid: 1, epoch: 2, seq: 2}), true); !errors.Is(r.Err, ErrInvalidTxnState) {
		t.Fatalf("plain batch in an open transaction: %v", r.Err)
	}
	if r := appendWait(t, s, "t", 0, txnBatch(1, 3, 0, 1), true); !errors.Is(r.Err, ErrConcurrentTxns) {
		t.Fatalf("newer epoch before the marker: %v", r.Err)
	}
	if r := appendWait(t, s, "t", 0, b0, true); r.Err != nil || r.BaseOffset != 0 {
		t.Fatalf("retry: %+v", r)
	}
	mustAppend(t, s, "t", 0, txnBatch(1, 2, 2, 1))
	mustMarker(t, s, "t", 0, 1, 3, true)
	if b := mustAppend(t, s, "t", 0, txnBatch(1, 3, 0, 1)); lsoOf(t, s, "t", 0) != b {
		t.Fatalf("next transaction at %d, LSO %d", b, lsoOf(t, s, "t", 0))
	}
	if _, hwm, _ := s.Offsets("t", 0); hwm != 5 {
		t.Fatalf("hwm %d, want 5", hwm)
	}
}
