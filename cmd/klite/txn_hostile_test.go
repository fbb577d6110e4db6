package main

// Transactions against hostile conditions with the real binary: kill -9 at
// random moments while producers commit and abort.

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// txnOutcome is what a producer was told about one transaction.
type txnOutcome int8

const (
	txnUnknown   txnOutcome = iota // an error: either way, all or nothing
	txnCommitted                   // EndTransaction(commit) succeeded
	txnAborted                     // EndTransaction(abort) succeeded
)

// TestHostileTxnKill9Sweep kills the broker (-9) at random moments while
// three transactional producers commit and abort transactions spanning
// every partition, restarts it each time, and then requires of a
// read_committed consumer: every transaction all or nothing, every
// acknowledged commit visible with each record exactly once, no record of
// an acknowledged abort.
func TestHostileTxnKill9Sweep(t *testing.T) {
	b := startBroker(t, "-transaction-abort-interval", "100ms")
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, parts, producers, perTxn, kills = "txsweep", 3, 3, 4, 10
	createTopic(t, adm, topic, parts)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	var mu sync.Mutex
	outcomes := map[string]txnOutcome{} // "p1-t7" -> outcome
	stop := make(chan struct{})
	var wg sync.WaitGroup
	ctx := testContext(t, 3*time.Minute)
	newProducer := func(id string) *kgo.Client {
		return txnProducer(t, b.addr, id, kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.TransactionTimeout(5*time.Second), kgo.RetryTimeout(30*time.Second))
	}
	for k := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("p%d", k)
			cl := newProducer(id)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("%s-t%d", id, i)
				commit := i%3 != 1
				err := cl.BeginTransaction()
				for j := 0; err == nil && j < perTxn; j++ {
					r := &kgo.Record{Topic: topic, Partition: int32(j % parts), Value: []byte(fmt.Sprintf("%s-r%d", name, j))}
					err = cl.ProduceSync(ctx, r).FirstErr()
				}
				if err == nil {
					err = cl.EndTransaction(ctx, kgo.TransactionEndTry(commit))
				}
				out := txnUnknown
				switch {
				case err == nil && commit:
					out = txnCommitted
				case err == nil:
					out = txnAborted
				}
				mu.Lock()
				outcomes[name] = out
				mu.Unlock()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					// A new producer on the id fences this one and aborts
					// what it left open.
					cl.Close()
					cl = newProducer(id)
				}
			}
		}()
	}
	committedAfter := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, o := range outcomes {
			if o == txnCommitted {
				n++
			}
		}
		return n
	}
	for range kills {
		// Kill at a random moment: after a random number of commits.
		target := committedAfter() + rng.IntN(6)
		for committedAfter() < target && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		b.kill9()
		b.restart()
	}
	target := committedAfter() + producers
	for committedAfter() < target && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("producers made no progress after the kills: %v", ctx.Err())
	}

	fin := txnProducer(t, b.addr, "sweep-sentinel", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	sentinel(t, fin, topic, parts, "stop")
	seen := map[string]int{}    // record value -> times
	perName := map[string]int{} // transaction -> records seen
	for _, r := range readUntil(t, b.addr, topic, parts, kgo.ReadCommitted(), "stop") {
		v := string(r.Value)
		seen[v]++
		perName[txnName(v)]++
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("record %s seen %d times", v, n)
		}
	}
	committed := 0
	for name, out := range outcomes {
		n := perName[name]
		switch {
		case n != 0 && n != perTxn:
			t.Errorf("transaction %s (%v): %d of %d records visible", name, out, n, perTxn)
		case out == txnCommitted && n != perTxn:
			t.Errorf("transaction %s committed, %d of %d records visible", name, n, perTxn)
		case out == txnAborted && n != 0:
			t.Errorf("transaction %s aborted, %d records visible", name, n)
		}
		if out == txnCommitted {
			committed++
		}
	}
	for name := range perName {
		if _, ok := outcomes[name]; !ok {
			t.Errorf("records of transaction %s, never begun", name)
		}
	}
	t.Logf("%d transactions, %d acknowledged commits, %d kills", len(outcomes), committed, kills)
}

// txnName is the transaction of record value "p1-t7-r2": "p1-t7".
func txnName(v string) string {
	for i := len(v) - 1; i >= 0; i-- {
		if v[i] == '-' {
			return v[:i]
		}
	}
	return v
}

// TestHostileTxnRawRequests sends, next to a real transactional producer,
// the requests a hostile or buggy client could: a produce into the
// producer's transaction under another transactional id, a transactional
// offset commit for a group never added, an EndTxn with a wrong epoch, an
// InitProducerId over -transaction-max-timeout, and an AddPartitionsToTxn
// v5 of a million transactions (which once overflowed the broker's
// stack). Each gets Kafka's error; the broker stays up and the producer's
// transaction commits with only its own record.
func TestHostileTxnRawRequests(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic = "txhostile"
	createTopic(t, adm, topic, 1)
	ctx := testContext(t, 2*time.Minute)
	owner := txnProducer(t, b.addr, "owner", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := owner.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := owner.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("mine")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	desc, err := adm.DescribeTransactions(ctx, "owner")
	if err != nil || len(desc) != 1 {
		t.Fatalf("describe: %v %v", desc, err)
	}
	od := desc["owner"]
	// Versions before topic ids in Produce (v13); the million goes at the
	// newest AddPartitionsToTxn.
	raw := newFranz(t, b.addr, kgo.MaxVersions(kversion.V3_7_0()))
	code := func(what string, got, want int16) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), kerr.ErrorForCode(want))
		}
	}

	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr("evil"), 60000
	ir, err := init.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	code("evil's InitProducerId", ir.ErrorCode, 0)

	produce := func(pid int64, epoch int16) int16 {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis, req.TransactionID = -1, 10000, kmsg.StringPtr("evil")
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = txnDataBatch(pid, epoch, 1, true, [][]byte{[]byte("evil")})
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	code("produce as evil with owner's producer", produce(od.ProducerID, od.ProducerEpoch), kerr.InvalidProducerIDMapping.Code)
	code("produce as evil, partition not added", produce(ir.ProducerID, ir.ProducerEpoch), kerr.InvalidTxnState.Code)

	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.Version, commit.TransactionalID, commit.Group = 3, "evil", "never-added"
	commit.ProducerID, commit.ProducerEpoch, commit.Generation = ir.ProducerID, ir.ProducerEpoch, -1
	ct := kmsg.NewTxnOffsetCommitRequestTopic()
	ct.Topic = topic
	cp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	cp.Offset = 1
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	cr, err := commit.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	code("TxnOffsetCommit for a group never added", cr.Topics[0].Partitions[0].ErrorCode, kerr.InvalidTxnState.Code)

	end := kmsg.NewPtrEndTxnRequest()
	end.Version, end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = 3, "owner", od.ProducerID, od.ProducerEpoch+1, true
	er, err := end.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	code("EndTxn of owner's transaction with another epoch", er.ErrorCode, kerr.ProducerFenced.Code)

	long := kmsg.NewPtrInitProducerIDRequest()
	long.TransactionalID, long.TransactionTimeoutMillis = kmsg.StringPtr("slow"), int32((16 * time.Minute).Milliseconds())
	lr, err := long.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	code("InitProducerId over -transaction-max-timeout", lr.ErrorCode, kerr.InvalidTransactionTimeout.Code)

	const n = 1_000_000
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.Version = 5
	add.Transactions = make([]kmsg.AddPartitionsToTxnRequestTransaction, n)
	topics := []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: topic, Partitions: []int32{0}}}
	for i := range add.Transactions {
		tx := &add.Transactions[i]
		tx.Default()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly, tx.Topics = "nobody", 1, 0, i%2 == 0, topics
	}
	ar, err := add.RequestWith(ctx, newFranz(t, b.addr))
	if err != nil {
		t.Fatalf("AddPartitionsToTxn v5 of %d transactions: %v", n, err)
	}
	if len(ar.Transactions) != n {
		t.Fatalf("AddPartitionsToTxn v5: %d transactions answered, want %d", len(ar.Transactions), n)
	}
	code("AddPartitionsToTxn v5, unknown id", ar.Transactions[n-1].Topics[0].Partitions[0].ErrorCode, kerr.InvalidProducerIDMapping.Code)

	if err := owner.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("owner's commit: %v", err)
	}
	sentinel(t, owner, topic, 1, "stop")
	got := values(readUntil(t, b.addr, topic, 1, kgo.ReadCommitted(), "stop"))
	if len(got) != 1 || got[0] != "mine" {
		t.Fatalf("read_committed %v, want [mine]", got)
	}
}
