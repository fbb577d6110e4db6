package kafka

// Heartbeat (key 12), versions 0-4.
//
// Behaviour: keeps a member's session alive. Answers as Kafka:
// REBALANCE_IN_PROGRESS while the group prepares a rebalance (the member
// must rejoin), ILLEGAL_GENERATION for a stale generation, UNKNOWN_MEMBER_ID
// for a member the group does not have (or an unknown group, or a
// consumer-protocol group: it has no classic members),
// FENCED_INSTANCE_ID for a replaced static member (v3+).
//
// ACLs (-authorizer): READ on the group (GROUP_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const heartbeatKey = 12

func init() { register(heartbeatKey, 0, 4, (*Handler).heartbeat) }

func (h *Handler) heartbeat(r *request) {
	req := kmsg.NewPtrHeartbeatRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups == nil {
		resp := kmsg.NewPtrHeartbeatResponse()
		resp.Version, resp.ErrorCode = r.version, noCoordinator
		r.respond(resp)
		return
	}
	if !h.groupAllowed(r, acl.OpRead, req.Group) {
		resp := kmsg.NewPtrHeartbeatResponse()
		resp.Version, resp.ErrorCode = r.version, groupAuthFailed
		r.respond(resp)
		return
	}
	h.cfg.Groups.Heartbeat(req, groupRespond[*kmsg.HeartbeatResponse](r))
}
