package kafka

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

// memACLStore is an in-memory ACLStore; fail makes changes fail.
type memACLStore struct {
	mu   sync.Mutex
	set  map[storage.ACL]bool
	fail error
}

func (m *memACLStore) ACLs() []storage.ACL {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.ACL
	for a := range m.set {
		out = append(out, a)
	}
	return out
}

func (m *memACLStore) CreateACLs(acls []storage.ACL) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	for _, a := range acls {
		m.set[a] = true
	}
	return nil
}

func (m *memACLStore) DeleteACLs(acls []storage.ACL) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	for _, a := range acls {
		delete(m.set, a)
	}
	return nil
}

const anonymous = "User:ANONYMOUS"

// aclHarness is a handler with an authorizer; cfg's super users and
// allow-if-no-acl as given.
func aclHarness(t *testing.T, cfg acl.Config) (*harness, *memACLStore) {
	store := &memACLStore{set: map[storage.ACL]bool{}}
	hs := newHarness(t, func(c *Config) {
		c.Authorizer = acl.New(cfg)
		c.ACLStore = store
	})
	return hs, store
}

func creation(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal, host string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) kmsg.CreateACLsRequestCreation {
	c := kmsg.NewCreateACLsRequestCreation()
	c.ResourceType, c.ResourceName, c.ResourcePatternType = rt, name, pt
	c.Principal, c.Host, c.Operation, c.PermissionType = principal, host, op, perm
	return c
}

func createACLsReq(v int16, cs ...kmsg.CreateACLsRequestCreation) *kmsg.CreateACLsRequest {
	req := kmsg.NewPtrCreateACLsRequest()
	req.Version, req.Creations = v, cs
	return req
}

func describeAnyReq(v int16) *kmsg.DescribeACLsRequest {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.Version = v
	req.ResourceType, req.Operation, req.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	req.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	if v == 0 {
		req.ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
	}
	return req
}

func TestACLAPIsSecurityDisabled(t *testing.T) {
	hs := newHarness(t)
	c := creation(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral, "User:a", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)
	for v := int16(0); v <= 3; v++ {
		cr := roundTrip[*kmsg.CreateACLsResponse](hs, createACLsReq(v, c))
		if len(cr.Results) != 1 || cr.Results[0].ErrorCode != kerr.SecurityDisabled.Code {
			t.Fatalf("CreateAcls v%d: %+v, want SECURITY_DISABLED", v, cr.Results)
		}
		dr := roundTrip[*kmsg.DescribeACLsResponse](hs, describeAnyReq(v))
		if dr.ErrorCode != kerr.SecurityDisabled.Code {
			t.Fatalf("DescribeAcls v%d: error %d, want SECURITY_DISABLED", v, dr.ErrorCode)
		}
		del := kmsg.NewPtrDeleteACLsRequest()
		del.Version = v
		del.Filters = []kmsg.DeleteACLsRequestFilter{kmsg.NewDeleteACLsRequestFilter()}
		xr := roundTrip[*kmsg.DeleteACLsResponse](hs, del)
		if len(xr.Results) != 1 || xr.Results[0].ErrorCode != kerr.SecurityDisabled.Code {
			t.Fatalf("DeleteAcls v%d: %+v, want SECURITY_DISABLED", v, xr.Results)
		}
	}
}

func TestACLAPIsNeedClusterPermission(t *testing.T) {
	hs, store := aclHarness(t, acl.Config{})
	c := creation(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral, "User:a", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)
	cr := roundTrip[*kmsg.CreateACLsResponse](hs, createACLsReq(3, c))
	if cr.Results[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("CreateAcls without ALTER on the cluster: %d", cr.Results[0].ErrorCode)
	}
	if dr := roundTrip[*kmsg.DescribeACLsResponse](hs, describeAnyReq(3)); dr.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("DescribeAcls without DESCRIBE on the cluster: %d", dr.ErrorCode)
	}
	if len(store.ACLs()) != 0 {
		t.Fatal("refused creation was stored")
	}
	// ALTER on the cluster allows both (it implies DESCRIBE).
	hs.h.cfg.Authorizer.Add(acl.Binding{ResourceType: acl.ResourceCluster, Name: acl.ClusterName, Pattern: acl.PatternLiteral,
		Principal: anonymous, Host: "*", Operation: acl.OpAlter, Permission: acl.PermissionAllow})
	if cr := roundTrip[*kmsg.CreateACLsResponse](hs, createACLsReq(3, c)); cr.Results[0].ErrorCode != 0 {
		t.Fatalf("CreateAcls with ALTER on the cluster: %d", cr.Results[0].ErrorCode)
	}
	if dr := roundTrip[*kmsg.DescribeACLsResponse](hs, describeAnyReq(3)); dr.ErrorCode != 0 || len(dr.Resources) != 2 {
		t.Fatalf("DescribeAcls with ALTER on the cluster: %d, %d resources", dr.ErrorCode, len(dr.Resources))
	}
}

func TestACLAPIs(t *testing.T) {
	hs, store := aclHarness(t, acl.Config{SuperUsers: []string{anonymous}})
	lit, pre := kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed
	topic, group := kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup
	read, write := kmsg.ACLOperationRead, kmsg.ACLOperationWrite
	allow, deny := kmsg.ACLPermissionTypeAllow, kmsg.ACLPermissionTypeDeny
	good := []kmsg.CreateACLsRequestCreation{
		creation(topic, "orders", lit, "User:alice", "*", read, allow),
		creation(topic, "orders", lit, "User:bob", "10.0.0.1", write, deny),
		creation(topic, "pay.", pre, "User:alice", "*", write, allow),
		creation(topic, "*", lit, "User:carol", "*", read, allow),
		creation(group, "g1", lit, "User:alice", "*", read, allow),
	}
	bad := []kmsg.CreateACLsRequestCreation{
		creation(kmsg.ACLResourceTypeAny, "x", lit, "User:a", "*", read, allow),
		creation(topic, "x", kmsg.ACLResourcePatternTypeMatch, "User:a", "*", read, allow),
		creation(topic, "x", lit, "User:a", "*", kmsg.ACLOperationAny, allow),
		creation(topic, "x", lit, "User:a", "*", read, kmsg.ACLPermissionTypeAny),
		creation(topic, "", lit, "User:a", "*", read, allow),
		creation(kmsg.ACLResourceTypeCluster, "other", lit, "User:a", "*", read, allow),
		creation(topic, "x", lit, "nobody", "*", read, allow),
	}
	cr := roundTrip[*kmsg.CreateACLsResponse](hs, createACLsReq(3, append(slices.Clone(good), bad...)...))
	for i, res := range cr.Results {
		want := int16(0)
		if i >= len(good) {
			want = kerr.InvalidRequest.Code
		}
		if res.ErrorCode != want {
			t.Errorf("creation %d: error %d, want %d", i, res.ErrorCode, want)
		}
	}
	if n := len(store.ACLs()); n != len(good) {
		t.Fatalf("%d ACLs stored, want %d", n, len(good))
	}
	// Creating again keeps one copy.
	roundTrip[*kmsg.CreateACLsResponse](hs, createACLsReq(3, good...))
	if n := hs.h.cfg.Authorizer.Len(); n != len(good) {
		t.Fatalf("%d ACLs after re-creating, want %d", n, len(good))
	}

	count := func(dr *kmsg.DescribeACLsResponse) int {
		n := 0
		for _, r := range dr.Resources {
			n += len(r.ACLs)
		}
		return n
	}
	describe := func(mod func(*kmsg.DescribeACLsRequest)) *kmsg.DescribeACLsResponse {
		req := describeAnyReq(3)
		mod(req)
		dr := roundTrip[*kmsg.DescribeACLsResponse](hs, req)
		if dr.ErrorCode != 0 {
			t.Fatalf("DescribeAcls: error %d", dr.ErrorCode)
		}
		return dr
	}
	if dr := describe(func(*kmsg.DescribeACLsRequest) {}); count(dr) != 5 || len(dr.Resources) != 4 {
		t.Fatalf("describe any: %d ACLs in %d resources, want 5 in 4", count(dr), len(dr.Resources))
	}
	if dr := describe(func(r *kmsg.DescribeACLsRequest) {
		r.ResourceType, r.ResourcePatternType, r.ResourceName = topic, kmsg.ACLResourcePatternTypeMatch, strPtr("pay.in")
	}); count(dr) != 2 {
		t.Fatalf("describe MATCH pay.in: %d ACLs, want 2 (pay. prefixed, * literal)", count(dr))
	}
	if dr := describe(func(r *kmsg.DescribeACLsRequest) { r.Principal = strPtr("User:alice") }); count(dr) != 3 {
		t.Fatalf("describe alice: %d ACLs, want 3", count(dr))
	}
	if dr := describe(func(r *kmsg.DescribeACLsRequest) { r.Host = strPtr("10.0.0.1"); r.PermissionType = deny }); count(dr) != 1 {
		t.Fatalf("describe host deny: %d ACLs, want 1", count(dr))
	}
	if dr := describe(func(r *kmsg.DescribeACLsRequest) { r.Version = 0; r.ResourcePatternType = lit }); count(dr) != 4 {
		t.Fatalf("describe v0 (literal only): %d ACLs, want 4", count(dr))
	}
	badDescribe := describeAnyReq(3)
	badDescribe.ResourceType = kmsg.ACLResourceTypeUnknown
	if dr := roundTrip[*kmsg.DescribeACLsResponse](hs, badDescribe); dr.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("describe with an UNKNOWN resource type: %d, want INVALID_REQUEST", dr.ErrorCode)
	}

	// A failing store refuses the change and leaves the authorizer as it was.
	store.mu.Lock()
	store.fail = errors.Join(storage.ErrStorage, errors.New("disk on fire"))
	store.mu.Unlock()
	cr = roundTrip[*kmsg.CreateACLsResponse](hs, createACLsReq(3, creation(topic, "new", lit, "User:x", "*", read, allow)))
	if cr.Results[0].ErrorCode != kerr.KafkaStorageError.Code || hs.h.cfg.Authorizer.Len() != len(good) {
		t.Fatalf("create with a failing store: %d, %d ACLs", cr.Results[0].ErrorCode, hs.h.cfg.Authorizer.Len())
	}
	store.mu.Lock()
	store.fail = nil
	store.mu.Unlock()

	// Delete: one filter for alice's topic ACLs, one overlapping, one invalid.
	del := kmsg.NewPtrDeleteACLsRequest()
	del.Version = 3
	f1 := kmsg.NewDeleteACLsRequestFilter()
	f1.ResourceType, f1.ResourcePatternType, f1.Principal, f1.Operation, f1.PermissionType = topic, kmsg.ACLResourcePatternTypeAny, strPtr("User:alice"), kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	f2 := f1
	f2.ResourcePatternType, f2.ResourceName = pre, strPtr("pay.")
	f3 := f1
	f3.Operation = kmsg.ACLOperationUnknown
	del.Filters = []kmsg.DeleteACLsRequestFilter{f1, f2, f3}
	xr := roundTrip[*kmsg.DeleteACLsResponse](hs, del)
	if len(xr.Results[0].MatchingACLs) != 2 || len(xr.Results[1].MatchingACLs) != 1 || xr.Results[2].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("delete results: %+v", xr.Results)
	}
	if n := len(store.ACLs()); n != 3 || hs.h.cfg.Authorizer.Len() != 3 {
		t.Fatalf("after delete: %d stored, %d enforced, want 3", n, hs.h.cfg.Authorizer.Len())
	}

	// A new handler on the same store starts with the stored ACLs.
	h2 := New(Config{Authorizer: acl.New(acl.Config{}), ACLStore: store}, hs.st)
	defer h2.Close()
	if n := h2.cfg.Authorizer.Len(); n != 3 {
		t.Fatalf("restored %d ACLs, want 3", n)
	}
}
