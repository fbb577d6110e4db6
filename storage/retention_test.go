package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

// fakeClock is a Config.Now tests move by hand.
type fakeClock struct{ ms atomic.Int64 }

func (c *fakeClock) now() time.Time { return time.UnixMilli(c.ms.Load()) }

// retentionConfig: one shard (so topics share segments), 64 KiB segments,
// retention run by hand.
func retentionConfig(fsys vfs.FS, clock *fakeClock) Config {
	cfg := testConfig(fsys)
	cfg.Shards = 1
	cfg.RetentionCheckInterval = -1
	cfg.Now = clock.now
	return cfg
}

// bigValue makes a batch fill about a third of a 64 KiB segment, so a
// segment holds three appends.
const bigValue = 20000

func appendTs(t testing.TB, s *Store, topic string, part int32, ts int64, value int) int64 {
	t.Helper()
	r := appendWait(t, s, topic, part, makeBatch(batchSpec{value: make([]byte, value), ts: ts}), true)
	if r.Err != nil {
		t.Fatalf("append %s/%d: %v", topic, part, r.Err)
	}
	return r.BaseOffset
}

// waitCheckpoints waits until every sealed segment has its checkpoint (a
// segment is freed only below a checkpointed one).
func waitCheckpoints(t testing.TB, s *Store) {
	t.Helper()
	eventually(t, "checkpoints", func() bool {
		for _, sh := range s.shards {
			sh.segsMu.Lock()
			for _, seg := range sh.segs {
				if seg.sealed && !seg.ckDone.Load() {
					sh.segsMu.Unlock()
					return false
				}
			}
			sh.segsMu.Unlock()
		}
		return true
	})
}

func walFiles(t testing.TB, fsys vfs.FS, cfg Config) []string {
	t.Helper()
	names, err := fsys.List(cfg.Dir + "/shard-000")
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(names, func(n string) bool { return !strings.HasSuffix(n, segSuffix) })
}

func wantOffsets(t testing.TB, s *Store, topic string, part int32, start, hwm int64) {
	t.Helper()
	ls, h, err := s.Offsets(topic, part)
	if err != nil || ls != start || h != hwm {
		t.Fatalf("Offsets(%s/%d) = %d, %d, %v; want %d, %d", topic, part, ls, h, err, start, hwm)
	}
}

// wantReadable checks every offset from the log start to the high
// watermark reads back in order, and the one below the start is out of
// range.
func wantReadable(t testing.TB, s *Store, topic string, part int32) {
	t.Helper()
	start, hwm, err := s.Offsets(topic, part)
	if err != nil {
		t.Fatal(err)
	}
	if start > 0 {
		res := s.Read(topic, part, start-1, 1<<20)
		res.Release()
		if !errors.Is(res.Err, ErrOffsetOutOfRange) {
			t.Fatalf("Read(%s/%d@%d) below log start: %v", topic, part, start-1, res.Err)
		}
	}
	for off := start; off < hwm; {
		res := s.Read(topic, part, off, 1)
		if res.Err != nil || len(res.Chunks) == 0 {
			t.Fatalf("Read(%s/%d@%d): %v, %d chunks (log %d..%d)", topic, part, off, res.Err, len(res.Chunks), start, hwm)
		}
		c := res.Chunks[0]
		b := make([]byte, c.Len)
		if _, err := c.File.ReadAt(b, c.Off); err != nil {
			t.Fatal(err)
		}
		res.Release()
		batch, _, err := NextBatch(b)
		if err != nil {
			t.Fatalf("batch at %d: %v", off, err)
		}
		h, err := ValidateBatch(batch)
		if err != nil {
			t.Fatalf("batch at %d: %v", off, err)
		}
		if h.BaseOffset > off || h.BaseOffset+int64(h.LastOffsetDelta) < off {
			t.Fatalf("Read@%d gave batch %d..%d", off, h.BaseOffset, h.BaseOffset+int64(h.LastOffsetDelta))
		}
		off = h.BaseOffset + int64(h.LastOffsetDelta) + 1
	}
}

func TestDeleteRecords(t *testing.T) {
	for _, fsName := range []string{"mem", "os"} {
		t.Run(fsName, func(t *testing.T) {
			var fsys vfs.FS = vfs.NewMemFS()
			cfg := testConfig(fsys)
			if fsName == "os" {
				fsys = vfs.OSFS{}
				cfg = testConfig(fsys)
				cfg.Dir = t.TempDir()
			}
			cfg.RetentionCheckInterval = -1
			s := mustOpen(t, cfg)
			mustCreate(t, s, "t", 1)
			// Timestamps: the largest (9000) at offset 2, below where the
			// log will start.
			for i := range 10 {
				ts := int64(i * 100)
				if i == 2 {
					ts = 9000
				}
				appendTs(t, s, "t", 0, ts, 10)
			}
			if _, err := s.DeleteRecords("nope", 0, 1); !errors.Is(err, ErrUnknownTopic) {
				t.Fatalf("unknown topic: %v", err)
			}
			if _, err := s.DeleteRecords("t", 0, 11); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("past hwm: %v", err)
			}
			if _, err := s.DeleteRecords("t", 0, -2); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("-2: %v", err)
			}
			if ls, err := s.DeleteRecords("t", 0, 5); err != nil || ls != 5 {
				t.Fatalf("DeleteRecords(5) = %d, %v", ls, err)
			}
			wantOffsets(t, s, "t", 0, 5, 10)
			wantReadable(t, s, "t", 0)
			if res := s.Read("t", 0, 5, 1<<20); res.LogStartOffset != 5 || res.Err != nil {
				t.Fatalf("Read: start %d, %v", res.LogStartOffset, res.Err)
			} else {
				res.Release()
			}
			if off, ts, err := s.OffsetForTime("t", 0, 0); err != nil || off != 5 || ts != 500 {
				t.Fatalf("OffsetForTime(0) = %d, %d, %v; want 5, 500", off, ts, err)
			}
			if off, ts, err := s.MaxTimestamp("t", 0); err != nil || off != 9 || ts != 900 {
				t.Fatalf("MaxTimestamp = %d, %d, %v; want 9, 900", off, ts, err)
			}
			if ls, err := s.DeleteRecords("t", 0, 3); err != nil || ls != 5 {
				t.Fatalf("DeleteRecords(3) = %d, %v: the log start never moves back", ls, err)
			}
			if ls, err := s.DeleteRecords("t", 0, -1); err != nil || ls != 10 {
				t.Fatalf("DeleteRecords(-1) = %d, %v", ls, err)
			}
			if res := s.Read("t", 0, 10, 1<<20); res.Err != nil || len(res.Chunks) != 0 {
				t.Fatalf("Read at hwm: %v", res.Err)
			}
			if off, _, err := s.MaxTimestamp("t", 0); err != nil || off != -1 {
				t.Fatalf("MaxTimestamp of an emptied log = %d, %v", off, err)
			}
			r := appendWait(t, s, "t", 0, makeBatch(batchSpec{ts: 1}), true)
			if r.Err != nil || r.BaseOffset != 10 || r.LogStartOffset != 10 {
				t.Fatalf("append after: %+v", r)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if mem, ok := fsys.(*vfs.MemFS); ok {
				// Persisted before returning: a crash now keeps it.
				cfg.FS = mem.CrashClone(vfs.CrashDropUnsynced, 1)
			}
			s = mustOpen(t, cfg)
			defer s.Close()
			wantOffsets(t, s, "t", 0, 10, 11)
			wantReadable(t, s, "t", 0)
		})
	}
}

// TestRetentionTime: retention.ms moves the log start past whole expired
// chunks, stops at the first unexpired one, and frees the segments.
func TestRetentionTime(t *testing.T) {
	clock := &fakeClock{}
	mem := vfs.NewMemFS()
	cfg := retentionConfig(mem, clock)
	s := mustOpen(t, cfg)
	defer func() { s.Close() }()
	if _, err := s.CreateTopic("t", 1, map[string]string{"retention.ms": "1000"}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "keep", 1) // default retention (7 days): nothing expires
	if _, err := s.CreateTopic("compact", 1, map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	// 9 old appends (three segments), then 3 new ones and one expired
	// after them (retention stops at the first unexpired chunk).
	for range 9 {
		appendTs(t, s, "t", 0, 1000, bigValue)
	}
	for range 3 {
		appendTs(t, s, "t", 0, 100_000, bigValue)
	}
	appendTs(t, s, "t", 0, 1000, bigValue)
	appendTs(t, s, "keep", 0, 1000, 10)
	appendTs(t, s, "compact", 0, 1000, 10)
	waitCheckpoints(t, s)
	before := len(walFiles(t, mem, cfg))

	clock.ms.Store(50_000)
	s.retentionPass(context.Background())
	wantOffsets(t, s, "t", 0, 9, 13)
	wantOffsets(t, s, "keep", 0, 0, 1)
	wantOffsets(t, s, "compact", 0, 0, 1) // retention applies to delete policies only
	wantReadable(t, s, "t", 0)
	if after := len(walFiles(t, mem, cfg)); after != before-3 {
		t.Fatalf("%d segments after retention, %d before: want the three expired ones gone", after, before)
	}

	clock.ms.Store(200_000)
	s.retentionPass(context.Background())
	wantOffsets(t, s, "t", 0, 13, 13)

	// Reopen: the log start holds, appends continue.
	s.Close()
	s = mustOpen(t, cfg)
	wantOffsets(t, s, "t", 0, 13, 13)
	if base := appendTs(t, s, "t", 0, 300_000, 10); base != 13 {
		t.Fatalf("append after reopen at %d", base)
	}
}

// TestRetentionBytes: retention.bytes drops the oldest whole chunks while
// what remains still holds at least the limit (as Kafka does).
func TestRetentionBytes(t *testing.T) {
	clock := &fakeClock{}
	mem := vfs.NewMemFS()
	cfg := retentionConfig(mem, clock)
	s := mustOpen(t, cfg)
	defer s.Close()
	batch := int64(len(makeBatch(batchSpec{value: make([]byte, bigValue)})))
	limit := 4*batch + batch/2
	if _, err := s.CreateTopic("t", 2, map[string]string{"retention.bytes": fmt.Sprint(limit)}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		appendTs(t, s, "t", 0, 1, bigValue)
	}
	appendTs(t, s, "t", 1, 1, 10)
	waitCheckpoints(t, s)
	s.retentionPass(context.Background())
	wantOffsets(t, s, "t", 0, 5, 10) // five batches >= 4.5, four would be below
	wantOffsets(t, s, "t", 1, 0, 1)
	wantReadable(t, s, "t", 0)
	// A second pass has nothing more to do.
	s.retentionPass(context.Background())
	wantOffsets(t, s, "t", 0, 5, 10)
}

// TestSegmentKeptForOtherPartition: a segment goes only when every
// partition with a chunk in it allows it.
func TestSegmentKeptForOtherPartition(t *testing.T) {
	clock := &fakeClock{}
	mem := vfs.NewMemFS()
	cfg := retentionConfig(mem, clock)
	s := mustOpen(t, cfg)
	defer s.Close()
	if _, err := s.CreateTopic("short", 1, map[string]string{"retention.ms": "10"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTopic("forever", 1, map[string]string{"retention.ms": "-1"}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		appendTs(t, s, "short", 0, 1, bigValue)
		appendTs(t, s, "short", 0, 1, bigValue)
		appendTs(t, s, "forever", 0, 1, 10)
	}
	waitCheckpoints(t, s)
	before := walFiles(t, mem, cfg)
	clock.ms.Store(1_000_000)
	s.retentionPass(context.Background())
	wantOffsets(t, s, "short", 0, 8, 8)
	wantOffsets(t, s, "forever", 0, 0, 4)
	if after := walFiles(t, mem, cfg); !slices.Equal(after, before) {
		t.Fatalf("segments %v -> %v: every one holds a chunk of forever", before, after)
	}
	wantReadable(t, s, "forever", 0)

	// Once forever is gone, so are the segments (but the newest sealed
	// one, whose checkpoint holds the producer state, and the active one).
	if err := s.DeleteTopic("forever"); err != nil {
		t.Fatal(err)
	}
	s.freePass()
	if after := walFiles(t, mem, cfg); len(after) != 2 {
		t.Fatalf("segments after the topic is deleted: %v", after)
	}
}

// chunkSegs lists the segment ids holding p's live chunks.
func chunkSegs(s *Store, topic string) []uint64 {
	p, _ := s.lookup(topic, 0)
	v := p.idx.view()
	var ids []uint64
	for i := v.first; i < v.n; i++ {
		if id := v.at(i).seg.id; len(ids) == 0 || ids[len(ids)-1] != id {
			ids = append(ids, id)
		}
	}
	return ids
}

// gapSetup builds, in one shard:
//
//	seg 0: keep gap gap gap   seg 1: gap x3   seg 2: gap x3
//	seg 3, 4, 5: gone x3      seg 6: keep x3  seg 7 (active): keep
//
// then moves gap's log start into seg 2 and expires gone entirely. Seg 1
// and gone's segments may go; seg 0 stays for keep, so gap's chunks on
// disk have a hole (seg 1) that recovery must accept, and gone has no
// chunk left.
func gapSetup(t *testing.T, s *Store, clock *fakeClock) {
	t.Helper()
	for _, tc := range []struct {
		name string
		ms   string
	}{{"keep", "-1"}, {"gap", "-1"}, {"gone", "10"}} {
		if _, err := s.CreateTopic(tc.name, 1, map[string]string{"retention.ms": tc.ms}); err != nil {
			t.Fatal(err)
		}
	}
	appendTs(t, s, "keep", 0, 1, 10)
	for range 9 {
		appendTs(t, s, "gap", 0, 1, bigValue)
	}
	for range 9 {
		appendTs(t, s, "gone", 0, 1, bigValue)
	}
	for range 4 {
		appendTs(t, s, "keep", 0, 1, bigValue)
	}
	if got := chunkSegs(s, "gap"); !slices.Equal(got, []uint64{0, 1, 2}) {
		t.Fatalf("gap in segments %v", got)
	}
	waitCheckpoints(t, s)
	if ls, err := s.DeleteRecords("gap", 0, 7); err != nil || ls != 7 {
		t.Fatalf("DeleteRecords: %d, %v", ls, err)
	}
	clock.ms.Store(1_000_000)
}

func checkGapState(t *testing.T, s *Store) {
	t.Helper()
	wantOffsets(t, s, "keep", 0, 0, 5)
	wantOffsets(t, s, "gap", 0, 7, 9)
	wantOffsets(t, s, "gone", 0, 9, 9)
	for _, topic := range []string{"keep", "gap", "gone"} {
		wantReadable(t, s, topic, 0)
	}
}

// TestSegmentDeletionReopen: after segments are deleted, reopening
// recovers every partition at the right offsets: one with a hole in its
// chunks, one with no chunk left.
func TestSegmentDeletionReopen(t *testing.T) {
	for _, fsName := range []string{"mem", "os"} {
		t.Run(fsName, func(t *testing.T) {
			clock := &fakeClock{}
			var fsys vfs.FS = vfs.NewMemFS()
			cfg := retentionConfig(fsys, clock)
			if fsName == "os" {
				fsys = vfs.OSFS{}
				cfg = retentionConfig(fsys, clock)
				cfg.Dir = t.TempDir()
			}
			s := mustOpen(t, cfg)
			gapSetup(t, s, clock)
			s.retentionPass(context.Background())
			checkGapState(t, s)
			files := walFiles(t, fsys, cfg)
			if want := []string{segName(0) + segSuffix, segName(2) + segSuffix, segName(6) + segSuffix, segName(7) + segSuffix}; !slices.Equal(files, want) {
				t.Fatalf("segments left: %v; want %v", files, want)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, cfg)
			defer s.Close()
			if st := s.Stats(); st.Recovery.FailedPartitions != 0 {
				t.Fatalf("recovery failed %d partitions", st.Recovery.FailedPartitions)
			}
			checkGapState(t, s)
			for topic, want := range map[string]int64{"keep": 5, "gap": 9, "gone": 9} {
				if base := appendTs(t, s, topic, 0, 2_000_000, 10); base != want {
					t.Fatalf("%s continues at %d, want %d", topic, base, want)
				}
			}
		})
	}
}

// hookFS calls before ahead of every namespace change. The store's
// maintenance goroutine may remove files while the test swaps before
// (a race once seen under -race), so before is set and called under mu.
type hookFS struct {
	vfs.FS
	mu     sync.Mutex
	before func(op, name string)
}

func (h *hookFS) setBefore(f func(op, name string)) {
	h.mu.Lock()
	h.before = f
	h.mu.Unlock()
}

func (h *hookFS) call(op, name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.before(op, name)
}

func (h *hookFS) Remove(name string) error {
	h.call("remove", name)
	return h.FS.Remove(name)
}

func (h *hookFS) Rename(o, n string) error {
	h.call("rename", n)
	return h.FS.Rename(o, n)
}

// TestSegmentDeletionCrash: a crash at any point of a retention pass
// (meta.json writes, unlinks) recovers a consistent store: every partition
// at its old or new log start, every offset from there to the end
// readable, appends continuing at the end.
func TestSegmentDeletionCrash(t *testing.T) {
	clock := &fakeClock{}
	mem := vfs.NewMemFS()
	hook := &hookFS{FS: mem, before: func(string, string) {}}
	cfg := retentionConfig(hook, clock)
	s := mustOpen(t, cfg)
	gapSetup(t, s, clock)
	var clones []*vfs.MemFS
	var ops []string
	hook.setBefore(func(op, name string) {
		ops = append(ops, op+" "+name)
		for _, mode := range []vfs.CrashMode{vfs.CrashDropUnsynced, vfs.CrashKeepUnsynced, vfs.CrashTorn} {
			clones = append(clones, mem.CrashClone(mode, uint64(len(clones))))
		}
	})
	s.retentionPass(context.Background())
	hook.setBefore(func(string, string) {})
	clones = append(clones, mem.CrashClone(vfs.CrashDropUnsynced, 99))
	s.Close()
	if len(ops) < 3 {
		t.Fatalf("only %v during the pass", ops)
	}
	for i, c := range clones {
		ccfg := cfg
		ccfg.FS = c
		s := mustOpen(t, ccfg)
		for topic, starts := range map[string][]int64{"keep": {0}, "gap": {7}, "gone": {0, 9}} {
			ls, hwm, err := s.Offsets(topic, 0)
			if err != nil || !slices.Contains(starts, ls) || hwm != map[string]int64{"keep": 5, "gap": 9, "gone": 9}[topic] {
				t.Fatalf("crash %d (after %v): %s at %d..%d, %v", i, ops[:min(i/3, len(ops))], topic, ls, hwm, err)
			}
			wantReadable(t, s, topic, 0)
			if base := appendTs(t, s, topic, 0, 2_000_000, 10); base != hwm {
				t.Fatalf("crash %d: %s continues at %d, want %d", i, topic, base, hwm)
			}
		}
		s.Close()
	}
}

// TestMaxWALBytes: at the cap an append that needs a new segment fails
// with ErrLogFull, nothing written, the shard still fine; once retention
// frees a segment appends go on.
func TestMaxWALBytes(t *testing.T) {
	clock := &fakeClock{}
	mem := vfs.NewMemFS()
	cfg := retentionConfig(mem, clock)
	cfg.MaxWALBytes = 3 * cfg.SegmentBytes
	s := mustOpen(t, cfg)
	defer s.Close()
	if _, err := s.CreateTopic("t", 1, map[string]string{"retention.ms": "-1"}); err != nil {
		t.Fatal(err)
	}
	var full AppendResult
	n := 0
	for ; n < 20; n++ {
		full = appendWait(t, s, "t", 0, makeBatch(batchSpec{value: make([]byte, bigValue)}), true)
		if full.Err != nil {
			break
		}
	}
	if !errors.Is(full.Err, ErrLogFull) {
		t.Fatalf("after %d appends: %v, want ErrLogFull", n, full.Err)
	}
	if n != 9 {
		t.Fatalf("%d appends fit in three segments, want 9", n)
	}
	wantOffsets(t, s, "t", 0, 0, 9)
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{value: make([]byte, bigValue)}), false); !errors.Is(r.Err, ErrLogFull) {
		t.Fatalf("still full: %v", r.Err)
	}
	if err := s.Health(); err == nil || !strings.Contains(err.Error(), "WAL at its cap") {
		t.Fatalf("Health at the cap after ErrLogFull: %v", err)
	}
	// Small appends still fit in the active segment.
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{value: make([]byte, 10)}), true); r.Err != nil {
		t.Fatalf("small append: %v", r.Err)
	}
	waitCheckpoints(t, s)
	if _, err := s.DeleteRecords("t", 0, 6); err != nil {
		t.Fatal(err)
	}
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{value: make([]byte, bigValue)}), true); r.Err != nil || r.BaseOffset != 10 {
		t.Fatalf("append after freeing: %+v", r)
	}
	wantReadable(t, s, "t", 0)
	if err := s.Health(); err != nil {
		t.Fatalf("Health after freeing: %v", err)
	}
	if st := s.Stats(); st.FailedShards != 0 || st.LogFull != 2 || st.SegmentsDeleted < 1 || st.WALBytes > cfg.MaxWALBytes {
		t.Fatalf("stats %+v: want no failed shard, 2 refusals, a segment deleted, WAL within its cap", st)
	}
}

// TestRetentionGoroutine: Open starts retention on its interval; Close
// stops it.
func TestRetentionGoroutine(t *testing.T) {
	clock := &fakeClock{}
	clock.ms.Store(1_000_000)
	cfg := retentionConfig(vfs.NewMemFS(), clock)
	cfg.RetentionCheckInterval = time.Millisecond
	cfg.RetentionMs = 100
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 1)
	appendTs(t, s, "t", 0, 1, 10)
	appendTs(t, s, "t", 0, 1, 10)
	eventually(t, "retention", func() bool {
		ls, _, _ := s.Offsets("t", 0)
		return ls == 2
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// fakeCold is a ColdLog over a fixed manifest.
type fakeCold struct {
	mu       sync.Mutex
	m        *tier.Manifest
	retained map[tier.Partition]int64
}

func (c *fakeCold) Manifest(_ context.Context, p tier.Partition) (*tier.Manifest, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || c.m.Part != p {
		return nil, nil
	}
	return c.m, nil
}

func (c *fakeCold) Read(context.Context, tier.Partition, int64, int64) ([]byte, error) {
	return nil, errors.New("fakeCold: no reads")
}

func (c *fakeCold) OffsetForTime(context.Context, tier.Partition, int64) (int64, int64, error) {
	return -1, -1, nil
}

func (c *fakeCold) Retain(p tier.Partition, offset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retained[p] = offset
}

func (c *fakeCold) Forget(tier.Partition) {}

// TestRetentionTiered: uploaded segments go under HotBytes pressure, oldest
// first; retention counts the tiered objects below the local start and
// tells the tier.
func TestRetentionTiered(t *testing.T) {
	clock := &fakeClock{}
	mem := vfs.NewMemFS()
	cold := &fakeCold{retained: map[tier.Partition]int64{}}
	cfg := retentionConfig(mem, clock)
	cfg.Cold = cold
	cfg.HotBytes = 2 * cfg.SegmentBytes
	s := mustOpen(t, cfg)
	defer func() { s.Close() }()
	if _, err := s.CreateTopic("t", 1, map[string]string{"retention.ms": "-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTopic("u", 1, map[string]string{"retention.ms": "-1"}); err != nil {
		t.Fatal(err)
	}
	appendTs(t, s, "u", 0, 1, 10) // in segment 0 only
	for range 12 {                // segments 0..2 sealed, 3 active
		appendTs(t, s, "t", 0, 1, bigValue)
	}
	waitCheckpoints(t, s)
	p, _ := s.lookup("t", 0)
	tp := tierPart(p)
	before := len(walFiles(t, mem, cfg))
	s.freePass()
	if n := len(walFiles(t, mem, cfg)); n != before {
		t.Fatalf("%d -> %d segments with nothing uploaded", before, n)
	}
	// Uploaded up to offset 9 (segments 0..2): the WAL keeps HotBytes.
	p.tieredEnd.Store(9)
	pu, _ := s.lookup("u", 0)
	pu.tieredEnd.Store(1)
	s.freePass()
	if got := chunkSegs(s, "t"); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("local segments %v, want 2 3 (HotBytes: two segments)", got)
	}
	wantOffsets(t, s, "t", 0, 0, 12)
	// Reopen: u has no chunk left and its log start is 0, yet it goes on
	// at 1 (next_min); t's local chunks start at 6.
	s.Close()
	s = mustOpen(t, cfg)
	wantOffsets(t, s, "u", 0, 0, 1)
	wantOffsets(t, s, "t", 0, 0, 12)
	if got := chunkSegs(s, "t"); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("local segments after reopen %v", got)
	}

	// The tier holds 0..5 as two objects; retention.bytes over the whole
	// log (12 batches; limit 8) drops the oldest object only.
	batch := int64(len(makeBatch(batchSpec{value: make([]byte, bigValue)})))
	cold.mu.Lock()
	cold.m = &tier.Manifest{Part: tp, Objects: []tier.ObjectRef{
		{BaseOffset: 0, LastOffset: 2, Size: 3 * batch, MaxTimestamp: 1},
		{BaseOffset: 3, LastOffset: 5, Size: 3 * batch, MaxTimestamp: 1},
	}}
	cold.mu.Unlock()
	if err := s.SetTopicConfigs("t", map[string]string{"retention.ms": "-1", "retention.bytes": fmt.Sprint(8 * batch)}); err != nil {
		t.Fatal(err)
	}
	s.retentionPass(context.Background())
	wantOffsets(t, s, "t", 0, 3, 12)
	cold.mu.Lock()
	got := cold.retained[tp]
	cold.mu.Unlock()
	if got != 3 {
		t.Fatalf("Cold.Retain got %d, want 3", got)
	}
}

// TestRetentionConcurrentReads: reads racing with log start moves, index
// trims and segment deletion get whole, valid batches or
// ErrOffsetOutOfRange, never anything else (run with -race).
func TestRetentionConcurrentReads(t *testing.T) {
	clock := &fakeClock{}
	cfg := retentionConfig(vfs.NewMemFS(), clock)
	cfg.SegmentBytes = 64 << 10
	s := mustOpen(t, cfg)
	defer s.Close()
	mustCreate(t, s, "t", 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, outOfRange atomic.Int64
	errs := make(chan error, 4)
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start, hwm, _ := s.Offsets("t", 0)
				off := start
				if hwm > start {
					off += int64(i*7+g) % (hwm - start)
				}
				res := s.Read("t", 0, off, 4096)
				switch {
				case errors.Is(res.Err, ErrOffsetOutOfRange):
					outOfRange.Add(1)
				case res.Err != nil:
					errs <- fmt.Errorf("Read@%d: %w", off, res.Err)
					return
				case len(res.Chunks) > 0:
					c := res.Chunks[0]
					b := make([]byte, c.Len)
					if _, err := c.File.ReadAt(b, c.Off); err != nil {
						errs <- err
						return
					}
					batch, _, err := NextBatch(b)
					if err == nil {
						var h BatchHeader
						if h, err = ValidateBatch(batch); err == nil && (h.BaseOffset > off || h.BaseOffset+int64(h.LastOffsetDelta) < off) {
							err = fmt.Errorf("batch %d for offset %d", h.BaseOffset, off)
						}
					}
					if err != nil {
						errs <- err
						return
					}
					reads.Add(1)
				}
				res.Release()
			}
		}()
	}
	for i := range 60 {
		appendTs(t, s, "t", 0, 1, 5000)
		if i%5 == 4 {
			if _, err := s.DeleteRecords("t", 0, int64(i-2)); err != nil {
				t.Fatal(err)
			}
			s.freePass()
		}
	}
	eventually(t, "a successful read", func() bool { return reads.Load() > 0 || len(errs) > 0 })
	close(stop)
	waitGroup(t, &wg, "readers")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantReadable(t, s, "t", 0)
}
