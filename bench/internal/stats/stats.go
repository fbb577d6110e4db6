// Package stats holds the numbers the benchmark keeps: a latency histogram
// (HDR, safe for concurrent use) and a summary of repeated runs (median and
// spread), which is what the report quotes on a shared, noisy machine.
package stats

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: 1 µs to 60 s at 3 significant digits. Values outside are
// clamped, so a stall still shows up as a 60 s tail rather than vanishing.
const (
	histLowestMicros  = 1
	histHighestMicros = 60_000_000
	histSigFigs       = 3
)

// Hist is a latency histogram in microseconds. Safe for concurrent use.
type Hist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram // guarded by mu
}

// NewHist returns an empty histogram.
func NewHist() *Hist {
	return &Hist{h: hdrhistogram.New(histLowestMicros, histHighestMicros, histSigFigs)}
}

// Record adds one duration.
func (h *Hist) Record(d time.Duration) {
	us := d.Microseconds()
	us = max(us, histLowestMicros)
	us = min(us, histHighestMicros)
	h.mu.Lock()
	_ = h.h.RecordValue(us) // in range by the clamps above
	h.mu.Unlock()
}

// Quantile returns the value at percentile p (0..100), 0 when empty.
func (h *Hist) Quantile(p float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Duration(h.h.ValueAtQuantile(p)) * time.Microsecond
}

// Max returns the largest recorded value, 0 when empty.
func (h *Hist) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(h.h.Max()) * time.Microsecond
}

// Count returns how many values were recorded.
func (h *Hist) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.TotalCount()
}

// Merge adds all of o's values to h.
func (h *Hist) Merge(o *Hist) {
	o.mu.Lock()
	c := o.h.Clone()
	o.mu.Unlock()
	h.mu.Lock()
	h.h.Merge(c)
	h.mu.Unlock()
}

// Reset empties the histogram.
func (h *Hist) Reset() {
	h.mu.Lock()
	h.h.Reset()
	h.mu.Unlock()
}

// Summary describes repeated measurements of one quantity.
type Summary struct {
	N      int
	Median float64
	Min    float64
	Max    float64
}

// Summarize returns the median, min and max of vals, ignoring NaNs.
// The median of an even count is the mean of the middle two.
func Summarize(vals []float64) Summary {
	v := make([]float64, 0, len(vals))
	for _, x := range vals {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return Summary{N: n, Median: med, Min: v[0], Max: v[n-1]}
}

// Spread is (max-min)/median: the relative width of the range of runs.
// NaN with fewer than two values or a zero median.
func (s Summary) Spread() float64 {
	if s.N < 2 || s.Median == 0 {
		return math.NaN()
	}
	return (s.Max - s.Min) / math.Abs(s.Median)
}
