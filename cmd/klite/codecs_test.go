package main

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCodecsEveryClient: batches as sarama, kafka-go and librdkafka write
// them with every codec (franz-go's are in TestFranzGo) pass record
// validation, and read back whole. Values vary in size (empty to 20 KiB,
// so some records cross the validator's decode buffer) and every third
// record carries headers.
func TestCodecsEveryClient(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const n = 300
	value := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, (i*131)%(20<<10)) }
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%d", i)) }

	producers := map[string]func(t *testing.T, topic, codec string){
		"sarama": func(t *testing.T, topic, codec string) {
			cfg := saramaConfig()
			cfg.Version = sarama.V2_1_0_0 // zstd needs produce v7
			if err := cfg.Producer.Compression.UnmarshalText([]byte(codec)); err != nil {
				t.Fatal(err)
			}
			cfg.Producer.Flush.Messages = 50
			cfg.Producer.Flush.Frequency = 5 * time.Millisecond // else a last partial batch waits forever
			p, err := sarama.NewSyncProducer([]string{b.addr}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			var msgs []*sarama.ProducerMessage
			for i := range n {
				m := &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(key(i)), Value: sarama.ByteEncoder(value(i))}
				if i%3 == 0 {
					m.Headers = []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("v")}, {Key: []byte("empty")}}
				}
				msgs = append(msgs, m)
			}
			if err := p.SendMessages(msgs); err != nil {
				t.Fatalf("sarama %s: %v", codec, err)
			}
		},
		"kafka-go": func(t *testing.T, topic, codec string) {
			var c kafka.Compression
			if err := c.UnmarshalText([]byte(codec)); err != nil {
				t.Fatal(err)
			}
			// A transport of its own: the default one caches metadata from before the topic existed.
			w := &kafka.Writer{Addr: kafka.TCP(b.addr), Topic: topic, Compression: c, BatchSize: 64, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
			defer w.Close()
			var msgs []kafka.Message
			for i := range n {
				m := kafka.Message{Key: key(i), Value: value(i)}
				if i%3 == 0 {
					m.Headers = []kafka.Header{{Key: "h", Value: []byte("v")}, {Key: "empty"}}
				}
				msgs = append(msgs, m)
			}
			if err := w.WriteMessages(testContext(t, time.Minute), msgs...); err != nil {
				t.Fatalf("kafka-go %s: %v", codec, err)
			}
		},
		"librdkafka": func(t *testing.T, topic, codec string) {
			p := ckProducer(t, b.addr, ckafka.ConfigMap{"compression.codec": codec})
			ckProduce(t, p, func(yield func(*ckafka.Message) bool) {
				for i := range n {
					m := &ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: 0}, Key: key(i), Value: value(i)}
					if i%3 == 0 {
						m.Headers = []ckafka.Header{{Key: "h", Value: []byte("v")}, {Key: "empty"}}
					}
					if !yield(m) {
						return
					}
				}
			}, n)
		},
	}
	for _, client := range []string{"sarama", "kafka-go", "librdkafka"} {
		for _, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
			t.Run(client+"-"+codec, func(t *testing.T) {
				topic := "codec-" + client + "-" + codec
				createTopic(t, adm, topic, 1)
				producers[client](t, topic, codec)
				cl := newFranz(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
				ctx := testContext(t, time.Minute)
				got := 0
				for got < n && ctx.Err() == nil {
					fs := cl.PollFetches(ctx)
					fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
					fs.EachRecord(func(r *kgo.Record) {
						if r.Offset != int64(got) || !bytes.Equal(r.Value, value(got)) || !bytes.Equal(r.Key, key(got)) {
							t.Fatalf("record at offset %d (key %q, %d value bytes), want offset %d key %q", r.Offset, r.Key, len(r.Value), got, key(got))
						}
						if got%3 == 0 && len(r.Headers) != 2 {
							t.Fatalf("record %d: %d headers, want 2", got, len(r.Headers))
						}
						got++
					})
				}
				if got != n {
					t.Fatalf("read %d of %d records", got, n)
				}
			})
		}
	}
	b.stop()
}
