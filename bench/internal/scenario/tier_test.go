package scenario

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klite/klite/bench/internal/limits"
)

func TestUploadFigures(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int, bytes int64) bucketSample {
		return bucketSample{t: t0.Add(time.Duration(ms) * time.Millisecond), bytes: bytes}
	}
	// Nothing for 1 s, 100 MB by 2 s while producing (fill ends at 2.1 s),
	// 100 MB more by 3 s, then quiet.
	ss := []bucketSample{at(0, 0), at(1000, 0), at(1500, 50e6), at(2000, 100e6), at(3000, 200e6), at(4000, 200e6), at(5000, 200e6)}
	f := uploadFiguresOf(ss, t0.Add(2100*time.Millisecond))
	if f.final.bytes != 200e6 {
		t.Errorf("final %d bytes, want 200e6", f.final.bytes)
	}
	if want := 150e6 / 1.5; math.Abs(f.rate-want) > 1 {
		t.Errorf("rate %.0f, want %.0f (first object seen at 1.5 s, last at 3 s)", f.rate, want)
	}
	if f.drain != 900*time.Millisecond {
		t.Errorf("drain %v, want 900ms", f.drain)
	}
	if want := 100e6 / 1.0; math.Abs(f.drainRate-want) > 1 {
		t.Errorf("drain rate %.0f, want %.0f (from the 2 s sample to the 3 s one)", f.drainRate, want)
	}
	// Uploads that kept up: no drain, no drain rate.
	f = uploadFiguresOf(ss, t0.Add(3500*time.Millisecond))
	if f.drain != 0 || !math.IsNaN(f.drainRate) {
		t.Errorf("kept up: drain %v rate %v, want 0 and NaN", f.drain, f.drainRate)
	}
	// One step: no rate.
	f = uploadFiguresOf([]bucketSample{at(0, 0), at(200, 5e6)}, t0)
	if !math.IsNaN(f.rate) {
		t.Errorf("single step: rate %v, want NaN", f.rate)
	}
	if f := uploadFiguresOf(nil, t0); f.final.bytes != 0 || !math.IsNaN(f.rate) {
		t.Errorf("no samples: %+v", f)
	}
	// Within a window: from the first sample in it to the last.
	if got := windowRate(ss, t0.Add(900*time.Millisecond), t0.Add(3100*time.Millisecond)); math.Abs(got-100e6) > 1 {
		t.Errorf("window rate %.0f, want 100e6 (200 MB over 2 s)", got)
	}
	if got := windowRate(ss, t0.Add(4100*time.Millisecond), t0.Add(4200*time.Millisecond)); !math.IsNaN(got) {
		t.Errorf("window without two samples: %v, want NaN", got)
	}
}

func TestRecoveryPointFigures(t *testing.T) {
	f := rpoFigures{flush: 5 * time.Second, rate: 20000, acked: 200_000, recovered: 150_000}
	if f.lost() != 50_000 || f.lostSecs() != 2.5 {
		t.Errorf("lost %d = %v s, want 50000 = 2.5 s", f.lost(), f.lostSecs())
	}
	ms := map[string]float64{}
	for _, m := range f.metrics() {
		ms[m.Key] = m.Value
	}
	if ms["rpo-lost-per-flush"] != 0.5 || ms["rpo-lost"] != 50_000 {
		t.Errorf("metrics %v: want 50000 lost, 0.5 of the flush interval", ms)
	}
	// Records stored whose acks never arrived are not negative loss.
	f.recovered = 210_000
	if f.lost() != 0 || f.lostSecs() != 0 {
		t.Errorf("recovered more than acked: lost %d (%v s), want 0", f.lost(), f.lostSecs())
	}
	if (rpoFigures{flush: time.Second, acked: 5}).lostSecs() != 0 {
		t.Error("lost seconds without a rate: want 0")
	}
	if !strings.Contains(f.String(), "-s3-flush-interval 5s") {
		t.Errorf("summary %q: want the flush interval", f)
	}
}

// TestTierScenariosLive runs the tier scenarios briefly against the real
// broker and versitygw. Until the broker has the S3 flags they must skip,
// saying why.
func TestTierScenariosLive(t *testing.T) {
	if os.Getenv("KLITE_S3_TESTS") == "0" {
		t.Skip("KLITE_S3_TESTS=0: tier scenarios against versitygw skipped")
	}
	bin := kliteBinary(t)
	m := &Managed{Binary: bin, Dir: t.TempDir()}
	cfg := testConfig()
	cfg.TierBacklog, cfg.TierRecover, cfg.TierSegmentBytes, cfg.TierHotBytes = 8<<20, []int64{6 << 20}, 2<<20, 4<<20
	env := &Env{
		Cfg:     cfg,
		Limits:  limits.Result{FsyncP50: time.Millisecond, FsyncP99: 4 * time.Millisecond, SeqWriteBs: 300e6, TCPBs: 1e9},
		Brokers: m, Round: 1, Rounds: 1, Progress: NewProgress(os.Stderr), ScratchDir: m.Dir,
	}
	for _, name := range []string{"tier-catchup", "tier-produce", "tier-recover"} {
		t.Run(name, func(t *testing.T) {
			s, err := New(name)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			res, err := s.Run(context.Background(), env)
			var skip *SkipError
			if errors.As(err, &skip) {
				if !strings.Contains(skip.Reason, "-s3-bucket") && !strings.Contains(skip.Reason, "S3 server") {
					t.Errorf("skip reason %q names neither the missing flag nor the server", skip.Reason)
				}
				t.Skip(skip.Reason)
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range res.Notes {
				if strings.Contains(n, "errors") || strings.Contains(n, "consumers read") || strings.Contains(n, "DATA CHECK") {
					t.Error(n)
				}
			}
			switch name {
			case "tier-catchup":
				if metric(t, res, "read-s3").Value <= 0 || metric(t, res, "read-local").Value <= 0 || metric(t, res, "bucket-bytes").Value <= 0 {
					t.Errorf("metrics %+v", res.Metrics)
				}
			case "tier-produce":
				if metric(t, res, "throughput-s3").Value <= 0 || metric(t, res, "p99-s3").Value <= 0 {
					t.Errorf("metrics %+v", res.Metrics)
				}
			case "tier-recover":
				if metric(t, res, "last-6mb").Value <= 0 || metric(t, res, "recovered-6mb").Value <= 0 {
					t.Errorf("metrics %+v", res.Metrics)
				}
				if acked, rec := metric(t, res, "rpo-acked").Value, metric(t, res, "rpo-recovered").Value; acked <= 0 || rec <= 0 {
					t.Errorf("recovery point: %v acknowledged, %v recovered: want both positive (the kill comes after 2 flushes)", acked, rec)
				}
				if lost := metric(t, res, "rpo-lost-secs").Value; lost < 0 || math.IsNaN(lost) {
					t.Errorf("recovery point: %v s lost", lost)
				}
			}
		})
	}
	ents, err := os.ReadDir(m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			t.Errorf("directory %s left behind", e.Name())
		}
	}
}

// A broker without the S3 flags skips every tier scenario, naming them,
// before any server starts.
func TestTierSkipsWithoutS3Flags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "old-klite")
	usage := "#!/bin/sh\ncat >&2 <<'X'\nFlags:\n  -listen host:port\n    \tlisten\n  -wal dir\n    \tdata\nX\nexit 2\n"
	if err := os.WriteFile(bin, []byte(usage), 0o755); err != nil {
		t.Fatal(err)
	}
	env := &Env{Cfg: testConfig(), Brokers: &Managed{Binary: bin, Dir: t.TempDir()}, Round: 1, Rounds: 1}
	for _, name := range []string{"tier-catchup", "tier-produce", "tier-recover"} {
		s, _ := New(name)
		_, err := s.Run(context.Background(), env)
		var skip *SkipError
		if !errors.As(err, &skip) || !strings.Contains(skip.Reason, "-s3-bucket") || !strings.Contains(skip.Reason, "-wal-hot-bytes") {
			t.Errorf("%s on a broker without S3 flags: %v, want a skip naming -s3-bucket and -wal-hot-bytes", name, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("%s close: %v", name, err)
		}
	}
	s, _ := New("tier-recover")
	if _, err := s.Run(context.Background(), &Env{Cfg: testConfig(), Brokers: &External{Addr: "127.0.0.1:1"}}); err != ErrNeedsManaged {
		t.Errorf("against an external broker: %v, want ErrNeedsManaged", err)
	}
}
