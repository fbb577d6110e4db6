package kafka

// OffsetDelete (key 47), version 0 (KIP-496).
//
// Behaviour: deletes committed offsets of a group, durably before answering.
// An Empty group may lose any of them; a live "consumer" group only those of
// topics no member subscribes to (GROUP_SUBSCRIBED_TO_TOPIC per partition);
// other live groups answer NON_EMPTY_GROUP; an unknown group
// GROUP_ID_NOT_FOUND; unknown partitions UNKNOWN_TOPIC_OR_PARTITION.
//
// ACLs (-authorizer): DELETE on the group (GROUP_AUTHORIZATION_FAILED) and READ on each
// topic (TOPIC_AUTHORIZATION_FAILED), authz_groups.go.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

const offsetDeleteKey = 47

func init() { register(offsetDeleteKey, 0, 0, (*Handler).offsetDelete) }

func (h *Handler) offsetDelete(r *request) {
	req := kmsg.NewPtrOffsetDeleteRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups == nil {
		resp := kmsg.NewPtrOffsetDeleteResponse()
		resp.Version, resp.ErrorCode = r.version, noCoordinator
		r.respond(resp)
		return
	}
	if h.cfg.Authorizer != nil {
		h.offsetDeleteAuthz(r, req)
		return
	}
	h.cfg.Groups.OffsetDelete(req, groupRespond[*kmsg.OffsetDeleteResponse](r))
}
