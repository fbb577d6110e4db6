package kafka

// OffsetCommit and OffsetFetch v10 (Kafka 4.2, KIP-848) name topics by topic
// ID instead of by name. The group coordinator keeps offsets by name, so
// the request's IDs are resolved to names here before it (and the ACL
// checks, which are by name) see the request, and the response is given the
// IDs back. A topic ID that is not known answers UNKNOWN_TOPIC_ID on each of
// its partitions, as Kafka does; those topics come last in the response
// (clients match topics by ID).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

// topicIDsFrom is the first OffsetCommit/OffsetFetch version naming topics by ID.
const topicIDsFrom = 10

// commitByName resolves req's topic IDs to names, dropping unknown ones,
// and returns respond wrapped to give the response its IDs back and the
// dropped topics their UNKNOWN_TOPIC_ID. Before v10 it returns respond.
func (h *Handler) commitByName(req *kmsg.OffsetCommitRequest, respond func(*kmsg.OffsetCommitResponse)) func(*kmsg.OffsetCommitResponse) {
	if req.Version < topicIDsFrom {
		return respond
	}
	ids := map[string][16]byte{}
	var unknown []kmsg.OffsetCommitResponseTopic
	known := req.Topics[:0:0]
	for _, t := range req.Topics {
		info, ok := h.topicByID(storage.TopicID(t.TopicID)) // internal ones too
		if !ok {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.TopicID = t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.UnknownTopicID.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			unknown = append(unknown, rt)
			continue
		}
		t.Topic = info.Name
		ids[info.Name] = t.TopicID
		known = append(known, t)
	}
	req.Topics = known
	return func(resp *kmsg.OffsetCommitResponse) {
		for i := range resp.Topics {
			resp.Topics[i].TopicID = ids[resp.Topics[i].Topic]
		}
		resp.Topics = append(resp.Topics, unknown...)
		respond(resp)
	}
}

// fetchByName is commitByName for OffsetFetch (v10 has only the Groups
// form). A fetch of all topics (null) is answered with the IDs of the
// topics that exist.
func (h *Handler) fetchByName(req *kmsg.OffsetFetchRequest, respond func(*kmsg.OffsetFetchResponse)) func(*kmsg.OffsetFetchResponse) {
	if req.Version < topicIDsFrom {
		return respond
	}
	unknown := make([][]kmsg.OffsetFetchResponseGroupTopic, len(req.Groups))
	for gi := range req.Groups {
		g := &req.Groups[gi]
		if g.Topics == nil {
			continue
		}
		known := g.Topics[:0:0]
		for _, t := range g.Topics {
			info, ok := h.topicByID(storage.TopicID(t.TopicID)) // internal ones too
			if !ok {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.TopicID = t.TopicID
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.ErrorCode = p, -1, kerr.UnknownTopicID.Code
					rt.Partitions = append(rt.Partitions, rp)
				}
				unknown[gi] = append(unknown[gi], rt)
				continue
			}
			t.Topic = info.Name
			known = append(known, t)
		}
		g.Topics = known
	}
	return func(resp *kmsg.OffsetFetchResponse) {
		for gi := range resp.Groups {
			rg := &resp.Groups[gi]
			for ti := range rg.Topics {
				if info, ok := h.topic(rg.Topics[ti].Topic); ok {
					rg.Topics[ti].TopicID = info.ID
				}
			}
			if gi < len(unknown) {
				rg.Topics = append(rg.Topics, unknown[gi]...)
			}
		}
		respond(resp)
	}
}
