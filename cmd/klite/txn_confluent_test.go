package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// librdkafka's transactional producer (confluent-kafka-go) in a
// consume-transform-produce loop with SendOffsetsToTransaction (KIP-447:
// the consumer's group metadata), one transaction aborted on the way: the
// output holds each input record transformed exactly once, nothing of the
// aborted one, and the group's committed offset is the end of the input.
func TestTxnConfluentSendOffsets(t *testing.T) {
	b := startBroker(t, "-group-initial-rebalance-delay", "0s")
	fc := newFranz(t, b.addr)
	adm := kadm.NewClient(fc)
	const in, out, group, n = "ck-in", "ck-out", "ckgroup", 40
	createTopic(t, adm, in, 1)
	createTopic(t, adm, out, 1)
	ctx := testContext(t, 2*time.Minute)
	for i := range n {
		if err := fc.ProduceSync(ctx, &kgo.Record{Topic: in, Value: []byte(fmt.Sprintf("v%03d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{
		"bootstrap.servers":  b.addr,
		"group.id":           group,
		"enable.auto.commit": false,
		"auto.offset.reset":  "earliest",
		"isolation.level":    "read_committed",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(in, nil); err != nil {
		t.Fatal(err)
	}
	p := ckProducer(t, b.addr, ckafka.ConfigMap{"transactional.id": "ck-tx", "transaction.timeout.ms": 60000})
	if err := p.InitTransactions(ctx); err != nil {
		t.Fatalf("init transactions: %v", err)
	}
	produce := func(value string) {
		t.Helper()
		topic := out
		if err := p.Produce(&ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: ckafka.PartitionAny}, Value: []byte(value)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// One aborted transaction first.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce("junk")
	p.Flush(10_000)
	if err := p.AbortTransaction(ctx); err != nil {
		t.Fatalf("abort: %v", err)
	}
	done := 0
	deadline := time.Now().Add(time.Minute)
	for done < n {
		if time.Now().After(deadline) {
			t.Fatalf("transformed %d of %d", done, n)
		}
		var batch []*ckafka.Message
		for len(batch) < 8 && done+len(batch) < n {
			ev := c.Poll(100)
			if m, ok := ev.(*ckafka.Message); ok {
				batch = append(batch, m)
			} else if e, ok := ev.(ckafka.Error); ok && e.IsFatal() {
				t.Fatalf("consumer: %v", e)
			} else if ev == nil && len(batch) > 0 {
				break
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, m := range batch {
			produce("x-" + string(m.Value))
		}
		asg, err := c.Assignment()
		if err != nil {
			t.Fatal(err)
		}
		pos, err := c.Position(asg)
		if err != nil {
			t.Fatal(err)
		}
		meta, err := c.GetConsumerGroupMetadata()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.SendOffsetsToTransaction(ctx, pos, meta); err != nil {
			t.Fatalf("send offsets: %v", err)
		}
		if err := p.CommitTransaction(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
		done += len(batch)
	}
	checkCkOutput(t, b.addr, out, n)
	offs, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(in, 0); !ok || o.At != n {
		t.Fatalf("group offset %+v, want %d", o, n)
	}
}

// checkCkOutput requires exactly x-v000..x-v(n-1), in order, read_committed.
func checkCkOutput(t *testing.T, addr, out string, n int) {
	t.Helper()
	fin := txnProducer(t, addr, "ck-sentinel")
	sentinel(t, fin, out, 1, "stop")
	got := values(readUntil(t, addr, out, 1, kgo.ReadCommitted(), "stop"))
	if len(got) != n {
		t.Fatalf("output %v: %d records, want %d", got, len(got), n)
	}
	for i, v := range got {
		if v != fmt.Sprintf("x-v%03d", i) {
			t.Fatalf("output %d: %q", i, v)
		}
	}
}
