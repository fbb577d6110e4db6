package storage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/tier/s3store"
	"github.com/klite/klite/tier/s3test"
)

// BenchmarkCompactTiered measures one cleaning of a tiered partition of 32
// MiB of batches (as BenchmarkCompact: 16 records of 10,000 keys, 256-byte
// values) uploaded in 8 MiB objects, from an in-memory bucket and from a
// local versitygw: MB/s is uploaded batch bytes cleaned per second of
// Compact (two verified GETs of each object, cleaning, PUTs, publish,
// deletes). The WAL is on the real file system.
func BenchmarkCompactTiered(b *testing.B) {
	for _, where := range []string{"mem", "versitygw"} {
		for _, codec := range []int8{codecNone, codecZstd} {
			b.Run(fmt.Sprintf("store=%s/codec=%d", where, codec), func(b *testing.B) {
				batches := benchKeyedBatches(b, codec, 32<<20)
				var in, before, after int64
				var took time.Duration
				for i := 0; i < b.N; i++ {
					var store tier.ObjectStore = tier.NewMemStore()
					if where == "versitygw" {
						st, err := s3store.New(context.Background(), s3store.Config{Bucket: "bench", Prefix: fmt.Sprintf("b%d/", i),
							Endpoint: s3test.StartT(b, "bench"), Region: "us-east-1", AccessKey: s3test.Access, SecretKey: s3test.Secret})
						if err != nil {
							b.Fatal(err)
						}
						store = st
					}
					clock := &fakeClock{}
					cfg := Config{Dir: b.TempDir(), Shards: 1, SegmentBytes: 4 << 20, RetentionCheckInterval: -1, Now: clock.now}
					tc := openTieredWith(b, cfg, store, clock, 8<<20, 0)
					s := tc.s
					if _, err := s.CreateTopic("c", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
						b.Fatal(err)
					}
					appendBatches(b, s, "c", batches)
					appendWait(b, s, "c", 0, makeKeyedBatch(b, codec, 0, kv{[]byte("end"), []byte("x")}), true)
					tc.upload("c")
					_, _, sz := tc.manifest("c")
					before += sz
					t0 := time.Now()
					s.Compact()
					took += time.Since(t0)
					_, _, sz = tc.manifest("c")
					after += sz
					cs := s.CompactionStats()
					in += cs.BytesIn
					if cs.TieredRuns != 1 {
						b.Fatalf("stats %+v", cs)
					}
					tc.close()
				}
				b.ReportMetric(float64(in)/took.Seconds()/1e6, "MB/s")
				b.ReportMetric(float64(after)/float64(before), "bucket_after/before")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
