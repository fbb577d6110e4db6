package storage

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
	"github.com/rs/zerolog"
)

// testColdCacheBytes is the cold reader cache of stores opened by
// openTiered (0: the default). Tests that set it restore it.
var testColdCacheBytes int64

// tieredCompact is a store whose Cold is a real tier.Cold on a MemStore,
// uploaded segments freed at once (HotBytes 1), compaction run by hand.
type tieredCompact struct {
	t     testing.TB
	s     *Store
	u     *tier.Uploader
	c     *tier.Cold
	clock *fakeClock
}

func openTieredCompact(t *testing.T, fsys vfs.FS, ms *tier.MemStore, clock *fakeClock) *tieredCompact {
	t.Helper()
	return openTieredCompactAttempts(t, fsys, ms, clock, 0)
}

// openTieredCompactAttempts is openTieredCompact with the uploader's
// attempts per request (0: its default).
func openTieredCompactAttempts(t *testing.T, fsys vfs.FS, ms *tier.MemStore, clock *fakeClock, attempts int) *tieredCompact {
	t.Helper()
	return openTieredWith(t, retentionConfig(fsys, clock), ms, clock, 32<<10, attempts)
}

// openTieredWith opens cfg's store with a Cold on ms (attempts: the
// uploader's per request, 0 its default).
func openTieredWith(t testing.TB, cfg Config, ms tier.ObjectStore, clock *fakeClock, objectBytes int64, attempts int) *tieredCompact {
	t.Helper()
	lc := &lateCold{}
	cfg.Cold = lc
	cfg.HotBytes = 1
	cfg.CompactionInterval = 0
	s := mustOpen(t, cfg)
	u := tier.NewUploader(tier.UploaderConfig{Store: ms, Source: s, Log: zerolog.Nop(), ObjectBytes: objectBytes,
		Attempts: attempts, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	c := tier.NewCold(tier.ColdConfig{Uploader: u, Reader: tier.NewReader(tier.ReaderConfig{Store: ms, CacheBytes: testColdCacheBytes}), Log: zerolog.Nop(),
		Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	lc.c.Store(c)
	tc := &tieredCompact{t: t, s: s, u: u, c: c, clock: clock}
	t.Cleanup(tc.close)
	return tc
}

func (tc *tieredCompact) close() {
	tc.s.Close()
	tc.c.Close()
}

// upload seals every shard's active segment, uploads everything and waits
// until the WAL holds nothing of topic's partition 0: every read then
// goes to the bucket.
func (tc *tieredCompact) upload(topic string) {
	tc.t.Helper()
	// A segment is freed only below a newer sealed one with its
	// checkpoint: roll, write a filler topic, roll again.
	tc.roll()
	if _, ok := tc.s.Topic("filler"); !ok {
		mustCreate(tc.t, tc.s, "filler", 1)
	}
	appendWait(tc.t, tc.s, "filler", 0, makeBatch(batchSpec{value: []byte("x")}), true)
	tc.roll()
	waitCheckpoints(tc.t, tc.s)
	if err := tc.u.UploadAll(context.Background()); err != nil {
		tc.t.Fatalf("UploadAll: %v", err)
	}
	eventually(tc.t, "the WAL to free what was uploaded", func() bool {
		ls, err := tc.s.LocalStart(topic, 0)
		_, hwm, _ := tc.s.Offsets(topic, 0)
		tc.s.maybeFree()
		return err == nil && ls == hwm
	})
}

func (tc *tieredCompact) roll() {
	for _, sh := range tc.s.shards {
		var seg *segment
		_ = sh.onWriter(func() { seg = sh.seg })
		tc.s.rollActive(sh, seg)
	}
}

// manifest returns partition 0's manifest, its cleaned end (end of the
// last Gen > 0 object, 0 if none) and the bytes of its objects.
func (tc *tieredCompact) manifest(topic string) (*tier.Manifest, int64, int64) {
	tc.t.Helper()
	ti, _ := tc.s.Topic(topic)
	m, err := tc.c.Manifest(context.Background(), tierOf(ti, 0))
	if err != nil || m == nil {
		tc.t.Fatalf("manifest: %v", err)
	}
	var end, size int64
	for _, o := range m.Objects {
		if o.Gen > 0 {
			end = o.LastOffset + 1
		}
		size += o.Size
	}
	return m, end, size
}

func TestCompactTieredLatestPerKey(t *testing.T) {
	for _, codec := range []int8{codecNone, codecZstd} {
		t.Run(fmt.Sprint("codec", codec), func(t *testing.T) {
			fsys, ms := vfs.NewMemFS(), tier.NewMemStore()
			clock := &fakeClock{}
			clock.ms.Store(1_000_000)
			tc := openTieredCompact(t, fsys, ms, clock)
			f := newFixture(t, tc.s, clock, codec, nil)
			f.produce(50, 7, 360, 0)
			tc.upload("c")
			_, _, before := tc.manifest("c")
			tc.s.Compact()
			m, end, after := tc.manifest("c")
			_, hwm, _ := tc.s.Offsets("c", 0)
			if end != hwm || tc.s.CompactionStats().TieredRuns != 1 {
				t.Fatalf("cleaned end %d, hwm %d, stats %+v", end, hwm, tc.s.CompactionStats())
			}
			t.Logf("bucket data %d -> %d bytes, %d objects", before, after, len(m.Objects))
			if after*5 > before {
				t.Fatalf("bucket data %d -> %d bytes for 50 keys of 2520 records", before, after)
			}
			want := readLog(t, tc.s, "c", 0)
			f.check(want, end, true)
			// More data, a second cleaning over the first and the new.
			f.produce(50, 7, 100, 0)
			tc.upload("c")
			tc.s.Compact()
			_, end, _ = tc.manifest("c")
			want = readLog(t, tc.s, "c", 0)
			f.check(want, end, true)

			// A restart reads the same from the bucket.
			tc.close()
			tc2 := openTieredCompact(t, fsys, ms, clock)
			f.s = tc2.s
			got := readLog(t, tc2.s, "c", 0)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after restart: %d records, before %d", len(got), len(want))
			}
			tc2.s.Compact() // nothing dirty: no rewrite
			if n := tc2.s.CompactionStats().TieredRuns; n != 0 {
				t.Fatalf("%d cleanings with nothing dirty", n)
			}
			for _, k := range ms.Keys() {
				if strings.HasPrefix(k, "topics/c-") && strings.Contains(k, "/data/") && !strings.Contains(k, "-g") {
					t.Fatalf("uploaded object %s left after the cleaning", k)
				}
			}
		})
	}
}

func TestCompactTieredTombstones(t *testing.T) {
	fsys, ms := vfs.NewMemFS(), tier.NewMemStore()
	clock := &fakeClock{}
	clock.ms.Store(1_000_000)
	tc := openTieredCompact(t, fsys, ms, clock)
	f := newFixture(t, tc.s, clock, codecNone, map[string]string{"delete.retention.ms": "60000"})
	f.produce(20, 5, 360, 3) // every third record a tombstone
	tc.upload("c")
	tc.s.Compact()
	_, end, _ := tc.manifest("c")
	got := readLog(t, tc.s, "c", 0)
	f.check(got, end, true)
	tombs := 0
	for _, r := range got {
		if r.tomb {
			tombs++
		}
	}
	if tombs == 0 {
		t.Fatal("no tombstone after the first cleaning")
	}
	clock.ms.Add(59_000)
	tc.s.Compact() // not yet due
	if n := tc.s.CompactionStats().TieredRuns; n != 1 {
		t.Fatalf("%d cleanings before delete.retention.ms", n)
	}
	clock.ms.Add(2_000)
	tc.s.Compact()
	if n := tc.s.CompactionStats().TieredRuns; n != 2 {
		t.Fatalf("%d cleanings after delete.retention.ms", n)
	}
	got = readLog(t, tc.s, "c", 0)
	// The range's last batch is kept whole when cleaning would empty it.
	m, _, _ := tc.manifest("c")
	f.check(got, end, false)
	for _, o := range m.Objects {
		if o.CleanedAt >= 0 {
			t.Fatalf("object [%d, %d] still has tombstones cleaned at %d", o.BaseOffset, o.LastOffset, o.CleanedAt)
		}
	}
	clock.ms.Add(120_000)
	tc.s.Compact() // nothing dirty, no live tombstones: no rewrite
	if n := tc.s.CompactionStats().TieredRuns; n != 2 {
		t.Fatalf("%d cleanings with nothing to do", n)
	}
}

func TestCompactTieredTransactions(t *testing.T) {
	fsys, ms := vfs.NewMemFS(), tier.NewMemStore()
	clock := &fakeClock{}
	clock.ms.Store(1_000_000)
	tc := openTieredCompact(t, fsys, ms, clock)
	s := tc.s
	f := newFixture(t, s, clock, codecNone, nil)
	pid, epoch, err := s.InitProducerID()
	if err != nil {
		t.Fatal(err)
	}
	var committed []kv
	for i := range 10 {
		committed = append(committed, kv{fmt.Appendf(nil, "t%d", i), []byte("committed")})
	}
	base := mustAppend(t, s, "c", 0, makeTxnKeyed(t, pid, epoch, 0, committed...))
	mustMarker(t, s, "c", 0, pid, epoch, true)
	for i, r := range committed {
		f.sent[base+int64(i)] = logRec{off: base + int64(i), key: string(r.key), val: string(r.val)}
	}
	aborted := mustAppend(t, s, "c", 0, makeTxnKeyed(t, pid, epoch, 10, committed[:5]...))
	mustMarker(t, s, "c", 0, pid, epoch, false)
	f.produce(50, 7, 300, 0)
	tc.upload("c")
	s.Compact()
	_, end, _ := tc.manifest("c")
	if end <= aborted {
		t.Fatalf("cleaned end %d does not pass the transactions", end)
	}
	got := readLog(t, s, "c", 0)
	markers := 0
	txnKeys := map[string]int64{}
	for _, r := range got {
		switch {
		case r.ctl:
			markers++
		case strings.HasPrefix(r.key, "t"):
			if r.val != "committed" || r.off < base || r.off >= base+10 {
				t.Fatalf("transactional record %+v survived (committed at %d..%d, aborted at %d..)", r, base, base+9, aborted)
			}
			txnKeys[r.key] = r.off
		}
	}
	if markers != 2 || len(txnKeys) != 10 {
		t.Fatalf("%d markers, committed keys %v", markers, txnKeys)
	}
	f.check(got, end, true)
}

// TestCompactTieredFaultAtEveryStep fails each PUT and DELETE of a
// cleaning in turn (with one attempt each, as a crash there stops it):
// reads then give the uncompacted or the compacted log, nothing lost or
// twice; a restart (new Store and Cold on the same bucket) and the next
// pass finish the cleaning and leave no object the manifest does not
// reference.
func TestCompactTieredFaultAtEveryStep(t *testing.T) {
	for _, op := range []tier.Op{tier.OpPut, tier.OpDelete} {
		for n := 1; ; n++ {
			fsys, ms := vfs.NewMemFS(), tier.NewMemStore()
			clock := &fakeClock{}
			clock.ms.Store(1_000_000)
			tc := openTieredCompactAttempts(t, fsys, ms, clock, 1)
			f := newFixture(t, tc.s, clock, codecNone, nil)
			f.produce(30, 7, 200, 5)
			tc.upload("c")
			before := ms.Calls(op)
			ms.FailNth(op, n, nil)
			tc.s.Compact()
			if ms.Calls(op)-before < n {
				t.Logf("op %d: %d steps failed in turn", op, n-1)
				break
			}
			_, end, _ := tc.manifest("c")
			f.check(readLog(t, tc.s, "c", 0), end, true)
			tc.close()

			tc = openTieredCompactAttempts(t, fsys, ms, clock, 1)
			f.s = tc.s
			tc.s.Compact()
			m, end, _ := tc.manifest("c")
			_, hwm, _ := tc.s.Offsets("c", 0)
			if end != hwm {
				t.Fatalf("op %d step %d: cleaned end %d after the restart's pass, hwm %d", op, n, end, hwm)
			}
			f.check(readLog(t, tc.s, "c", 0), end, true)
			refs := map[string]bool{}
			for i := range m.Objects {
				refs[m.ObjectKey(i)] = true
			}
			for _, k := range ms.Keys() {
				if strings.HasPrefix(k, "topics/c-") && strings.Contains(k, "/data/") && !refs[k] {
					t.Fatalf("op %d step %d: %s left unreferenced", op, n, k)
				}
			}
			tc.close()
		}
	}
}

// TestCompactTieredOffsetForTime: a timestamp lookup in a compacted tier
// answers the first surviving batch at or after the time.
func TestCompactTieredOffsetForTime(t *testing.T) {
	fsys, ms := vfs.NewMemFS(), tier.NewMemStore()
	clock := &fakeClock{}
	clock.ms.Store(1_000_000)
	tc := openTieredCompact(t, fsys, ms, clock)
	f := newFixture(t, tc.s, clock, codecNone, nil)
	f.produce(50, 7, 100, 0)
	_, phase2, _ := tc.s.Offsets("c", 0)
	clock.ms.Store(2_000_000)
	f.produce(50, 7, 100, 0)
	tc.upload("c")
	tc.s.Compact()
	got := readLog(t, tc.s, "c", 0)
	first := int64(-1)
	for _, r := range got {
		if r.off >= phase2 {
			first = r.off
			break
		}
	}
	if first < 0 || first == phase2 {
		t.Fatalf("first record from %d on: %d; want one compacted away first", phase2, first)
	}
	want := phase2 + (first-phase2)/7*7
	off, ts, err := tc.s.OffsetForTime("c", 0, 2_000_000)
	if err != nil || off != want || ts < 2_000_000 {
		t.Fatalf("OffsetForTime: %d (ts %d), %v; want batch %d", off, ts, err, want)
	}
	if off, _, err := tc.s.OffsetForTime("c", 0, 3_000_000); err != nil || off != -1 {
		t.Fatalf("OffsetForTime past the end: %d, %v", off, err)
	}
}

// TestCompactTieredConcurrentReaders: readers going through the log from
// offset 0 over and over while cleanings replace and delete the objects
// under them never fail and never see a record other than the one
// produced at its offset.
func TestCompactTieredConcurrentReaders(t *testing.T) {
	fsys, ms := vfs.NewMemFS(), tier.NewMemStore()
	clock := &fakeClock{}
	clock.ms.Store(1_000_000)
	// No cache: every cold read GETs, so a reader holding the manifest
	// before a cleaning meets the objects it deleted.
	testColdCacheBytes = 1
	defer func() { testColdCacheBytes = 0 }()
	tc := openTieredCompact(t, fsys, ms, clock)
	f := newFixture(t, tc.s, clock, codecNone, nil)
	f.produce(40, 7, 150, 0)
	tc.upload("c")
	// Every bucket call takes a while, so a cleaning publishes and
	// deletes while readers hold the manifest before it.
	ms.SetLatency(300 * time.Microsecond)
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var reads atomic.Int64
	for range 3 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				_, hwm, _ := tc.s.Offsets("c", 0)
				for next := int64(0); next < hwm; {
					res := tc.s.Read("c", 0, next, 2000)
					if res.Err != nil {
						errs <- fmt.Errorf("read at %d: %w", next, res.Err)
						return
					}
					var err error
					next, err = checkRead(f, res, next)
					res.Release()
					if err != nil {
						errs <- err
						return
					}
				}
				reads.Add(1)
			}
		}()
	}
	for range 5 {
		f.produce(40, 7, 60, 0)
		tc.upload("c")
		tc.s.Compact()
	}
	eventually(t, "readers through the log", func() bool { return reads.Load() >= 6 })
	close(stop)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := tc.s.CompactionStats().TieredRuns; n < 5 {
		t.Fatalf("%d cleanings", n)
	}
	_, end, _ := tc.manifest("c")
	f.check(readLog(t, tc.s, "c", 0), end, true)
}

// checkRead checks a read's records from next on against what f sent and
// returns the offset after its last batch.
func checkRead(f *compactFixture, res ReadResult, next int64) (int64, error) {
	if len(res.Chunks) == 0 {
		return next, fmt.Errorf("empty read at %d", next)
	}
	for _, c := range res.Chunks {
		b := make([]byte, c.Len)
		if _, err := c.File.ReadAt(b, c.Off); err != nil {
			return next, err
		}
		err := eachBatch(b, func(batch []byte, h *BatchHeader) error {
			last := h.BaseOffset + int64(h.LastOffsetDelta)
			if last < next {
				return nil
			}
			recs, err := batchRecords(batch, h, nil)
			if err != nil {
				return err
			}
			var bad error
			if err := eachRecord(recs, h.NumRecords, func(r *rawRecord) {
				off := h.BaseOffset + int64(r.offsetDelta)
				f.mu.Lock()
				want, ok := f.sent[off] // not yet when the append's answer is still on its way
				f.mu.Unlock()
				if ok && off >= next && (want.key != string(r.key) || (!r.nullValue && want.val != string(recordValue(r.raw)))) {
					bad = fmt.Errorf("offset %d holds key %q, sent %q", off, r.key, want.key)
				}
			}); err != nil {
				return err
			}
			next = last + 1
			return bad
		})
		if err != nil {
			return next, err
		}
	}
	return next, nil
}
