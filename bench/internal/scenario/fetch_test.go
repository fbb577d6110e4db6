package scenario

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/klite/klite/bench/internal/limits"
)

func limitsLoadedFixture() limits.Loaded {
	return limits.Loaded{RateBs: 230e6, AchievedBs: 230e6, P50: time.Millisecond, P99: 2 * time.Millisecond,
		P999: 20 * time.Millisecond, Max: 50 * time.Millisecond, Syncs: 100}
}

func TestTailBinding(t *testing.T) {
	// 10 GB moved with 20 broker CPU-seconds and 10 client CPU-seconds:
	// 2 and 1 CPU-s/GB. 1M 1 KiB records/s in and out is 2.048 GB/s.
	st := loadStats{prodBytes: 5e9, fetchBytes: 5e9, brokerCPU: 20 * time.Second, clientCPU: 10 * time.Second}
	b := tailBindingOf(st, 1024, 2)
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	if !near(b.needBs, 2.048e9) || !near(b.brokerCPUGB, 2) || !near(b.clientCPUGB, 1) {
		t.Errorf("need %v B/s, broker %v, client %v CPU-s/GB", b.needBs, b.brokerCPUGB, b.clientCPUGB)
	}
	if !near(b.brokerCores, 4.096) || !near(b.clientCores, 2.048) {
		t.Errorf("broker %v cores, client %v cores: want 4.096 and 2.048", b.brokerCores, b.clientCores)
	}
	if s := b.String(); !strings.Contains(s, "broker alone") {
		t.Errorf("%q: want the broker alone to bind", s)
	}
	// Cheap enough for the broker alone, not with the clients.
	st.brokerCPU, st.clientCPU = 5*time.Second, 5*time.Second
	if s := tailBindingOf(st, 1024, 2).String(); !strings.Contains(s, "together") {
		t.Errorf("%q: want broker and clients together to bind", s)
	}
	st.brokerCPU, st.clientCPU = time.Second, time.Second
	if s := tailBindingOf(st, 1024, 2).String(); !strings.Contains(s, "does not bind") {
		t.Errorf("%q: want CPU not to bind", s)
	}
	if got := tailBindingOf(loadStats{}, 1024, 2); got.brokerCores != 0 || math.IsNaN(got.brokerCPUGB) {
		t.Errorf("nothing moved: %+v, want zero costs", got)
	}
	if n := len(b.metrics()); n != 4 {
		t.Errorf("%d metrics, want 4", n)
	}
}

func TestLoadedMetrics(t *testing.T) {
	ms := loadedMetrics(limitsLoadedFixture(), "fdatasync under load")
	want := map[string]float64{"loaded-fsync-p50": 0.001, "loaded-fsync-p99": 0.002, "loaded-fsync-p999": 0.02,
		"loaded-fsync-max": 0.05, "loaded-fsync-rate": 230e6}
	for _, m := range ms {
		if w, ok := want[m.Key]; ok && m.Value != w {
			t.Errorf("%s = %v, want %v", m.Key, m.Value, w)
		}
		delete(want, m.Key)
	}
	if len(want) > 0 {
		t.Errorf("missing metrics %v", want)
	}
}
