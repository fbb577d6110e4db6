package acl

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Config configures an Authorizer.
type Config struct {
	// SuperUsers are principals ("User:admin") allowed everything.
	SuperUsers []string
	// AllowIfNoACL opens a resource that no binding matches at all
	// (Kafka's allow.everyone.if.no.acl.found).
	AllowIfNoACL bool
}

// Authorizer decides requests against a set of bindings. Authorize takes
// no lock: it reads an immutable snapshot behind an atomic pointer, which
// changes replace whole (copy on write). Changes are serialized among
// themselves; the caller persists them (and orders persistence and the
// change under its own lock).
type Authorizer struct {
	super        map[string]bool // immutable
	allowIfNoACL bool            // immutable

	snap atomic.Pointer[snapshot]

	mu  sync.Mutex           // serializes changes
	set map[Binding]struct{} // the bindings, guarded by mu
}

// snapshot is an immutable index of the bindings.
type snapshot struct {
	gen   uint64
	list  []Binding // sorted (see compareBindings)
	types [numResourceTypes]*typeIndex
}

// typeIndex holds the bindings of one resource type: literal ones by name
// (the wildcard under "*"), prefixed ones by prefix, and the distinct
// prefix lengths, so a lookup costs one map probe per length in use rather
// than one per prefix of the name.
//
// byPrincipal lists, per principal (the wildcard "User:*" under its own
// name), the positions in snapshot.list of its bindings of the type, so
// AuthorizeAny reads one principal's bindings rather than all.
type typeIndex struct {
	literal     map[string][]entry
	prefixed    map[string][]entry
	prefixLens  []int // ascending
	byPrincipal map[string][]int32
}

// entry is a binding's access control entry.
type entry struct {
	principal, host string
	op              Operation
	perm            Permission
}

// New returns an Authorizer with no bindings.
func New(cfg Config) *Authorizer {
	a := &Authorizer{super: map[string]bool{}, allowIfNoACL: cfg.AllowIfNoACL, set: map[Binding]struct{}{}}
	for _, p := range cfg.SuperUsers {
		a.super[p] = true
	}
	a.snap.Store(&snapshot{gen: 1})
	return a
}

// Generation changes (grows) whenever the bindings change: a decision
// cached with the generation it was made under is valid while
// Generation returns the same value.
func (a *Authorizer) Generation() uint64 { return a.snap.Load().gen }

// Authorize reports whether principal, connected from host, may perform
// op on the resource of type rt named name.
func (a *Authorizer) Authorize(principal, host string, op Operation, rt ResourceType, name string) bool {
	allowed, _ := a.Decide(principal, host, op, rt, name)
	return allowed
}

// Decide is Authorize, and the Generation of the bindings it decided on:
// a caller may keep the decision while Generation returns gen.
func (a *Authorizer) Decide(principal, host string, op Operation, rt ResourceType, name string) (allowed bool, gen uint64) {
	s := a.snap.Load()
	if a.super[principal] {
		return true, s.gen
	}
	if rt < 0 || rt >= numResourceTypes {
		return false, s.gen
	}
	ti := s.types[rt]
	if ti == nil {
		return a.allowIfNoACL, s.gen
	}
	c := check{principal: principal, host: host, op: op}
	if !c.scan(ti.literal[name]) || !c.scan(ti.literal[Wildcard]) {
		return false, s.gen
	}
	for _, n := range ti.prefixLens {
		if n > len(name) {
			break
		}
		if !c.scan(ti.prefixed[name[:n]]) {
			return false, s.gen
		}
	}
	if !c.found {
		return a.allowIfNoACL, s.gen
	}
	return c.allowed, s.gen
}

// check accumulates one decision over the entries of the matching
// patterns.
type check struct {
	principal, host string
	op              Operation
	found           bool // some binding matches the resource
	allowed         bool // some ALLOW applies
}

// scan returns false when an entry denies.
func (c *check) scan(es []entry) bool {
	if len(es) > 0 {
		c.found = true
	}
	for i := range es {
		e := &es[i]
		if !e.applies(c.principal, c.host) {
			continue
		}
		if e.perm == PermissionDeny {
			if denies(e.op, c.op) {
				return false
			}
		} else if !c.allowed && allows(e.op, c.op) {
			c.allowed = true
		}
	}
	return true
}

// applies reports whether e is about principal connected from host.
func (e *entry) applies(principal, host string) bool {
	return (e.principal == principal || e.principal == WildcardPrincipal && strings.HasPrefix(principal, "User:")) &&
		(e.host == host || e.host == Wildcard)
}

// denyIn reports whether an entry of es denies op to principal from host.
func denyIn(es []entry, principal, host string, op Operation) bool {
	for i := range es {
		if e := &es[i]; e.perm == PermissionDeny && denies(e.op, op) && e.applies(principal, host) {
			return true
		}
	}
	return false
}

// Bindings returns the bindings f matches, sorted.
func (a *Authorizer) Bindings(f Filter) []Binding {
	var out []Binding
	for _, b := range a.snap.Load().list {
		if f.Matches(b) {
			out = append(out, b)
		}
	}
	return out
}

// Len returns the number of bindings.
func (a *Authorizer) Len() int { return len(a.snap.Load().list) }

// Add adds bindings (present ones stay once). Callers validate first.
func (a *Authorizer) Add(bs ...Binding) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range bs {
		a.set[b] = struct{}{}
	}
	a.publish()
}

// Remove removes bindings (absent ones are ignored).
func (a *Authorizer) Remove(bs ...Binding) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range bs {
		delete(a.set, b)
	}
	a.publish()
}

// Replace sets the bindings to bs (a restart's restore).
func (a *Authorizer) Replace(bs []Binding) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.set = make(map[Binding]struct{}, len(bs))
	for _, b := range bs {
		a.set[b] = struct{}{}
	}
	a.publish()
}

// publish builds and stores a snapshot of a.set; mu must be held.
func (a *Authorizer) publish() {
	s := &snapshot{gen: a.snap.Load().gen + 1, list: make([]Binding, 0, len(a.set))}
	for b := range a.set {
		s.list = append(s.list, b)
	}
	slices.SortFunc(s.list, compareBindings)
	for i, b := range s.list {
		if b.ResourceType < 0 || b.ResourceType >= numResourceTypes {
			continue
		}
		ti := s.types[b.ResourceType]
		if ti == nil {
			ti = &typeIndex{literal: map[string][]entry{}, prefixed: map[string][]entry{}, byPrincipal: map[string][]int32{}}
			s.types[b.ResourceType] = ti
		}
		ti.byPrincipal[b.Principal] = append(ti.byPrincipal[b.Principal], int32(i))
		e := entry{principal: b.Principal, host: b.Host, op: b.Operation, perm: b.Permission}
		switch b.Pattern {
		case PatternLiteral:
			ti.literal[b.Name] = append(ti.literal[b.Name], e)
		case PatternPrefixed:
			if _, ok := ti.prefixed[b.Name]; !ok {
				ti.prefixLens = append(ti.prefixLens, len(b.Name))
			}
			ti.prefixed[b.Name] = append(ti.prefixed[b.Name], e)
		}
	}
	for _, ti := range s.types {
		if ti != nil {
			slices.Sort(ti.prefixLens)
			ti.prefixLens = slices.Compact(ti.prefixLens)
		}
	}
	a.snap.Store(s)
}

func compareBindings(x, y Binding) int {
	return cmp.Or(
		cmp.Compare(x.ResourceType, y.ResourceType),
		cmp.Compare(x.Pattern, y.Pattern),
		strings.Compare(x.Name, y.Name),
		strings.Compare(x.Principal, y.Principal),
		strings.Compare(x.Host, y.Host),
		cmp.Compare(x.Operation, y.Operation),
		cmp.Compare(x.Permission, y.Permission),
	)
}

// AuthorizeAny reports whether principal, from host, may perform op on at
// least one resource of type rt (Kafka's authorizeByResourceType, KIP-679:
// what InitProducerId asks of an idempotent producer, WRITE on any topic).
// An ALLOW counts unless a DENY for the same principal covers it: a literal
// DENY of the same name, a prefixed DENY of a prefix of its name, or the
// literal DENY "*". It reads the principal's own bindings and those of
// "User:*" (not every binding), and for each ALLOW a few index probes.
func (a *Authorizer) AuthorizeAny(principal, host string, op Operation, rt ResourceType) bool {
	allowed, _ := a.DecideAny(principal, host, op, rt)
	return allowed
}

// DecideAny is AuthorizeAny, and the Generation it decided on (see Decide).
func (a *Authorizer) DecideAny(principal, host string, op Operation, rt ResourceType) (allowed bool, gen uint64) {
	s := a.snap.Load()
	if a.super[principal] {
		return true, s.gen
	}
	if rt < 0 || rt >= numResourceTypes {
		return false, s.gen
	}
	ti := s.types[rt]
	if ti == nil {
		return a.allowIfNoACL, s.gen
	}
	if denyIn(ti.literal[Wildcard], principal, host, op) {
		return false, s.gen
	}
	if s.anyAllowed(ti, ti.byPrincipal[principal], principal, host, op) {
		return true, s.gen
	}
	if principal != WildcardPrincipal && strings.HasPrefix(principal, "User:") &&
		s.anyAllowed(ti, ti.byPrincipal[WildcardPrincipal], principal, host, op) {
		return true, s.gen
	}
	return false, s.gen
}

// anyAllowed reports whether one of the bindings at positions idx is an
// ALLOW of op for principal from host that no DENY covers.
func (s *snapshot) anyAllowed(ti *typeIndex, idx []int32, principal, host string, op Operation) bool {
	for _, i := range idx {
		b := &s.list[i]
		if b.Permission != PermissionAllow || !allows(b.Operation, op) || b.Host != host && b.Host != Wildcard {
			continue
		}
		if b.Pattern == PatternLiteral && denyIn(ti.literal[b.Name], principal, host, op) {
			continue
		}
		covered := false
		for _, n := range ti.prefixLens {
			if n > len(b.Name) {
				break
			}
			if denyIn(ti.prefixed[b.Name[:n]], principal, host, op) {
				covered = true
				break
			}
		}
		if !covered {
			return true
		}
	}
	return false
}
