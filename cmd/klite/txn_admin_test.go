package main

// The transaction admin APIs against the real binary: DescribeProducers
// through kadm and sarama's TransactionClusterAdmin, with an open
// transaction's start offset, before and after kill -9; ListTransactions
// v2's transactional id pattern through kadm.

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestTxnAdminDescribeProducers(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)
	const topic = "dprod"
	createTopic(t, adm, topic, 2)
	manual := kgo.RecordPartitioner(kgo.ManualPartitioner())

	// An idempotent producer: three records to partition 0, one to 1.
	idem := newFranz(t, b.addr, manual)
	rec := func(p int32, v string) *kgo.Record { return &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)} }
	if err := idem.ProduceSync(ctx, rec(0, "a"), rec(0, "b"), rec(0, "c")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := idem.ProduceSync(ctx, rec(1, "d")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	idemPID, _, err := idem.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A transactional producer leaves a transaction open on partition 1
	// from offset 1.
	tx := txnProducer(t, b.addr, "dp-tx", manual)
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, rec(1, "e"), rec(1, "f")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txPID, txEpoch, err := tx.ProducerID(ctx)
	if err != nil || idemPID < 0 || txPID < 0 {
		t.Fatalf("producer ids %d, %d: %v", idemPID, txPID, err)
	}
	want := map[int32]string{
		0: fmt.Sprintf("[{pid %d epoch 0 seq 2 coord -1 txn -1}]", idemPID),
		1: fmt.Sprintf("[{pid %d epoch 0 seq 0 coord -1 txn -1} {pid %d epoch %d seq 1 coord -1 txn 1}]", idemPID, txPID, txEpoch),
	}
	if idemPID > txPID {
		t.Fatalf("the idempotent producer's id %d is above the transactional one's %d: the order below assumes otherwise", idemPID, txPID)
	}
	checkProducersKadm(t, adm, topic, want)
	checkProducersSarama(t, b.addr, topic, want)

	// ListTransactions v2: the pattern matches whole ids.
	lt, err := adm.ListTransactionsByTxPattern(ctx, nil, nil, "dp-.*")
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := lt["dp-tx"]; len(lt) != 1 || !ok || l.State != "Ongoing" || l.ProducerID != txPID {
		t.Fatalf("ListTransactions dp-.*: %+v", lt)
	}
	if lt, err = adm.ListTransactionsByTxPattern(ctx, nil, nil, "dp"); err != nil || len(lt) != 0 {
		t.Fatalf("ListTransactions dp: %+v %v", lt, err)
	}
	if _, err = adm.ListTransactionsByTxPattern(ctx, nil, nil, "dp-("); !errors.Is(err, kerr.InvalidRegularExpression) {
		t.Fatalf("ListTransactions with a bad pattern: %v", err)
	}

	// The producer state and the open transaction come back after kill -9.
	b.kill9()
	b.restart()
	checkProducersKadm(t, adm, topic, want)

	// A new producer on the id (InitProducerId) aborts the open
	// transaction: its start offset goes.
	tx2 := txnProducer(t, b.addr, "dp-tx", manual)
	if _, _, err := tx2.ProducerID(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		desc, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {1: {}}})
		if err != nil {
			t.Fatal(err)
		}
		open := false
		for _, p := range desc.SortedProducers() {
			open = open || p.CurrentTxnStartOffset != -1
		}
		if !open {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the aborted transaction is still open: %+v", desc.SortedProducers())
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with the context's deadline
	}
}

// checkProducersKadm compares kadm's DescribeProducers of topic's
// partitions with want (producers in id order per partition).
func checkProducersKadm(t *testing.T, adm *kadm.Client, topic string, want map[int32]string) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	set := kadm.TopicsSet{topic: {}}
	for p := range want {
		set[topic][p] = struct{}{}
	}
	desc, err := adm.DescribeProducers(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range want {
		dp, ok := desc[topic].Partitions[p]
		if !ok || dp.Err != nil {
			t.Fatalf("kadm %s/%d: %+v", topic, p, dp)
		}
		got := "["
		for i, pr := range dp.ActiveProducers.Sorted() {
			if pr.LastTimestamp <= 0 {
				t.Fatalf("kadm %s/%d: producer %d last timestamp %d", topic, p, pr.ProducerID, pr.LastTimestamp)
			}
			if i > 0 {
				got += " "
			}
			got += fmt.Sprintf("{pid %d epoch %d seq %d coord %d txn %d}", pr.ProducerID, pr.ProducerEpoch, pr.LastSequence, pr.CoordinatorEpoch, pr.CurrentTxnStartOffset)
		}
		if got += "]"; got != w {
			t.Fatalf("kadm %s/%d: %s, want %s", topic, p, got, w)
		}
	}
}

// checkProducersSarama is checkProducersKadm through sarama's
// TransactionClusterAdmin.
func checkProducersSarama(t *testing.T, addr, topic string, want map[int32]string) {
	t.Helper()
	sadm, err := sarama.NewClusterAdmin([]string{addr}, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer sadm.Close()
	req := map[string][]int32{}
	for p := range want {
		req[topic] = append(req[topic], p)
	}
	res, err := sadm.(sarama.TransactionClusterAdmin).DescribeProducers(req)
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range want {
		dp, ok := res[topic][p]
		if !ok || dp.ErrorCode != sarama.ErrNoError {
			t.Fatalf("sarama %s/%d: %+v", topic, p, dp)
		}
		got := "["
		for i, pr := range dp.ActiveProducers { // in id order, as the broker sends them
			if i > 0 {
				got += " "
			}
			got += fmt.Sprintf("{pid %d epoch %d seq %d coord %d txn %d}", pr.ProducerID, pr.ProducerEpoch, pr.LastSequence, pr.CoordinatorEpoch, pr.CurrentTxnStartOffset)
		}
		if got += "]"; got != w {
			t.Fatalf("sarama %s/%d: %s, want %s", topic, p, got, w)
		}
	}
}
