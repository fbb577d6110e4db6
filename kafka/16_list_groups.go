package kafka

// ListGroups (key 16), versions 0-5.
//
// Behaviour: every group that is not Dead, including groups that only store
// offsets (empty protocol type), sorted by name. StatesFilter (v4+, KIP-518)
// and TypesFilter (v5+, KIP-848) match case-insensitively. GroupType is
// "classic" or "consumer" (KIP-848 groups, whose states are Empty,
// Assigning, Reconciling and Stable).
//
// ACLs (-authorizer): DESCRIBE on the cluster lists every group; otherwise only the groups
// the principal may describe (KIP-231), authz_groups.go.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

const listGroupsKey = 16

func init() { register(listGroupsKey, 0, 5, (*Handler).listGroups) }

func (h *Handler) listGroups(r *request) {
	req := kmsg.NewPtrListGroupsRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups == nil {
		resp := kmsg.NewPtrListGroupsResponse()
		resp.Version, resp.ErrorCode = r.version, noCoordinator
		r.respond(resp)
		return
	}
	if h.cfg.Authorizer != nil {
		h.listGroupsAuthz(r, req)
		return
	}
	h.cfg.Groups.ListGroups(req, groupRespond[*kmsg.ListGroupsResponse](r))
}
