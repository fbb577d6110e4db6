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
