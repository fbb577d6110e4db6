package stats

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	h := NewHist()
	// 1..1000 ms: p50 is 500 ms, p99 990 ms, p99.9 999 ms (within HDR's 3 digits).
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{{50, 500 * time.Millisecond}, {99, 990 * time.Millisecond}, {99.9, 999 * time.Millisecond}, {100, time.Second}}
	for _, c := range cases {
		got := h.Quantile(c.p)
		if rel := math.Abs(float64(got-c.want)) / float64(c.want); rel > 0.001 {
			t.Errorf("p%v = %v, want %v within 0.1%%", c.p, got, c.want)
		}
	}
	if h.Count() != 1000 {
		t.Errorf("count = %d, want 1000", h.Count())
	}
	if got := h.Max(); got < time.Second || got > 1001*time.Millisecond {
		t.Errorf("max = %v, want about 1s", got)
	}
}

func TestHistEmptyAndClamp(t *testing.T) {
	h := NewHist()
	if h.Quantile(99) != 0 || h.Max() != 0 || h.Count() != 0 {
		t.Fatalf("empty histogram: p99 %v max %v count %d, want zeros", h.Quantile(99), h.Max(), h.Count())
	}
	h.Record(0)
	h.Record(-time.Second)
	h.Record(time.Hour)
	if h.Count() != 3 {
		t.Fatalf("count = %d, want 3: out-of-range values must be clamped, not dropped", h.Count())
	}
	if got := h.Quantile(0); got != time.Microsecond {
		t.Errorf("p0 = %v, want the 1µs floor", got)
	}
	if got := h.Max(); got < 59*time.Second || got > 61*time.Second {
		t.Errorf("max = %v, want the 60s ceiling", got)
	}
}

func TestHistMergeConcurrent(t *testing.T) {
	a, b := NewHist(), NewHist()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				a.Record(time.Millisecond)
			}
		}()
	}
	b.Record(time.Second)
	wg.Wait()
	a.Merge(b)
	if a.Count() != 4001 {
		t.Fatalf("count = %d, want 4001", a.Count())
	}
	if got := a.Quantile(50); got < 999*time.Microsecond || got > 1001*time.Microsecond {
		t.Errorf("p50 = %v, want 1ms", got)
	}
	a.Reset()
	if a.Count() != 0 {
		t.Errorf("count after reset = %d", a.Count())
	}
}

func TestSummarize(t *testing.T) {
	cases := []struct {
		name             string
		in               []float64
		n                int
		med, lo, hi, spr float64
	}{
		{"odd", []float64{3, 1, 2}, 3, 2, 1, 3, 1},
		{"even", []float64{4, 1, 3, 2}, 4, 2.5, 1, 4, 1.2},
		{"one", []float64{7}, 1, 7, 7, 7, math.NaN()},
		{"nan ignored", []float64{math.NaN(), 10, 20}, 2, 15, 10, 20, 10.0 / 15},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Summarize(c.in)
			if s.N != c.n || s.Median != c.med || s.Min != c.lo || s.Max != c.hi {
				t.Fatalf("got %+v, want n=%d median=%v min=%v max=%v", s, c.n, c.med, c.lo, c.hi)
			}
			sp := s.Spread()
			if math.IsNaN(c.spr) != math.IsNaN(sp) || (!math.IsNaN(sp) && math.Abs(sp-c.spr) > 1e-12) {
				t.Errorf("spread = %v, want %v", sp, c.spr)
			}
		})
	}
	if s := Summarize(nil); s.N != 0 || !math.IsNaN(s.Median) {
		t.Errorf("empty: %+v, want N=0 and NaN median", s)
	}
}
