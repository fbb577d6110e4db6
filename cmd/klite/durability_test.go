package main

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Durability tests: producers tag every record with (producer, sequence) and
// remember which were acknowledged; after the broker dies and restarts, the
// log must hold every acknowledged record exactly once, each producer's
// records in sequence order per partition, and offsets without gaps. A record
// that was never acknowledged may be missing, but no record may appear twice.

const durParts = 4

// tracker records which sequences each producer had acknowledged.
type tracker struct {
	mu     sync.Mutex
	acked  [][]bool // [producer][seq], guarded by mu
	nAcked atomic.Int64
	nFail  atomic.Int64
	errs   map[string]int // distinct client errors, guarded by mu
}

func newTracker(producers int) *tracker {
	return &tracker{acked: make([][]bool, producers), errs: map[string]int{}}
}

func (tr *tracker) ack(producer int, seq int64) {
	tr.mu.Lock()
	a := tr.acked[producer]
	for int64(len(a)) <= seq {
		a = append(a, false)
	}
	a[seq] = true
	tr.acked[producer] = a
	tr.mu.Unlock()
	tr.nAcked.Add(1)
}

func (tr *tracker) fail(err error) {
	tr.nFail.Add(1)
	tr.mu.Lock()
	tr.errs[err.Error()]++
	tr.mu.Unlock()
}

// startProducers runs producers runProducer goroutines on topic. stop
// cancels them and waits until they return; calling it again is harmless.
func startProducers(t testing.TB, addr, topic string, producers int) (tr *tracker, stop func()) {
	tr = newTracker(producers)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for id := 0; id < producers; id++ {
		wg.Add(1)
		go func() { defer wg.Done(); runProducer(t, ctx, addr, topic, id, tr) }()
	}
	return tr, func() { cancel(); wg.Wait() }
}

// waitAcked waits until n more records than now are acknowledged.
func (tr *tracker) waitAcked(t testing.TB, n int64) {
	t.Helper()
	from := tr.nAcked.Load()
	waitFor(t, 2*time.Minute, "producers to make progress", func() bool { return tr.nAcked.Load() >= from+n })
}

func durValue(producer int, seq int64) []byte {
	return []byte(fmt.Sprintf("dur %d %d", producer, seq))
}

func parseDurValue(v []byte) (producer int, seq int64, ok bool) {
	_, err := fmt.Sscanf(string(v), "dur %d %d", &producer, &seq)
	return producer, seq, err == nil
}

// runProducer produces sequence 0, 1, 2... (sequence s to partition
// s%durParts) until ctx is done, then waits for every outstanding record to
// be acknowledged or failed.
func runProducer(t testing.TB, ctx context.Context, addr, topic string, id int, tr *tracker) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(2000),
		kgo.ProducerLinger(time.Millisecond),
		kgo.ClientID(fmt.Sprintf("durability-%d", id)),
	)
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	for seq := int64(0); ctx.Err() == nil; seq++ {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(seq % durParts), Value: durValue(id, seq)}, func(r *kgo.Record, err error) {
			if err != nil {
				tr.fail(err)
				return
			}
			tr.ack(id, seq)
		})
	}
	// Records still buffered or in flight settle here: acknowledged once the
	// broker is back, or failed when the deadline passes.
	fctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		t.Logf("producer %d: flush: %v", id, err)
	}
}

// verifyDurable consumes the whole topic and checks it against tr.
func verifyDurable(t testing.TB, addr, topic string, tr *tracker) {
	t.Helper()
	cl := newFranz(t, addr)
	adm := kadm.NewClient(cl)
	ctx := testContext(t, 5*time.Minute)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[int32]kgo.Offset{}
	want := map[int32]int64{}
	total := int64(0)
	for p := int32(0); p < durParts; p++ {
		e, _ := ends.Lookup(topic, p)
		if e.Err != nil {
			t.Fatalf("end offset %s/%d: %v", topic, p, e.Err)
		}
		want[p] = e.Offset
		total += e.Offset
		offsets[p] = kgo.NewOffset().AtStart()
	}
	ccl := newFranz(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}), kgo.FetchMaxBytes(16<<20))

	tr.mu.Lock()
	defer tr.mu.Unlock()
	seen := make([]map[int64]bool, len(tr.acked))
	for i := range seen {
		seen[i] = map[int64]bool{}
	}
	next := map[int32]int64{}
	lastSeq := map[[2]int]int64{} // (producer, partition) -> last sequence seen
	errs := 0
	fail := func(format string, args ...any) {
		if errs++; errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	for got := int64(0); got < total; {
		fs := ccl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", got, total)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= want[r.Partition] {
				return // produced after the end offsets were listed
			}
			got++
			if r.Offset != next[r.Partition] {
				fail("partition %d: offset %d follows %d", r.Partition, r.Offset, next[r.Partition]-1)
			}
			next[r.Partition] = r.Offset + 1
			id, seq, ok := parseDurValue(r.Value)
			if !ok || id < 0 || id >= len(seen) {
				fail("partition %d offset %d: bad value %q", r.Partition, r.Offset, r.Value)
				return
			}
			if int32(seq%durParts) != r.Partition {
				fail("producer %d seq %d found in partition %d", id, seq, r.Partition)
			}
			if seen[id][seq] {
				fail("producer %d seq %d appears twice (second at %d/%d)", id, seq, r.Partition, r.Offset)
			}
			seen[id][seq] = true
			k := [2]int{id, int(r.Partition)}
			if last, ok := lastSeq[k]; ok && seq <= last {
				fail("partition %d offset %d: producer %d seq %d after seq %d", r.Partition, r.Offset, id, seq, last)
			}
			lastSeq[k] = seq
		})
	}
	var acked, lost int
	for id, a := range tr.acked {
		for seq, ok := range a {
			if !ok {
				continue
			}
			acked++
			if !seen[id][int64(seq)] {
				if lost++; lost <= 20 {
					t.Errorf("acknowledged record producer %d seq %d (partition %d) is missing", id, seq, seq%durParts)
				}
			}
		}
	}
	t.Logf("log holds %d records; %d acknowledged, %d lost, %d failed on the client %v", total, acked, lost, tr.nFail.Load(), tr.errs)
}

// TestCrashKill9 kills the broker with SIGKILL at random moments while
// idempotent acks=all producers write, restarts it on the same dir and
// address, and checks that acknowledged data survived exactly once.
func TestCrashKill9(t *testing.T) {
	crashRounds(t, envInt("KLITE_CRASH_ROUNDS", 5))
}

// TestCrashKill9SmallSegments crashes with 2 MiB segments, so kills land
// during segment rolls and preallocation too.
func TestCrashKill9SmallSegments(t *testing.T) {
	crashRounds(t, envInt("KLITE_CRASH_ROUNDS", 5), "-segment-bytes", "2097152")
}

func crashRounds(t *testing.T, rounds int, brokerArgs ...string) {
	seed := int64(envInt("KLITE_CRASH_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("seed %d (KLITE_CRASH_SEED), %d rounds", seed, rounds)
	rng := rand.New(rand.NewSource(seed))

	b := startBroker(t, brokerArgs...)
	const topic, producers = "crash", 4
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), topic, durParts)

	tr, stop := startProducers(t, b.addr, topic, producers)
	defer stop()

	for round := 1; round <= rounds; round++ {
		// Let the producers get going again after the restart (this also
		// shows they recover), then kill at a random moment.
		tr.waitAcked(t, 2000)
		// Topic metadata is acknowledged too: a topic created (and the
		// previous round's deleted) just before the kill must stay so.
		adm := kadm.NewClient(newFranz(t, b.addr))
		createTopic(t, adm, fmt.Sprintf("crash-meta-%d", round), 3)
		if round > 1 {
			if resp, err := adm.DeleteTopic(testContext(t, 30*time.Second), fmt.Sprintf("crash-meta-%d", round-1)); err != nil || resp.Err != nil {
				t.Fatalf("delete: %v %v", err, resp.Err)
			}
		}
		time.Sleep(time.Duration(rng.Int63n(int64(400 * time.Millisecond))))
		b.kill9()
		t.Logf("round %d: killed with %d acknowledged, %d failed", round, tr.nAcked.Load(), tr.nFail.Load())
		b.restart()

		td, err := kadm.NewClient(newFranz(t, b.addr)).ListTopics(testContext(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := td[fmt.Sprintf("crash-meta-%d", round)]; !ok || len(d.Partitions) != 3 {
			t.Errorf("round %d: topic created before the kill is missing or changed after restart", round)
		}
		if round > 1 && td.Has(fmt.Sprintf("crash-meta-%d", round-1)) {
			t.Errorf("round %d: topic deleted before the kill is back after restart", round)
		}
	}
	tr.waitAcked(t, 2000)
	stop()

	verifyDurable(t, b.addr, topic, tr)
	b.stop()
}

// TestGracefulShutdown stops the broker with SIGTERM while producers write:
// it must exit 0, and after a restart every acknowledged record is there.
func TestGracefulShutdown(t *testing.T) {
	b := startBroker(t)
	const topic, producers = "graceful", 2
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), topic, durParts)

	tr, stop := startProducers(t, b.addr, topic, producers)
	defer stop()

	waitFor(t, 2*time.Minute, "producers to make progress", func() bool { return tr.nAcked.Load() >= 20000 })
	b.signal(syscall.SIGTERM)
	if err := b.wait(stopTimeout); err != nil {
		t.Fatalf("klite after SIGTERM while producing: %v", err)
	}
	b.checkLog()
	for _, msg := range []string{`"message":"stopping"`, `"message":"storage closed"`, `"message":"stopped"`} {
		if !b.log.contains(msg) {
			t.Errorf("log lacks %s", msg)
		}
	}
	b.restart()
	tr.waitAcked(t, 2000) // producers resume
	stop()
	verifyDurable(t, b.addr, topic, tr)
	b.stop()
}
