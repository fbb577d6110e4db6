package kafka

// DeleteGroups (key 42), versions 0-3 (v3, KIP-932, is v2 that may name
// share groups; klite has none, so it is served as v2).
//
// Behaviour: deletes Empty groups and their committed offsets, durably
// (fdatasynced) before answering. Per group: GROUP_ID_NOT_FOUND for a group
// that does not exist, NON_EMPTY_GROUP while it has members,
// INVALID_GROUP_ID for an empty name.
//
// ACLs (-authorizer): DELETE on each group (GROUP_AUTHORIZATION_FAILED), authz_groups.go.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

const deleteGroupsKey = 42

func init() { register(deleteGroupsKey, 0, 3, (*Handler).deleteGroups) }

func (h *Handler) deleteGroups(r *request) {
	req := kmsg.NewPtrDeleteGroupsRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups == nil {
		resp := kmsg.NewPtrDeleteGroupsResponse()
		resp.Version = r.version
		for _, g := range req.Groups {
			dg := kmsg.NewDeleteGroupsResponseGroup()
			dg.Group, dg.ErrorCode = g, noCoordinator
			resp.Groups = append(resp.Groups, dg)
		}
		r.respond(resp)
		return
	}
	if h.cfg.Authorizer != nil {
		h.deleteGroupsAuthz(r, req)
		return
	}
	h.cfg.Groups.DeleteGroups(req, groupRespond[*kmsg.DeleteGroupsResponse](r))
}
