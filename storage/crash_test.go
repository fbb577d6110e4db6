package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/klite/klite/vfs"
)

// TestCrashRecovery crashes a busy store at many points (MemFS.CrashClone
// with unsynced writes dropped, kept, or torn) and checks after reopening
// that every append acknowledged as durable is present exactly once at the
// offset it was given, and that offsets have no gaps.
func TestCrashRecovery(t *testing.T) {
	modes := []vfs.CrashMode{vfs.CrashDropUnsynced, vfs.CrashKeepUnsynced, vfs.CrashTorn}
	iters := 40
	if testing.Short() {
		iters = 4
	}
	var torn int64
	for seed := uint64(1); seed <= uint64(iters); seed++ {
		for _, mode := range modes {
			torn += crashOnce(t, seed, mode)
		}
	}
	t.Logf("torn bytes cut over all runs: %d", torn)
}

func crashOnce(t *testing.T, seed uint64, mode vfs.CrashMode) int64 {
	t.Helper()
	fsys := vfs.NewMemFS()
	cfg := testConfig(fsys)
	cfg.Shards = 2
	s := mustOpen(t, cfg)
	topics := []string{"a", "b"}
	for _, tp := range topics {
		mustCreate(t, s, tp, 3)
	}
	acks := &ackLog{acks: map[uint64]int64{}}
	var acked atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := uint64(w)<<32 | uint64(i)
				tp, p := topics[i%2], int32((w+i)%3)
				n := 1 + i%3
				val := append(valueID(id), make([]byte, 200+int(seed)*37%700)...)
				durable := i%3 != 0
				done := make(chan AppendResult, 1)
				s.Append(tp, p, makeBatch(batchSpec{records: n, value: val}), durable, func(r AppendResult) { done <- r })
				r := <-done
				if r.Err != nil {
					return // closed
				}
				if durable {
					acks.add(id, r.BaseOffset)
					acked.Add(1)
				}
			}
		}()
	}
	crashAfter := int64(20 + (seed*53)%150)
	eventually(t, "acks", func() bool { return acked.Load() >= crashAfter })
	want := acks.snapshot()
	clone := fsys.CrashClone(mode, seed)
	stop.Store(true)
	wg.Wait()
	s.Close()

	s2, err := Open(Config{Dir: cfg.Dir, FS: clone, Shards: cfg.Shards, SegmentBytes: cfg.SegmentBytes})
	if err != nil {
		t.Fatalf("seed %d mode %d: reopen: %v", seed, mode, err)
	}
	defer s2.Close()
	seen := map[uint64]int64{}
	for _, tp := range topics {
		for p := int32(0); p < 3; p++ {
			next := int64(0)
			for _, b := range readAllBatches(t, s2, tp, p) {
				if b.base != next {
					t.Fatalf("seed %d mode %d: %s/%d gap: batch at %d, want %d", seed, mode, tp, p, b.base, next)
				}
				next += int64(b.records)
				id := binary.BigEndian.Uint64(b.values[0])
				if _, dup := seen[id]; dup {
					t.Fatalf("seed %d mode %d: append %x present twice", seed, mode, id)
				}
				seen[id] = b.base
			}
			// The store keeps going from the recovered end.
			r := appendWait(t, s2, tp, p, makeBatch(batchSpec{value: valueID(1 << 62)}), true)
			if r.Err != nil || r.BaseOffset != next {
				t.Fatalf("seed %d mode %d: append after recovery: %+v, want base %d", seed, mode, r, next)
			}
		}
	}
	for id, base := range want {
		got, ok := seen[id]
		if !ok {
			t.Fatalf("seed %d mode %d: acknowledged append %x (offset %d) lost; recovery %+v", seed, mode, id, base, s2.Stats().Recovery)
		}
		if got != base {
			t.Fatalf("seed %d mode %d: append %x at %d, acknowledged at %d", seed, mode, id, got, base)
		}
	}
	return s2.Stats().Recovery.TornBytes
}

func TestFaults(t *testing.T) {
	cases := []struct {
		name   string
		inject func(vfs.Op) error
		crash  vfs.CrashMode // how the reopen sees unsynced data
	}{
		// Faults hit segment files (*.wal), not a next segment's preparation.
		{"fsync fails", vfs.FailNth(vfs.OpSync, "*.wal", 1, vfs.ErrInjected), vfs.CrashDropUnsynced},
		{"fsync fails, data kept", vfs.FailNth(vfs.OpSync, "*.wal", 1, vfs.ErrInjected), vfs.CrashKeepUnsynced},
		{"write ENOSPC", vfs.FailNth(vfs.OpWrite, "*.wal", 1, vfs.ErrNoSpace), vfs.CrashKeepUnsynced},
		{"short write", func(op vfs.Op) error {
			if op.Kind == vfs.OpWrite && vfs.MatchBase("*.wal", op.Name) {
				return &vfs.ShortWrite{N: 50, Err: vfs.ErrNoSpace}
			}
			return nil
		}, vfs.CrashKeepUnsynced},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMemFS()
			ffs := vfs.NewFaultFS(mem)
			cfg := testConfig(ffs)
			cfg.Shards = 1
			s := mustOpen(t, cfg)
			defer s.Close()
			mustCreate(t, s, "t", 2)
			for i := 0; i < 3; i++ {
				if r := appendWait(t, s, "t", int32(i%2), makeBatch(batchSpec{value: valueID(uint64(i))}), true); r.Err != nil {
					t.Fatal(r.Err)
				}
			}
			_, hwm0, _ := s.Offsets("t", 0)
			ffs.SetInjector(tc.inject)
			r := appendWait(t, s, "t", 0, makeBatch(batchSpec{value: valueID(100)}), true)
			if !errors.Is(r.Err, ErrStorage) {
				t.Fatalf("append during fault: %+v", r)
			}
			ffs.SetInjector(nil)
			// The shard stays failed: no later fsync may stand for the lost one.
			for _, durable := range []bool{true, false} {
				if r := appendWait(t, s, "t", 1, makeBatch(batchSpec{}), durable); !errors.Is(r.Err, ErrStorage) {
					t.Fatalf("append after fault (durable %v): %+v", durable, r)
				}
			}
			if _, hwm, _ := s.Offsets("t", 0); hwm != hwm0 {
				t.Fatalf("hwm moved from %d to %d", hwm0, hwm)
			}
			if res := s.Read("t", 0, 0, 1<<20); res.Err != nil || len(res.Chunks) == 0 {
				t.Fatalf("durable data unreadable after fault: %v", res.Err)
			} else {
				res.Release()
			}
			if st := s.Stats(); st.FailedShards != 1 {
				t.Fatalf("stats %+v", st)
			}
			if err := s.Health(); err == nil {
				t.Fatal("Health nil with a shard offline")
			}
			if err := s.Close(); !errors.Is(err, ErrStorage) {
				t.Fatalf("Close after fault: %v", err)
			}

			s2 := mustOpen(t, Config{Dir: cfg.Dir, FS: mem.CrashClone(tc.crash, 1), Shards: 1, SegmentBytes: cfg.SegmentBytes})
			defer s2.Close()
			got := readAllBatches(t, s2, "t", 0)
			if len(got) < 2 {
				t.Fatalf("acknowledged batches lost: %d left", len(got))
			}
			for i, b := range got {
				if b.base != int64(i) {
					t.Fatalf("batch %d at %d", i, b.base)
				}
			}
			next := int64(len(got))
			if r := appendWait(t, s2, "t", 0, makeBatch(batchSpec{}), true); r.Err != nil || r.BaseOffset != next {
				t.Fatalf("append after reopen: %+v, want %d", r, next)
			}
			if tc.name == "short write" {
				rs := s2.Stats().Recovery
				if rs.TornBytes == 0 || len(got) != 2 {
					t.Fatalf("short write: recovery %+v, %d batches", rs, len(got))
				}
			}
		})
	}
}

// TestTornTailKeptAside corrupts the last chunk of the active segment and
// checks recovery cuts it, keeps a copy, and continues from the good end.
func TestTornTailKeptAside(t *testing.T) {
	mem := vfs.NewMemFS()
	ffs := vfs.NewFaultFS(mem)
	cfg := testConfig(ffs)
	cfg.Shards = 1
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 1)
	var lastWrite vfs.Op
	ffs.SetAfter(func(op vfs.Op, err error) {
		if op.Kind == vfs.OpWrite && vfs.MatchBase("*.wal", op.Name) {
			lastWrite = op
		}
	})
	for i := 0; i < 5; i++ {
		appendWait(t, s, "t", 0, makeBatch(batchSpec{value: valueID(uint64(i))}), true)
	}
	s.Close()
	ffs.SetAfter(nil)
	// Flip a byte inside the last batch: its CRC no longer matches.
	f, err := mem.OpenRW(lastWrite.Name)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	at := lastWrite.Off + int64(lastWrite.Len) - 3
	f.ReadAt(b, at)
	b[0] ^= 0xff
	f.WriteAt(b, at)
	f.Sync()
	f.Close()

	s2 := mustOpen(t, cfg)
	defer s2.Close()
	got := readAllBatches(t, s2, "t", 0)
	if len(got) != 4 {
		t.Fatalf("%d batches after cutting the torn one, want 4", len(got))
	}
	rs := s2.Stats().Recovery
	if rs.TornBytes != int64(lastWrite.Len) {
		t.Fatalf("torn bytes %d, want %d", rs.TornBytes, lastWrite.Len)
	}
	var kept string
	for _, name := range mem.Files("/data") {
		if strings.Contains(name, tornInfix) {
			kept = name
		}
	}
	data, err := mem.ReadFile(kept)
	if err != nil || len(data) != lastWrite.Len {
		t.Fatalf("torn copy %q: %d bytes, %v", kept, len(data), err)
	}
	if r := appendWait(t, s2, "t", 0, makeBatch(batchSpec{}), true); r.BaseOffset != 4 {
		t.Fatalf("append after cut: %+v", r)
	}
	s2.Close()
	// And the cut is durable: a third open sees the same log plus the append.
	s3 := mustOpen(t, cfg)
	defer s3.Close()
	if got := readAllBatches(t, s3, "t", 0); len(got) != 5 {
		t.Fatalf("third open: %d batches", len(got))
	}
	if rs := s3.Stats().Recovery; rs.TornBytes != 0 {
		t.Fatalf("third open cut again: %+v", rs)
	}
}

// TestCheckpointsOnReopen: sealed segments are loaded from their index
// checkpoints; only the active one is scanned. A bad checkpoint falls back
// to a scan; a corrupt sealed segment fails its shard's partitions loudly.
func TestCheckpointsOnReopen(t *testing.T) {
	mem := vfs.NewMemFS()
	cfg := testConfig(mem)
	cfg.Shards = 1
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 2)
	for i := 0; i < 150; i++ {
		appendWait(t, s, "t", int32(i%2), makeBatch(batchSpec{records: 2, value: make([]byte, 1000)}), i%2 == 0)
	}
	s.Close()
	s = mustOpen(t, cfg)
	rs := s.Stats().Recovery
	if rs.Segments < 3 || rs.FromCheckpoint != rs.Segments-1 || rs.Scanned != 1 {
		t.Fatalf("recovery %+v: want all but the active segment from checkpoints", rs)
	}
	if got := readAllBatches(t, s, "t", 1); len(got) != 75 {
		t.Fatalf("%d batches", len(got))
	}
	s.Close()

	// A damaged checkpoint is ignored and its segment scanned.
	idx := fmt.Sprintf("/data/shard-000/%s%s", segName(0), idxSuffix)
	f, _ := mem.OpenRW(idx)
	f.WriteAt([]byte{0xff, 0xff}, 30)
	f.Sync()
	f.Close()
	s = mustOpen(t, cfg)
	if rs := s.Stats().Recovery; rs.Scanned != 2 {
		t.Fatalf("recovery with bad checkpoint %+v", rs)
	}
	if got := readAllBatches(t, s, "t", 0); len(got) != 75 {
		t.Fatalf("%d batches", len(got))
	}
	s.Close()

	// Corrupt the middle of sealed segment 0 with its checkpoint gone.
	mem.Remove(idx)
	f, _ = mem.OpenRW(fmt.Sprintf("/data/shard-000/%s%s", segName(0), segSuffix))
	f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, 5000)
	f.Sync()
	f.Close()
	s = mustOpen(t, cfg)
	defer s.Close()
	if res := s.Read("t", 0, 0, 100); !errors.Is(res.Err, ErrStorage) {
		t.Fatalf("read of corrupt partition: %v", res.Err)
	}
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{}), true); !errors.Is(r.Err, ErrStorage) {
		t.Fatalf("append to corrupt partition: %+v", r)
	}
	if rs := s.Stats().Recovery; rs.FailedPartitions != 2 {
		t.Fatalf("recovery %+v", rs)
	}
}

// TestRecoveryTornWindow: in the newest segment recovery looks for torn
// bytes only up to the unsynced bound past the last whole chunk (or past
// the end a chunk header there declares), not through the whole
// preallocated tail; within that window it finds and cuts them.
func TestRecoveryTornWindow(t *testing.T) {
	mem := vfs.NewMemFS()
	cfg := testConfig(mem)
	cfg.Shards, cfg.SegmentBytes, cfg.unsyncedBytes = 1, 8<<20, 64<<10
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 1)
	for i := 0; i < 10; i++ {
		appendWait(t, s, "t", 0, makeBatch(batchSpec{value: valueID(uint64(i))}), true)
	}
	s.Close()
	rs := reopenStats(t, cfg, mem, nil)
	end := rs.Bytes + int64(rs.Chunks)*chunkHeaderBytes
	seg := fmt.Sprintf("/data/shard-000/%s%s", segName(0), segSuffix)
	garbage := func(at int64) {
		t.Helper()
		f, _ := mem.OpenRW(seg)
		f.WriteAt([]byte{0xde, 0xad}, at)
		f.Sync()
		f.Close()
	}

	// Torn bytes near the far edge of the window are found and cut; the
	// scan reads about one window, not the 8 MiB segment.
	at := end + chunkHeaderBytes + cfg.unsyncedBytes - 2
	garbage(at)
	var read atomic.Int64
	rs = reopenStats(t, cfg, mem, func(op vfs.Op, err error) {
		if op.Kind == vfs.OpRead && op.Name == seg {
			read.Add(int64(op.Len))
		}
	})
	if rs.TornBytes != at+2-end {
		t.Fatalf("torn bytes %d, want %d", rs.TornBytes, at+2-end)
	}
	if n := read.Load(); n > 2<<20 {
		t.Fatalf("recovery read %d bytes of an %d-byte segment", n, cfg.SegmentBytes)
	}

	// A chunk header at the end declares a chunk longer than the window
	// whose bytes never arrived: the window extends past its declared end.
	hdr := make([]byte, chunkHeaderBytes)
	length := uint32(3 * cfg.unsyncedBytes)
	putChunkHeader(hdr, chunkHeader{key: 0, count: 1, base: 10, last: 10, length: length})
	f, _ := mem.OpenRW(seg)
	f.WriteAt(hdr, end)
	f.Sync()
	f.Close()
	at = end + chunkHeaderBytes + int64(length) + cfg.unsyncedBytes - 2
	garbage(at)
	rs = reopenStats(t, cfg, mem, nil)
	if rs.TornBytes != at+2-end {
		t.Fatalf("torn bytes %d, want %d", rs.TornBytes, at+2-end)
	}
	if rs = reopenStats(t, cfg, mem, nil); rs.TornBytes != 0 || rs.Chunks != 10 {
		t.Fatalf("after the cut: %+v", rs)
	}
}

// reopenStats opens and closes the store, returning what recovery did.
func reopenStats(t *testing.T, cfg Config, mem *vfs.MemFS, after func(vfs.Op, error)) RecoveryStats {
	t.Helper()
	ffs := vfs.NewFaultFS(mem)
	ffs.SetAfter(after)
	cfg.FS = ffs
	s := mustOpen(t, cfg)
	defer s.Close()
	return s.Stats().Recovery
}

// TestOpenLayoutDurable: once Open returns, a crash finds the store's
// layout: the metadata snapshot and log, and every shard directory with its active segment,
// even when nothing is written after Open.
func TestOpenLayoutDurable(t *testing.T) {
	fsys := vfs.NewMemFS()
	cfg := testConfig(fsys)
	cfg.Dir = "/var/klite/wal" // parents that Open creates too
	s := mustOpen(t, cfg)
	crashed := fsys.CrashClone(vfs.CrashDropUnsynced, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{metaSnapName(1), metaLogName(1)} {
		if _, err := vfs.ReadFile(crashed, cfg.Dir+"/"+name); err != nil {
			t.Fatalf("%s lost: %v", name, err)
		}
	}
	for _, sh := range s.shards {
		names, err := crashed.List(sh.dir)
		if err != nil || len(names) != 1 || !strings.HasSuffix(names[0], segSuffix) {
			t.Fatalf("shard directory %s after a crash: %q, %v; want its active segment", sh.dir, names, err)
		}
	}
}
