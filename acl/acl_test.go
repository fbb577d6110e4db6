package acl

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func lit(rt ResourceType, name, principal, host string, op Operation, perm Permission) Binding {
	return Binding{ResourceType: rt, Name: name, Pattern: PatternLiteral, Principal: principal, Host: host, Operation: op, Permission: perm}
}

func pre(rt ResourceType, name, principal, host string, op Operation, perm Permission) Binding {
	b := lit(rt, name, principal, host, op, perm)
	b.Pattern = PatternPrefixed
	return b
}

const (
	alice = "User:alice"
	bob   = "User:bob"
	ip1   = "10.0.0.1"
	ip2   = "10.0.0.2"
)

var (
	allow = PermissionAllow
	deny  = PermissionDeny
	topic = ResourceTopic
)

type authzCase struct {
	name      string
	cfg       Config
	acls      []Binding
	principal string
	host      string
	op        Operation
	rt        ResourceType
	res       string
	want      bool
}

func TestAuthorize(t *testing.T) {
	cases := []authzCase{
		{name: "no acls: closed", principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "no acls, allow-if-no-acl: open", cfg: Config{AllowIfNoACL: true}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: true},
		{name: "super user, no acls", cfg: Config{SuperUsers: []string{alice}}, principal: alice, host: ip1, op: OpAlter, rt: ResourceCluster, res: ClusterName, want: true},
		{name: "super user beats deny", cfg: Config{SuperUsers: []string{alice}}, acls: []Binding{lit(topic, "t", alice, "*", OpAll, deny)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: true},
		{name: "other principal is not super", cfg: Config{SuperUsers: []string{alice}}, principal: bob, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "literal allow", acls: []Binding{lit(topic, "t", alice, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: true},
		{name: "literal allow other topic", acls: []Binding{lit(topic, "u", alice, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "literal allow other type", acls: []Binding{lit(ResourceGroup, "t", alice, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "literal is not prefix", acls: []Binding{lit(topic, "t", alice, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "tt", want: false},
		{name: "literal allow other principal", acls: []Binding{lit(topic, "t", bob, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "resource with acls of others is closed even with allow-if-no-acl", cfg: Config{AllowIfNoACL: true}, acls: []Binding{lit(topic, "t", bob, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "allow-if-no-acl: other resource open", cfg: Config{AllowIfNoACL: true}, acls: []Binding{lit(topic, "t", bob, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "u", want: true},
		{name: "allow-if-no-acl: a deny of others still closes", cfg: Config{AllowIfNoACL: true}, acls: []Binding{lit(topic, "t", bob, "*", OpRead, deny)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "allow-if-no-acl: wildcard acl covers the resource", cfg: Config{AllowIfNoACL: true}, acls: []Binding{lit(topic, "*", bob, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "allow-if-no-acl: prefixed acl covers the resource", cfg: Config{AllowIfNoACL: true}, acls: []Binding{pre(topic, "t", bob, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "tx", want: false},
		{name: "wildcard resource", acls: []Binding{lit(topic, "*", alice, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "anything", want: true},
		{name: "star as prefix is a literal prefix", acls: []Binding{pre(topic, "*", alice, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "anything", want: false},
		{name: "prefixed allow", acls: []Binding{pre(topic, "pay.", alice, "*", OpWrite, allow)}, principal: alice, host: ip1, op: OpWrite, rt: topic, res: "pay.in", want: true},
		{name: "prefixed equal name", acls: []Binding{pre(topic, "pay.", alice, "*", OpWrite, allow)}, principal: alice, host: ip1, op: OpWrite, rt: topic, res: "pay.", want: true},
		{name: "prefixed longer than name", acls: []Binding{pre(topic, "pay.", alice, "*", OpWrite, allow)}, principal: alice, host: ip1, op: OpWrite, rt: topic, res: "pay", want: false},
		{name: "prefixed other prefix", acls: []Binding{pre(topic, "pay.", alice, "*", OpWrite, allow)}, principal: alice, host: ip1, op: OpWrite, rt: topic, res: "pax.in", want: false},
		{name: "prefixed several lengths", acls: []Binding{pre(topic, "p", bob, "*", OpWrite, allow), pre(topic, "pay.in", alice, "*", OpWrite, allow)}, principal: alice, host: ip1, op: OpWrite, rt: topic, res: "pay.in.x", want: true},
		{name: "deny wins over allow, same pattern", acls: []Binding{lit(topic, "t", alice, "*", OpRead, allow), lit(topic, "t", alice, "*", OpRead, deny)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "deny wildcard wins over literal allow", acls: []Binding{lit(topic, "t", alice, "*", OpRead, allow), lit(topic, "*", alice, "*", OpRead, deny)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "deny prefixed wins over literal allow", acls: []Binding{lit(topic, "pay.in", alice, "*", OpRead, allow), pre(topic, "pay", alice, "*", OpRead, deny)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "pay.in", want: false},
		{name: "deny user wildcard wins", acls: []Binding{lit(topic, "t", alice, "*", OpRead, allow), lit(topic, "t", WildcardPrincipal, "*", OpRead, deny)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "deny all wins", acls: []Binding{lit(topic, "t", alice, "*", OpRead, allow), lit(topic, "t", alice, "*", OpAll, deny)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "deny of another op does not refuse", acls: []Binding{lit(topic, "t", alice, "*", OpRead, allow), lit(topic, "t", alice, "*", OpWrite, deny)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: true},
		{name: "deny read does not refuse describe", acls: []Binding{lit(topic, "t", alice, "*", OpDescribe, allow), lit(topic, "t", alice, "*", OpRead, deny)}, principal: alice, host: ip1, op: OpDescribe, rt: topic, res: "t", want: true},
		{name: "deny of another host does not refuse", acls: []Binding{lit(topic, "t", alice, "*", OpRead, allow), lit(topic, "t", alice, ip2, OpRead, deny)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: true},
		{name: "deny of that host refuses", acls: []Binding{lit(topic, "t", alice, "*", OpRead, allow), lit(topic, "t", alice, ip1, OpRead, deny)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "deny of another principal does not refuse", acls: []Binding{lit(topic, "t", alice, "*", OpRead, allow), lit(topic, "t", bob, "*", OpRead, deny)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: true},
		{name: "user wildcard allows", acls: []Binding{lit(topic, "t", WildcardPrincipal, "*", OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: true},
		{name: "user wildcard allows anonymous", acls: []Binding{lit(topic, "t", WildcardPrincipal, "*", OpRead, allow)}, principal: "User:ANONYMOUS", host: ip1, op: OpRead, rt: topic, res: "t", want: true},
		{name: "user wildcard is only for users", acls: []Binding{lit(topic, "t", WildcardPrincipal, "*", OpRead, allow)}, principal: "Group:x", host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "exact host allows", acls: []Binding{lit(topic, "t", alice, ip1, OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: true},
		{name: "other host refused", acls: []Binding{lit(topic, "t", alice, ip2, OpRead, allow)}, principal: alice, host: ip1, op: OpRead, rt: topic, res: "t", want: false},
		{name: "cluster", acls: []Binding{lit(ResourceCluster, ClusterName, alice, "*", OpCreate, allow)}, principal: alice, host: ip1, op: OpCreate, rt: ResourceCluster, res: ClusterName, want: true},
		{name: "bad resource type refused", acls: []Binding{lit(topic, "*", alice, "*", OpAll, allow)}, principal: alice, host: ip1, op: OpRead, rt: 99, res: "t", want: false},
	}
	// Implied operations, from Kafka: an ALLOW of the row's operation allows
	// exactly the listed ones (ALL every one).
	implied := map[Operation][]Operation{
		OpAll:             nil, // every
		OpRead:            {OpRead, OpDescribe},
		OpWrite:           {OpWrite, OpDescribe},
		OpDelete:          {OpDelete, OpDescribe},
		OpAlter:           {OpAlter, OpDescribe},
		OpAlterConfigs:    {OpAlterConfigs, OpDescribeConfigs},
		OpCreate:          {OpCreate},
		OpDescribe:        {OpDescribe},
		OpClusterAction:   {OpClusterAction},
		OpDescribeConfigs: {OpDescribeConfigs},
		OpIdempotentWrite: {OpIdempotentWrite},
		OpCreateTokens:    {OpCreateTokens},
		OpDescribeTokens:  {OpDescribeTokens},
	}
	for granted, ops := range implied {
		for op := OpAll; op <= maxOperation; op++ {
			want := granted == OpAll
			for _, o := range ops {
				want = want || o == op
			}
			cases = append(cases, authzCase{
				name: fmt.Sprintf("allow %d implies %d", granted, op),
				acls: []Binding{lit(topic, "t", alice, "*", granted, allow)}, principal: alice, host: ip1, op: op, rt: topic, res: "t", want: want,
			})
			// A DENY refuses only its own operation or ALL, never implied ones.
			cases = append(cases, authzCase{
				name: fmt.Sprintf("deny %d refuses %d", granted, op),
				acls: []Binding{lit(topic, "t", alice, "*", OpAll, allow), lit(topic, "t", alice, "*", granted, deny)}, principal: alice, host: ip1, op: op, rt: topic, res: "t",
				want: !(granted == OpAll || granted == op),
			})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := New(c.cfg)
			for _, b := range c.acls {
				if err := b.Validate(); err != nil {
					t.Fatalf("test binding invalid: %v", err)
				}
			}
			a.Add(c.acls...)
			if got := a.Authorize(c.principal, c.host, c.op, c.rt, c.res); got != c.want {
				t.Fatalf("Authorize(%s, %s, %d, %d, %q) = %v, want %v (acls %+v)", c.principal, c.host, c.op, c.rt, c.res, got, c.want, c.acls)
			}
		})
	}
}

func TestChangesAndGeneration(t *testing.T) {
	a := New(Config{})
	b := lit(topic, "t", alice, "*", OpRead, allow)
	g0 := a.Generation()
	if a.Authorize(alice, ip1, OpRead, topic, "t") {
		t.Fatal("allowed before any acl")
	}
	a.Add(b, b)
	g1 := a.Generation()
	if g1 == g0 || a.Len() != 1 || !a.Authorize(alice, ip1, OpRead, topic, "t") {
		t.Fatalf("after Add: gen %d->%d len %d", g0, g1, a.Len())
	}
	a.Remove(b)
	g2 := a.Generation()
	if g2 == g1 || a.Len() != 0 || a.Authorize(alice, ip1, OpRead, topic, "t") {
		t.Fatalf("after Remove: gen %d->%d len %d", g1, g2, a.Len())
	}
	a.Replace([]Binding{b, pre(topic, "x", bob, "*", OpAll, deny)})
	if a.Generation() == g2 || a.Len() != 2 || !a.Authorize(alice, ip1, OpRead, topic, "t") {
		t.Fatalf("after Replace: len %d", a.Len())
	}
}

func TestValidate(t *testing.T) {
	good := lit(topic, "t", alice, "*", OpRead, allow)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := pre(ResourceGroup, "g", alice, ip1, OpAll, deny).Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(b *Binding){
		"resource any":      func(b *Binding) { b.ResourceType = ResourceAny },
		"resource unknown":  func(b *Binding) { b.ResourceType = ResourceUnknown },
		"resource 8":        func(b *Binding) { b.ResourceType = 8 },
		"pattern any":       func(b *Binding) { b.Pattern = PatternAny },
		"pattern match":     func(b *Binding) { b.Pattern = PatternMatch },
		"pattern unknown":   func(b *Binding) { b.Pattern = PatternUnknown },
		"op any":            func(b *Binding) { b.Operation = OpAny },
		"op unknown":        func(b *Binding) { b.Operation = OpUnknown },
		"op 15":             func(b *Binding) { b.Operation = 15 },
		"perm any":          func(b *Binding) { b.Permission = PermissionAny },
		"perm unknown":      func(b *Binding) { b.Permission = PermissionUnknown },
		"empty name":        func(b *Binding) { b.Name = "" },
		"cluster name":      func(b *Binding) { b.ResourceType = ResourceCluster; b.Name = "other" },
		"principal no type": func(b *Binding) { b.Principal = "alice" },
		"principal empty":   func(b *Binding) { b.Principal = "" },
		"principal no name": func(b *Binding) { b.Principal = "User:" },
		"empty host":        func(b *Binding) { b.Host = "" },
	}
	for name, mut := range bad {
		b := good
		mut(&b)
		if err := b.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
	if err := (Filter{ResourceType: ResourceAny, Pattern: PatternMatch, Operation: OpAny, Permission: PermissionAny}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []Filter{
		{ResourceType: ResourceUnknown, Pattern: PatternAny, Operation: OpAny, Permission: PermissionAny},
		{ResourceType: ResourceAny, Pattern: PatternUnknown, Operation: OpAny, Permission: PermissionAny},
		{ResourceType: ResourceAny, Pattern: PatternAny, Operation: OpUnknown, Permission: PermissionAny},
		{ResourceType: ResourceAny, Pattern: PatternAny, Operation: OpAny, Permission: PermissionUnknown},
	} {
		if err := f.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("filter %+v: Validate = %v, want ErrInvalid", f, err)
		}
	}
}

func sp(s string) *string { return &s }

func TestFilter(t *testing.T) {
	lt := lit(topic, "pay.in", alice, ip1, OpRead, allow)
	lw := lit(topic, "*", alice, ip1, OpRead, allow)
	pp := pre(topic, "pay.", alice, ip1, OpRead, allow)
	px := pre(topic, "x", alice, ip1, OpRead, allow)
	lg := lit(ResourceGroup, "pay.in", bob, "*", OpWrite, deny)
	all := []Binding{lt, lw, pp, px, lg}
	anyF := Filter{ResourceType: ResourceAny, Pattern: PatternAny, Operation: OpAny, Permission: PermissionAny}
	with := func(mut func(f *Filter)) Filter { f := anyF; mut(&f); return f }
	cases := []struct {
		name string
		f    Filter
		want []Binding
	}{
		{"any", anyF, all},
		{"type topic", with(func(f *Filter) { f.ResourceType = topic }), []Binding{lt, lw, pp, px}},
		{"type group", with(func(f *Filter) { f.ResourceType = ResourceGroup }), []Binding{lg}},
		{"literal, any name", with(func(f *Filter) { f.Pattern = PatternLiteral }), []Binding{lt, lw, lg}},
		{"prefixed, any name", with(func(f *Filter) { f.Pattern = PatternPrefixed }), []Binding{pp, px}},
		{"match, any name", with(func(f *Filter) { f.Pattern = PatternMatch }), all},
		{"literal name", with(func(f *Filter) { f.Pattern = PatternLiteral; f.Name = sp("pay.in") }), []Binding{lt, lg}},
		{"literal star is exact", with(func(f *Filter) { f.Pattern = PatternLiteral; f.Name = sp("*") }), []Binding{lw}},
		{"prefixed name is exact", with(func(f *Filter) { f.Pattern = PatternPrefixed; f.Name = sp("pay.") }), []Binding{pp}},
		{"prefixed name is not a prefix search", with(func(f *Filter) { f.Pattern = PatternPrefixed; f.Name = sp("pay.in") }), nil},
		{"any pattern, name exact", with(func(f *Filter) { f.Name = sp("pay.in") }), []Binding{lt, lg}},
		{"any pattern, prefix name", with(func(f *Filter) { f.Name = sp("pay.") }), []Binding{pp}},
		{"match name", with(func(f *Filter) { f.Pattern = PatternMatch; f.Name = sp("pay.in") }), []Binding{lt, lw, pp, lg}},
		{"match topic name", with(func(f *Filter) { f.Pattern = PatternMatch; f.ResourceType = topic; f.Name = sp("pay.in") }), []Binding{lt, lw, pp}},
		{"match other name", with(func(f *Filter) { f.Pattern = PatternMatch; f.Name = sp("xy") }), []Binding{lw, px}},
		{"match star", with(func(f *Filter) { f.Pattern = PatternMatch; f.Name = sp("*") }), []Binding{lw}},
		{"principal", with(func(f *Filter) { f.Principal = sp(bob) }), []Binding{lg}},
		{"principal wildcard is exact", with(func(f *Filter) { f.Principal = sp(WildcardPrincipal) }), nil},
		{"host", with(func(f *Filter) { f.Host = sp("*") }), []Binding{lg}},
		{"host ip", with(func(f *Filter) { f.Host = sp(ip1) }), []Binding{lt, lw, pp, px}},
		{"operation", with(func(f *Filter) { f.Operation = OpWrite }), []Binding{lg}},
		{"operation not implied", with(func(f *Filter) { f.Operation = OpDescribe }), nil},
		{"permission", with(func(f *Filter) { f.Permission = PermissionDeny }), []Binding{lg}},
	}
	a := New(Config{})
	a.Add(all...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want []Binding
			for _, b := range all { // all is in the order Bindings sorts to? compare as sets
				for _, w := range c.want {
					if w == b {
						want = append(want, b)
					}
				}
			}
			got := a.Bindings(c.f)
			if !sameSet(got, want) {
				t.Fatalf("Bindings(%+v) = %+v, want %+v", c.f, got, want)
			}
			for _, b := range all {
				in := false
				for _, w := range want {
					in = in || w == b
				}
				if c.f.Matches(b) != in {
					t.Fatalf("Matches(%+v) = %v, want %v", b, !in, in)
				}
			}
		})
	}
}

func sameSet(a, b []Binding) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[Binding]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestConcurrentAuthorize checks under -race that checks take no lock the
// changes need.
func TestConcurrentAuthorize(t *testing.T) {
	a := New(Config{})
	b := lit(topic, "t", alice, "*", OpRead, allow)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			a.Add(b)
			a.Remove(b)
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
			a.Authorize(alice, ip1, OpRead, topic, "t")
		}
	}
}

func BenchmarkAuthorize10k(b *testing.B) {
	a := New(Config{})
	var bs []Binding
	for i := 0; i < 10000; i++ {
		p := fmt.Sprintf("User:u%d", i%100)
		switch i % 4 {
		case 0, 1:
			bs = append(bs, lit(topic, fmt.Sprintf("topic-%d", i), p, "*", OpWrite, allow))
		case 2:
			bs = append(bs, pre(topic, fmt.Sprintf("team%d.", i%50), p, "*", OpRead, allow))
		case 3:
			bs = append(bs, lit(ResourceGroup, fmt.Sprintf("group-%d", i), p, "*", OpRead, allow))
		}
	}
	bs = append(bs, lit(topic, "hot", "User:producer", "*", OpWrite, allow))
	a.Add(bs...)
	b.Run("literal-allow", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if !a.Authorize("User:producer", "127.0.0.1", OpWrite, topic, "hot") {
				b.Fatal("refused")
			}
		}
	})
	b.Run("prefixed-refuse", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if a.Authorize("User:nobody", "127.0.0.1", OpRead, topic, "team7.orders") {
				b.Fatal("allowed")
			}
		}
	})
}

func TestAuthorizeAny(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		acls []Binding
		want bool
	}{
		{"no acls", Config{}, nil, false},
		{"no acls, allow-if-no-acl", Config{AllowIfNoACL: true}, nil, true},
		{"super", Config{SuperUsers: []string{alice}}, nil, true},
		{"one literal allow", Config{}, []Binding{lit(topic, "t", alice, "*", OpWrite, allow)}, true},
		{"allow of another op", Config{}, []Binding{lit(topic, "t", alice, "*", OpRead, allow)}, false},
		{"allow all", Config{}, []Binding{pre(topic, "x", alice, "*", OpAll, allow)}, true},
		{"allow of another principal", Config{}, []Binding{lit(topic, "t", bob, "*", OpWrite, allow)}, false},
		{"allow of another host", Config{}, []Binding{lit(topic, "t", alice, ip2, OpWrite, allow)}, false},
		{"allow of another type", Config{}, []Binding{lit(ResourceGroup, "t", alice, "*", OpWrite, allow)}, false},
		{"literal deny of the same name", Config{}, []Binding{lit(topic, "t", alice, "*", OpWrite, allow), lit(topic, "t", alice, "*", OpWrite, deny)}, false},
		{"literal deny of another name", Config{}, []Binding{lit(topic, "t", alice, "*", OpWrite, allow), lit(topic, "u", alice, "*", OpWrite, deny)}, true},
		{"prefix deny covers", Config{}, []Binding{lit(topic, "team.t", alice, "*", OpWrite, allow), pre(topic, "team.", alice, "*", OpWrite, deny)}, false},
		{"prefix deny covers prefix allow", Config{}, []Binding{pre(topic, "team.a", alice, "*", OpWrite, allow), pre(topic, "team.", alice, "*", OpWrite, deny)}, false},
		{"wildcard deny", Config{}, []Binding{pre(topic, "a", alice, "*", OpWrite, allow), lit(topic, "*", WildcardPrincipal, "*", OpAll, deny)}, false},
		{"one of two allowed", Config{}, []Binding{lit(topic, "t", alice, "*", OpWrite, allow), lit(topic, "u", alice, "*", OpWrite, allow), lit(topic, "t", alice, "*", OpWrite, deny)}, true},
	}
	for _, c := range cases {
		a := New(c.cfg)
		a.Add(c.acls...)
		if got := a.AuthorizeAny(alice, ip1, OpWrite, topic); got != c.want {
			t.Errorf("%s: AuthorizeAny = %v, want %v", c.name, got, c.want)
		}
	}
}

// authorizeAnyScan is AuthorizeAny as it was first written, walking every
// binding: the reference the indexed one must agree with.
func authorizeAnyScan(a *Authorizer, principal, host string, op Operation, rt ResourceType) bool {
	if a.super[principal] {
		return true
	}
	s := a.snap.Load()
	if s.types[rt] == nil {
		return a.allowIfNoACL
	}
	applies := func(b *Binding) bool {
		return b.ResourceType == rt &&
			(b.Principal == principal || b.Principal == WildcardPrincipal && strings.HasPrefix(principal, "User:")) &&
			(b.Host == host || b.Host == Wildcard)
	}
	denyLit, denyPre := map[string]bool{}, []string{}
	for i := range s.list {
		b := &s.list[i]
		if !applies(b) || b.Permission != PermissionDeny || !denies(b.Operation, op) {
			continue
		}
		if b.Pattern == PatternLiteral {
			denyLit[b.Name] = true
		} else {
			denyPre = append(denyPre, b.Name)
		}
	}
	if denyLit[Wildcard] {
		return false
	}
	covered := func(name string) bool {
		for _, p := range denyPre {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	for i := range s.list {
		b := &s.list[i]
		if !applies(b) || b.Permission != PermissionAllow || !allows(b.Operation, op) {
			continue
		}
		if b.Pattern == PatternLiteral && denyLit[b.Name] || covered(b.Name) {
			continue
		}
		return true
	}
	return false
}

// TestAuthorizeAnyMatchesScan: on random binding sets drawn from a small
// alphabet (so names, prefixes, principals and hosts collide often), the
// indexed AuthorizeAny answers as the full scan does, for every principal,
// host, operation and resource type.
func TestAuthorizeAnyMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"*", "a", "ab", "abc", "b", "ba"}
	principals := []string{alice, bob, WildcardPrincipal, "Group:ops"}
	hosts := []string{"*", ip1, ip2}
	ops := []Operation{OpAll, OpRead, OpWrite, OpDescribe, OpAlter, OpAlterConfigs, OpDescribeConfigs}
	types := []ResourceType{ResourceTopic, ResourceGroup}
	for round := 0; round < 300; round++ {
		a := New(Config{AllowIfNoACL: round%3 == 0})
		for n := rng.IntN(12); n > 0; n-- {
			b := Binding{ResourceType: types[rng.IntN(len(types))], Name: names[rng.IntN(len(names))], Pattern: PatternLiteral,
				Principal: principals[rng.IntN(len(principals))], Host: hosts[rng.IntN(len(hosts))],
				Operation: ops[rng.IntN(len(ops))], Permission: []Permission{allow, deny}[rng.IntN(2)]}
			if rng.IntN(2) == 0 {
				b.Pattern = PatternPrefixed
			}
			a.Add(b)
		}
		for _, p := range principals {
			for _, h := range hosts[1:] {
				for _, op := range ops[1:] {
					for _, rt := range types {
						want := authorizeAnyScan(a, p, h, op, rt)
						if got := a.AuthorizeAny(p, h, op, rt); got != want {
							t.Fatalf("round %d, %s from %s, op %d on type %d: AuthorizeAny %v, scan %v; bindings %+v",
								round, p, h, op, rt, got, want, a.Bindings(Filter{ResourceType: ResourceAny, Pattern: PatternAny, Operation: OpAny, Permission: PermissionAny}))
						}
					}
				}
			}
		}
	}
}

// BenchmarkAuthorizeAny10k: 10,000 bindings over 100 principals; "indexed"
// is AuthorizeAny, "scan" the walk over every binding it replaced.
func BenchmarkAuthorizeAny10k(b *testing.B) {
	a := New(Config{})
	var bs []Binding
	for i := 0; i < 10000; i++ {
		p := fmt.Sprintf("User:u%d", i%100)
		if i%2 == 0 {
			bs = append(bs, lit(ResourceGroup, fmt.Sprintf("group-%d", i), p, "*", OpRead, allow))
		} else {
			bs = append(bs, lit(topic, fmt.Sprintf("topic-%d", i), p, "*", OpRead, allow))
		}
	}
	bs = append(bs, pre(topic, "out.", "User:producer", "*", OpWrite, allow))
	a.Add(bs...)
	for _, impl := range []struct {
		name string
		fn   func(*Authorizer, string, string, Operation, ResourceType) bool
	}{{"indexed", (*Authorizer).AuthorizeAny}, {"scan", authorizeAnyScan}} {
		b.Run(impl.name+"/allowed", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !impl.fn(a, "User:producer", "127.0.0.1", OpWrite, topic) {
					b.Fatal("refused")
				}
			}
		})
		b.Run(impl.name+"/refused", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if impl.fn(a, "User:u7", "127.0.0.1", OpWrite, topic) {
					b.Fatal("allowed")
				}
			}
		})
	}
}
