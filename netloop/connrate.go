package netloop

// Per-address connection creation rate (KIP-612's connection_creation_rate
// for IPs, as one broker-wide limit): each client address has a token
// bucket holding one second's worth of connections; a connection accepted
// with the bucket empty is closed at once (CloseConnRate), before any byte
// of it is read. An IPv6 address counts by its /64, what one host is
// usually given. Buckets that have refilled are forgotten, so the state is
// bounded by the addresses that connected within about a second; past
// connRateMaxTracked of those, new addresses are let in untracked rather
// than refused (an attacker with that many addresses is not stopped by a
// per-address limit anyway).

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// connRateMaxTracked bounds the addresses with a bucket (about 64 bytes each).
const connRateMaxTracked = 1 << 17

type connRate struct {
	rate  float64 // connections per second per address; 0: off
	burst float64 // bucket size: one second's worth, at least 1

	mu        sync.Mutex
	buckets   map[netip.Addr]*rateBucket // guarded by mu
	nextSweep int                        // sweep refilled buckets when the map reaches this size; guarded by mu
	lastSweep int64                      // nanotime of the last sweep; guarded by mu
}

type rateBucket struct {
	tokens float64
	last   int64 // nanotime of the last refill
}

func newConnRate(perSecond float64) *connRate {
	return &connRate{rate: perSecond, burst: max(1, perSecond), buckets: map[netip.Addr]*rateBucket{}, nextSweep: 1024}
}

// ClientKey is the address a client at a counts under, for the connection
// rate here and kafka's password-check fairness: the IP for IPv4, the /64
// for IPv6; ok false for an address that is not TCP.
func ClientKey(a net.Addr) (key netip.Addr, ok bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip := ta.AddrPort().Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, true
}

// allow takes a token for a connection from a, and reports whether there
// was one. Any goroutine.
func (r *connRate) allow(a net.Addr, now time.Time) bool {
	if r == nil || r.rate <= 0 {
		return true
	}
	key, ok := ClientKey(a)
	if !ok {
		return true
	}
	t := now.UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[key]
	if b == nil {
		// Full, the map cannot reach nextSweep: sweep once a drained
		// bucket could have refilled, or it stays full for good.
		full := len(r.buckets) >= connRateMaxTracked && float64(t-r.lastSweep) >= r.burst/r.rate*1e9
		if len(r.buckets) >= r.nextSweep || full {
			r.sweep(t)
		}
		if len(r.buckets) >= connRateMaxTracked {
			return true
		}
		b = &rateBucket{tokens: r.burst, last: t}
		r.buckets[key] = b
	}
	b.tokens = min(r.burst, b.tokens+float64(t-b.last)/1e9*r.rate)
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets the buckets that have refilled: a new one starts the same.
// mu held.
func (r *connRate) sweep(t int64) {
	for k, b := range r.buckets {
		if b.tokens+float64(t-b.last)/1e9*r.rate >= r.burst {
			delete(r.buckets, k)
		}
	}
	r.nextSweep = max(1024, 2*len(r.buckets))
	r.lastSweep = t
}
