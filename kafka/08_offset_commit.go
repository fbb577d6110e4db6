package kafka

// OffsetCommit (key 8), versions 0-10 (v10 names topics by ID: see
// offsets_topic_ids.go).
//
// Behaviour: commits are checked as Kafka checks them (validateOffsetCommit):
// generation -1 with an empty member id is a standalone commit, allowed
// while the group has no members (and creating the group if it does not
// exist); otherwise the member must be known (UNKNOWN_MEMBER_ID), not fenced
// (FENCED_INSTANCE_ID, v7+ static members, KIP-345) and of the current
// generation (ILLEGAL_GENERATION); a group completing a rebalance answers
// REBALANCE_IN_PROGRESS. Per partition: unknown topics or partitions answer
// UNKNOWN_TOPIC_OR_PARTITION, metadata over offset.metadata.max.bytes
// OFFSET_METADATA_TOO_LARGE; a group id over 65535 bytes INVALID_GROUP_ID.
// A commit of any number of partitions is stored (in records of about
// 1 MiB, applied all or none after a crash). The answer goes out only after
// the commit is fdatasynced (group-committed with concurrent commits); a
// failed write answers NOT_COORDINATOR, as Kafka answers a failed
// offsets-topic append.
// RetentionTime (v2-4) sets a per-offset expiry; v1's commit timestamp is
// ignored (Kafka ignores it too since KIP-211). LeaderEpoch is kept from v6.
//
// Consumer-protocol groups (KIP-848) check as Kafka's ConsumerGroup does:
// without a member epoch (-1) only while the group has no members; members
// must be known (UNKNOWN_MEMBER_ID), commit with v9+ (UNSUPPORTED_VERSION)
// and their current member epoch (STALE_MEMBER_EPOCH). For classic groups
// v9's member epoch is the generation.
//
// ACLs (-authorizer): READ on the group (GROUP_AUTHORIZATION_FAILED) and on each topic
// (TOPIC_AUTHORIZATION_FAILED), authz_groups.go.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const offsetCommitKey = 8

func init() { register(offsetCommitKey, 0, 10, (*Handler).offsetCommit) }

func (h *Handler) offsetCommit(r *request) {
	req := kmsg.NewPtrOffsetCommitRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups != nil {
		respond := h.commitByName(req, groupRespond[*kmsg.OffsetCommitResponse](r)) // v10: topic IDs
		if h.cfg.Authorizer != nil {
			h.offsetCommitAuthz(r, req, respond)
			return
		}
		h.cfg.Groups.OffsetCommit(req, respond)
		return
	}
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	resp.Version = r.version
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, kerr.CoordinatorNotAvailable.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	r.respond(resp)
}
