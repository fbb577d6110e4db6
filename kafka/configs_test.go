package kafka

import (
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

// ---- DescribeConfigs ----

type resSpec struct {
	typ   kmsg.ConfigResourceType
	name  string
	names []string // ConfigNames filter
}

func describeReq(version int16, synonyms, docs bool, specs ...resSpec) *kmsg.DescribeConfigsRequest {
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version = version
	req.IncludeSynonyms, req.IncludeDocumentation = synonyms, docs
	for _, s := range specs {
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName, r.ConfigNames = s.typ, s.name, s.names
		req.Resources = append(req.Resources, r)
	}
	return req
}

func configByName(t *testing.T, res kmsg.DescribeConfigsResponseResource, name string) kmsg.DescribeConfigsResponseResourceConfig {
	t.Helper()
	for _, c := range res.Configs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("%s %q: no config %s", res.ResourceType, res.ResourceName, name)
	return kmsg.DescribeConfigsResponseResourceConfig{}
}

func val(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

type syn struct {
	name, value string
	src         kmsg.ConfigSource
}

func checkSynonyms(t *testing.T, v int16, c kmsg.DescribeConfigsResponseResourceConfig, want ...syn) {
	t.Helper()
	if len(c.ConfigSynonyms) != len(want) {
		t.Fatalf("v%d %s: %d synonyms %+v, want %+v", v, c.Name, len(c.ConfigSynonyms), c.ConfigSynonyms, want)
	}
	for i, w := range want {
		s := c.ConfigSynonyms[i]
		if s.Name != w.name || val(s.Value) != w.value || s.Source != w.src {
			t.Fatalf("v%d %s: synonym %d is %s=%s (%s), want %+v", v, c.Name, i, s.Name, val(s.Value), s.Source, w)
		}
	}
}

func configHarness(t *testing.T) *harness {
	hs := newHarness(t, func(c *Config) {
		c.MaxMessageBytes = 2000000
		c.SegmentBytes = 256 << 20
		c.SocketRequestMaxBytes = 104857600 // Kafka's default
		c.LogDirs = "/data/klite"
	})
	hs.createTopic("t", 3, map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"})
	return hs
}

func TestDescribeConfigsTopic(t *testing.T) {
	for v := int16(0); v <= 4; v++ {
		hs := configHarness(t)
		resp := roundTrip[*kmsg.DescribeConfigsResponse](hs, describeReq(v, true, true, resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "t"}))
		if len(resp.Resources) != 1 {
			t.Fatalf("v%d: %d resources", v, len(resp.Resources))
		}
		res := resp.Resources[0]
		if res.ErrorCode != 0 || res.ResourceName != "t" || res.ResourceType != kmsg.ConfigResourceTypeTopic {
			t.Fatalf("v%d: %+v", v, res)
		}
		if len(res.Configs) != len(topicConfigNames) {
			t.Fatalf("v%d: %d configs, want every topic config Kafka 4 has (%d)", v, len(res.Configs), len(topicConfigNames))
		}
		for _, c := range res.Configs {
			if c.Value == nil || c.ReadOnly || c.IsSensitive {
				t.Fatalf("v%d: %+v", v, c)
			}
			if v >= 3 && (c.ConfigType != topicConfigs[c.Name].typ || c.Documentation == nil || *c.Documentation == "") {
				t.Fatalf("v%d %s: type %v doc %v", v, c.Name, c.ConfigType, c.Documentation)
			}
		}
		type want struct {
			name, value string
			src         kmsg.ConfigSource
			isDefault   bool
		}
		for _, w := range []want{
			{"retention.ms", "1000", kmsg.ConfigSourceDynamicTopicConfig, false},
			{"cleanup.policy", "compact", kmsg.ConfigSourceDynamicTopicConfig, false},
			{"retention.bytes", "-1", kmsg.ConfigSourceDefaultConfig, true},
			{"message.timestamp.type", "CreateTime", kmsg.ConfigSourceDefaultConfig, true},
			{"min.insync.replicas", "1", kmsg.ConfigSourceDefaultConfig, true},
			{"compression.type", "producer", kmsg.ConfigSourceDefaultConfig, true},
			{"max.message.bytes", "2000000", kmsg.ConfigSourceStaticBrokerConfig, true},
			{"segment.bytes", strconv.Itoa(256 << 20), kmsg.ConfigSourceStaticBrokerConfig, true},
			{"segment.ms", "604800000", kmsg.ConfigSourceDefaultConfig, true},
		} {
			c := configByName(t, res, w.name)
			if val(c.Value) != w.value {
				t.Fatalf("v%d %s = %s, want %s", v, w.name, val(c.Value), w.value)
			}
			if v >= 1 && c.Source != w.src {
				t.Fatalf("v%d %s: source %s, want %s", v, w.name, c.Source, w.src)
			}
			if v == 0 && c.IsDefault != w.isDefault {
				t.Fatalf("v0 %s: IsDefault %v", w.name, c.IsDefault)
			}
		}
		if v == 0 {
			continue
		}
		checkSynonyms(t, v, configByName(t, res, "retention.ms"),
			syn{"retention.ms", "1000", kmsg.ConfigSourceDynamicTopicConfig},
			syn{"log.retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig})
		checkSynonyms(t, v, configByName(t, res, "cleanup.policy"),
			syn{"cleanup.policy", "compact", kmsg.ConfigSourceDynamicTopicConfig},
			syn{"log.cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig})
		checkSynonyms(t, v, configByName(t, res, "max.message.bytes"),
			syn{"message.max.bytes", "2000000", kmsg.ConfigSourceStaticBrokerConfig},
			syn{"message.max.bytes", "1048588", kmsg.ConfigSourceDefaultConfig})
		checkSynonyms(t, v, configByName(t, res, "follower.replication.throttled.replicas"))

		// Without IncludeSynonyms and IncludeDocumentation: neither.
		resp = roundTrip[*kmsg.DescribeConfigsResponse](hs, describeReq(v, false, false, resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "t"}))
		for _, c := range resp.Resources[0].Configs {
			if len(c.ConfigSynonyms) != 0 || c.Documentation != nil {
				t.Fatalf("v%d %s: synonyms or docs not asked for: %+v", v, c.Name, c)
			}
		}
	}
}

func TestDescribeConfigsFilterAndErrors(t *testing.T) {
	hs := configHarness(t)
	resp := roundTrip[*kmsg.DescribeConfigsResponse](hs, describeReq(4, false, false,
		resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "t", names: []string{"retention.ms", "no.such.config", "segment.bytes"}},
		resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "missing"},
		resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "bad/name"},
		resSpec{typ: kmsg.ConfigResourceTypeTopic, name: ""},
		resSpec{typ: kmsg.ConfigResourceTypeBroker, name: "2"},
		resSpec{typ: kmsg.ConfigResourceTypeBroker, name: "one"},
		resSpec{typ: kmsg.ConfigResourceTypeBrokerLogger, name: "1"},
		resSpec{typ: kmsg.ConfigResourceTypeBrokerLogger, name: ""},
		resSpec{typ: kmsg.ConfigResourceTypeBrokerLogger, name: "3"},
		resSpec{typ: kmsg.ConfigResourceTypeClientMetrics, name: "m"},
		resSpec{typ: kmsg.ConfigResourceType(3), name: "x"},
		resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "t"}, // duplicate
	))
	want := []int16{
		0,
		kerr.UnknownTopicOrPartition.Code,
		kerr.InvalidTopicException.Code,
		kerr.InvalidTopicException.Code,
		kerr.InvalidRequest.Code,
		kerr.InvalidRequest.Code,
		kerr.InvalidRequest.Code,
		kerr.InvalidRequest.Code,
		kerr.InvalidRequest.Code,
		kerr.InvalidRequest.Code,
		kerr.InvalidRequest.Code,
		kerr.InvalidRequest.Code,
	}
	if len(resp.Resources) != len(want) {
		t.Fatalf("%d resources, want %d", len(resp.Resources), len(want))
	}
	for i, w := range want {
		res := resp.Resources[i]
		if res.ErrorCode != w {
			t.Fatalf("resource %d (%s %q): error %d, want %d", i, res.ResourceType, res.ResourceName, res.ErrorCode, w)
		}
		if w != 0 && (res.ErrorMessage == nil || *res.ErrorMessage == "" || len(res.Configs) != 0) {
			t.Fatalf("resource %d: message %v, %d configs", i, res.ErrorMessage, len(res.Configs))
		}
	}
	if got := resp.Resources[0].Configs; len(got) != 2 || got[0].Name != "retention.ms" || got[1].Name != "segment.bytes" {
		t.Fatalf("filtered: %+v", got)
	}
	if m := *resp.Resources[4].ErrorMessage; m != "Unexpected broker id, expected 1 or empty string, but received 2" {
		t.Fatalf("wrong broker id message: %q", m)
	}
}

func TestDescribeConfigsBroker(t *testing.T) {
	for v := int16(0); v <= 4; v++ {
		hs := configHarness(t)
		resp := roundTrip[*kmsg.DescribeConfigsResponse](hs, describeReq(v, true, true,
			resSpec{typ: kmsg.ConfigResourceTypeBroker, name: "1"},
			resSpec{typ: kmsg.ConfigResourceTypeBroker, name: ""}))
		res := resp.Resources[0]
		if res.ErrorCode != 0 || len(res.Configs) != len(brokerConfigs) {
			t.Fatalf("v%d: error %d, %d configs", v, res.ErrorCode, len(res.Configs))
		}
		for _, c := range res.Configs {
			if c.ReadOnly == brokerDynamic(c.Name) || c.IsSensitive {
				t.Fatalf("v%d: %+v", v, c)
			}
		}
		for _, w := range []struct {
			name, value string
			src         kmsg.ConfigSource
		}{
			{"broker.id", "1", kmsg.ConfigSourceStaticBrokerConfig},
			{"node.id", "1", kmsg.ConfigSourceStaticBrokerConfig},
			{"advertised.listeners", "PLAINTEXT://broker.test:9092", kmsg.ConfigSourceStaticBrokerConfig},
			{"message.max.bytes", "2000000", kmsg.ConfigSourceStaticBrokerConfig},
			{"log.segment.bytes", strconv.Itoa(256 << 20), kmsg.ConfigSourceStaticBrokerConfig},
			{"socket.request.max.bytes", "104857600", kmsg.ConfigSourceDefaultConfig},
			{"auto.create.topics.enable", "true", kmsg.ConfigSourceDefaultConfig},
			{"num.partitions", "1", kmsg.ConfigSourceDefaultConfig},
			{"log.dirs", "/data/klite", kmsg.ConfigSourceStaticBrokerConfig},
			{"log.cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig},
			{"connections.max.idle.ms", "600000", kmsg.ConfigSourceDefaultConfig},
			{"queued.max.request.bytes", "-1", kmsg.ConfigSourceDefaultConfig}, // not set in this harness
		} {
			c := configByName(t, res, w.name)
			if val(c.Value) != w.value || (v >= 1 && c.Source != w.src) {
				t.Fatalf("v%d %s = %s (%s), want %s (%s)", v, w.name, val(c.Value), c.Source, w.value, w.src)
			}
		}
		if v >= 1 {
			checkSynonyms(t, v, configByName(t, res, "message.max.bytes"),
				syn{"message.max.bytes", "2000000", kmsg.ConfigSourceStaticBrokerConfig},
				syn{"message.max.bytes", "1048588", kmsg.ConfigSourceDefaultConfig})
		}
		// "": the dynamic cluster-wide defaults, none set here.
		if res := resp.Resources[1]; res.ErrorCode != 0 || len(res.Configs) != 0 {
			t.Fatalf("v%d default broker resource: %+v", v, res)
		}
	}
}

// Node id 0 is matched as "0", and many resources are answered off the
// event loop.
func TestDescribeConfigsNodeZeroAndMany(t *testing.T) {
	hs := newHarness(t, func(c *Config) { c.NodeID = 0 })
	var specs []resSpec
	for i := range 2 * describeConfigsInline {
		name := "topic-" + strconv.Itoa(i)
		hs.createTopic(name, 1, nil)
		specs = append(specs, resSpec{typ: kmsg.ConfigResourceTypeTopic, name: name})
	}
	specs = append(specs, resSpec{typ: kmsg.ConfigResourceTypeBroker, name: "0"})
	resp := roundTrip[*kmsg.DescribeConfigsResponse](hs, describeReq(2, false, false, specs...))
	for i, res := range resp.Resources {
		if res.ErrorCode != 0 || len(res.Configs) == 0 {
			t.Fatalf("resource %d: %+v", i, res)
		}
	}
	if c := configByName(t, resp.Resources[len(specs)-1], "broker.id"); val(c.Value) != "0" {
		t.Fatalf("broker.id %s", val(c.Value))
	}
}

// CreateTopics v5+ reports configs as DescribeConfigs does.
func TestCreateTopicsReportsBrokerDefaults(t *testing.T) {
	hs := configHarness(t)
	resp := roundTrip[*kmsg.CreateTopicsResponse](hs, createReq(7, false,
		createSpec{name: "n", partitions: 1, rf: 1, configs: map[string]*string{"retention.ms": strPtr(" 5000 "), "cleanup.policy": strPtr("delete , compact")}}))
	rt := resp.Topics[0]
	if rt.ErrorCode != 0 {
		t.Fatalf("create: %d", rt.ErrorCode)
	}
	got := map[string]kmsg.CreateTopicsResponseTopicConfig{}
	for _, c := range rt.Configs {
		got[c.Name] = c
	}
	for name, w := range map[string]struct {
		value string
		src   kmsg.ConfigSource
	}{
		"retention.ms":      {"5000", kmsg.ConfigSourceDynamicTopicConfig},
		"cleanup.policy":    {"delete,compact", kmsg.ConfigSourceDynamicTopicConfig},
		"max.message.bytes": {"2000000", kmsg.ConfigSourceStaticBrokerConfig},
		"retention.bytes":   {"-1", kmsg.ConfigSourceDefaultConfig},
	} {
		c := got[name]
		if val(c.Value) != w.value || c.Source != int8(w.src) {
			t.Fatalf("%s = %s (%d), want %+v", name, val(c.Value), c.Source, w)
		}
	}
	// Stored normalized.
	if info, _ := hs.st.Topic("n"); info.Configs["retention.ms"] != "5000" || info.Configs["cleanup.policy"] != "delete,compact" {
		t.Fatalf("stored %v", info.Configs)
	}
}

func TestValidateTopicConfig(t *testing.T) {
	for _, c := range []struct {
		name, value, norm string
		ok                bool
	}{
		{"retention.ms", "-1", "-1", true},
		{"retention.ms", "-2", "", false},
		{"retention.ms", "+007", "7", true},
		{"max.message.bytes", "4294967296", "", false}, // INT
		{"preallocate", "TRUE", "true", true},
		{"preallocate", "yes", "", false},
		{"min.cleanable.dirty.ratio", "0.25", "0.25", true},
		{"min.cleanable.dirty.ratio", "NaN", "", false},
		{"min.cleanable.dirty.ratio", "1.5", "", false},
		{"cleanup.policy", "compact", "compact", true},
		{"cleanup.policy", "", "", false},
		{"cleanup.policy", "compact,bogus", "", false},
		{"leader.replication.throttled.replicas", "", "", true},
		{"leader.replication.throttled.replicas", "0:1, 1:1", "0:1,1:1", true},
		{"message.timestamp.type", " LogAppendTime ", "LogAppendTime", true},
		{"message.timestamp.type", "logappendtime", "", false},
		{"no.such", "1", "", false},
	} {
		norm, msg := validateTopicConfig(c.name, &c.value)
		if (msg == "") != c.ok || norm != c.norm {
			t.Fatalf("%s=%q: norm %q msg %q", c.name, c.value, norm, msg)
		}
	}
	if _, msg := validateTopicConfig("retention.ms", nil); msg == "" {
		t.Fatal("null value accepted")
	}
}

// ---- IncrementalAlterConfigs and AlterConfigs ----

type opSpec struct {
	name  string
	op    kmsg.IncrementalAlterConfigOp
	value *string
}

type alterSpec struct {
	typ  kmsg.ConfigResourceType
	name string
	ops  []opSpec
}

func incAlterReq(version int16, validateOnly bool, specs ...alterSpec) *kmsg.IncrementalAlterConfigsRequest {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.Version, req.ValidateOnly = version, validateOnly
	for _, s := range specs {
		r := kmsg.NewIncrementalAlterConfigsRequestResource()
		r.ResourceType, r.ResourceName = s.typ, s.name
		for _, o := range s.ops {
			c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			c.Name, c.Op, c.Value = o.name, o.op, o.value
			r.Configs = append(r.Configs, c)
		}
		req.Resources = append(req.Resources, r)
	}
	return req
}

func alterReq(version int16, validateOnly bool, specs ...alterSpec) *kmsg.AlterConfigsRequest {
	req := kmsg.NewPtrAlterConfigsRequest()
	req.Version, req.ValidateOnly = version, validateOnly
	for _, s := range specs {
		r := kmsg.NewAlterConfigsRequestResource()
		r.ResourceType, r.ResourceName = s.typ, s.name
		for _, o := range s.ops {
			c := kmsg.NewAlterConfigsRequestResourceConfig()
			c.Name, c.Value = o.name, o.value
			r.Configs = append(r.Configs, c)
		}
		req.Resources = append(req.Resources, r)
	}
	return req
}

func topicOps(name string, ops ...opSpec) alterSpec {
	return alterSpec{typ: kmsg.ConfigResourceTypeTopic, name: name, ops: ops}
}

func set(name, value string) opSpec {
	return opSpec{name, kmsg.IncrementalAlterConfigOpSet, &value}
}

func incCodes(t *testing.T, hs *harness, version int16, validateOnly bool, specs ...alterSpec) []int16 {
	t.Helper()
	resp := roundTrip[*kmsg.IncrementalAlterConfigsResponse](hs, incAlterReq(version, validateOnly, specs...))
	if len(resp.Resources) != len(specs) {
		t.Fatalf("%d results for %d resources", len(resp.Resources), len(specs))
	}
	codes := make([]int16, len(specs))
	for i, r := range resp.Resources {
		if r.ResourceName != specs[i].name || r.ResourceType != specs[i].typ {
			t.Fatalf("result %d names %s %q", i, r.ResourceType, r.ResourceName)
		}
		if (r.ErrorCode != 0) != (r.ErrorMessage != nil) {
			t.Fatalf("result %d: code %d message %v", i, r.ErrorCode, r.ErrorMessage)
		}
		codes[i] = r.ErrorCode
	}
	return codes
}

func wantCodes(t *testing.T, what string, got []int16, want ...int16) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: codes %v, want %v", what, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: codes %v, want %v", what, got, want)
		}
	}
}

func topicConfigsOf(t *testing.T, hs *harness, name string) map[string]string {
	t.Helper()
	info, ok := hs.st.Topic(name)
	if !ok {
		t.Fatalf("no topic %s", name)
	}
	return info.Configs
}

func TestIncrementalAlterConfigs(t *testing.T) {
	for v := int16(0); v <= 1; v++ {
		hs := configHarness(t) // t: retention.ms=1000, cleanup.policy=compact
		hs.createTopic("u", 1, nil)

		codes := incCodes(t, hs, v, false, topicOps("t",
			set("retention.ms", " 2000 "),
			opSpec{"cleanup.policy", kmsg.IncrementalAlterConfigOpAppend, strPtr("delete")},
			opSpec{"segment.ms", kmsg.IncrementalAlterConfigOpDelete, nil}, // not set: no-op
			set("message.timestamp.type", "LogAppendTime"),
		), topicOps("u",
			opSpec{"cleanup.policy", kmsg.IncrementalAlterConfigOpAppend, strPtr("compact")}, // from the default
			opSpec{"no.such.config", kmsg.IncrementalAlterConfigOpDelete, nil},
		))
		wantCodes(t, "apply", codes, 0, 0)
		got := topicConfigsOf(t, hs, "t")
		if len(got) != 3 || got["retention.ms"] != "2000" || got["cleanup.policy"] != "compact,delete" || got["message.timestamp.type"] != "LogAppendTime" {
			t.Fatalf("v%d t: %v", v, got)
		}
		if got := topicConfigsOf(t, hs, "u"); len(got) != 1 || got["cleanup.policy"] != "delete,compact" {
			t.Fatalf("v%d u: %v", v, got)
		}

		// DescribeConfigs sees the change.
		resp := roundTrip[*kmsg.DescribeConfigsResponse](hs, describeReq(2, false, false, resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "t", names: []string{"retention.ms"}}))
		if c := resp.Resources[0].Configs[0]; val(c.Value) != "2000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Fatalf("v%d describe after alter: %+v", v, c)
		}

		// SUBTRACT and DELETE.
		wantCodes(t, "subtract", incCodes(t, hs, v, false, topicOps("t",
			opSpec{"cleanup.policy", kmsg.IncrementalAlterConfigOpSubtract, strPtr("compact")},
			opSpec{"retention.ms", kmsg.IncrementalAlterConfigOpDelete, nil},
		)), 0)
		if got := topicConfigsOf(t, hs, "t"); len(got) != 2 || got["cleanup.policy"] != "delete" || got["retention.ms"] != "" {
			t.Fatalf("v%d after subtract: %v", v, got)
		}

		// ValidateOnly checks and changes nothing.
		before := topicConfigsOf(t, hs, "t")
		wantCodes(t, "validate only", incCodes(t, hs, v, true, topicOps("t", set("retention.ms", "5"))), 0)
		wantCodes(t, "validate only bad", incCodes(t, hs, v, true, topicOps("t", set("retention.ms", "soon"))), kerr.InvalidConfig.Code)
		if got := topicConfigsOf(t, hs, "t"); len(got) != len(before) || got["retention.ms"] != "" {
			t.Fatalf("v%d validateOnly changed configs: %v", v, got)
		}

		// Errors; a failed resource changes nothing, the others still apply.
		codes = incCodes(t, hs, v, false,
			topicOps("t", set("retention.ms", "7"), set("no.such", "1")),
			topicOps("t2-missing", set("retention.ms", "7")),
			topicOps("bad/name", set("retention.ms", "7")),
			topicOps("", set("retention.ms", "7")),
			topicOps("u", set("retention.ms", "7"), set("retention.ms", "8")),
			topicOps("u", set("segment.ms", "1")), // u twice
			topicOps("x1", opSpec{"retention.ms", kmsg.IncrementalAlterConfigOpSet, nil}),
			topicOps("x2", opSpec{"retention.ms", kmsg.IncrementalAlterConfigOpDelete, nil}), // missing topic
			alterSpec{typ: kmsg.ConfigResourceTypeBroker, name: "1", ops: []opSpec{set("log.dirs", "/x")}},
			alterSpec{typ: kmsg.ConfigResourceTypeBroker, name: ""},
			alterSpec{typ: kmsg.ConfigResourceTypeBroker, name: "7"},
			alterSpec{typ: kmsg.ConfigResourceTypeBrokerLogger, name: "1", ops: []opSpec{set("root", "DEBUG")}},
			alterSpec{typ: kmsg.ConfigResourceTypeGroupConfig, name: "g", ops: []opSpec{set("consumer.session.timeout.ms", "50000")}},
			alterSpec{typ: kmsg.ConfigResourceType(5), name: "?"},
		)
		wantCodes(t, "errors", codes,
			kerr.InvalidConfig.Code,
			kerr.UnknownTopicOrPartition.Code,
			kerr.InvalidTopicException.Code,
			kerr.InvalidRequest.Code,
			kerr.InvalidRequest.Code,
			kerr.InvalidRequest.Code,
			kerr.InvalidRequest.Code,
			kerr.UnknownTopicOrPartition.Code,
			kerr.InvalidRequest.Code,
			0,
			kerr.InvalidRequest.Code,
			kerr.InvalidRequest.Code,
			kerr.InvalidRequest.Code,
			kerr.InvalidRequest.Code,
		)
		if got := topicConfigsOf(t, hs, "t"); got["retention.ms"] != "" {
			t.Fatalf("v%d: failed resource applied: %v", v, got)
		}
		hs.createTopic("x", 1, nil)
		for _, c := range []struct {
			op   opSpec
			want int16
		}{
			{opSpec{"retention.ms", kmsg.IncrementalAlterConfigOpAppend, strPtr("1")}, kerr.InvalidConfig.Code},
			{opSpec{"no.such", kmsg.IncrementalAlterConfigOpSubtract, strPtr("1")}, kerr.InvalidConfig.Code},
			{opSpec{"retention.ms", kmsg.IncrementalAlterConfigOp(9), strPtr("1")}, kerr.InvalidRequest.Code},
			{set("min.insync.replicas", "0"), kerr.InvalidConfig.Code},
			{set("segment.jitter.ms", "3"), 0},
		} {
			wantCodes(t, c.op.name, incCodes(t, hs, v, false, topicOps("x", c.op)), c.want)
		}
		if got := topicConfigsOf(t, hs, "x"); len(got) != 1 || got["segment.jitter.ms"] != "3" {
			t.Fatalf("v%d: rejected changes stored: %v", v, got)
		}
		// A storage failure is reported per resource.
		hs.st.createErr = storage.ErrStorage
		wantCodes(t, "storage failure", incCodes(t, hs, v, false, topicOps("x", set("retention.ms", "9"))), kerr.KafkaStorageError.Code)
	}
}

func TestAlterConfigsReplaces(t *testing.T) {
	for v := int16(0); v <= 2; v++ {
		hs := configHarness(t) // t: retention.ms=1000, cleanup.policy=compact
		resp := roundTrip[*kmsg.AlterConfigsResponse](hs, alterReq(v, false,
			topicOps("t", set("segment.ms", "60000"), set("preallocate", "TRUE")),
			topicOps("missing", set("segment.ms", "60000")),
			topicOps("t", set("segment.ms", "1")), // t twice: both fail
		))
		codes := []int16{}
		for _, r := range resp.Resources {
			codes = append(codes, r.ErrorCode)
		}
		wantCodes(t, "duplicates", codes, kerr.InvalidRequest.Code, kerr.UnknownTopicOrPartition.Code, kerr.InvalidRequest.Code)

		resp = roundTrip[*kmsg.AlterConfigsResponse](hs, alterReq(v, false,
			topicOps("t", set("segment.ms", "60000"), set("preallocate", "TRUE")),
			alterSpec{typ: kmsg.ConfigResourceTypeBrokerLogger, name: "1"},
			alterSpec{typ: kmsg.ConfigResourceTypeBroker, name: "1"},
			topicOps("t2", opSpec{"retention.ms", kmsg.IncrementalAlterConfigOpSet, nil}),
		))
		codes = codes[:0]
		for _, r := range resp.Resources {
			codes = append(codes, r.ErrorCode)
		}
		wantCodes(t, "replace", codes, 0, kerr.InvalidRequest.Code, 0, kerr.InvalidRequest.Code)
		// Configs not named are gone: the set is replaced.
		if got := topicConfigsOf(t, hs, "t"); len(got) != 2 || got["segment.ms"] != "60000" || got["preallocate"] != "true" {
			t.Fatalf("v%d: %v", v, got)
		}
		// Validate only, then an empty set clears everything.
		roundTrip[*kmsg.AlterConfigsResponse](hs, alterReq(v, true, topicOps("t")))
		if got := topicConfigsOf(t, hs, "t"); len(got) != 2 {
			t.Fatalf("v%d validateOnly cleared: %v", v, got)
		}
		if r := roundTrip[*kmsg.AlterConfigsResponse](hs, alterReq(v, false, topicOps("t"))); r.Resources[0].ErrorCode != 0 {
			t.Fatalf("v%d clear: %d", v, r.Resources[0].ErrorCode)
		}
		if got := topicConfigsOf(t, hs, "t"); len(got) != 0 {
			t.Fatalf("v%d cleared: %v", v, got)
		}
	}
}

// ---- CreatePartitions ----

func createPartsReq(version int16, validateOnly bool, topics ...kmsg.CreatePartitionsRequestTopic) *kmsg.CreatePartitionsRequest {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.Version, req.ValidateOnly, req.Topics = version, validateOnly, topics
	return req
}

func grow(topic string, count int32, assign ...[]int32) kmsg.CreatePartitionsRequestTopic {
	t := kmsg.NewCreatePartitionsRequestTopic()
	t.Topic, t.Count = topic, count
	for _, rs := range assign {
		a := kmsg.NewCreatePartitionsRequestTopicAssignment()
		a.Replicas = rs
		t.Assignment = append(t.Assignment, a)
	}
	return t
}

func TestCreatePartitions(t *testing.T) {
	for v := int16(0); v <= 3; v++ {
		hs := newHarness(t, func(c *Config) { c.MaxTopicPartitions = 10 })
		for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
			hs.createTopic(n, 2, nil)
		}
		resp := roundTrip[*kmsg.CreatePartitionsResponse](hs, createPartsReq(v, false,
			grow("a", 4),
			grow("b", 3, []int32{1}),
			grow("c", 2),
			grow("d", 1),
			grow("e", 11),
			grow("f", 4, []int32{1}),
			grow("g", 3, []int32{2}),
			grow("missing", 3),
			grow("dup", 3), grow("dup", 4),
		))
		want := []int16{0, 0, kerr.InvalidPartitions.Code, kerr.InvalidPartitions.Code, kerr.InvalidPartitions.Code,
			kerr.InvalidReplicaAssignment.Code, kerr.InvalidReplicaAssignment.Code, kerr.UnknownTopicOrPartition.Code,
			kerr.InvalidRequest.Code, kerr.InvalidRequest.Code}
		for i, w := range want {
			rt := resp.Topics[i]
			if rt.ErrorCode != w || (w != 0) != (rt.ErrorMessage != nil) {
				t.Fatalf("v%d %s: error %d (%v), want %d", v, rt.Topic, rt.ErrorCode, rt.ErrorMessage, w)
			}
		}
		for name, parts := range map[string]int32{"a": 4, "b": 3, "c": 2, "f": 2} {
			if info, _ := hs.st.Topic(name); info.Partitions != parts {
				t.Fatalf("v%d %s: %d partitions, want %d", v, name, info.Partitions, parts)
			}
		}
		// New partitions are served: Metadata lists them, produce works.
		md := roundTrip[*kmsg.MetadataResponse](hs, metadataReq(9, false, "a"))
		if len(md.Topics[0].Partitions) != 4 {
			t.Fatalf("v%d metadata after grow: %d partitions", v, len(md.Topics[0].Partitions))
		}
		if off := hs.produceTo("a", 3, makeBatch(batchOpts{})); off != 0 {
			t.Fatalf("v%d produce to new partition: offset %d", v, off)
		}
		// Validate only.
		resp = roundTrip[*kmsg.CreatePartitionsResponse](hs, createPartsReq(v, true, grow("a", 6)))
		if info, _ := hs.st.Topic("a"); resp.Topics[0].ErrorCode != 0 || info.Partitions != 4 {
			t.Fatalf("v%d validate only: %d, %d partitions", v, resp.Topics[0].ErrorCode, info.Partitions)
		}
		hs.st.createErr = storage.ErrStorage
		resp = roundTrip[*kmsg.CreatePartitionsResponse](hs, createPartsReq(v, false, grow("a", 6)))
		if resp.Topics[0].ErrorCode != kerr.KafkaStorageError.Code {
			t.Fatalf("v%d storage failure: %d", v, resp.Topics[0].ErrorCode)
		}
	}
}

// Concurrent alterations of one topic's configs are serialized: none is lost.
func TestIncrementalAlterConfigsConcurrent(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	names := []string{"retention.ms", "segment.ms", "delete.retention.ms", "file.delete.delay.ms", "min.compaction.lag.ms", "segment.jitter.ms"}
	var waits []*pending
	for i, n := range names {
		req := incAlterReq(1, false, topicOps("t", set(n, strconv.Itoa(1000+i))))
		waits = append(waits, hs.serveFrame(encodeRequest(req, testCorr)))
	}
	for _, p := range waits {
		resp := decodeBody[*kmsg.IncrementalAlterConfigsResponse](t, incAlterReq(1, false), assemble(t, p.wait(t)))
		if resp.Resources[0].ErrorCode != 0 {
			t.Fatalf("alter: %d", resp.Resources[0].ErrorCode)
		}
	}
	got := topicConfigsOf(t, hs, "t")
	for i, n := range names {
		if got[n] != strconv.Itoa(1000+i) {
			t.Fatalf("lost update of %s: %v", n, got)
		}
	}
}
