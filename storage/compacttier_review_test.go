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
