package crashtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/group"
	"github.com/klite/klite/storage"
	"github.com/klite/klite/vfs"
)

// The sweep, in the style of pebble's error-injection sweeps: run a fixed
// workload on a FaultFS over a MemFS and count its file-system operations;
// then, for each operation index n in turn, run it again failing operation
// n and taking a crash clone of the MemFS just before it (a power loss at
// that point). After the workload, which goes on past the fault as the
// broker would, a second crash clone is taken. Both clones must open, and
// every record and offset commit acknowledged before the clone was taken
// must be there exactly once, at its acknowledged offset, with no gaps.
//
// KLITE_CRASH_SWEEP=all runs every index (about a minute); by default a
// stride keeps the test to a few seconds, starting at a different index
// each run, and KLITE_CRASH_SWEEP=<stride> picks another stride.

const (
	sweepDir   = "/wal"
	groupsDir  = "/wal/groups"
	sweepGroup = "g"
	valueBytes = 2000 // with 64 KiB segments, rolls every ~30 batches
)

// sweepTopics are created in order; the second in the workload's second life.
var sweepTopics = []struct {
	name  string
	parts int32
}{{"a", 2}, {"b", 1}}

func storeConfig(fs vfs.FS) storage.Config {
	return storage.Config{
		Dir: sweepDir, FS: fs, Shards: 2, SegmentBytes: 64 << 10,
		Prealloc:               storage.PreallocFallocate, // zero-fill waits for idle fsyncs: timing, not data
		RetentionCheckInterval: time.Hour,
	}
}

func groupConfig(fs vfs.FS, st *storage.Store) group.Config {
	return group.Config{
		Dir: groupsDir, FS: fs, CompactBytes: 2 << 10, // snapshots every few commits
		Topics: func(name string) (int32, bool) {
			ti, ok := st.Topic(name)
			return ti.Partitions, ok
		},
	}
}

// tp names a partition.
type tp struct {
	topic string
	part  int32
}

// ledger records what the workload was told was durable. Everything
// acknowledged before the crash clone is in must; everything acknowledged
// at all is in all.
type ledger struct {
	mu      sync.Mutex
	crashed bool
	must    outcome
	all     outcome
}

// outcome is one view of what was acknowledged.
type outcome struct {
	records map[tp]map[int64]uint64 // offset -> record id
	commits map[tp]int64            // highest acknowledged commit
	starts  map[tp]int64            // highest acknowledged log start (DeleteRecords)
	topics  map[string]int32
}

func newOutcome() outcome {
	return outcome{records: map[tp]map[int64]uint64{}, commits: map[tp]int64{}, starts: map[tp]int64{}, topics: map[string]int32{}}
}

func (o outcome) record(p tp, off int64, id uint64) {
	if o.records[p] == nil {
		o.records[p] = map[int64]uint64{}
	}
	o.records[p][off] = id
}

func (l *ledger) ack(fn func(outcome)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.crashed {
		fn(l.must)
	}
	fn(l.all)
}

// run is one run of the workload. failAt > 0 fails that operation (1-based,
// counted over every kind) and takes the crash clone just before it.
type run struct {
	mem    *vfs.MemFS
	ffs    *vfs.FaultFS
	led    ledger
	failAt int64
	failOp func(vfs.Op) bool // when set, picks the operations to fail instead; the clone is taken at the first

	opsMu   sync.Mutex
	ops     int64
	atCrash *vfs.MemFS // the clone at the fault; nil: not reached
	mode    vfs.CrashMode
	nextID  uint64
	highest map[tp]int64 // highest commit offset submitted
	deleted map[tp]int64 // highest DeleteRecords offset submitted
}

func newRun(failAt int64, mode vfs.CrashMode) *run {
	r := &run{mem: vfs.NewMemFS(), failAt: failAt, mode: mode, highest: map[tp]int64{}, deleted: map[tp]int64{}}
	r.led.must, r.led.all = newOutcome(), newOutcome()
	r.ffs = vfs.NewFaultFS(r.mem)
	r.ffs.SetInjector(r.inject)
	return r
}

func (r *run) inject(op vfs.Op) error {
	r.opsMu.Lock()
	defer r.opsMu.Unlock()
	r.ops++
	hit := r.ops == r.failAt
	if r.failOp != nil {
		hit = r.failOp(op)
	}
	if !hit {
		return nil
	}
	if r.atCrash != nil {
		return vfs.ErrInjected // a later fault: the clone is taken at the first
	}
	r.led.mu.Lock()
	r.atCrash = r.mem.CrashClone(r.mode, uint64(r.failAt))
	r.led.crashed = true
	r.led.mu.Unlock()
	return vfs.ErrInjected
}

// workload: create a, produce to it and commit, close; reopen (recovery),
// create b, produce to both and commit, delete the records of every
// partition so far (DeleteRecords), produce and commit again, close.
// Segments roll every ~30 batches, so the deletion frees segments, and the
// offsets log snapshots every few commits. It gives up on a life at the
// first failure to open, and carries on past failed appends and commits.
func (r *run) workload(t *testing.T) {
	for life, batches := range []int{80, 60} {
		st, err := storage.Open(storeConfig(r.ffs))
		if err != nil {
			return
		}
		tc := sweepTopics[life]
		if _, err := st.CreateTopic(tc.name, tc.parts, nil); err == nil {
			r.led.ack(func(o outcome) { o.topics[tc.name] = tc.parts })
		}
		// The coordinator opens after the topic is made, so its directory
		// is not synced by chance by the store's next meta write.
		co, err := group.Open(groupConfig(r.ffs, st))
		if err != nil {
			_ = st.Close()
			return
		}
		var parts []tp
		for _, tc := range sweepTopics[:life+1] {
			for p := range tc.parts {
				parts = append(parts, tp{tc.name, p})
			}
		}
		r.produce(t, st, parts, batches)
		r.commit(t, co, parts)
		if life == 1 {
			r.deleteRecords(st, parts)
		}
		r.produce(t, st, parts, batches/2)
		r.commit(t, co, parts)
		_ = co.Close()
		_ = st.Close()
	}
}

// produce appends batches one-record batches round-robin over parts, four
// in flight at a time, each acks=all.
func (r *run) produce(t *testing.T, st *storage.Store, parts []tp, batches int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range batches {
		p := parts[i%len(parts)]
		r.nextID++
		id := r.nextID
		sem <- struct{}{}
		wg.Add(1)
		st.Append(p.topic, p.part, oneRecordBatch(id), true, func(res storage.AppendResult) {
			if res.Err == nil {
				r.led.ack(func(o outcome) { o.record(p, res.BaseOffset, id) })
			}
			<-sem
			wg.Done()
		})
	}
	waitGroup(t, &wg, "appends")
}

// deleteRecords moves each partition's log start to its high watermark.
func (r *run) deleteRecords(st *storage.Store, parts []tp) {
	for _, p := range parts {
		_, hwm, err := st.Offsets(p.topic, p.part)
		if err != nil {
			continue
		}
		r.deleted[p] = max(r.deleted[p], hwm)
		if start, err := st.DeleteRecords(p.topic, p.part, hwm); err == nil {
			r.led.ack(func(o outcome) { o.starts[p] = max(o.starts[p], start) })
		}
	}
}

// commit commits, standalone, each partition's next offset so far.
func (r *run) commit(t *testing.T, co *group.Coordinator, parts []tp) {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.Generation = 8, sweepGroup, -1
	for _, p := range parts {
		r.highest[p] += 7 // any increasing value: commits need not match the log
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = p.topic
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p.part, r.highest[p]
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	ch := make(chan *kmsg.OffsetCommitResponse, 1)
	co.OffsetCommit(req, func(resp *kmsg.OffsetCommitResponse) { ch <- resp })
	var resp *kmsg.OffsetCommitResponse
	select {
	case resp = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("offset commit did not complete")
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode == 0 {
				p := tp{rt.Topic, rp.Partition}
				off := r.highest[p]
				r.led.ack(func(o outcome) { o.commits[p] = max(o.commits[p], off) })
			}
		}
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not complete", what)
	}
}

// check opens fs (a crash clone) and verifies that want is there exactly
// once and without gaps, and that nothing appears that was never
// submitted.
func (r *run) check(t *testing.T, what string, fs *vfs.MemFS, want outcome) {
	t.Helper()
	st, err := storage.Open(storeConfig(fs))
	if err != nil {
		t.Fatalf("%s: storage does not open: %v", what, err)
	}
	defer st.Close()
	co, err := group.Open(groupConfig(fs, st))
	if err != nil {
		t.Fatalf("%s: groups do not open: %v", what, err)
	}
	defer co.Close()
	for name, parts := range want.topics {
		if ti, ok := st.Topic(name); !ok || ti.Partitions != parts {
			t.Fatalf("%s: acknowledged topic %s (%d partitions) is %+v, %v", what, name, parts, ti, ok)
		}
	}
	seen := map[uint64]tp{}
	for _, tc := range sweepTopics {
		if _, ok := st.Topic(tc.name); !ok {
			continue
		}
		for part := range tc.parts {
			p := tp{tc.name, part}
			start, got := readAll(t, what, st, p)
			if start < want.starts[p] || start > r.deleted[p] {
				t.Fatalf("%s: %s/%d: log start %d; acknowledged %d, highest asked %d", what, p.topic, p.part, start, want.starts[p], r.deleted[p])
			}
			for off, id := range got {
				if id == 0 || id > r.nextID {
					t.Fatalf("%s: %s/%d@%d holds record %d, never produced", what, p.topic, p.part, off, id)
				}
				if q, dup := seen[id]; dup {
					t.Fatalf("%s: record %d twice (%s/%d and %s/%d@%d)", what, id, q.topic, q.part, p.topic, p.part, off)
				}
				seen[id] = p
			}
			for off, id := range want.records[p] {
				if off >= start && got[off] != id {
					t.Fatalf("%s: acknowledged record %d at %s/%d@%d: found %d", what, id, p.topic, p.part, off, got[off])
				}
			}
		}
	}
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group, req.Topics = 5, sweepGroup, nil // all topics
	ch := make(chan *kmsg.OffsetFetchResponse, 1)
	co.OffsetFetch(req, func(resp *kmsg.OffsetFetchResponse) { ch <- resp })
	var resp *kmsg.OffsetFetchResponse
	select {
	case resp = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: offset fetch did not complete", what)
	}
	got := map[tp]int64{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			got[tp{rt.Topic, rp.Partition}] = rp.Offset
		}
	}
	for p, off := range want.commits {
		if g := got[p]; g < off || g > r.highest[p] || g%7 != 0 {
			t.Fatalf("%s: commit %s/%d: acknowledged %d (highest sent %d), found %d", what, p.topic, p.part, off, r.highest[p], g)
		}
	}
}

// readAll reads partition p from its log start to its high watermark and
// returns the log start and the records by offset, checking the batches
// follow each other without gaps.
func readAll(t *testing.T, what string, st *storage.Store, p tp) (int64, map[int64]uint64) {
	t.Helper()
	start, hwm, err := st.Offsets(p.topic, p.part)
	if err != nil {
		t.Fatalf("%s: offsets of %s/%d: %v", what, p.topic, p.part, err)
	}
	out := map[int64]uint64{}
	for off := start; off < hwm; {
		res := st.Read(p.topic, p.part, off, 1<<20)
		if res.Err != nil {
			t.Fatalf("%s: read %s/%d@%d: %v", what, p.topic, p.part, off, res.Err)
		}
		for _, c := range res.Chunks {
			b := make([]byte, c.Len)
			if _, err := c.File.ReadAt(b, c.Off); err != nil {
				t.Fatalf("%s: read chunk: %v", what, err)
			}
			for len(b) > 0 {
				base, id, n, err := parseOneRecordBatch(b)
				if err != nil {
					t.Fatalf("%s: %s/%d near %d: %v", what, p.topic, p.part, off, err)
				}
				b = b[n:]
				if base < off {
					continue // the chunk began before off
				}
				if base != off {
					t.Fatalf("%s: %s/%d: gap, batch at %d after %d", what, p.topic, p.part, base, off)
				}
				out[off] = id
				off++
			}
		}
		res.Release()
	}
	return start, out
}

// oneRecordBatch is a v2 record batch of one record whose value is id
// followed by padding.
func oneRecordBatch(id uint64) []byte {
	value := make([]byte, valueBytes)
	binary.BigEndian.PutUint64(value, id)
	var rec []byte
	rec = append(rec, 0)               // attributes
	rec = binary.AppendVarint(rec, 0)  // timestamp delta
	rec = binary.AppendVarint(rec, 0)  // offset delta
	rec = binary.AppendVarint(rec, -1) // null key
	rec = binary.AppendVarint(rec, int64(len(value)))
	rec = append(rec, value...)
	rec = binary.AppendVarint(rec, 0) // headers
	records := binary.AppendVarint(nil, int64(len(rec)))
	records = append(records, rec...)

	const headerBytes = 61
	b := make([]byte, headerBytes, headerBytes+len(records))
	be := binary.BigEndian
	be.PutUint32(b[8:], uint32(headerBytes-12+len(records))) // length after itself
	b[16] = 2                                                // magic
	now := time.Now().UnixMilli()
	be.PutUint64(b[27:], uint64(now)) // first timestamp
	be.PutUint64(b[35:], uint64(now)) // max timestamp
	be.PutUint64(b[43:], ^uint64(0))  // producer id -1
	be.PutUint16(b[51:], ^uint16(0))  // producer epoch -1
	be.PutUint32(b[53:], ^uint32(0))  // base sequence -1
	be.PutUint32(b[57:], 1)           // record count
	b = append(b, records...)
	be.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// parseOneRecordBatch returns the base offset and record id of the batch
// at the start of b, and its length.
func parseOneRecordBatch(b []byte) (base int64, id uint64, n int, err error) {
	if len(b) < 61 {
		return 0, 0, 0, fmt.Errorf("short batch header (%d bytes)", len(b))
	}
	n = 12 + int(binary.BigEndian.Uint32(b[8:]))
	if n > len(b) || binary.BigEndian.Uint32(b[57:]) != 1 {
		return 0, 0, 0, errors.New("not a whole one-record batch")
	}
	r := b[61:n]
	for range 5 { // record length, attributes (as a varint: 0), timestamp and offset deltas, key length
		_, k := binary.Varint(r)
		if k <= 0 {
			return 0, 0, 0, errors.New("bad record")
		}
		r = r[k:]
	}
	vlen, k := binary.Varint(r)
	if k <= 0 || vlen < 8 || int(vlen) > len(r)-k {
		return 0, 0, 0, errors.New("bad record value")
	}
	return int64(binary.BigEndian.Uint64(b)), binary.BigEndian.Uint64(r[k:]), n, nil
}

// sweepStride is 1 for KLITE_CRASH_SWEEP=all, the number it holds, or the
// default.
func sweepStride(t *testing.T, total int64) int64 {
	switch v := os.Getenv("KLITE_CRASH_SWEEP"); v {
	case "all":
		return 1
	case "":
		return max(1, total/defaultSweepRuns)
	default:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			t.Fatalf("KLITE_CRASH_SWEEP=%q: want all or a stride >= 1", v)
		}
		return n
	}
}

// defaultSweepRuns bounds the default sweep (make test) to a few seconds.
const defaultSweepRuns = 60

func TestCrashSweep(t *testing.T) {
	// A run without faults counts the operations and checks the workload
	// itself: everything is acknowledged and survives a clean restart.
	base := newRun(0, vfs.CrashDropUnsynced)
	var freed atomic.Int64
	base.ffs.SetAfter(func(op vfs.Op, err error) {
		if op.Kind == vfs.OpRemove && err == nil && vfs.MatchBase("*.wal", op.Name) {
			freed.Add(1)
		}
	})
	base.workload(t)
	total := base.ops
	if len(base.led.all.records) == 0 || len(base.led.all.commits) == 0 || len(base.led.all.topics) != len(sweepTopics) {
		t.Fatalf("the workload acknowledged too little: %d partitions, %d commits, %d topics",
			len(base.led.all.records), len(base.led.all.commits), len(base.led.all.topics))
	}
	base.check(t, "no fault, clean restart", base.mem, base.led.all)
	base.check(t, "no fault, crash after close", base.mem.CrashClone(vfs.CrashDropUnsynced, 1), base.led.all)

	stride := sweepStride(t, total)
	first := 1 + time.Now().UnixNano()%stride
	t.Logf("%d operations, %d segments freed; failing every %d from %d (KLITE_CRASH_SWEEP=all for every one)", total, freed.Load(), stride, first)
	for n := first; n <= total; n += stride {
		mode := vfs.CrashMode(n % 3)
		r := newRun(n, mode)
		r.workload(t)
		if r.atCrash == nil {
			continue // this run had fewer operations (background work varies)
		}
		r.check(t, fmt.Sprintf("crash at op %d (mode %d)", n, mode), r.atCrash, r.led.must)
		r.check(t, fmt.Sprintf("fault at op %d, crash after the workload", n), r.mem.CrashClone(vfs.CrashMode((n+1)%3), uint64(n)), r.led.all)
	}
}

// A segment roll renames the prepared segment into place and fsyncs the
// shard directory. When that fsync fails the shard stops, and after a
// restart without a crash the new segment is there to append to, but its
// name is not durable until someone fsyncs the directory. Recovery must,
// or records acknowledged after the restart are lost with the name at the
// next power loss (found by the sweep at one index in about fifteen runs;
// group's TestLogNewFileDirSyncFailsThenRestart is the offsets log's case).
func TestRollDirSyncFailsThenRestart(t *testing.T) {
	const firstSegment = "00000000000000000000.wal" // made by Open, not a roll
	for _, mode := range []vfs.CrashMode{vfs.CrashDropUnsynced, vfs.CrashKeepUnsynced, vfs.CrashTorn} {
		r := newRun(0, mode)
		// Every fsync of the directory fails from the roll until the
		// restart lists it, so no later fsync makes the name durable by
		// chance.
		dir, failing := "", false
		r.failOp = func(op vfs.Op) bool {
			switch {
			case dir == "" && op.Kind == vfs.OpRename && vfs.MatchBase("*.wal", op.Name) && path.Base(op.Name) != firstSegment:
				dir, failing = path.Dir(op.Name), true
			case op.Kind == vfs.OpList && op.Name == dir:
				failing = false
			case op.Kind == vfs.OpSyncDir && failing && op.Name == dir:
				return true
			}
			return false
		}
		r.workload(t)
		if r.atCrash == nil {
			t.Fatal("the workload rolled no segment")
		}
		r.check(t, fmt.Sprintf("mode %d: crash at the failed directory fsync", mode), r.atCrash, r.led.must)
		r.check(t, fmt.Sprintf("mode %d: crash after the restart and the workload", mode), r.mem.CrashClone(mode, 1), r.led.all)
	}
}
