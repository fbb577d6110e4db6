package kafka

// DescribeAcls (key 29), versions 0-3.
//
// Behaviour: answers the ACLs the filter matches (Kafka's AclBindingFilter:
// ANY, MATCH, LITERAL, PREFIXED; package acl), grouped by resource
// pattern. Needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED).
// An invalid filter answers INVALID_REQUEST. Without an authorizer it
// answers SECURITY_DISABLED, as Kafka does. v0 knows only literal
// patterns: kmsg fills the filter's pattern type with LITERAL.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const describeACLsKey = 29

func init() { register(describeACLsKey, 0, 3, (*Handler).describeACLs) }

func (h *Handler) describeACLs(r *request) {
	req := kmsg.NewPtrDescribeACLsRequest()
	if !h.parse(r, req) {
		return
	}
	r.respond(h.describeACLsResponse(r, req))
}

func (h *Handler) describeACLsResponse(r *request, req *kmsg.DescribeACLsRequest) *kmsg.DescribeACLsResponse {
	resp := kmsg.NewPtrDescribeACLsResponse()
	resp.Version = r.version
	fail := func(code int16, msg string) *kmsg.DescribeACLsResponse {
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp
	}
	if h.cfg.Authorizer == nil {
		return fail(kerr.SecurityDisabled.Code, securityDisabledMsg)
	}
	if !h.authorizedCluster(r, acl.OpDescribe) {
		return fail(kerr.ClusterAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Message)
	}
	f := aclFilter(req.ResourceType, req.ResourceName, req.ResourcePatternType, req.Principal, req.Host, req.Operation, req.PermissionType)
	if err := f.Validate(); err != nil {
		return fail(kerr.InvalidRequest.Code, err.Error())
	}
	// Bindings are sorted by resource type, pattern and name: one pass
	// groups them.
	for _, b := range h.cfg.Authorizer.Bindings(f) {
		n := len(resp.Resources)
		if n == 0 || resp.Resources[n-1].ResourceType != kmsg.ACLResourceType(b.ResourceType) ||
			resp.Resources[n-1].ResourcePatternType != kmsg.ACLResourcePatternType(b.Pattern) ||
			resp.Resources[n-1].ResourceName != b.Name {
			res := kmsg.NewDescribeACLsResponseResource()
			res.ResourceType, res.ResourceName, res.ResourcePatternType = kmsg.ACLResourceType(b.ResourceType), b.Name, kmsg.ACLResourcePatternType(b.Pattern)
			resp.Resources = append(resp.Resources, res)
			n++
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host, a.Operation, a.PermissionType = b.Principal, b.Host, kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
		resp.Resources[n-1].ACLs = append(resp.Resources[n-1].ACLs, a)
	}
	return resp
}
