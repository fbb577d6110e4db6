package kafka

import (
	"sync"
	"sync/atomic"
	"testing"
)

// The runner runs every task, never on more than max goroutines at once,
// and leaves no goroutine behind when the queue is empty.
func TestRunnerBounded(t *testing.T) {
	const max, tasks = 4, 2000
	rn := &runner{max: max}
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	release := make(chan struct{})
	wg.Add(tasks)
	for i := range tasks {
		rn.submit(func() {
			defer wg.Done()
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if i < max {
				<-release // the first ones hold their goroutines while the rest queue
			}
			running.Add(-1)
		})
	}
	close(release)
	wg.Wait()
	if p := peak.Load(); p > max {
		t.Fatalf("%d tasks ran at once, max %d", p, max)
	}
	eventually(t, "workers gone", func() bool {
		rn.mu.Lock()
		defer rn.mu.Unlock()
		return rn.running == 0 && len(rn.q) == 0
	})
}
