package main

// Transactions against the real binary with real clients: franz-go's
// transactional producer and GroupTransactSession, zombie fencing, and
// kill -9 in and after a transaction.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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
	joined := "," + strings.Join(got, ",") + ","
	for _, v := range []string{"c1", "c2", "c3", "c4", "a1", "a2"} {
		if strings.Count(joined, ","+v+",") != 1 {
			t.Fatalf("read_committed %v: %s not exactly once", got, v)
		}
	}
	if len(got) != 6 {
		t.Fatalf("read_committed %v: the open transaction's records are visible", got)
	}
}

// consumeTransform runs a GroupTransactSession over in until it has
// committed n input records to out, ending each poll in a transaction with
// its offsets. kill, when set, runs once after half of them, while the
// loop goes on (the broker dies between or inside transactions).
func consumeTransform(t *testing.T, b *broker, in, out, id string, n int, kill func()) {
	t.Helper()
	s, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(b.addr), kgo.TransactionalID(id), kgo.ConsumerGroup("etl"),
		kgo.ConsumeTopics(in), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionTimeout(10*time.Second), kgo.DefaultProduceTopic(out),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RetryTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := testContext(t, 3*time.Minute)
	committed := 0
	var killed sync.WaitGroup
	for committed < n {
		fs := s.PollRecords(ctx, 7) // small polls: many transactions
		if ctx.Err() != nil {
			t.Fatalf("committed %d of %d input records: %v", committed, n, ctx.Err())
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := s.Begin(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		for _, r := range recs {
			s.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: append([]byte("x-"), r.Value...)}, nil)
		}
		ok, err := s.End(ctx, kgo.TryCommit)
		if err != nil {
			t.Logf("end after %d committed: %v", committed, err)
		}
		if ok {
			committed += len(recs)
			if kill != nil && committed >= n/2 {
				// While the loop goes on: the kill lands inside a later
				// transaction or between two.
				killed.Add(1)
				go func(kill func()) { defer killed.Done(); kill() }(kill)
				kill = nil
			}
		}
	}
	killed.Wait()
}

// checkExactlyOnce reads out (read_committed, up to a sentinel) and
// requires every "x-v%03d" for i < n exactly once.
func checkExactlyOnce(t *testing.T, addr, out string, parts int32, n int) {
	t.Helper()
	fin := txnProducer(t, addr, "sentinel", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	sentinel(t, fin, out, parts, "stop")
	seen := map[string]int{}
	for _, r := range readUntil(t, addr, out, parts, kgo.ReadCommitted(), "stop") {
		seen[string(r.Value)]++
	}
	for i := range n {
		if v := fmt.Sprintf("x-v%03d", i); seen[v] != 1 {
			t.Fatalf("%s seen %d times", v, seen[v])
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct outputs, want %d", len(seen), n)
	}
}

// Consume-transform-produce with franz-go's GroupTransactSession, with the
// broker killed (-9) halfway, with transactions in flight: every input
// record is in the output exactly once, and the group's committed offsets
// are the end of the input.
func TestTxnGroupTransactSessionKill9(t *testing.T) {
	b := startBroker(t, "-transaction-abort-interval", "100ms", "-group-initial-rebalance-delay", "0s")
	cl := newFranz(t, b.addr)
	adm := kadm.NewClient(cl)
	const in, out, parts, n = "etl-in", "etl-out", 2, 300
	createTopic(t, adm, in, parts)
	createTopic(t, adm, out, parts)
	ctx := testContext(t, time.Minute)
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: in, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("v%03d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumeTransform(t, b, in, out, "etl-1", n, func() {
		b.kill9()
		b.restart()
	})
	checkExactlyOnce(t, b.addr, out, parts, n)
	adm = kadm.NewClient(newFranz(t, b.addr)) // the first client's connection died with the broker
	ctx = testContext(t, time.Minute)
	offs, err := adm.FetchOffsets(ctx, "etl")
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		if o, ok := offs.Lookup(in, e.Partition); !ok || o.At != e.Offset {
			t.Fatalf("group offset of %s/%d: %+v, want %d", in, e.Partition, o, e.Offset)
		}
	})
}

// A producer that vanishes inside a transaction: the broker aborts it
// after its timeout (with the epoch bumped, so the producer is fenced if
// it comes back), and read_committed consumers move past it.
func TestTxnVanishedProducerFranz(t *testing.T) {
	b := startBroker(t, "-transaction-abort-interval", "100ms")
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic = "txvanish"
	createTopic(t, adm, topic, 1)
	ctx := testContext(t, time.Minute)
	gone := txnProducer(t, b.addr, "gone", kgo.TransactionTimeout(time.Second))
	if err := gone.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := gone.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("lost")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// It never ends the transaction. Another producer commits after it.
	other := txnProducer(t, b.addr, "other")
	if err := runTxn(ctx, other, topic, true, "kept"); err != nil {
		t.Fatal(err)
	}
	sentinel(t, other, topic, 1, "stop")
	if got := values(readUntil(t, b.addr, topic, 1, kgo.ReadCommitted(), "stop")); len(got) != 1 || got[0] != "kept" {
		t.Fatalf("read_committed: %v", got)
	}
	desc, err := adm.DescribeTransactions(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := desc["gone"]; !ok || d.State != "CompleteAbort" {
		t.Fatalf("vanished producer's transaction: %+v", desc)
	}
	err = gone.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("vanished producer's late commit: %v, want fenced", err)
	}
}

// kill -9 (and restart) while transactions commit: each transaction is in
// the log all or nothing, exactly once, and every one whose commit was
// acknowledged is visible to read_committed consumers.
func TestTxnKill9MidCommitFranz(t *testing.T) {
	b := startBroker(t, "-transaction-abort-interval", "100ms")
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, parts, perTxn, txns = "txmidcommit", 3, 6, 30
	createTopic(t, adm, topic, parts)
	cl := txnProducer(t, b.addr, "mc", kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(5*time.Second))
	ctx := testContext(t, 3*time.Minute)
	acked := map[int]bool{}
	var killer sync.WaitGroup
	for i := range txns {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("txn %d begin: %v", i, err)
		}
		var failed error
		for j := range perTxn {
			r := &kgo.Record{Topic: topic, Partition: int32(j % parts), Value: []byte(fmt.Sprintf("r%02d-%d", i, j))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				failed = err
				break
			}
		}
		if i%10 == 5 {
			// Kill as the commit goes out: before, during or after it.
			killer.Add(1)
			go func() { defer killer.Done(); b.kill9(); b.restart() }()
		}
		if failed == nil {
			failed = cl.EndTransaction(ctx, kgo.TryCommit)
			acked[i] = failed == nil
		} else {
			_ = cl.EndTransaction(ctx, kgo.TryAbort)
		}
		killer.Wait()
		if failed != nil {
			// The client may be left in a failed state: a new producer on
			// the same id fences it and aborts what it left open.
			t.Logf("txn %d: %v", i, failed)
			cl.Close()
			cl = txnProducer(t, b.addr, "mc", kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(5*time.Second))
		}
	}
	fin := txnProducer(t, b.addr, "mc-sentinel", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	sentinel(t, fin, topic, parts, "stop")
	count := map[int]int{}
	for _, r := range readUntil(t, b.addr, topic, parts, kgo.ReadCommitted(), "stop") {
		var i, j int
		fmt.Sscanf(string(r.Value), "r%02d-%d", &i, &j)
		count[i]++
	}
	nAcked := 0
	for i := range txns {
		if c := count[i]; c != 0 && c != perTxn {
			t.Fatalf("txn %d: %d of %d records visible", i, c, perTxn)
		}
		if acked[i] {
			nAcked++
			if count[i] != perTxn {
				t.Fatalf("txn %d acknowledged, %d records visible", i, count[i])
			}
		}
	}
	// The client rides out most kills (it retries); a run where few
	// commits were acknowledged checked little.
	if nAcked < txns-5 {
		t.Fatalf("only %d of %d commits acknowledged", nAcked, txns)
	}
}
