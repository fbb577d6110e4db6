package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sarama's transactional producer: committed and aborted transactions,
// and AddMessageToTxn (offsets in the transaction): read_committed sees
// the committed records only, and the group's offset appears with the
// commit.
func TestTxnSarama(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, group = "txsarama", "sgroup"
	createTopic(t, adm, topic, 1)
	cfg := saramaConfig()
	cfg.Version = sarama.V3_0_0_0
	cfg.Producer.Idempotent = true
	cfg.Producer.Transaction.ID = "sarama-tx"
	cfg.Producer.Transaction.Timeout = time.Minute
	cfg.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer([]string{b.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var want []string
	for i := range 6 {
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		var vals []string
		for j := range 3 {
			v := fmt.Sprintf("s%d-%d", i, j)
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(v)}); err != nil {
				t.Fatalf("send: %v", err)
			}
			vals = append(vals, v)
		}
		if i%2 == 1 {
			if err := p.AbortTxn(); err != nil {
				t.Fatalf("abort: %v", err)
			}
			continue
		}
		if i == 4 {
			// Offsets join the transaction: committed with it.
			offs := map[string][]*sarama.PartitionOffsetMetadata{topic: {{Partition: 0, Offset: 17}}}
			if err := p.AddOffsetsToTxn(offs, group); err != nil {
				t.Fatalf("add offsets: %v", err)
			}
		}
		if err := p.CommitTxn(); err != nil {
			t.Fatalf("commit: %v", err)
		}
		want = append(want, vals...)
	}
	fin := txnProducer(t, b.addr, "sarama-sentinel")
	sentinel(t, fin, topic, 1, "stop")
	got := values(readUntil(t, b.addr, topic, 1, kgo.ReadCommitted(), "stop"))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read_committed %v, want %v", got, want)
	}
	offs, err := adm.FetchOffsets(testContext(t, time.Minute), group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(topic, 0); !ok || o.At != 17 {
		t.Fatalf("group offset %+v", o)
	}
}
