package kafka

// DeleteRecords (key 21), versions 0-2 (flexible from v2).
//
// Behaviour per partition: the log start offset moves up to Offset (-1: the
// high watermark), never backwards, and the new log start comes back as
// LowWatermark. Reads below it then answer OFFSET_OUT_OF_RANGE. An unknown
// topic or partition answers UNKNOWN_TOPIC_OR_PARTITION; an offset past the
// high watermark or below -1, OFFSET_OUT_OF_RANGE; a topic whose
// cleanup.policy lacks delete, POLICY_VIOLATION. Every error carries
// LowWatermark -1, as in Kafka. Storage persists the new log start (fsync)
// before it returns, so the request is served off the event loop.
//
// Differences from Apache Kafka: TimeoutMillis is ignored. Kafka waits up to
// it for every replica's low watermark to reach the offset; klite has one
// replica, which is there once the call returns. A partition named twice is
// answered twice (Kafka collapses the copies into one map entry).
//
// ACLs (-authorizer): DELETE on the topic (TOPIC_AUTHORIZATION_FAILED).

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const deleteRecordsKey = 21

// deleteToHighWatermark is DeleteRecords' "up to the high watermark" offset.
const deleteToHighWatermark = -1

func init() { register(deleteRecordsKey, 0, 2, (*Handler).deleteRecords) }

func (h *Handler) deleteRecords(r *request) {
	req := kmsg.NewPtrDeleteRecordsRequest()
	if !h.parse(r, req) {
		return
	}
	h.async(r, func() { r.respond(h.deleteRecordsResponse(r.version, req, h.topicAuthz(r))) })
}

func (h *Handler) deleteRecordsResponse(version int16, req *kmsg.DeleteRecordsRequest, allowed topicAllowed) *kmsg.DeleteRecordsResponse {
	resp := kmsg.NewPtrDeleteRecordsResponse()
	resp.Version = version
	resp.Topics = make([]kmsg.DeleteRecordsResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		t := &req.Topics[ti]
		rt := &resp.Topics[ti]
		rt.Default()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.DeleteRecordsResponseTopicPartition, len(t.Partitions))
		info, found := h.st.Topic(t.Topic)
		denied := !allowed(acl.OpDelete, t.Topic)
		for pi := range t.Partitions {
			p := &t.Partitions[pi]
			rp := &rt.Partitions[pi]
			rp.Default()
			rp.Partition = p.Partition
			rp.LowWatermark = -1
			switch {
			case denied:
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case !found || !partitionOK(&info, p.Partition):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !h.deletePolicy(info.Configs):
				rp.ErrorCode = kerr.PolicyViolation.Code
			case p.Offset < deleteToHighWatermark:
				rp.ErrorCode = kerr.OffsetOutOfRange.Code
			default:
				low, err := h.st.DeleteRecords(t.Topic, p.Partition, p.Offset)
				if err != nil {
					rp.ErrorCode = h.errCode(err)
					continue
				}
				rp.LowWatermark = low
			}
		}
	}
	return resp
}

// deletePolicy reports whether a topic's cleanup.policy includes delete
// (Kafka refuses DeleteRecords on compact-only topics).
func (h *Handler) deletePolicy(configs map[string]string) bool {
	return policyHas(h.cleanupPolicy(configs), "delete")
}

// compactPolicy reports whether a topic's cleanup.policy includes compact
// (Kafka then refuses records without a key).
func (h *Handler) compactPolicy(configs map[string]string) bool {
	return policyHas(h.cleanupPolicy(configs), "compact")
}

func policyHas(list, policy string) bool {
	return slices.ContainsFunc(strings.Split(list, ","), func(s string) bool {
		return strings.TrimSpace(s) == policy
	})
}
