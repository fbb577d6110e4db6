package kafka

// Config tables: every topic config klite accepts and every broker config it
// reports, under Apache Kafka's names, types and defaults. CreateTopics and
// the AlterConfigs APIs validate against them; DescribeConfigs and
// CreateTopics v5+ describe from them, so the two cannot drift.
//
// Sources follow Kafka. A config set on the topic is DYNAMIC_TOPIC_CONFIG.
// Otherwise a topic config takes the value of its broker synonym (Kafka's
// primary one: message.max.bytes for max.message.bytes), reported as
// STATIC_BROKER_CONFIG when klite's setting differs from Kafka's default and
// DEFAULT_CONFIG when it does not, or when there is no synonym. klite cannot
// tell a flag left at its default from one set to that same value, so
// "differs from Kafka's default" stands in for Kafka's "set in
// server.properties".

import (
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Apache Kafka's defaults that klite overrides with its own settings.
const (
	kafkaDefaultSegmentBytes = 1073741824 // log.segment.bytes
	// kafkaDefaultRetentionMs is log.retention.hours=168 in milliseconds;
	// Kafka leaves log.retention.ms null and derives it from the hours.
	kafkaDefaultRetentionMs            = "604800000"
	kafkaDefaultRetentionCheckInterval = 300000 // log.retention.check.interval.ms
	longMax                            = "9223372036854775807"
)

// topicConfig is one topic config klite accepts.
type topicConfig struct {
	typ    kmsg.ConfigType // BOOLEAN, STRING, INT, LONG, DOUBLE or LIST
	def    string          // Apache Kafka's default
	min    int64           // INT/LONG minimum, when hasMin
	hasMin bool            //
	enum   []string        // allowed values (of each element for LIST); nil: any
	// broker is the broker config that supplies the default (Kafka's primary
	// synonym), when that config has a value by default; "" when none.
	broker string
	// honored: klite acts on it. The rest are accepted, stored and
	// reported, because clients (Kafka Streams, Connect, admin tools) set
	// them routinely and Kafka accepts them.
	honored bool
	// removed: Kafka 4.0 dropped it (KIP-724, KIP-937). Still accepted,
	// so older clients that set it keep working, but not described.
	removed bool
	doc     string
}

// topicConfigs lists the topic configs klite accepts, with the defaults
// Apache Kafka 3.x reports.
var topicConfigs = map[string]topicConfig{
	"cleanup.policy": {typ: kmsg.ConfigTypeList, def: "delete", enum: []string{"delete", "compact"}, broker: "log.cleanup.policy", honored: true,
		doc: "How old log segments are discarded: delete (by retention), compact (keep the latest record per key), or both."},
	"compression.type": {typ: kmsg.ConfigTypeString, def: "producer", enum: []string{"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"}, broker: "compression.type",
		doc: "Compression of stored batches; producer keeps what the producer sent. klite always stores batches as sent."},
	"compression.gzip.level": {typ: kmsg.ConfigTypeInt, def: "-1", broker: "compression.gzip.level",
		doc: "Compression level when compression.type is gzip."},
	"compression.lz4.level": {typ: kmsg.ConfigTypeInt, def: "9", broker: "compression.lz4.level",
		doc: "Compression level when compression.type is lz4."},
	"compression.zstd.level": {typ: kmsg.ConfigTypeInt, def: "3", broker: "compression.zstd.level",
		doc: "Compression level when compression.type is zstd."},
	"delete.retention.ms": {typ: kmsg.ConfigTypeLong, def: "86400000", min: 0, hasMin: true, broker: "log.cleaner.delete.retention.ms", honored: true,
		doc: "How long delete tombstones are kept on compacted topics."},
	"file.delete.delay.ms": {typ: kmsg.ConfigTypeLong, def: "60000", min: 0, hasMin: true, broker: "log.segment.delete.delay.ms",
		doc: "How long to wait before deleting a file from the filesystem."},
	"flush.messages": {typ: kmsg.ConfigTypeLong, def: longMax, min: 1, hasMin: true, broker: "log.flush.interval.messages",
		doc: "Messages written before a forced fsync. klite fsyncs every acks=all write."},
	"flush.ms": {typ: kmsg.ConfigTypeLong, def: longMax, min: 0, hasMin: true,
		doc: "Time before a forced fsync. klite fsyncs every acks=all write."},
	"follower.replication.throttled.replicas": {typ: kmsg.ConfigTypeList, def: "",
		doc: "Replicas whose follower replication is throttled. klite has no replication."},
	"index.interval.bytes": {typ: kmsg.ConfigTypeInt, def: "4096", min: 0, hasMin: true, broker: "log.index.interval.bytes",
		doc: "How often an offset index entry is added."},
	"leader.replication.throttled.replicas": {typ: kmsg.ConfigTypeList, def: "",
		doc: "Replicas whose leader replication is throttled. klite has no replication."},
	"local.retention.bytes": {typ: kmsg.ConfigTypeLong, def: "-2", min: -2, hasMin: true, broker: "log.local.retention.bytes",
		doc: "Bytes kept on local disk when tiered storage is on; -2 means retention.bytes."},
	"local.retention.ms": {typ: kmsg.ConfigTypeLong, def: "-2", min: -2, hasMin: true, broker: "log.local.retention.ms",
		doc: "Time data is kept on local disk when tiered storage is on; -2 means retention.ms."},
	"max.compaction.lag.ms": {typ: kmsg.ConfigTypeLong, def: longMax, min: 1, hasMin: true, broker: "log.cleaner.max.compaction.lag.ms", honored: true,
		doc: "Longest time a record stays ineligible for compaction."},
	"max.message.bytes": {typ: kmsg.ConfigTypeInt, def: "1048588", min: 0, hasMin: true, broker: "message.max.bytes", honored: true,
		doc: "Largest record batch the topic accepts."},
	"message.downconversion.enable": {typ: kmsg.ConfigTypeBoolean, def: "true", broker: "log.message.downconversion.enable", removed: true,
		doc: "Whether old consumers get down-converted batches."},
	"message.format.version": {typ: kmsg.ConfigTypeString, def: "3.0-IV1", broker: "log.message.format.version", removed: true,
		doc: "Deprecated message format version; klite stores record batch v2 only."},
	"message.timestamp.after.max.ms": {typ: kmsg.ConfigTypeLong, def: longMax, min: 0, hasMin: true, broker: "log.message.timestamp.after.max.ms",
		doc: "Largest allowed lead of a batch timestamp over broker time (CreateTime topics)."},
	"message.timestamp.before.max.ms": {typ: kmsg.ConfigTypeLong, def: longMax, min: 0, hasMin: true, broker: "log.message.timestamp.before.max.ms",
		doc: "Largest allowed lag of a batch timestamp behind broker time (CreateTime topics)."},
	"message.timestamp.difference.max.ms": {typ: kmsg.ConfigTypeLong, def: longMax, min: 0, hasMin: true, broker: "log.message.timestamp.difference.max.ms", removed: true,
		doc: "Deprecated: largest allowed difference between a batch timestamp and broker time."},
	"message.timestamp.type": {typ: kmsg.ConfigTypeString, def: "CreateTime", enum: []string{"CreateTime", "LogAppendTime"}, broker: "log.message.timestamp.type", honored: true,
		doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's time."},
	"min.cleanable.dirty.ratio": {typ: kmsg.ConfigTypeDouble, def: "0.5", broker: "log.cleaner.min.cleanable.ratio", honored: true,
		doc: "Share of the log that must be uncompacted before the cleaner runs."},
	"min.compaction.lag.ms": {typ: kmsg.ConfigTypeLong, def: "0", min: 0, hasMin: true, broker: "log.cleaner.min.compaction.lag.ms", honored: true,
		doc: "Shortest time a record stays uncompacted."},
	"min.insync.replicas": {typ: kmsg.ConfigTypeInt, def: "1", min: 1, hasMin: true, broker: "min.insync.replicas",
		doc: "Replicas that must acknowledge an acks=all write. klite has one broker and never fails a write on it."},
	"preallocate": {typ: kmsg.ConfigTypeBoolean, def: "false", broker: "log.preallocate",
		doc: "Whether segment files are preallocated (klite: the -segment-prealloc flag, broker-wide)."},
	"remote.storage.enable": {typ: kmsg.ConfigTypeBoolean, def: "false",
		doc: "Whether the topic uses tiered storage."},
	// retention.bytes has no minimum in Kafka: any negative value means no
	// limit.
	"retention.bytes": {typ: kmsg.ConfigTypeLong, def: "-1", broker: "log.retention.bytes", honored: true,
		doc: "Largest size a partition may grow to before old data is deleted; -1 no limit."},
	"retention.ms": {typ: kmsg.ConfigTypeLong, def: kafkaDefaultRetentionMs, min: -1, hasMin: true, broker: "log.retention.ms", honored: true,
		doc: "How long data is kept before it is deleted; -1 forever."},
	"segment.bytes": {typ: kmsg.ConfigTypeInt, def: "1073741824", min: 14, hasMin: true, broker: "log.segment.bytes",
		doc: "Segment file size. klite's partitions share write-ahead-log segments sized by -segment-bytes."},
	"segment.index.bytes": {typ: kmsg.ConfigTypeInt, def: "10485760", min: 4, hasMin: true, broker: "log.index.size.max.bytes",
		doc: "Size of a segment's offset index."},
	"segment.jitter.ms": {typ: kmsg.ConfigTypeLong, def: "0", min: 0, hasMin: true,
		doc: "Random jitter subtracted from segment.ms."},
	"segment.ms": {typ: kmsg.ConfigTypeLong, def: "604800000", min: 1, hasMin: true,
		doc: "Time after which a segment is rolled even if not full."},
	"unclean.leader.election.enable": {typ: kmsg.ConfigTypeBoolean, def: "false", broker: "unclean.leader.election.enable",
		doc: "Whether an out-of-sync replica may become leader. klite has one replica."},
}

// topicConfigNames is topicConfigs' keys in name order, without the ones
// Kafka 4.0 removed: the configs DescribeConfigs lists.
var topicConfigNames = slices.Sorted(func(yield func(string) bool) {
	for name, tc := range topicConfigs {
		if !tc.removed && !yield(name) {
			return
		}
	}
})

// brokerConfig is one broker config klite reports: its flags, and the
// broker synonyms of topic configs. Some change at run time
// (brokerconfigs.go); the rest are read-only.
type brokerConfig struct {
	typ kmsg.ConfigType
	def *string // Apache Kafka's default; nil: none (null)
	// value is klite's setting; ok false reports null.
	value func(c *Config) (v string, ok bool)
	doc   string
}

// brokerConfigs holds the broker configs klite reports for its broker
// resource: the flag-backed ones below, plus (added in init) the broker
// synonym of every topic config, at Kafka's default, since klite has no
// broker-level overrides of topic configs other than these.
var brokerConfigs = map[string]brokerConfig{
	"advertised.listeners": {typ: kmsg.ConfigTypeString, value: func(c *Config) (string, bool) {
		var parts []string
		for _, l := range c.Listeners {
			parts = append(parts, string(l.Protocol)+"://"+net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port))))
		}
		return strings.Join(parts, ","), true
	}, doc: "The address clients are told to connect to (-advertise)."},
	"auto.create.topics.enable": {typ: kmsg.ConfigTypeBoolean, def: strp("true"), value: func(c *Config) (string, bool) {
		return strconv.FormatBool(c.AutoCreateTopics), true
	}, doc: "Whether Metadata requests create missing topics (-auto-create-topics)."},
	"broker.id": {typ: kmsg.ConfigTypeInt, def: strp("-1"), value: nodeIDValue,
		doc: "This broker's id (-node-id)."},
	"connections.max.idle.ms": {typ: kmsg.ConfigTypeLong, def: strp("600000"), value: func(c *Config) (string, bool) {
		return intOr(c.ConnectionsMaxIdleMs, 600000), true
	}, doc: "Idle connections are closed after this long; -1 never (-idle-timeout)."},
	"default.replication.factor": {typ: kmsg.ConfigTypeInt, def: strp("1"), value: fixed("1"),
		doc: "Replication factor of new topics. klite has one broker."},
	"listeners": {typ: kmsg.ConfigTypeString, def: strp("PLAINTEXT://:9092"), value: func(c *Config) (string, bool) {
		if c.BoundListeners == "" {
			return "PLAINTEXT://:9092", true
		}
		return c.BoundListeners, true
	}, doc: "The address the broker listens on (-listen)."},
	"log.dirs": {typ: kmsg.ConfigTypeString, value: func(c *Config) (string, bool) {
		return c.LogDirs, c.LogDirs != ""
	}, doc: "Where the write-ahead log and metadata are kept (-wal)."},
	"log.segment.bytes": {typ: kmsg.ConfigTypeInt, def: strp(strconv.Itoa(kafkaDefaultSegmentBytes)), value: func(c *Config) (string, bool) {
		return intOr(c.SegmentBytes, kafkaDefaultSegmentBytes), true
	}, doc: "Size of a write-ahead-log segment file, shared by all partitions (-segment-bytes)."},
	"log.retention.bytes": {typ: kmsg.ConfigTypeLong, def: strp("-1"), value: func(c *Config) (string, bool) {
		return intOr(c.RetentionBytes, -1), true
	}, doc: "Default retention.bytes of topics that do not set it; -1 no limit (-retention-bytes)."},
	"log.retention.check.interval.ms": {typ: kmsg.ConfigTypeLong, def: strp(strconv.Itoa(kafkaDefaultRetentionCheckInterval)), value: func(c *Config) (string, bool) {
		return intOr(c.RetentionCheckIntervalMs, kafkaDefaultRetentionCheckInterval), true
	}, doc: "How often retention runs (-retention-check-interval)."},
	"log.retention.ms": {typ: kmsg.ConfigTypeLong, def: strp(kafkaDefaultRetentionMs), value: func(c *Config) (string, bool) {
		if c.RetentionMs == 0 {
			return kafkaDefaultRetentionMs, true
		}
		return strconv.FormatInt(c.RetentionMs, 10), true
	}, doc: "Default retention.ms of topics that do not set it; -1 forever (-retention-ms)."},
	"max.connections": {typ: kmsg.ConfigTypeInt, def: strp("2147483647"), value: func(c *Config) (string, bool) {
		return intOr(c.MaxConnections, 2147483647), true
	}, doc: "Most client connections at once (-max-conns)."},
	"message.max.bytes": {typ: kmsg.ConfigTypeInt, def: strp("1048588"), value: func(c *Config) (string, bool) {
		return strconv.Itoa(int(c.MaxMessageBytes)), true
	}, doc: "Largest record batch accepted, unless a topic sets max.message.bytes (-max-message-bytes)."},
	"node.id": {typ: kmsg.ConfigTypeInt, def: strp("-1"), value: nodeIDValue,
		doc: "This broker's id (-node-id)."},
	"num.partitions": {typ: kmsg.ConfigTypeInt, def: strp("1"), value: func(c *Config) (string, bool) {
		return strconv.Itoa(int(c.DefaultPartitions)), true
	}, doc: "Partitions of auto-created topics and of topics created with -1 partitions (-default-partitions)."},
	"queued.max.request.bytes": {typ: kmsg.ConfigTypeLong, def: strp("-1"), value: func(c *Config) (string, bool) {
		return intOr(c.QueuedMaxRequestBytes, -1), true
	}, doc: "Request bytes held in memory by the whole broker before no more requests are read; -1 no cap (-max-queued-request-bytes)."},
	"socket.request.max.bytes": {typ: kmsg.ConfigTypeInt, def: strp("104857600"), value: func(c *Config) (string, bool) {
		return intOr(c.SocketRequestMaxBytes, 104857600), true
	}, doc: "Largest request accepted; larger ones close the connection (-max-request-bytes)."},
}

func init() {
	for name, tc := range topicConfigs {
		if tc.broker == "" || tc.removed {
			continue
		}
		if _, ok := brokerConfigs[tc.broker]; ok {
			continue // klite sets it
		}
		brokerConfigs[tc.broker] = brokerConfig{typ: tc.typ, def: &tc.def, value: fixed(tc.def),
			doc: "Default " + name + " of topics that do not set it."}
	}
	brokerConfigNames = slices.Sorted(maps.Keys(brokerConfigs))
}

// brokerConfigNames is brokerConfigs' keys in name order (set in init).
var brokerConfigNames []string

func nodeIDValue(c *Config) (string, bool) { return strconv.Itoa(int(c.NodeID)), true }

func fixed(v string) func(*Config) (string, bool) {
	return func(*Config) (string, bool) { return v, true }
}

// intOr formats n, or def when n is zero (not set).
func intOr[T int32 | int64](n T, def int64) string {
	if n == 0 {
		return strconv.FormatInt(def, 10)
	}
	return strconv.FormatInt(int64(n), 10)
}

// ---- validation ----

// maxConfigValueBytes bounds a topic config value: the longest string the
// non-flexible versions of CreateTopics and DescribeConfigs can carry (an
// int16 length). A longer value, once stored, made every DescribeConfigs
// v0-3 of its topic a frame no client can parse (Kafka fails to serialize
// such a response); it was also how one client filled the metadata.
const maxConfigValueBytes = 32767

// maxEchoBytes bounds the client input quoted back in an error message.
const maxEchoBytes = 256

// clip is s cut to maxEchoBytes, for an error message.
func clip(s string) string {
	if len(s) <= maxEchoBytes {
		return s
	}
	return s[:maxEchoBytes] + "..."
}

// validateTopicConfig checks one config value. It returns the value
// normalized as Kafka reports a parsed value (trimmed, numbers canonical,
// booleans lower case, list elements trimmed), or a reason for an
// INVALID_CONFIG error.
func validateTopicConfig(name string, value *string) (norm, errMsg string) {
	c, ok := topicConfigs[name]
	if !ok {
		return "", "Unknown topic config name: " + clip(name)
	}
	if value == nil {
		return "", "Null value not supported for topic configs: " + name
	}
	if len(*value) > maxConfigValueBytes {
		return "", "Invalid value " + clip(*value) + " for configuration " + name + ": " +
			strconv.Itoa(len(*value)) + " bytes, over the limit of " + strconv.Itoa(maxConfigValueBytes)
	}
	v := strings.TrimSpace(*value)
	bad := "Invalid value " + clip(*value) + " for configuration " + name
	switch c.typ {
	case kmsg.ConfigTypeLong, kmsg.ConfigTypeInt:
		bits, typ := 64, "LONG"
		if c.typ == kmsg.ConfigTypeInt {
			bits, typ = 32, "INT"
		}
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			return "", bad + ": Not a number of type " + typ
		}
		if c.hasMin && n < c.min {
			return "", bad + ": Value must be at least " + strconv.FormatInt(c.min, 10)
		}
		return strconv.FormatInt(n, 10), ""
	case kmsg.ConfigTypeBoolean:
		if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
			return "", bad + ": Expected value to be either true or false"
		}
		return strings.ToLower(v), ""
	case kmsg.ConfigTypeDouble:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return "", bad + ": Value must be a number between 0 and 1"
		}
		return v, ""
	case kmsg.ConfigTypeList:
		if v == "" && c.enum == nil {
			return "", ""
		}
		elems := strings.Split(v, ",")
		for i, e := range elems {
			e = strings.TrimSpace(e)
			if c.enum != nil && !slices.Contains(c.enum, e) {
				return "", bad + ": Invalid value " + clip(e)
			}
			elems[i] = e
		}
		return strings.Join(elems, ","), ""
	default: // STRING
		if c.enum != nil && !slices.Contains(c.enum, v) {
			return "", bad + ": String must be one of: " + strings.Join(c.enum, ", ")
		}
		return v, ""
	}
}

// ---- description ----

// configEntry is one described config, before it goes into a response.
type configEntry struct {
	name     string
	value    *string
	source   kmsg.ConfigSource
	readOnly bool
	typ      kmsg.ConfigType
	doc      string
	synonyms []configSynonym // in Kafka's order of precedence
}

type configSynonym struct {
	name   string
	value  *string
	source kmsg.ConfigSource
}

// isDefault is DescribeConfigs v0's IsDefault: not overridden for this
// resource.
func (e *configEntry) isDefault() bool {
	return e.source == kmsg.ConfigSourceDefaultConfig || e.source == kmsg.ConfigSourceStaticBrokerConfig
}

// topicConfigEntry describes topic config name (a key of topicConfigs) of a
// topic whose explicitly set configs are set.
func (h *Handler) topicConfigEntry(name string, set map[string]string) configEntry {
	tc := topicConfigs[name]
	e := configEntry{name: name, typ: tc.typ, doc: tc.doc, source: kmsg.ConfigSourceDefaultConfig}
	if v, ok := set[name]; ok {
		e.synonyms = append(e.synonyms, configSynonym{name: name, value: &v, source: kmsg.ConfigSourceDynamicTopicConfig})
	}
	if tc.broker != "" {
		e.synonyms = append(e.synonyms, h.brokerSynonyms(tc.broker, true)...)
	}
	if len(e.synonyms) > 0 {
		e.value, e.source = e.synonyms[0].value, e.synonyms[0].source
	} else {
		def := tc.def
		e.value = &def
	}
	return e
}

// brokerConfigEntry describes broker config name (a key of brokerConfigs)
// of this broker: its value in force and every synonym.
func (h *Handler) brokerConfigEntry(name string) configEntry {
	bc := brokerConfigs[name]
	e := configEntry{name: name, source: kmsg.ConfigSourceDefaultConfig, readOnly: !brokerDynamic(name), typ: bc.typ, doc: bc.doc}
	e.synonyms = h.brokerSynonyms(name, true)
	if len(e.synonyms) > 0 {
		e.value, e.source = e.synonyms[0].value, e.synonyms[0].source
	}
	return e
}

// ---- alteration (AlterConfigs, IncrementalAlterConfigs) ----

// configOp is one requested change. AlterConfigs' entries are SETs of the
// resource's whole new config set (replace).
type configOp struct {
	name  string
	op    kmsg.IncrementalAlterConfigOp
	value *string
}

// alterResource is one resource of an AlterConfigs or
// IncrementalAlterConfigs request.
type alterResource struct {
	typ     kmsg.ConfigResourceType
	name    string
	ops     []configOp
	replace bool // AlterConfigs: configs not named revert to their defaults

	// denied is the error code of an ACL that refuses the change.
	denied int16
}

// alterResult is one resource's outcome.
type alterResult struct {
	code int16
	msg  *string
}

func alterErr(code int16, msg string) alterResult { return alterResult{code, &msg} }

// alterConfigs applies (or with validateOnly only checks) each resource,
// with Kafka's checks: a resource named twice fails every appearance; a
// config named twice within a resource, or a null value other than a
// DELETE's, fails the resource with INVALID_REQUEST.
func (h *Handler) alterConfigs(rs []alterResource, validateOnly bool) []alterResult {
	out := make([]alterResult, len(rs))
	count := countKeys(rs, func(r *alterResource) configResourceKey { return configResourceKey{r.typ, r.name} })
	for i := range rs {
		if count[configResourceKey{rs[i].typ, rs[i].name}] > 1 {
			out[i] = alterErr(kerr.InvalidRequest.Code, "Each resource must appear at most once.")
			continue
		}
		if rs[i].denied != 0 {
			out[i] = alterErr(rs[i].denied, kerr.ErrorForCode(rs[i].denied).Error())
			continue
		}
		out[i] = h.alterResource(&rs[i], validateOnly)
	}
	return out
}

func (h *Handler) alterResource(r *alterResource, validateOnly bool) alterResult {
	names := make(map[string]bool, len(r.ops))
	var nulls []string
	for _, o := range r.ops {
		if names[o.name] {
			return alterErr(kerr.InvalidRequest.Code, "Error due to duplicate config keys")
		}
		names[o.name] = true
		if o.value == nil && o.op != kmsg.IncrementalAlterConfigOpDelete {
			nulls = append(nulls, o.name)
		}
	}
	if len(nulls) > 0 {
		return alterErr(kerr.InvalidRequest.Code, "Null value not supported for : "+strings.Join(nulls, ", "))
	}
	switch r.typ {
	case kmsg.ConfigResourceTypeTopic:
		return h.alterTopicConfigs(r, validateOnly)
	case kmsg.ConfigResourceTypeBroker:
		return h.alterBrokerConfigs(r, validateOnly)
	case kmsg.ConfigResourceTypeBrokerLogger:
		if r.replace {
			break // AlterConfigs never supported loggers
		}
		if msg := h.checkBrokerID(r.name, ""); msg != "" {
			return alterErr(kerr.InvalidRequest.Code, msg)
		}
		return alterErr(kerr.InvalidRequest.Code, "klite does not support BROKER_LOGGER configs: its log level is set by -log-level.")
	case kmsg.ConfigResourceTypeClientMetrics, kmsg.ConfigResourceTypeGroupConfig:
		return alterErr(kerr.InvalidRequest.Code, "klite does not support "+r.typ.String()+" configs.")
	}
	return alterErr(kerr.InvalidRequest.Code, "Unknown resource type "+strconv.Itoa(int(r.typ)))
}

// alterTopicConfigs computes a topic's new explicit configs, validates the
// ones changed, and stores them. alterMu makes the read-modify-write atomic.
func (h *Handler) alterTopicConfigs(r *alterResource, validateOnly bool) alterResult {
	if r.name == "" {
		return alterErr(kerr.InvalidRequest.Code, "Default topic resources are not allowed.")
	}
	if !validTopicName(r.name) {
		return alterErr(kerr.InvalidTopicException.Code, "Topic name \""+r.name+"\" is illegal: it must be 1 to 249 characters of [a-zA-Z0-9._-] and not '.' or '..'")
	}
	h.alterMu.Lock()
	defer h.alterMu.Unlock()
	info, ok := h.st.Topic(r.name)
	if !ok {
		return alterErr(kerr.UnknownTopicOrPartition.Code, "The topic '"+r.name+"' does not exist.")
	}
	next := make(map[string]string, len(info.Configs)+len(r.ops))
	if !r.replace {
		maps.Copy(next, info.Configs)
	}
	for _, o := range r.ops {
		switch o.op {
		case kmsg.IncrementalAlterConfigOpSet:
			next[o.name] = *o.value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(next, o.name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			tc, known := topicConfigs[o.name]
			if !known || tc.typ != kmsg.ConfigTypeList {
				return alterErr(kerr.InvalidConfig.Code, "Can't "+o.op.String()+" to key "+o.name+" because its type is not LIST.")
			}
			cur, set := next[o.name]
			if !set {
				cur = tc.def
			}
			next[o.name] = editList(cur, *o.value, o.op == kmsg.IncrementalAlterConfigOpAppend)
		default:
			return alterErr(kerr.InvalidRequest.Code, "Unknown operation type "+strconv.Itoa(int(o.op)))
		}
	}
	for _, o := range r.ops {
		v, ok := next[o.name]
		if !ok {
			continue // deleted
		}
		norm, msg := validateTopicConfig(o.name, &v)
		if msg != "" {
			return alterErr(kerr.InvalidConfig.Code, msg)
		}
		next[o.name] = norm
	}
	if validateOnly {
		return alterResult{}
	}
	if err := h.st.SetTopicConfigs(r.name, next); err != nil {
		return alterErr(h.errCode(err), err.Error())
	}
	return alterResult{}
}

// editList appends the elements of change missing from list, or removes
// every element of change from it (comma-separated lists). It is linear in
// the lengths of both: a client sends lists of any length.
func editList(list, change string, add bool) string {
	var cur []string
	have := map[string]bool{}
	for _, e := range strings.Split(list, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cur = append(cur, e)
			have[e] = true
		}
	}
	drop := map[string]bool{}
	for _, e := range strings.Split(change, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
		case add && !have[e]:
			cur = append(cur, e)
			have[e] = true
		case !add:
			drop[e] = true
		}
	}
	if len(drop) > 0 {
		cur = slices.DeleteFunc(cur, func(c string) bool { return drop[c] })
	}
	return strings.Join(cur, ",")
}
