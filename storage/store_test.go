package storage

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/klite/klite/vfs"
)

func TestAppendReadRoundTripAcrossRolls(t *testing.T) {
	fsys := vfs.NewMemFS()
	cfg := testConfig(fsys)
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 1)
	var want [][]byte
	off := int64(0)
	for i := 0; i < 120; i++ {
		n := 1 + i%4
		val := bytes.Repeat([]byte{byte(i)}, 500+i*13)
		b := makeBatch(batchSpec{records: n, value: val, ts: int64(1000 + i)})
		r := appendWait(t, s, "t", 0, b, i%2 == 0)
		if r.Err != nil || r.BaseOffset != off {
			t.Fatalf("append %d: %+v, want base %d", i, r, off)
		}
		off += int64(n)
		want = append(want, val)
	}
	if s.Stats().SegmentsRoll < 2 {
		t.Fatalf("expected segment rolls, stats %+v", s.Stats())
	}
	// The last append is not durable: acknowledged after its write, visible
	// after its fsync.
	eventually(t, "high watermark at the end", func() bool { _, hwm, _ := s.Offsets("t", 0); return hwm == off })
	check := func(s *Store) {
		t.Helper()
		got := readAllBatches(t, s, "t", 0)
		if len(got) != len(want) {
			t.Fatalf("read %d batches, want %d", len(got), len(want))
		}
		next := int64(0)
		for i, b := range got {
			if b.base != next {
				t.Fatalf("batch %d base %d, want %d", i, b.base, next)
			}
			next += int64(b.records)
			for _, v := range b.values {
				if !bytes.Equal(v, want[i]) {
					t.Fatalf("batch %d value mismatch", i)
				}
			}
		}
		if _, hwm, _ := s.Offsets("t", 0); hwm != off {
			t.Fatalf("hwm %d, want %d", hwm, off)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, cfg)
	defer s.Close()
	check(s)
	r := appendWait(t, s, "t", 0, makeBatch(batchSpec{}), true)
	if r.Err != nil || r.BaseOffset != off {
		t.Fatalf("append after reopen: %+v, want base %d", r, off)
	}
}

func TestOffsetsContiguousAcrossPartitionsAndShards(t *testing.T) {
	cfg := testConfig(vfs.NewMemFS())
	cfg.Shards = 3
	s := mustOpen(t, cfg)
	defer s.Close()
	topics := []string{"a", "b", "c"}
	for _, tp := range topics {
		mustCreate(t, s, tp, 4)
	}
	type key struct {
		t string
		p int32
	}
	var mu sync.Mutex
	bases := map[key][]int64{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				k := key{topics[(w+i)%3], int32(i % 4)}
				n := 1 + (w+i)%3
				r := appendWait(t, s, k.t, k.p, makeBatch(batchSpec{records: n, value: []byte("v")}), i%3 != 0)
				if r.Err != nil {
					t.Errorf("append: %v", r.Err)
					return
				}
				mu.Lock()
				bases[k] = append(bases[k], r.BaseOffset)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for k := range bases {
		// Appends that were not durable are acknowledged after their write
		// and become visible after the fsync that follows; wait for it.
		var total int64
		for i := range bases[k] {
			total = max(total, bases[k][i])
		}
		eventually(t, fmt.Sprintf("%v high watermark past %d", k, total), func() bool {
			_, hwm, _ := s.Offsets(k.t, k.p)
			return hwm > total
		})
		got := readAllBatches(t, s, k.t, k.p)
		next := int64(0)
		for _, b := range got {
			if b.base != next {
				t.Fatalf("%v: base %d, want %d", k, b.base, next)
			}
			next += int64(b.records)
		}
		if len(got) != len(bases[k]) {
			t.Fatalf("%v: %d batches read, %d appended", k, len(got), len(bases[k]))
		}
	}
}

// TestGroupCommitBatches holds the first fdatasync of each round until
// every append of the round has been written and handed to the syncer, so
// the rest of the round must share one fdatasync. It waits on those
// conditions, not on time, and opens the gate on every exit path, so a
// failure cannot leave Close waiting on the held fdatasync.
func TestGroupCommitBatches(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.OSFS{})
	cfg := Config{Dir: t.TempDir(), FS: ffs, Shards: 1, SegmentBytes: 4 << 20, Prealloc: PreallocNone}
	s := mustOpen(t, cfg)
	defer s.Close()
	defer ffs.SetInjector(nil)
	mustCreate(t, s, "t", 4)
	sh := s.shards[0]
	// Fewer appends per round than groups in flight, so the writer never
	// waits for the held fsync.
	const rounds, appenders = 5, groupsInFlight / 2
	for round := 0; round < rounds; round++ {
		gate := make(chan struct{})
		var openOnce sync.Once
		openGate := func() { openOnce.Do(func() { close(gate) }) }
		defer openGate() // runs before the deferred Close
		var gated atomic.Bool
		ffs.SetInjector(func(op vfs.Op) error {
			if op.Kind == vfs.OpSync && vfs.MatchBase("*.wal", op.Name) && !gated.Swap(true) {
				<-gate
			}
			return nil
		})
		base, handed := s.Stats(), sh.handed.Load()
		var wg sync.WaitGroup
		for a := 0; a < appenders; a++ {
			wg.Add(1)
			s.Append("t", int32(a%4), makeBatch(batchSpec{value: []byte("x")}), true, func(r AppendResult) {
				if r.Err != nil {
					t.Errorf("append: %v", r.Err)
				}
				wg.Done()
			})
		}
		// Appends is counted after each group's write and before it is
		// handed over: once all are counted, groups is final, and handed
		// catching up with it means every group is with the syncer.
		eventually(t, "all appends written and handed to the syncer", func() bool {
			st := s.Stats()
			return st.Appends-base.Appends == appenders && sh.handed.Load()-handed == st.Groups-base.Groups
		})
		eventually(t, "an fdatasync held", gated.Load)
		openGate()
		waitGroup(t, &wg, "durable acks")
		st := s.Stats()
		fsyncs := st.Fsyncs - base.Fsyncs
		if fsyncs > 2 {
			t.Fatalf("%d durable appends in %d groups took %d fsyncs; want the held one plus one", appenders, st.Groups-base.Groups, fsyncs)
		}
		t.Logf("round %d: %d appends, %d groups, %d fsyncs", round, appenders, st.Groups-base.Groups, fsyncs)
	}
}

// TestDurableAckAfterFsync: while the fsync is held, a durable append is
// written but neither acknowledged nor visible; a non-durable one is
// acknowledged (after its write) but not visible.
func TestDurableAckAfterFsync(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.NewMemFS())
	s := mustOpen(t, testConfig(ffs))
	defer s.Close()
	mustCreate(t, s, "t", 1)
	appendWait(t, s, "t", 0, makeBatch(batchSpec{}), true)

	gate := make(chan struct{})
	var openOnce sync.Once
	openGate := func() { openOnce.Do(func() { close(gate) }) }
	defer openGate()
	var syncs atomic.Int64
	ffs.SetInjector(func(op vfs.Op) error {
		if op.Kind == vfs.OpSync && vfs.MatchBase("*.wal", op.Name) {
			<-gate
		}
		return nil
	})
	ffs.SetAfter(func(op vfs.Op, err error) {
		if op.Kind == vfs.OpSync && vfs.MatchBase("*.wal", op.Name) && err == nil {
			syncs.Add(1)
		}
	})
	writes := ffs.Count(vfs.OpWrite)
	durable := make(chan AppendResult, 1)
	var syncsAtAck atomic.Int64
	s.Append("t", 0, makeBatch(batchSpec{}), true, func(r AppendResult) {
		syncsAtAck.Store(syncs.Load())
		durable <- r
	})
	eventually(t, "durable write", func() bool { return ffs.Count(vfs.OpWrite) > writes })
	r := appendWait(t, s, "t", 0, makeBatch(batchSpec{}), false)
	if r.Err != nil || r.BaseOffset != 2 {
		t.Fatalf("non-durable append: %+v", r)
	}
	select {
	case r := <-durable:
		t.Fatalf("durable append acknowledged before its fsync: %+v", r)
	default:
	}
	if _, hwm, _ := s.Offsets("t", 0); hwm != 1 {
		t.Fatalf("hwm %d before fsync, want 1", hwm)
	}
	if res := s.Read("t", 0, 1, 1<<20); res.Err != nil || len(res.Chunks) != 0 {
		t.Fatalf("read at hwm gave %d chunks, %v", len(res.Chunks), res.Err)
	}
	if res := s.Read("t", 0, 2, 1<<20); !errors.Is(res.Err, ErrOffsetOutOfRange) {
		t.Fatalf("read of unsynced offset: %v", res.Err)
	}
	openGate()
	select {
	case r := <-durable:
		if r.Err != nil || r.BaseOffset != 1 {
			t.Fatalf("durable append: %+v", r)
		}
	case <-timeAfter():
		t.Fatal("durable append not acknowledged")
	}
	if syncsAtAck.Load() == 0 {
		t.Fatal("durable ack ran before any fsync completed")
	}
	eventually(t, "hwm 3", func() bool { _, hwm, _ := s.Offsets("t", 0); return hwm == 3 })
}

func TestReadSemantics(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	mustCreate(t, s, "t", 1)
	// One append of three batches: one chunk holding offsets 0-1, 2-4, 5.
	var req []byte
	sizes := []int{2, 3, 1}
	for i, n := range sizes {
		req = append(req, makeBatch(batchSpec{records: n, value: bytes.Repeat([]byte{'a' + byte(i)}, 100)})...)
	}
	if r := appendWait(t, s, "t", 0, req, true); r.Err != nil || r.BaseOffset != 0 {
		t.Fatalf("append: %+v", r)
	}
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{records: 4, value: []byte("d")}), true); r.BaseOffset != 6 {
		t.Fatalf("second append: %+v", r)
	}
	first := func(off, max int64) (int64, int, ReadResult) {
		res := s.Read("t", 0, off, max)
		if res.Err != nil {
			t.Fatalf("Read(%d): %v", off, res.Err)
		}
		b := make([]byte, res.Chunks[0].Len)
		res.Chunks[0].File.ReadAt(b, res.Chunks[0].Off)
		h, err := ParseBatchHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		return h.BaseOffset, len(res.Chunks), res
	}
	for _, tc := range []struct{ off, wantBase int64 }{{0, 0}, {1, 0}, {2, 2}, {4, 2}, {5, 5}, {6, 6}, {9, 6}} {
		base, _, res := first(tc.off, 1<<20)
		if base != tc.wantBase {
			t.Errorf("Read(%d) starts at batch %d, want %d", tc.off, base, tc.wantBase)
		}
		res.Release()
	}
	// maxBytes smaller than a batch: exactly one whole batch (KIP-74).
	_, n, res := first(2, 1)
	if n != 1 || res.Bytes != int64(len(makeBatch(batchSpec{records: 3, value: bytes.Repeat([]byte{'b'}, 100)}))) {
		t.Fatalf("tiny maxBytes: %d chunks, %d bytes", n, res.Bytes)
	}
	res.Release()
	res.Release() // safe twice
	// offset == hwm: empty, no error; above: out of range.
	if res := s.Read("t", 0, 10, 100); res.Err != nil || len(res.Chunks) != 0 || res.HighWatermark != 10 {
		t.Fatalf("read at hwm: %+v", res)
	}
	if res := s.Read("t", 0, 11, 100); !errors.Is(res.Err, ErrOffsetOutOfRange) {
		t.Fatalf("read above hwm: %v", res.Err)
	}
	if res := s.Read("t", 0, -1, 100); !errors.Is(res.Err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", res.Err)
	}
	if res := s.Read("nope", 0, 0, 100); !errors.Is(res.Err, ErrUnknownTopic) {
		t.Fatalf("read unknown: %v", res.Err)
	}
	// All of it: two chunks, all bytes.
	res = s.Read("t", 0, 0, 1<<20)
	if len(res.Chunks) != 2 || res.Bytes != int64(len(req)+len(makeBatch(batchSpec{records: 4, value: []byte("d")}))) {
		t.Fatalf("full read: %d chunks %d bytes", len(res.Chunks), res.Bytes)
	}
	res.Release()
}

func TestOffsetForTimeAndMaxTimestamp(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	mustCreate(t, s, "t", 1)
	if off, ts, err := s.MaxTimestamp("t", 0); err != nil || off != -1 || ts != -1 {
		t.Fatalf("empty MaxTimestamp: %d %d %v", off, ts, err)
	}
	// Batches (base, maxTs): (0,1001) (2,5001) (4,3001) (6,9001); two in one chunk.
	req := append(makeBatch(batchSpec{records: 2, ts: 1000}), makeBatch(batchSpec{records: 2, ts: 5000})...)
	appendWait(t, s, "t", 0, req, true)
	appendWait(t, s, "t", 0, makeBatch(batchSpec{records: 2, ts: 3000}), true)
	appendWait(t, s, "t", 0, makeBatch(batchSpec{records: 2, ts: 9000}), true)
	for _, tc := range []struct{ ts, off, got int64 }{
		{0, 0, 1001}, {1001, 0, 1001}, {1002, 2, 5001}, {4000, 2, 5001}, {5002, 6, 9001}, {9001, 6, 9001}, {9002, -1, -1},
	} {
		off, ts, err := s.OffsetForTime("t", 0, tc.ts)
		if err != nil || off != tc.off || ts != tc.got {
			t.Errorf("OffsetForTime(%d) = %d, %d, %v; want %d, %d", tc.ts, off, ts, err, tc.off, tc.got)
		}
	}
	if off, ts, err := s.MaxTimestamp("t", 0); err != nil || off != 6 || ts != 9001 {
		t.Fatalf("MaxTimestamp: %d %d %v", off, ts, err)
	}
}

func TestLogAppendTime(t *testing.T) {
	cfg := testConfig(vfs.NewMemFS())
	now := int64(1_700_000_000_000)
	cfg.Now = func() timeT { return timeUnixMilli(now) }
	s := mustOpen(t, cfg)
	defer s.Close()
	if _, err := s.CreateTopic("lat", 1, map[string]string{"message.timestamp.type": "LogAppendTime"}); err != nil {
		t.Fatal(err)
	}
	r := appendWait(t, s, "lat", 0, makeBatch(batchSpec{records: 2, ts: 5}), true)
	if r.Err != nil || r.LogAppendTime != now {
		t.Fatalf("append: %+v", r)
	}
	got := readAllBatches(t, s, "lat", 0) // validates the recomputed CRC
	h, _ := ParseBatchHeader(got[0].raw)
	if !h.LogAppendTime() || h.MaxTimestamp != now {
		t.Fatalf("batch header %+v", h)
	}
}

func TestWatch(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	mustCreate(t, s, "t", 2)
	mustCreate(t, s, "gone", 1)
	fired := make(chan string, 10)
	s.Watch("t", 0, 0, func() { fired <- "hwm" })
	cancelled := s.Watch("t", 0, 0, func() { fired <- "cancelled" })
	cancelled()
	select {
	case f := <-fired:
		t.Fatalf("watch fired early: %s", f)
	default:
	}
	appendWait(t, s, "t", 0, makeBatch(batchSpec{}), false)
	if f := recvWithin(t, fired); f != "hwm" {
		t.Fatalf("got %s", f)
	}
	s.Watch("t", 0, 0, func() { fired <- "already" }) // hwm 1 > 0: at once
	if f := recvWithin(t, fired); f != "already" {
		t.Fatalf("got %s", f)
	}
	s.Watch("gone", 0, 0, func() { fired <- "deleted" })
	if err := s.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	if f := recvWithin(t, fired); f != "deleted" {
		t.Fatalf("got %s", f)
	}
	s.Watch("t", 1, 0, func() { fired <- "closed" })
	s.Close()
	if f := recvWithin(t, fired); f != "closed" {
		t.Fatalf("got %s", f)
	}
	select {
	case f := <-fired:
		t.Fatalf("extra watch fired: %s", f)
	default:
	}
}

func TestDeleteAndRecreateTopic(t *testing.T) {
	fsys := vfs.NewMemFS()
	cfg := testConfig(fsys)
	s := mustOpen(t, cfg)
	old := mustCreate(t, s, "t", 2)
	for i := 0; i < 5; i++ {
		appendWait(t, s, "t", 1, makeBatch(batchSpec{value: []byte("old")}), true)
	}
	if err := s.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic("t"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("second delete: %v", err)
	}
	if r := appendWait(t, s, "t", 1, makeBatch(batchSpec{}), true); !errors.Is(r.Err, ErrUnknownTopic) {
		t.Fatalf("append to deleted: %+v", r)
	}
	if res := s.Read("t", 1, 0, 100); !errors.Is(res.Err, ErrUnknownTopic) {
		t.Fatalf("read deleted: %v", res.Err)
	}
	if _, ok := s.TopicByID(old.ID); ok {
		t.Fatal("deleted topic still found by id")
	}
	nt := mustCreate(t, s, "t", 2)
	if nt.ID == old.ID {
		t.Fatal("recreated topic kept its id")
	}
	if r := appendWait(t, s, "t", 1, makeBatch(batchSpec{value: []byte("new")}), true); r.BaseOffset != 0 {
		t.Fatalf("recreated topic starts at %d", r.BaseOffset)
	}
	check := func(s *Store) {
		t.Helper()
		got := readAllBatches(t, s, "t", 1)
		if len(got) != 1 || string(got[0].values[0]) != "new" {
			t.Fatalf("recreated topic holds %d batches", len(got))
		}
		if ti, ok := s.Topic("t"); !ok || ti.ID != nt.ID {
			t.Fatalf("topic after reopen: %+v", ti)
		}
	}
	check(s)
	s.Close()
	// Crash-style reopen too: the old chunks sit in the same segment.
	s = mustOpen(t, cfg)
	check(s)
	s.Close()
}

func TestTopicsAndProducerIDs(t *testing.T) {
	cfg := testConfig(vfs.NewMemFS())
	s := mustOpen(t, cfg)
	mustCreate(t, s, "b", 1)
	mustCreate(t, s, "a", 3)
	if _, err := s.CreateTopic("a", 1, nil); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := s.CreateTopic("z", 0, nil); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("zero partitions: %v", err)
	}
	ts := s.Topics()
	if len(ts) != 2 || ts[0].Name != "a" || ts[0].Partitions != 3 || ts[1].Name != "b" {
		t.Fatalf("Topics: %+v", ts)
	}
	seen := map[int64]bool{}
	for i := 0; i < 5; i++ {
		id, epoch, err := s.InitProducerID()
		if err != nil || epoch != 0 || seen[id] {
			t.Fatalf("InitProducerID: %d %d %v", id, epoch, err)
		}
		seen[id] = true
	}
	s.Close()
	s = mustOpen(t, cfg)
	defer s.Close()
	for i := 0; i < 5; i++ {
		id, _, err := s.InitProducerID()
		if err != nil || seen[id] {
			t.Fatalf("InitProducerID after reopen: %d %v (repeat)", id, err)
		}
		seen[id] = true
	}
	if got := s.Topics(); len(got) != 2 {
		t.Fatalf("topics after reopen: %+v", got)
	}
}

// TestReadHoldsSegmentOpen: a read's chunks stay readable after Close
// until Release.
func TestReadHoldsSegmentOpen(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	mustCreate(t, s, "t", 1)
	appendWait(t, s, "t", 0, makeBatch(batchSpec{value: []byte("keep")}), true)
	res := s.Read("t", 0, 0, 1<<20)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	s.Close()
	c := res.Chunks[0]
	b := make([]byte, c.Len)
	if _, err := c.File.ReadAt(b, c.Off); err != nil {
		t.Fatalf("read after Close, before Release: %v", err)
	}
	if c.File.Fd() != vfs.NoFd {
		t.Fatalf("MemFS Fd = %d", c.File.Fd())
	}
	res.Release()
	if _, err := c.File.ReadAt(b, c.Off); err == nil {
		t.Fatal("segment still open after the last Release")
	}
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{}), true); !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("append after close: %+v", r)
	}
}

func TestAppendTooLarge(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	mustCreate(t, s, "t", 1)
	r := appendWait(t, s, "t", 0, makeBatch(batchSpec{value: make([]byte, 70<<10)}), true)
	if !errors.Is(r.Err, ErrTooLarge) {
		t.Fatalf("oversized append: %+v", r)
	}
	// Just under a segment fits (alone in a fresh segment).
	r = appendWait(t, s, "t", 0, makeBatch(batchSpec{value: make([]byte, 60<<10)}), true)
	if r.Err != nil {
		t.Fatalf("large append: %+v", r)
	}
}

func recvWithin(t *testing.T, ch chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-timeAfter():
		t.Fatal("nothing received")
		return ""
	}
}

func ExampleStore() {
	s, err := Open(Config{Dir: "/example", FS: vfs.NewMemFS(), SegmentBytes: 1 << 20})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	s.CreateTopic("events", 1, nil)
	done := make(chan AppendResult, 1)
	s.Append("events", 0, makeBatch(batchSpec{value: []byte("hi")}), true, func(r AppendResult) { done <- r })
	fmt.Println((<-done).BaseOffset)
	// Output: 0
}

// TestChunkSplit: a group's appends to one partition are split into chunks
// of at most MaxChunkBytes, and reads from any offset still line up.
func TestChunkSplit(t *testing.T) {
	cfg := testConfig(vfs.NewMemFS())
	cfg.MaxChunkBytes = 2048
	s := mustOpen(t, cfg)
	defer s.Close()
	mustCreate(t, s, "t", 1)
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		s.Append("t", 0, makeBatch(batchSpec{records: 2, value: make([]byte, 700)}), i%2 == 0, func(r AppendResult) {
			if r.Err != nil {
				t.Error(r.Err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	eventually(t, "hwm", func() bool { _, hwm, _ := s.Offsets("t", 0); return hwm == 120 })
	got := readAllBatches(t, s, "t", 0)
	if len(got) != 60 {
		t.Fatalf("%d batches", len(got))
	}
	v := s.shards[0].st.table.Load().byName["t"].parts[0].idx.view()
	for i := int64(0); i < v.n; i++ {
		if e := v.at(i); e.length > 2048 && e.last-e.base > 1 {
			t.Fatalf("chunk %d holds %d bytes, several appends", i, e.length)
		}
	}
	for off := int64(0); off < 120; off++ {
		res := s.Read("t", 0, off, 1)
		if res.Err != nil || len(res.Chunks) != 1 {
			t.Fatalf("Read(%d): %v", off, res.Err)
		}
		b := make([]byte, BatchHeaderBytes)
		res.Chunks[0].File.ReadAt(b, res.Chunks[0].Off)
		h, _ := ParseBatchHeader(b)
		if h.BaseOffset != off&^1 || res.Bytes != int64(h.Size()) {
			t.Fatalf("Read(%d) starts at %d with %d bytes", off, h.BaseOffset, res.Bytes)
		}
		res.Release()
	}
}
