package kafka

// DescribeTopicPartitions (key 75), version 0 (KIP-966), as Kafka 4.x.
//
// Behaviour: the topics named (all topics when none are named), sorted by
// name, with every partition as Metadata describes it (leader NodeID, leader
// epoch 0, replicas and ISR [NodeID], eligible leader replicas and last
// known ELR empty, no offline replicas) and the topic's KIP-430 authorized
// operations. At most ResponsePartitionLimit partitions (capped at
// Config.MaxDescribePartitions, -max-describe-partitions: Kafka's
// max.request.partition.size.limit)
// are returned; when more remain, NextCursor names the topic and partition
// to ask for next. A request Cursor starts the walk at that topic and
// partition; a cursor naming a topic that is not among those named answers
// INVALID_REQUEST for every named topic, as Kafka does. A named topic that
// does not exist answers UNKNOWN_TOPIC_OR_PARTITION. ResponsePartitionLimit
// below 1 takes the cap (Kafka would answer nothing and a cursor at the
// start, so that a paginating client loops forever).
//
// ACLs (-authorizer): DESCRIBE on each named topic
// (TOPIC_AUTHORIZATION_FAILED); with no topics named, those the principal
// may not describe are left out.

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

const describeTopicPartitionsKey = 75

func init() { register(describeTopicPartitionsKey, 0, 0, (*Handler).describeTopicPartitions) }

// defaultMaxDescribePartitions is Config.MaxDescribePartitions' default:
// Kafka's max.request.partition.size.limit default.
const defaultMaxDescribePartitions = 2000

func (h *Handler) describeTopicPartitions(r *request) {
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	if !h.parse(r, req) {
		return
	}
	r.respond(h.describeTopicPartitionsResponse(r, req))
}

func (h *Handler) describeTopicPartitionsResponse(r *request, req *kmsg.DescribeTopicPartitionsRequest) *kmsg.DescribeTopicPartitionsResponse {
	resp := kmsg.NewPtrDescribeTopicPartitionsResponse()
	resp.Version = r.version
	limit := req.ResponsePartitionLimit
	if limit < 1 || limit > h.cfg.MaxDescribePartitions {
		limit = h.cfg.MaxDescribePartitions
	}
	all := len(req.Topics) == 0

	// The names to describe, sorted and deduplicated.
	var names []string
	if all {
		for _, info := range h.allTopics() {
			names = append(names, info.Name)
		}
	} else {
		for _, t := range req.Topics {
			names = append(names, t.Topic)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)

	var startPartition int32
	if c := req.Cursor; c != nil {
		if !all && !slices.Contains(names, c.Topic) {
			for _, name := range names {
				rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
				rt.Topic, rt.ErrorCode = strp(name), kerr.InvalidRequest.Code
				resp.Topics = append(resp.Topics, rt)
			}
			return resp
		}
		i, _ := slices.BinarySearch(names, c.Topic)
		names = names[i:]
		if len(names) > 0 && names[0] == c.Topic {
			startPartition = max(c.Partition, 0)
		}
	}

	for i, name := range names {
		if limit == 0 {
			// The previous topic used up the limit exactly.
			resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name}
			break
		}
		allowed := h.authorized(r, acl.OpDescribe, acl.ResourceTopic, name)
		if all && !allowed {
			continue
		}
		rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
		rt.Topic = strp(name)
		info, ok := h.topic(name)
		switch {
		case !allowed:
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
		case !ok:
			rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		default:
			from := int32(0)
			if i == 0 {
				from = startPartition
			}
			var next int32
			rt, next = h.describePartitions(r, &info, from, &limit)
			if next >= 0 {
				resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name, Partition: next}
				resp.Topics = append(resp.Topics, rt)
				return resp
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// describePartitions describes info's partitions from from on, at most
// *limit of them (which it lowers); next is the first partition left out,
// or -1 when the topic is complete.
func (h *Handler) describePartitions(r *request, info *storage.TopicInfo, from int32, limit *int32) (kmsg.DescribeTopicPartitionsResponseTopic, int32) {
	rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
	rt.Topic = strp(info.Name)
	rt.TopicID = info.ID
	rt.IsInternal = internalTopic(info.Name)
	rt.AuthorizedOperations = h.authorizedOps(r, acl.ResourceTopic, info.Name, topicAuthOps)
	next := int32(-1)
	for p := from; p < info.Partitions; p++ {
		if *limit == 0 {
			next = p
			break
		}
		*limit--
		rp := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
		rp.Partition = p
		rp.LeaderID = h.cfg.NodeID
		rp.LeaderEpoch = leaderEpoch
		rp.Replicas, rp.ISR = h.nodeReplicas, h.nodeReplicas
		rp.EligibleLeaderReplicas, rp.LastKnownELR, rp.OfflineReplicas = noReplicas, noReplicas, noReplicas
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt, next
}
