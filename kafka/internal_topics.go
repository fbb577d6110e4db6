package kafka

// Internal topics: the topics Kafka keeps for itself, which klite answers
// for in Metadata (is_internal set) and DescribeTopicPartitions without
// storing them as topics. klite keeps committed offsets and transaction
// state in its offsets log, not in partitioned topics; the entries here only
// describe them to clients, so that tools that list or skip internal topics
// see what they see on Kafka.
//
// Each entry's partitions are led by this broker (NodeID), which is also
// the coordinator FindCoordinator names for every group: whatever partition
// Kafka's hash of a group id picks (abs(hashCode) % partitions), its leader
// is the coordinator, as in Kafka. A topic ID is derived from the cluster id
// and the name, so it is the same after every restart.
//
// Clients may not create, delete or produce to them (CreateTopics,
// DeleteTopics and Produce check internalTopic by name); Metadata never
// auto-creates them; Fetch and ListOffsets answer UNKNOWN_TOPIC_OR_PARTITION
// (there is no log to read: a difference from Kafka, whose consumers may
// read __consumer_offsets in its binary format); DescribeProducers answers
// no producers for their partitions. Clients leave internal
// topics out of regex subscriptions and topic lists by the is_internal flag
// (kgo, librdkafka, kadm.ListTopics); KIP-848 regexes are matched against
// storage's topics, which do not include these.
//
// A new internal topic is one more entry in internalTopicTable (and its
// name in internalTopic, topics.go).

import (
	"crypto/sha256"
	"slices"

	"github.com/klite/klite/storage"
)

// offsetsTopicPartitions is Kafka's offsets.topic.num.partitions default,
// txnTopicPartitions its transaction.state.log.num.partitions default.
const (
	offsetsTopicPartitions = 50
	txnTopicPartitions     = 50
)

// internalTopicTable lists the internal topics Metadata describes.
var internalTopicTable = []struct {
	name       string
	partitions int32
	configs    map[string]string
}{
	{name: "__consumer_offsets", partitions: offsetsTopicPartitions, configs: map[string]string{"cleanup.policy": "compact"}},
	// Kafka's transaction log; klite keeps transaction state in the
	// offsets log (package txn).
	{name: "__transaction_state", partitions: txnTopicPartitions, configs: map[string]string{"cleanup.policy": "compact"}},
}

// internalTopicInfos builds the internal topics' descriptions for a cluster.
func internalTopicInfos(clusterID string) []storage.TopicInfo {
	infos := make([]storage.TopicInfo, len(internalTopicTable))
	for i, t := range internalTopicTable {
		sum := sha256.Sum256([]byte("klite internal topic\x00" + clusterID + "\x00" + t.name))
		var id storage.TopicID
		copy(id[:], sum[:])
		infos[i] = storage.TopicInfo{Name: t.name, ID: id, Partitions: t.partitions, Configs: t.configs}
	}
	return infos
}

// topic looks a topic up by name, the internal ones included.
func (h *Handler) topic(name string) (storage.TopicInfo, bool) {
	if info, ok := h.st.Topic(name); ok {
		return info, true
	}
	for _, info := range h.internal {
		if info.Name == name {
			return info, true
		}
	}
	return storage.TopicInfo{}, false
}

// topicByID looks a topic up by ID, the internal ones included.
func (h *Handler) topicByID(id storage.TopicID) (storage.TopicInfo, bool) {
	if info, ok := h.st.TopicByID(id); ok {
		return info, true
	}
	for _, info := range h.internal {
		if info.ID == id {
			return info, true
		}
	}
	return storage.TopicInfo{}, false
}

// allTopics is every topic, the internal ones included (after storage's).
func (h *Handler) allTopics() []storage.TopicInfo {
	topics := h.st.Topics()
	for _, info := range h.internal {
		if !slices.ContainsFunc(topics, func(t storage.TopicInfo) bool { return t.Name == info.Name }) {
			topics = append(topics, info)
		}
	}
	return topics
}
