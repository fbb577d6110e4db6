package kafka

// CreateAcls (key 30), versions 0-3.
//
// Behaviour: validates each creation as Kafka does (a concrete resource
// type, LITERAL or PREFIXED pattern, a concrete operation and permission, a
// non-empty name, "kafka-cluster" for the cluster, a Type:Name principal;
// INVALID_REQUEST otherwise), makes the valid ones durable (fsynced in the
// metadata log) and then enforces them. An ACL that exists already is
// accepted and kept once. Needs ALTER on the cluster
// (CLUSTER_AUTHORIZATION_FAILED). Without an authorizer every result is
// SECURITY_DISABLED, as in Kafka. v0 creations are literal.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const createACLsKey = 30

func init() { register(createACLsKey, 0, 3, (*Handler).createACLs) }

func (h *Handler) createACLs(r *request) {
	req := kmsg.NewPtrCreateACLsRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrCreateACLsResponse()
	resp.Version = r.version
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	setAll := func(code int16, msg string) {
		for i := range resp.Results {
			if resp.Results[i].ErrorCode == 0 {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, &msg
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
	var valid []acl.Binding
	for i, c := range req.Creations {
		b := acl.Binding{ResourceType: acl.ResourceType(c.ResourceType), Name: c.ResourceName, Pattern: acl.PatternType(c.ResourcePatternType),
			Principal: c.Principal, Host: c.Host, Operation: acl.Operation(c.Operation), Permission: acl.Permission(c.PermissionType)}
		if err := b.Validate(); err != nil {
			msg := err.Error()
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, &msg
			continue
		}
		valid = append(valid, b)
	}
	if len(valid) == 0 {
		r.respond(resp)
		return
	}
	h.async(r, func() {
		h.acls.mu.Lock()
		err := h.cfg.ACLStore.CreateACLs(bindingsToStorage(valid))
		if err == nil {
			h.cfg.Authorizer.Add(valid...)
		}
		h.acls.mu.Unlock()
		if err != nil {
			setAll(h.errCode(err), err.Error())
		}
		r.respond(resp)
	})
}
