package kafka

import "sync"

// DefaultFetchWorkers caps the goroutines reading for fetches.
const DefaultFetchWorkers = 64

// runner runs tasks on at most max goroutines, started on demand and gone
// when the queue is empty. Fetches use it rather than a goroutine each: a
// burst of tens of thousands of fetches (one connection may have
// MaxInflightRequests of them, and a produce wakes every long poll on its
// partition at once) would otherwise cost a goroutine stack apiece, 8 KiB
// or more, where a queued task costs a closure.
type runner struct {
	max int

	mu      sync.Mutex
	q       []func() // FIFO from head, guarded by mu
	head    int      // guarded by mu
	running int      // goroutines working the queue, guarded by mu
}

// submit queues fn. Any goroutine; never blocks.
func (rn *runner) submit(fn func()) {
	rn.mu.Lock()
	if rn.head > 0 && rn.head >= len(rn.q)/2 {
		n := copy(rn.q, rn.q[rn.head:])
		clear(rn.q[n:])
		rn.q, rn.head = rn.q[:n], 0
	}
	rn.q = append(rn.q, fn)
	start := rn.running < rn.max
	if start {
		rn.running++
	}
	rn.mu.Unlock()
	if start {
		go rn.work()
	}
}

func (rn *runner) work() {
	for {
		rn.mu.Lock()
		if rn.head == len(rn.q) {
			clear(rn.q)
			rn.q, rn.head = rn.q[:0], 0
			rn.running--
			rn.mu.Unlock()
			return
		}
		fn := rn.q[rn.head]
		rn.q[rn.head] = nil
		rn.head++
		rn.mu.Unlock()
		fn()
	}
}
