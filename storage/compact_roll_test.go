package storage

import (
	"testing"
	"time"

	"github.com/klite/klite/vfs"
)

// TestCompactMinRollInterval: a compacted topic with segment.ms=1 makes
// compaction roll the shard's active segment, which the shard's other
// topics share, at most once per CompactionMinRollInterval; without the
// floor, once per pass. Counted in segment files on disk.
func TestCompactMinRollInterval(t *testing.T) {
	const passes, every = 80, 15_000 // 20 minutes of 15 s passes
	for _, floor := range []time.Duration{0, 10 * time.Minute} {
		t.Run(floor.String(), func(t *testing.T) {
			fsys := vfs.NewMemFS()
			clock := &fakeClock{}
			clock.ms.Store(1_000_000)
			cfg := retentionConfig(fsys, clock)
			cfg.CompactionMinRollInterval = floor
			s := mustOpen(t, cfg)
			defer s.Close()
			f := newFixture(t, s, clock, codecNone, map[string]string{"segment.ms": "1"})
			mustCreate(t, s, "other", 1) // keeps every segment (no retention)
			files0 := len(walFiles(t, fsys, cfg))
			for range passes {
				f.produce(10, 2, 1, 0)
				appendWait(t, s, "other", 0, makeKeyedBatch(t, codecNone, clock.ms.Load(), kv{[]byte("k"), []byte("v")}), true)
				clock.ms.Add(every)
				s.Compact()
			}
			files := len(walFiles(t, fsys, cfg)) - files0
			want := passes
			if floor > 0 {
				// The first pass rolls (the segment's start predates
				// Open), then one pass per floor.
				want = 1 + (passes-1)/int(floor.Milliseconds()/every)
			}
			t.Logf("floor %v: %d segment files added over %d passes", floor, files, passes)
			if files != want {
				t.Fatalf("floor %v: %d segment files added over %d passes of %d ms, want %d", floor, files, passes, every, want)
			}
			f.check(readLog(t, s, "c", 0), s.compEnd("c"), true)
		})
	}
}
