package kafka

// DescribeUserScramCredentials (key 50), version 0 (KIP-554).
//
// Behaviour: lists each asked user's SCRAM mechanisms with their iteration
// counts, never a salt or key. A null or empty user list describes every
// user. An unknown user gets RESOURCE_NOT_FOUND, a user asked twice
// DUPLICATE_RESOURCE, each in its own result.
//
// Needs DESCRIBE on the cluster: without it the response's top-level
// error is CLUSTER_AUTHORIZATION_FAILED, as in Kafka.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

func init() { register(50, 0, 0, (*Handler).describeUserScram) }

func (h *Handler) describeUserScram(r *request) {
	req := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	if !h.parse(r, req) {
		return
	}
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !h.authorizedCluster(r, acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		resp.ErrorMessage = kmsg.StringPtr(kerr.ClusterAuthorizationFailed.Message)
		r.respond(resp)
		return
	}
	names := make([]string, 0, len(req.Users))
	seen := make(map[string]int, len(req.Users))
	for _, u := range req.Users {
		seen[u.Name]++
		if seen[u.Name] == 1 {
			names = append(names, u.Name)
		}
	}
	if len(req.Users) == 0 {
		names = h.cfg.Users.Names()
	}
	for _, name := range names {
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = name
		switch {
		case seen[name] > 1:
			res.ErrorCode = kerr.DuplicateResource.Code
			res.ErrorMessage = kmsg.StringPtr("Cannot describe SCRAM credentials for the same user twice in a single request: " + name)
		default:
			for _, m := range scramMechanisms {
				if c, ok := h.cfg.Users.Get(name, m); ok {
					ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
					ci.Mechanism, ci.Iterations = int8(m), c.Iterations
					res.CredentialInfos = append(res.CredentialInfos, ci)
				}
			}
			if len(res.CredentialInfos) == 0 {
				res.ErrorCode = kerr.ResourceNotFound.Code
				res.ErrorMessage = kmsg.StringPtr("Attempt to describe nonexistent SCRAM credential for user: " + name)
			}
		}
		resp.Results = append(resp.Results, res)
	}
	r.respond(resp)
}
