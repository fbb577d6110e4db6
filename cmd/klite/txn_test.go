package main

// Transactions against the real binary with real clients: franz-go's
// transactional producer and GroupTransactSession, zombie fencing, and
// kill -9 in and after a transaction.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txnProducer is a franz-go transactional producer on id.
func txnProducer(t testing.TB, addr, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return newFranz(t, addr, append([]kgo.Opt{kgo.TransactionalID(id), kgo.DefaultProduceTopic("unset"),
		kgo.TransactionTimeout(time.Minute)}, opts...)...)
}

// runTxn produces values to topic in one transaction, committing or
// aborting it.
func runTxn(ctx context.Context, cl *kgo.Client, topic string, commit bool, values ...string) error {
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	for i, v := range values {
		r := &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: []byte(v)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			_ = cl.EndTransaction(ctx, kgo.TryAbort)
			return err
		}
	}
	return cl.EndTransaction(ctx, kgo.TransactionEndTry(commit))
}

// readUntil consumes every partition of topic from the start, at the given
// isolation, until each partition has given a record whose value starts
// with stop (a sentinel committed last), and returns every record before.
func readUntil(t testing.TB, addr, topic string, parts int32, level kgo.IsolationLevel, stop string) []*kgo.Record {
	t.Helper()
	offs := map[int32]kgo.Offset{}
	for p := range parts {
		offs[p] = kgo.NewOffset().AtStart()
	}
	cl := newFranz(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}), kgo.FetchIsolationLevel(level))
	ctx := testContext(t, time.Minute)
	var got []*kgo.Record
	done := map[int32]bool{}
	for len(done) < int(parts) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d records of %s, sentinels from %d of %d partitions: %v", len(got), topic, len(done), parts, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		for _, r := range fs.Records() {
			if strings.HasPrefix(string(r.Value), stop) {
				done[r.Partition] = true
				continue
			}
			if !done[r.Partition] {
				got = append(got, r)
			}
		}
	}
	return got
}

// sentinel commits one record starting with stop to every partition.
func sentinel(t testing.TB, cl *kgo.Client, topic string, parts int32, stop string) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p := range parts {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(stop)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
}

// A mix of committed and aborted transactions: read_committed sees exactly
// the committed records, in order per partition; read_uncommitted sees all.
func TestTxnCommitAbortMixFranz(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, parts = "txmix", 3
	createTopic(t, adm, topic, parts)
	cl := txnProducer(t, b.addr, "mix", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := testContext(t, 2*time.Minute)
	var committed, all []string
	for i := range 30 {
		commit := i%3 != 1
		var vals []string
		for j := range 10 {
			vals = append(vals, fmt.Sprintf("t%02d-r%02d", i, j))
		}
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for j, v := range vals {
			r := &kgo.Record{Topic: topic, Partition: int32((i + j) % parts), Value: []byte(v)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("txn %d produce: %v", i, err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("txn %d end (commit %v): %v", i, commit, err)
		}
		all = append(all, vals...)
		if commit {
			committed = append(committed, vals...)
		}
	}
	sentinel(t, cl, topic, parts, "stop")
	check := func(level kgo.IsolationLevel, want []string) {
		t.Helper()
		got := readUntil(t, b.addr, topic, parts, level, "stop")
		if len(got) != len(want) {
			t.Fatalf("%d records, want %d", len(got), len(want))
		}
		// Per partition, in production order.
		pos := map[int32][]string{}
		for _, r := range got {
			pos[r.Partition] = append(pos[r.Partition], string(r.Value))
		}
		wantPos := map[int32][]string{}
		for _, v := range want {
			var i, j int
			fmt.Sscanf(v, "t%02d-r%02d", &i, &j)
			p := int32((i + j) % parts)
			wantPos[p] = append(wantPos[p], v)
		}
		for p := range int32(parts) {
			if strings.Join(pos[p], ",") != strings.Join(wantPos[p], ",") {
				t.Fatalf("partition %d: got %v, want %v", p, pos[p], wantPos[p])
			}
		}
	}
	check(kgo.ReadCommitted(), committed)
	check(kgo.ReadUncommitted(), all)
}

// Zombie fencing: a second producer on the same transactional id fences the
// first, whose open transaction is aborted; only the second's commit is
// visible.
func TestTxnZombieFencingFranz(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic = "txzombie"
	createTopic(t, adm, topic, 1)
	ctx := testContext(t, time.Minute)
	zombie := txnProducer(t, b.addr, "z")
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("zombie")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fresh := txnProducer(t, b.addr, "z")
	if err := runTxn(ctx, fresh, topic, true, "fresh"); err != nil {
		t.Fatalf("new producer: %v", err)
	}
	err := zombie.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("zombie commit: %v, want fenced", err)
	}
	sentinel(t, fresh, topic, 1, "stop")
	got := readUntil(t, b.addr, topic, 1, kgo.ReadCommitted(), "stop")
	if len(got) != 1 || string(got[0].Value) != "fresh" {
		t.Fatalf("read_committed: %v", values(got))
	}
}

func values(rs []*kgo.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Value))
	}
	return out
}

// kill -9 with a transaction open (its records acknowledged): after the
// restart the broker aborts it at its timeout, so read_committed consumers
// move past it; a transaction committed before the kill is all there.
func TestTxnKill9Franz(t *testing.T) {
	b := startBroker(t, "-transaction-abort-interval", "50ms")
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, parts = "txkill", 2
	createTopic(t, adm, topic, parts)
	ctx := testContext(t, 2*time.Minute)
	done := txnProducer(t, b.addr, "done", kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err := runTxn(ctx, done, topic, true, "c1", "c2", "c3", "c4"); err != nil {
		t.Fatal(err)
	}
	open := txnProducer(t, b.addr, "open", kgo.TransactionTimeout(2*time.Second), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err := open.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"o1", "o2", "o3"} {
		if err := open.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	b.kill9()
	b.restart()
	after := txnProducer(t, b.addr, "after", kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err := runTxn(ctx, after, topic, true, "a1", "a2"); err != nil {
		t.Fatal(err)
	}
	sentinel(t, after, topic, parts, "stop")
	got := values(readUntil(t, b.addr, topic, parts, kgo.ReadCommitted(), "stop"))
	joined := ","+strings.Join(got, ",")+","
	for _, v := range []string{"c1", "c2", "c3", "c4", "a1", "a2"} {
		if strings.Count(joined, ","+v+",") != 1 {
			t.Fatalf("read_committed %v: %s not exactly once", got, v)
		}
	}
	if len(got) != 6 {
		t.Fatalf("read_committed %v: the open transaction's records are visible", got)
	}
}
