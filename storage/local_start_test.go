package storage

import (
	"errors"
	"testing"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

// LocalStart is the first offset in the WAL: above the log start while
// the tier holds the data below, never below the log start, the high
// watermark when nothing is local, and the log start without a tier.
func TestLocalStart(t *testing.T) {
	_, s, _, ti, _ := coldSetup(t) // both partitions: tiered [.., 20), local [20, 30)
	check := func(part int32, want int64) {
		t.Helper()
		if got, err := s.LocalStart("t", part); err != nil || got != want {
			t.Fatalf("LocalStart(t/%d) = %d, %v; want %d", part, got, err, want)
		}
	}
	check(0, 20)
	check(1, 20)
	if ls, _, _ := s.Offsets("t", 1); ls != 3 {
		t.Fatalf("log start of t/1: %d, want 3", ls)
	}
	// The log start inside the local data: the local start follows it,
	// also into the middle of a chunk (24-25).
	if _, err := s.DeleteRecords("t", 0, 25); err != nil {
		t.Fatal(err)
	}
	check(0, 25)
	if _, err := s.DeleteRecords("t", 1, -1); err != nil {
		t.Fatal(err)
	}
	check(1, 30)

	// A restored partition with nothing local yet: the high watermark.
	cfg := testConfig(vfs.NewMemFS())
	cfg.Cold = newMemCold()
	r := mustOpen(t, cfg)
	t.Cleanup(func() { r.Close() })
	snap := s.Snapshot()
	if err := r.Restore(&snap, map[tier.Partition]int64{tierOf(ti, 0): 30, tierOf(ti, 1): 30}); err != nil {
		t.Fatal(err)
	}
	if got, err := r.LocalStart("t", 0); err != nil || got != 30 {
		t.Fatalf("restored LocalStart(t/0) = %d, %v; want 30", got, err)
	}

	if _, err := s.LocalStart("nope", 0); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}

	// Without a tier: the log start, wherever the first chunk begins.
	l := mustOpen(t, testConfig(vfs.NewMemFS()))
	t.Cleanup(func() { l.Close() })
	mustCreate(t, l, "t", 1)
	appendN(t, l, "t", 0, 5, 2, 1000, []byte("v"))
	if _, err := l.DeleteRecords("t", 0, 3); err != nil {
		t.Fatal(err)
	}
	if got, err := l.LocalStart("t", 0); err != nil || got != 3 {
		t.Fatalf("local-only LocalStart = %d, %v; want the log start 3", got, err)
	}
}
