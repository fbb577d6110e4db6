package storage

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

// TestCompactTieredRestore: disaster recovery from a bucket holding
// compacted (version 2) objects onto an empty WAL dir reads the same log,
// aborted data stays out (the snapshot's aborted index), and a cleaning on
// the restored store over old and new data keeps the latest committed
// value per key.
func TestCompactTieredRestore(t *testing.T) {
	fsys, ms := vfs.NewMemFS(), tier.NewMemStore()
	clock := &fakeClock{}
	clock.ms.Store(1_000_000)
	tc := openTieredCompact(t, fsys, ms, clock)
	s := tc.s
	f := newFixture(t, s, clock, codecNone, nil)
	pid, epoch, err := s.InitProducerID()
	if err != nil {
		t.Fatal(err)
	}
	f.produce(30, 7, 100, 5)
	tc.upload("c")
	s.Compact()
	_, end, _ := tc.manifest("c")
	if end == 0 {
		t.Fatal("nothing compacted")
	}
	// An aborted transaction overwriting keys the fixture wrote, uploaded
	// but not cleaned before the disaster.
	var recs []kv
	for i := range 10 {
		recs = append(recs, kv{fmt.Appendf(nil, "k%03d", i), []byte("aborted")})
	}
	mustAppend(t, s, "c", 0, makeTxnKeyed(t, pid, epoch, 0, recs...))
	mustMarker(t, s, "c", 0, pid, epoch, false)
	f.produce(30, 7, 10, 5)
	tc.upload("c")
	m, _, _ := tc.manifest("c")
	want := readLog(t, s, "c", 0)
	snap := s.Snapshot()
	ti, _ := s.Topic("c")
	tp := tierOf(ti, 0)

	// A new broker on an empty WAL dir, the same bucket.
	dst := openTieredCompact(t, vfs.NewMemFS(), ms, clock)
	fi, _ := s.Topic("filler")
	next := map[tier.Partition]int64{tp: m.NextOffset()}
	if fm, _ := tc.c.Manifest(context.Background(), tierOf(fi, 0)); fm != nil {
		next[tierOf(fi, 0)] = fm.NextOffset()
	}
	tc.close()
	if err := dst.s.Restore(&snap, next); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	f.s = dst.s
	got := readLog(t, dst.s, "c", 0)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored: %d records, before %d", len(got), len(want))
	}
	if as, _ := dst.s.AbortedTxns("c", 0, 0, m.NextOffset()); len(as) != 1 {
		t.Fatalf("restored aborted index %+v, want the one transaction", as)
	}
	// More data, cleaned with the restored part.
	f.produce(30, 7, 100, 5)
	dst.upload("c")
	dst.s.Compact()
	_, end, _ = dst.manifest("c")
	got = readLog(t, dst.s, "c", 0)
	f.check(got, end, true)
	for _, r := range got {
		if strings.HasPrefix(r.val, "aborted") {
			t.Fatalf("aborted record %+v after the restored store's cleaning", r)
		}
	}
}

// TestCompactTieredToNothing: a tiered range of tombstones only cleans,
// past delete.retention.ms, down to its last batch; DeleteRecords into the
// removed range then moves the log start into a gap, and reads, timestamp
// lookups and the max timestamp all answer from the surviving batch.
func TestCompactTieredToNothing(t *testing.T) {
	fsys, ms := vfs.NewMemFS(), tier.NewMemStore()
	clock := &fakeClock{}
	clock.ms.Store(1_000_000)
	tc := openTieredCompact(t, fsys, ms, clock)
	s := tc.s
	f := newFixture(t, s, clock, codecNone, map[string]string{"delete.retention.ms": "1000", "cleanup.policy": "compact,delete"})
	for range 5 {
		f.produce(20, 7, 40, 1) // tombstones only
		clock.ms.Add(10)
	}
	tc.upload("c")
	s.Compact()
	clock.ms.Add(2_000)
	s.Compact()
	_, end, _ := tc.manifest("c")
	got := readLog(t, s, "c", 0)
	if len(got) != 7 || got[len(got)-1].off != end-1 {
		t.Fatalf("%d records left, last at %d, cleaned end %d; want the last batch of 7", len(got), got[len(got)-1].off, end)
	}
	cut := got[0].off - 100
	if _, err := s.DeleteRecords("c", 0, cut); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bucket's log start to follow", func() bool {
		m2, err := tc.c.Manifest(context.Background(), tierOf(mustTopic(t, s, "c"), 0))
		return err == nil && m2 != nil && m2.LogStartOffset == cut
	})
	if ls, _, _ := s.Offsets("c", 0); ls != cut {
		t.Fatalf("log start %d, want %d", ls, cut)
	}
	if got := readLog(t, s, "c", 0); len(got) != 7 || got[0].off != end-7 {
		t.Fatalf("after DeleteRecords into the gap: %d records from %d", len(got), got[0].off)
	}
	if off, _, err := s.OffsetForTime("c", 0, 0); err != nil || off != end-7 {
		t.Fatalf("OffsetForTime(0): %d, %v; want the surviving batch at %d", off, err, end-7)
	}
	if off, _, err := s.MaxTimestamp("c", 0); err != nil || off != end-7 {
		t.Fatalf("MaxTimestamp: %d, %v; want the surviving batch at %d", off, err, end-7)
	}
}

func mustTopic(t *testing.T, s *Store, name string) TopicInfo {
	t.Helper()
	ti, ok := s.Topic(name)
	if !ok {
		t.Fatalf("no topic %s", name)
	}
	return ti
}
