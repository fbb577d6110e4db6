package kafka

// DescribeClientQuotas (key 48), versions 0-1 (KIP-546).
//
// Behaviour: answers the quota entities the filter matches, with their
// values. Each filter component names an entity type (user, client-id or
// ip) and matches an exact name, the default (null name) or any entity
// that has the type; strict leaves out entities with types the filter does
// not name. An empty type, a type named twice, a match string where none
// belongs or none where one does, and ip combined with user or client-id
// answer INVALID_REQUEST; an unknown type or match type
// UNSUPPORTED_VERSION, as Kafka (KRaft) does. Needs DESCRIBE_CONFIGS on the
// cluster (CLUSTER_AUTHORIZATION_FAILED). klite keeps no ip quotas, so an
// ip filter matches nothing.

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

const describeClientQuotasKey = 48

func init() { register(describeClientQuotasKey, 0, 1, (*Handler).describeClientQuotas) }

func (h *Handler) describeClientQuotas(r *request) {
	req := kmsg.NewPtrDescribeClientQuotasRequest()
	if !h.parse(r, req) {
		return
	}
	r.respond(h.describeClientQuotasResponse(r, req))
}

// quotaFilter is a validated DescribeClientQuotas filter: exact maps an
// entity type to the name it must have (nil: the default), any holds the
// types an entity must have with whatever name.
type quotaFilter struct {
	exact  map[string]*string
	any    map[string]bool
	strict bool
}

func (h *Handler) describeClientQuotasResponse(r *request, req *kmsg.DescribeClientQuotasRequest) *kmsg.DescribeClientQuotasResponse {
	resp := kmsg.NewPtrDescribeClientQuotasResponse()
	resp.Version = r.version
	fail := func(code int16, msg string) *kmsg.DescribeClientQuotasResponse {
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp
	}
	if !h.authorizedCluster(r, acl.OpDescribeConfigs) {
		return fail(kerr.ClusterAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Message)
	}
	f, code, msg := parseQuotaFilter(req)
	if code != 0 {
		return fail(code, msg)
	}
	h.quotas.mu.Lock()
	var matched []storage.Quota
	for e, v := range h.quotas.m {
		if f.matches(e) {
			matched = append(matched, storage.Quota{Entity: e, Values: v})
		}
	}
	// Entities without a user first, then the default, then by name;
	// client ids the same way within each.
	slices.SortFunc(matched, func(x, y storage.Quota) int {
		a, b := x.Entity, y.Entity
		return cmp.Or(cmp.Compare(quotaRank(a.HasUser(), a.UserDefault), quotaRank(b.HasUser(), b.UserDefault)), strings.Compare(a.User, b.User),
			cmp.Compare(quotaRank(a.HasClientID(), a.ClientDefault), quotaRank(b.HasClientID(), b.ClientDefault)), strings.Compare(a.ClientID, b.ClientID))
	})
	for _, q := range matched {
		entry := kmsg.NewDescribeClientQuotasResponseEntry()
		if q.Entity.HasUser() {
			c := kmsg.NewDescribeClientQuotasResponseEntryEntity()
			c.Type, c.Name = quotaEntityUser, quotaName(q.Entity.User, q.Entity.UserDefault)
			entry.Entity = append(entry.Entity, c)
		}
		if q.Entity.HasClientID() {
			c := kmsg.NewDescribeClientQuotasResponseEntryEntity()
			c.Type, c.Name = quotaEntityClientID, quotaName(q.Entity.ClientID, q.Entity.ClientDefault)
			entry.Entity = append(entry.Entity, c)
		}
		for _, k := range slices.Sorted(maps.Keys(q.Values)) {
			v := kmsg.NewDescribeClientQuotasResponseEntryValue()
			v.Key, v.Value = k, q.Values[k]
			entry.Values = append(entry.Values, v)
		}
		resp.Entries = append(resp.Entries, entry)
	}
	h.quotas.mu.Unlock()
	return resp
}

// parseQuotaFilter validates req's components as Kafka (KRaft) does; a
// non-zero code is the error to answer.
func parseQuotaFilter(req *kmsg.DescribeClientQuotasRequest) (f quotaFilter, code int16, msg string) {
	f = quotaFilter{exact: map[string]*string{}, any: map[string]bool{}, strict: req.Strict}
	has := func(t string) bool { _, ok := f.exact[t]; return ok || f.any[t] }
	for _, c := range req.Components {
		switch {
		case c.EntityType == "":
			return f, kerr.InvalidRequest.Code, "Invalid empty entity type."
		case has(c.EntityType):
			return f, kerr.InvalidRequest.Code, "Entity type " + c.EntityType + " cannot appear more than once in the filter."
		case c.EntityType != quotaEntityUser && c.EntityType != quotaEntityClientID && c.EntityType != quotaEntityIP:
			return f, kerr.UnsupportedVersion.Code, "Unsupported entity type " + c.EntityType
		}
		switch c.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if c.Match == nil {
				return f, kerr.InvalidRequest.Code, "Request specified MATCH_TYPE_EXACT, but set match string to null."
			}
			f.exact[c.EntityType] = c.Match
		case kmsg.QuotasMatchTypeDefault:
			if c.Match != nil {
				return f, kerr.InvalidRequest.Code, "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
			}
			f.exact[c.EntityType] = nil
		case kmsg.QuotasMatchTypeAny:
			if c.Match != nil {
				return f, kerr.InvalidRequest.Code, "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
			}
			f.any[c.EntityType] = true
		default:
			return f, kerr.UnsupportedVersion.Code, "Unknown match type " + c.MatchType.String()
		}
	}
	if has(quotaEntityIP) && (has(quotaEntityUser) || has(quotaEntityClientID)) {
		return f, kerr.InvalidRequest.Code, "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component."
	}
	return f, 0, ""
}

// matches reports whether the filter selects e.
func (f *quotaFilter) matches(e storage.QuotaEntity) bool {
	type comp struct {
		has  bool
		name *string
	}
	comps := map[string]comp{
		quotaEntityUser:     {e.HasUser(), quotaName(e.User, e.UserDefault)},
		quotaEntityClientID: {e.HasClientID(), quotaName(e.ClientID, e.ClientDefault)},
	}
	if f.strict {
		n := 0
		for _, c := range comps {
			if c.has {
				n++
			}
		}
		if n != len(f.exact)+len(f.any) {
			return false
		}
	}
	for t, want := range f.exact {
		c := comps[t] // ip: never present
		if !c.has || (want == nil) != (c.name == nil) || (want != nil && *want != *c.name) {
			return false
		}
	}
	for t := range f.any {
		if !comps[t].has {
			return false
		}
	}
	return true
}

// quotaName is a component's name on the wire: nil for the default.
func quotaName(name string, isDefault bool) *string {
	if isDefault {
		return nil
	}
	return &name
}

// quotaRank orders a component: absent, the default, then named.
func quotaRank(has, isDefault bool) int {
	switch {
	case !has:
		return 0
	case isDefault:
		return 1
	}
	return 2
}
