package group

// Admin views of groups: ListGroups, DescribeGroups, DeleteGroups.

import (
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// authorizedOperationsOmitted is Kafka's INT32_MIN "not requested" value.
const authorizedOperationsOmitted = -2147483648

// ListGroups handles a ListGroups request: every group not Dead, filtered by
// state (v4+, KIP-518, case-insensitive) and by type (v5+, KIP-848:
// "classic" or "consumer").
func (c *Coordinator) ListGroups(req *kmsg.ListGroupsRequest, done func(*kmsg.ListGroupsResponse)) {
	c.submit(func() {
		resp := kmsg.NewPtrListGroupsResponse()
		resp.Version = req.Version
		names := slices.Sorted(maps.Keys(c.groups))
		for _, name := range names {
			g := c.groups[name]
			st, typ := g.state.String(), "classic"
			if g.cg != nil {
				st, typ = g.cg.stateName(), "consumer"
			}
			if g.state == stateDead || !matchFilter(req.StatesFilter, st) || !matchFilter(req.TypesFilter, typ) {
				continue
			}
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = name, g.protocolType, st, typ
			resp.Groups = append(resp.Groups, lg)
		}
		done(resp)
	})
}

func matchFilter(filter []string, v string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if strings.EqualFold(f, v) {
			return true
		}
	}
	return false
}

// DescribeGroups handles a DescribeGroups request. Member metadata and
// assignments are shown only for Stable groups, as in Kafka. A group that
// does not exist, or is a consumer-protocol group (KIP-848: those are
// described by ConsumerGroupDescribe), is described as Dead (before v6) or
// GROUP_ID_NOT_FOUND (v6+, KIP-1043), as Kafka does.
func (c *Coordinator) DescribeGroups(req *kmsg.DescribeGroupsRequest, done func(*kmsg.DescribeGroupsResponse)) {
	c.submit(func() {
		resp := kmsg.NewPtrDescribeGroupsResponse()
		resp.Version = req.Version
		for _, name := range req.Groups {
			dg := kmsg.NewDescribeGroupsResponseGroup()
			dg.Group = name
			dg.AuthorizedOperations = authorizedOperationsOmitted
			g := c.groups[name]
			switch {
			case g == nil || g.state == stateDead || g.cg != nil:
				dg.State = stateDead.String()
				if req.Version >= 6 {
					dg.ErrorCode = kerr.GroupIDNotFound.Code
					dg.ErrorMessage = strp("Group " + name + " not found.")
					if g != nil && g.cg != nil {
						dg.ErrorMessage = strp("Group " + name + " is not a classic group.")
					}
				}
			default:
				dg.State, dg.ProtocolType = g.state.String(), g.protocolType
				if g.state == stateStable {
					dg.Protocol = g.protocol
				}
				ids := slices.Sorted(maps.Keys(g.members))
				for _, id := range ids {
					m := g.members[id]
					dm := kmsg.NewDescribeGroupsResponseGroupMember()
					dm.MemberID, dm.ClientID, dm.ClientHost = m.id, m.clientID, m.clientHost
					if m.static() {
						dm.InstanceID = strp(m.instanceID)
					}
					if g.state == stateStable {
						dm.ProtocolMetadata = m.metadata(g.protocol)
						dm.MemberAssignment = m.assignment
					}
					dg.Members = append(dg.Members, dm)
				}
			}
			resp.Groups = append(resp.Groups, dg)
		}
		done(resp)
	})
}

// DeleteGroups handles a DeleteGroups request: only Empty groups can be
// deleted; their offsets go with them, durably, before the answer.
func (c *Coordinator) DeleteGroups(req *kmsg.DeleteGroupsRequest, done func(*kmsg.DeleteGroupsResponse)) {
	c.submit(func() {
		resp := kmsg.NewPtrDeleteGroupsResponse()
		resp.Version = req.Version
		var deleted []int
		for _, name := range req.Groups {
			dg := kmsg.NewDeleteGroupsResponseGroup()
			dg.Group = name
			g := c.groups[name]
			switch {
			case name == "":
				dg.ErrorCode = kerr.InvalidGroupID.Code
			case g == nil || g.state == stateDead:
				dg.ErrorCode = kerr.GroupIDNotFound.Code
			case g.state != stateEmpty || (g.cg != nil && len(g.cg.ghosts) > 0):
				dg.ErrorCode = kerr.NonEmptyGroup.Code
			default:
				c.forget(g)
				deleted = append(deleted, len(resp.Groups))
			}
			resp.Groups = append(resp.Groups, dg)
		}
		if len(deleted) == 0 {
			done(resp)
			return
		}
		var rec []byte
		var applies []func(*logState)
		for _, i := range deleted {
			name := resp.Groups[i].Group
			rec = append(rec, deleteGroupRecord(name)...)
			applies = append(applies, applyDeleteGroup(name))
		}
		c.offs.submit(&logOp{
			rec: rec,
			apply: func(st *logState) {
				for _, a := range applies {
					a(st)
				}
			},
			done: func(err error) {
				if err != nil {
					for _, i := range deleted {
						resp.Groups[i].ErrorCode = kerr.NotCoordinator.Code
					}
				}
				done(resp)
			},
		})
	})
}
