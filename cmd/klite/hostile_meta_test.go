package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// metaTopicState is what a client knows of one topic name: whether it
// exists, its id, partition count and retention.ms (as set, "" for none).
type metaTopicState struct {
	exists    bool
	id        [16]byte
	parts     int32
	retention string
}

func (s metaTopicState) String() string {
	if !s.exists {
		return "absent"
	}
	return fmt.Sprintf("id %x, %d partitions, retention.ms %q", s.id[:4], s.parts, s.retention)
}

// metaFloodWorker owns a few topic names and changes them one request at a
// time; acked is the state after its last acknowledged change, pending the
// state its unanswered change would make (when the broker died under it).
func (w *metaFloodWorker) done() int64 { return w.ops.Load() }

type metaFloodWorker struct {
	names   []string
	acked   map[string]metaTopicState
	pending map[string]*metaTopicState
	ops     atomic.Int64 // read by the test while the worker runs
}

// run changes the worker's topics until a request fails without a Kafka
// answer (the broker is gone) or ctx ends.
func (w *metaFloodWorker) run(ctx context.Context, t *testing.T, cl *kgo.Client, rng *rand.Rand) {
	for ctx.Err() == nil {
		name := w.names[rng.IntN(len(w.names))]
		cur := w.acked[name]
		next := cur
		var req kmsg.Request
		switch {
		case !cur.exists:
			r := kmsg.NewPtrCreateTopicsRequest()
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, int32(1+rng.IntN(3)), 1
			next = metaTopicState{exists: true, parts: rt.NumPartitions}
			if rng.IntN(2) == 0 {
				c := kmsg.NewCreateTopicsRequestTopicConfig()
				c.Name, c.Value = "retention.ms", kmsg.StringPtr(strconv.Itoa(1000+rng.IntN(1e6)))
				rt.Configs = append(rt.Configs, c)
				next.retention = *c.Value
			}
			r.Topics = append(r.Topics, rt)
			req = r
		case rng.IntN(3) == 0:
			r := kmsg.NewPtrDeleteTopicsRequest()
			r.TopicNames = []string{name}
			rt := kmsg.NewDeleteTopicsRequestTopic()
			rt.Topic = kmsg.StringPtr(name)
			r.Topics = append(r.Topics, rt)
			next = metaTopicState{}
			req = r
		case rng.IntN(2) == 0:
			r := kmsg.NewPtrCreatePartitionsRequest()
			rt := kmsg.NewCreatePartitionsRequestTopic()
			rt.Topic, rt.Count = name, cur.parts+1
			r.Topics = append(r.Topics, rt)
			next.parts++
			req = r
		default:
			r := kmsg.NewPtrIncrementalAlterConfigsRequest()
			rr := kmsg.NewIncrementalAlterConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, name
			c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			c.Name, c.Value = "retention.ms", kmsg.StringPtr(strconv.Itoa(1000+rng.IntN(1e6)))
			rr.Configs = append(rr.Configs, c)
			r.Resources = append(r.Resources, rr)
			next.retention = *c.Value
			req = r
		}
		resp, err := cl.Request(ctx, req)
		if err != nil {
			w.pending[name] = &next
			return
		}
		var code int16
		switch resp := resp.(type) {
		case *kmsg.CreateTopicsResponse:
			code = resp.Topics[0].ErrorCode
			next.id = resp.Topics[0].TopicID
		case *kmsg.DeleteTopicsResponse:
			code = resp.Topics[0].ErrorCode
		case *kmsg.CreatePartitionsResponse:
			code = resp.Topics[0].ErrorCode
		case *kmsg.IncrementalAlterConfigsResponse:
			code = resp.Resources[0].ErrorCode
		}
		if code != 0 {
			t.Errorf("%s on %s (%v): %v", kmsg.NameForKey(req.Key()), name, cur, kerr.ErrorForCode(code))
			return
		}
		w.acked[name] = next
		w.ops.Add(1)
	}
}

// Many connections create, delete, recreate, grow and reconfigure topics at
// once; the broker is killed with SIGKILL in the middle. After restart every
// acknowledged change is there and each unanswered one is whole or absent.
func TestMetadataFloodKill9(t *testing.T) {
	workers, namesPer, rounds, perRound := 12, 3, envInt("KLITE_FLOOD_ROUNDS", 3), envInt("KLITE_FLOOD_OPS", 5)
	b := startBroker(t)
	ws := make([]*metaFloodWorker, workers)
	for i := range ws {
		w := &metaFloodWorker{acked: map[string]metaTopicState{}, pending: map[string]*metaTopicState{}}
		for j := range namesPer {
			w.names = append(w.names, fmt.Sprintf("flood-%d.%d", i, j))
		}
		ws[i] = w
	}
	for round := range rounds {
		if !floodRound(t, b, ws, round, perRound, "changes", kgo.DisableIdempotentWrite()) {
			return
		}
		got := describeAll(t, b.addr)
		total := 0
		for _, w := range ws {
			total += int(w.ops.Load())
			for _, name := range w.names {
				have, want := got[name], w.acked[name]
				p := w.pending[name]
				switch {
				case sameTopic(have, want):
				case p != nil && sameTopic(have, *p):
					w.acked[name] = have // the unanswered change was made
				default:
					t.Errorf("round %d: %s after restart: %v; acked %v, pending %v", round, name, have, want, p)
				}
				delete(w.pending, name)
			}
		}
		t.Logf("round %d: %d acknowledged changes so far", round, total)
		if t.Failed() {
			return
		}
	}
}

func sameTopic(have, want metaTopicState) bool {
	if !have.exists || !want.exists {
		return have.exists == want.exists
	}
	// A pending create's id is unknown.
	return (want.id == [16]byte{} || have.id == want.id) && have.parts == want.parts && have.retention == want.retention
}

// describeAll reads every topic's id, partition count and retention.ms.
func describeAll(t *testing.T, addr string) map[string]metaTopicState {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	cl := newFranz(t, addr)
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]metaTopicState{}
	dc := kmsg.NewPtrDescribeConfigsRequest()
	for _, mt := range md.Topics {
		if mt.IsInternal {
			continue // __consumer_offsets: not a topic clients made
		}
		out[*mt.Topic] = metaTopicState{exists: true, id: mt.TopicID, parts: int32(len(mt.Partitions))}
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, *mt.Topic
		r.ConfigNames = []string{"retention.ms"}
		dc.Resources = append(dc.Resources, r)
	}
	dresp, err := dc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range dresp.Resources {
		s := out[r.ResourceName]
		for _, c := range r.Configs {
			if c.Name == "retention.ms" && c.Source == kmsg.ConfigSourceDynamicTopicConfig && c.Value != nil {
				s.retention = *c.Value
			}
		}
		out[r.ResourceName] = s
	}
	return out
}

// IncrementalAlterConfigs APPEND and SUBTRACT of LIST configs are linear in
// the list's length: one request appending a million elements (9 MB, well
// inside the request limit) is answered (INVALID_CONFIG: the result is over
// the value limit), where a quadratic merge held a core and every other
// config change (alterMu) for most of an hour.
func TestAlterConfigsLongListAppend(t *testing.T) {
	const n, name = 1_000_000, "follower.replication.throttled.replicas"
	b := startBroker(t)
	cl := newFranz(t, b.addr)
	ctx := testContext(t, time.Minute)
	createTopic(t, kadm.NewClient(cl), "lists", 1)
	list := func(from, to int) string {
		var sb []byte
		for i := from; i < to; i++ {
			if i > from {
				sb = append(sb, ',')
			}
			sb = strconv.AppendInt(sb, int64(i), 10)
			sb = append(sb, ":1"...)
		}
		return string(sb)
	}
	alter := func(op kmsg.IncrementalAlterConfigOp, value string) error {
		t.Helper()
		r := kmsg.NewPtrIncrementalAlterConfigsRequest()
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "lists"
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op, c.Value = name, op, kmsg.StringPtr(value)
		rr.Configs = append(rr.Configs, c)
		r.Resources = append(r.Resources, rr)
		resp, err := r.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("%v of %d bytes: %v", op, len(value), err)
		}
		return kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	if err := alter(kmsg.IncrementalAlterConfigOpAppend, list(0, n)); err != kerr.InvalidConfig {
		t.Fatalf("appending %d elements: %v, want INVALID_CONFIG", n, err)
	}
	if err := alter(kmsg.IncrementalAlterConfigOpAppend, list(0, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := alter(kmsg.IncrementalAlterConfigOpSubtract, list(1, n)); err != nil {
		t.Fatal(err)
	}
	rc, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, "lists")
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.On("lists", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Configs {
		if e.Key == name && (e.Value == nil || *e.Value != "0:1") {
			t.Fatalf("%s after appending 1000 elements and subtracting all but the first: %v", name, e.MaybeValue())
		}
	}
}

// A topic config value is at most 32767 bytes, the longest string the
// non-flexible versions of the config APIs carry: a longer one is
// INVALID_CONFIG from CreateTopics and IncrementalAlterConfigs, and one at
// the limit is described to an old (DescribeConfigs v2) client. Before, a
// 40000-byte value was stored, and every DescribeConfigs v0-3 of the topic
// then answered a frame the client could not parse.
func TestConfigValueLimit(t *testing.T) {
	b := startBroker(t)
	cl := newFranz(t, b.addr)
	ctx := testContext(t, 30*time.Second)
	const key = "follower.replication.throttled.replicas" // free-form and still described (Kafka 4.0 dropped message.format.version)
	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "long-value", 1, 1
	cc := kmsg.NewCreateTopicsRequestTopicConfig()
	cc.Name, cc.Value = key, kmsg.StringPtr(strings.Repeat("v", 40000))
	ct.Configs = append(ct.Configs, cc)
	create.Topics = append(create.Topics, ct)
	cresp, err := create.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(cresp.Topics[0].ErrorCode); err != kerr.InvalidConfig {
		t.Fatalf("create with a 40000-byte config value: %v, want INVALID_CONFIG", err)
	}
	createTopic(t, kadm.NewClient(cl), "long-value", 1)
	for _, size := range []int{40000, 32767} {
		r := kmsg.NewPtrIncrementalAlterConfigsRequest()
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "long-value"
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = key, kmsg.StringPtr(strings.Repeat("v", size))
		rr.Configs = append(rr.Configs, c)
		r.Resources = append(r.Resources, rr)
		resp, err := r.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		want := error(nil)
		if size > 32767 {
			want = kerr.InvalidConfig
		}
		if err := kerr.ErrorForCode(resp.Resources[0].ErrorCode); err != want {
			t.Fatalf("setting a %d-byte value: %v, want %v", size, err, want)
		}
	}
	old := newFranz(t, b.addr, kgo.MaxVersions(kversion.V2_0_0()))
	d := kmsg.NewPtrDescribeConfigsRequest()
	dr := kmsg.NewDescribeConfigsRequestResource()
	dr.ResourceType, dr.ResourceName = kmsg.ConfigResourceTypeTopic, "long-value"
	d.Resources = append(d.Resources, dr)
	dresp, err := d.RequestWith(ctx, old)
	if err != nil {
		t.Fatalf("DescribeConfigs v2: %v", err)
	}
	found := false
	for _, c := range dresp.Resources[0].Configs {
		if c.Name == key {
			found = c.Value != nil && len(*c.Value) == 32767
		}
	}
	if !found {
		t.Fatalf("DescribeConfigs v2 does not show the 32767-byte %s", key)
	}
}

// Creates and partition adds racing from many connections never pass
// -max-partitions together, and what was acknowledged is what a restart
// finds.
func TestPartitionCapRace(t *testing.T) {
	const limit, workers, perTopic = 60, 16, 7
	b := startBroker(t, "-max-partitions", strconv.Itoa(limit))
	ctx := testContext(t, time.Minute)
	var mu sync.Mutex
	acked := map[string]int32{}
	var wg sync.WaitGroup
	for w := range workers {
		cl := newFranz(t, b.addr)
		wg.Go(func() {
			for i := range 4 {
				name := fmt.Sprintf("cap-%d-%d", w, i)
				r := kmsg.NewPtrCreateTopicsRequest()
				rt := kmsg.NewCreateTopicsRequestTopic()
				rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, perTopic, 1
				r.Topics = append(r.Topics, rt)
				resp, err := r.RequestWith(ctx, cl)
				if err != nil {
					t.Error(err)
					return
				}
				if resp.Topics[0].ErrorCode != 0 {
					continue
				}
				mu.Lock()
				acked[name] = perTopic
				mu.Unlock()
				g := kmsg.NewPtrCreatePartitionsRequest()
				gt := kmsg.NewCreatePartitionsRequestTopic()
				gt.Topic, gt.Count = name, perTopic+3
				g.Topics = append(g.Topics, gt)
				gresp, err := g.RequestWith(ctx, cl)
				if err != nil {
					t.Error(err)
					return
				}
				if gresp.Topics[0].ErrorCode == 0 {
					mu.Lock()
					acked[name] = perTopic + 3
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	total := int32(0)
	for _, n := range acked {
		total += n
	}
	if total > limit || total < limit-perTopic {
		t.Fatalf("acknowledged %d partitions with -max-partitions %d", total, limit)
	}
	b.kill9()
	b.restart()
	got := describeAll(t, b.addr)
	if len(got) != len(acked) {
		t.Errorf("%d topics after restart, %d acknowledged", len(got), len(acked))
	}
	for name, n := range acked {
		if got[name].parts != n {
			t.Errorf("%s: %d partitions after restart, %d acknowledged", name, got[name].parts, n)
		}
	}
}

// A topic is deleted and recreated under a producer, then the broker is
// killed with SIGKILL mid-produce: it restarts, and every record acknowledged
// after the last create is in the last topic once, at offsets without gaps.
func TestRecreateUnderProducerKill9(t *testing.T) {
	const topic, cycles = "recreated", 3
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)
	createTopic(t, adm, topic, 2)
	// franz-go keeps a topic's first id and fails a recreated topic with
	// UNKNOWN_TOPIC_ID (by design): the producer takes a new client after
	// an error.
	newProducer := func() *kgo.Client {
		return newFranz(t, b.addr, kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordRetries(1), kgo.RecordDeliveryTimeout(2*time.Second), kgo.RetryTimeout(2*time.Second))
	}
	prod := newProducer()

	var mu sync.Mutex
	final := false     // the last create is acknowledged
	var after []string // records acknowledged that started after it
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var produced atomic.Int64
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			isFinal := final
			mu.Unlock()
			v := "r" + strconv.Itoa(i)
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := prod.ProduceSync(pctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr()
			cancel()
			if err != nil {
				prod.Close()
				prod = newProducer()
			}
			if err == nil {
				produced.Add(1)
				if isFinal {
					mu.Lock()
					after = append(after, v)
					mu.Unlock()
				}
			}
		}
	})
	for c := range cycles {
		waitFor(t, 30*time.Second, "records", func() bool { return produced.Load() > int64(10*c) })
		if _, err := adm.DeleteTopic(ctx, topic); err != nil {
			t.Fatal(err)
		}
		createTopic(t, adm, topic, 2)
	}
	mu.Lock()
	final = true
	mu.Unlock()
	waitFor(t, 30*time.Second, "records in the last topic", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(after) > 50
	})
	b.kill9()
	close(stop)
	wg.Wait()
	b.restart()

	cons := newFranz(t, b.addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	seen := map[string]int{}
	next := map[int32]int64{}
	for n := int64(0); n < total; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next[r.Partition] {
				t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition]++
			seen[string(r.Value)]++
			n++
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for _, v := range after {
		if seen[v] != 1 {
			t.Errorf("record %s acknowledged after the last create: %d times in the topic", v, seen[v])
		}
	}
	t.Logf("%d records produced, %d after the last create, %d in the last topic", produced.Load(), len(after), total)
}
