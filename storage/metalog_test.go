package storage

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klite/klite/vfs"
)

// metaTopicWant is what a topic should look like after a reopen.
type metaTopicWant struct {
	parts   int32
	configs map[string]string
}

// metaChange is one topic change a worker has asked for.
type metaChange struct {
	op      string // create, configs, grow, delete
	name    string
	parts   int32
	configs map[string]string
}

func (c metaChange) applyTo(m map[string]metaTopicWant) {
	switch c.op {
	case "create":
		m[c.name] = metaTopicWant{c.parts, c.configs}
	case "configs":
		m[c.name] = metaTopicWant{m[c.name].parts, c.configs}
	case "grow":
		m[c.name] = metaTopicWant{c.parts, m[c.name].configs}
	case "delete":
		delete(m, c.name)
	}
}

// metaExpect is what the workers have been told is durable, and what
// they are waiting for.
type metaExpect struct {
	mu       sync.Mutex
	acked    map[string]metaTopicWant
	inflight map[int]metaChange // by worker
	maxPID   int64
}

func (e *metaExpect) clone() *metaExpect {
	e.mu.Lock()
	defer e.mu.Unlock()
	return &metaExpect{acked: maps.Clone(e.acked), inflight: maps.Clone(e.inflight), maxPID: e.maxPID}
}

// runMetaWorkers makes topic changes and producer ids from workers
// goroutines, ops each, recording every acknowledged change in exp. With
// faults, a worker stops at its first ErrStorage, its change left in
// flight.
func runMetaWorkers(t *testing.T, s *Store, exp *metaExpect, workers, ops int, faults bool) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var mine []string // this worker's live topics, oldest first
			for i := range ops {
				var c metaChange
				switch {
				case i%6 == 0 || len(mine) == 0:
					c = metaChange{op: "create", name: fmt.Sprintf("w%d.t%d", w, i), parts: int32(1 + i%3),
						configs: map[string]string{"retention.ms": strconv.Itoa(i)}}
				case i%6 == 1:
					c = metaChange{op: "configs", name: mine[len(mine)-1], configs: map[string]string{"retention.ms": strconv.Itoa(i)}}
				case i%6 == 2:
					exp.mu.Lock()
					have := exp.acked[mine[len(mine)-1]].parts
					exp.mu.Unlock()
					c = metaChange{op: "grow", name: mine[len(mine)-1], parts: have + 1}
				case i%6 == 3:
					c = metaChange{op: "delete", name: mine[0]}
				default:
					id, _, err := s.InitProducerID()
					if err != nil {
						if !faults || !errors.Is(err, ErrStorage) {
							t.Errorf("InitProducerID: %v", err)
						}
						return
					}
					exp.mu.Lock()
					exp.maxPID = max(exp.maxPID, id)
					exp.mu.Unlock()
					continue
				}
				exp.mu.Lock()
				exp.inflight[w] = c
				exp.mu.Unlock()
				var err error
				switch c.op {
				case "create":
					_, err = s.CreateTopic(c.name, c.parts, c.configs)
				case "configs":
					err = s.SetTopicConfigs(c.name, c.configs)
				case "grow":
					_, err = s.CreatePartitions(c.name, c.parts)
				case "delete":
					err = s.DeleteTopic(c.name)
				}
				if err != nil {
					if !faults || !errors.Is(err, ErrStorage) {
						t.Errorf("%s %s: %v", c.op, c.name, err)
					}
					return
				}
				exp.mu.Lock()
				c.applyTo(exp.acked)
				delete(exp.inflight, w)
				exp.mu.Unlock()
				switch c.op {
				case "create":
					mine = append(mine, c.name)
				case "delete":
					mine = mine[1:]
				}
			}
		})
	}
	wg.Wait()
}

// checkMetaCrash opens the store a crash left and checks it holds every
// acknowledged change, and of each change in flight either all or none.
func checkMetaCrash(t *testing.T, fsys vfs.FS, cfg Config, exp *metaExpect, what string) {
	t.Helper()
	s, err := Open(Config{Dir: cfg.Dir, FS: fsys, Shards: cfg.Shards, SegmentBytes: cfg.SegmentBytes})
	if err != nil {
		t.Fatalf("%s: reopen: %v", what, err)
	}
	defer s.Close()
	got := map[string]metaTopicWant{}
	for _, ti := range s.Topics() {
		got[ti.Name] = metaTopicWant{ti.Partitions, ti.Configs}
	}
	// Each in-flight change may or may not have made it: try every subset.
	changes := slices.Collect(maps.Values(exp.inflight))
	ok := false
	for mask := 0; mask < 1<<len(changes) && !ok; mask++ {
		want := maps.Clone(exp.acked)
		for i, c := range changes {
			if mask&(1<<i) != 0 {
				c.applyTo(want)
			}
		}
		ok = maps.EqualFunc(got, want, func(a, b metaTopicWant) bool {
			return a.parts == b.parts && maps.Equal(a.configs, b.configs)
		})
	}
	if !ok {
		t.Fatalf("%s: after reopen\n got %v\nacked %v\nin flight %v", what, got, exp.acked, exp.inflight)
	}
	id, _, err := s.InitProducerID()
	if err != nil || id <= exp.maxPID {
		t.Fatalf("%s: producer id %d after reopen, %d handed out before: %v", what, id, exp.maxPID, err)
	}
}

// TestMetaLogCrashSweep runs concurrent topic changes and producer id
// requests while the metadata log snapshots often, takes a crash clone
// after every metadata file operation (mid-append, mid-snapshot, between
// rename and directory sync...), in turn with unsynced writes dropped,
// kept and torn, and checks each: every acknowledged create, delete,
// config change and partition add is there, nothing half-applied, and no
// producer id is handed out twice.
func TestMetaLogCrashSweep(t *testing.T) {
	mem := vfs.NewMemFS()
	ffs := vfs.NewFaultFS(mem)
	cfg := testConfig(ffs)
	cfg.metaLogBytes = 2 << 10
	exp := &metaExpect{acked: map[string]metaTopicWant{}, inflight: map[int]metaChange{}, maxPID: -1}
	type crash struct {
		fs  *vfs.MemFS
		exp *metaExpect
		op  string
	}
	var crashes []crash
	var n atomic.Int64
	modes := []vfs.CrashMode{vfs.CrashDropUnsynced, vfs.CrashKeepUnsynced, vfs.CrashTorn}
	ffs.SetAfter(func(op vfs.Op, _ error) {
		if !strings.HasPrefix(path.Base(op.Name), metaPrefix) {
			return
		}
		i := n.Add(1)
		e := exp.clone()
		crashes = append(crashes, crash{mem.CrashClone(modes[i%3], uint64(i)), e, fmt.Sprintf("op %d (%v %s)", i, op.Kind, path.Base(op.Name))})
	})
	s := mustOpen(t, cfg)
	runMetaWorkers(t, s, exp, 3, 60, false)
	ffs.SetAfter(nil)
	s.Close()
	if st := s.MetaStats(); st.Snapshots < 3 {
		t.Fatalf("only %d snapshots: the sweep does not cover them", st.Snapshots)
	}
	for _, c := range crashes {
		checkMetaCrash(t, c.fs, cfg, c.exp, c.op)
	}
	t.Logf("%d crash points, %d metadata ops", len(crashes), n.Load())
}

// TestMetaLogFaultSweep fails the nth metadata file operation (a write cut
// short, a failed fsync, rename or create), for n over the operations of
// a concurrent workload: the change is not acknowledged, later ones fail
// too (a failed fsync is never retried), and after a crash the store
// holds every acknowledged change and of each one in flight all or none.
func TestMetaLogFaultSweep(t *testing.T) {
	step := int64(3)
	if testing.Short() {
		step = 11
	}
	faulted := 0
	for n := int64(1); n < 240; n += step {
		mem := vfs.NewMemFS()
		ffs := vfs.NewFaultFS(mem)
		cfg := testConfig(ffs)
		cfg.metaLogBytes = 2 << 10
		s := mustOpen(t, cfg)
		var seen atomic.Int64
		var failed, failedKind atomic.Value
		ffs.SetInjector(func(op vfs.Op) error {
			if !strings.HasPrefix(path.Base(op.Name), metaPrefix) || seen.Add(1) != n {
				return nil
			}
			failed.Store(fmt.Sprintf("%v %s", op.Kind, path.Base(op.Name)))
			failedKind.Store(op.Kind)
			if op.Kind == vfs.OpWrite {
				return &vfs.ShortWrite{N: op.Len / 2, Err: vfs.ErrInjected}
			}
			return vfs.ErrInjected
		})
		exp := &metaExpect{acked: map[string]metaTopicWant{}, inflight: map[int]metaChange{}, maxPID: -1}
		runMetaWorkers(t, s, exp, 3, 40, true)
		if t.Failed() {
			t.Fatalf("fault at metadata op %d (%v)", n, failed.Load())
		}
		// A failed write or fsync is never retried: nothing after it is
		// acknowledged.
		if k, _ := failedKind.Load().(vfs.OpKind); k == vfs.OpWrite || k == vfs.OpSync {
			if _, err := s.CreateTopic("after-fault", 1, nil); !errors.Is(err, ErrStorage) {
				t.Fatalf("fault at metadata op %d (%v): a later create answered %v", n, failed.Load(), err)
			}
		}
		crashed := mem.CrashClone(vfs.CrashTorn, uint64(n))
		s.Close()
		what := fmt.Sprintf("fault at metadata op %d (%v)", n, failed.Load())
		checkMetaCrash(t, crashed, cfg, exp, what)
		if failed.Load() != nil {
			faulted++
		}
	}
	if faulted < 20 {
		t.Fatalf("only %d runs met their fault", faulted)
	}
	t.Logf("%d runs with a fault", faulted)
}

// A torn last frame is cut and kept aside; an invalid frame with a valid
// one after it is corruption: Open fails naming the file and offset.
func TestMetaLogTornTailAndCorruption(t *testing.T) {
	mem := vfs.NewMemFS()
	cfg := testConfig(mem)
	s := mustOpen(t, cfg)
	mustCreate(t, s, "a", 2)
	mustCreate(t, s, "b", 1)
	s.Close()
	logPath := path.Join(cfg.Dir, metaLogName(1))
	b, err := mem.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	write := func(data []byte) {
		t.Helper()
		f, err := mem.Create(logPath)
		if err == nil {
			_, err = f.WriteAt(data, 0)
		}
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}

	// A frame cut short: torn.
	frame := appendMetaFrame(nil, []byte(`{"op":2,"name":"a"}`))
	write(append(slices.Clone(b), frame[:len(frame)-3]...))
	s = mustOpen(t, cfg)
	if _, ok := s.Topic("a"); !ok {
		t.Fatal("torn delete applied")
	}
	s.Close()
	var kept []string
	for _, f := range mem.Files(cfg.Dir) {
		if strings.Contains(f, metaLogSuffix+tornInfix) {
			kept = append(kept, f)
		}
	}
	if len(kept) != 1 {
		t.Fatalf("torn tail kept as %v", kept)
	}
	if aside, _ := mem.ReadFile(kept[0]); len(aside) != len(frame)-3 {
		t.Fatalf("kept %d bytes, cut %d", len(aside), len(frame)-3)
	}

	// A bad CRC in the first frame, a valid frame after it: corruption.
	b, _ = mem.ReadFile(logPath)
	bad := slices.Clone(b)
	bad[metaFrameHeader+1] ^= 0xff
	write(bad)
	_, err = Open(cfg)
	if err == nil || !strings.Contains(err.Error(), metaLogName(1)) || !strings.Contains(err.Error(), "offset 0") {
		t.Fatalf("corrupt log opened: %v", err)
	}
	// A record that does not fit the state (a delete of a missing topic)
	// in a valid frame: corruption too.
	write(append(slices.Clone(b), appendMetaFrame(nil, []byte(`{"op":2,"name":"missing"}`))...))
	if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("log with an impossible record opened: %v", err)
	}
	write(b)
	s = mustOpen(t, cfg)
	defer s.Close()
	if len(s.Topics()) != 2 {
		t.Fatalf("topics %v", s.Topics())
	}
}

// A data directory holding the old meta.json opens with all of it and is
// converted once: a snapshot replaces meta.json.
func TestMetaConvertsMetaJSON(t *testing.T) {
	mem := vfs.NewMemFS()
	cfg := testConfig(mem)
	if err := mem.MkdirAll(cfg.Dir); err != nil {
		t.Fatal(err)
	}
	id, _ := newTopicID()
	old := metaFile{Version: metaVersion, Shards: 2, NextPartKey: 7, ProducerIDLimit: 5000, Topics: []metaTopic{{
		Name: "old", ID: id.String(), Configs: map[string]string{"retention.ms": "9"},
		Partitions: []metaPartition{{Key: 3, Shard: 1, LogStart: 40, NextMin: 50}, {Key: 6, Shard: 0}},
	}}}
	if err := saveMeta(mem, cfg.Dir, &old); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, cfg)
	check := func(s *Store) {
		t.Helper()
		ti, ok := s.Topic("old")
		if !ok || ti.ID != id || ti.Partitions != 2 || ti.Configs["retention.ms"] != "9" {
			t.Fatalf("converted topic %+v", ti)
		}
		if start, hwm, _ := s.Offsets("old", 0); start != 40 || hwm != 50 {
			t.Fatalf("log start %d, next %d", start, hwm)
		}
		if pid, _, _ := s.InitProducerID(); pid < 5000 {
			t.Fatalf("producer id %d reused", pid)
		}
	}
	check(s)
	mustCreate(t, s, "new", 1)
	if p := s.byKey[7]; p == nil || p.t.info.Name != "new" {
		t.Fatal("partition key reused")
	}
	s.Close()
	if _, err := mem.ReadFile(path.Join(cfg.Dir, metaName)); err == nil {
		t.Fatal("meta.json still there")
	}
	cfg.FS = mem.CrashClone(vfs.CrashDropUnsynced, 1)
	s = mustOpen(t, cfg)
	defer s.Close()
	check(s)
	if _, ok := s.Topic("new"); !ok {
		t.Fatal("created topic lost")
	}
}

// While a topic creation waits for its metadata fsync, readers and
// InitProducerID go on, and the topic is invisible until it is durable,
// then visible whole.
func TestMetaFsyncBlocksNoReader(t *testing.T) {
	mem := vfs.NewMemFS()
	ffs := vfs.NewFaultFS(mem)
	cfg := testConfig(ffs)
	s := mustOpen(t, cfg)
	defer s.Close()
	mustCreate(t, s, "existing", 2)

	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	ffs.SetInjector(func(op vfs.Op) error {
		// The metadata fsync (the old meta.json's temp file, or the log).
		if op.Kind == vfs.OpSync && strings.HasPrefix(path.Base(op.Name), "meta") {
			once.Do(func() { close(entered) })
			<-release
		}
		return nil
	})
	created := make(chan error, 1)
	go func() {
		_, err := s.CreateTopic("slow", 3, nil)
		created <- err
	}()
	<-entered
	if _, ok := s.Topic("slow"); ok {
		t.Fatal("topic visible before its creation is durable")
	}
	done := make(chan error, 1)
	go func() {
		for range 3 {
			if _, _, err := s.InitProducerID(); err != nil {
				done <- err
				return
			}
		}
		if ti, ok := s.Topic("existing"); !ok || ti.Partitions != 2 || len(s.Topics()) != 1 {
			done <- fmt.Errorf("readers see %v", s.Topics())
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("InitProducerID or readers waited for another client's topic creation fsync")
	}
	close(release)
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if ti, ok := s.Topic("slow"); !ok || ti.Partitions != 3 {
		t.Fatalf("created topic %+v", ti)
	}
}

// metaWrites counts the bytes written to files directly in dir (the
// metadata, whatever its format), not the shards' WAL.
func metaWrites(ffs *vfs.FaultFS, dir string) *atomic.Int64 {
	var n atomic.Int64
	ffs.SetAfter(func(op vfs.Op, err error) {
		if op.Kind == vfs.OpWrite && err == nil && path.Dir(op.Name) == dir {
			n.Add(int64(op.Len))
		}
	})
	return &n
}

// The bytes a topic creation writes do not grow with the topics and
// partitions that already exist (they were a rewrite of all metadata).
func TestMetaBytesPerCreateIndependentOfTopicCount(t *testing.T) {
	perCreate := func(existing int) int64 {
		ffs := vfs.NewFaultFS(vfs.NewMemFS())
		cfg := testConfig(ffs)
		cfg.MaxPartitions = 1000
		s := mustOpen(t, cfg)
		defer s.Close()
		for i := range existing / 100 {
			mustCreate(t, s, fmt.Sprintf("bulk-%d", i), 100)
		}
		n := metaWrites(ffs, cfg.Dir)
		const creates = 20
		for i := range creates {
			mustCreate(t, s, fmt.Sprintf("new-%d", i), 1)
		}
		return n.Load() / creates
	}
	small, large := perCreate(0), perCreate(20_000)
	t.Logf("bytes written per create: %d with no other topics, %d beside 20000 partitions", small, large)
	if large > 2*small {
		t.Fatalf("a create beside 20000 partitions wrote %d bytes, %d beside none", large, small)
	}
}

// Concurrent changes queued while a metadata fsync runs share the next
// one: ten creates waiting behind a slow fsync take one frame together.
func TestMetaGroupCommit(t *testing.T) {
	mem := vfs.NewMemFS()
	ffs := vfs.NewFaultFS(mem)
	cfg := testConfig(ffs)
	s := mustOpen(t, cfg)
	defer s.Close()

	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	ffs.SetInjector(func(op vfs.Op) error {
		if op.Kind == vfs.OpSync && strings.HasSuffix(op.Name, metaLogSuffix) {
			once.Do(func() { close(entered); <-release })
		}
		return nil
	})
	before := s.MetaStats().Frames
	var wg sync.WaitGroup
	wg.Go(func() { mustCreate(t, s, "first", 1) })
	<-entered
	const n = 10
	for i := range n {
		wg.Go(func() { mustCreate(t, s, fmt.Sprintf("t%d", i), 1) })
	}
	eventually(t, "creates queued", func() bool {
		s.mlog.mu.Lock()
		defer s.mlog.mu.Unlock()
		return len(s.mlog.queue) == n
	})
	close(release)
	waitGroup(t, &wg, "creates")
	if frames := s.MetaStats().Frames - before; frames != 2 {
		t.Fatalf("%d creates took %d frames (fdatasyncs), want 2", n+1, frames)
	}
	if len(s.Topics()) != n+1 {
		t.Fatalf("topics %v", s.Topics())
	}
}

// Moving a log start (DeleteRecords, retention) writes a record, not all
// metadata: the same bytes beside 20000 partitions as beside none.
func TestMetaBytesPerLogStartMove(t *testing.T) {
	perMove := func(existing int) int64 {
		ffs := vfs.NewFaultFS(vfs.NewMemFS())
		cfg := testConfig(ffs)
		cfg.MaxPartitions = 1000
		s := mustOpen(t, cfg)
		defer s.Close()
		for i := range existing / 100 {
			mustCreate(t, s, fmt.Sprintf("bulk-%d", i), 100)
		}
		mustCreate(t, s, "t", 1)
		const moves = 10
		for range moves {
			appendWait(t, s, "t", 0, makeBatch(batchSpec{}), true)
		}
		n := metaWrites(ffs, cfg.Dir)
		for i := range moves {
			if _, err := s.DeleteRecords("t", 0, int64(i+1)); err != nil {
				t.Fatal(err)
			}
		}
		return n.Load() / moves
	}
	small, large := perMove(0), perMove(20_000)
	t.Logf("bytes written per log start move: %d with no other topics, %d beside 20000 partitions", small, large)
	if large > 2*small {
		t.Fatalf("a log start move beside 20000 partitions wrote %d bytes, %d beside none", large, small)
	}
}
