package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/klite/klite/vfs"
)

// markerOffsets lists the offsets of the control records a read from the
// log start returns.
func markerOffsets(t testing.TB, s *Store, topic string) map[int64]bool {
	t.Helper()
	out := map[int64]bool{}
	for _, r := range readLog(t, s, topic, 0) {
		if r.ctl {
			out[r.off] = true
		}
	}
	return out
}

// TestCompactTxnMarkers: a transaction marker stays while data of its
// transaction is in the log, and for delete.retention.ms after a cleaning
// found none left (aborted data dropped, committed data superseded); then
// the next cleaning removes it, and with an ABORT marker its entry in the
// aborted-transaction index, across a restart too. A marker whose data
// survives stays; the last stable offset does not move.
func TestCompactTxnMarkers(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, cfg, clock := newCompactStore(t, fsys)
	f := newFixture(t, s, clock, codecNone, map[string]string{"delete.retention.ms": "100000"})
	pid, epoch, err := s.InitProducerID()
	if err != nil {
		t.Fatal(err)
	}
	txn := func(seq int32, commit bool, keys ...string) (base, marker int64) {
		var recs []kv
		for _, k := range keys {
			recs = append(recs, kv{[]byte(k), fmt.Appendf(nil, "txn%d", seq)})
		}
		base = mustAppend(t, s, "c", 0, makeTxnKeyed(t, pid, epoch, seq, recs...))
		if commit {
			for i, r := range recs {
				f.sent[base+int64(i)] = logRec{off: base + int64(i), key: string(r.key), val: string(r.val)}
			}
		}
		return base, mustMarker(t, s, "c", 0, pid, epoch, commit)
	}
	_, superseded := txn(0, true, "k000", "k001") // overwritten by f.produce below
	_, abort := txn(2, false, "k002")             // aborted: data dropped at the first cleaning
	_, kept := txn(3, true, "only-here")          // never overwritten: its marker stays
	f.produce(50, 7, 300, 0)
	waitCheckpoints(t, s)

	s.Compact()
	end := s.compEnd("c")
	if end <= kept {
		t.Fatalf("cleaned end %d does not pass the transactions (markers at %d, %d, %d)", end, superseded, abort, kept)
	}
	f.check(readLog(t, s, "c", 0), end, true)
	if m := markerOffsets(t, s, "c"); !m[superseded] || !m[abort] || !m[kept] {
		t.Fatalf("markers %v right after the cleaning that emptied their transactions; want %d, %d, %d", m, superseded, abort, kept)
	}
	if as, _ := s.AbortedTxns("c", 0, 0, end); len(as) != 1 || as[0].LastOffset != abort {
		t.Fatalf("aborted index %+v while its marker is there, want the one ending at %d", as, abort)
	}

	// Within delete.retention.ms: another cleaning keeps them.
	clock.ms.Add(60_000)
	f.produce(50, 7, 150, 0)
	waitCheckpoints(t, s)
	s.Compact()
	if m := markerOffsets(t, s, "c"); !m[superseded] || !m[abort] {
		t.Fatalf("markers %v within delete.retention.ms", m)
	}
	_, hwm, _ := s.Offsets("c", 0)
	if lso := lsoOf(t, s, "c", 0); lso != hwm {
		t.Fatalf("LSO %d, high watermark %d", lso, hwm)
	}

	// Past it: the next pass (due by itself) removes them.
	clock.ms.Add(41_000)
	s.Compact()
	check := func(when string) {
		t.Helper()
		m := markerOffsets(t, s, "c")
		if m[superseded] || m[abort] || !m[kept] {
			t.Fatalf("%s: markers %v, want only %d of %d, %d, %d", when, m, kept, superseded, abort, kept)
		}
		if as, _ := s.AbortedTxns("c", 0, 0, hwm); len(as) != 0 {
			t.Fatalf("%s: aborted index %+v after its marker went", when, as)
		}
		if lso := lsoOf(t, s, "c", 0); lso != hwm {
			t.Fatalf("%s: LSO %d, high watermark %d", when, lso, hwm)
		}
		f.check(readLog(t, s, "c", 0), s.compEnd("c"), true)
		checkCompactedIndex(t, s, "c")
	}
	check("after the horizon")
	if st := s.CompactionStats(); st.MarkersRemoved != 2 {
		t.Fatalf("stats %+v, want 2 markers removed", st)
	}
	// The checkpoints written before still list the abort: the compacted
	// file's aborted section overrides them on open.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, cfg)
	defer s.Close()
	f.s = s
	check("after a restart")
}

// TestCompactedFileV1: a version 1 file (no aborted section; written
// before markers could go) still opens, and leaves the aborted index the
// checkpoints hold; the next cleaning writes version 2.
func TestCompactedFileV1(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, cfg, clock := newCompactStore(t, fsys)
	f := newFixture(t, s, clock, codecNone, nil)
	pid, epoch, err := s.InitProducerID()
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "c", 0, makeTxnKeyed(t, pid, epoch, 0, kv{[]byte("k000"), []byte("aborted")}))
	abort := mustMarker(t, s, "c", 0, pid, epoch, false)
	f.produce(30, 6, 300, 0)
	waitCheckpoints(t, s)
	s.Compact()
	end := s.compEnd("c")
	if end <= abort {
		t.Fatalf("cleaned end %d, abort marker at %d", end, abort)
	}
	s.Close()

	// Rewrite the file as version 1: no aborted section.
	be := binary.BigEndian
	dir := cfg.Dir + "/" + compDirName
	names, _ := fsys.List(dir)
	if len(names) != 1 {
		t.Fatalf("files %v", names)
	}
	path := dir + "/" + names[0]
	fl, err := fsys.OpenRW(path)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := fl.Size()
	b := make([]byte, size)
	if _, err := fl.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	_ = fl.Close()
	tr := b[size-compTrailerBytes:]
	idxPos := int64(be.Uint64(tr))
	n := int64(be.Uint32(tr[8:]))
	sec := b[idxPos+n*compEntryBytes : size-compTrailerBytes]
	if len(sec) != 4+compAbortedBytes || int64(be.Uint64(sec[4+16:])) != abort {
		t.Fatalf("aborted section % x, want the abort ending at %d", sec, abort)
	}
	v1 := append([]byte(nil), b[:idxPos+n*compEntryBytes]...)
	be.PutUint16(v1[4:], compVersionV1)
	crc := crc32.Update(crc32.Checksum(v1[:compHeaderBytes], castagnoli), castagnoli, v1[idxPos:])
	v1 = be.AppendUint64(v1, uint64(idxPos))
	v1 = be.AppendUint32(v1, uint32(n))
	v1 = be.AppendUint32(v1, crc)
	v1 = be.AppendUint32(v1, compMagic)
	if err := vfs.WriteFile(fsys, path, v1); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, cfg)
	defer s.Close()
	p, _ := s.lookup("c", 0)
	if c := p.comp.Load(); c == nil || c.abortedKnown || c.end != end {
		t.Fatalf("version 1 file not opened as such: %+v", c)
	}
	if as, _ := s.AbortedTxns("c", 0, 0, end); len(as) != 1 || as[0].LastOffset != abort {
		t.Fatalf("aborted index %+v, want the checkpoints' one ending at %d", as, abort)
	}
	f.s = s
	f.check(readLog(t, s, "c", 0), end, true)
	f.produce(30, 6, 300, 0)
	waitCheckpoints(t, s)
	s.Compact()
	if c := p.comp.Load(); c == nil || !c.abortedKnown || len(c.aborted) != 1 {
		t.Fatalf("next generation: %+v", c)
	}
}

// TestCompactTxnMarkerHorizon: a marker's delete.retention.ms runs from
// the cleaning that found its transaction's data gone, not from the one
// that first cleaned it.
func TestCompactTxnMarkerHorizon(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, _, clock := newCompactStore(t, fsys)
	defer s.Close()
	f := newFixture(t, s, clock, codecNone, map[string]string{"delete.retention.ms": "100000"})
	pid, epoch, err := s.InitProducerID()
	if err != nil {
		t.Fatal(err)
	}
	base := mustAppend(t, s, "c", 0, makeTxnKeyed(t, pid, epoch, 0, kv{[]byte("late"), []byte("committed")}))
	f.sent[base] = logRec{off: base, key: "late", val: "committed"}
	marker := mustMarker(t, s, "c", 0, pid, epoch, true)
	f.produce(50, 7, 300, 0)
	waitCheckpoints(t, s)
	s.Compact()
	if end := s.compEnd("c"); end <= marker {
		t.Fatalf("cleaned end %d, marker at %d", end, marker)
	}

	// Long after that first cleaning, the data is superseded: the marker
	// stays delete.retention.ms from now.
	clock.ms.Add(500_000)
	plain := mustAppend(t, s, "c", 0, makeKeyedBatch(t, codecNone, clock.ms.Load(), kv{[]byte("late"), []byte("plain")}))
	f.sent[plain] = logRec{off: plain, key: "late", val: "plain"}
	f.produce(50, 7, 300, 0)
	waitCheckpoints(t, s)
	s.Compact()
	f.check(readLog(t, s, "c", 0), s.compEnd("c"), true)
	if !markerOffsets(t, s, "c")[marker] {
		t.Fatal("marker removed by the cleaning that emptied its transaction")
	}
	clock.ms.Add(99_000)
	s.Compact()
	if !markerOffsets(t, s, "c")[marker] {
		t.Fatal("marker removed within delete.retention.ms of its transaction emptying")
	}
	clock.ms.Add(2_000)
	s.Compact()
	if markerOffsets(t, s, "c")[marker] {
		t.Fatal("marker kept past delete.retention.ms")
	}
	f.check(readLog(t, s, "c", 0), s.compEnd("c"), true)
}

// TestCompactTxnMarkerRuns: the markers of emptied transactions, adjacent
// once their data is gone, share runs: 300 of them take one index entry,
// not 300.
func TestCompactTxnMarkerRuns(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, _, clock := newCompactStore(t, fsys)
	defer s.Close()
	f := newFixture(t, s, clock, codecNone, nil)
	pid, epoch, err := s.InitProducerID()
	if err != nil {
		t.Fatal(err)
	}
	const txns = 300
	var markers []int64
	for i := range txns {
		mustAppend(t, s, "c", 0, makeTxnKeyed(t, pid, epoch, int32(i), kv{[]byte("same"), fmt.Appendf(nil, "v%d", i)}))
		markers = append(markers, mustMarker(t, s, "c", 0, pid, epoch, true))
	}
	f.produce(50, 7, 300, 0)
	waitCheckpoints(t, s)
	s.Compact()
	if end := s.compEnd("c"); end <= markers[txns-1] {
		t.Fatalf("cleaned end %d, last marker at %d", end, markers[txns-1])
	}
	p, _ := s.lookup("c", 0)
	c := p.comp.Load()
	runs := 0
	for _, m := range c.meta {
		if m.flags&compFlagMarkers != 0 {
			runs++
		}
	}
	if m := markerOffsets(t, s, "c"); len(m) != txns || runs != 1 {
		t.Fatalf("%d markers kept (want %d), in %d runs of emptied transactions' markers (want 1)", len(m), txns, runs)
	}
}

// TestAbortedFunc: a batch is aborted when it lies in one of its own
// producer's aborted transactions [first, marker), whichever of them.
func TestAbortedFunc(t *testing.T) {
	isAborted := abortedFunc([]AbortedTxn{
		{ProducerID: 1, FirstOffset: 0, LastOffset: 5},
		{ProducerID: 2, FirstOffset: 3, LastOffset: 9},
		{ProducerID: 1, FirstOffset: 10, LastOffset: 12},
		{ProducerID: 1, FirstOffset: 20, LastOffset: 30},
	})
	for _, c := range []struct {
		pid, base int64
		attrs     int16
		want      bool
	}{
		{1, 0, attrTransactional, true},
		{1, 4, attrTransactional, true},
		{1, 5, attrTransactional, false}, // its marker
		{1, 7, attrTransactional, false}, // between two
		{1, 11, attrTransactional, true},
		{1, 25, attrTransactional, true},
		{1, 30, attrTransactional, false},
		{1, 31, attrTransactional, false},
		{2, 4, attrTransactional, true},
		{2, 1, attrTransactional, false},
		{3, 4, attrTransactional, false},
		{1, 4, 0, false},                               // not transactional
		{1, 4, attrTransactional | attrControl, false}, // a marker
	} {
		h := &BatchHeader{ProducerID: c.pid, BaseOffset: c.base, Attributes: c.attrs}
		if got := isAborted(h); got != c.want {
			t.Errorf("pid %d offset %d attrs %#x: aborted %v, want %v", c.pid, c.base, c.attrs, got, c.want)
		}
	}
}
