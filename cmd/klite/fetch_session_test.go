package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch sessions (KIP-227) against the real binary: real consumers whose
// assignment churns (partitions added and removed, topics created and
// deleted) read every record exactly once, and an incremental fetch with
// nothing new answers no partitions.

type churnTP struct {
	topic string
	part  int32
}

// churnCheck tracks what a consumer read: per partition, offsets must
// arrive in order without gaps or repeats, each value naming its place.
type churnCheck struct {
	t        *testing.T
	mu       sync.Mutex
	next     map[churnTP]int64 // next offset expected, guarded by mu
	produced map[churnTP]int64 // records produced, guarded by mu
	errs     int
}

func newChurnCheck(t *testing.T) *churnCheck {
	return &churnCheck{t: t, next: make(map[churnTP]int64), produced: make(map[churnTP]int64)}
}

func churnValue(tp churnTP, offset int64) string {
	return fmt.Sprintf("%s/%d/%d", tp.topic, tp.part, offset)
}

func (c *churnCheck) add(tp churnTP, offset int64, val []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if want := c.next[tp]; offset != want || string(val) != churnValue(tp, offset) {
		c.errs++
		if c.errs <= 20 {
			c.t.Errorf("%s/%d: got offset %d value %q, want offset %d", tp.topic, tp.part, offset, val, want)
		}
		return
	}
	c.next[tp] = offset + 1
}

func (c *churnCheck) at(tp churnTP) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next[tp]
}

// caughtUp reports whether every partition of tps has all its records.
func (c *churnCheck) caughtUp(tps []churnTP) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		if c.next[tp] != c.produced[tp] {
			return false
		}
	}
	return true
}

// produce writes n records to each partition of tps, in order, so record
// i of a partition lands at offset produced+i.
func (c *churnCheck) produce(t *testing.T, cl *kgo.Client, tps []churnTP, n int) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	for _, tp := range tps {
		c.mu.Lock()
		base := c.produced[tp]
		c.mu.Unlock()
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: tp.topic, Partition: tp.part, Value: []byte(churnValue(tp, base+int64(i)))}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce %v: %v", tp, err)
		}
		c.mu.Lock()
		c.produced[tp] = base + int64(n)
		c.mu.Unlock()
	}
}

func tpsOf(topic string, parts ...int32) []churnTP {
	out := make([]churnTP, len(parts))
	for i, p := range parts {
		out[i] = churnTP{topic, p}
	}
	return out
}

// churnConsumer is a consumer whose assignment the test changes.
type churnConsumer interface {
	assign(tps []churnTP, at func(churnTP) int64)
	unassign(tps []churnTP)
	poll(ctx context.Context, c *churnCheck)
}

// runChurn drives a consumer through assignment changes, producing between
// them, and checks it reads every record exactly once.
func runChurn(t *testing.T, addr string, cons churnConsumer) {
	prod := newFranz(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(prod)
	createTopic(t, adm, "a", 4)
	createTopic(t, adm, "b", 4)
	c := newChurnCheck(t)
	a, b, cTopic := tpsOf("a", 0, 1, 2, 3), tpsOf("b", 0, 1, 2, 3), tpsOf("c", 0, 1, 2)
	catchUp := func(what string, tps ...[]churnTP) {
		t.Helper()
		var all []churnTP
		for _, x := range tps {
			all = append(all, x...)
		}
		ctx := testContext(t, 60*time.Second)
		for !c.caughtUp(all) {
			if ctx.Err() != nil || t.Failed() {
				t.Fatalf("%s: consumer did not catch up", what)
			}
			cons.poll(ctx, c)
		}
	}
	c.produce(t, prod, append(append([]churnTP{}, a...), b...), 30)
	cons.assign(a, c.at)
	catchUp("a only", a)
	cons.assign(b, c.at)
	c.produce(t, prod, append(append([]churnTP{}, a...), b...), 20)
	catchUp("a and b", a, b)

	// Two partitions leave while records arrive, then come back where the
	// consumer left them.
	cons.unassign(a[2:])
	c.produce(t, prod, append(append([]churnTP{}, a...), b...), 20)
	catchUp("a without 2 and 3", a[:2], b)
	createTopic(t, adm, "c", 3)
	cons.assign(append(append([]churnTP{}, a[2:]...), cTopic...), c.at)
	c.produce(t, prod, append(append(append([]churnTP{}, a...), b...), cTopic...), 20)
	catchUp("a, b and new c", a, b, cTopic)

	// Topic b leaves the assignment and is deleted.
	cons.unassign(b)
	if _, err := adm.DeleteTopics(testContext(t, 30*time.Second), "b"); err != nil {
		t.Fatal(err)
	}
	c.produce(t, prod, append(append([]churnTP{}, a...), cTopic...), 20)
	catchUp("a and c after b deleted", a, cTopic)
}

// franzChurn is franz-go's direct consumer: fetch sessions by default.
type franzChurn struct {
	t  *testing.T
	cl *kgo.Client
}

func (f *franzChurn) assign(tps []churnTP, at func(churnTP) int64) {
	m := make(map[string]map[int32]kgo.Offset)
	for _, tp := range tps {
		if m[tp.topic] == nil {
			m[tp.topic] = make(map[int32]kgo.Offset)
		}
		m[tp.topic][tp.part] = kgo.NewOffset().At(at(tp))
	}
	f.cl.AddConsumePartitions(m)
}

func (f *franzChurn) unassign(tps []churnTP) {
	m := make(map[string][]int32)
	for _, tp := range tps {
		m[tp.topic] = append(m[tp.topic], tp.part)
	}
	f.cl.RemoveConsumePartitions(m)
}

func (f *franzChurn) poll(ctx context.Context, c *churnCheck) {
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	fs := f.cl.PollFetches(pctx)
	fs.EachRecord(func(r *kgo.Record) { c.add(churnTP{r.Topic, r.Partition}, r.Offset, r.Value) })
}

// fetchBytes counts Fetch requests by size, from franz-go's write hook.
type fetchBytes struct {
	small atomic.Int64 // requests under smallFetchBytes
	all   atomic.Int64
}

// smallFetchBytes: a fetch of 4+ partitions listed in full is larger; an
// incremental one with nothing changed is smaller.
const smallFetchBytes = 100

func (h *fetchBytes) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		h.all.Add(1)
		if n < smallFetchBytes {
			h.small.Add(1)
		}
	}
}

func TestFetchSessionChurnFranz(t *testing.T) {
	b := startBroker(t)
	hook := &fetchBytes{}
	cl := newFranz(t, b.addr,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{}),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.WithHooks(hook))
	fc := &franzChurn{t: t, cl: cl}
	runChurn(t, b.addr, fc)
	// With sessions, a caught-up consumer's fetches list no partitions:
	// it keeps long-polling, so one comes within a few polls.
	c := newChurnCheck(t)
	ctx := testContext(t, 30*time.Second)
	for hook.small.Load() == 0 && ctx.Err() == nil {
		fc.poll(ctx, c)
	}
	if hook.small.Load() == 0 {
		t.Fatalf("no incremental fetches among %d", hook.all.Load())
	}
}

// confluentChurn is librdkafka through confluent-kafka-go, assigned
// partitions incrementally. librdkafka (2.x, as bundled) does not use fetch
// sessions: it sends SessionEpoch -1, so this checks that sessionless
// fetches stay right on a broker that offers sessions.
type confluentChurn struct {
	t *testing.T
	c *ckafka.Consumer
}

func ckTPs(tps []churnTP, at func(churnTP) int64) []ckafka.TopicPartition {
	out := make([]ckafka.TopicPartition, len(tps))
	for i, tp := range tps {
		topic := tp.topic
		out[i] = ckafka.TopicPartition{Topic: &topic, Partition: tp.part}
		if at != nil {
			out[i].Offset = ckafka.Offset(at(tp))
		}
	}
	return out
}

func (k *confluentChurn) assign(tps []churnTP, at func(churnTP) int64) {
	if err := k.c.IncrementalAssign(ckTPs(tps, at)); err != nil {
		k.t.Fatal(err)
	}
}

func (k *confluentChurn) unassign(tps []churnTP) {
	if err := k.c.IncrementalUnassign(ckTPs(tps, nil)); err != nil {
		k.t.Fatal(err)
	}
}

func (k *confluentChurn) poll(_ context.Context, c *churnCheck) {
	switch e := k.c.Poll(200).(type) {
	case *ckafka.Message:
		c.add(churnTP{*e.TopicPartition.Topic, e.TopicPartition.Partition}, int64(e.TopicPartition.Offset), e.Value)
	case ckafka.Error:
		k.t.Logf("librdkafka: %v", e)
	}
}

func TestFetchSessionChurnConfluent(t *testing.T) {
	b := startBroker(t)
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{
		"bootstrap.servers":  b.addr,
		"group.id":           "klite-fetch-session", // required by the Go wrapper; offsets are assigned, never committed
		"enable.auto.commit": false,
		"fetch.wait.max.ms":  200,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	runChurn(t, b.addr, &confluentChurn{t: t, c: c})
}

// TestFetchSessionRawIncremental: a session's incremental fetch that
// changes nothing, with nothing new, answers an empty partition list; new
// data brings back exactly that partition.
func TestFetchSessionRawIncremental(t *testing.T) {
	b := startBroker(t)
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "raw", 8)
	ctx := testContext(t, 30*time.Second)
	td, err := adm.ListTopics(ctx, "raw")
	if err != nil {
		t.Fatal(err)
	}
	id := td["raw"].ID
	fetch := func(sessionID, epoch int32, parts ...int32) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version = 13
		req.MaxBytes, req.MinBytes, req.MaxWaitMillis = 1<<20, 0, 0
		req.SessionID, req.SessionEpoch = sessionID, epoch
		if len(parts) > 0 {
			rt := kmsg.NewFetchRequestTopic()
			rt.TopicID = id
			for _, p := range parts {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.PartitionMaxBytes = p, 1<<20
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, cl) // one broker: any is the leader
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != 0 {
			t.Fatalf("fetch %d/%d: error %d", sessionID, epoch, resp.ErrorCode)
		}
		return resp
	}
	full := fetch(0, 0, 0, 1, 2, 3, 4, 5, 6, 7)
	if full.SessionID == 0 || len(full.Topics) != 1 || len(full.Topics[0].Partitions) != 8 {
		t.Fatalf("full fetch: session %d, %+v", full.SessionID, full.Topics)
	}
	if resp := fetch(full.SessionID, 1); resp.SessionID != full.SessionID || len(resp.Topics) != 0 {
		t.Fatalf("incremental with no changes: session %d, %d topics", resp.SessionID, len(resp.Topics))
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "raw", Partition: 5, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	resp := fetch(full.SessionID, 2)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].Partition != 5 ||
		len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("incremental after produce to 5: %+v", resp.Topics)
	}
}

// cpuTicks is a process's user+system CPU time in clock ticks (1/100 s).
func cpuTicks(tb testing.TB, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name (which may hold spaces): utime and
	// stime are the 12th and 13th.
	rest := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	u, _ := strconv.ParseInt(rest[11], 10, 64)
	s, _ := strconv.ParseInt(rest[12], 10, 64)
	return u + s
}

// respBytes counts Fetch response bytes, from franz-go's read hook.
type respBytes struct{ n atomic.Int64 }

func (h *respBytes) OnBrokerRead(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		h.n.Add(int64(n))
	}
}

// BenchmarkFetchSession1000 is one consumer of 1,000 partitions fetching
// with MaxWait 0, without a session (every fetch lists every partition)
// and with one (each lists only what moved), against the real binary:
// request and response bytes per fetch and the broker's CPU per fetch.
// "idle": nothing new; "busy": one new record in one partition per fetch.
//
//	flock /tmp/bench.lock go test ./cmd/klite -run XXX -bench FetchSession1000 -benchtime 2000x
func BenchmarkFetchSession1000(b *testing.B) {
	const parts = 1000
	br := startBroker(b)
	hook := &respBytes{}
	cl := newFranz(b, br.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.WithHooks(hook))
	adm := kadm.NewClient(cl)
	createTopic(b, adm, "k1000", parts)
	ctx := testContext(b, 10*time.Minute)
	td, err := adm.ListTopics(ctx, "k1000")
	if err != nil {
		b.Fatal(err)
	}
	id := td["k1000"].ID
	offsets := make([]int64, parts)
	for _, busy := range []bool{false, true} {
		for _, session := range []bool{false, true} {
			name := map[bool]string{false: "idle", true: "busy"}[busy] + "/" + map[bool]string{false: "sessionless", true: "session"}[session]
			b.Run(name, func(b *testing.B) {
				var sessionID, epoch int32 = 0, -1
				if session {
					epoch = 0
				}
				changed := make([]int32, 0, parts)
				for p := range int32(parts) {
					changed = append(changed, p)
				}
				var reqBytes int64
				fetch := func() {
					req := kmsg.NewPtrFetchRequest()
					req.Version = 13
					req.MaxBytes, req.MinBytes, req.MaxWaitMillis = 50<<20, 0, 0
					req.SessionID, req.SessionEpoch = sessionID, epoch
					list := changed
					if !session {
						list = list[:0:0]
						for p := range int32(parts) {
							list = append(list, p)
						}
					}
					if len(list) > 0 {
						rt := kmsg.NewFetchRequestTopic()
						rt.TopicID = id
						for _, p := range list {
							rp := kmsg.NewFetchRequestTopicPartition()
							rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, offsets[p], 1<<20
							rt.Partitions = append(rt.Partitions, rp)
						}
						req.Topics = []kmsg.FetchRequestTopic{rt}
					}
					reqBytes += int64(len(req.AppendTo(nil)))
					resp, err := req.RequestWith(ctx, cl)
					if err != nil || resp.ErrorCode != 0 {
						b.Fatalf("fetch: %v %d", err, resp.ErrorCode)
					}
					changed = changed[:0]
					for _, t := range resp.Topics {
						for _, p := range t.Partitions {
							if len(p.RecordBatches) > 0 {
								offsets[p.Partition] = p.HighWatermark
								changed = append(changed, p.Partition)
							}
						}
					}
					if session {
						sessionID, epoch = resp.SessionID, epoch+1
					}
				}
				fetch() // the session's full fetch, or a warm-up
				reqBytes = 0
				hook.n.Store(0)
				cpu0 := cpuTicks(b, br.cmd.Process.Pid)
				b.ResetTimer()
				for i := range b.N {
					if busy {
						b.StopTimer()
						if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "k1000", Partition: int32(i % parts), Value: []byte("x")}).FirstErr(); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					fetch()
				}
				b.StopTimer()
				cpu := cpuTicks(b, br.cmd.Process.Pid) - cpu0
				b.ReportMetric(float64(reqBytes)/float64(b.N), "req-B/fetch")
				b.ReportMetric(float64(hook.n.Load())/float64(b.N), "resp-B/fetch")
				b.ReportMetric(float64(cpu)*10e3/float64(b.N), "broker-µs/fetch")
			})
		}
	}
}

// TestFetchSessionCacheBudget: -max-fetch-session-cache-partitions bounds
// the sessions of every client together. A session that does not fit is
// not created (the fetch is served in full, session 0), one that grows past
// the budget is closed, and a franz-go consumer denied a session still
// reads every record with full fetches.
func TestFetchSessionCacheBudget(t *testing.T) {
	b := startBroker(t, "-max-fetch-session-cache-partitions", "20")
	hook := &fetchBytes{}
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "budget", 24)
	ctx := testContext(t, 30*time.Second)
	td, err := adm.ListTopics(ctx, "budget")
	if err != nil {
		t.Fatal(err)
	}
	id := td["budget"].ID
	fetch := func(sessionID, epoch int32, from, to int32) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version = 13
		req.MaxBytes, req.MinBytes, req.MaxWaitMillis = 1<<20, 0, 0
		req.SessionID, req.SessionEpoch = sessionID, epoch
		if from < to {
			rt := kmsg.NewFetchRequestTopic()
			rt.TopicID = id
			for p := from; p < to; p++ {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.PartitionMaxBytes = p, 1<<20
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	parts := func(r *kmsg.FetchResponse) int {
		n := 0
		for _, t := range r.Topics {
			n += len(t.Partitions)
		}
		return n
	}
	// 12 partitions of one topic cost 13 of 20.
	a := fetch(0, 0, 0, 12)
	if a.ErrorCode != 0 || a.SessionID == 0 || parts(a) != 12 {
		t.Fatalf("first session: error %d, id %d, %d partitions", a.ErrorCode, a.SessionID, parts(a))
	}
	// 8 more would cost 9: over the budget, and a is too young to evict.
	if r := fetch(0, 0, 12, 20); r.ErrorCode != 0 || r.SessionID != 0 || parts(r) != 8 {
		t.Fatalf("second session past the budget: error %d, id %d, %d partitions", r.ErrorCode, r.SessionID, parts(r))
	}
	// a grows by 8 to 20 partitions, cost 21: closed, served sessionless.
	if r := fetch(a.SessionID, 1, 12, 20); r.ErrorCode != 0 || r.SessionID != 0 || parts(r) != 8 {
		t.Fatalf("growth past the budget: error %d, id %d, %d partitions", r.ErrorCode, r.SessionID, parts(r))
	}
	if r := fetch(a.SessionID, 2, 0, 0); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("grown session still there: error %d", r.ErrorCode)
	}

	// A consumer of all 24 partitions (cost 25) never gets a session.
	const records = 240
	for i := range records {
		cl.Produce(ctx, &kgo.Record{Topic: "budget", Partition: int32(i % 24), Value: []byte("x")}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cons := newFranz(t, b.addr, kgo.ConsumeTopics("budget"), kgo.FetchMaxWait(100*time.Millisecond), kgo.WithHooks(hook))
	got := 0
	for got < records && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		fs.EachError(func(topic string, p int32, err error) { t.Errorf("%s/%d: %v", topic, p, err) })
		got += fs.NumRecords()
	}
	// Idle at the tail for a few fetches: with a session they would be
	// incremental and list nothing.
	for hook.all.Load() < 5 && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		got += cons.PollFetches(pctx).NumRecords()
		cancel()
	}
	if got != records || hook.all.Load() == 0 || hook.small.Load() != 0 {
		t.Fatalf("read %d of %d records; %d fetches, %d incremental", got, records, hook.all.Load(), hook.small.Load())
	}
}
