package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

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
		tab := &quotaTable{m: map[storage.QuotaEntity]map[string]float64{}}
		for j, e := range all[i:] {
			tab.m[e] = map[string]float64{quotaProducerByteRate: float64(i + j + 1)}
		}
		tab.m[storage.QuotaEntity{User: "other"}] = map[string]float64{quotaProducerByteRate: 999}
		q, sk, ok := tab.resolve(quotaProducerByteRate, "u", "c")
		if !ok || q != float64(i+1) {
			t.Fatalf("from level %d: quota %v (%v), want %d", i+1, q, ok, i+1)
		}
		e := all[i]
		if (sk.user != "") != e.HasUser() || (sk.client != "") != e.HasClientID() {
			t.Fatalf("level %d: sensor %+v for entity %+v", i+1, sk, e)
		}
		if _, _, ok := tab.resolve(quotaConsumerByteRate, "u", "c"); ok {
			t.Fatalf("level %d: a consumer quota resolved from producer quotas", i+1)
		}
	}
	// An empty client id matches no named client entity.
	tab := &quotaTable{m: map[storage.QuotaEntity]map[string]float64{
		{User: "u"}:                      {quotaProducerByteRate: 1},
		{User: "u", ClientDefault: true}: {quotaProducerByteRate: 2},
	}}
	if q, _, _ := tab.resolve(quotaProducerByteRate, "u", ""); q != 2 {
		t.Fatalf("empty client id: quota %v, want the user's default-client quota 2", q)
	}
}

// The throttle is the time at the quota that pays back the excess over
// the window (at least all samples but one), capped at the whole window.
func TestRateMeterThrottle(t *testing.T) {
	m := newRateMeter(11, 100*time.Millisecond)
	now := time.Unix(1000, 0)
	m.record(now, 1000)
	// 1000 bytes over at least 1 s at quota 1000/s: exactly at the quota.
	if d := m.throttle(now, 1000); d != 0 {
		t.Fatalf("at the quota: throttle %v", d)
	}
	m.record(now, 500)
	// 1500 over 1 s at 1000/s: 0.5 s to pay back.
	if d := m.throttle(now, 1000); d != 500*time.Millisecond {
		t.Fatalf("50%% over: throttle %v, want 500ms", d)
	}
	m.record(now, 1e9)
	if d := m.throttle(now, 1000); d != 1100*time.Millisecond {
		t.Fatalf("far over: throttle %v, want the window, 1.1s", d)
	}
	// Once the window has passed, the bytes are forgotten.
	if d := m.throttle(now.Add(1100*time.Millisecond), 1000); d != 0 {
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
