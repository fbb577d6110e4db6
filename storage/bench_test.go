package storage

import (
	"fmt"
	"sync"
	"testing"
)

var benchSizes = []int{1 << 10, 16 << 10}

// BenchmarkAppend measures appends of one batch each to 4 partitions with
// up to 128 in flight, on the real file system (t.TempDir). Durable appends
// wait for the group fdatasync; the others complete after the write.
func BenchmarkAppend(b *testing.B) {
	for _, size := range benchSizes {
		for _, durable := range []bool{false, true} {
			b.Run(fmt.Sprintf("batch=%dKiB/durable=%v", size>>10, durable), func(b *testing.B) {
				s := mustOpen(b, Config{Dir: b.TempDir(), Shards: 1, SegmentBytes: 64 << 20})
				defer s.Close()
				mustCreate(b, s, "t", 4)
				batch := makeBatch(batchSpec{value: make([]byte, size-BatchHeaderBytes-10)})
				sem := make(chan struct{}, 128)
				var wg sync.WaitGroup
				done := func(r AppendResult) {
					if r.Err != nil {
						b.Error(r.Err)
					}
					<-sem
					wg.Done()
				}
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					sem <- struct{}{}
					wg.Add(1)
					s.Append("t", int32(i&3), batch, durable, done)
				}
				wg.Wait()
				b.StopTimer()
				st := s.Stats()
				b.ReportMetric(float64(st.Appends)/float64(max(st.Fsyncs, 1)), "appends/fsync")
			})
		}
	}
}

// BenchmarkRead measures Read of one batch at a time (the path a fetch takes
// before sendfile), walking into multi-batch chunks.
func BenchmarkRead(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("batch=%dKiB", size>>10), func(b *testing.B) {
			s := mustOpen(b, Config{Dir: b.TempDir(), Shards: 1, SegmentBytes: 64 << 20})
			defer s.Close()
			mustCreate(b, s, "t", 1)
			batch := makeBatch(batchSpec{records: 4, value: make([]byte, size/4)})
			const n = 2000
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				s.Append("t", 0, batch, true, func(AppendResult) { wg.Done() })
			}
			wg.Wait()
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				off := int64(i%n)*4 + int64(i&3)
				res := s.Read("t", 0, off, int64(len(batch)))
				if res.Err != nil || res.Bytes != int64(len(batch)) {
					b.Fatalf("read: %v %d", res.Err, res.Bytes)
				}
				res.Release()
			}
		})
	}
}
