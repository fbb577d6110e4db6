package kafka

// Dynamic broker configs: AlterConfigs and IncrementalAlterConfigs on the
// BROKER resource, as Apache Kafka's DynamicBrokerConfig takes them. The
// resource "" holds the cluster-wide defaults, the resource named by
// NodeID this broker's own; a config's value is, first to last, this
// broker's dynamic one (DYNAMIC_BROKER_CONFIG), the cluster default
// (DYNAMIC_DEFAULT_BROKER_CONFIG), klite's flag (STATIC_BROKER_CONFIG) and
// Kafka's default (DEFAULT_CONFIG). A topic config the topic does not set
// takes its broker synonym's value by the same order.
//
// Which configs change at run time (brokerDynamic): message.max.bytes,
// log.retention.ms, log.retention.bytes and log.cleanup.policy, applied
// at once (produce and DeleteRecords from the next request, retention
// from its next pass), and the broker synonyms of the topic configs klite
// accepts without acting on them (compression.type, log.cleaner.*, ...:
// stored and reported, as their topic versions are). Kafka lets every
// topic config's synonym change; klite refuses
// log.message.timestamp.type (fixed per partition when its topic is
// opened), log.segment.bytes (klite's write-ahead-log segments are shared
// by all partitions), its other flags, and names it does not know (Kafka
// stores unknown names).
//
// Errors as Kafka's KRaft brokers answer (ConfigAdminManager): a name
// that cannot change, and a value that does not parse or is out of range,
// are INVALID_REQUEST (KAFKA-13609 keeps a bad value at INVALID_REQUEST
// on the broker resource, where topics answer INVALID_CONFIG), with
// Kafka's "Cannot update these configs dynamically: ..." and "Invalid
// value ..." messages.
//
// Durability: Config.BrokerConfigStore keeps the configs in the metadata
// log, fsynced before the answer, in its snapshots and in the bucket's;
// New loads them. Without one (handler unit tests) they live in memory.

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BrokerConfigStore makes dynamic broker config changes durable.
// *storage.Store implements it.
type BrokerConfigStore interface {
	// BrokerConfigs are the stored configs of a broker resource ("" the
	// cluster default, else a broker id); nil when none.
	BrokerConfigs(resource string) map[string]string
	// SetBrokerConfigs replaces a resource's configs; empty removes them.
	SetBrokerConfigs(resource string, configs map[string]string) error
}

// brokerNotDynamic are topic configs' broker synonyms that klite refuses
// to change at run time, though Kafka lets them (see the file comment).
var brokerNotDynamic = map[string]bool{
	"log.message.timestamp.type": true, // fixed per partition when its topic is opened
	"log.segment.bytes":          true, // -segment-bytes: the shared WAL's segment size
}

// brokerTopicConfig maps each broker config that is a topic config's
// synonym to that topic config (set in init), whose rules validate it.
var brokerTopicConfig = map[string]string{}

// brokerDynamic reports whether klite lets broker config name change at
// run time.
func brokerDynamic(name string) bool {
	_, known := brokerConfigs[name]
	_, synonym := brokerTopicConfig[name]
	return known && synonym && !brokerNotDynamic[name]
}

func init() {
	for name, tc := range topicConfigs {
		if tc.broker != "" && !tc.removed {
			brokerTopicConfig[tc.broker] = name
		}
	}
}

// brokerConfigState is the dynamic broker configs in force; never changed
// once published (Handler.brokerCfg).
type brokerConfigState struct {
	own     map[string]string // this broker's (resource NodeID)
	cluster map[string]string // the cluster-wide defaults (resource "")
	// maxMessageBytes is message.max.bytes in force, parsed.
	maxMessageBytes int64
}

// brokerResource is this broker's resource name.
func (h *Handler) brokerResource() string { return strconv.Itoa(int(h.cfg.NodeID)) }

// loadBrokerConfigs publishes the stored dynamic configs (at New).
func (h *Handler) loadBrokerConfigs() {
	var own, cluster map[string]string
	if s := h.cfg.BrokerConfigStore; s != nil {
		own, cluster = maps.Clone(s.BrokerConfigs(h.brokerResource())), maps.Clone(s.BrokerConfigs(""))
	}
	h.publishBrokerConfigs(own, cluster)
}

func (h *Handler) publishBrokerConfigs(own, cluster map[string]string) {
	st := &brokerConfigState{own: own, cluster: cluster, maxMessageBytes: int64(h.cfg.MaxMessageBytes)}
	if v, _, ok := st.dynamic("message.max.bytes"); ok {
		if n, err := strconv.ParseInt(v, 10, 32); err == nil && n >= 0 {
			st.maxMessageBytes = n
		}
	}
	h.brokerCfg.Store(st)
}

// dynamic is name's dynamic value and source, ok false when it has none.
func (st *brokerConfigState) dynamic(name string) (string, kmsg.ConfigSource, bool) {
	if v, ok := st.own[name]; ok {
		return v, kmsg.ConfigSourceDynamicBrokerConfig, true
	}
	if v, ok := st.cluster[name]; ok {
		return v, kmsg.ConfigSourceDynamicDefaultBrokerConfig, true
	}
	return "", 0, false
}

// cleanupPolicy is the cleanup.policy of a topic whose explicitly set
// configs are configs: its own, else log.cleanup.policy in force.
func (h *Handler) cleanupPolicy(configs map[string]string) string {
	if v, ok := configs["cleanup.policy"]; ok {
		return v
	}
	if v, _, ok := h.brokerCfg.Load().dynamic("log.cleanup.policy"); ok {
		return v
	}
	return topicConfigs["cleanup.policy"].def
}

// maxMessageBytes is message.max.bytes in force.
func (h *Handler) maxMessageBytes() int64 { return h.brokerCfg.Load().maxMessageBytes }

// brokerSynonyms lists broker config name's values by precedence: this
// broker's dynamic one (only when perBroker: the cluster-default resource
// does not show it, as Kafka's), the cluster default, the flag's when it
// differs from Kafka's default (or Kafka has none), Kafka's default.
func (h *Handler) brokerSynonyms(name string, perBroker bool) []configSynonym {
	bc, ok := brokerConfigs[name]
	if !ok {
		return nil
	}
	var out []configSynonym
	st := h.brokerCfg.Load()
	if v, ok := st.own[name]; ok && perBroker {
		out = append(out, configSynonym{name: name, value: &v, source: kmsg.ConfigSourceDynamicBrokerConfig})
	}
	if v, ok := st.cluster[name]; ok {
		out = append(out, configSynonym{name: name, value: &v, source: kmsg.ConfigSourceDynamicDefaultBrokerConfig})
	}
	if v, ok := bc.value(&h.cfg); ok && (bc.def == nil || *bc.def != v) {
		out = append(out, configSynonym{name: name, value: &v, source: kmsg.ConfigSourceStaticBrokerConfig})
	}
	if bc.def != nil {
		out = append(out, configSynonym{name: name, value: bc.def, source: kmsg.ConfigSourceDefaultConfig})
	}
	return out
}

// clusterDefaultEntries describes the BROKER "" resource: the dynamic
// cluster-wide defaults that are set, as Kafka lists them.
func (h *Handler) clusterDefaultEntries(filter []string) []configEntry {
	st := h.brokerCfg.Load()
	var out []configEntry
	for _, name := range slices.Sorted(maps.Keys(st.cluster)) {
		if !wanted(filter, name) {
			continue
		}
		v := st.cluster[name]
		e := configEntry{name: name, value: &v, source: kmsg.ConfigSourceDynamicDefaultBrokerConfig, typ: kmsg.ConfigTypeString}
		if _, known := brokerConfigs[name]; known {
			// Known names only were stored, but a restored snapshot
			// may hold one an older klite knew.
			e = h.brokerConfigEntry(name)
			e.synonyms = h.brokerSynonyms(name, false)
			e.value, e.source = e.synonyms[0].value, e.synonyms[0].source
		}
		out = append(out, e)
	}
	return out
}

// alterBrokerConfigs computes a broker resource's new dynamic configs,
// validates them as Kafka does, and stores them. alterMu makes the
// read-modify-write atomic.
func (h *Handler) alterBrokerConfigs(r *alterResource, validateOnly bool) alterResult {
	if r.name != "" {
		if msg := h.checkBrokerID(r.name, ""); msg != "" {
			return alterErr(kerr.InvalidRequest.Code, msg)
		}
	}
	// As Kafka, only the names the change leaves set are checked:
	// deleting any name is allowed.
	var fixed []string
	for _, o := range r.ops {
		if o.op != kmsg.IncrementalAlterConfigOpDelete && !brokerDynamic(o.name) {
			fixed = append(fixed, o.name)
		}
	}
	if len(fixed) > 0 {
		slices.Sort(fixed)
		return alterErr(kerr.InvalidRequest.Code, "Cannot update these configs dynamically: Set("+clip(strings.Join(fixed, ", "))+")")
	}

	if len(r.ops) == 0 && !r.replace {
		return alterResult{} // nothing to change or store
	}
	h.alterMu.Lock()
	defer h.alterMu.Unlock()
	st := h.brokerCfg.Load()
	cur := st.cluster
	if r.name != "" {
		cur = st.own
	}
	next := make(map[string]string, len(cur)+len(r.ops))
	if !r.replace {
		maps.Copy(next, cur)
	}
	for _, o := range r.ops {
		tcName := brokerTopicConfig[o.name]
		switch o.op {
		case kmsg.IncrementalAlterConfigOpSet:
			next[o.name] = *o.value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(next, o.name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if topicConfigs[tcName].typ != kmsg.ConfigTypeList {
				return alterErr(kerr.InvalidConfig.Code, "Config value append is not allowed for config key: "+o.name)
			}
			v, set := next[o.name]
			if !set {
				if syn := h.brokerSynonyms(o.name, r.name != ""); len(syn) > 0 && syn[0].value != nil {
					v = *syn[0].value
				}
			}
			next[o.name] = editList(v, *o.value, o.op == kmsg.IncrementalAlterConfigOpAppend)
		default:
			return alterErr(kerr.InvalidRequest.Code, "Unknown operation type "+strconv.Itoa(int(o.op)))
		}
	}
	for _, o := range r.ops {
		v, ok := next[o.name]
		if !ok {
			continue
		}
		norm, msg := validateTopicConfig(brokerTopicConfig[o.name], &v)
		if msg != "" {
			// validateTopicConfig names the topic config; Kafka's
			// message names the broker one.
			return alterErr(kerr.InvalidRequest.Code, strings.Replace(msg, "configuration "+brokerTopicConfig[o.name], "configuration "+o.name, 1))
		}
		next[o.name] = norm
	}
	if validateOnly {
		return alterResult{}
	}
	if s := h.cfg.BrokerConfigStore; s != nil {
		if err := s.SetBrokerConfigs(r.name, next); err != nil {
			return alterErr(h.errCode(err), err.Error())
		}
	}
	if len(next) == 0 {
		next = nil
	}
	if r.name == "" {
		h.publishBrokerConfigs(st.own, next)
	} else {
		h.publishBrokerConfigs(next, st.cluster)
	}
	h.log.Info().Str("resource", r.name).Strs("configs", slices.Sorted(maps.Keys(next))).Msg("dynamic broker configs changed")
	return alterResult{}
}
