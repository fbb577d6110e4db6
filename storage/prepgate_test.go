package storage

import (
	"testing"
	"time"

	"github.com/klite/klite/vfs"
)

func TestWALActivityGate(t *testing.T) {
	var a walActivity
	a.begin()
	if a.idle() {
		t.Fatal("idle while an fdatasync runs")
	}
	a.end()
	ended := time.Duration(a.lastEnd.Load())
	if a.idleAt(ended + zeroIdleGap - 1) {
		t.Fatal("idle before zeroIdleGap passed since an fdatasync ended")
	}
	if !a.idleAt(ended + zeroIdleGap) {
		t.Fatal("not idle zeroIdleGap after an fdatasync ended")
	}
	eventually(t, "idle after the gap", a.idle)

	// A preparation that never sees an idle WAL writes nothing and stops
	// when hurried.
	a.begin()
	mem := vfs.NewMemFS()
	if err := mem.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	f, err := mem.Create("/d/z")
	if err != nil {
		t.Fatal(err)
	}
	task := &prepTask{hurry: make(chan struct{})}
	close(task.hurry)
	if err := task.zeroFill(&a, f, 4*zeroStepBytes, nil); err != nil {
		t.Fatal(err)
	}
	if size, _ := f.Size(); size != 0 {
		t.Fatalf("zero-fill wrote %d bytes while the WAL was busy", size)
	}
	a.end()

	// Idle: it fills the whole file.
	task = &prepTask{hurry: make(chan struct{})}
	if err := task.zeroFill(&a, f, 4*zeroStepBytes, nil); err != nil {
		t.Fatal(err)
	}
	if size, _ := f.Size(); size != 4*zeroStepBytes {
		t.Fatalf("idle zero-fill wrote %d bytes, want %d", size, 4*zeroStepBytes)
	}
}

// TestZeroFillBudget: zero steps of every shard share one budget of
// zeroBytesPerSec: reserved slots are a step's time apart however many
// preparations ask at once, and a pause resets nothing but the clock.
func TestZeroFillBudget(t *testing.T) {
	var a walActivity
	step := time.Duration(zeroStepBytes * int64(time.Second) / zeroBytesPerSec)
	now := 10 * time.Second
	for i := range 4 { // two shards asking twice each at the same instant
		if got, want := a.zeroSlot(now, zeroStepBytes), now+time.Duration(i)*step; got != want {
			t.Fatalf("slot %d at %v, want %v", i, got, want)
		}
	}
	later := now + time.Minute // after an idle minute a step may start at once
	if got := a.zeroSlot(later, zeroStepBytes); got != later {
		t.Fatalf("slot after a pause at %v, want %v", got, later)
	}
}
