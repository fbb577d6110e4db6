package kafka

// JoinGroup (key 11), versions 0-9.
//
// Behaviour (group/classic.go has the state machine): a first join with an
// empty member id gets MEMBER_ID_REQUIRED and an id to rejoin with (v4+,
// KIP-394); static members (v5+, KIP-345) join directly, and a restarted
// instance takes over its slot without a rebalance when its protocols are
// unchanged (v9+ tells a rejoining leader to skip assignment, KIP-814;
// older versions return the old leader id instead). The join is parked
// until the rebalance completes (all members rejoined, or the rebalance
// timeout); a new group waits group.initial.rebalance.delay.ms for more
// members first. The leader gets every member's metadata; the protocol is
// the one most members prefer among those all support. Errors as Kafka:
// INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT (outside the broker's min/max),
// INCONSISTENT_GROUP_PROTOCOL, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
// GROUP_MAX_SIZE_REACHED; INCONSISTENT_GROUP_PROTOCOL for a consumer-protocol
// group (KIP-848) with members (Kafka with migration disabled; an empty one
// becomes classic). v0 has no rebalance timeout: the session timeout
// is used. A member whose protocol metadata alone would not fit in the
// group's stored generation (-group-metadata-max-bytes, Kafka's
// __consumer_offsets max.message.bytes) gets UNKNOWN_SERVER_ERROR, Kafka's
// answer to a group metadata append over that limit; a group id over 65535
// bytes, which the offsets log cannot store, gets INVALID_GROUP_ID. Reason (v8+, KIP-800) is accepted and not logged.
//
// ACLs (-authorizer): READ on the group (GROUP_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const joinGroupKey = 11

func init() { register(joinGroupKey, 0, 9, (*Handler).joinGroup) }

func (h *Handler) joinGroup(r *request) {
	req := kmsg.NewPtrJoinGroupRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups == nil {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Version, resp.ErrorCode, resp.Generation = r.version, noCoordinator, -1
		r.respond(resp)
		return
	}
	if !h.groupAllowed(r, acl.OpRead, req.Group) {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Version, resp.ErrorCode, resp.Generation = r.version, groupAuthFailed, -1
		r.respond(resp)
		return
	}
	h.cfg.Groups.JoinGroup(string(r.clientID), clientHost(r.nr.Conn.Remote), req, groupRespond[*kmsg.JoinGroupResponse](r))
}
