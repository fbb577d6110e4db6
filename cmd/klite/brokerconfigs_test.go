package main

import (
	"bytes"
	"errors"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// brokerConfigsKadm is one broker resource's configs through kadm ("" the
// cluster default when id is nil).
func brokerConfigsKadm(t *testing.T, adm *kadm.Client, id ...int32) map[string]kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeBrokerConfigs(testContext(t, 30*time.Second), id...)
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) != 1 || rcs[0].Err != nil {
		t.Fatalf("describe broker %v: %+v", id, rcs)
	}
	out := map[string]kadm.Config{}
	for _, c := range rcs[0].Configs {
		out[c.Key] = c
	}
	return out
}

func alterBrokerKadm(t *testing.T, adm *kadm.Client, cs []kadm.AlterConfig, id ...int32) error {
	t.Helper()
	resps, err := adm.AlterBrokerConfigs(testContext(t, 30*time.Second), cs, id...)
	if err != nil {
		t.Fatal(err)
	}
	return resps[0].Err
}

// produceSized produces one record of n value bytes and returns its error.
func produceSized(t *testing.T, cl *kgo.Client, topic string, n int) error {
	t.Helper()
	return cl.ProduceSync(testContext(t, 30*time.Second), &kgo.Record{Topic: topic, Value: bytes.Repeat([]byte("x"), n)}).FirstErr()
}

// Dynamic broker configs through kadm (the cluster default) and
// confluent-kafka-go's AdminClient (this broker's own): a changed default
// reaches the topics that do not set their own (retention deletes their
// old data, message.max.bytes refuses their batches), DescribeConfigs
// reports every source, non-dynamic names are refused, and everything
// acknowledged is back after kill -9 and a restart.
func TestBrokerConfigsDynamic(t *testing.T) {
	b := startBroker(t, "-node-id", "0", "-retention-check-interval", "1s", "-segment-bytes", "1048576",
		"-max-message-bytes", "1000000")
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(64<<10),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kadm.NewClient(cl)
	ctx := testContext(t, 2*time.Minute)
	createTopic(t, adm, "plain", 1)
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("-1"), "max.message.bytes": kadm.StringPtr("100000")}, "own"); err != nil {
		t.Fatal(err)
	}
	// Two hours old: inside Kafka's default retention, past one hour.
	const old = 20000
	produceValues(t, cl, "plain", 0, old, time.Now().Add(-2*time.Hour))
	produceValues(t, cl, "own", 0, old, time.Now().Add(-2*time.Hour))

	// confluent-kafka-go sets this broker's log.retention.ms.
	prod := ckProducer(t, b.addr, nil)
	ck, err := ckafka.NewAdminClientFromProducer(prod)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	res, err := ck.IncrementalAlterConfigs(ctx, []ckafka.ConfigResource{{Type: ckafka.ResourceBroker, Name: "0",
		Config: []ckafka.ConfigEntry{{Name: "log.retention.ms", Value: "3600000", IncrementalOperation: ckafka.AlterConfigOpTypeSet}}}})
	if err != nil || res[0].Error.Code() != ckafka.ErrNoError {
		t.Fatalf("confluent alter: %v %v", err, res)
	}
	waitFor(t, time.Minute, "retention of the broker's new log.retention.ms", func() bool {
		return startOffset(t, adm, "plain", 0) >= old/2
	})
	if s := startOffset(t, adm, "own", 0); s != 0 {
		t.Fatalf("topic with its own retention.ms lost data: log start %d", s)
	}
	res, err = ck.IncrementalAlterConfigs(ctx, []ckafka.ConfigResource{{Type: ckafka.ResourceBroker, Name: "0",
		Config: []ckafka.ConfigEntry{{Name: "log.dirs", Value: "/elsewhere", IncrementalOperation: ckafka.AlterConfigOpTypeSet}}}})
	if err != nil || res[0].Error.Code() != ckafka.ErrInvalidRequest {
		t.Fatalf("confluent alter of log.dirs: %v %v, want INVALID_REQUEST", err, res)
	}

	// kadm sets the cluster-wide message.max.bytes; a bad value is refused
	// and a validate-only change changes nothing.
	if err := alterBrokerKadm(t, adm, []kadm.AlterConfig{{Name: "message.max.bytes", Value: kadm.StringPtr("2000")}}); err != nil {
		t.Fatal(err)
	}
	if err := alterBrokerKadm(t, adm, []kadm.AlterConfig{{Name: "message.max.bytes", Value: kadm.StringPtr("big")}}); !errors.Is(err, kerr.InvalidRequest) {
		t.Fatalf("bad message.max.bytes: %v, want INVALID_REQUEST", err)
	}
	if resps, err := adm.ValidateAlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "message.max.bytes", Value: kadm.StringPtr("1")}}); err != nil || resps[0].Err != nil {
		t.Fatalf("validate only: %v %v", err, resps)
	}

	check := func(when string) {
		t.Helper()
		if err := produceSized(t, cl, "plain", 5000); !errors.Is(err, kerr.MessageTooLarge) {
			t.Fatalf("%s: 5000-byte record to a topic without max.message.bytes: %v, want MESSAGE_TOO_LARGE", when, err)
		}
		if err := produceSized(t, cl, "own", 5000); err != nil {
			t.Fatalf("%s: 5000-byte record to a topic with its own limit: %v", when, err)
		}
		own := brokerConfigsKadm(t, adm, 0)
		for name, w := range map[string]struct {
			value string
			src   kmsg.ConfigSource
		}{
			"log.retention.ms":    {"3600000", kmsg.ConfigSourceDynamicBrokerConfig},
			"message.max.bytes":   {"2000", kmsg.ConfigSourceDynamicDefaultBrokerConfig},
			"log.segment.bytes":   {"1048576", kmsg.ConfigSourceStaticBrokerConfig},
			"log.retention.bytes": {"-1", kmsg.ConfigSourceDefaultConfig},
		} {
			if c := own[name]; c.MaybeValue() != w.value || c.Source != w.src {
				t.Errorf("%s: broker 0 %s = %q (%s), want %q (%s)", when, name, c.MaybeValue(), c.Source, w.value, w.src)
			}
		}
		if syn := own["message.max.bytes"].Synonyms; len(syn) != 3 || syn[1].Source != kmsg.ConfigSourceStaticBrokerConfig || *syn[1].Value != "1000000" {
			t.Errorf("%s: message.max.bytes synonyms %+v", when, syn)
		}
		if _, ok := own["log.message.format.version"]; ok {
			t.Errorf("%s: broker lists log.message.format.version, which Kafka 4.0 removed", when)
		}
		dflt := brokerConfigsKadm(t, adm)
		if c := dflt["message.max.bytes"]; len(dflt) != 1 || c.MaybeValue() != "2000" || c.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
			t.Errorf("%s: cluster default resource %+v", when, dflt)
		}
		rcs, err := adm.DescribeTopicConfigs(testContext(t, 30*time.Second), "plain")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rcs[0].Configs {
			if c.Key == "retention.ms" && (c.MaybeValue() != "3600000" || c.Source != kmsg.ConfigSourceDynamicBrokerConfig) {
				t.Errorf("%s: topic retention.ms %q (%s)", when, c.MaybeValue(), c.Source)
			}
		}
		// librdkafka reads the same sources.
		cres, err := ck.DescribeConfigs(testContext(t, 30*time.Second), []ckafka.ConfigResource{{Type: ckafka.ResourceBroker, Name: "0"}})
		if err != nil || cres[0].Error.Code() != ckafka.ErrNoError {
			t.Fatalf("%s: confluent describe: %v %v", when, err, cres)
		}
		if c := cres[0].Config["log.retention.ms"]; c.Value != "3600000" || c.Source != ckafka.ConfigSourceDynamicBroker || c.IsReadOnly {
			t.Errorf("%s: confluent log.retention.ms %+v", when, c)
		}
		if c := cres[0].Config["message.max.bytes"]; c.Value != "2000" || c.Source != ckafka.ConfigSourceDynamicDefaultBroker {
			t.Errorf("%s: confluent message.max.bytes %+v", when, c)
		}
		if c := cres[0].Config["log.dirs"]; c.Source != ckafka.ConfigSourceStaticBroker || !c.IsReadOnly {
			t.Errorf("%s: confluent log.dirs %+v", when, c)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	check("after the changes")
	b.kill9()
	b.restart()
	cl = newFranz(t, b.addr, kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm = kadm.NewClient(cl)
	ck.Close()
	prod = ckProducer(t, b.addr, nil)
	if ck, err = ckafka.NewAdminClientFromProducer(prod); err != nil {
		t.Fatal(err)
	}
	check("after kill -9 and a restart")

	// Deleting the default brings the flag's limit back.
	if err := alterBrokerKadm(t, adm, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "message.max.bytes"}}); err != nil {
		t.Fatal(err)
	}
	if err := produceSized(t, cl, "plain", 5000); err != nil {
		t.Fatalf("after deleting the default: %v", err)
	}
	b.stop()
	b.checkLog()
}

// The dynamic broker configs are in the bucket's metadata snapshot: a
// broker restored from it on an empty disk has them, and applies them.
func TestBrokerConfigsRestored(t *testing.T) {
	endpoint := startS3(t)
	b := startBroker(t, tierFlags(endpoint, "-node-id", "0")...)
	cl := newFranz(t, b.addr, kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "plain", 1)
	if err := alterBrokerKadm(t, adm, []kadm.AlterConfig{{Name: "message.max.bytes", Value: kadm.StringPtr("2000")}, {Name: "log.retention.bytes", Value: kadm.StringPtr("1073741824")}}); err != nil {
		t.Fatal(err)
	}
	if err := alterBrokerKadm(t, adm, []kadm.AlterConfig{{Name: "compression.type", Value: kadm.StringPtr("zstd")}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := produceSized(t, cl, "plain", 100); err != nil {
		t.Fatal(err)
	}
	b.stop() // the final upload and snapshot
	b.restoreEmpty()
	cl = newFranz(t, b.addr, kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm = kadm.NewClient(cl)
	if err := produceSized(t, cl, "plain", 5000); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("after restore: 5000-byte record: %v, want MESSAGE_TOO_LARGE", err)
	}
	own := brokerConfigsKadm(t, adm, 0)
	for name, w := range map[string]struct {
		value string
		src   kmsg.ConfigSource
	}{
		"message.max.bytes":   {"2000", kmsg.ConfigSourceDynamicDefaultBrokerConfig},
		"log.retention.bytes": {"1073741824", kmsg.ConfigSourceDynamicDefaultBrokerConfig},
		"compression.type":    {"zstd", kmsg.ConfigSourceDynamicBrokerConfig},
	} {
		if c := own[name]; c.MaybeValue() != w.value || c.Source != w.src {
			t.Errorf("after restore: %s = %q (%s), want %q (%s)", name, c.MaybeValue(), c.Source, w.value, w.src)
		}
	}
	// The restore itself is durable: a kill -9 now keeps it.
	b.kill9()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	if c := brokerConfigsKadm(t, adm)["message.max.bytes"]; (&c).MaybeValue() != "2000" {
		t.Fatalf("after restore and kill -9: cluster default message.max.bytes %q", c.MaybeValue())
	}
	b.stop()
	b.checkLog()
}
