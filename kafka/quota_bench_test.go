package kafka

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/klite/klite/netloop"
	"github.com/klite/klite/storage"
)

// BenchmarkQuotaSensors measures the sensor lookup and record of a produce
// under a client-id default quota: every connection has its own client id
// and so its own sensor, as with many clients of one application. shards=1
// is one lock for every sensor, as before they were split; run with
// -cpu 1,2,... to see whether that lock shows.
func BenchmarkQuotaSensors(b *testing.B) {
	for _, conns := range []int{1, 10000} {
		for _, shards := range []uint64{1, quotaShards} {
			b.Run("conns="+strconv.Itoa(conns)+"/shards="+strconv.FormatUint(shards, 10), func(b *testing.B) {
				benchQuotaSensors(b, conns, shards)
			})
		}
	}
}

func benchQuotaSensors(b *testing.B, conns int, shards uint64) {
	hs := newHarness(b)
	qm := &hs.h.quotaMeters
	qm.used, qm.perShard = shards, DefaultQuotaMaxSensors // no evictions either way
	hs.h.quotas.mu.Lock()
	hs.h.setQuotasLocked([]storage.Quota{{
		Entity: storage.QuotaEntity{ClientDefault: true},
		Values: map[string]float64{quotaProducerByteRate: 1e12},
	}})
	hs.h.quotas.mu.Unlock()
	t := hs.h.quotaTab.Load()
	reqs := make([]*request, conns)
	for i := range reqs {
		reqs[i] = &request{
			nr:       &netloop.Request{Frame: make([]byte, 100), Conn: netloop.ConnInfo{ID: uint64(i)}},
			clientID: []byte("client-" + strconv.Itoa(i)),
		}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			i++
			if hs.h.produceThrottle(t, reqs[i%conns]) != 0 {
				b.Fatal("throttled under a huge quota")
			}
		}
	})
}

// BenchmarkProduceQuotas is BenchmarkProduce without quotas and under a
// request_percentage (and byte rate) that never throttles: the cost of
// timing the request and charging its sensors.
func BenchmarkProduceQuotas(b *testing.B) {
	for _, keys := range [][]string{nil, {quotaRequestPercentage}, {quotaRequestPercentage, quotaProducerByteRate}} {
		name := "none"
		if len(keys) > 0 {
			name = strings.Join(keys, "+")
		}
		b.Run(name, func(b *testing.B) {
			hs := newHarness(b)
			hs.st.appendSync = true
			hs.createTopic("t", 1, nil)
			if len(keys) > 0 {
				vals := map[string]float64{}
				for _, k := range keys {
					vals[k] = 1e12
				}
				hs.h.quotas.mu.Lock()
				hs.h.setQuotasLocked([]storage.Quota{{Entity: storage.QuotaEntity{ClientID: "klite-test"}, Values: vals}})
				hs.h.quotas.mu.Unlock()
			}
			frame := encodeRequest(produceReq(9, 1, "t", [16]byte{}, 0, makeBatch(batchOpts{records: 10, payload: 1000})), testCorr)
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			b.ResetTimer()
			for range b.N {
				r := hs.serveFrame(frame).wait(b)
				if r.Throttle != 0 {
					b.Fatal("throttled")
				}
				if r.Release != nil {
					r.Release()
				}
			}
		})
	}
}
