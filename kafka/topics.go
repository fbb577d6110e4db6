package kafka

import (
	"slices"
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

// topicConfigKind is how a topic config value is validated.
type topicConfigKind uint8

const (
	kindLong topicConfigKind = iota
	kindInt
	kindBool
	kindDouble
	kindString
	kindList
)

// topicConfig is one Kafka topic config klite accepts: its default (what
// Apache Kafka 4.x reports), value kind, and allowed values or minimum.
type topicConfig struct {
	def     string
	kind    topicConfigKind
	min     int64    // for kindLong/kindInt
	hasMin  bool     //
	enum    []string // for kindString (and each element of kindList) when set
	honored bool     // klite acts on it (else accepted and stored only)
}

// topicConfigs lists the topic configs CreateTopics accepts. Everything is
// stored as given; "honored" marks the ones klite acts on today. Others are
// accepted because clients (Kafka Streams, Connect, admin tools) set them
// routinely and Kafka accepts them; rejecting them would break those clients.
var topicConfigs = map[string]topicConfig{
	"cleanup.policy":                          {def: "delete", kind: kindList, enum: []string{"delete", "compact"}},
	"compression.type":                        {def: "producer", kind: kindString, enum: []string{"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"}},
	"compression.gzip.level":                  {def: "-1", kind: kindInt},
	"compression.lz4.level":                   {def: "9", kind: kindInt},
	"compression.zstd.level":                  {def: "3", kind: kindInt},
	"delete.retention.ms":                     {def: "86400000", kind: kindLong, min: 0, hasMin: true},
	"file.delete.delay.ms":                    {def: "60000", kind: kindLong, min: 0, hasMin: true},
	"flush.messages":                          {def: "9223372036854775807", kind: kindLong, min: 1, hasMin: true},
	"flush.ms":                                {def: "9223372036854775807", kind: kindLong, min: 0, hasMin: true},
	"follower.replication.throttled.replicas": {def: "", kind: kindString},
	"index.interval.bytes":                    {def: "4096", kind: kindInt, min: 0, hasMin: true},
	"leader.replication.throttled.replicas":   {def: "", kind: kindString},
	"local.retention.bytes":                   {def: "-2", kind: kindLong, min: -2, hasMin: true},
	"local.retention.ms":                      {def: "-2", kind: kindLong, min: -2, hasMin: true},
	"max.compaction.lag.ms":                   {def: "9223372036854775807", kind: kindLong, min: 1, hasMin: true},
	"max.message.bytes":                       {def: "1048588", kind: kindInt, min: 0, hasMin: true, honored: true},
	"message.downconversion.enable":           {def: "true", kind: kindBool},
	"message.format.version":                  {def: "3.0-IV1", kind: kindString},
	"message.timestamp.after.max.ms":          {def: "9223372036854775807", kind: kindLong, min: 0, hasMin: true},
	"message.timestamp.before.max.ms":         {def: "9223372036854775807", kind: kindLong, min: 0, hasMin: true},
	"message.timestamp.difference.max.ms":     {def: "9223372036854775807", kind: kindLong, min: 0, hasMin: true},
	"message.timestamp.type":                  {def: "CreateTime", kind: kindString, enum: []string{"CreateTime", "LogAppendTime"}, honored: true},
	"min.cleanable.dirty.ratio":               {def: "0.5", kind: kindDouble},
	"min.compaction.lag.ms":                   {def: "0", kind: kindLong, min: 0, hasMin: true},
	"min.insync.replicas":                     {def: "1", kind: kindInt, min: 1, hasMin: true},
	"preallocate":                             {def: "false", kind: kindBool},
	"remote.storage.enable":                   {def: "false", kind: kindBool},
	"retention.bytes":                         {def: "-1", kind: kindLong, honored: true},
	"retention.ms":                            {def: "604800000", kind: kindLong, min: -1, hasMin: true, honored: true},
	"segment.bytes":                           {def: "1073741824", kind: kindInt, min: 14, hasMin: true, honored: true},
	"segment.index.bytes":                     {def: "10485760", kind: kindInt, min: 4, hasMin: true},
	"segment.jitter.ms":                       {def: "0", kind: kindLong, min: 0, hasMin: true},
	"segment.ms":                              {def: "604800000", kind: kindLong, min: 1, hasMin: true, honored: true},
	"unclean.leader.election.enable":          {def: "false", kind: kindBool},
}

// validateTopicConfig checks one config; it returns "" when valid, else the
// reason (for an INVALID_CONFIG error message).
func validateTopicConfig(name string, value *string) string {
	c, ok := topicConfigs[name]
	if !ok {
		return "Unknown topic config name: " + name
	}
	if value == nil {
		return "Null value not supported for topic configs: " + name
	}
	v := strings.TrimSpace(*value)
	bad := "Invalid value " + *value + " for configuration " + name
	switch c.kind {
	case kindLong, kindInt:
		bits := 64
		if c.kind == kindInt {
			bits = 32
		}
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			return bad + ": Not a number of type " + map[bool]string{true: "INT", false: "LONG"}[bits == 32]
		}
		if c.hasMin && n < c.min {
			return bad + ": Value must be at least " + strconv.FormatInt(c.min, 10)
		}
	case kindBool:
		if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
			return bad + ": Expected value to be either true or false"
		}
	case kindDouble:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return bad + ": Value must be a number between 0 and 1"
		}
	case kindString:
		if c.enum != nil && !oneOf(v, c.enum) {
			return bad + ": String must be one of: " + strings.Join(c.enum, ", ")
		}
	case kindList:
		for _, e := range strings.Split(v, ",") {
			if !oneOf(strings.TrimSpace(e), c.enum) {
				return bad + ": Invalid value " + strings.TrimSpace(e)
			}
		}
	}
	return ""
}

func oneOf(s string, set []string) bool {
	for _, e := range set {
		if s == e {
			return true
		}
	}
	return false
}

// topicMaxMessageBytes is the batch size limit for a topic: its
// max.message.bytes config, else the broker's.
func (h *Handler) topicMaxMessageBytes(info *storage.TopicInfo) int64 {
	if v, ok := info.Configs["max.message.bytes"]; ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32); err == nil && n >= 0 {
			return n
		}
	}
	return int64(h.cfg.MaxMessageBytes)
}

// partitionOK reports whether partition p exists in info.
func partitionOK(info *storage.TopicInfo, p int32) bool {
	return p >= 0 && p < info.Partitions
}

// topicConfigNames is topicConfigs' keys in name order.
var topicConfigNames = func() []string {
	names := make([]string, 0, len(topicConfigs))
	for n := range topicConfigs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}()
