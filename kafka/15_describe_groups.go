package kafka

// DescribeGroups (key 15), versions 0-6.
//
// Behaviour: state, protocol type, the selected protocol (Stable groups
// only) and members (client id, host as "/ip", instance id v4+); member
// metadata and assignments only while Stable, as in Kafka. A group that
// does not exist is described as Dead with no error before v6, and answers
// GROUP_ID_NOT_FOUND from v6 (KIP-1043); so does a consumer-protocol group
// (KIP-848: ConsumerGroupDescribe describes those), as in Kafka. AuthorizedOperations (v3+) is
// always "not requested" (INT32_MIN): klite has no ACLs.
//
// ACLs (-authorizer): DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED);
// IncludeAuthorizedOperations reports the group operations allowed
// (KIP-430), authz_groups.go.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

const describeGroupsKey = 15

func init() { register(describeGroupsKey, 0, 6, (*Handler).describeGroups) }

func (h *Handler) describeGroups(r *request) {
	req := kmsg.NewPtrDescribeGroupsRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups == nil {
		resp := kmsg.NewPtrDescribeGroupsResponse()
		resp.Version = r.version
		for _, g := range req.Groups {
			dg := kmsg.NewDescribeGroupsResponseGroup()
			dg.Group, dg.ErrorCode = g, noCoordinator
			resp.Groups = append(resp.Groups, dg)
		}
		r.respond(resp)
		return
	}
	if h.cfg.Authorizer != nil {
		h.describeGroupsAuthz(r, req)
		return
	}
	h.cfg.Groups.DescribeGroups(req, groupRespond[*kmsg.DescribeGroupsResponse](r))
}
