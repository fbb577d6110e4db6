package storage

import (
	"fmt"
	"sync"
	"testing"
)

// BenchmarkReadCommitted measures a read_committed read of one batch, as
// BenchmarkRead does for read_uncommitted: on a partition that never saw a
// transaction (the LSO is one atomic load more: no allocation), and at the
// stable end of a partition whose newest transaction is open (each read
// walks the chunk to cut it at the LSO).
func BenchmarkReadCommitted(b *testing.B) {
	for _, open := range []bool{false, true} {
		b.Run(fmt.Sprintf("open=%v", open), func(b *testing.B) {
			s := mustOpen(b, Config{Dir: b.TempDir(), Shards: 1, SegmentBytes: 64 << 20})
			defer s.Close()
			mustCreate(b, s, "t", 1)
			batch := makeBatch(batchSpec{records: 4, value: make([]byte, 256)})
			const n = 2000
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				s.Append("t", 0, batch, true, func(AppendResult) { wg.Done() })
			}
			wg.Wait()
			if open {
				mustAppend(b, s, "t", 0, txnBatch(9, 0, 0, 4))
				mustAppend(b, s, "t", 0, batch)
			}
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				off := int64(n-1-i%16) * 4 // the newest batches below the LSO
				res := s.ReadCommitted("t", 0, off, 1<<20)
				if res.Err != nil || res.Bytes != int64(n*4-off)/4*int64(len(batch)) {
					b.Fatalf("read at %d: %v %d bytes", off, res.Err, res.Bytes)
				}
				res.Release()
			}
		})
	}
}

// BenchmarkAbortedTxns measures the aborted-index lookup of a
// read_committed fetch among many aborted transactions.
func BenchmarkAbortedTxns(b *testing.B) {
	s := mustOpen(b, Config{Dir: b.TempDir(), Shards: 1, SegmentBytes: 64 << 20})
	defer s.Close()
	mustCreate(b, s, "t", 1)
	const n = 1000
	for i := range n {
		mustAppend(b, s, "t", 0, txnBatch(int64(1+i%8), 0, int32(i/8), 1))
		mustMarker(b, s, "t", 0, int64(1+i%8), 0, i%2 == 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		from := int64(i%(2*n-20)) &^ 1
		a, err := s.AbortedTxns("t", 0, from, from+20)
		if err != nil || len(a) == 0 {
			b.Fatalf("%v %d", err, len(a))
		}
	}
}

// BenchmarkTxnMarker measures durable markers (one per partition per
// transaction end) with 128 in flight over 4 partitions, each ending a
// transaction of one batch: compare with BenchmarkAppend durable.
func BenchmarkTxnMarker(b *testing.B) {
	s := mustOpen(b, Config{Dir: b.TempDir(), Shards: 1, SegmentBytes: 64 << 20})
	defer s.Close()
	mustCreate(b, s, "t", 4)
	sem := make(chan struct{}, 128)
	var wg sync.WaitGroup
	done := func(r AppendResult) {
		if r.Err != nil {
			b.Error(r.Err)
		}
		<-sem
		wg.Done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pid := int64(1 + i%512)
		part := int32(i & 3)
		sem <- struct{}{}
		wg.Add(1)
		s.Append("t", part, txnBatch(pid, 0, int32(i/512), 1), true, func(r AppendResult) {
			if r.Err != nil {
				b.Error(r.Err)
			}
		})
		s.WriteTxnMarker("t", part, pid, 0, i%2 == 0, 0, done)
	}
	wg.Wait()
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Appends)/float64(max(st.Fsyncs, 1)), "appends/fsync")
}

// BenchmarkProducers measures Producers (DescribeProducers) of one
// partition on a shard holding the state of the given number of producers
// over 4 partitions: one trip to the writer goroutine and a walk of the
// shard's producer map.
func BenchmarkProducers(b *testing.B) {
	for _, producers := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			s := mustOpen(b, Config{Dir: b.TempDir(), Shards: 1, SegmentBytes: 64 << 20})
			defer s.Close()
			mustCreate(b, s, "t", 4)
			var wg sync.WaitGroup
			for i := range producers {
				wg.Add(1)
				s.Append("t", int32(i%4), makeBatch(batchSpec{records: 1, pid: int64(i) + 1, seq: 0}), false, func(AppendResult) { wg.Done() })
			}
			wg.Wait()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if pp := s.Producers("t", []int32{0}); pp[0].Err != nil || len(pp[0].Producers) != producers/4+min(producers%4, 1) {
					b.Fatalf("%v: %d producers", pp[0].Err, len(pp[0].Producers))
				}
			}
		})
	}
}
