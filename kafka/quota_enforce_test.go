package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/netloop"
	"github.com/klite/klite/storage"
)

// KIP-55's order: the most specific entity that sets the key wins, and
// the sensor is per the user and client id that entity names.
func TestQuotaResolveOrder(t *testing.T) {
	all := []storage.QuotaEntity{
		{User: "u", ClientID: "c"},
		{User: "u", ClientDefault: true},
		{User: "u"},
		{UserDefault: true, ClientID: "c"},
		{UserDefault: true, ClientDefault: true},
		{UserDefault: true},
		{ClientID: "c"},
		{ClientDefault: true},
	}
	for i := range all {
		m := map[storage.QuotaEntity]map[string]float64{}
		for j, e := range all[i:] {
			m[e] = map[string]float64{quotaProducerByteRate: float64(i + j + 1)}
		}
		m[storage.QuotaEntity{User: "other"}] = map[string]float64{quotaProducerByteRate: 999}
		tab := buildQuotaTable(m)
		q, sk, ok := tab.resolve(quotaProduce, "u", "c")
		if !ok || q != float64(i+1) {
			t.Fatalf("from level %d: quota %v (%v), want %d", i+1, q, ok, i+1)
		}
		e := all[i]
		if (sk.user != "") != e.HasUser() || (sk.client != "") != e.HasClientID() {
			t.Fatalf("level %d: sensor %+v for entity %+v", i+1, sk, e)
		}
		if _, _, ok := tab.resolve(quotaFetch, "u", "c"); ok {
			t.Fatalf("level %d: a consumer quota resolved from producer quotas", i+1)
		}
	}
	// An empty client id matches no named client entity.
	tab := buildQuotaTable(map[storage.QuotaEntity]map[string]float64{
		{User: "u"}:                      {quotaProducerByteRate: 1},
		{User: "u", ClientDefault: true}: {quotaProducerByteRate: 2},
	})
	if q, _, _ := tab.resolve(quotaProduce, "u", ""); q != 2 {
		t.Fatalf("empty client id: quota %v, want the user's default-client quota 2", q)
	}
}

// The throttle is the time at the quota that pays back the excess over
// the window (at least all samples but one), capped at the whole window.
func TestRateMeterThrottle(t *testing.T) {
	m := newRateMeter(11, 100*time.Millisecond)
	const span = 1100 * time.Millisecond
	now := int64(1000 * time.Second)
	m.record(now, 1000)
	// 1000 bytes over at least 1 s at quota 1000/s: exactly at the quota.
	if d := m.throttle(now, 1000, span); d != 0 {
		t.Fatalf("at the quota: throttle %v", d)
	}
	m.record(now, 500)
	// 1500 over 1 s at 1000/s: 0.5 s to pay back.
	if d := m.throttle(now, 1000, span); d != 500*time.Millisecond {
		t.Fatalf("50%% over: throttle %v, want 500ms", d)
	}
	if d := m.throttle(now, 1000, 100*time.Millisecond); d != 100*time.Millisecond {
		t.Fatalf("50%% over, capped at one sample: throttle %v, want 100ms", d)
	}
	m.record(now, 1e9)
	if d := m.throttle(now, 1000, span); d != span {
		t.Fatalf("far over: throttle %v, want the window, 1.1s", d)
	}
	// Once the window has passed, the bytes are forgotten.
	if d := m.throttle(now+int64(span), 1000, span); d != 0 {
		t.Fatalf("after the window: throttle %v", d)
	}
}

// A produce past its producer_byte_rate is answered (the data is
// appended) with throttle_time_ms and a netloop throttle; one within it
// has neither, and so has every produce without quotas.
func TestProduceThrottled(t *testing.T) {
	hs := newHarness(t, func(c *Config) { c.QuotaWindow = time.Minute })
	hs.createTopic("t", 1, nil)
	produce := func() (*kmsg.ProduceResponse, time.Duration) {
		req := produceReq(9, -1, "t", [16]byte{}, 0, makeBatch(batchOpts{payload: 4000}))
		nr := hs.send(req)
		throttle := nr.Throttle
		return decodeBody[*kmsg.ProduceResponse](t, req, assemble(t, nr)), throttle
	}
	if resp, d := produce(); resp.ThrottleMillis != 0 || d != 0 {
		t.Fatalf("without quotas: throttle %d ms, %v", resp.ThrottleMillis, d)
	}
	if hs.h.quotaTab.Load() != nil {
		t.Fatal("a quota table without quotas")
	}
	codes := alterQuotas(hs, false, alterEntry([]qc{named("client-id", "klite-test")}, setOp(quotaProducerByteRate, 1e6)))
	if codes[0] != 0 {
		t.Fatal(codes)
	}
	// 1e6 bytes/s over at least 10 minutes: far within.
	if resp, d := produce(); resp.ThrottleMillis != 0 || d != 0 {
		t.Fatalf("within the quota: throttle %d ms, %v", resp.ThrottleMillis, d)
	}
	codes = alterQuotas(hs, false, alterEntry([]qc{named("client-id", "klite-test")}, setOp(quotaProducerByteRate, 1)))
	if codes[0] != 0 {
		t.Fatal(codes)
	}
	resp, d := produce()
	if resp.ThrottleMillis <= 0 || d <= 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("over the quota: throttle %d ms, %v, error %d", resp.ThrottleMillis, d, resp.Topics[0].Partitions[0].ErrorCode)
	}
	if int64(resp.ThrottleMillis) != int64((d+time.Millisecond-1)/time.Millisecond) {
		t.Fatalf("throttle_time_ms %d does not match the netloop throttle %v", resp.ThrottleMillis, d)
	}
}

// A fetch whose consumer sensor is over consumer_byte_rate is answered at
// once with no data and the throttle; the fetch before it, within the
// quota, sent its records and counted them.
func TestFetchThrottled(t *testing.T) {
	hs := newHarness(t, func(c *Config) { c.QuotaWindow = time.Minute })
	hs.createTopic("t", 1, nil)
	hs.produceTo("t", 0, makeBatch(batchOpts{payload: 4000}))
	codes := alterQuotas(hs, false, alterEntry([]qc{named("client-id", "klite-test")}, setOp(quotaConsumerByteRate, 1)))
	if codes[0] != 0 {
		t.Fatal(codes)
	}
	fetch := func() (*kmsg.FetchResponse, time.Duration) {
		req := fetchReq(hs, 12, 0, 0, 1<<20, fetchPart{topic: "t", partition: 0, offset: 0, maxBytes: 1 << 20})
		nr := hs.send(req)
		d := nr.Throttle
		return decodeBody[*kmsg.FetchResponse](t, req, assemble(t, nr)), d
	}
	resp, d := fetch()
	if d != 0 || resp.ThrottleMillis != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("first fetch: throttle %v (%d ms), %d topics", d, resp.ThrottleMillis, len(resp.Topics))
	}
	resp, d = fetch()
	if d <= 0 || resp.ThrottleMillis <= 0 || len(resp.Topics) != 0 {
		t.Fatalf("fetch over the quota: throttle %v (%d ms), %d topics, want a throttle and no data", d, resp.ThrottleMillis, len(resp.Topics))
	}
}

// request_percentage (KIP-124): once the time charged to a client's
// requests passes its share of a thread, each response carries
// throttle_time_ms and a netloop throttle, at most one sample long; a
// client the quota does not name is never throttled. The quota is so small
// that any request's time passes it: what is checked is that time is
// charged and turned into a throttle, never how long anything took.
func TestRequestPercentageThrottled(t *testing.T) {
	const window = 250 * time.Millisecond
	hs := newHarness(t, func(c *Config) { c.QuotaWindow = window })
	hs.createTopic("t", 1, nil)
	metadata := func() (*kmsg.MetadataResponse, time.Duration) {
		req := metadataReq(12, false, "t")
		nr := hs.send(req)
		return decodeBody[*kmsg.MetadataResponse](t, req, assemble(t, nr)), nr.Throttle
	}
	codes := alterQuotas(hs, false, alterEntry([]qc{named("client-id", "someone-else")}, setOp(quotaRequestPercentage, 1e-9)))
	if codes[0] != 0 {
		t.Fatal(codes)
	}
	for range 3 {
		if resp, d := metadata(); resp.ThrottleMillis != 0 || d != 0 {
			t.Fatalf("a client without request_percentage: throttle %d ms, %v", resp.ThrottleMillis, d)
		}
	}
	codes = alterQuotas(hs, false, alterEntry([]qc{named("client-id", "klite-test")}, setOp(quotaRequestPercentage, 1e-9)))
	if codes[0] != 0 {
		t.Fatal(codes)
	}
	metadata() // charged: its time makes the next answer throttled
	resp, d := metadata()
	if d != window || resp.ThrottleMillis != int32(window/time.Millisecond) {
		t.Fatalf("over request_percentage: throttle %d ms, %v; want one sample, %v", resp.ThrottleMillis, d, window)
	}

	// A fetch over the quota is answered at once, empty, throttled.
	hs.produceTo("t", 0, makeBatch(batchOpts{payload: 100}))
	req := fetchReq(hs, 12, 0, 0, 1<<20, fetchPart{topic: "t", partition: 0, offset: 0, maxBytes: 1 << 20})
	nr := hs.send(req)
	fr := decodeBody[*kmsg.FetchResponse](t, req, assemble(t, nr))
	if nr.Throttle != window || fr.ThrottleMillis <= 0 || len(fr.Topics) != 0 {
		t.Fatalf("fetch over request_percentage: throttle %v (%d ms), %d topics; want a throttle and no data", nr.Throttle, fr.ThrottleMillis, len(fr.Topics))
	}

	// A produce with acks is throttled too.
	preq := produceReq(9, 1, "t", [16]byte{}, 0, makeBatch(batchOpts{payload: 100}))
	pr := hs.send(preq)
	presp := decodeBody[*kmsg.ProduceResponse](t, preq, assemble(t, pr))
	if pr.Throttle != window || presp.ThrottleMillis <= 0 || presp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("acks=1 produce over request_percentage: throttle %v (%d ms), error %d", pr.Throttle, presp.ThrottleMillis, presp.Topics[0].Partitions[0].ErrorCode)
	}

	// Removing the quota ends the throttling.
	codes = alterQuotas(hs, false, alterEntry([]qc{named("client-id", "klite-test")}, removeOp(quotaRequestPercentage)))
	if codes[0] != 0 {
		t.Fatal(codes)
	}
	if resp, d := metadata(); resp.ThrottleMillis != 0 || d != 0 {
		t.Fatalf("after the quota is removed: throttle %d ms, %v", resp.ThrottleMillis, d)
	}
}

// acks=0 produce is exempt from request_percentage (Kafka's rule: no
// response carries the throttle): its time is never charged.
func TestRequestPercentageAcks0Exempt(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	codes := alterQuotas(hs, false, alterEntry([]qc{named("client-id", "klite-test")}, setOp(quotaRequestPercentage, 1e-9)))
	if codes[0] != 0 {
		t.Fatal(codes)
	}
	sk := sensorKey{kind: quotaRequest, client: "klite-test"}
	if m := hs.h.quotaMeters.lookup(sk); m != nil {
		m.mu.Lock()
		clear(m.s) // the alter's own time, forgotten
		m.mu.Unlock()
	}
	for range 3 {
		req := produceReq(9, 0, "t", [16]byte{}, 0, makeBatch(batchOpts{payload: 100}))
		if nr := hs.send(req); nr.Throttle != 0 || len(nr.Parts) != 0 {
			t.Fatalf("acks=0 produce: throttle %v, %d parts", nr.Throttle, len(nr.Parts))
		}
	}
	if m := hs.h.quotaMeters.lookup(sk); m != nil && m.lastActive() != 0 {
		t.Fatal("acks=0 produces were charged to request_percentage")
	}
}

// The byte-rate and request-time throttles of one request combine as in
// Kafka: the longest is answered and applied.
func TestThrottleLongestWins(t *testing.T) {
	hs := newHarness(t, func(c *Config) { c.QuotaWindow = 100 * time.Millisecond })
	hs.createTopic("t", 1, nil)
	codes := alterQuotas(hs, false, alterEntry([]qc{named("client-id", "klite-test")},
		setOp(quotaRequestPercentage, 1e-9), setOp(quotaProducerByteRate, 1)))
	if codes[0] != 0 {
		t.Fatal(codes)
	}
	var d time.Duration
	var resp *kmsg.ProduceResponse
	for range 2 {
		req := produceReq(9, -1, "t", [16]byte{}, 0, makeBatch(batchOpts{payload: 4000}))
		nr := hs.send(req)
		d = nr.Throttle
		resp = decodeBody[*kmsg.ProduceResponse](t, req, assemble(t, nr))
	}
	// The byte throttle is capped at the whole window (1.1 s), the
	// request-time one at a sample (100 ms): the byte one is longer.
	if d != 1100*time.Millisecond || resp.ThrottleMillis != 1100 {
		t.Fatalf("throttle %v (%d ms), want the byte-rate one, 1.1s", d, resp.ThrottleMillis)
	}
}

// Before SASL authentication, ApiVersions is not charged nor throttled
// (Kafka's authenticator serves it outside request quotas), even under a
// user-default request_percentage that matches ANONYMOUS.
func TestRequestPercentageExemptBeforeSASL(t *testing.T) {
	hs := newHarness(t, func(c *Config) {
		c.Listeners = []Listener{{Protocol: SASLPlaintext, Host: "broker.test", Port: 9092}}
	})
	hs.h.quotas.mu.Lock()
	hs.h.setQuotasLocked([]storage.Quota{{Entity: storage.QuotaEntity{UserDefault: true},
		Values: map[string]float64{quotaRequestPercentage: 1e-9}}})
	hs.h.quotas.mu.Unlock()
	for range 3 {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		req.ClientSoftwareName, req.ClientSoftwareVersion = "t", "1"
		nr := hs.send(req)
		resp := decodeBody[*kmsg.ApiVersionsResponse](t, req, assemble(t, nr))
		if nr.Throttle != 0 || resp.ThrottleMillis != 0 {
			t.Fatalf("ApiVersions before authentication: throttle %v (%d ms)", nr.Throttle, resp.ThrottleMillis)
		}
	}
	if n := hs.h.quotaMeters.len(); n != 0 {
		t.Fatalf("%d sensors after exempt requests, want none", n)
	}
}

// Sensors are capped: a client cycling through client ids under a
// client-id default quota cannot grow them past Config.QuotaMaxSensors
// (without the cap every id keeps one for a whole window).
func TestQuotaSensorsBounded(t *testing.T) {
	const maxSensors, ids = 4 * quotaShards, 1000
	hs := newHarness(t, func(c *Config) { c.QuotaMaxSensors = maxSensors; c.QuotaWindow = time.Hour })
	hs.h.quotas.mu.Lock()
	hs.h.setQuotasLocked([]storage.Quota{{Entity: storage.QuotaEntity{ClientDefault: true},
		Values: map[string]float64{quotaProducerByteRate: 1e12, quotaRequestPercentage: 1e6}}})
	hs.h.quotas.mu.Unlock()
	tab := hs.h.quotaTab.Load()
	for i := range ids {
		r := &request{nr: netloop.NewRequest(make([]byte, 10), netloop.ConnInfo{ID: uint64(i)}, func(netloop.Response) {}),
			clientID: []byte(fmt.Sprintf("cycling-%d", i))}
		hs.h.produceThrottle(tab, r)
		hs.h.meterRequest(r)
		if r.reqMeter == nil {
			t.Fatalf("id %d: no request sensor", i)
		}
		if n := hs.h.quotaMeters.len(); n > maxSensors {
			t.Fatalf("after %d client ids: %d sensors, cap %d", i+1, n, maxSensors)
		}
	}
	if n := hs.h.quotaMeters.len(); n != maxSensors {
		t.Fatalf("%d sensors at the end, want the cap, %d", n, maxSensors)
	}
}

// A sensor with nothing recorded for a whole window is dropped by the
// sweep (it measures nothing; a new one starts the same); one recorded
// within the window is kept. Times are given, not waited for.
func TestQuotaSensorsIdleDropped(t *testing.T) {
	var qm quotaMeters
	qm.init(DefaultQuotaMaxSensors)
	const samples, sample = 11, time.Second
	span := int64(samples * sample)
	idle := qm.get(sensorKey{kind: quotaProduce, client: "idle"}, samples, sample)
	busy := qm.get(sensorKey{kind: quotaProduce, client: "busy"}, samples, sample)
	t0 := monoNow()
	idle.record(t0, 1)
	busy.record(t0, 1)
	busy.record(t0+span-1, 1) // a sample that starts within the window
	for i := range qm.shards {
		qm.shards[i].sweepLocked(t0+span, span)
	}
	if qm.lookup(sensorKey{kind: quotaProduce, client: "idle"}) != nil {
		t.Fatal("a sensor idle for a whole window was kept")
	}
	if qm.lookup(sensorKey{kind: quotaProduce, client: "busy"}) != busy {
		t.Fatal("a sensor active within the window was dropped")
	}
}
