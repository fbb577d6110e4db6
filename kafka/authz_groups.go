package kafka

// ACL checks of the group APIs (Kafka's table, KIP-231 for ListGroups):
// JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ConsumerGroupHeartbeat READ
// on the group; DescribeGroups, ConsumerGroupDescribe, FindCoordinator
// DESCRIBE on the group; DeleteGroups DELETE on the group; ListGroups
// DESCRIBE on the cluster, else only the groups it may describe;
// OffsetCommit READ on the group and READ on each topic; OffsetFetch
// DESCRIBE on the group and on each topic; OffsetDelete DELETE on the group
// and READ on each topic. A refused group answers
// GROUP_AUTHORIZATION_FAILED, a refused topic TOPIC_AUTHORIZATION_FAILED
// for its partitions; what is allowed goes to the coordinator and the two
// parts are merged back in request order.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

var groupAuthFailed = kerr.GroupAuthorizationFailed.Code

func (h *Handler) groupAllowed(r *request, op acl.Operation, group string) bool {
	return h.authorized(r, op, acl.ResourceGroup, group)
}

// splitGroups returns the groups allowed op and, per index of groups, whether
// it was refused (nil when none is).
func (h *Handler) splitGroups(r *request, op acl.Operation, groups []string) (allowed []string, refused []bool) {
	for i, g := range groups {
		if h.groupAllowed(r, op, g) {
			allowed = append(allowed, g)
			continue
		}
		if refused == nil {
			refused = make([]bool, len(groups))
		}
		refused[i] = true
	}
	return allowed, refused
}

// mergeGroups puts the coordinator's answers (for the allowed groups, in
// order) and refusals back in request order.
func mergeGroups[G any](n int, refused []bool, got []G, refusal func(i int) G) []G {
	if refused == nil {
		return got
	}
	out := make([]G, 0, n)
	j := 0
	for i := 0; i < n; i++ {
		if refused[i] {
			out = append(out, refusal(i))
		} else if j < len(got) {
			out = append(out, got[j])
			j++
		}
	}
	return out
}

func (h *Handler) describeGroupsAuthz(r *request, req *kmsg.DescribeGroupsRequest) {
	all := req.Groups
	allowed, refused := h.splitGroups(r, acl.OpDescribe, all)
	req.Groups = allowed
	h.cfg.Groups.DescribeGroups(req, func(resp *kmsg.DescribeGroupsResponse) {
		resp.Groups = mergeGroups(len(all), refused, resp.Groups, func(i int) kmsg.DescribeGroupsResponseGroup {
			g := kmsg.NewDescribeGroupsResponseGroup()
			g.Group, g.ErrorCode = all[i], groupAuthFailed
			return g
		})
		if req.IncludeAuthorizedOperations {
			for i := range resp.Groups {
				if g := &resp.Groups[i]; g.ErrorCode == 0 {
					g.AuthorizedOperations = h.authorizedOps(r, acl.ResourceGroup, g.Group, groupAuthOps)
				}
			}
		}
		r.respond(resp)
	})
}

func (h *Handler) consumerGroupDescribeAuthz(r *request, req *kmsg.ConsumerGroupDescribeRequest) {
	all := req.Groups
	allowed, refused := h.splitGroups(r, acl.OpDescribe, all)
	req.Groups = allowed
	h.cfg.Groups.ConsumerGroupDescribe(req, func(resp *kmsg.ConsumerGroupDescribeResponse) {
		resp.Groups = mergeGroups(len(all), refused, resp.Groups, func(i int) kmsg.ConsumerGroupDescribeResponseGroup {
			g := kmsg.NewConsumerGroupDescribeResponseGroup()
			g.Group, g.ErrorCode = all[i], groupAuthFailed
			return g
		})
		if req.IncludeAuthorizedOperations {
			for i := range resp.Groups {
				if g := &resp.Groups[i]; g.ErrorCode == 0 {
					g.AuthorizedOperations = h.authorizedOps(r, acl.ResourceGroup, g.Group, groupAuthOps)
				}
			}
		}
		r.respond(resp)
	})
}

func (h *Handler) deleteGroupsAuthz(r *request, req *kmsg.DeleteGroupsRequest) {
	all := req.Groups
	allowed, refused := h.splitGroups(r, acl.OpDelete, all)
	req.Groups = allowed
	h.cfg.Groups.DeleteGroups(req, func(resp *kmsg.DeleteGroupsResponse) {
		resp.Groups = mergeGroups(len(all), refused, resp.Groups, func(i int) kmsg.DeleteGroupsResponseGroup {
			g := kmsg.NewDeleteGroupsResponseGroup()
			g.Group, g.ErrorCode = all[i], groupAuthFailed
			return g
		})
		r.respond(resp)
	})
}

func (h *Handler) listGroupsAuthz(r *request, req *kmsg.ListGroupsRequest) {
	if h.authorizedCluster(r, acl.OpDescribe) {
		h.cfg.Groups.ListGroups(req, groupRespond[*kmsg.ListGroupsResponse](r))
		return
	}
	h.cfg.Groups.ListGroups(req, func(resp *kmsg.ListGroupsResponse) {
		kept := resp.Groups[:0]
		for _, g := range resp.Groups {
			if h.groupAllowed(r, acl.OpDescribe, g.Group) {
				kept = append(kept, g)
			}
		}
		resp.Groups = kept
		r.respond(resp)
	})
}

// offsetCommitAuthz: READ on the group, then READ on each topic.
func (h *Handler) offsetCommitAuthz(r *request, req *kmsg.OffsetCommitRequest, respond func(*kmsg.OffsetCommitResponse)) {
	groupOK := h.groupAllowed(r, acl.OpRead, req.Group)
	var refused []kmsg.OffsetCommitResponseTopic
	var allowed []kmsg.OffsetCommitRequestTopic
	for _, t := range req.Topics {
		code := int16(0)
		switch {
		case !groupOK:
			code = groupAuthFailed
		case !h.authorized(r, acl.OpRead, acl.ResourceTopic, t.Topic):
			code = kerr.TopicAuthorizationFailed.Code
		default:
			allowed = append(allowed, t)
			continue
		}
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		refused = append(refused, rt)
	}
	if len(refused) > 0 && len(allowed) == 0 {
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		resp.Version, resp.Topics = r.version, refused
		respond(resp)
		return
	}
	req.Topics = allowed
	h.cfg.Groups.OffsetCommit(req, func(resp *kmsg.OffsetCommitResponse) {
		resp.Topics = append(resp.Topics, refused...)
		respond(resp)
	})
}

// offsetFetchAuthz: DESCRIBE on each group, then DESCRIBE on each topic
// (a fetch of all topics leaves out the ones refused).
func (h *Handler) offsetFetchAuthz(r *request, req *kmsg.OffsetFetchRequest, respond func(*kmsg.OffsetFetchResponse)) {
	if r.version < 8 {
		if !h.groupAllowed(r, acl.OpDescribe, req.Group) {
			resp := kmsg.NewPtrOffsetFetchResponse()
			resp.Version, resp.ErrorCode = r.version, groupAuthFailed
			for _, t := range req.Topics { // v0-1 have no top-level error
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset, rp.ErrorCode = p, -1, groupAuthFailed
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			respond(resp)
			return
		}
		h.cfg.Groups.OffsetFetch(req, func(resp *kmsg.OffsetFetchResponse) {
			for i := range resp.Topics {
				t := &resp.Topics[i]
				if !h.authorized(r, acl.OpDescribe, acl.ResourceTopic, t.Topic) {
					for j := range t.Partitions {
						p := &t.Partitions[j]
						p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = -1, -1, nil, kerr.TopicAuthorizationFailed.Code
					}
				}
			}
			if req.Topics == nil {
				resp.Topics = dropEmptyTopics(resp.Topics, func(t *kmsg.OffsetFetchResponseTopic) bool {
					return len(t.Partitions) > 0 && t.Partitions[0].ErrorCode == kerr.TopicAuthorizationFailed.Code
				})
			}
			respond(resp)
		})
		return
	}
	// v8+: per group.
	refused := map[string]bool{}
	for _, g := range req.Groups {
		if !h.groupAllowed(r, acl.OpDescribe, g.Group) {
			refused[g.Group] = true
		}
	}
	h.cfg.Groups.OffsetFetch(req, func(resp *kmsg.OffsetFetchResponse) {
		for i := range resp.Groups {
			g := &resp.Groups[i]
			if refused[g.Group] {
				g.Topics, g.ErrorCode = nil, groupAuthFailed
				continue
			}
			all := false
			for _, rg := range req.Groups {
				if rg.Group == g.Group {
					all = rg.Topics == nil
				}
			}
			for j := range g.Topics {
				t := &g.Topics[j]
				if !h.authorized(r, acl.OpDescribe, acl.ResourceTopic, t.Topic) {
					for k := range t.Partitions {
						p := &t.Partitions[k]
						p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = -1, -1, nil, kerr.TopicAuthorizationFailed.Code
					}
				}
			}
			if all {
				g.Topics = dropEmptyTopics(g.Topics, func(t *kmsg.OffsetFetchResponseGroupTopic) bool {
					return len(t.Partitions) > 0 && t.Partitions[0].ErrorCode == kerr.TopicAuthorizationFailed.Code
				})
			}
		}
		respond(resp)
	})
}

func dropEmptyTopics[T any](ts []T, drop func(*T) bool) []T {
	kept := ts[:0]
	for i := range ts {
		if !drop(&ts[i]) {
			kept = append(kept, ts[i])
		}
	}
	return kept
}

// offsetDeleteAuthz: DELETE on the group, READ on each topic.
func (h *Handler) offsetDeleteAuthz(r *request, req *kmsg.OffsetDeleteRequest) {
	if !h.groupAllowed(r, acl.OpDelete, req.Group) {
		resp := kmsg.NewPtrOffsetDeleteResponse()
		resp.Version, resp.ErrorCode = r.version, groupAuthFailed
		r.respond(resp)
		return
	}
	var refused []kmsg.OffsetDeleteResponseTopic
	var allowed []kmsg.OffsetDeleteRequestTopic
	for _, t := range req.Topics {
		if h.authorized(r, acl.OpRead, acl.ResourceTopic, t.Topic) {
			allowed = append(allowed, t)
			continue
		}
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, kerr.TopicAuthorizationFailed.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		refused = append(refused, rt)
	}
	req.Topics = allowed
	h.cfg.Groups.OffsetDelete(req, func(resp *kmsg.OffsetDeleteResponse) {
		if resp.ErrorCode == 0 {
			resp.Topics = append(resp.Topics, refused...)
		}
		r.respond(resp)
	})
}
