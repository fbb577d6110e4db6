package netloop

import (
	"fmt"
	"slices"
	"testing"
)

// waiting is the length of b's waiters list, walked both ways; it fails t
// when the links, or the count in nwait, disagree with the walk.
func (b *budget) waiting(t testing.TB) int {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var fwd, back []*conn
	for c := b.head; c != nil; c = c.budgetNext {
		if !c.budgetWait {
			t.Fatalf("%p listed but not marked waiting", c)
		}
		fwd = append(fwd, c)
	}
	for c := b.tail; c != nil; c = c.budgetPrev {
		back = append(back, c)
	}
	slices.Reverse(back)
	if !slices.Equal(fwd, back) || int(b.nwait.Load()) != len(fwd) {
		t.Fatalf("waiters forward %v, backward %v, nwait %d", fwd, back, b.nwait.Load())
	}
	return len(fwd)
}

// TestBudgetWaitOrder: the waiters are woken all at once, in the order they
// first asked; one listed twice is woken once; one forgotten (it closed)
// is not woken, and forgetting it again, or forgetting one never listed,
// changes nothing.
func TestBudgetWaitOrder(t *testing.T) {
	var b budget
	cs := make([]*conn, 6)
	for i := range cs {
		cs[i] = &conn{}
		b.enlist(cs[i])
	}
	b.enlist(cs[2]) // already waiting: keeps its place
	b.forget(cs[0])
	b.forget(cs[3])
	b.forget(cs[5])
	b.forget(cs[3])
	b.forget(&conn{})
	if n := b.waiting(t); n != 3 {
		t.Fatalf("%d waiting, want 3", n)
	}
	got := b.take()
	if want := []*conn{cs[1], cs[2], cs[4]}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("woke %v, want %v", got, want)
	}
	for _, c := range got {
		if c.budgetWait {
			t.Fatalf("%p still marked waiting after it was woken", c)
		}
	}
	if n := b.waiting(t); n != 0 {
		t.Fatalf("%d waiting after all were woken", n)
	}
	if got := b.take(); len(got) != 0 {
		t.Fatalf("woke %v from an empty list", got)
	}

	// Woken ones wait again, behind any that came meanwhile.
	b.enlist(cs[0])
	b.enlist(cs[4])
	b.enlist(cs[1])
	b.forget(cs[1]) // woken earlier, closed now: only its new entry goes
	b.enlist(cs[5])
	if n := b.waiting(t); n != 3 {
		t.Fatalf("%d waiting, want 3", n)
	}
	if got, want := b.take(), []*conn{cs[0], cs[4], cs[5]}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("woke %v, want %v", got, want)
	}
}

// BenchmarkBudgetForget: a flood of n connections waiting for the budget
// (-max-queued-request-bytes reached) that all close costs O(1) each under
// the lock every loop shares, not O(waiters).
func BenchmarkBudgetForget(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cs := make([]*conn, n)
			for i := range cs {
				cs[i] = &conn{}
			}
			for b.Loop() {
				var m budget
				for _, c := range cs {
					m.enlist(c)
				}
				for _, c := range cs {
					m.forget(c)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/conn")
		})
	}
}
