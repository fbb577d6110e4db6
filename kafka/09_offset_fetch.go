package kafka

// OffsetFetch (key 9), versions 0-10 (v10 names topics by ID: see
// offsets_topic_ids.go).
//
// Behaviour: v0-7 fetch one group, v8+ several groups in one request
// (KIP-709). A null topic list (v2+) returns every committed offset of the
// group; listed partitions never committed answer offset -1 with no error,
// as Kafka does. LeaderEpoch is returned from v5 (-1 when unknown).
// RequireStable (v7+, KIP-447) never waits: klite has no pending
// transactional offsets.
//
// v9's member id and epoch (KIP-848) are checked for consumer-protocol
// groups as Kafka does: a fetch naming a member needs a known member
// (UNKNOWN_MEMBER_ID) and its current epoch (STALE_MEMBER_EPOCH), as a
// group-level error; no member id and epoch -1 (admin clients) always pass.
//
// ACLs (-authorizer): DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED) and on each topic
// (TOPIC_AUTHORIZATION_FAILED; left out of an all-topics fetch),
// authz_groups.go.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

const offsetFetchKey = 9

func init() { register(offsetFetchKey, 0, 10, (*Handler).offsetFetch) }

func (h *Handler) offsetFetch(r *request) {
	req := kmsg.NewPtrOffsetFetchRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups != nil {
		respond := h.fetchByName(req, groupRespond[*kmsg.OffsetFetchResponse](r)) // v10: topic IDs
		if h.cfg.Authorizer != nil {
			h.offsetFetchAuthz(r, req, respond)
			return
		}
		h.cfg.Groups.OffsetFetch(req, respond)
		return
	}
	resp := kmsg.NewPtrOffsetFetchResponse()
	resp.Version = r.version
	resp.ErrorCode = noCoordinator
	for _, g := range req.Groups {
		rg := kmsg.NewOffsetFetchResponseGroup()
		rg.Group, rg.ErrorCode = g.Group, noCoordinator
		resp.Groups = append(resp.Groups, rg)
	}
	r.respond(resp)
}
