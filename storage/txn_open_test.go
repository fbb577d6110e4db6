package storage

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// TestPartTxnsOpenClose: opens and closes in random orders against a
// plain list: the first open offset and each producer's are always the
// model's, and the tombstones stay bounded.
func TestPartTxnsOpenClose(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		var pt partTxns
		var model []openTxn
		next, pid := int64(0), int64(0)
		for step := range 300 {
			if len(model) == 0 || rng.IntN(3) > 0 {
				next += 1 + rng.Int64N(5)
				pid++
				pt.addOpen(pid, next)
				model = append(model, openTxn{pid: pid, first: next})
			} else {
				var victim int64
				if rng.IntN(4) == 0 {
					victim = pid + 1 // not open: nothing changes
				} else {
					i := rng.IntN(len(model))
					if rng.IntN(2) == 0 {
						i = 0 // the earliest, which moves the LSO
					}
					victim = model[i].pid
					model = slices.Delete(model, i, i+1)
				}
				pt.closeOpen(victim)
			}
			first := int64(-1)
			if pt.head < len(pt.open) {
				first = pt.open[pt.head].first
			}
			want := int64(-1)
			if len(model) > 0 {
				want = model[0].first
			}
			if first != want || len(pt.live) != len(model) {
				t.Fatalf("round %d step %d: first open %d (%d live), want %d (%d)", round, step, first, len(pt.live), want, len(model))
			}
			for _, o := range model {
				if pt.live[o.pid] != o.first {
					t.Fatalf("round %d step %d: producer %d open from %d, want %d", round, step, o.pid, pt.live[o.pid], o.first)
				}
			}
			if n := len(pt.open) - pt.head - pt.dead; n != len(model) || pt.head+pt.dead > len(pt.open)/2+1 {
				t.Fatalf("round %d step %d: %d entries, head %d, %d tombstones, %d open", round, step, len(pt.open), pt.head, pt.dead, len(model))
			}
		}
	}
}

// BenchmarkTxnCloses: n transactions open on one partition, then ended in
// the order they opened (each close moves the LSO). Deleting each from a
// list was quadratic: 42 s for 200,000.
func BenchmarkTxnCloses(b *testing.B) {
	for _, n := range []int{1_000, 200_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				var pt partTxns
				for i := range int64(n) {
					pt.addOpen(i, i*2)
				}
				for i := range int64(n) {
					pt.closeOpen(i)
				}
				if len(pt.live) != 0 || pt.head != len(pt.open) {
					b.Fatal("transactions left open")
				}
			}
		})
	}
}

// BenchmarkStoreEndManyOpen: n producers each open a transaction on one
// partition, then every one is ended by its marker (issued together, as
// the coordinator's timeout check does), through the store: appends,
// markers, and the LSO moving back to the high watermark. 200,000: 12.0 s
// with the open list's linear delete, 0.27 s since.
func BenchmarkStoreEndManyOpen(b *testing.B) {
	for _, n := range []int{1_000, 200_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				s := mustOpen(b, Config{Dir: b.TempDir(), Shards: 1, SegmentBytes: 64 << 20})
				mustCreate(b, s, "t", 1)
				var wg sync.WaitGroup
				issue := func(data []byte) {
					wg.Add(1)
					s.Append("t", 0, data, true, func(r AppendResult) {
						if r.Err != nil {
							b.Error(r.Err)
						}
						wg.Done()
					})
				}
				for i := range int64(n) {
					issue(txnBatch(i+1, 0, 0, 1))
				}
				wg.Wait()
				b.StartTimer()
				for i := range int64(n) {
					wg.Add(1)
					s.WriteTxnMarker("t", 0, i+1, 0, i%2 == 0, 0, func(r AppendResult) {
						if r.Err != nil {
							b.Error(r.Err)
						}
						wg.Done()
					})
				}
				wg.Wait()
				b.StopTimer()
				lso, _ := s.LastStableOffset("t", 0)
				if _, hwm, _ := s.Offsets("t", 0); lso != hwm {
					b.Fatalf("LSO %d, high watermark %d", lso, hwm)
				}
				s.Close()
				b.StartTimer()
			}
		})
	}
}
