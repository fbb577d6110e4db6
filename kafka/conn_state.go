package kafka

// Per-connection state: what the handler keeps for one connection, found
// from a request without a map lookup (netloop.Conn.SetValue), and the
// connection's identity with the ACL decisions made for it.
//
// An identity (principal, client host, decisions) is made once per
// authentication: on a SASL listener when authentication succeeds (a
// KIP-368 re-authentication makes a fresh one, so no decision outlives the
// authentication it was made for), elsewhere on the connection's first
// check. Decisions carry the acl.Authorizer generation they were made
// under; an ACL change bumps the generation, so every cached decision of
// every connection goes stale at once without anyone walking the
// connections.
//
// Concurrency: checks run on the event loop and on handler goroutines,
// possibly at once for one connection (pipelined requests). Nothing here
// takes a lock: the identity is behind an atomic pointer, each cache slot
// is an atomic pointer to an immutable decision, and racing writers only
// replace one valid decision with another.

import (
	"context"
	"hash/maphash"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/netloop"
)

// connState is the handler's state for one connection.
type connState struct {
	sasl *saslConn // on a SASL listener, else nil; immutable
	// ident is who the connection acts as; nil until the first check, and
	// on a SASL listener until authentication succeeds; atomic.
	ident atomic.Pointer[identity]
}

// ConnOpened implements netloop.Opener: every connection gets its state,
// attached to the netloop connection, and a connection on a SASL listener
// its authentication deadline.
func (h *Handler) ConnOpened(c netloop.Conn) {
	ci := c.Info()
	cs := &connState{}
	c.SetValue(cs)
	if !h.listenerOf(ci).Protocol.SASL() {
		return
	}
	cs.sasl = h.newSASLConn(c.Context(), func() {
		h.authWarn.Warn().Uint64("conn", ci.ID).Stringer("remote", ci.Remote).
			Dur("timeout", h.cfg.SASLAuthTimeout).
			Msg("kafka: SASL authentication not finished in time; closing connection")
		c.Close()
	})
}

// connOf is r's connection state. Serve sets r.cs before anything else
// runs, so on the request's later goroutines this only reads it.
func (h *Handler) connOf(r *request) *connState {
	if r.cs == nil {
		r.cs = h.lookupConn(r.nr)
	}
	return r.cs
}

// lookupConn finds nr's connection state: the value netloop carries, or,
// for a connection netloop did not announce (a handler driven without
// netloop, as in tests), an entry by connection id made on first use and
// dropped when the request's context (the connection's) ends.
func (h *Handler) lookupConn(nr *netloop.Request) *connState {
	if cs, ok := nr.ConnValue().(*connState); ok {
		return cs
	}
	id := nr.Conn.ID
	if v, ok := h.unannounced.Load(id); ok {
		return v.(*connState)
	}
	cs := &connState{}
	ctx := nr.Context()
	if h.listenerOf(nr.Conn).Protocol.SASL() {
		cs.sasl = h.newSASLConn(ctx, nil)
	}
	if v, loaded := h.unannounced.LoadOrStore(id, cs); loaded {
		return v.(*connState)
	}
	context.AfterFunc(ctx, func() { h.unannounced.CompareAndDelete(id, cs) })
	return cs
}

// identity is a principal connected from a host, with the decisions made
// for it. principal and host never change; a new authentication makes a
// new identity.
type identity struct {
	principal string
	host      string // the client's IP as ACL hosts name it
	decisions [decisionSets * decisionWays]atomic.Pointer[decision]
}

// The decision cache of a connection is set-associative: a decision's hash
// picks one of decisionSets sets of decisionWays slots. 16 slots cover the
// topics, group and cluster checks of a typical producer or consumer; a
// client touching more keeps its most recent decisions per set and pays a
// full check (one Authorizer lookup) on the others.
const (
	decisionSetBits = 3
	decisionSets    = 1 << decisionSetBits
	decisionWays    = 2
	evictOneIn      = 8
)

// decision is one cached ACL decision. Immutable once published.
type decision struct {
	gen     uint64 // acl.Authorizer generation it was made under
	name    string // the resource name: a private copy, never the frame's bytes
	op      acl.Operation
	rt      acl.ResourceType
	allowed bool
}

func newIdentity(principal string, ci netloop.ConnInfo) *identity {
	return &identity{principal: principal, host: hostOf(ci)}
}

// hostOf is the client's IP address as ACL hosts name it.
func hostOf(ci netloop.ConnInfo) string {
	if ta, ok := ci.Remote.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return ""
}

// identityOf is who r's connection acts as; nil on a SASL listener before
// authentication.
func (h *Handler) identityOf(r *request) *identity {
	cs := h.connOf(r)
	if id := cs.ident.Load(); id != nil {
		return id
	}
	if cs.sasl != nil {
		return nil // set by authentication (saslStep)
	}
	principal := principalAnonymous
	if p := TLSPrincipal(r.nr.Conn); p != "" {
		principal = p
	}
	id := newIdentity(principal, r.nr.Conn)
	if cs.ident.CompareAndSwap(nil, id) {
		return id
	}
	return cs.ident.Load()
}

// decisionSeed keys the slot hash; per process, so clients cannot choose
// names that collide.
var decisionSeed = maphash.MakeSeed()

// authorize is a's decision for id, from the cache when it holds one made
// under a's current generation.
func (id *identity) authorize(a *acl.Authorizer, op acl.Operation, rt acl.ResourceType, name string) bool {
	gen := a.Generation()
	set := id.set(op, rt, name)
	for i := range set {
		if d := set[i].Load(); d != nil && d.gen == gen && d.op == op && d.rt == rt && d.name == name {
			return d.allowed
		}
	}
	allowed, gen := a.Decide(id.principal, id.host, op, rt, name)
	// An empty or stale way takes the decision. When both hold current
	// ones, the client is checking more resources than the set holds: one
	// miss in evictOneIn evicts the older (so a resource checked often
	// soon gets in, and a working set that moves on is followed), the
	// others are decided uncached, so a client cycling over many topics
	// does not allocate on every check.
	d0, d1 := set[0].Load(), set[1].Load()
	switch {
	case d0 == nil || d0.gen != gen:
		set[0].Store(newDecision(gen, op, rt, name, allowed))
	case d1 == nil || d1.gen != gen:
		set[1].Store(newDecision(gen, op, rt, name, allowed))
	case rand.Uint32()%evictOneIn == 0:
		set[1].Store(d0)
		set[0].Store(newDecision(gen, op, rt, name, allowed))
	}
	return allowed
}

func newDecision(gen uint64, op acl.Operation, rt acl.ResourceType, name string, allowed bool) *decision {
	return &decision{gen: gen, name: strings.Clone(name), op: op, rt: rt, allowed: allowed}
}

// set is the ways the decision (op, rt, name) may be cached in: the top
// bits of a multiplicative mix of the name's hash with op and rt.
func (id *identity) set(op acl.Operation, rt acl.ResourceType, name string) []atomic.Pointer[decision] {
	h := maphash.String(decisionSeed, name) + uint64(op)*0x9e3779b97f4a7c15 + uint64(rt)*0xbf58476d1ce4e5b9
	i := int(h>>(64-decisionSetBits)) * decisionWays
	return id.decisions[i : i+decisionWays]
}
