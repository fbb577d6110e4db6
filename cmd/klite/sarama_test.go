package main

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "klite-test"
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Consumer.Fetch.Default = 4 << 20
	return cfg
}

func TestSarama(t *testing.T) {
	b := startBroker(t)
	addrs := []string{b.addr}

	client, err := sarama.NewClient(addrs, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	create := func(t *testing.T, topic string, parts int32) {
		t.Helper()
		if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: parts, ReplicationFactor: 1}, false); err != nil {
			t.Fatalf("create %s: %v", topic, err)
		}
	}

	t.Run("big-async-idempotent", func(t *testing.T) {
		const topic = "sarama-big"
		create(t, topic, bigParts)
		cfg := saramaConfig()
		cfg.Producer.Idempotent = true
		cfg.Net.MaxOpenRequests = 1
		prod, err := sarama.NewAsyncProducer(addrs, cfg)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var wg sync.WaitGroup
		var acked, failed int
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range prod.Successes() {
				acked++
			}
		}()
		go func() {
			defer wg.Done()
			for err := range prod.Errors() {
				if failed++; failed <= 5 {
					t.Errorf("produce: %v", err)
				}
			}
		}()
		for i := 0; i < *records; i++ {
			p := int32(i % bigParts)
			prod.Input() <- &sarama.ProducerMessage{Topic: topic, Partition: p, Key: sarama.ByteEncoder(key(p)), Value: sarama.ByteEncoder(value(p, int64(i/bigParts)))}
		}
		prod.AsyncClose()
		wg.Wait()
		if acked != *records || failed != 0 {
			t.Fatalf("acked %d, failed %d of %d", acked, failed, *records)
		}
		t.Logf("produced %d records in %v", *records, time.Since(start))

		for p := int32(0); p < bigParts; p++ {
			newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			oldest, err2 := client.GetOffset(topic, p, sarama.OffsetOldest)
			if err != nil || err2 != nil || oldest != 0 || newest != seqCount(*records, p) {
				t.Errorf("partition %d: offsets [%d, %d) (%v, %v), want [0, %d)", p, oldest, newest, err, err2, seqCount(*records, p))
			}
		}

		start = time.Now()
		consumer, err := sarama.NewConsumerFromClient(client)
		if err != nil {
			t.Fatal(err)
		}
		defer consumer.Close()
		v := newVerifier(t, "sarama", *records)
		var cwg sync.WaitGroup
		for p := int32(0); p < bigParts; p++ {
			pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
			if err != nil {
				t.Fatal(err)
			}
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				defer pc.AsyncClose()
				timeout := time.After(5 * time.Minute)
				for !v.partDone(p) {
					select {
					case m := <-pc.Messages():
						v.add(m.Partition, m.Offset, m.Value)
					case err := <-pc.Errors():
						t.Errorf("consume partition %d: %v", p, err)
						return
					case <-timeout:
						t.Errorf("partition %d: timed out at %s", p, v.progress())
						return
					}
				}
			}()
		}
		cwg.Wait()
		t.Logf("consumed %d records in %v", *records, time.Since(start))
	})

	t.Run("auto-create-sync", func(t *testing.T) {
		const topic = "sarama-auto"
		cfg := saramaConfig()
		cfg.Producer.Partitioner = sarama.NewHashPartitioner
		prod, err := sarama.NewSyncProducer(addrs, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer prod.Close()
		p, off, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("hello")})
		if err != nil || p != 0 || off != 0 {
			t.Fatalf("send to missing topic: partition %d offset %d: %v", p, off, err)
		}
	})

	t.Run("acks", func(t *testing.T) {
		for _, acks := range []sarama.RequiredAcks{sarama.NoResponse, sarama.WaitForLocal, sarama.WaitForAll} {
			t.Run(fmt.Sprint(int(acks)), func(t *testing.T) {
				topic := fmt.Sprintf("sarama-acks-%d", int(acks))
				create(t, topic, 1)
				cfg := saramaConfig()
				cfg.Producer.RequiredAcks = acks
				prod, err := sarama.NewSyncProducer(addrs, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer prod.Close()
				const n = 2000
				var msgs []*sarama.ProducerMessage
				for i := 0; i < n; i++ {
					msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(value(0, int64(i)))})
				}
				for i := 0; i < n; i += 500 {
					if err := prod.SendMessages(msgs[i : i+500]); err != nil {
						t.Fatal(err)
					}
				}
				waitFor(t, time.Minute, "end offset", func() bool {
					off, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
					return err == nil && off == n
				})
				checkSaramaRange(t, client, topic, 0, n, func(i int64) []byte { return value(0, i) })
			})
		}
	})

	t.Run("offsets-by-time-and-end", func(t *testing.T) {
		const topic = "sarama-time"
		create(t, topic, 1)
		cfg := saramaConfig()
		prod, err := sarama.NewSyncProducer(addrs, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer prod.Close()
		base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		for i := 0; i < 20; i++ {
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder("t"), Timestamp: base.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		if off, err := client.GetOffset(topic, 0, base.Add(10*time.Second).UnixMilli()); err != nil || off != 10 {
			t.Errorf("offset at +10s: %d %v, want 10", off, err)
		}
		if off, err := client.GetOffset(topic, 0, base.Add(time.Hour).UnixMilli()); err != nil || off != -1 {
			t.Errorf("offset after the last record: %d %v, want -1", off, err)
		}

		consumer, err := sarama.NewConsumerFromClient(client)
		if err != nil {
			t.Fatal(err)
		}
		defer consumer.Close()
		pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		// Produce until the consumer from the end sees a record; never an old one.
		deadline := time.After(time.Minute)
		for seen := false; !seen; {
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder("new")}); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-pc.Messages():
				if string(m.Value) != "new" || m.Offset < 20 {
					t.Fatalf("consumer from the end got %q at %d", m.Value, m.Offset)
				}
				seen = true
			case err := <-pc.Errors():
				t.Fatal(err)
			case <-time.After(200 * time.Millisecond):
			case <-deadline:
				t.Fatal("consumer from the end saw nothing")
			}
		}
	})

	t.Run("delete-topic", func(t *testing.T) {
		const topic = "sarama-delete"
		create(t, topic, 2)
		if err := admin.DeleteTopic(topic); err != nil {
			t.Fatal(err)
		}
		if err := client.RefreshMetadata(); err != nil {
			t.Fatal(err)
		}
		topics, err := client.Topics()
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(topics, topic) {
			t.Fatal("deleted topic still listed")
		}
		if err := admin.DeleteTopic(topic); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			t.Errorf("second delete: %v, want %v", err, sarama.ErrUnknownTopicOrPartition)
		}
	})

	// The newest protocol versions sarama knows (its default is Kafka 2.8's).
	t.Run("max-version", func(t *testing.T) {
		const topic = "sarama-maxver"
		cfg := saramaConfig()
		cfg.Version = sarama.MaxVersion
		cl, err := sarama.NewClient(addrs, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		adm, err := sarama.NewClusterAdminFromClient(cl)
		if err != nil {
			t.Fatal(err)
		}
		if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
		prod, err := sarama.NewSyncProducerFromClient(cl)
		if err != nil {
			t.Fatal(err)
		}
		defer prod.Close()
		const n = 1000
		var msgs []*sarama.ProducerMessage
		for i := 0; i < n; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(value(0, int64(i)))})
		}
		if err := prod.SendMessages(msgs); err != nil {
			t.Fatal(err)
		}
		checkSaramaRange(t, cl, topic, 0, n, func(i int64) []byte { return value(0, i) })
	})

	// ClusterAdmin.ListTopics is Metadata followed by DescribeConfigs for
	// every topic, so it needs DescribeConfigs (key 32).
	t.Run("admin-list-topics", func(t *testing.T) {
		topics, err := admin.ListTopics()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := topics["sarama-big"]; !ok || d.NumPartitions != bigParts {
			t.Fatalf("sarama-big listed as %+v", d)
		}
	})

	admin.Close()
	b.stop()
}

// checkSaramaRange consumes [0, n) of a partition and checks each value.
func checkSaramaRange(t *testing.T, client sarama.Client, topic string, p int32, n int64, want func(int64) []byte) {
	t.Helper()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	timeout := time.After(time.Minute)
	for next := int64(0); next < n; next++ {
		select {
		case m := <-pc.Messages():
			if m.Offset != next || string(m.Value) != string(want(next)) {
				t.Fatalf("offset %d: got offset %d value %q", next, m.Offset, m.Value)
			}
		case err := <-pc.Errors():
			t.Fatal(err)
		case <-timeout:
			t.Fatalf("timed out at offset %d of %d", next, n)
		}
	}
}
