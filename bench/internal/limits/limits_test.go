package limits

import (
	"context"
	"os"
	"testing"
	"time"
)

// The probes run on a temp dir with small sizes: they must produce sane,
// positive figures and leave nothing behind.
func TestMeasureSmall(t *testing.T) {
	dir := t.TempDir()
	r, err := Measure(context.Background(), Config{Dir: dir, FsyncSamples: 20, SeqBytes: 8 << 20, TCPBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if r.FsyncP50 <= 0 || r.FsyncP99 < r.FsyncP50 || r.FsyncMax < r.FsyncP99 {
		t.Errorf("fsync p50 %v p99 %v max %v: want 0 < p50 <= p99 <= max", r.FsyncP50, r.FsyncP99, r.FsyncMax)
	}
	if r.SeqWriteBs <= 0 || r.TCPBs <= 0 {
		t.Errorf("seq write %v B/s, loopback %v B/s: want positive", r.SeqWriteBs, r.TCPBs)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("probe left %s behind", e.Name())
	}
	t.Logf("fsync p50 %v p99 %v, seq write %.0f MB/s, loopback %.0f MB/s", r.FsyncP50, r.FsyncP99, r.SeqWriteBs/1e6, r.TCPBs/1e6)
}

func TestFsyncCountsSamples(t *testing.T) {
	h, err := Fsync(context.Background(), t.TempDir(), 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	if h.Count() != 7 {
		t.Fatalf("recorded %d fdatasyncs, want 7", h.Count())
	}
}

// A minimum time keeps the probe going past its count.
func TestFsyncRunsForMinTime(t *testing.T) {
	const minTime = 50 * time.Millisecond
	start := time.Now()
	h, err := Fsync(context.Background(), t.TempDir(), 1, minTime)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < minTime || h.Count() < 2 {
		t.Fatalf("%d fdatasyncs in %v: want the probe to run for at least %v", h.Count(), el, minTime)
	}
}

func TestSeqWriteRoundsUpToChunks(t *testing.T) {
	// 1 byte still writes one whole 1 MiB chunk and must report a rate.
	bs, n, err := SeqWrite(context.Background(), t.TempDir(), 1, 0)
	if err != nil || bs <= 0 || n != WriteChunkBytes {
		t.Fatalf("SeqWrite(1 byte) = %v B/s, %d bytes, %v", bs, n, err)
	}
}

// Past its byte count the probe keeps writing until its minimum time, in
// whole chunks, with periodic syncs along the way.
func TestSeqWriteRunsForMinTime(t *testing.T) {
	const minTime = 50 * time.Millisecond
	start := time.Now()
	bs, n, err := SeqWrite(context.Background(), t.TempDir(), 1, minTime)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < minTime || n%WriteChunkBytes != 0 || bs <= 0 {
		t.Fatalf("wrote %d bytes at %.0f B/s in %v: want whole chunks for at least %v", n, bs, el, minTime)
	}
}

func TestProbesStopOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Fsync(ctx, t.TempDir(), 1000, time.Minute); err == nil {
		t.Error("Fsync with a cancelled context: want an error")
	}
	if _, _, err := SeqWrite(ctx, t.TempDir(), 1<<30, time.Minute); err == nil {
		t.Error("SeqWrite with a cancelled context: want an error")
	}
}

func TestMissingDir(t *testing.T) {
	if _, err := Measure(context.Background(), Config{Dir: "/nonexistent/klite-bench", FsyncSamples: 1, SeqBytes: 1, TCPBytes: 1}); err == nil {
		t.Fatal("Measure on a missing directory: want an error")
	}
}

func TestDueWrites(t *testing.T) {
	const size = 256 << 10
	for _, c := range []struct {
		name    string
		rate    float64
		elapsed time.Duration
		written int64
		want    int
	}{
		{"first group is never empty", 1e6, 0, 0, 1},
		{"on schedule", 100 * size, time.Second, 100 * size, 0},
		{"ten behind", 100 * size, time.Second, 90 * size, 10},
		{"partial write is not due", 100 * size, time.Second, 100*size - size/2, 0},
		{"ahead of schedule", 100 * size, time.Second, 120 * size, 0},
	} {
		if got := dueWrites(c.rate, c.elapsed, c.written, size); got != c.want {
			t.Errorf("%s: dueWrites = %d, want %d", c.name, got, c.want)
		}
	}
	// 100 writes/s: after 3 written at 25 ms, the 4th is due at 40 ms.
	if got := nextDue(100*size, 25*time.Millisecond, 3*size, size); got != 15*time.Millisecond {
		t.Errorf("nextDue = %v, want 15ms", got)
	}
	if got := nextDue(100*size, time.Second, 3*size, size); got != 0 {
		t.Errorf("nextDue when late = %v, want 0", got)
	}
}

func TestLoadedRate(t *testing.T) {
	if got := LoadedRate(100e3, 1024, 500e6); got != 102.4e6 {
		t.Errorf("known rate: %v, want 102.4e6", got)
	}
	if got := LoadedRate(0, 1024, 500e6); got != 250e6 {
		t.Errorf("unknown rate: %v, want half the seq write median", got)
	}
}

// The loaded probe writes at about the asked rate, reports ordered
// percentiles and leaves no scratch file behind.
func TestFsyncLoaded(t *testing.T) {
	dir := t.TempDir()
	const rate = 8 << 20
	l, err := FsyncLoaded(context.Background(), dir, rate, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if l.Syncs == 0 || l.P50 <= 0 || l.P99 < l.P50 || l.P999 < l.P99 || l.Max < l.P999 {
		t.Errorf("%v: want 0 < p50 <= p99 <= p99.9 <= max and some syncs", l)
	}
	if l.AchievedBs <= 0 || l.AchievedBs > 2*rate {
		t.Errorf("achieved %v B/s for %v asked", l.AchievedBs, float64(rate))
	}
	if l.String() == "" {
		t.Error("empty summary")
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("probe left %s behind", e.Name())
	}
	t.Log(l)
}

func TestFsyncLoadedRejectsZeroRate(t *testing.T) {
	if _, err := FsyncLoaded(context.Background(), t.TempDir(), 0, time.Second); err == nil {
		t.Fatal("rate 0 accepted")
	}
}
