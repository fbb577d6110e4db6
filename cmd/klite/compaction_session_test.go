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

// Fetch sessions over compacted partitions: franz-go (KIP-227 sessions)
// and librdkafka consumers read a compacted topic while cleanings run
// under them and while its partitions churn (added to the topic, dropped
// from and returned to the assignment, re-read from offset 0 inside the
// session). Each consumer must see offsets only grow per partition, each
// record as produced at its offset, each key's latest record, and catch
// up by a deadline in every phase; the broker's counters must show
// incremental fetches.

// compParts is what was produced to each partition of a compacted topic.
type compParts struct {
	recs   map[int32]map[int64]compactRec
	latest map[int32]map[string]int64 // key -> offset of its last record
	hwm    map[int32]int64
}

func newCompParts() *compParts {
	return &compParts{recs: map[int32]map[int64]compactRec{}, latest: map[int32]map[string]int64{}, hwm: map[int32]int64{}}
}

// produce writes n keyed records (keyCount keys, 1 KiB values that do not
// compress) to each of parts; with tombs the last round's first 8 keys of
// each partition are tombstones.
func (cp *compParts) produce(t *testing.T, cl *kgo.Client, topic string, parts []int32, from, n, keyCount int, tombs bool) {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	for _, p := range parts {
		recs := make([]*kgo.Record, 0, n)
		for i := from; i < from+n; i++ {
			r := &kgo.Record{Topic: topic, Partition: p, Key: fmt.Appendf(nil, "k%d-%03d", p, i%keyCount), Value: compactValue(int(p)<<20 | i)}
			if tombs && i >= from+n-keyCount && i%keyCount < 8 {
				r.Value = nil
			}
			recs = append(recs, r)
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce to %d: %v", p, err)
		}
		if cp.recs[p] == nil {
			cp.recs[p], cp.latest[p] = map[int64]compactRec{}, map[string]int64{}
		}
		for _, r := range recs {
			cp.recs[p][r.Offset] = compactRec{key: string(r.Key), val: string(r.Value), tomb: r.Value == nil}
			cp.latest[p][string(r.Key)] = r.Offset // produced in order
			cp.hwm[p] = r.Offset + 1
		}
	}
}

// compView is what one consumer read of each partition it is assigned.
type compView struct {
	t        *testing.T
	name     string
	cp       *compParts
	assigned map[int32]bool
	last     map[int32]int64            // last offset read (from-1 after an assign)
	seen     map[int32]map[string]int64 // key -> last offset read since the assign
	read     map[int32]int              // records read since the assign
}

func newCompView(t *testing.T, name string, cp *compParts) *compView {
	return &compView{t: t, name: name, cp: cp, assigned: map[int32]bool{}, last: map[int32]int64{},
		seen: map[int32]map[string]int64{}, read: map[int32]int{}}
}

func (v *compView) assign(p int32, from int64) {
	v.assigned[p], v.last[p], v.seen[p], v.read[p] = true, from-1, map[string]int64{}, 0
}

func (v *compView) add(p int32, off int64, key, val []byte, tomb bool) {
	if !v.assigned[p] {
		return // buffered before an unassign
	}
	if off <= v.last[p] {
		v.t.Fatalf("%s: partition %d: offset %d after %d", v.name, p, off, v.last[p])
	}
	want, ok := v.cp.recs[p][off]
	if !ok || want.key != string(key) || want.val != string(val) || want.tomb != tomb {
		v.t.Fatalf("%s: partition %d offset %d holds key %q (tombstone %v), produced %q (tombstone %v, found %v)", v.name, p, off, key, tomb, want.key, want.tomb, ok)
	}
	v.last[p] = off
	v.seen[p][string(key)] = off
	v.read[p]++
}

func (v *compView) caughtUp() bool {
	for p := range v.assigned {
		if v.last[p] < v.cp.hwm[p]-1 {
			return false
		}
	}
	return true
}

// check requires every assigned partition's keys at their latest record:
// a read that reaches the end in offset order holds it last.
func (v *compView) check(what string) {
	v.t.Helper()
	for p := range v.assigned {
		for k, off := range v.cp.latest[p] {
			if got, ok := v.seen[p][k]; !ok || got != off {
				v.t.Fatalf("%s, %s: partition %d key %s last read at %d (read: %v), latest at %d", what, v.name, p, k, got, ok, off)
			}
		}
	}
}

// compConsumer is a consumer whose assignment the test changes.
type compConsumer interface {
	assign(topic string, from map[int32]int64)
	unassign(topic string, parts ...int32)
	poll(ctx context.Context)
	view() *compView
}

type franzComp struct {
	cl *kgo.Client
	v  *compView
}

func (f *franzComp) view() *compView { return f.v }

func (f *franzComp) assign(topic string, from map[int32]int64) {
	m := map[int32]kgo.Offset{}
	for p, o := range from {
		m[p] = kgo.NewOffset().At(o)
		f.v.assign(p, o)
	}
	f.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: m})
}

func (f *franzComp) unassign(topic string, parts ...int32) {
	f.cl.RemoveConsumePartitions(map[string][]int32{topic: parts})
	for _, p := range parts {
		delete(f.v.assigned, p)
	}
}

func (f *franzComp) poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	fs := f.cl.PollFetches(pctx)
	fs.EachError(func(topic string, p int32, err error) {
		if ctx.Err() == nil && pctx.Err() == nil {
			f.v.t.Fatalf("franz: %s/%d: %v", topic, p, err)
		}
	})
	fs.EachRecord(func(r *kgo.Record) { f.v.add(r.Partition, r.Offset, r.Key, r.Value, r.Value == nil) })
}

type confluentComp struct {
	c *ckafka.Consumer
	v *compView
}

func (k *confluentComp) view() *compView { return k.v }

func (k *confluentComp) assign(topic string, from map[int32]int64) {
	var tps []ckafka.TopicPartition
	for p, o := range from {
		tps = append(tps, ckafka.TopicPartition{Topic: &topic, Partition: p, Offset: ckafka.Offset(o)})
		k.v.assign(p, o)
	}
	if err := k.c.IncrementalAssign(tps); err != nil {
		k.v.t.Fatal(err)
	}
}

func (k *confluentComp) unassign(topic string, parts ...int32) {
	var tps []ckafka.TopicPartition
	for _, p := range parts {
		tps = append(tps, ckafka.TopicPartition{Topic: &topic, Partition: p})
		delete(k.v.assigned, p)
	}
	if err := k.c.IncrementalUnassign(tps); err != nil {
		k.v.t.Fatal(err)
	}
}

func (k *confluentComp) poll(context.Context) {
	for range 500 { // drain what is queued, up to a bound
		switch e := k.c.Poll(20).(type) {
		case *ckafka.Message:
			k.v.add(e.TopicPartition.Partition, int64(e.TopicPartition.Offset), e.Key, e.Value, e.Value == nil)
		case ckafka.Error:
			if e.IsFatal() {
				k.v.t.Fatalf("librdkafka: %v", e)
			}
		case nil:
			return
		}
	}
}

// countFrom reads partition p of topic from offset 0 to hwm with a fresh
// franz-go client and returns how many records it got.
func countFrom(t *testing.T, addr, topic string, p int32, hwm int64) int {
	t.Helper()
	cl := newFranz(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(0)}}))
	defer cl.Close()
	ctx := testContext(t, time.Minute)
	n := 0
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s/%d to %d: stuck at %d records", topic, p, hwm, n)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			n++
			done = done || r.Offset >= hwm-1
		})
		if done {
			return n
		}
	}
}

func TestFetchSessionsCompactedChurn(t *testing.T) {
	b := startBroker(t, "-shards", "1", "-segment-bytes", "1048576", "-max-message-bytes", "262144",
		"-compaction-interval", "200ms", "-http-addr", "127.0.0.1:0")
	const topic, keys = "csess", 100
	prod := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchMaxBytes(128<<10))
	adm := kadm.NewClient(prod)
	if _, err := adm.CreateTopic(testContext(t, 30*time.Second), 4, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"),
	}, topic); err != nil {
		t.Fatal(err)
	}
	cp := newCompParts()
	franz := &franzComp{
		cl: newFranz(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{}), kgo.FetchMaxWait(200*time.Millisecond)),
		v:  newCompView(t, "franz-go", cp),
	}
	ck, err := ckafka.NewConsumer(&ckafka.ConfigMap{
		"bootstrap.servers": b.addr, "group.id": "klite-csess", "enable.auto.commit": false, "fetch.wait.max.ms": 200,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	cons := []compConsumer{franz, &confluentComp{c: ck, v: newCompView(t, "librdkafka", cp)}}
	// Both consumers must reach every assigned partition's end by the
	// phase's deadline; then each key's latest record must have been read.
	catchUp := func(what string) {
		t.Helper()
		ctx := testContext(t, time.Minute)
		for _, c := range cons {
			for !c.view().caughtUp() {
				if ctx.Err() != nil {
					t.Fatalf("%s: %s did not catch up (at %v, ends %v)", what, c.view().name, c.view().last, cp.hwm)
				}
				c.poll(ctx)
			}
			c.view().check(what)
		}
	}
	assign := func(from map[int32]int64) {
		for _, c := range cons {
			c.assign(topic, from)
		}
	}
	unassign := func(parts ...int32) {
		for _, c := range cons {
			c.unassign(topic, parts...)
		}
	}
	counter := func(name string, labels ...string) float64 {
		v, _ := metricValue(scrape(t, b.httpAddr()), name, labels...)
		return v
	}

	all4 := []int32{0, 1, 2, 3}
	cp.produce(t, prod, topic, all4, 0, 600, keys, false)
	assign(map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0})
	catchUp("first round")

	// Rewrites of every key, while the consumers read: cleanings start
	// under them.
	cp.produce(t, prod, topic, all4, 600, 600, keys, false)
	cp.produce(t, prod, topic, all4, 1200, 600, keys, true)
	catchUp("rewrites")
	waitFor(t, time.Minute, "a cleaning", func() bool { return counter("klite_compaction_cleanings_total") > 0 })

	// Churn: the topic grows by two partitions, both join the assignment
	// from 0, partition 1 leaves it while records arrive.
	if _, err := adm.CreatePartitions(testContext(t, 30*time.Second), 2, topic); err != nil {
		t.Fatal(err)
	}
	// A new producer: the old one's metadata has 4 partitions.
	prod = newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchMaxBytes(128<<10))
	unassign(1)
	assign(map[int32]int64{4: 0, 5: 0})
	all6 := []int32{0, 1, 2, 3, 4, 5}
	cp.produce(t, prod, topic, all6, 1800, 400, keys, false)
	catchUp("grown to 6, without 1")

	// Partition 1 returns at offset 0 once compaction has removed some of
	// it: the consumers re-read its compacted log inside their sessions.
	waitFor(t, time.Minute, "partition 1 compacted", func() bool {
		return countFrom(t, b.addr, topic, 1, cp.hwm[1]) < len(cp.recs[1])
	})
	unassign(0)
	assign(map[int32]int64{1: 0})
	cp.produce(t, prod, topic, all6, 2200, 400, keys, false)
	catchUp("1 back from 0, 0 gone")
	for _, c := range cons {
		if v := c.view(); v.read[1] >= len(cp.recs[1]) {
			t.Errorf("%s re-read %d records of partition 1, produced %d: not compacted", v.name, v.read[1], len(cp.recs[1]))
		} else {
			t.Logf("%s re-read %d of %d records of partition 1", v.name, v.read[1], len(cp.recs[1]))
		}
	}

	// More cleanings while the consumers idle at the end, then one more
	// round: nobody stalls on a partition whose log moved under it.
	runs := counter("klite_compaction_cleanings_total")
	cp.produce(t, prod, topic, all6, 2600, 600, keys, false)
	waitFor(t, time.Minute, "another cleaning", func() bool { return counter("klite_compaction_cleanings_total") > runs })
	cp.produce(t, prod, topic, all6, 3200, 100, keys, false)
	catchUp("after more cleanings")

	fams := scrape(t, b.httpAddr())
	inc := mustValue(t, fams, "klite_fetch_session_requests_total", "kind", "incremental")
	full := mustValue(t, fams, "klite_fetch_session_requests_total", "kind", "full")
	less := mustValue(t, fams, "klite_fetch_session_requests_total", "kind", "sessionless")
	sess := mustValue(t, fams, "klite_fetch_sessions")
	t.Logf("fetches: %v incremental, %v full, %v sessionless; %v sessions cached; %v cleanings, %v records removed",
		inc, full, less, sess, mustValue(t, fams, "klite_compaction_cleanings_total"), mustValue(t, fams, "klite_compaction_removed_records_total"))
	if v, _ := metricValue(fams, "klite_requests_total", "api", "Fetch", "error", "none"); v+4 < inc+full+less {
		// Long polls in flight (at most one per client) are counted
		// when they begin, in klite_requests_total when answered.
		t.Errorf("%v Fetch requests answered without error, %v begun", v, inc+full+less)
	}
	if inc == 0 || sess == 0 {
		t.Fatalf("no incremental fetch session: %v incremental fetches, %v sessions", inc, sess)
	}
	b.stop()
}
