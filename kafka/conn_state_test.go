package kafka

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/netloop"
)

// TestAuthzCacheFollowsACLChanges: on one connection (the harness's), a
// produce refused, then allowed once CreateAcls grants WRITE, then refused
// again once DeleteAcls takes it back, and refused by a DENY added beside
// the ALLOW: cached decisions never outlive the ACLs they were made on.
func TestAuthzCacheFollowsACLChanges(t *testing.T) {
	hs, _ := aclHarness(t, acl.Config{})
	hs.createTopic("t", 1, nil)
	info, _ := hs.st.Topic("t")
	hs.h.cfg.Authorizer.Add(acl.Binding{ResourceType: acl.ResourceCluster, Name: acl.ClusterName, Pattern: acl.PatternLiteral,
		Principal: anonymous, Host: "*", Operation: acl.OpAlter, Permission: acl.PermissionAllow})
	produce := func() int16 {
		t.Helper()
		req := produceReq(9, -1, "t", info.ID, 0, makeBatch(batchOpts{records: 1}))
		return roundTrip[*kmsg.ProduceResponse](hs, req).Topics[0].Partitions[0].ErrorCode
	}
	grant := creation(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral, anonymous, "*", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow)
	denyC := grant
	denyC.PermissionType = kmsg.ACLPermissionTypeDeny
	create := func(c kmsg.CreateACLsRequestCreation) {
		t.Helper()
		if cr := roundTrip[*kmsg.CreateACLsResponse](hs, createACLsReq(3, c)); cr.Results[0].ErrorCode != 0 {
			t.Fatalf("CreateAcls: %v", kerr.ErrorForCode(cr.Results[0].ErrorCode))
		}
	}
	remove := func(c kmsg.CreateACLsRequestCreation) {
		t.Helper()
		del := kmsg.NewPtrDeleteACLsRequest()
		del.Version = 3
		f := kmsg.NewDeleteACLsRequestFilter()
		f.ResourceType, f.ResourceName, f.ResourcePatternType = c.ResourceType, &c.ResourceName, c.ResourcePatternType
		f.Principal, f.Host, f.Operation, f.PermissionType = &c.Principal, &c.Host, c.Operation, c.PermissionType
		del.Filters = append(del.Filters, f)
		if xr := roundTrip[*kmsg.DeleteACLsResponse](hs, del); xr.Results[0].ErrorCode != 0 || len(xr.Results[0].MatchingACLs) != 1 {
			t.Fatalf("DeleteAcls: %+v", xr.Results)
		}
	}

	for i := 0; i < 2; i++ { // the second of each is answered from the cache
		if code := produce(); code != topicAuthFailed {
			t.Fatalf("produce without WRITE: %v", kerr.ErrorForCode(code))
		}
	}
	create(grant)
	for i := 0; i < 2; i++ {
		if code := produce(); code != 0 {
			t.Fatalf("produce after CreateAcls granted WRITE: %v", kerr.ErrorForCode(code))
		}
	}
	remove(grant)
	if code := produce(); code != topicAuthFailed {
		t.Fatalf("produce after DeleteAcls took WRITE back: %v", kerr.ErrorForCode(code))
	}
	create(grant)
	if code := produce(); code != 0 {
		t.Fatalf("produce after WRITE granted again: %v", kerr.ErrorForCode(code))
	}
	create(denyC)
	if code := produce(); code != topicAuthFailed {
		t.Fatalf("produce after a DENY: %v", kerr.ErrorForCode(code))
	}
}

// TestAuthzCacheAcrossAuthentication: decisions belong to the
// authentication they were made under. A connection checked before it
// authenticates (as ANONYMOUS) gets alice's answers after; a KIP-368
// re-authentication starts from an empty cache; a re-authentication as
// another user is refused and closes the connection, and the principal
// (and its decisions) stay alice's.
func TestAuthzCacheAcrossAuthentication(t *testing.T) {
	users := NewUsers()
	for _, u := range []string{"alice", "bob"} {
		if err := users.AddPassword(u, u+"-secret", MinScramIterations); err != nil {
			t.Fatal(err)
		}
	}
	a := acl.New(acl.Config{})
	a.Add(allowACL(acl.ResourceTopic, "anon-only", acl.OpWrite),
		acl.Binding{ResourceType: acl.ResourceTopic, Name: "alice-only", Pattern: acl.PatternLiteral,
			Principal: "User:alice", Host: "*", Operation: acl.OpWrite, Permission: acl.PermissionAllow})
	hs := newHarness(t, func(c *Config) {
		c.Listeners = []Listener{{Protocol: SASLPlaintext, Host: "broker.test", Port: 9092}}
		c.Users, c.SASLMaxReauth, c.Authorizer = users, time.Hour, a
	})
	const conn = 1
	r := func() *request { return hs.h.lookupRequest(conn) }
	check := func(topic string) bool { return hs.h.authorized(r(), acl.OpWrite, acl.ResourceTopic, topic) }
	login := func(user string) (*kmsg.SASLAuthenticateResponse, bool) {
		t.Helper()
		if resp, closed := saslHandshake(t, hs, conn, 1, MechPlain); resp.ErrorCode != 0 || closed {
			t.Fatalf("handshake: %v closed %v", kerr.ErrorForCode(resp.ErrorCode), closed)
		}
		return saslAuth(t, hs, conn, []byte("\x00"+user+"\x00"+user+"-secret"))
	}

	if !check("anon-only") || check("alice-only") {
		t.Fatal("before authentication the connection is not ANONYMOUS")
	}
	if resp, closed := login("alice"); resp.ErrorCode != 0 || closed {
		t.Fatalf("login: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if check("anon-only") || !check("alice-only") || !check("alice-only") {
		t.Fatal("after authenticating as alice the connection kept ANONYMOUS's decisions")
	}
	before := hs.h.identityOf(r())
	if cached(before) == 0 {
		t.Fatal("no decision cached")
	}

	if resp, closed := login("alice"); resp.ErrorCode != 0 || closed {
		t.Fatalf("re-authentication: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	after := hs.h.identityOf(r())
	if after == before || cached(after) != 0 || after.principal != "User:alice" {
		t.Fatalf("re-authentication kept the identity and its %d decisions", cached(after))
	}
	if !check("alice-only") {
		t.Fatal("alice refused after re-authentication")
	}

	if resp, closed := login("bob"); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || !closed {
		t.Fatalf("re-authentication as bob: %v closed %v", kerr.ErrorForCode(resp.ErrorCode), closed)
	}
	if id := hs.h.identityOf(r()); id != after || id.principal != "User:alice" {
		t.Fatalf("a refused re-authentication changed the identity to %q", id.principal)
	}
}

// lookupRequest is a request on connection id of the harness, as the
// handler finds its connection state.
func (h *Handler) lookupRequest(id uint64) *request {
	nr := netloop.NewRequest(nil, netloop.ConnInfo{ID: id}, func(netloop.Response) {})
	return &request{nr: nr, cs: h.lookupConn(nr)}
}

// cached counts the decisions in id's cache.
func cached(id *identity) int {
	n := 0
	for i := range id.decisions {
		if id.decisions[i].Load() != nil {
			n++
		}
	}
	return n
}

// TestAuthzCacheConcurrent: goroutines checking on one connection while
// ACLs change all see the final ACLs once the changes stop (and the race
// detector sees no race between checks, cache fills and changes).
func TestAuthzCacheConcurrent(t *testing.T) {
	a := acl.New(acl.Config{})
	h := &Handler{cfg: Config{Authorizer: a, Listeners: []Listener{{Protocol: Plaintext}}}}
	r := benchRequest(h)
	topics := make([]string, 40) // more than the cache holds: evictions race too
	for i := range topics {
		topics[i] = fmt.Sprintf("t%d", i)
	}
	grant := func(topic string) acl.Binding { return allowACL(acl.ResourceTopic, topic, acl.OpWrite) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				h.authorized(r, acl.OpWrite, acl.ResourceTopic, topics[i%len(topics)])
			}
		}()
	}
	for i := 0; i < 300; i++ {
		b := grant(topics[i%len(topics)])
		if i%3 == 2 {
			a.Remove(b)
		} else {
			a.Add(b)
		}
	}
	close(stop)
	wg.Wait()
	for _, topic := range topics {
		want := a.Authorize(anonymous, "127.0.0.1", acl.OpWrite, acl.ResourceTopic, topic)
		for i := 0; i < 2; i++ {
			if got := h.authorized(r, acl.OpWrite, acl.ResourceTopic, topic); got != want {
				t.Fatalf("%s: cached %v, authorizer %v", topic, got, want)
			}
		}
	}
}

// benchRequest is a request on a plaintext connection from 127.0.0.1 with
// its own connection state, as netloop would attach it.
func benchRequest(h *Handler) *request {
	nr := netloop.NewRequest(nil, netloop.ConnInfo{ID: 1, Remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}}, func(netloop.Response) {})
	return &request{nr: nr, cs: &connState{}}
}
