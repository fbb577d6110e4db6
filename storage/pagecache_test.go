package storage

import (
	"testing"

	"github.com/klite/klite/vfs"
)

// dropRecorder is a vfs.File that records DropCache calls.
type dropRecorder struct {
	vfs.File
	drops [][2]int64
}

func (d *dropRecorder) Close() error { return nil }

func (d *dropRecorder) DropCache(off, n int64) error {
	d.drops = append(d.drops, [2]int64{off, n})
	return nil
}

func TestCacheWindowDropsOldestBeyondBudget(t *testing.T) {
	const mib = 1 << 20
	a, b := &dropRecorder{}, &dropRecorder{}
	segA, segB := newSegment(1, "a", a), newSegment(2, "b", b)
	w := cacheWindow{budget: 16 * mib}

	// 20 MiB of segment a in 1 MiB syncs: the window drops nothing until
	// it is a whole step over budget.
	for i := int64(0); i < 20; i++ {
		addTrim(&w, segA, i*mib, (i+1)*mib)
	}
	if len(a.drops) != 0 {
		t.Fatalf("dropped %v before the window was a step over its budget", a.drops)
	}
	// 4 MiB of segment b: 24 MiB written, a whole step over: the oldest
	// 8 MiB of a go.
	addTrim(&w, segB, 0, 4*mib)
	if len(a.drops) != 1 || a.drops[0] != [2]int64{0, 8 * mib} || len(b.drops) != 0 {
		t.Fatalf("drops a=%v b=%v, want a=[[0 %d]] b=[]", a.drops, b.drops, 8*mib)
	}
	// 4 MiB more is under a step over: nothing goes.
	addTrim(&w, segB, 4*mib, 8*mib)
	if len(a.drops) != 1 || w.total != 20*mib {
		t.Fatalf("drops a=%v, total %d: want one drop, 20 MiB kept", a.drops, w.total)
	}
	// 16 MiB more of b pushes out the rest of a (12 MiB) and 8 MiB of b.
	addTrim(&w, segB, 8*mib, 24*mib)
	if len(a.drops) != 2 || a.drops[1] != [2]int64{8 * mib, 12 * mib} {
		t.Fatalf("drops a=%v, want the rest of a dropped", a.drops)
	}
	if len(b.drops) != 1 || b.drops[0] != [2]int64{0, 8 * mib} {
		t.Fatalf("drops b=%v, want [[0 %d]]", b.drops, 8*mib)
	}
	if w.total != 16*mib || len(w.ranges) != 1 || w.ranges[0].seg != segB || w.ranges[0].from != 8*mib {
		t.Fatalf("total %d, ranges %+v: want 16 MiB of b from 8 MiB", w.total, w.ranges)
	}

	// A segment closed meanwhile (retention deleted it) is skipped.
	c, d := &dropRecorder{}, &dropRecorder{}
	segC, segD := newSegment(3, "c", c), newSegment(4, "d", d)
	w2 := cacheWindow{budget: mib}
	addTrim(&w2, segC, 0, 4*mib)
	segC.release()
	addTrim(&w2, segD, 0, 16*mib)
	if len(c.drops) != 0 {
		t.Fatalf("dropped %v from a closed segment", c.drops)
	}
	if len(d.drops) != 1 || d.drops[0] != [2]int64{0, 15 * mib} || w2.total != mib {
		t.Fatalf("drops d=%v total %d, want [[0 %d]] and 1 MiB kept", d.drops, w2.total, 15*mib)
	}
}

func TestCacheWindowOff(t *testing.T) {
	a := &dropRecorder{}
	w := cacheWindow{}
	addTrim(&w, newSegment(1, "a", a), 0, 1<<30)
	if len(a.drops) != 0 || len(w.ranges) != 0 {
		t.Fatalf("a window without a budget dropped %v / kept %v", a.drops, w.ranges)
	}
}

// addTrim is the syncer's order: record a durable range, then trim.
func addTrim(w *cacheWindow, seg *segment, from, to int64) {
	w.add(seg, from, to)
	w.trim()
}
