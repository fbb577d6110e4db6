package kafka

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

// blockedVerifier is a verifier with one worker held on a first task, so
// tests can queue behind it and then watch the order checks run in.
func blockedVerifier(t *testing.T, queued int) (v *verifier, release func(), order func() []string, task func(name string, ctx context.Context) verifyTask) {
	v = newVerifier(1, queued)
	var mu sync.Mutex
	var ran []string
	var wg sync.WaitGroup
	task = func(name string, ctx context.Context) verifyTask {
		wg.Add(1)
		return verifyTask{ctx: ctx,
			run:  func() { mu.Lock(); ran = append(ran, name); mu.Unlock(); wg.Done() },
			fail: func() { mu.Lock(); ran = append(ran, "fail:"+name); mu.Unlock(); wg.Done() },
		}
	}
	gate := make(chan struct{})
	started := make(chan struct{})
	wg.Add(1)
	v.submit(netip.Addr{}, verifyTask{ctx: context.Background(), run: func() { close(started); <-gate; wg.Done() }})
	<-started
	return v, func() { close(gate); wg.Wait() }, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(ran) }, task
}

// TestVerifierFair: one address with many queued checks delays another
// address's check by one turn, not by all of them.
func TestVerifierFair(t *testing.T) {
	v, release, order, task := blockedVerifier(t, 100)
	flood, other := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	bg := context.Background()
	for _, n := range []string{"f1", "f2", "f3", "f4"} {
		v.submit(flood, task(n, bg))
	}
	v.submit(other, task("o1", bg))
	release()
	if got, want := order(), []string{"f1", "o1", "f2", "f3", "f4"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// TestVerifierDropsClosed: a queued check whose connection has closed
// fails without running.
func TestVerifierDropsClosed(t *testing.T) {
	v, release, order, task := blockedVerifier(t, 100)
	ctx, cancel := context.WithCancel(context.Background())
	a := netip.MustParseAddr("10.0.0.1")
	v.submit(a, task("closed", ctx))
	v.submit(a, task("open", context.Background()))
	cancel()
	release()
	if got, want := order(), []string{"fail:closed", "open"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if v.dropped.Load() != 1 {
		t.Fatalf("dropped %d, want 1", v.dropped.Load())
	}
}

// TestVerifierOverflow: when the queue is full a new check takes the
// place of the newest check of the longest queue, and fails itself when
// its own address's queue is the longest.
func TestVerifierOverflow(t *testing.T) {
	v, release, order, task := blockedVerifier(t, 3)
	flood, other := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	bg := context.Background()
	for _, n := range []string{"f1", "f2", "f3", "f4"} { // f4: refused, its queue is the longest
		v.submit(flood, task(n, bg))
	}
	v.submit(other, task("o1", bg)) // evicts f3
	release()
	if got, want := order(), []string{"fail:f4", "fail:f3", "f1", "o1", "f2"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if v.overflowed.Load() != 2 || v.depth.Load() != 0 {
		t.Fatalf("overflowed %d, depth %d; want 2, 0", v.overflowed.Load(), v.depth.Load())
	}
}

// TestVerifierEveryTaskOnce: submitted from many goroutines, over many
// addresses, with a small queue, some connections closed, every task
// either runs or fails, exactly once, and the queue ends empty.
func TestVerifierEveryTaskOnce(t *testing.T) {
	const (
		submitters = 8
		each       = 500
	)
	v := newVerifier(2, 16)
	closed, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := make(map[int]int, submitters*each)
	mark := func(id int) { mu.Lock(); seen[id]++; mu.Unlock(); wg.Done() }
	var subs sync.WaitGroup
	for s := range submitters {
		subs.Add(1)
		go func() {
			defer subs.Done()
			for i := range each {
				id := s*each + i
				ctx := context.Background()
				if id%7 == 0 {
					ctx = closed
				}
				key := netip.AddrFrom4([4]byte{10, 0, byte(s), byte(i % 5)})
				wg.Add(1)
				v.submit(key, verifyTask{ctx: ctx, run: func() { mark(id) }, fail: func() { mark(id) }})
			}
		}()
	}
	subs.Wait()
	wg.Wait()
	if len(seen) != submitters*each {
		t.Fatalf("%d tasks answered of %d", len(seen), submitters*each)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("task %d answered %d times", id, n)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.queued != 0 || len(v.ready) != 0 || len(v.byAddr) != 0 || v.depth.Load() != 0 {
		t.Fatalf("left: queued %d, ready %d, byAddr %d, depth %d", v.queued, len(v.ready), len(v.byAddr), v.depth.Load())
	}
}
