package storage

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// BenchmarkCompact measures one cleaning of a partition of 32 MiB of
// batches (16 records of 10,000 keys, 256-byte values half random, half
// text) on the real file system: MB/s is dirty batch bytes read per second
// of Compact, which maps, rewrites and fsyncs the compacted file.
func BenchmarkCompact(b *testing.B) {
	for _, codec := range []int8{codecNone, codecLz4, codecZstd} {
		b.Run(fmt.Sprintf("codec=%d", codec), func(b *testing.B) {
			batches := benchKeyedBatches(b, codec, 32<<20)
			var in int64
			var took time.Duration
			for i := 0; i < b.N; i++ {
				clock := &fakeClock{}
				s := mustOpen(b, Config{Dir: b.TempDir(), Shards: 1, SegmentBytes: 4 << 20, RetentionCheckInterval: -1, Now: clock.now})
				if _, err := s.CreateTopic("c", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
					b.Fatal(err)
				}
				appendBatches(b, s, "c", batches)
				appendWait(b, s, "c", 0, makeKeyedBatch(b, codec, 0, kv{[]byte("end"), []byte("x")}), true)
				waitCheckpoints(b, s)
				t0 := time.Now()
				s.Compact()
				took += time.Since(t0)
				in += s.CompactionStats().BytesIn
				if s.CompactionStats().Runs != 1 {
					b.Fatalf("stats %+v", s.CompactionStats())
				}
				s.Close()
			}
			b.ReportMetric(float64(in)/took.Seconds()/1e6, "MB/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkCompactMapKeys measures what a small offset map costs: a
// partition of 16 MiB of batches (16 records of 10,000 keys, 256-byte
// values) is cleaned pass after pass until its cleaned end stops moving,
// with maps of mapKeys keys. Each pass maps one map's worth of dirty
// chunks and rewrites the whole compacted file. Reported: passes, MB
// written (compacted files) per pass and in all, and write amplification
// (bytes written / bytes of the final file).
func BenchmarkCompactMapKeys(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var batches [][]byte
	var size int64
	for size < 16<<20 {
		recs := make([]kv, 16)
		for j := range recs {
			val := make([]byte, 256)
			for k := range val {
				val[k] = byte(rng.Uint32())
			}
			recs[j] = kv{key: fmt.Appendf(nil, "key-%05d", rng.IntN(10000)), val: val}
		}
		batch := makeKeyedBatch(b, codecNone, 0, recs...)
		batches = append(batches, batch)
		size += int64(len(batch))
	}
	for _, mapKeys := range []int{1000, 4000, 16000, DefaultCompactionMapKeys} {
		b.Run(fmt.Sprintf("mapKeys=%d", mapKeys), func(b *testing.B) {
			var passes, written, read, final int64
			for i := 0; i < b.N; i++ {
				clock := &fakeClock{}
				s := mustOpen(b, Config{Dir: b.TempDir(), Shards: 1, SegmentBytes: 4 << 20, RetentionCheckInterval: -1,
					Now: clock.now, CompactionMapKeys: mapKeys})
				if _, err := s.CreateTopic("c", 1, map[string]string{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"}); err != nil {
					b.Fatal(err)
				}
				for _, batch := range batches {
					appendWait(b, s, "c", 0, batch, false)
				}
				appendWait(b, s, "c", 0, makeKeyedBatch(b, codecNone, 0, kv{[]byte("end"), []byte("x")}), true)
				waitCheckpoints(b, s)
				for end := int64(-1); s.compEnd("c") != end; passes++ {
					end = s.compEnd("c")
					s.Compact()
				}
				passes-- // the last changed nothing
				st := s.CompactionStats()
				written += st.BytesOut
				read += st.BytesRead
				p, _ := s.lookup("c", 0)
				final += p.comp.Load().bytes
				s.Close()
			}
			n := float64(b.N)
			b.ReportMetric(float64(passes)/n, "passes")
			b.ReportMetric(float64(written)/n/1e6, "MB-written")
			b.ReportMetric(float64(written)/float64(passes)/1e6, "MB-written/pass")
			b.ReportMetric(float64(read)/n/1e6, "MB-read")
			b.ReportMetric(float64(written)/float64(final), "write-amp")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// benchKeyedBatches makes about size bytes of 16-record batches of 10,000
// keys with 256-byte values (half random, half text).
func benchKeyedBatches(b *testing.B, codec int8, size int64) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var batches [][]byte
	var n int64
	for n < size {
		recs := make([]kv, 16)
		for j := range recs {
			val := make([]byte, 256)
			for k := 0; k < 128; k++ {
				val[k] = byte(rng.Uint32())
			}
			copy(val[128:], "the quick brown fox jumps over the lazy dog, again and again and again, and then once more for good measure...")
			recs[j] = kv{key: fmt.Appendf(nil, "key-%05d", rng.IntN(10000)), val: val}
		}
		batch := makeKeyedBatch(b, codec, 0, recs...)
		batches = append(batches, batch)
		n += int64(len(batch))
	}
	return batches
}

// appendBatches appends batches to topic's partition 0, 64 in flight, and
// waits for them all.
func appendBatches(b *testing.B, s *Store, topic string, batches [][]byte) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, batch := range batches {
		sem <- struct{}{}
		wg.Add(1)
		s.Append(topic, 0, batch, false, func(r AppendResult) {
			if r.Err != nil {
				b.Error(r.Err)
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
}
