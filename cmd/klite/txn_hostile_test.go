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
	"github.com/twmb/franz-go/pkg/kgo"
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
