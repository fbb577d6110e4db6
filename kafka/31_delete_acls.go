package kafka

// DeleteAcls (key 31), versions 0-3.
//
// Behaviour: each filter (Kafka's AclBindingFilter, package acl) deletes
// the ACLs it matches; the result of each filter lists them. The deletion
// is durable (fsynced in the metadata log) before the answer. An invalid
// filter answers INVALID_REQUEST in its result. Needs ALTER on the cluster
// (CLUSTER_AUTHORIZATION_FAILED). Without an authorizer every result is
// SECURITY_DISABLED, as in Kafka.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const deleteACLsKey = 31

func init() { register(deleteACLsKey, 0, 3, (*Handler).deleteACLs) }

func (h *Handler) deleteACLs(r *request) {
	req := kmsg.NewPtrDeleteACLsRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrDeleteACLsResponse()
	resp.Version = r.version
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	setAll := func(code int16, msg string) {
		for i := range resp.Results {
			if resp.Results[i].ErrorCode == 0 {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, &msg
				resp.Results[i].MatchingACLs = nil
			}
		}
	}
	switch {
	case h.cfg.Authorizer == nil:
		setAll(kerr.SecurityDisabled.Code, securityDisabledMsg)
		r.respond(resp)
		return
	case !h.authorizedCluster(r, acl.OpAlter):
		setAll(kerr.ClusterAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Message)
		r.respond(resp)
		return
	}
	filters := make([]acl.Filter, len(req.Filters))
	for i, f := range req.Filters {
		filters[i] = aclFilter(f.ResourceType, f.ResourceName, f.ResourcePatternType, f.Principal, f.Host, f.Operation, f.PermissionType)
		if err := filters[i].Validate(); err != nil {
			msg := err.Error()
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, &msg
		}
	}
	h.async(r, func() {
		h.acls.mu.Lock()
		defer h.acls.mu.Unlock()
		auth := h.cfg.Authorizer
		seen := map[acl.Binding]bool{}
		var gone []acl.Binding
		for i, f := range filters {
			if resp.Results[i].ErrorCode != 0 {
				continue
			}
			for _, b := range auth.Bindings(f) {
				m := kmsg.NewDeleteACLsResponseResultMatchingACL()
				m.ResourceType, m.ResourceName, m.ResourcePatternType = kmsg.ACLResourceType(b.ResourceType), b.Name, kmsg.ACLResourcePatternType(b.Pattern)
				m.Principal, m.Host, m.Operation, m.PermissionType = b.Principal, b.Host, kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
				resp.Results[i].MatchingACLs = append(resp.Results[i].MatchingACLs, m)
				if !seen[b] {
					seen[b] = true
					gone = append(gone, b)
				}
			}
		}
		if len(gone) > 0 {
			if err := h.cfg.ACLStore.DeleteACLs(bindingsToStorage(gone)); err != nil {
				setAll(h.errCode(err), err.Error())
			} else {
				auth.Remove(gone...)
			}
		}
		r.respond(resp)
	})
}
