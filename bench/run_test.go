package main

import (
	"testing"
	"time"

	"github.com/klite/klite/bench/internal/limits"
	"github.com/klite/klite/bench/internal/report"
)

// Scenario ratios use the run's median of every probe, not the probe of
// their own round; limits without a probe (the CPU-bound one) stay as set.
func TestPinLimitsUsesProbeMedians(t *testing.T) {
	probes := []limits.Result{
		{SeqWriteBs: 300e6, TCPBs: 2e9, FsyncP50: time.Millisecond, FsyncP99: 4 * time.Millisecond},
		{SeqWriteBs: 1900e6, TCPBs: 3e9, FsyncP50: 2 * time.Millisecond, FsyncP99: 9 * time.Millisecond},
		{SeqWriteBs: 400e6, TCPBs: 1e9, FsyncP50: 3 * time.Millisecond, FsyncP99: 5 * time.Millisecond},
	}
	run := []report.Metric{
		{Key: "throughput", Limits: []report.Limit{
			{Key: report.LimitDiskSeqWrite, Value: 1900e6},
			{Key: report.LimitLoopback, Value: 3e9},
			{Key: report.LimitBinding, Value: 123},
		}},
		{Key: "p99", Limits: []report.Limit{{Key: report.Limit2xFsyncP99, Value: 0.018}, {Key: report.LimitFsyncP50, Value: 0.003}}},
	}
	pinLimits(run, probeMedians(probes))
	want := []float64{400e6, 2e9, 123, 0.010, 0.002}
	var got []float64
	for _, m := range run {
		for _, l := range m.Limits {
			got = append(got, l.Value)
		}
	}
	for i := range want {
		if diff := got[i] - want[i]; diff > 1e-9 || diff < -1e-9 {
			t.Fatalf("pinned limits %v, want %v", got, want)
		}
	}
}
