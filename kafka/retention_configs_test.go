package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The broker's retention flags are the defaults topics report, with
// Kafka's sources: STATIC_BROKER_CONFIG when they differ from Kafka's.
func TestRetentionDefaultsFromBroker(t *testing.T) {
	for _, c := range []struct {
		ms, bytes, check          int64
		wantMs, wantBytes         string
		msSource, bytesSource     kmsg.ConfigSource
		wantCheck                 string
		msSynonyms, bytesSynonyms int
	}{
		{0, 0, 0, "604800000", "-1", kmsg.ConfigSourceDefaultConfig, kmsg.ConfigSourceDefaultConfig, "300000", 1, 1},
		{604800000, -1, 300000, "604800000", "-1", kmsg.ConfigSourceDefaultConfig, kmsg.ConfigSourceDefaultConfig, "300000", 1, 1},
		{3600000, 1 << 30, 1000, "3600000", "1073741824", kmsg.ConfigSourceStaticBrokerConfig, kmsg.ConfigSourceStaticBrokerConfig, "1000", 2, 2},
		{-1, 5000, 1000, "-1", "5000", kmsg.ConfigSourceStaticBrokerConfig, kmsg.ConfigSourceStaticBrokerConfig, "1000", 2, 2},
	} {
		hs := newHarness(t, func(cfg *Config) {
			cfg.RetentionMs, cfg.RetentionBytes, cfg.RetentionCheckIntervalMs = c.ms, c.bytes, c.check
		})
		hs.createTopic("plain", 1, nil)
		hs.createTopic("own", 1, map[string]string{"retention.ms": "1000", "retention.bytes": "2000"})
		for v := int16(1); v <= 4; v++ {
			resp := roundTrip[*kmsg.DescribeConfigsResponse](hs, describeReq(v, true, false,
				resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "plain"},
				resSpec{typ: kmsg.ConfigResourceTypeTopic, name: "own"},
				resSpec{typ: kmsg.ConfigResourceTypeBroker, name: "1"}))
			plain, own, broker := resp.Resources[0], resp.Resources[1], resp.Resources[2]
			ms, bytes := configByName(t, plain, "retention.ms"), configByName(t, plain, "retention.bytes")
			if val(ms.Value) != c.wantMs || ms.Source != c.msSource || len(ms.ConfigSynonyms) != c.msSynonyms {
				t.Fatalf("v%d %+v: retention.ms %s (%s), %d synonyms", v, c, val(ms.Value), ms.Source, len(ms.ConfigSynonyms))
			}
			if ms.ConfigSynonyms[0].Name != "log.retention.ms" || val(ms.ConfigSynonyms[0].Value) != c.wantMs {
				t.Fatalf("v%d %+v: retention.ms synonym %+v", v, c, ms.ConfigSynonyms[0])
			}
			if val(bytes.Value) != c.wantBytes || bytes.Source != c.bytesSource || len(bytes.ConfigSynonyms) != c.bytesSynonyms {
				t.Fatalf("v%d %+v: retention.bytes %s (%s), %d synonyms", v, c, val(bytes.Value), bytes.Source, len(bytes.ConfigSynonyms))
			}
			if c := configByName(t, own, "retention.ms"); val(c.Value) != "1000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
				t.Fatalf("v%d: own retention.ms %s (%s)", v, val(c.Value), c.Source)
			}
			if c := configByName(t, own, "retention.bytes"); val(c.Value) != "2000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
				t.Fatalf("v%d: own retention.bytes %s (%s)", v, val(c.Value), c.Source)
			}
			for name, want := range map[string]string{
				"log.retention.ms":                c.wantMs,
				"log.retention.bytes":             c.wantBytes,
				"log.retention.check.interval.ms": c.wantCheck,
			} {
				if got := configByName(t, broker, name); val(got.Value) != want || got.ReadOnly == brokerDynamic(name) {
					t.Fatalf("v%d %+v: broker %s = %s", v, c, name, val(got.Value))
				}
			}
		}
	}
}

// retention.ms must be >= -1 (Kafka's atLeast(-1)); retention.bytes must be
// a long, any value (Kafka has no minimum: negative means no limit).
func TestRetentionConfigValidation(t *testing.T) {
	cases := []struct {
		name, value string
		ok          bool
	}{
		{"retention.ms", "-1", true},
		{"retention.ms", "0", true},
		{"retention.ms", "86400000", true},
		{"retention.ms", "-2", false},
		{"retention.ms", "1h", false},
		{"retention.ms", "9223372036854775808", false},
		{"retention.bytes", "-1", true},
		{"retention.bytes", "0", true},
		{"retention.bytes", "1073741824", true},
		{"retention.bytes", "-2", true},
		{"retention.bytes", "1GB", false},
		{"retention.bytes", "", false},
	}
	for _, c := range cases {
		want := int16(0)
		if !c.ok {
			want = kerr.InvalidConfig.Code
		}
		hs := newHarness(t)
		hs.createTopic("t", 1, nil)

		cr := roundTrip[*kmsg.CreateTopicsResponse](hs, createReq(7, false,
			createSpec{name: "n", partitions: 1, rf: 1, configs: map[string]*string{c.name: strPtr(c.value)}}))
		if cr.Topics[0].ErrorCode != want {
			t.Fatalf("CreateTopics %s=%q: code %d, want %d", c.name, c.value, cr.Topics[0].ErrorCode, want)
		}
		if _, created := hs.st.Topic("n"); created != c.ok {
			t.Fatalf("CreateTopics %s=%q: created %v", c.name, c.value, created)
		}

		wantCodes(t, "IncrementalAlterConfigs "+c.name+"="+c.value,
			incCodes(t, hs, 1, false, topicOps("t", set(c.name, c.value))), want)

		ar := roundTrip[*kmsg.AlterConfigsResponse](hs, alterReq(2, false, topicOps("t", set(c.name, c.value))))
		if ar.Resources[0].ErrorCode != want {
			t.Fatalf("AlterConfigs %s=%q: code %d, want %d", c.name, c.value, ar.Resources[0].ErrorCode, want)
		}
		if got := topicConfigsOf(t, hs, "t")[c.name]; (got != "") != c.ok {
			t.Fatalf("%s=%q: stored %q", c.name, c.value, got)
		}
	}
}
