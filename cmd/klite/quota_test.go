package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Client quotas altered through kadm are described with filters, a
// validate-only alter changes nothing, bad keys are refused, and every
// acknowledged change is back after kill -9 and a restart.
func TestClientQuotasDurableKadm(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)
	str := func(s string) *string { return &s }
	user := func(name *string) kadm.ClientQuotaEntityComponent {
		return kadm.ClientQuotaEntityComponent{Type: "user", Name: name}
	}
	client := func(name *string) kadm.ClientQuotaEntityComponent {
		return kadm.ClientQuotaEntityComponent{Type: "client-id", Name: name}
	}
	set := func(k string, v float64) kadm.AlterClientQuotaOp { return kadm.AlterClientQuotaOp{Key: k, Value: v} }
	alter := func(validate bool, entries ...kadm.AlterClientQuotaEntry) kadm.AlteredClientQuotas {
		t.Helper()
		f := adm.AlterClientQuotas
		if validate {
			f = adm.ValidateAlterClientQuotas
		}
		res, err := f(ctx, entries)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	describe := func(strict bool, comps ...kadm.DescribeClientQuotaComponent) []string {
		t.Helper()
		res, err := adm.DescribeClientQuotas(ctx, strict, comps)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, q := range res {
			out = append(out, q.Entity.String()+" "+kadmValues(q.Values))
		}
		return out
	}

	res := alter(false,
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(str("alice"))}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1<<20)}},
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(nil)}, Ops: []kadm.AlterClientQuotaOp{set("consumer_byte_rate", 2<<20)}},
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(str("alice")), client(str("app"))},
			Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 4096), set("request_percentage", 25.5)}},
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{client(nil)}, Ops: []kadm.AlterClientQuotaOp{set("consumer_byte_rate", 512)}},
	)
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("alter %s: %v %s", r.Entity, r.Err, r.ErrMessage)
		}
	}
	bad := alter(false, kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(str("bob"))}, Ops: []kadm.AlterClientQuotaOp{set("no_such_rate", 1)}})
	if bad[0].Err != kerr.InvalidRequest {
		t.Fatalf("unknown key: %v, want INVALID_REQUEST", bad[0].Err)
	}
	val := alter(true, kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(str("carol"))}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1)}})
	if val[0].Err != nil {
		t.Fatalf("validate only: %v", val[0].Err)
	}

	all := []string{
		"{client-id=<default>} consumer_byte_rate=512",
		"{user=<default>} consumer_byte_rate=2097152",
		"{user=alice} producer_byte_rate=1048576",
		"{user=alice, client-id=app} producer_byte_rate=4096 request_percentage=25.5",
	}
	check := func(when string) {
		t.Helper()
		if got := describe(false); !reflect.DeepEqual(got, all) {
			t.Fatalf("%s: all quotas %q\nwant %q", when, got, all)
		}
		if got, want := describe(true, kadm.DescribeClientQuotaComponent{Type: "user", MatchName: str("alice")}),
			[]string{"{user=alice} producer_byte_rate=1048576"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: strict user=alice: %q, want %q", when, got, want)
		}
		if got, want := describe(false, kadm.DescribeClientQuotaComponent{Type: "user", MatchType: 1}),
			[]string{"{user=<default>} consumer_byte_rate=2097152"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: user default: %q, want %q", when, got, want)
		}
	}
	check("after alter")
	b.kill9()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	check("after kill -9 and restart")

	// Removing the last key of an entity removes it, durably.
	res = alter(false, kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{client(nil)},
		Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Remove: true}}})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	all = all[1:]
	b.kill9()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	check("after a remove, kill -9 and restart")
}

func kadmValues(vs kadm.ClientQuotaValues) string {
	s := ""
	for i, v := range vs {
		if i > 0 {
			s += " "
		}
		s += v.Key + "=" + strconv.FormatFloat(v.Value, 'f', -1, 64)
	}
	return s
}

// throttleHook counts the throttles a franz-go client is told of.
type throttleHook struct {
	n     atomic.Int64
	total atomic.Int64 // ns
}

func (h *throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	if d > 0 {
		h.n.Add(1)
		h.total.Add(int64(d))
	}
}

// A franz-go producer and consumer whose client ids have byte-rate quotas
// are throttled (KIP-219: throttle_time_ms, connection muted) and move
// bytes near their quota; clients without a quota are never throttled.
// What is checked is that the throttle is reported, never how long
// anything took.
func TestClientQuotasEnforcedFranz(t *testing.T) {
	const (
		quota   = 32 << 10 // bytes per second
		window  = 100 * time.Millisecond
		samples = 11
		recSize = 2 << 10
		records = 32 // 64 KiB: twice the quota
	)
	b := startBroker(t, "-quota-window", window.String(), "-quota-window-samples", strconv.Itoa(samples))
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)
	createTopic(t, adm, "q", 1)
	setQuota(t, ctx, adm, "client-id", "slow-producer", "producer_byte_rate", quota)
	setQuota(t, ctx, adm, "client-id", "slow-consumer", "consumer_byte_rate", quota)
	produce := func(clientID string) (*throttleHook, int64, time.Duration) {
		t.Helper()
		hook := &throttleHook{}
		cl := newFranz(t, b.addr, kgo.ClientID(clientID), kgo.DefaultProduceTopic("q"), kgo.WithHooks(hook))
		start := time.Now()
		var n int64
		for i := range records {
			v := make([]byte, recSize)
			_, _ = rand.Read(v) // incompressible: the quota counts bytes on the wire
			v[0] = byte(i)
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr(); err != nil {
				t.Fatalf("%s: produce: %v", clientID, err)
			}
			n += recSize
		}
		return hook, n, time.Since(start)
	}
	free, _, _ := produce("free-producer")
	if free.n.Load() != 0 {
		t.Fatalf("a producer without a quota was throttled %d times", free.n.Load())
	}
	slow, n, took := produce("slow-producer")
	if slow.n.Load() == 0 {
		t.Fatalf("a producer with producer_byte_rate %d moved %d bytes in %v and was never throttled", quota, n, took)
	}
	t.Logf("producer: %d bytes in %v (%.0f B/s, quota %d), %d throttles", n, took, float64(n)/took.Seconds(), quota, slow.n.Load())

	consume := func(clientID string) (*throttleHook, int64, time.Duration) {
		t.Helper()
		hook := &throttleHook{}
		cl := newFranz(t, b.addr, kgo.ClientID(clientID), kgo.ConsumeTopics("q"), kgo.WithHooks(hook),
			kgo.FetchMaxBytes(16<<10), kgo.FetchMaxPartitionBytes(16<<10))
		start := time.Now()
		var n int64
		for got := 0; got < 2*records; {
			fs := cl.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatalf("%s: poll: %v", clientID, err)
			}
			fs.EachRecord(func(r *kgo.Record) { n += int64(len(r.Value)); got++ })
		}
		return hook, n, time.Since(start)
	}
	freeC, _, _ := consume("free-consumer")
	if freeC.n.Load() != 0 {
		t.Fatalf("a consumer without a quota was throttled %d times", freeC.n.Load())
	}
	slowC, n, took := consume("slow-consumer")
	if slowC.n.Load() == 0 {
		t.Fatalf("a consumer with consumer_byte_rate %d moved %d bytes in %v and was never throttled", quota, n, took)
	}
	t.Logf("consumer: %d bytes in %v (%.0f B/s, quota %d), %d throttles", n, took, float64(n)/took.Seconds(), quota, slowC.n.Load())
}

// Client quotas are in the bucket's metadata snapshot: klite started on
// an empty data directory with the same bucket has them back.
func TestClientQuotasDisasterRecovery(t *testing.T) {
	endpoint := startS3(t)
	b := startBroker(t, tierFlags(endpoint)...)
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, 2*time.Minute)
	createTopic(t, adm, "dr-quota", 1)
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: kadm.ClientQuotaEntity{{Type: "user", Name: kadm.StringPtr("alice")}, {Type: "client-id"}},
			Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 4096}}},
	})
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("AlterClientQuotas: %v %+v", err, res)
	}
	b.stop() // the final snapshot
	b.restoreEmpty()
	adm = kadm.NewClient(newFranz(t, b.addr))
	desc, err := adm.DescribeClientQuotas(ctx, false, nil)
	if err != nil || len(desc) != 1 || desc[0].Entity.String() != "{user=alice, client-id=<default>}" ||
		len(desc[0].Values) != 1 || desc[0].Values[0] != (kadm.ClientQuotaValue{Key: "producer_byte_rate", Value: 4096}) {
		t.Fatalf("quotas after the restore: %v %+v", err, desc)
	}
	b.stop()
}

// A user quota applies to the SASL principal: alice, with
// producer_byte_rate, is throttled whatever her client id; bob, on the
// same client id, is not.
func TestClientQuotasPerSASLUser(t *testing.T) {
	const quota = 32 << 10
	b := startSASLBroker(t, "-quota-window", "100ms", "-quota-window-samples", "11")
	adm := kadm.NewClient(newFranzSASL(t, b.addr, "SCRAM-SHA-256", alice))
	ctx := testContext(t, time.Minute)
	createTopic(t, adm, "q", 1)
	setQuota(t, ctx, adm, "user", "alice", "producer_byte_rate", quota)
	throttles := func(u saslUser) int64 {
		hook := &throttleHook{}
		cl := newFranzSASL(t, b.addr, "PLAIN", u, kgo.ClientID("shared-id"), kgo.DefaultProduceTopic("q"), kgo.WithHooks(hook))
		for range 32 { // 64 KiB: twice the quota
			v := make([]byte, 2<<10)
			_, _ = rand.Read(v)
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr(); err != nil {
				t.Fatalf("%s: produce: %v", u.name, err)
			}
		}
		return hook.n.Load()
	}
	if n := throttles(bob); n != 0 {
		t.Fatalf("bob, without a quota, was throttled %d times", n)
	}
	if n := throttles(alice); n == 0 {
		t.Fatal("alice, with producer_byte_rate, was never throttled")
	}
}

// request_percentage (KIP-124) against the real binary: a franz-go client
// whose client id has a request_percentage far below what any request
// costs is told of throttles (throttle_time_ms through its broker-throttle
// hook) and still gets every record in; a client without the quota, on the
// same broker at the same time, is never throttled. What is checked is
// that throttles are reported, never how long anything took.
func TestRequestPercentageEnforcedFranz(t *testing.T) {
	b := startBroker(t, "-quota-window", "50ms", "-quota-window-samples", "11")
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)
	createTopic(t, adm, "rq", 1)
	setQuota(t, ctx, adm, "client-id", "busy-client", "request_percentage", 0.0001)
	run := func(clientID string) *throttleHook {
		hook := &throttleHook{}
		cl := newFranz(t, b.addr, kgo.ClientID(clientID), kgo.DefaultProduceTopic("rq"), kgo.WithHooks(hook))
		for i := range 20 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
				t.Fatalf("%s: produce: %v", clientID, err)
			}
		}
		return hook
	}
	if n := run("idle-client").n.Load(); n != 0 {
		t.Fatalf("a client without request_percentage was throttled %d times", n)
	}
	busy := run("busy-client")
	if busy.n.Load() == 0 {
		t.Fatal("a client with request_percentage 0.0001 was never throttled")
	}
	t.Logf("busy-client: %d throttles, %v in all", busy.n.Load(), time.Duration(busy.total.Load()))
	// Every record arrived: a throttle delays, never drops.
	offs, err := adm.ListEndOffsets(ctx, "rq")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offs.Lookup("rq", 0); o.Offset != 40 {
		t.Fatalf("end offset %d, want 40", o.Offset)
	}
}

// request_percentage on a user applies to the SASL principal: alice,
// under the user-default request quota, is throttled whatever her client
// id and mechanism, and a second client of hers authenticates and works
// while she is over it; bob, on the same client id, has his own user
// quota far above what he uses and is never throttled (the more specific
// entity wins). TestRequestPercentageExemptBeforeSASL (kafka) covers the
// exemption of the SASL exchange.
func TestRequestPercentagePerSASLUser(t *testing.T) {
	b := startSASLBroker(t, "-quota-window", "50ms", "-quota-window-samples", "11")
	adm := kadm.NewClient(newFranzSASL(t, b.addr, "SCRAM-SHA-256", alice))
	ctx := testContext(t, time.Minute)
	createTopic(t, adm, "rq", 1)
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: kadm.ClientQuotaEntity{{Type: "user"}}, Ops: []kadm.AlterClientQuotaOp{{Key: "request_percentage", Value: 0.0001}}},
		{Entity: kadm.ClientQuotaEntity{{Type: "user", Name: kadm.StringPtr("bob")}}, Ops: []kadm.AlterClientQuotaOp{{Key: "request_percentage", Value: 1e6}}},
	})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("AlterClientQuotas: %v %+v", err, res)
	}
	throttles := func(u saslUser, mech string) int64 {
		hook := &throttleHook{}
		cl := newFranzSASL(t, b.addr, mech, u, kgo.ClientID("shared-id"), kgo.DefaultProduceTopic("rq"), kgo.WithHooks(hook))
		for i := range 20 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
				t.Fatalf("%s: produce: %v", u.name, err)
			}
		}
		return hook.n.Load()
	}
	if n := throttles(bob, "PLAIN"); n != 0 {
		t.Fatalf("bob, far within his request_percentage, was throttled %d times", n)
	}
	if n := throttles(alice, "SCRAM-SHA-512"); n == 0 {
		t.Fatal("alice, under the user-default request_percentage, was never throttled")
	}
	if n := throttles(alice, "SCRAM-SHA-256"); n == 0 {
		t.Fatal("alice's second client was never throttled")
	}
}

// librdkafka (confluent-kafka-go) reads request_percentage throttles too:
// its statistics count the throttle_time_ms the broker answered with
// (brokers[].throttle). Produce one record at a time until a statistics
// event shows one, or fail at the deadline.
func TestRequestPercentageEnforcedConfluent(t *testing.T) {
	b := startBroker(t, "-quota-window", "50ms", "-quota-window-samples", "11")
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)
	createTopic(t, adm, "rq", 1)
	setQuota(t, ctx, adm, "client-id", "rk-busy", "request_percentage", 0.0001)
	p := ckProducer(t, b.addr, ckafka.ConfigMap{"client.id": "rk-busy", "statistics.interval.ms": 100, "linger.ms": 0})
	topic := "rq"
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no throttle in librdkafka's statistics after %d records", i)
		}
		dr := make(chan ckafka.Event, 1)
		if err := p.Produce(&ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: 0}, Value: []byte{byte(i)}}, dr); err != nil {
			t.Fatal(err)
		}
		if m := (<-dr).(*ckafka.Message); m.TopicPartition.Error != nil {
			t.Fatalf("delivery: %v", m.TopicPartition.Error)
		}
		for drained := false; !drained; {
			select {
			case ev := <-p.Events():
				if st, ok := ev.(*ckafka.Stats); ok {
					if n := rdkafkaThrottles(t, st.String()); n > 0 {
						t.Logf("librdkafka counted %d throttles after %d records", n, i+1)
						return
					}
				}
			default:
				drained = true
			}
		}
	}
}

// rdkafkaThrottles is the number of throttled responses in one librdkafka
// statistics event, over every broker.
func rdkafkaThrottles(t *testing.T, stats string) int64 {
	var s struct {
		Brokers map[string]struct {
			Throttle struct {
				Cnt int64 `json:"cnt"`
				Max int64 `json:"max"`
			} `json:"throttle"`
		} `json:"brokers"`
	}
	if err := json.Unmarshal([]byte(stats), &s); err != nil {
		t.Fatalf("librdkafka statistics: %v", err)
	}
	var n int64
	for _, br := range s.Brokers {
		if br.Throttle.Max > 0 {
			n += br.Throttle.Cnt
		}
	}
	return n
}

// TestQuotaThrottleSurvivesReconnect: a client over its producer_byte_rate
// cannot shed the throttle by closing its connection and opening another.
// The rate is measured per user and client id, not per connection: the
// new connection's first produce is answered with the throttle still due
// (KIP-219), and the new connection is muted for it (its next request is
// not served before). The check is a lower bound on the wait (it cannot
// be served sooner than the mute allows), never an upper one.
func TestQuotaThrottleSurvivesReconnect(t *testing.T) {
	const quota = 16 << 10 // bytes per second
	b := startBroker(t, "-quota-window", "100ms", "-quota-window-samples", "11")
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)
	createTopic(t, adm, "qr", 1)
	// reqFrame's requests carry client id "bad".
	setQuota(t, ctx, adm, "client-id", "bad", "producer_byte_rate", quota)
	produce := func(c *rawConn, size int) *kmsg.ProduceResponse {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 7, 1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "qr"
		rp := kmsg.NewProduceRequestTopicPartition()
		v := make([]byte, size)
		_, _ = rand.Read(v)
		rp.Records = recordBatch(v, false)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := c.do(req).(*kmsg.ProduceResponse)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("produce: %v", kerr.ErrorForCode(code))
		}
		return resp
	}
	c1 := dialRaw(t, b.addr)
	r1 := produce(c1, 4*quota)
	if r1.ThrottleMillis == 0 {
		t.Fatalf("%d bytes at a quota of %d B/s: not throttled", 4*quota, quota)
	}
	c1.c.Close() // shed the muted connection

	c2 := dialRaw(t, b.addr)
	r2 := produce(c2, 100)
	if r2.ThrottleMillis == 0 {
		t.Fatalf("after a reconnect the client is not throttled (it was told %d ms just before)", r1.ThrottleMillis)
	}
	answered := time.Now()
	produce(c2, 100)
	if waited, mute := time.Since(answered), time.Duration(r2.ThrottleMillis)*time.Millisecond; waited < mute/2 {
		t.Fatalf("the new connection's next request was served after %v, within a throttle of %v: not muted", waited, mute)
	}
	t.Logf("throttles: %d ms, then %d ms on the new connection", r1.ThrottleMillis, r2.ThrottleMillis)
}

// setQuota sets one quota, key = value, on the entity of type typ named name.
func setQuota(t *testing.T, ctx context.Context, adm *kadm.Client, typ, name, key string, value float64) {
	t.Helper()
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: kadm.ClientQuotaEntity{{Type: typ, Name: kadm.StringPtr(name)}},
			Ops: []kadm.AlterClientQuotaOp{{Key: key, Value: value}}},
	})
	if err != nil || res[0].Err != nil {
		t.Fatalf("AlterClientQuotas %s=%s %s=%v: %v %+v", typ, name, key, value, err, res)
	}
}
