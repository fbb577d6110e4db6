package kafka

// Password checks off the event loop, bounded and fair between clients.
//
// A PLAIN check derives a key from the password sent (PBKDF2 with the
// user's SCRAM iteration count: milliseconds of CPU), so a crowd of
// clients sending passwords, right or wrong, can buy the broker's CPU for
// the price of a TCP connection each. Checks therefore run on at most
// Config.SASLMaxVerifications goroutines (default half the cores: the rest
// keeps serving authenticated clients), and wait in one queue per client
// address (an IPv6 address counts by its /64, what one host is usually
// given), served round-robin: one address sending a thousand passwords
// delays another address's one check by one check per busy address, not
// by a thousand. A queued check whose connection has closed (the client
// gave up, or the authentication deadline closed it) is dropped without
// doing the work. The queue is bounded (Config.SASLMaxQueuedVerifications):
// when full, a new check evicts the newest of the longest address queue,
// or is refused when its own address's queue is that long; an evicted or
// refused check fails like a wrong password.
//
// KIP-306 (connection.failed.authentication.delay.ms): a failed
// authentication is answered Config.SASLFailedAuthDelay late, with a
// timer (no goroutine waits), and the connection closes after the answer;
// a frame it sends meanwhile is never served. A client retrying
// a password as fast as it can on one connection after another then gets
// at most one answer per delay per connection.

import (
	"context"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSASLMaxQueuedVerifications is Config.SASLMaxQueuedVerifications'
// default: about 100 bytes each while they wait.
const DefaultSASLMaxQueuedVerifications = 4096

// DefaultSASLFailedAuthDelay is the -sasl-failed-auth-delay default
// (Kafka's connection.failed.authentication.delay.ms is 100 ms).
const DefaultSASLFailedAuthDelay = 100 * time.Millisecond

// DefaultSASLMaxVerifications is Config.SASLMaxVerifications' default:
// half the cores, at least one.
func DefaultSASLMaxVerifications() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// verifyTask is one queued password check.
type verifyTask struct {
	ctx context.Context // the connection's: done once it closed
	run func()          // the check and its answer
	// fail answers the check as failed without doing it (evicted from a
	// full queue, or the connection closed).
	fail func()
}

// addrQueue is one client address's queued checks, oldest first.
type addrQueue struct {
	key   netip.Addr
	tasks []verifyTask
	head  int
}

func (q *addrQueue) len() int { return len(q.tasks) - q.head }

// verifier runs password checks: at most maxWorkers at once, round-robin
// over client addresses.
type verifier struct {
	maxWorkers int
	maxQueued  int

	mu      sync.Mutex
	byAddr  map[netip.Addr]*addrQueue // non-empty queues; guarded by mu
	ready   []*addrQueue              // the same queues in service order; guarded by mu
	turn    int                       // index in ready served next; guarded by mu
	queued  int                       // checks waiting, all addresses; guarded by mu
	running int                       // worker goroutines; guarded by mu

	// Counters for metrics; atomic.
	depth      atomic.Int64  // checks waiting (queued, for readers without mu)
	dropped    atomic.Uint64 // dropped unchecked: the connection had closed
	overflowed atomic.Uint64 // evicted or refused: the queue was full
}

func newVerifier(workers, queued int) *verifier {
	return &verifier{maxWorkers: max(1, workers), maxQueued: max(1, queued), byAddr: map[netip.Addr]*addrQueue{}}
}

// submit queues t under key. Any goroutine; never blocks. A task evicted
// or refused because the queue is full is failed before submit returns.
func (v *verifier) submit(key netip.Addr, t verifyTask) {
	var evicted verifyTask
	v.mu.Lock()
	q := v.byAddr[key]
	if v.queued >= v.maxQueued {
		// Full: take the place of the newest check of the longest queue,
		// unless that queue is this address's own (then this one goes).
		var longest *addrQueue
		for _, o := range v.ready {
			if longest == nil || o.len() > longest.len() {
				longest = o
			}
		}
		if q != nil && q.len() >= longest.len() {
			v.mu.Unlock()
			v.overflowed.Add(1)
			t.fail()
			return
		}
		evicted = longest.tasks[len(longest.tasks)-1]
		longest.tasks[len(longest.tasks)-1] = verifyTask{}
		longest.tasks = longest.tasks[:len(longest.tasks)-1]
		v.queued--
		if longest.len() == 0 {
			v.remove(longest)
		}
	}
	if q == nil {
		q = &addrQueue{key: key}
		v.byAddr[key] = q
		v.ready = append(v.ready, q)
	}
	if q.head > 0 && q.head >= len(q.tasks)/2 {
		n := copy(q.tasks, q.tasks[q.head:])
		clear(q.tasks[n:])
		q.tasks, q.head = q.tasks[:n], 0
	}
	q.tasks = append(q.tasks, t)
	v.queued++
	v.depth.Store(int64(v.queued))
	start := v.running < v.maxWorkers
	if start {
		v.running++
	}
	v.mu.Unlock()
	if evicted.fail != nil {
		v.overflowed.Add(1)
		evicted.fail()
	}
	if start {
		go v.work()
	}
}

// remove takes the empty queue q out of service. mu held.
func (v *verifier) remove(q *addrQueue) {
	delete(v.byAddr, q.key)
	for i, o := range v.ready {
		if o == q {
			copy(v.ready[i:], v.ready[i+1:])
			v.ready[len(v.ready)-1] = nil
			v.ready = v.ready[:len(v.ready)-1]
			if i < v.turn {
				v.turn--
			}
			break
		}
	}
	if v.turn >= len(v.ready) {
		v.turn = 0
	}
}

// next takes the next address's oldest check, or reports there is none
// (and the worker exits). mu held.
func (v *verifier) next() (verifyTask, bool) {
	if v.queued == 0 {
		v.running--
		return verifyTask{}, false
	}
	q := v.ready[v.turn]
	t := q.tasks[q.head]
	q.tasks[q.head] = verifyTask{}
	q.head++
	v.queued--
	v.depth.Store(int64(v.queued))
	if q.len() == 0 {
		v.remove(q) // the next queue slides into this turn
	} else {
		v.turn = (v.turn + 1) % len(v.ready)
	}
	return t, true
}

func (v *verifier) work() {
	for {
		v.mu.Lock()
		t, ok := v.next()
		v.mu.Unlock()
		if !ok {
			return
		}
		if t.ctx.Err() != nil {
			v.dropped.Add(1)
			t.fail()
			continue
		}
		t.run()
	}
}

// answerFailed runs answer (a failed authentication's answer, which
// closes the connection) after Config.SASLFailedAuthDelay, on a timer:
// at once when there is no delay or the connection has already closed.
func (h *Handler) answerFailed(r *request, answer func()) {
	d := h.cfg.SASLFailedAuthDelay
	if d <= 0 || r.nr.Context().Err() != nil {
		answer()
		return
	}
	time.AfterFunc(d, answer)
}

// countSASL counts one finished authentication (or failed step).
func (h *Handler) countSASL(mech string, ok bool) {
	for i, m := range saslMechanisms {
		if m == mech {
			res := 0
			if !ok {
				res = 1
			}
			h.saslChecks[i][res].Add(1)
			return
		}
	}
}

// SASLMetrics are the authentication counters (metrics leaf package).
type SASLMetrics struct {
	// Checks counts finished authentications by mechanism and result
	// ("ok", "failed"); failures include malformed tokens and checks
	// evicted from a full queue.
	Checks map[[2]string]uint64
	// Queued is the password checks waiting for their turn.
	Queued int64
	// Dropped counts queued checks dropped without doing the work
	// because their connection had closed.
	Dropped uint64
	// Overflowed counts checks failed unchecked because the queue was full.
	Overflowed uint64
}

// SASLMetrics reads the authentication counters.
func (h *Handler) SASLMetrics() SASLMetrics {
	m := SASLMetrics{Checks: map[[2]string]uint64{}}
	for i, mech := range saslMechanisms {
		m.Checks[[2]string{mech, "ok"}] = h.saslChecks[i][0].Load()
		m.Checks[[2]string{mech, "failed"}] = h.saslChecks[i][1].Load()
	}
	m.Queued = h.verifier.depth.Load()
	m.Dropped = h.verifier.dropped.Load()
	m.Overflowed = h.verifier.overflowed.Load()
	return m
}
