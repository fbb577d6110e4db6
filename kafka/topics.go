package kafka

import (
	"strconv"
	"strings"

	"github.com/klite/klite/storage"
)

// maxTopicNameLen is Kafka's limit (249, so that partition directory names
// stay under 255 bytes).
const maxTopicNameLen = 249

// validTopicName reports whether name is a legal Kafka topic name:
// [a-zA-Z0-9._-]{1,249}, not "." or "..".
func validTopicName(name string) bool {
	if name == "" || len(name) > maxTopicNameLen || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// internalTopic reports whether Kafka treats name as internal.
func internalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}

// topicMaxMessageBytes is the batch size limit for a topic: its
// max.message.bytes config, else the broker's message.max.bytes in force.
func (h *Handler) topicMaxMessageBytes(info *storage.TopicInfo) int64 {
	if v, ok := info.Configs["max.message.bytes"]; ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32); err == nil && n >= 0 {
			return n
		}
	}
	return h.maxMessageBytes()
}

// partitionOK reports whether partition p exists in info.
func partitionOK(info *storage.TopicInfo, p int32) bool {
	return p >= 0 && p < info.Partitions
}

// countKeys counts how often each key occurs in ts, so a request naming the
// same topic (or config resource) twice can fail every copy, as Kafka does.
func countKeys[T any, K comparable](ts []T, key func(*T) K) map[K]int {
	count := make(map[K]int, len(ts))
	for i := range ts {
		count[key(&ts[i])]++
	}
	return count
}
