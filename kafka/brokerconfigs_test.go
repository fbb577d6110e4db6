package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// memBrokerConfigs is a BrokerConfigStore in memory.
type memBrokerConfigs map[string]map[string]string

func (m memBrokerConfigs) BrokerConfigs(name string) map[string]string { return m[name] }
func (m memBrokerConfigs) SetBrokerConfigs(name string, cs map[string]string) error {
	if len(cs) == 0 {
		delete(m, name)
	} else {
		m[name] = cs
	}
	return nil
}

func brokerOps(name string, ops ...opSpec) alterSpec {
	return alterSpec{typ: kmsg.ConfigResourceTypeBroker, name: name, ops: ops}
}

// Dynamic broker configs: the cluster default and this broker's own, with
// Kafka's sources and synonyms, applied to topics without their own value
// and to produce's size limit, kept by the store, refused with Kafka's
// errors where klite or Kafka cannot change them.
func TestBrokerConfigsDynamic(t *testing.T) {
	store := memBrokerConfigs{}
	hs := newHarness(t, func(c *Config) {
		c.MaxMessageBytes = 2000000
		c.BrokerConfigStore = store
	})
	hs.createTopic("plain", 1, nil)
	hs.createTopic("own", 1, map[string]string{"retention.ms": "1000"})

	wantCodes(t, "set", incCodes(t, hs, 1, false,
		brokerOps("", set("log.retention.ms", "60000"), set("message.max.bytes", " 300 "), set("compression.type", "zstd")),
		brokerOps("1", set("log.retention.ms", "120000")),
	), 0, 0)
	if got := store[""]; len(got) != 3 || got["message.max.bytes"] != "300" || got["log.retention.ms"] != "60000" {
		t.Fatalf("stored default %v", got)
	}
	if got := hs.h.maxMessageBytes(); got != 300 {
		t.Fatalf("message.max.bytes in force %d, want 300", got)
	}

	resp := roundTrip[*kmsg.DescribeConfigsResponse](hs, describeReq(4, true, false,
		resSpec{typ: kmsg.ConfigResourceTypeBroker, name: "1"},
		resSpec{typ: kmsg.ConfigResourceTypeBroker, name: ""},
		resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "plain"},
		resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "own"}))
	broker, dflt, plain, own := resp.Resources[0], resp.Resources[1], resp.Resources[2], resp.Resources[3]
	c := configByName(t, broker, "log.retention.ms")
	if val(c.Value) != "120000" || c.Source != kmsg.ConfigSourceDynamicBrokerConfig || c.ReadOnly {
		t.Fatalf("broker log.retention.ms %s (%s) read-only %v", val(c.Value), c.Source, c.ReadOnly)
	}
	checkSynonyms(t, 4, c,
		syn{"log.retention.ms", "120000", kmsg.ConfigSourceDynamicBrokerConfig},
		syn{"log.retention.ms", "60000", kmsg.ConfigSourceDynamicDefaultBrokerConfig},
		syn{"log.retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig})
	checkSynonyms(t, 4, configByName(t, broker, "message.max.bytes"),
		syn{"message.max.bytes", "300", kmsg.ConfigSourceDynamicDefaultBrokerConfig},
		syn{"message.max.bytes", "2000000", kmsg.ConfigSourceStaticBrokerConfig},
		syn{"message.max.bytes", "1048588", kmsg.ConfigSourceDefaultConfig})
	if c := configByName(t, broker, "log.dirs"); !c.ReadOnly {
		t.Fatal("log.dirs is not read-only")
	}
	// "" lists the cluster defaults set, without this broker's own.
	if len(dflt.Configs) != 3 {
		t.Fatalf("cluster default resource lists %d configs: %+v", len(dflt.Configs), dflt.Configs)
	}
	c = configByName(t, dflt, "log.retention.ms")
	if val(c.Value) != "60000" || c.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("default log.retention.ms %s (%s)", val(c.Value), c.Source)
	}
	checkSynonyms(t, 4, c,
		syn{"log.retention.ms", "60000", kmsg.ConfigSourceDynamicDefaultBrokerConfig},
		syn{"log.retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig})
	// Topics without their own value take the broker's.
	checkSynonyms(t, 4, configByName(t, plain, "retention.ms"),
		syn{"log.retention.ms", "120000", kmsg.ConfigSourceDynamicBrokerConfig},
		syn{"log.retention.ms", "60000", kmsg.ConfigSourceDynamicDefaultBrokerConfig},
		syn{"log.retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig})
	if c := configByName(t, plain, "compression.type"); val(c.Value) != "zstd" || c.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("plain compression.type %s (%s)", val(c.Value), c.Source)
	}
	if c := configByName(t, own, "retention.ms"); val(c.Value) != "1000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("own retention.ms %s (%s)", val(c.Value), c.Source)
	}

	// Errors as Kafka's KRaft broker answers them; nothing changes.
	for _, c := range []struct {
		spec alterSpec
		want int16
	}{
		{brokerOps("", set("log.dirs", "/x")), kerr.InvalidRequest.Code},                                                          // not dynamic
		{brokerOps("1", set("log.message.timestamp.type", "LogAppendTime")), kerr.InvalidRequest.Code},                            // dynamic in Kafka, not in klite
		{brokerOps("", set("message.max.bytes", "-1")), kerr.InvalidRequest.Code},                                                 // below the minimum
		{brokerOps("1", set("log.retention.bytes", "lots")), kerr.InvalidRequest.Code},                                            // not a number
		{brokerOps("2", set("log.retention.ms", "1")), kerr.InvalidRequest.Code},                                                  // another broker
		{brokerOps("", opSpec{"compression.type", kmsg.IncrementalAlterConfigOpAppend, strPtr("gzip")}), kerr.InvalidConfig.Code}, // not a list
	} {
		wantCodes(t, "error "+c.spec.ops[0].name, incCodes(t, hs, 1, false, c.spec), c.want)
	}
	if got := store[""]; len(got) != 3 || got["message.max.bytes"] != "300" {
		t.Fatalf("a refused change changed the default: %v", got)
	}
	r := roundTrip[*kmsg.IncrementalAlterConfigsResponse](hs, incAlterReq(1, false, brokerOps("", set("log.dirs", "/x"), set("num.io.threads", "8"))))
	if m := val(r.Resources[0].ErrorMessage); m != "Cannot update these configs dynamically: Set(log.dirs, num.io.threads)" {
		t.Fatalf("message %q", m)
	}
	// ValidateOnly checks and changes nothing.
	wantCodes(t, "validate only", incCodes(t, hs, 1, true, brokerOps("", set("message.max.bytes", "10"))), 0)
	if got := hs.h.maxMessageBytes(); got != 300 || store[""]["message.max.bytes"] != "300" {
		t.Fatalf("validateOnly changed message.max.bytes: %d %v", got, store[""])
	}

	// DELETE reverts to the next in line; the legacy AlterConfigs replaces
	// the whole set of its resource.
	wantCodes(t, "delete", incCodes(t, hs, 1, false,
		brokerOps("", opSpec{"message.max.bytes", kmsg.IncrementalAlterConfigOpDelete, nil}, opSpec{"log.dirs", kmsg.IncrementalAlterConfigOpDelete, nil})), 0)
	if got := hs.h.maxMessageBytes(); got != 2000000 {
		t.Fatalf("message.max.bytes after delete %d, want the flag's 2000000", got)
	}
	lr := roundTrip[*kmsg.AlterConfigsResponse](hs, alterReq(1, false, brokerOps("", set("log.retention.bytes", "5000"))))
	if lr.Resources[0].ErrorCode != 0 {
		t.Fatalf("legacy alter: %d", lr.Resources[0].ErrorCode)
	}
	if got := store[""]; len(got) != 1 || got["log.retention.bytes"] != "5000" {
		t.Fatalf("legacy alter left %v", got)
	}
	// A new handler on the same store starts with them.
	h2 := New(hs.h.cfg, hs.st)
	if st := h2.brokerCfg.Load(); st.cluster["log.retention.bytes"] != "5000" || st.own["log.retention.ms"] != "120000" {
		t.Fatalf("reloaded %+v", st)
	}
}

// DescribeConfigs does not list the configs Kafka 4.0 removed, though
// CreateTopics still accepts them.
func TestDescribeConfigsDropsRemoved(t *testing.T) {
	hs := configHarness(t)
	hs.createTopic("old", 1, map[string]string{"message.format.version": "2.8"})
	resp := roundTrip[*kmsg.DescribeConfigsResponse](hs, describeReq(4, false, false,
		resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "old"},
		resSpec{typ: kmsg.ConfigResourceTypeBroker, name: "1"}))
	for _, res := range resp.Resources {
		for _, c := range res.Configs {
			switch c.Name {
			case "message.format.version", "log.message.format.version", "message.downconversion.enable",
				"log.message.downconversion.enable", "message.timestamp.difference.max.ms", "log.message.timestamp.difference.max.ms":
				t.Fatalf("%s %q lists %s", res.ResourceType, res.ResourceName, c.Name)
			}
		}
	}
}

// A dynamic log.cleanup.policy reaches topics without their own: produce
// refuses records without a key and DeleteRecords refuses a compact-only
// topic, as for a topic set so; a topic with its own policy keeps it.
func TestBrokerConfigsCleanupPolicy(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("plain", 1, nil)
	hs.createTopic("own", 1, map[string]string{"cleanup.policy": "delete"})
	produce := func(topic string) int16 {
		return roundTrip[*kmsg.ProduceResponse](hs, produceReq(9, -1, topic, [16]byte{}, 0, makeBatch(batchOpts{records: 2}))).Topics[0].Partitions[0].ErrorCode
	}
	deleteRecords := func(topic string) int16 {
		return roundTrip[*kmsg.DeleteRecordsResponse](hs, deleteRecordsReq(2, topic, map[int32]int64{0: 0}, 0)).Topics[0].Partitions[0].ErrorCode
	}
	if c := produce("plain"); c != 0 {
		t.Fatalf("keyless batch before the change: %v", kerr.ErrorForCode(c))
	}
	wantCodes(t, "set", incCodes(t, hs, 1, false, brokerOps("", set("log.cleanup.policy", "compact"))), 0)
	if c := produce("plain"); c != kerr.InvalidRecord.Code {
		t.Fatalf("keyless batch under a compact default: %v, want INVALID_RECORD", kerr.ErrorForCode(c))
	}
	if c := deleteRecords("plain"); c != kerr.PolicyViolation.Code {
		t.Fatalf("DeleteRecords under a compact default: %v, want POLICY_VIOLATION", kerr.ErrorForCode(c))
	}
	if c := produce("own"); c != 0 {
		t.Fatalf("keyless batch to a topic with its own delete policy: %v", kerr.ErrorForCode(c))
	}
	if c := deleteRecords("own"); c != 0 {
		t.Fatalf("DeleteRecords of a topic with its own delete policy: %v", kerr.ErrorForCode(c))
	}
	r := roundTrip[*kmsg.DescribeConfigsResponse](hs, describeReq(4, false, false, resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "plain", names: []string{"cleanup.policy"}}))
	if c := r.Resources[0].Configs[0]; val(c.Value) != "compact" || c.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("plain cleanup.policy %s (%s)", val(c.Value), c.Source)
	}
}

// A stored name this klite does not know (from a restored snapshot) is
// described, not a panic.
func TestBrokerConfigsUnknownStored(t *testing.T) {
	store := memBrokerConfigs{"": {"some.old.config": "1"}}
	hs := newHarness(t, func(c *Config) { c.BrokerConfigStore = store })
	r := roundTrip[*kmsg.DescribeConfigsResponse](hs, describeReq(4, true, false, resSpec{typ: kmsg.ConfigResourceTypeBroker, name: ""}))
	if cs := r.Resources[0].Configs; len(cs) != 1 || val(cs[0].Value) != "1" || cs[0].Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("%+v", r.Resources[0])
	}
}
