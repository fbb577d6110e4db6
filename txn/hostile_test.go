package txn

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TestVerifyChecksTransactionalID: a produce naming transactional id
// "evil" with the producer id and epoch of "tx" must not write into tx's
// transaction.
func TestVerifyChecksTransactionalID(t *testing.T) {
	c := open(t, &fakeLog{}, newFakeStore())
	p := initPID(c, "tx", 60000, -1, -1)
	e := initPID(c, "evil", 60000, -1, -1)
	expect(t, "add", addParts(c, "tx", p.pid, p.epoch, a0), 0)
	expect(t, "add evil", addParts(c, "evil", e.pid, e.epoch, a1), 0)
	expect(t, "owner", verify(c, "tx", p.pid, p.epoch, "a", 0), 0)
	expect(t, "another id, tx's producer", verify(c, "evil", p.pid, p.epoch, "a", 0), errBadMapping)
	expect(t, "unknown id, tx's producer", verify(c, "nobody", p.pid, p.epoch, "a", 0), errBadMapping)
	expect(t, "tx's id, another producer", verify(c, "tx", e.pid, e.epoch, "a", 0), errBadMapping)
}

// TestEndWaitsForAdmittedProduce: a produce admitted before EndTxn but
// appended after it must land before the markers; written after the
// marker, it would reopen the transaction on the partition and hold its
// last stable offset forever. The same holds for a transaction aborted at
// its timeout while the produce is in flight.
func TestEndWaitsForAdmittedProduce(t *testing.T) {
	for _, how := range []string{"commit", "timeout"} {
		t.Run(how, func(t *testing.T) {
			lg := &fakeLog{}
			c := open(t, lg, newFakeStore())
			clock := time.Now()
			c.now = func() time.Time { return clock }
			p := initPID(c, "tx", 1000, -1, -1)
			expect(t, "add", addParts(c, "tx", p.pid, p.epoch, a0), 0)
			code, settle := c.VerifyTxnPartition("tx", p.pid, p.epoch, "a", 0)
			expect(t, "admit", code, 0)
			settle = sync.OnceFunc(settle)
			t.Cleanup(settle) // a failed test must not hold Close
			var ended chan pidEpoch
			if how == "commit" {
				ended = endTxnAsync(c, "tx", p.pid, p.epoch, true, false)
				waitDurable(t, c, "tx", PrepareCommit)
			} else {
				clock = clock.Add(2 * time.Second)
				c.abortTimedOut()
				waitDurable(t, c, "tx", PrepareAbort)
			}
			late := errInvalidState
			if how == "timeout" {
				late = errBadEpoch // the abort fenced the epoch
			}
			expect(t, "admit after the end began", verify(c, "tx", p.pid, p.epoch, "a", 0), late)
			// The end must not write a marker while the batch is in
			// flight: it parks waiting for the batch, or (the bug) writes
			// its marker.
			waitFinishParked(t, lg)
			settle()
			if ended != nil {
				if e := <-ended; e.code != 0 {
					t.Fatalf("end: %+v", e)
				}
			}
			waitState(t, c, "tx", map[string]State{"commit": CompleteCommit, "timeout": CompleteAbort}[how])
			if m := lg.written(); len(m) != 1 {
				t.Fatalf("markers %+v, want 1", m)
			}
		})
	}
}

// waitFinishParked waits until the end of a transaction is parked in
// finish waiting for what it admitted, failing t if a marker is written
// first.
func waitFinishParked(t *testing.T, lg *fakeLog) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := lg.written(); len(m) != 0 {
			t.Fatalf("markers %+v written while an admitted produce is in flight", m)
		}
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "sync.(*WaitGroup).Wait") && strings.Contains(g, "txn.(*Coordinator).finish.func") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the end of the transaction never waited for the admitted produce")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWithParts: the merge keeps the partitions sorted and unique, and
// reports whether one was new, as inserting one at a time did.
func TestWithParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		var r record
		for range rng.IntN(20) {
			r.parts = append(r.parts, TP{string(rune('a' + rng.IntN(3))), rng.Int32N(5)})
		}
		slices.SortFunc(r.parts, cmpTP)
		r.parts = slices.CompactFunc(r.parts, func(a, b TP) bool { return cmpTP(a, b) == 0 })
		var tps []TP
		for range rng.IntN(20) {
			tps = append(tps, TP{string(rune('a' + rng.IntN(3))), rng.Int32N(5)})
		}
		want := slices.Clone(r.parts)
		wantAdded := false
		for _, tp := range tps {
			if i, ok := slices.BinarySearchFunc(want, tp, cmpTP); !ok {
				want = slices.Insert(want, i, tp)
				wantAdded = true
			}
		}
		before := slices.Clone(r.parts)
		got, added := r.withParts(tps)
		if !slices.Equal(got, want) || added != wantAdded {
			t.Fatalf("withParts(%v, %v) = %v %v, want %v %v", r.parts, tps, got, added, want, wantAdded)
		}
		if !slices.Equal(r.parts, before) {
			t.Fatal("withParts changed the record's partitions")
		}
	}
}

// BenchmarkAddPartitions: one transaction given n partitions in one
// AddPartitionsToTxn. Inserted one at a time this was quadratic (30 s at
// 300,000).
func BenchmarkAddPartitions(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 300_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			tps := make([]TP, n)
			for i := range tps {
				tps[i] = TP{"topic-" + strconv.Itoa(i%1000), int32(n - i)}
			}
			c := open(b, &fakeLog{}, newFakeStore())
			for b.Loop() {
				b.StopTimer()
				p := initPID(c, "tx", 60000, -1, -1)
				b.StartTimer()
				if code := addParts(c, "tx", p.pid, p.epoch, tps...); code != 0 {
					b.Fatal(codeName(code))
				}
				b.StopTimer() // the end (a marker per partition) is not measured
				if e := endTxn(c, "tx", p.pid, p.epoch, false, false); e.code != 0 {
					b.Fatal(codeName(e.code))
				}
				waitState(b, c, "tx", CompleteAbort)
				b.StartTimer()
			}
		})
	}
}

// TestLimits: -transaction-max-ids and -transaction-max-groups bound the
// coordinator's state; oversized ids are refused before they are stored.
func TestLimits(t *testing.T) {
	lg, st := &fakeLog{}, newFakeStore()
	c, err := Open(Config{Log: lg, Store: st, AbortCheckInterval: time.Hour, MaxIDs: 3, MaxGroups: 2, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ps [3]pidEpoch
	for i := range ps {
		ps[i] = initPID(c, "tx"+strconv.Itoa(i), 60000, -1, -1)
		expect(t, "init", ps[i].code, 0)
	}
	first := ps[0]
	expect(t, "a fourth id", initPID(c, "tx3", 60000, -1, -1).code, errPolicy)
	expect(t, "an existing id again", initPID(c, "tx0", 60000, -1, -1).code, 0)
	first.epoch++
	expect(t, "group 1", addOffsets(c, "tx0", first.pid, first.epoch, "g1"), 0)
	expect(t, "group 2", addOffsets(c, "tx0", first.pid, first.epoch, "g2"), 0)
	expect(t, "group 2 again", addOffsets(c, "tx0", first.pid, first.epoch, "g2"), 0)
	expect(t, "group 3", addOffsets(c, "tx0", first.pid, first.epoch, "g3"), errPolicy)
	expect(t, "oversized transactional id", initPID(c, strings.Repeat("x", MaxIDBytes+1), 60000, -1, -1).code, kerr.InvalidRequest.Code)
	long := strings.Repeat("g", 70_000)
	expect(t, "oversized group", addOffsets(c, "tx1", ps[1].pid, ps[1].epoch, long), kerr.InvalidGroupID.Code)
	c.Close()
	// The stored state stays decodable: a group id over the state
	// encoding's u16 length, once accepted, stopped the next start.
	c2, err := Open(Config{Log: lg, Store: st, AbortCheckInterval: time.Hour, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	c2.Close()
}

// BenchmarkIDMemory reports the heap one transactional id costs the
// coordinator and its store (the figure behind -transaction-max-ids).
func BenchmarkIDMemory(b *testing.B) {
	const n = 20_000
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		st := newFakeStore()
		c := open(b, &fakeLog{}, st)
		b.StartTimer()
		for i := range n {
			if p := initPID(c, "transactional-id-"+strconv.Itoa(i), 60000, -1, -1); p.code != 0 {
				b.Fatal(codeName(p.code))
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/id")
		runtime.KeepAlive(c)
		runtime.KeepAlive(st)
		b.StartTimer()
	}
}

// setEpoch moves id's durable epoch (tests reach the end of the range
// without 32,000 InitProducerIds).
func setEpoch(c *Coordinator, id string, epoch int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[id].rec.epoch = epoch
}

// TestEpochExhaustionFencing: at epoch 32766 (the last a producer is
// given) an epoch fence must still fence: Kafka bumps to 32767 for the
// markers, so the zombie's epoch is stale, and the next InitProducerId
// rotates the producer id.
func TestEpochExhaustionFencing(t *testing.T) {
	lg := &fakeLog{}
	c := open(t, lg, newFakeStore())
	p := initPID(c, "tx", 60000, -1, -1)
	setEpoch(c, "tx", math.MaxInt16-2)
	z := initPID(c, "tx", 60000, -1, -1)
	if z.code != 0 || z.pid != p.pid || z.epoch != math.MaxInt16-1 {
		t.Fatalf("bump to the last epoch: %+v", z)
	}
	expect(t, "zombie's add", addParts(c, "tx", z.pid, z.epoch, a0), 0)
	expect(t, "new producer's init fences", initPID(c, "tx", 60000, -1, -1).code, errConcurrent)
	waitState(t, c, "tx", CompleteAbort)
	if m := lg.written(); len(m) != 1 || m[0].epoch != math.MaxInt16 {
		t.Fatalf("fence markers %+v, want epoch %d", m, math.MaxInt16)
	}
	expect(t, "zombie's add after the fence", addParts(c, "tx", z.pid, z.epoch, a1), errFenced)
	expect(t, "zombie's end after the fence", endTxn(c, "tx", z.pid, z.epoch, true, false).code, errFenced)
	n := initPID(c, "tx", 60000, -1, -1)
	if n.code != 0 || n.pid == z.pid || n.epoch != 0 {
		t.Fatalf("init after the fence: %+v, want a new producer id at epoch 0", n)
	}
	expect(t, "zombie's KIP-360 recovery", initPID(c, "tx", 60000, z.pid, z.epoch).code, errFenced)
	expect(t, "zombie's add after the rotation", addParts(c, "tx", z.pid, z.epoch, a1), errBadMapping)
	expect(t, "new producer's add", addParts(c, "tx", n.pid, n.epoch, a1), 0)
}

// TestEpochExhaustionEndTxn: EndTxn v5 at epoch 32766 bumps the markers'
// epoch to 32767 and hands the producer a new producer id at epoch 0; a
// retry of that end gets the same answer.
func TestEpochExhaustionEndTxn(t *testing.T) {
	lg := &fakeLog{}
	c := open(t, lg, newFakeStore())
	p := initPID(c, "tx", 60000, -1, -1)
	setEpoch(c, "tx", math.MaxInt16-1)
	p.epoch = math.MaxInt16 - 1
	expect(t, "add", addParts(c, "tx", p.pid, p.epoch, a0), 0)
	e := endTxn(c, "tx", p.pid, p.epoch, true, true)
	if e.code != 0 || e.pid == p.pid || e.epoch != 0 {
		t.Fatalf("end at the last epoch: %+v, want a new producer id at epoch 0", e)
	}
	if m := lg.written(); len(m) != 1 || m[0].epoch != math.MaxInt16 || m[0].pid != p.pid {
		t.Fatalf("markers %+v, want producer %d at epoch %d", m, p.pid, math.MaxInt16)
	}
	if r := endTxn(c, "tx", p.pid, p.epoch, true, true); r != e {
		t.Fatalf("retry: %+v, want %+v", r, e)
	}
	expect(t, "old producer's add", addParts(c, "tx", p.pid, p.epoch, a0), errBadMapping)
	expect(t, "new producer's add", addParts(c, "tx", e.pid, e.epoch, a0), 0)
}

// TestAddedPartsAppended: partitions added to an ongoing transaction are
// appended to its stored state, not written with the whole state again,
// and a restart reads them back merged.
func TestAddedPartsAppended(t *testing.T) {
	lg, st := &fakeLog{}, newFakeStore()
	c := open(t, lg, st)
	p := initPID(c, "tx", 60000, -1, -1)
	expect(t, "add", addParts(c, "tx", p.pid, p.epoch, TP{"b", 0}), 0)
	expect(t, "add more", addParts(c, "tx", p.pid, p.epoch, a1, TP{"b", 0}), 0)
	expect(t, "add more", addParts(c, "tx", p.pid, p.epoch, a0), 0)
	expect(t, "add offsets", addOffsets(c, "tx", p.pid, p.epoch, "g"), 0) // a whole state
	expect(t, "add after", addParts(c, "tx", p.pid, p.epoch, TP{"c", 3}), 0)
	st.mu.Lock()
	appends := st.appends
	st.mu.Unlock()
	if appends != 3 {
		t.Fatalf("%d appends, want 3", appends)
	}
	c.Close()
	c2 := open(t, lg, st)
	want := []TP{a0, a1, {"b", 0}, {"c", 3}}
	r := waitState(t, c2, "tx", Ongoing)
	if !slices.Equal(r.parts, want) || !slices.Equal(r.groups, []string{"g"}) {
		t.Fatalf("after restart: %v %v, want %v [g]", r.parts, r.groups, want)
	}
	if e := endTxn(c2, "tx", p.pid, p.epoch, true, false); e.code != 0 {
		t.Fatalf("end: %+v", e)
	}
	if m := lg.written(); len(m) != 4 {
		t.Fatalf("markers %+v, want 4", m)
	}
}

// BenchmarkAddPartitionsOneByOne: a transaction grown one partition per
// AddPartitionsToTxn. Each add wrote the whole state (quadratic bytes:
// B/add grows with n); it now writes the partition added.
func BenchmarkAddPartitionsOneByOne(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			st := newFakeStore()
			c := open(b, &fakeLog{}, st)
			for b.Loop() {
				b.StopTimer()
				p := initPID(c, "tx", 60000, -1, -1)
				st.mu.Lock()
				st.written = 0
				st.mu.Unlock()
				b.StartTimer()
				for i := range n {
					if code := addParts(c, "tx", p.pid, p.epoch, TP{"topic", int32(i)}); code != 0 {
						b.Fatal(codeName(code))
					}
				}
				b.StopTimer()
				st.mu.Lock()
				b.ReportMetric(float64(st.written)/float64(n), "B/add")
				st.mu.Unlock()
				if e := endTxn(c, "tx", p.pid, p.epoch, false, false); e.code != 0 {
					b.Fatal(codeName(e.code))
				}
				waitState(b, c, "tx", CompleteAbort)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkAbortManyTimedOut: n transactions, each with a partition, all
// past their timeout at once; one abortTimedOut ends them all.
func BenchmarkAbortManyTimedOut(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				lg := &fakeLog{}
				c := open(b, lg, newFakeStore())
				clock := time.Now()
				c.now = func() time.Time { return clock }
				for i := range n {
					id := "tx" + strconv.Itoa(i)
					p := initPID(c, id, 1000, -1, -1)
					if code := addParts(c, id, p.pid, p.epoch, TP{"t", int32(i % 16)}); code != 0 {
						b.Fatal(codeName(code))
					}
				}
				clock = clock.Add(2 * time.Second)
				b.StartTimer()
				c.abortTimedOut()
				for i := range n {
					waitState(b, c, "tx"+strconv.Itoa(i), CompleteAbort)
				}
				b.StopTimer()
				c.Close()
				b.StartTimer()
			}
		})
	}
}

// TestExpiryDuringInitProducerID: a transactional id expires
// (transactional.id.expiration.ms) while an InitProducerId for it waits
// for a new producer id (its epoch is exhausted). The request answers a
// code the client retries, without bringing the expired state back, and
// the retry starts the id afresh.
func TestExpiryDuringInitProducerID(t *testing.T) {
	lg, st := &fakeLog{}, newFakeStore()
	c := open(t, lg, st)
	clock := time.Now()
	c.now = func() time.Time { return clock }
	p := initPID(c, "tx", 60000, -1, -1)
	setEpoch(c, "tx", math.MaxInt16-1)
	lg.mu.Lock()
	lg.idHold, lg.idAsked = make(chan struct{}), make(chan struct{})
	lg.mu.Unlock()
	res := make(chan pidEpoch, 1)
	go c.InitProducerID("tx", 60000, -1, -1, func(pid int64, epoch int16, code int16) { res <- pidEpoch{pid, epoch, code} })
	<-lg.idAsked // waiting for the rotation's producer id
	clock = clock.Add(c.cfg.IDExpiration + time.Second)
	c.expireIDs()
	deadline := time.Now().Add(10 * time.Second)
	gone := func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.byID["tx"] == nil
	}
	for !gone() {
		if time.Now().After(deadline) {
			t.Fatal("the idle id never expired")
		}
		time.Sleep(time.Millisecond)
	}
	lg.mu.Lock()
	hold := lg.idHold
	lg.idHold = nil
	lg.mu.Unlock()
	close(hold)
	r := <-res
	if r.code != errCoordNotAvail && r.code != errConcurrent {
		t.Fatalf("init across the expiry: %+v, want a retriable code", r)
	}
	if s := st.Txns(); len(s) != 0 {
		t.Fatalf("expired state written back: %d ids", len(s))
	}
	n := initPID(c, "tx", 60000, -1, -1)
	if n.code != 0 || n.pid == p.pid || n.epoch != 0 {
		t.Fatalf("retry: %+v, want a new producer id at epoch 0", n)
	}
}
