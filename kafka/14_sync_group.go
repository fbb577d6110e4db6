package kafka

// SyncGroup (key 14), versions 0-5.
//
// Behaviour: after a join completes, every member sends SyncGroup; the
// leader's carries the assignment. Followers' requests are parked until the
// leader's arrives, then all are answered with their assignment (members the
// leader left out get an empty one). Errors as Kafka: UNKNOWN_MEMBER_ID,
// FENCED_INSTANCE_ID (v3+), ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS (a new
// rebalance started), INCONSISTENT_GROUP_PROTOCOL (v5+ protocol type or name
// not the group's). Members that never sync within the rebalance timeout are
// removed and the group rebalances. v5+ answers the protocol type and name.
// The leader's SyncGroup is answered after the generation (every member's
// subscription and assignment) is fdatasynced; a generation larger than
// -group-metadata-max-bytes is not stored and every member gets
// UNKNOWN_SERVER_ERROR (Kafka: a group metadata append over
// __consumer_offsets' max.message.bytes), then the group rebalances.
//
// ACLs (-authorizer): READ on the group (GROUP_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const syncGroupKey = 14

func init() { register(syncGroupKey, 0, 5, (*Handler).syncGroup) }

func (h *Handler) syncGroup(r *request) {
	req := kmsg.NewPtrSyncGroupRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups == nil {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.Version, resp.ErrorCode = r.version, noCoordinator
		r.respond(resp)
		return
	}
	if !h.groupAllowed(r, acl.OpRead, req.Group) {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.Version, resp.ErrorCode = r.version, groupAuthFailed
		r.respond(resp)
		return
	}
	h.cfg.Groups.SyncGroup(req, groupRespond[*kmsg.SyncGroupResponse](r))
}
