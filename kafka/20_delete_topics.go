package kafka

// DeleteTopics (key 20), versions 0-6.
//
// Behaviour: deletes topics by name (v0-v5 TopicNames; v6 Topics with a
// name) or by topic ID (v6, name null). Unknown names answer
// UNKNOWN_TOPIC_OR_PARTITION, unknown IDs UNKNOWN_TOPIC_ID; a v6 entry with
// neither answers INVALID_REQUEST. v5+ carries an ErrorMessage. Internal
// topics (__consumer_offsets, __transaction_state) cannot be deleted:
// INVALID_REQUEST, as for their creation. Deletion
// fsyncs metadata, so the request is served off the event loop; storage wakes
// fetches long-polling on the deleted partitions.
//
// Every group's committed offsets of a deleted topic are removed (durably)
// before the answer, as Kafka's coordinator removes them once the topic is
// gone; a crash in between is caught by the coordinator's sweep at start
// (group/topic_offsets.go).
//
// Differences from Apache Kafka: deletion is synchronous (TimeoutMillis is
// ignored) and there is no delete.topic.enable switch.
//
// ACLs (-authorizer): DELETE on the topic (TOPIC_AUTHORIZATION_FAILED); by topic ID also
// DESCRIBE, without which the answer is UNKNOWN_TOPIC_ID.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

const deleteTopicsKey = 20

func init() { register(deleteTopicsKey, 0, 6, (*Handler).deleteTopics) }

func (h *Handler) deleteTopics(r *request) {
	req := kmsg.NewPtrDeleteTopicsRequest()
	if !h.parse(r, req) {
		return
	}
	h.async(r, func() { r.respond(h.deleteTopicsResponse(r.version, req, h.topicAuthz(r))) })
}

func (h *Handler) deleteTopicsResponse(version int16, req *kmsg.DeleteTopicsRequest, allowed topicAllowed) *kmsg.DeleteTopicsResponse {
	resp := kmsg.NewPtrDeleteTopicsResponse()
	resp.Version = version
	topics := req.Topics
	if version < 6 {
		topics = make([]kmsg.DeleteTopicsRequestTopic, len(req.TopicNames))
		for i := range req.TopicNames {
			topics[i].Topic = &req.TopicNames[i]
		}
	}
	resp.Topics = make([]kmsg.DeleteTopicsResponseTopic, len(topics))
	for i := range topics {
		t := &topics[i]
		rt := &resp.Topics[i]
		rt.Default()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		var name string
		switch {
		case t.Topic != nil && !allowed(acl.OpDelete, *t.Topic):
			h.deleteError(rt, kerr.TopicAuthorizationFailed.Code, kerr.TopicAuthorizationFailed.Message)
			continue
		case t.Topic != nil && internalTopic(*t.Topic):
			h.deleteError(rt, kerr.InvalidRequest.Code, "Deletion of internal topic "+*t.Topic+" is prohibited.")
			continue
		case t.Topic != nil:
			name = *t.Topic
			info, ok := h.st.Topic(name)
			if !ok {
				h.deleteError(rt, kerr.UnknownTopicOrPartition.Code, "This server does not host this topic-partition.")
				continue
			}
			rt.TopicID = info.ID
		case t.TopicID != [16]byte{}:
			info, ok := h.st.TopicByID(storage.TopicID(t.TopicID))
			if !ok {
				h.deleteError(rt, kerr.UnknownTopicID.Code, "This server does not host this topic ID.")
				continue
			}
			name = info.Name
			if !allowed(acl.OpDescribe, name) {
				// Kafka does not reveal the name of a topic the
				// principal may not describe.
				h.deleteError(rt, kerr.UnknownTopicID.Code, "This server does not host this topic ID.")
				continue
			}
			rt.Topic = &name
			if !allowed(acl.OpDelete, name) {
				h.deleteError(rt, kerr.TopicAuthorizationFailed.Code, kerr.TopicAuthorizationFailed.Message)
				continue
			}
		default:
			h.deleteError(rt, kerr.InvalidRequest.Code, "Neither topic name nor id were specified.")
			continue
		}
		if err := h.st.DeleteTopic(name); err != nil {
			h.deleteError(rt, h.errCode(err), err.Error())
			continue
		}
		h.deleteTopicOffsets(name)
	}
	return resp
}

func (h *Handler) deleteError(rt *kmsg.DeleteTopicsResponseTopic, code int16, msg string) {
	rt.ErrorCode = code
	rt.ErrorMessage = &msg
}

// deleteTopicOffsets removes the committed offsets of a deleted topic and
// waits until that is durable. A failure is logged: the topic is gone, and
// the coordinator sweeps such offsets at its next start.
func (h *Handler) deleteTopicOffsets(topic string) {
	if h.cfg.Groups == nil {
		return
	}
	errc := make(chan error, 1)
	h.cfg.Groups.DeleteTopicOffsets(topic, func(err error) { errc <- err })
	if err := <-errc; err != nil {
		h.log.Warn().Err(err).Str("topic", topic).Msg("committed offsets of a deleted topic not removed; swept at the next start")
	}
}
