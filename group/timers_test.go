package group

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Timers re-armed and removed in any order pop in deadline order, and only
// the armed ones.
func TestTimerHeapOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(0, 0)
	var h timerHeap
	ts := make([]*timer, 200)
	want := map[*timer]time.Time{}
	for i := range ts {
		ts[i] = newTimer(nil)
	}
	for range 2000 {
		tm := ts[rng.IntN(len(ts))]
		if rng.IntN(4) == 0 {
			h.remove(tm)
			delete(want, tm)
			continue
		}
		at := base.Add(time.Duration(rng.IntN(1000)) * time.Second)
		h.set(tm, at)
		want[tm] = at
	}
	for tm := range want {
		if !tm.armed() {
			t.Fatal("armed timer reports unarmed")
		}
	}
	var last time.Time
	for n := 0; len(h) > 0; n++ {
		tm := h.pop()
		if tm.armed() || tm.at != want[tm] || tm.at.Before(last) {
			t.Fatalf("pop %d: at %v armed %v, want %v not before %v", n, tm.at, tm.armed(), want[tm], last)
		}
		last = tm.at
		delete(want, tm)
	}
	if len(want) != 0 {
		t.Fatalf("%d armed timers never popped", len(want))
	}
}
