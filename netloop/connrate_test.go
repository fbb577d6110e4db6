package netloop

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// allowed is how many of tries connections from a at now r lets in.
func allowed(r *connRate, a net.Addr, now time.Time, tries int) int {
	n := 0
	for range tries {
		if r.allow(a, now) {
			n++
		}
	}
	return n
}

// TestConnRate: each address gets a second's worth of connections at
// once, then the rate; addresses (IPv6: /64s) are counted apart; refilled
// buckets are forgotten.
func TestConnRate(t *testing.T) {
	r := newConnRate(5)
	now := time.Unix(1000, 0)
	a := &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 1}
	b := &net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 1}
	if n := allowed(r, a, now, 20); n != 5 {
		t.Fatalf("burst: %d allowed, want 5", n)
	}
	if !r.allow(b, now) {
		t.Fatal("another address refused")
	}
	if r.allow(a, now.Add(100*time.Millisecond)) {
		t.Fatal("allowed before a token came back")
	}
	if !r.allow(a, now.Add(200*time.Millisecond)) {
		t.Fatal("refused after 200 ms at 5/s")
	}
	v6a := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}
	v6b := &net.TCPAddr{IP: net.ParseIP("2001:db8::ffff:1"), Port: 1}
	for range 5 {
		r.allow(v6a, now)
	}
	if r.allow(v6b, now) {
		t.Fatal("another address of the same /64 has its own bucket")
	}
	r.mu.Lock()
	r.sweep(now.Add(10 * time.Second).UnixNano())
	left := len(r.buckets)
	r.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d buckets left after they all refilled", left)
	}
	off := newConnRate(0)
	for i := range 10 {
		if !off.allow(a, now) {
			t.Fatalf("rate 0 refused connection %d", i)
		}
	}
}

// TestClientKey: IPv4 addresses are their own keys, IPv6 ones share their /64.
func TestClientKey(t *testing.T) {
	key := func(s string) netip.Addr {
		k, _ := ClientKey(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)))
		return k
	}
	if a, b := key("10.0.0.1:1"), key("10.0.0.2:1"); a == b {
		t.Fatalf("two IPv4 addresses share key %v", a)
	}
	if a, b := key("10.0.0.1:1"), key("[::ffff:10.0.0.1]:2"); a != b {
		t.Fatalf("an IPv4 address and its IPv4-mapped form: %v and %v", a, b)
	}
	if a, b := key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:2:ffff::9]:1"); a != b {
		t.Fatalf("one /64: keys %v and %v", a, b)
	}
	if a, b := key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:3::1]:1"); a == b {
		t.Fatalf("two /64s share key %v", a)
	}
}

// TestConnRateFullForgets: once connRateMaxTracked addresses have
// buckets, the ones that have since refilled are still forgotten, so a
// new address is counted again. Before the fix the sweep waited for the
// map to reach twice its size, which the cap never let it reach: after
// one burst from that many addresses, every new address went untracked
// (unlimited) for the life of the process.
func TestConnRateFullForgets(t *testing.T) {
	r := newConnRate(2)
	now := time.Unix(1000, 0)
	for i := range connRateMaxTracked + 1 { // the last one finds the map full of fresh buckets
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		r.allow(net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 1)), now)
	}
	later := now.Add(10 * time.Second)
	x := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}
	if n := allowed(r, x, later, 10); n != 2 {
		t.Fatalf("a new address after the map filled and refilled: %d of 10 allowed at once, want 2", n)
	}
}
