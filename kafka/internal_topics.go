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
// auto-creates them; DescribeProducers answers no producers for their
// partitions.
//
// Reading them: each partition is an empty log (log start 0, high
// watermark 0, last stable offset 0, no records), for Fetch (offset 0
// long-polls and returns nothing; any other offset is OFFSET_OUT_OF_RANGE),
// ListOffsets (earliest, latest and earliest-local 0; max timestamp, latest
// tiered and timestamp lookups offset -1, as on an empty Kafka log) and
// OffsetForLeaderEpoch (end offset 0). OffsetCommit and OffsetFetch take
// them like any topic. This differs from Kafka, whose consumers read
// __consumer_offsets' records in its binary format; klite keeps that state
// in its offsets log and has no such records to serve. It matters because
// Kafka 4.x resolves a KIP-848 SubscribedTopicRegex against every topic
// name, internal ones included (only DESCRIBE ACLs filter), and assigns
// explicitly subscribed internal topics too: klite does the same (cmd
// passes InternalTopics to the group coordinator), so a consumer whose
// regex matches "__consumer_offsets" is assigned its 50 partitions, and
// with an empty log it starts at offset 0, waits, and sees nothing,
// instead of retrying UNKNOWN_TOPIC_OR_PARTITION forever (kgo keeps
// reloading metadata; librdkafka logs an error per partition). Classic
// consumers resolve regexes themselves and skip topics marked is_internal
// (kgo, librdkafka, kadm.ListTopics); one that names an internal topic
// explicitly gets the same empty log.
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

// InternalTopics describes the internal topics of a cluster: names,
// partitions, configs and topic IDs, the same after every restart. cmd
// hands them to the group coordinator, so KIP-848 subscriptions resolve
// them and name them by the IDs Metadata gives.
func InternalTopics(clusterID string) []storage.TopicInfo {
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

// emptyLog answers the offset queries of an internal topic's partitions:
// a log that never had a record (see the package comment above).
type emptyLog struct{}

func (emptyLog) Offsets(string, int32) (logStart, highWatermark int64, err error) { return 0, 0, nil }
func (emptyLog) LastStableOffset(string, int32) (int64, error)                    { return 0, nil }
func (emptyLog) LocalStart(string, int32) (int64, error)                          { return 0, nil }
func (emptyLog) LatestTiered(string, int32) (int64, error)                        { return -1, nil }
func (emptyLog) MaxTimestamp(string, int32) (offset, timestamp int64, err error) {
	return -1, -1, nil
}
func (emptyLog) OffsetForTime(string, int32, int64) (offset, timestamp int64, err error) {
	return -1, -1, nil
}

// offsetSource is what ListOffsets and OffsetForLeaderEpoch ask of a
// partition's log: the store's, or emptyLog for an internal topic.
type offsetSource interface {
	Offsets(topic string, partition int32) (logStart, highWatermark int64, err error)
	LastStableOffset(topic string, partition int32) (int64, error)
	LocalStart(topic string, partition int32) (int64, error)
	LatestTiered(topic string, partition int32) (int64, error)
	MaxTimestamp(topic string, partition int32) (offset, timestamp int64, err error)
	OffsetForTime(topic string, partition int32, ts int64) (offset, timestamp int64, err error)
}

// offsetsOf is the log answering offset queries for topic info, which
// h.topic or h.topicByID found.
func (h *Handler) offsetsOf(info *storage.TopicInfo) offsetSource {
	if internalTopic(info.Name) {
		return emptyLog{}
	}
	return h.st
}
