package kafka

// CreateTopics (key 19), versions 0-7.
//
// Behaviour per topic, in Kafka's order of checks:
//   - a name given twice in one request: INVALID_REQUEST for that name;
//   - illegal name ([a-zA-Z0-9._-]{1,249}, not "." or ".."): INVALID_TOPIC_EXCEPTION;
//   - an internal name (__consumer_offsets, __transaction_state): INVALID_REQUEST,
//     as Kafka answers a client creating its reserved internal topic;
//   - existing topic: TOPIC_ALREADY_EXISTS;
//   - a name equal to an existing topic's once '.' is read as '_':
//     INVALID_TOPIC_EXCEPTION ("collides with existing topic"), as Kafka;
//   - ReplicaAssignment: only with NumPartitions and ReplicationFactor -1
//     (else INVALID_REQUEST); partitions must be 0..n-1 each with exactly
//     the one replica NodeID (else INVALID_REPLICA_ASSIGNMENT);
//   - ReplicationFactor -1 (KIP-464 default) or 1; 0 or below
//     INVALID_REPLICATION_FACTOR; above 1 INVALID_REPLICATION_FACTOR (one
//     broker);
//   - NumPartitions -1 (KIP-464 default: DefaultPartitions); 0 or below, or
//     above MaxTopicPartitions: INVALID_PARTITIONS;
//   - configs: only known Kafka topic configs with well-typed values of at
//     most 32767 bytes, else INVALID_CONFIG (see configs.go for which ones
//     klite acts on);
//   - more partitions than the broker's -max-partitions allows in all:
//     POLICY_VIOLATION, as KRaft answers creates past its partition limits.
//
// ValidateOnly (v1+) runs every check and creates nothing. v5+ answers
// NumPartitions, ReplicationFactor and the topic's configs as
// DescribeConfigs reports them (configs.go: explicit ones with source
// DYNAMIC_TOPIC_CONFIG, the rest from their broker synonym or Kafka's
// default); v7 the topic ID. Config values are stored normalized (trimmed,
// canonical numbers), as Kafka reports them once parsed.
// ErrorMessage (v1+) explains every error. Creation fsyncs metadata, so the
// request is served off the event loop.
//
// Differences from Apache Kafka: configs klite does not act on are accepted
// and stored (Kafka acts on all of them); min.insync.replicas above 1 is
// accepted but never fails a produce (one broker). TimeoutMillis is ignored:
// creation is synchronous.
//
// ACLs (-authorizer): CREATE on the cluster or on the topic (TOPIC_AUTHORIZATION_FAILED);
// a created topic's configs need DESCRIBE_CONFIGS on it (else
// ConfigErrorCode TOPIC_AUTHORIZATION_FAILED and no configs).

import (
	"errors"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

const createTopicsKey = 19

func init() { register(createTopicsKey, 0, 7, (*Handler).createTopics) }

func (h *Handler) createTopics(r *request) {
	req := kmsg.NewPtrCreateTopicsRequest()
	if !h.parse(r, req) {
		return
	}
	allowed := h.topicAuthz(r)
	if h.authorizedCluster(r, acl.OpCreate) {
		allowed = func(op acl.Operation, topic string) bool {
			return op == acl.OpCreate || h.authorized(r, op, acl.ResourceTopic, topic)
		}
	}
	h.async(r, func() { r.respond(h.createTopicsResponse(r.version, req, allowed)) })
}

func (h *Handler) createTopicsResponse(version int16, req *kmsg.CreateTopicsRequest, allowed topicAllowed) *kmsg.CreateTopicsResponse {
	resp := kmsg.NewPtrCreateTopicsResponse()
	resp.Version = version
	resp.Topics = make([]kmsg.CreateTopicsResponseTopic, len(req.Topics))
	count := countKeys(req.Topics, func(t *kmsg.CreateTopicsRequestTopic) string { return t.Topic })
	for i := range req.Topics {
		t := &req.Topics[i]
		rt := &resp.Topics[i]
		rt.Default()
		rt.Topic = t.Topic
		if count[t.Topic] > 1 {
			h.topicError(rt, kerr.InvalidRequest.Code, "Create topics request from client contains a duplicate topic: "+t.Topic)
			continue
		}
		if !allowed(acl.OpCreate, t.Topic) {
			h.topicError(rt, kerr.TopicAuthorizationFailed.Code, kerr.TopicAuthorizationFailed.Message)
			continue
		}
		h.createTopic(version, req.ValidateOnly, t, rt)
		if rt.ErrorCode == 0 && !allowed(acl.OpDescribeConfigs, t.Topic) {
			// Kafka hides the configs of a created topic from a principal
			// that may not describe them (v5+).
			rt.Configs, rt.ConfigErrorCode = nil, kerr.TopicAuthorizationFailed.Code
		}
	}
	return resp
}

func (h *Handler) topicError(rt *kmsg.CreateTopicsResponseTopic, code int16, msg string) {
	rt.ErrorCode = code
	rt.ErrorMessage = &msg
	rt.NumPartitions = -1
	rt.ReplicationFactor = -1
	rt.Configs = nil
}

func (h *Handler) createTopic(version int16, validateOnly bool, t *kmsg.CreateTopicsRequestTopic, rt *kmsg.CreateTopicsResponseTopic) {
	name := t.Topic
	if !validTopicName(name) {
		h.topicError(rt, kerr.InvalidTopicException.Code, "Topic name \""+name+"\" is illegal: it must be 1 to 249 characters of [a-zA-Z0-9._-] and not '.' or '..'")
		return
	}
	if internalTopic(name) {
		h.topicError(rt, kerr.InvalidRequest.Code, "Creation of internal topic "+name+" is prohibited.")
		return
	}
	if _, exists := h.st.Topic(name); exists {
		h.topicError(rt, kerr.TopicAlreadyExists.Code, "Topic '"+name+"' already exists.")
		return
	}
	partitions := t.NumPartitions
	if len(t.ReplicaAssignment) > 0 {
		if t.NumPartitions != -1 || t.ReplicationFactor != -1 {
			h.topicError(rt, kerr.InvalidRequest.Code, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.")
			return
		}
		if msg := h.checkAssignment(t.ReplicaAssignment); msg != "" {
			h.topicError(rt, kerr.InvalidReplicaAssignment.Code, msg)
			return
		}
		partitions = int32(len(t.ReplicaAssignment))
	} else {
		switch rf := t.ReplicationFactor; {
		case rf == -1 || rf == 1:
		case rf <= 0:
			h.topicError(rt, kerr.InvalidReplicationFactor.Code, "Replication factor must be larger than 0, or -1 to use the default value.")
			return
		default:
			h.topicError(rt, kerr.InvalidReplicationFactor.Code, "Unable to replicate the partition "+strconv.Itoa(int(rf))+" time(s): The target replication factor of "+strconv.Itoa(int(rf))+" cannot be reached because only 1 broker(s) are registered.")
			return
		}
		if partitions == -1 {
			partitions = h.cfg.DefaultPartitions
		}
	}
	if partitions <= 0 {
		h.topicError(rt, kerr.InvalidPartitions.Code, "Number of partitions was set to an invalid non-positive value.")
		return
	}
	if partitions > h.cfg.MaxTopicPartitions {
		h.topicError(rt, kerr.InvalidPartitions.Code, "Number of partitions "+strconv.Itoa(int(partitions))+" is above the broker's limit of "+strconv.Itoa(int(h.cfg.MaxTopicPartitions))+".")
		return
	}
	var configs map[string]string
	for _, c := range t.Configs {
		v, msg := validateTopicConfig(c.Name, c.Value)
		if msg != "" {
			h.topicError(rt, kerr.InvalidConfig.Code, msg)
			return
		}
		if configs == nil {
			configs = make(map[string]string, len(t.Configs))
		}
		configs[c.Name] = v
	}

	var info storage.TopicInfo
	var err error
	if validateOnly {
		info = storage.TopicInfo{Name: name, Partitions: partitions, Configs: configs}
		err = h.st.CheckCreate(name, partitions)
	} else {
		info, err = h.st.CreateTopic(name, partitions, configs)
	}
	if err != nil {
		msg := errMessage(err)
		if errors.Is(err, storage.ErrTopicExists) {
			msg = "Topic '" + name + "' already exists."
		}
		h.topicError(rt, h.errCode(err), msg)
		return
	}
	rt.TopicID = info.ID
	rt.NumPartitions = info.Partitions
	rt.ReplicationFactor = 1
	if version >= 5 {
		rt.Configs = h.createdTopicConfigs(info.Configs)
	}
}

// checkAssignment accepts manual assignments that put partitions 0..n-1 on
// this broker alone.
func (h *Handler) checkAssignment(as []kmsg.CreateTopicsRequestTopicReplicaAssignment) string {
	seen := make(map[int32]bool, len(as))
	for _, a := range as {
		if a.Partition < 0 || int(a.Partition) >= len(as) || seen[a.Partition] {
			return "Partitions must be numbered consecutively from 0, each given once."
		}
		seen[a.Partition] = true
		if msg := h.checkReplicas(a.Replicas); msg != "" {
			return msg
		}
	}
	return ""
}

// checkReplicas accepts a partition's manual replica list when it names
// this broker alone (CreateTopics and CreatePartitions).
func (h *Handler) checkReplicas(replicas []int32) string {
	if len(replicas) != 1 || replicas[0] != h.cfg.NodeID {
		return "Replica assignments may only name broker " + strconv.Itoa(int(h.cfg.NodeID)) + ", once per partition."
	}
	return ""
}

// createdTopicConfigs lists every known topic config of a topic whose
// explicitly set configs are set, in name order, as DescribeConfigs would
// without synonyms or documentation (configs.go).
func (h *Handler) createdTopicConfigs(set map[string]string) []kmsg.CreateTopicsResponseTopicConfig {
	out := make([]kmsg.CreateTopicsResponseTopicConfig, len(topicConfigNames))
	for i, name := range topicConfigNames {
		e := h.topicConfigEntry(name, set)
		c := &out[i]
		c.Default()
		c.Name, c.Value, c.ReadOnly, c.Source = e.name, e.value, e.readOnly, int8(e.source)
	}
	return out
}
