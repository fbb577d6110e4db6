package kafka

// CreatePartitions (key 37), versions 0-3.
//
// Behaviour per topic, with Apache Kafka's codes:
//   - a topic named twice: INVALID_REQUEST for every appearance;
//   - a missing topic (or an illegal name): UNKNOWN_TOPIC_OR_PARTITION;
//   - Count not above the current count, or above MaxTopicPartitions:
//     INVALID_PARTITIONS;
//   - Assignment, when given: one entry per new partition, each exactly
//     [NodeID], else INVALID_REPLICA_ASSIGNMENT;
//   - more partitions than the broker's -max-partitions allows in all:
//     POLICY_VIOLATION (as CreateTopics).
//
// New partitions start empty at offset 0 (storage gives them new partition
// keys and shards) and appear in the next Metadata response. ValidateOnly
// runs every check and adds nothing. ErrorMessage explains every error.
// Adding fsyncs metadata, so the request is served off the event loop.
//
// Differences from Apache Kafka: TimeoutMillis is ignored (the change is
// synchronous).
//
// ACLs (-authorizer): ALTER on the topic (TOPIC_AUTHORIZATION_FAILED).

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const createPartitionsKey = 37

func init() { register(createPartitionsKey, 0, 3, (*Handler).createPartitions) }

func (h *Handler) createPartitions(r *request) {
	req := kmsg.NewPtrCreatePartitionsRequest()
	if !h.parse(r, req) {
		return
	}
	h.async(r, func() { r.respond(h.createPartitionsResponse(r.version, req, h.topicAuthz(r))) })
}

func (h *Handler) createPartitionsResponse(version int16, req *kmsg.CreatePartitionsRequest, allowed topicAllowed) *kmsg.CreatePartitionsResponse {
	resp := kmsg.NewPtrCreatePartitionsResponse()
	resp.Version = version
	resp.Topics = make([]kmsg.CreatePartitionsResponseTopic, len(req.Topics))
	count := countKeys(req.Topics, func(t *kmsg.CreatePartitionsRequestTopic) string { return t.Topic })
	for i := range req.Topics {
		t := &req.Topics[i]
		rt := &resp.Topics[i]
		rt.Default()
		rt.Topic = t.Topic
		code, msg := int16(0), ""
		if count[t.Topic] > 1 {
			code, msg = kerr.InvalidRequest.Code, "Duplicate topic in request."
		} else if !allowed(acl.OpAlter, t.Topic) {
			code, msg = kerr.TopicAuthorizationFailed.Code, kerr.TopicAuthorizationFailed.Message
		} else {
			code, msg = h.growTopic(t, req.ValidateOnly)
		}
		if code != 0 {
			rt.ErrorCode, rt.ErrorMessage = code, &msg
		}
	}
	return resp
}

func (h *Handler) growTopic(t *kmsg.CreatePartitionsRequestTopic, validateOnly bool) (int16, string) {
	info, ok := h.st.Topic(t.Topic)
	if !ok {
		return kerr.UnknownTopicOrPartition.Code, "The topic '" + t.Topic + "' does not exist."
	}
	have := info.Partitions
	switch {
	case t.Count == have:
		return kerr.InvalidPartitions.Code, "Topic already has " + strconv.Itoa(int(have)) + " partition(s)."
	case t.Count < have:
		return kerr.InvalidPartitions.Code, "Topic currently has " + strconv.Itoa(int(have)) + " partition(s); " + strconv.Itoa(int(t.Count)) + " would not be an increase."
	case t.Count > h.cfg.MaxTopicPartitions:
		return kerr.InvalidPartitions.Code, "Number of partitions " + strconv.Itoa(int(t.Count)) + " is above the broker's limit of " + strconv.Itoa(int(h.cfg.MaxTopicPartitions)) + "."
	}
	if t.Assignment != nil {
		if add := int(t.Count - have); len(t.Assignment) != add {
			return kerr.InvalidReplicaAssignment.Code, "Attempted to add " + strconv.Itoa(add) + " additional partition(s), but " + strconv.Itoa(len(t.Assignment)) + " assignment(s) were specified."
		}
		for _, a := range t.Assignment {
			if msg := h.checkReplicas(a.Replicas); msg != "" {
				return kerr.InvalidReplicaAssignment.Code, msg
			}
		}
	}
	var err error
	if validateOnly {
		err = h.st.CheckGrow(t.Topic, t.Count)
	} else {
		_, err = h.st.CreatePartitions(t.Topic, t.Count)
	}
	if err != nil {
		return h.errCode(err), errMessage(err)
	}
	return 0, ""
}
