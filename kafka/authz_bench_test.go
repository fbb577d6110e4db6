package kafka

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/netloop"
)

// tenThousandACLs are 10,000 WRITE grants on other topics for 100 other
// users, plus WRITE on "hot" for ANONYMOUS and alice.
func tenThousandACLs() []acl.Binding {
	bs := make([]acl.Binding, 0, 10002)
	for i := range 10000 {
		bs = append(bs, acl.Binding{ResourceType: acl.ResourceTopic, Name: fmt.Sprintf("topic-%d", i), Pattern: acl.PatternLiteral,
			Principal: fmt.Sprintf("User:u%d", i%100), Host: "*", Operation: acl.OpWrite, Permission: acl.PermissionAllow})
	}
	alice := allowACL(acl.ResourceTopic, "hot", acl.OpWrite)
	alice.Principal = "User:alice"
	return append(bs, allowACL(acl.ResourceTopic, "hot", acl.OpWrite), alice)
}

// BenchmarkAuthorizedProduce is the check Produce makes per topic, with
// 10,000 ACLs: "off" without an authorizer; "cached" a connection that
// has checked the topic before (plaintext; SASL, whose principal was
// found through a map and a mutex before the cache; with a host-specific
// ACL, which made the check format the client's address); "cold" a
// connection's first check (its identity made, the decision taken from
// the index and cached); "miss" a connection cycling over more topics
// than its cache holds, so every check is decided again and cached.
func BenchmarkAuthorizedProduce(b *testing.B) {
	hostDeny := acl.Binding{ResourceType: acl.ResourceTopic, Name: "hot", Pattern: acl.PatternLiteral,
		Principal: anonymous, Host: "10.9.9.9", Operation: acl.OpWrite, Permission: acl.PermissionDeny}
	run := func(b *testing.B, h *Handler, fresh bool, setup func(*request)) {
		r := benchRequest(h)
		if setup != nil {
			setup(r)
		}
		b.ReportAllocs()
		for b.Loop() {
			if fresh {
				r.cs = &connState{}
			}
			if !h.authorized(r, acl.OpWrite, acl.ResourceTopic, "hot") {
				b.Fatal("refused")
			}
		}
	}
	handler := func(extra ...acl.Binding) *Handler {
		a := acl.New(acl.Config{})
		a.Add(append(tenThousandACLs(), extra...)...)
		return &Handler{cfg: Config{Authorizer: a, Listeners: []Listener{{Protocol: Plaintext}}}}
	}
	b.Run("off", func(b *testing.B) {
		run(b, &Handler{cfg: Config{Listeners: []Listener{{Protocol: Plaintext}}}}, false, nil)
	})
	b.Run("cached", func(b *testing.B) { run(b, handler(), false, nil) })
	b.Run("cached-sasl", func(b *testing.B) {
		h := handler()
		h.cfg.Listeners[0].Protocol = SASLPlaintext
		run(b, h, false, func(r *request) {
			r.cs.sasl = &saslConn{stage: saslDone, user: "alice"}
			r.cs.ident.Store(newIdentity("User:alice", r.nr.Conn))
		})
	})
	b.Run("cached-host-acls", func(b *testing.B) { run(b, handler(hostDeny), false, nil) })
	b.Run("cold", func(b *testing.B) { run(b, handler(), true, nil) })
	b.Run("cold-host-acls", func(b *testing.B) { run(b, handler(hostDeny), true, nil) })
	b.Run("miss", func(b *testing.B) {
		h := handler()
		r := benchRequest(h)
		topics := make([]string, 4*decisionSets*decisionWays)
		for i := range topics {
			topics[i] = fmt.Sprintf("topic-%d", i)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h.authorized(r, acl.OpWrite, acl.ResourceTopic, topics[i%len(topics)])
			i++
		}
	})
}

// BenchmarkProduceAuthz serves a whole one-record Produce (through the
// handler, onto the in-memory test store), with the authorizer off and on
// (10,000 ACLs, the decision cached after the first request).
func BenchmarkProduceAuthz(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("authorizer=%v", on), func(b *testing.B) {
			hs := newHarness(b, func(c *Config) {
				if on {
					c.Authorizer = acl.New(acl.Config{})
					c.Authorizer.Add(tenThousandACLs()...)
				}
			})
			hs.createTopic("hot", 1, nil)
			info, _ := hs.st.Topic("hot")
			frame := encodeRequest(produceReq(9, 1, "hot", info.ID, 0, makeBatch(batchOpts{records: 1, payload: 100})), testCorr)
			b.ReportAllocs()
			for b.Loop() {
				resp := hs.serveFrame(append([]byte(nil), frame...)).wait(b)
				if resp.Release != nil {
					resp.Release()
				}
			}
		})
	}
}

// BenchmarkConnAuthzMemory reports the heap a connection's state takes at
// 15,000 connections with the authorizer on: idle (authenticated or not,
// no check made yet), after one check, and with its decision cache full.
func BenchmarkConnAuthzMemory(b *testing.B) {
	const conns = 15000
	a := acl.New(acl.Config{AllowIfNoACL: true})
	a.Add(tenThousandACLs()...)
	h := &Handler{cfg: Config{Authorizer: a, Listeners: []Listener{{Protocol: Plaintext}}}}
	topics := make([]string, 4*decisionSets*decisionWays)
	for i := range topics {
		topics[i] = fmt.Sprintf("orders-%d", i)
	}
	for _, c := range []struct {
		name   string
		checks int
	}{{"idle", 0}, {"one-topic", 1}, {"full-cache", len(topics)}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				rs := make([]*request, conns)
				for i := range rs {
					rs[i] = &request{nr: netloop.NewRequest(nil, benchRequest(h).nr.Conn, nil)}
				}
				before := heapInUse()
				for _, r := range rs {
					r.cs = &connState{}
					for _, t := range topics[:c.checks] {
						h.authorized(r, acl.OpWrite, acl.ResourceTopic, t)
					}
				}
				b.ReportMetric(float64(heapInUse()-before)/conns, "B/conn")
				runtime.KeepAlive(rs)
			}
		})
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
