package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTopicConfigsAdmin drives DescribeConfigs, IncrementalAlterConfigs and
// CreatePartitions with kadm, and checks that what they change is enforced
// and survives a restart.
func TestTopicConfigsAdmin(t *testing.T) {
	b := startBroker(t, "-node-id", "0", "-segment-bytes", "67108864")
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, 2*time.Minute)
	const topic = "configs"
	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, topic); err != nil {
		t.Fatal(err)
	}

	type want struct {
		value string
		src   kmsg.ConfigSource
	}
	describe := func(wants map[string]want) {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On(topic, nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("describe %s: %v %v", topic, err, rc.Err)
		}
		got := map[string]kadm.Config{}
		for _, c := range rc.Configs {
			got[c.Key] = c
		}
		if len(got) < 30 {
			t.Fatalf("describe %s: only %d configs", topic, len(got))
		}
		for name, w := range wants {
			c := got[name]
			if c.MaybeValue() != w.value || c.Source != w.src {
				t.Errorf("%s = %q (%s), want %q (%s)", name, c.MaybeValue(), c.Source, w.value, w.src)
			}
		}
	}
	describe(map[string]want{
		"retention.ms":      {"3600000", kmsg.ConfigSourceDynamicTopicConfig},
		"cleanup.policy":    {"delete", kmsg.ConfigSourceDefaultConfig},
		"max.message.bytes": {"1048588", kmsg.ConfigSourceDefaultConfig},
		"segment.bytes":     {"67108864", kmsg.ConfigSourceStaticBrokerConfig},
	})

	// Broker configs by node id (0 is a valid id).
	bcs, err := adm.DescribeBrokerConfigs(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcs.On("0", nil)
	if err != nil || bc.Err != nil {
		t.Fatalf("describe broker 0: %v %v", err, bc.Err)
	}
	brokerGot := map[string]string{}
	for _, c := range bc.Configs {
		brokerGot[c.Key] = c.MaybeValue()
	}
	if brokerGot["broker.id"] != "0" || brokerGot["log.segment.bytes"] != "67108864" || !strings.HasSuffix(brokerGot["advertised.listeners"], b.addr) {
		t.Errorf("broker configs: broker.id %q log.segment.bytes %q advertised.listeners %q",
			brokerGot["broker.id"], brokerGot["log.segment.bytes"], brokerGot["advertised.listeners"])
	}
	if _, err := adm.DescribeBrokerConfigs(ctx, 1); err == nil {
		t.Error("describing broker 1 of a node-0 broker succeeded")
	}

	// IncrementalAlterConfigs: the new max.message.bytes is enforced.
	alters, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("2000")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
		{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")},
	}, topic)
	if err == nil {
		_, err = alters.On(topic, func(r *kadm.AlterConfigsResponse) error { return r.Err })
	}
	if err != nil {
		t.Fatalf("alter: %v", err)
	}
	bad, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "no.such.config", Value: kadm.StringPtr("1")}}, topic)
	if err == nil {
		_, err = bad.On(topic, func(r *kadm.AlterConfigsResponse) error { return r.Err })
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("unknown config: %v, want INVALID_CONFIG", err)
	}
	after := map[string]want{
		"retention.ms":      {"604800000", kmsg.ConfigSourceDefaultConfig},
		"cleanup.policy":    {"delete,compact", kmsg.ConfigSourceDynamicTopicConfig},
		"max.message.bytes": {"2000", kmsg.ConfigSourceDynamicTopicConfig},
	}
	describe(after)

	// CreatePartitions: 2 -> 4; a new client sees and uses partition 3.
	cps, err := adm.CreatePartitions(ctx, 2, topic)
	if err == nil {
		err = cps[topic].Err
	}
	if err != nil {
		t.Fatalf("create partitions: %v", err)
	}
	// The topic is compacted (delete,compact), so records carry keys: Kafka
	// refuses keyless records there with INVALID_RECORD.
	check := func() {
		t.Helper()
		cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 3, Key: []byte("k"), Value: []byte("new")}).FirstErr(); err != nil {
			t.Fatalf("produce to partition 3: %v", err)
		}
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("k"), Value: bytes.Repeat([]byte("z"), 5000)}).FirstErr()
		if !errors.Is(err, kerr.MessageTooLarge) {
			t.Errorf("5 KB record with max.message.bytes=2000: %v, want MESSAGE_TOO_LARGE", err)
		}
		cl.Close()
	}
	check()

	// Everything survives a restart.
	b.stop()
	b.restart()
	describe(after)
	md, err := adm.ListTopics(ctx, topic)
	if err != nil || len(md[topic].Partitions) != 4 {
		t.Fatalf("after restart: %v, %d partitions", err, len(md[topic].Partitions))
	}
	check()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup(topic, 3); o.Offset != 2 {
		t.Errorf("partition 3 end offset %d, want 2", o.Offset)
	}
	b.stop()
}
