// Package hist is a fixed-bucket histogram of atomic counters, cheap
// enough for the hot path: Observe is a few compares and two atomic adds,
// no lock, no allocation. The core packages (storage, kafka) keep these
// and the metrics package turns snapshots into Prometheus histograms at
// scrape time, so the core never imports a metrics library.
package hist

import "sync/atomic"

// Bounds are a histogram's inclusive upper bounds, ascending; values above
// the last land in an overflow bucket (+Inf).
type Bounds []int64

// Exp returns n bounds from first, each factor times the one before.
func Exp(first int64, factor float64, n int) Bounds {
	b := make(Bounds, n)
	v := float64(first)
	for i := range b {
		b[i] = int64(v)
		v *= factor
	}
	return b
}

// Hist counts observations into buckets. The zero value is unusable; New
// makes one. Safe for concurrent use.
type Hist struct {
	bounds Bounds
	counts []atomic.Uint64 // len(bounds)+1: the last is +Inf
	sum    atomic.Int64
}

// New returns an empty histogram over bounds (shared, not copied).
func New(bounds Bounds) *Hist {
	return &Hist{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe counts v.
func (h *Hist) Observe(v int64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(v)
}

// Snapshot is a histogram's state: per-bucket (not cumulative) counts, the
// last for values above every bound, and the sum of observed values.
type Snapshot struct {
	Bounds Bounds
	Counts []uint64
	Sum    int64
}

// Count is the number of observations.
func (s Snapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Snapshot returns the counts so far. Concurrent observations may be seen
// in a bucket and not yet in the sum; that is fine for monitoring.
func (h *Hist) Snapshot() Snapshot {
	s := Snapshot{Bounds: h.bounds, Counts: make([]uint64, len(h.counts)), Sum: h.sum.Load()}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	return s
}

// Add adds o's counts to s (same bounds) and returns s; a zero s takes o's bounds.
func (s Snapshot) Add(o Snapshot) Snapshot {
	if s.Counts == nil {
		s.Bounds, s.Counts = o.Bounds, make([]uint64, len(o.Counts))
	}
	for i := range o.Counts {
		s.Counts[i] += o.Counts[i]
	}
	s.Sum += o.Sum
	return s
}
