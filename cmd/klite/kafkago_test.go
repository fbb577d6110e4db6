package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// partitionFromKey sends each message to the partition its key names.
var partitionFromKey = kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return int(partitionOf(m.Key)) })

func TestKafkaGo(t *testing.T) {
	b := startBroker(t)
	client := &kafka.Client{Addr: kafka.TCP(b.addr), Timeout: 30 * time.Second}
	create := func(t *testing.T, topic string, parts int) {
		t.Helper()
		resp, err := client.CreateTopics(testContext(t, 30*time.Second), &kafka.CreateTopicsRequest{
			Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: parts, ReplicationFactor: 1}},
		})
		if err != nil || resp.Errors[topic] != nil {
			t.Fatalf("create %s: %v %v", topic, err, resp.Errors[topic])
		}
	}
	endOffset := func(t *testing.T, topic string, p int) int64 {
		t.Helper()
		resp, err := client.ListOffsets(testContext(t, 30*time.Second), &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, po := range resp.Topics[topic] {
			if po.Partition == p {
				if po.Error != nil {
					t.Fatal(po.Error)
				}
				return po.LastOffset
			}
		}
		t.Fatalf("no offsets for %s/%d", topic, p)
		return 0
	}

	t.Run("big", func(t *testing.T) {
		const topic = "kafkago-big"
		create(t, topic, bigParts)
		w := &kafka.Writer{
			Addr:         kafka.TCP(b.addr),
			Topic:        topic,
			Balancer:     partitionFromKey,
			BatchSize:    2000,
			BatchBytes:   1 << 20,
			BatchTimeout: 5 * time.Millisecond,
			RequiredAcks: kafka.RequireAll,
		}
		defer w.Close()
		ctx := testContext(t, 5*time.Minute)
		start := time.Now()
		const chunk = 16000
		msgs := make([]kafka.Message, 0, chunk)
		for i := 0; i < *records; i++ {
			p := int32(i % bigParts)
			msgs = append(msgs, kafka.Message{Key: key(p), Value: value(p, int64(i/bigParts))})
			if len(msgs) == chunk || i == *records-1 {
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					t.Fatalf("write: %v", err)
				}
				msgs = msgs[:0]
			}
		}
		t.Logf("produced %d records in %v", *records, time.Since(start))
		for p := 0; p < bigParts; p++ {
			if got, want := endOffset(t, topic, p), seqCount(*records, int32(p)); got != want {
				t.Errorf("partition %d end offset %d, want %d", p, got, want)
			}
		}

		start = time.Now()
		v := newVerifier(t, "kafka-go", *records)
		var wg sync.WaitGroup
		for p := 0; p < bigParts; p++ {
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers:   []string{b.addr},
				Topic:     topic,
				Partition: p,
				MinBytes:  1,
				MaxBytes:  8 << 20,
				MaxWait:   500 * time.Millisecond,
			})
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer r.Close()
				for !v.partDone(int32(p)) {
					m, err := r.ReadMessage(ctx)
					if err != nil {
						t.Errorf("read partition %d: %v (progress %s)", p, err, v.progress())
						return
					}
					v.add(int32(m.Partition), m.Offset, m.Value)
				}
			}()
		}
		wg.Wait()
		t.Logf("consumed %d records in %v", *records, time.Since(start))
	})

	t.Run("auto-create", func(t *testing.T) {
		const topic = "kafkago-auto"
		w := &kafka.Writer{Addr: kafka.TCP(b.addr), Topic: topic, AllowAutoTopicCreation: true, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
		defer w.Close()
		if err := w.WriteMessages(testContext(t, time.Minute), kafka.Message{Value: []byte("hello")}); err != nil {
			t.Fatalf("write to missing topic: %v", err)
		}
		if got := endOffset(t, topic, 0); got != 1 {
			t.Fatalf("end offset %d, want 1", got)
		}
	})

	t.Run("acks", func(t *testing.T) {
		for _, acks := range []kafka.RequiredAcks{kafka.RequireNone, kafka.RequireOne, kafka.RequireAll} {
			t.Run(fmt.Sprint(int(acks)), func(t *testing.T) {
				topic := fmt.Sprintf("kafkago-acks-%d", int(acks))
				create(t, topic, 1)
				w := &kafka.Writer{Addr: kafka.TCP(b.addr), Topic: topic, RequiredAcks: acks, BatchSize: 500, BatchTimeout: time.Millisecond}
				defer w.Close()
				ctx := testContext(t, time.Minute)
				const n = 2000
				var msgs []kafka.Message
				for i := 0; i < n; i++ {
					msgs = append(msgs, kafka.Message{Value: value(0, int64(i))})
				}
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					t.Fatal(err)
				}
				waitFor(t, time.Minute, "end offset", func() bool { return endOffset(t, topic, 0) == n })
				r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.addr}, Topic: topic, Partition: 0, MaxWait: 200 * time.Millisecond})
				defer r.Close()
				for i := int64(0); i < n; i++ {
					m, err := r.ReadMessage(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if m.Offset != i || string(m.Value) != string(value(0, i)) {
						t.Fatalf("offset %d: got %d %q", i, m.Offset, m.Value)
					}
				}
			})
		}
	})

	t.Run("time-and-end", func(t *testing.T) {
		const topic = "kafkago-time"
		create(t, topic, 1)
		w := &kafka.Writer{Addr: kafka.TCP(b.addr), Topic: topic, RequiredAcks: kafka.RequireAll, BatchSize: 1}
		defer w.Close()
		ctx := testContext(t, time.Minute)
		base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		for i := 0; i < 20; i++ {
			if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("t"), Time: base.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{topic: {kafka.TimeOffsetOf(0, base.Add(10*time.Second))}},
		})
		if err != nil {
			t.Fatal(err)
		}
		po := resp.Topics[topic][0]
		if ts, ok := po.Offsets[10]; po.Error != nil || !ok || !ts.Equal(base.Add(10*time.Second)) {
			t.Errorf("offsets at +10s: %v (%v), want offset 10 at %v", po.Offsets, po.Error, base.Add(10*time.Second))
		}

		// A reader placed at a time starts at the first record at or after it.
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.addr}, Topic: topic, Partition: 0, MaxWait: 200 * time.Millisecond})
		defer r.Close()
		if err := r.SetOffsetAt(ctx, base.Add(15*time.Second)); err != nil {
			t.Fatal(err)
		}
		m, err := r.ReadMessage(ctx)
		if err != nil || m.Offset != 15 {
			t.Fatalf("read from +15s: offset %d %v, want 15", m.Offset, err)
		}

		// A reader at the end sees only what comes after.
		end := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.addr}, Topic: topic, Partition: 0, MaxWait: 200 * time.Millisecond})
		defer end.Close()
		if err := end.SetOffset(kafka.LastOffset); err != nil {
			t.Fatal(err)
		}
		got := make(chan kafka.Message, 1)
		go func() {
			m, err := end.ReadMessage(ctx)
			if err == nil {
				got <- m
			}
		}()
		for seen := false; !seen; {
			if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("new")}); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if string(m.Value) != "new" || m.Offset < 20 {
					t.Fatalf("reader at the end got %q at %d", m.Value, m.Offset)
				}
				seen = true
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				t.Fatal("reader at the end saw nothing")
			}
		}
	})

	t.Run("delete-topic", func(t *testing.T) {
		const topic = "kafkago-delete"
		create(t, topic, 2)
		ctx := testContext(t, 30*time.Second)
		resp, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
		if err != nil || resp.Errors[topic] != nil {
			t.Fatalf("delete: %v %v", err, resp.Errors[topic])
		}
		// kafka-go's Transport answers Metadata from its cache; a fresh one asks the broker.
		fresh := &kafka.Client{Addr: kafka.TCP(b.addr), Transport: &kafka.Transport{}}
		md, err := fresh.Metadata(ctx, &kafka.MetadataRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range md.Topics {
			if tp.Name == topic {
				t.Fatalf("deleted topic still listed: %+v", tp)
			}
		}
	})

	b.stop()
}
