package kafka

// LeaveGroup (key 13), versions 0-5.
//
// Behaviour: v0-2 remove one member by id (the error is top-level); v3+
// remove a batch, each by member id or, with an empty member id, by
// group.instance.id (KIP-345 administrative removal), with an error per
// member. A removal rebalances the group. Unknown members answer
// UNKNOWN_MEMBER_ID, a replaced static member FENCED_INSTANCE_ID. Reason
// (v5+, KIP-800) is accepted.
//
// ACLs (-authorizer): READ on the group (GROUP_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const leaveGroupKey = 13

func init() { register(leaveGroupKey, 0, 5, (*Handler).leaveGroup) }

func (h *Handler) leaveGroup(r *request) {
	req := kmsg.NewPtrLeaveGroupRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups == nil {
		resp := kmsg.NewPtrLeaveGroupResponse()
		resp.Version, resp.ErrorCode = r.version, noCoordinator
		r.respond(resp)
		return
	}
	if !h.groupAllowed(r, acl.OpRead, req.Group) {
		resp := kmsg.NewPtrLeaveGroupResponse()
		resp.Version, resp.ErrorCode = r.version, groupAuthFailed
		r.respond(resp)
		return
	}
	h.cfg.Groups.LeaveGroup(req, groupRespond[*kmsg.LeaveGroupResponse](r))
}
