package hist

import "testing"

func TestObserveBuckets(t *testing.T) {
	h := New(Bounds{10, 100})
	for _, v := range []int64{0, 10, 11, 100, 101, 5000} {
		h.Observe(v)
	}
	s := h.Snapshot()
	if want := []uint64{2, 2, 2}; s.Counts[0] != want[0] || s.Counts[1] != want[1] || s.Counts[2] != want[2] {
		t.Fatalf("counts %v, want %v", s.Counts, want)
	}
	if s.Sum != 5222 || s.Count() != 6 {
		t.Fatalf("sum %d count %d", s.Sum, s.Count())
	}
	a := Snapshot{}.Add(s).Add(s)
	if a.Count() != 12 || a.Sum != 2*5222 {
		t.Fatalf("added: count %d sum %d", a.Count(), a.Sum)
	}
}

func TestExp(t *testing.T) {
	b := Exp(1000, 2, 4)
	if len(b) != 4 || b[0] != 1000 || b[3] != 8000 {
		t.Fatalf("%v", b)
	}
}

func BenchmarkObserve(b *testing.B) {
	h := New(Exp(50_000, 2, 18))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Observe(int64(i & 0xfffff))
	}
}
