package storage

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/klite/klite/vfs"
)

// gate blocks the operations an injector picks until it is opened.
type gate struct {
	ch   chan struct{}
	once sync.Once
	hits atomic.Int64 // operations that reached the gate
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) wait() {
	g.hits.Add(1)
	<-g.ch
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// gateWAL holds every op of kind on a WAL file at a new gate until the gate
// opens. Callers defer open before anything that waits on the held op.
func gateWAL(ffs *vfs.FaultFS, kind vfs.OpKind) *gate {
	g := newGate()
	ffs.SetInjector(func(op vfs.Op) error {
		if op.Kind == kind && vfs.MatchBase("*.wal", op.Name) {
			g.wait()
		}
		return nil
	})
	return g
}

// TestCloseFailsQueuedAppends: with the writer stuck in a write, appends
// still queue (Append never blocks); Close fails them with ErrClosed at
// once, without waiting for the stuck write, and then waits for that write
// and its fsync, so the append being written is acknowledged, durable.
func TestCloseFailsQueuedAppends(t *testing.T) {
	mem := vfs.NewMemFS()
	ffs := vfs.NewFaultFS(mem)
	cfg := testConfig(ffs)
	cfg.Shards = 1
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 1)
	g := gateWAL(ffs, vfs.OpWrite)
	defer g.open()
	first := make(chan AppendResult, 1)
	s.Append("t", 0, makeBatch(batchSpec{value: []byte("first")}), true, func(r AppendResult) { first <- r })
	eventually(t, "the writer stuck in its write", func() bool { return g.hits.Load() == 1 })

	const queued = 5
	results := make(chan AppendResult, queued)
	for i := 0; i < queued; i++ {
		s.Append("t", 0, makeBatch(batchSpec{value: []byte("queued")}), i%2 == 0, func(r AppendResult) { results <- r })
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for i := 0; i < queued; i++ {
		select {
		case r := <-results:
			if !errors.Is(r.Err, ErrClosed) {
				t.Fatalf("queued append at Close: %+v, want ErrClosed", r)
			}
		case <-timeAfter():
			t.Fatal("queued appends not failed while the write is stuck")
		}
	}
	select {
	case r := <-first:
		t.Fatalf("append acknowledged while its write is stuck: %+v", r)
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a write was in progress", err)
	default:
	}
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{}), true); !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("append during Close: %+v", r)
	}
	g.open()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-timeAfter():
		t.Fatal("Close did not return")
	}
	if r := <-first; r.Err != nil || r.BaseOffset != 0 {
		t.Fatalf("append written before Close: %+v", r)
	}
	ffs.SetInjector(nil)
	s2 := mustOpen(t, Config{Dir: cfg.Dir, FS: mem.CrashClone(vfs.CrashDropUnsynced, 1), Shards: 1, SegmentBytes: cfg.SegmentBytes})
	defer s2.Close()
	if got := readAllBatches(t, s2, "t", 0); len(got) != 1 || string(got[0].values[0]) != "first" {
		t.Fatalf("after Close and a crash: %d batches", len(got))
	}
}

// TestCloseWithHeldFsync: Close waits for an fdatasync in progress and
// only then acknowledges the appends it covers; nothing is acknowledged
// before it.
func TestCloseWithHeldFsync(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.NewMemFS())
	s := mustOpen(t, testConfig(ffs))
	mustCreate(t, s, "t", 2)
	g := gateWAL(ffs, vfs.OpSync)
	defer g.open()
	acks := make(chan AppendResult, 2)
	for p := int32(0); p < 2; p++ {
		s.Append("t", p, makeBatch(batchSpec{}), true, func(r AppendResult) { acks <- r })
	}
	eventually(t, "an fdatasync held", func() bool { return g.hits.Load() > 0 })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	sh := s.shards[0]
	eventually(t, "Close to stop appends", func() bool {
		sh.qmu.Lock()
		defer sh.qmu.Unlock()
		return sh.qclosed
	})
	// An append the writer had not taken yet when Close ran fails with
	// ErrClosed (under load the two appends can land in different groups);
	// none may succeed before the fdatasync.
	pending := 2
	for done := false; !done; {
		select {
		case r := <-acks:
			if !errors.Is(r.Err, ErrClosed) {
				t.Fatalf("acknowledged before its fdatasync: %+v", r)
			}
			pending--
		default:
			done = true
		}
	}
	g.open()
	acked := 0
	for range pending {
		select {
		case r := <-acks:
			switch {
			case r.Err == nil:
				acked++
			case !errors.Is(r.Err, ErrClosed):
				t.Fatalf("append: %+v", r)
			}
		case <-timeAfter():
			t.Fatal("appends not acknowledged after the fdatasync")
		}
	}
	if acked == 0 {
		t.Fatal("the append under the held fdatasync was not acknowledged after it")
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestAppendBusy: Append never blocks. With the writer stuck, appends
// queue up to MaxQueueBytes; past it they fail at once, on the caller's
// goroutine, with ErrBusy; the admitted ones complete once it moves.
func TestAppendBusy(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.NewMemFS())
	cfg := testConfig(ffs)
	cfg.Shards = 1
	cfg.MaxQueueBytes = 8 << 10
	s := mustOpen(t, cfg)
	defer s.Close()
	mustCreate(t, s, "t", 1)
	g := gateWAL(ffs, vfs.OpWrite)
	defer g.open()
	var wg sync.WaitGroup
	var failed atomic.Int64
	batch := makeBatch(batchSpec{value: make([]byte, 1000)})
	wg.Add(1)
	s.Append("t", 0, batch, true, func(r AppendResult) {
		if r.Err != nil {
			failed.Add(1)
		}
		wg.Done()
	})
	eventually(t, "the writer stuck in its write", func() bool { return g.hits.Load() == 1 })
	admitted := 0
	for {
		var res *AppendResult
		s.Append("t", 0, batch, true, func(r AppendResult) {
			if errors.Is(r.Err, ErrBusy) {
				res = &r
				return
			}
			if r.Err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
		if res != nil { // done ran before Append returned
			break
		}
		wg.Add(1)
		admitted++
		if admitted > 100 {
			t.Fatal("queue over MaxQueueBytes still admits appends")
		}
	}
	if want := int(cfg.MaxQueueBytes / reqCost(len(batch))); admitted < want-1 || admitted > want+1 {
		t.Fatalf("%d appends admitted, want about %d", admitted, want)
	}
	if st := s.Stats(); st.Busy != 1 {
		t.Fatalf("Busy %d, want 1", st.Busy)
	}
	g.open()
	waitGroup(t, &wg, "admitted appends")
	if failed.Load() != 0 {
		t.Fatalf("%d admitted appends failed", failed.Load())
	}
	if r := appendWait(t, s, "t", 0, batch, true); r.Err != nil || r.BaseOffset != int64(admitted+1) {
		t.Fatalf("append after the queue drained: %+v", r)
	}
}

// TestUnsyncedBound: the writer never writes past the fsynced prefix plus
// the unsynced bound (here while the fsyncs are held), splits an append
// larger than the bound into pieces, and a crash with writes unsynced
// recovers every acknowledged append.
func TestUnsyncedBound(t *testing.T) {
	for _, mode := range []vfs.CrashMode{vfs.CrashKeepUnsynced, vfs.CrashTorn} {
		mem := vfs.NewMemFS()
		ffs := vfs.NewFaultFS(mem)
		cfg := testConfig(ffs)
		cfg.Shards, cfg.SegmentBytes, cfg.unsyncedBytes = 1, 256<<10, 8<<10
		s := mustOpen(t, cfg)
		mustCreate(t, s, "t", 2)

		// Track the newest segment's written extent and what the fsyncs
		// covered: a sync covers the writes finished before it started.
		var mu sync.Mutex
		var seg string
		var maxEnd, synced, syncing, overshoot int64
		var g atomic.Pointer[gate]
		g.Store(newGate())
		ffs.SetInjector(func(op vfs.Op) error {
			if op.Kind == vfs.OpSync && vfs.MatchBase("*.wal", op.Name) {
				mu.Lock()
				syncing = maxEnd
				mu.Unlock()
				g.Load().wait()
			}
			return nil
		})
		ffs.SetAfter(func(op vfs.Op, err error) {
			if err != nil || !vfs.MatchBase("*.wal", op.Name) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if op.Name != seg {
				seg, maxEnd, synced, syncing = op.Name, 0, 0, 0
			}
			switch op.Kind {
			case vfs.OpWrite:
				end := op.Off + int64(op.Len)
				maxEnd = max(maxEnd, end)
				overshoot = max(overshoot, end-synced-cfg.unsyncedBytes)
			case vfs.OpSync:
				synced = syncing
			}
		})
		acks := &ackLog{acks: map[uint64]int64{}}
		var wg sync.WaitGroup
		for i := uint64(0); i < 40; i++ {
			size := 1000
			if i%10 == 3 {
				size = 20 << 10 // larger than the bound: written in pieces
			}
			wg.Add(1)
			s.Append("t", int32(i%2), makeBatch(batchSpec{value: append(valueID(i), make([]byte, size)...)}), true, func(r AppendResult) {
				if r.Err == nil {
					acks.add(i, r.BaseOffset)
				}
				wg.Done()
			})
		}
		eventually(t, "the writer up to the bound with the fsync held", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return g.Load().hits.Load() > 0 && s.Stats().UnsyncedWaits > 0
		})
		g.Load().open()
		waitGroup(t, &wg, "appends")
		want := acks.snapshot()
		if len(want) != 40 {
			t.Fatalf("%d of 40 appends acknowledged", len(want))
		}
		mu.Lock()
		if overshoot > 0 {
			t.Fatalf("a write ended %d bytes past the fsynced prefix plus the bound", overshoot)
		}
		mu.Unlock()

		// More writes left unsynced, then a crash.
		g.Store(newGate())
		for i := uint64(100); i < 110; i++ {
			s.Append("t", int32(i%2), makeBatch(batchSpec{value: append(valueID(i), make([]byte, 3000)...)}), true, func(AppendResult) {})
		}
		eventually(t, "unsynced writes", func() bool { return g.Load().hits.Load() > 0 })
		clone := mem.CrashClone(mode, 7)
		g.Load().open()
		s.Close()

		s2 := mustOpen(t, Config{Dir: cfg.Dir, FS: clone, Shards: 1, SegmentBytes: cfg.SegmentBytes, unsyncedBytes: cfg.unsyncedBytes})
		seen := map[uint64]int64{}
		for p := int32(0); p < 2; p++ {
			next := int64(0)
			for _, b := range readAllBatches(t, s2, "t", p) {
				if b.base != next {
					t.Fatalf("mode %d: partition %d gap at %d", mode, p, next)
				}
				next += int64(b.records)
				seen[binary.BigEndian.Uint64(b.values[0])] = b.base
			}
		}
		for id, base := range want {
			if got, ok := seen[id]; !ok || got != base {
				t.Fatalf("mode %d: acknowledged append %d at %d: found %v at %d", mode, id, base, ok, got)
			}
		}
		t.Logf("mode %d: recovery %+v", mode, s2.Stats().Recovery)
		s2.Close()
	}
}

// TestPrepareHurriedAndAbandoned: the next segment is prepared in the
// background once the active one is a quarter full; a roll takes it as
// far as its zero-fill got, and Close abandons a preparation and removes
// its file. Both stop the zero-fill at the next step.
func TestPrepareHurriedAndAbandoned(t *testing.T) {
	mem := vfs.NewMemFS()
	ffs := vfs.NewFaultFS(mem)
	cfg := testConfig(ffs)
	cfg.Shards, cfg.SegmentBytes = 1, 8<<20
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 1)
	sh := s.shards[0]

	// Hold the zero-fill at its third step.
	var g atomic.Pointer[gate]
	g.Store(newGate())
	var prepWrites atomic.Int64
	ffs.SetInjector(func(op vfs.Op) error {
		if op.Kind == vfs.OpWrite && strings.HasSuffix(op.Name, prepSuffix) {
			prepWrites.Add(1)
			if op.Off == 2*zeroStepBytes {
				g.Load().wait()
			}
		}
		return nil
	})
	fill := func(n int) {
		for i := 0; i < n; i++ {
			if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{value: make([]byte, 512<<10)}), false); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	fill(5) // past a quarter of the segment
	eventually(t, "zero-fill held", func() bool { return g.Load().hits.Load() == 1 })
	task := sh.prep // set before the preparing goroutine started

	// A roll hurries it: no further zero steps, the file is used as is.
	rolled := make(chan struct{})
	go func() { fill(12); close(rolled) }()
	select {
	case <-task.hurry:
	case <-timeAfter():
		t.Fatal("roll did not hurry the preparation")
	}
	g.Load().open()
	<-rolled
	if n := prepWrites.Load(); n != 3 {
		t.Fatalf("%d zero-fill writes, want 3 (stopped at the held one)", n)
	}
	if st := s.Stats(); st.SegmentsRoll != 1 {
		t.Fatalf("rolls %d", st.SegmentsRoll)
	}

	// The new segment is a quarter full again: the next preparation runs.
	g.Store(newGate())
	fill(5)
	eventually(t, "second zero-fill held", func() bool { return g.Load().hits.Load() == 1 })
	task = sh.prep
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-task.hurry:
	case <-timeAfter():
		t.Fatal("Close did not stop the preparation")
	}
	g.Load().open()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := prepWrites.Load(); n != 6 {
		t.Fatalf("%d zero-fill writes, want 6: the second fill went on after Close", n)
	}
	for _, name := range mem.Files(cfg.Dir) {
		if strings.HasSuffix(name, prepSuffix) {
			t.Fatalf("abandoned preparation left %s", name)
		}
	}
	ffs.SetInjector(nil)
	s2 := mustOpen(t, cfg)
	defer s2.Close()
	if got := readAllBatches(t, s2, "t", 0); len(got) != 22 {
		t.Fatalf("%d batches after reopen, want 22", len(got))
	}
}
