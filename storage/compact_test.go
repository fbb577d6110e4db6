package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/klite/klite/vfs"
)

// kv is one test record: a nil val is a tombstone.
type kv struct {
	key, val []byte
}

// makeKeyedBatch assembles a v2 batch of keyed records compressed with
// codec.
func makeKeyedBatch(t testing.TB, codec int8, ts int64, recs ...kv) []byte {
	t.Helper()
	var raw []byte
	for i, r := range recs {
		var body []byte
		body = append(body, 0)
		body = binary.AppendVarint(body, int64(i))
		body = binary.AppendVarint(body, int64(i))
		body = binary.AppendVarint(body, int64(len(r.key)))
		body = append(body, r.key...)
		if r.val == nil {
			body = binary.AppendVarint(body, -1)
		} else {
			body = binary.AppendVarint(body, int64(len(r.val)))
			body = append(body, r.val...)
		}
		body = binary.AppendVarint(body, 0)
		raw = binary.AppendVarint(raw, int64(len(body)))
		raw = append(raw, body...)
	}
	comp, err := compressRecords(codec, raw, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// makeBatch's header (no producer, timestamps ts, ts+1, ...) over
	// these records.
	b := makeBatch(batchSpec{records: len(recs), ts: ts})[:BatchHeaderBytes:BatchHeaderBytes]
	be := binary.BigEndian
	be.PutUint32(b[batchLengthAt:], uint32(BatchHeaderBytes-batchLengthOverhead+len(comp)))
	be.PutUint16(b[batchAttributesAt:], uint16(codec))
	b = append(b, comp...)
	be.PutUint32(b[batchCRCAt:], crc32.Checksum(b[batchAttributesAt:], castagnoli))
	return b
}

// logRec is a record read back: its offset, key and value (nil: tombstone).
type logRec struct {
	off      int64
	key, val string
	tomb     bool
	ctl      bool // a control record (transaction marker)
}

// readLog reads a partition from its log start with small reads, checking
// every batch's CRC and that offsets only grow.
func readLog(t testing.TB, s *Store, topic string, part int32) []logRec {
	t.Helper()
	start, _, err := s.Offsets(topic, part)
	if err != nil {
		t.Fatal(err)
	}
	var out []logRec
	next := start
	for {
		res := s.Read(topic, part, next, 3000)
		if res.Err != nil {
			t.Fatalf("Read(%s/%d@%d): %v", topic, part, next, res.Err)
		}
		if len(res.Chunks) == 0 {
			res.Release()
			return out
		}
		for _, c := range res.Chunks {
			b := make([]byte, c.Len)
			if _, err := c.File.ReadAt(b, c.Off); err != nil {
				t.Fatal(err)
			}
			err := eachBatch(b, func(batch []byte, h *BatchHeader) error {
				if crc32.Checksum(batch[batchAttributesAt:], castagnoli) != h.CRC {
					return fmt.Errorf("batch at %d: bad CRC", h.BaseOffset)
				}
				last := h.BaseOffset + int64(h.LastOffsetDelta)
				if last < next {
					return nil
				}
				recs, err := batchRecords(batch, h, nil)
				if err != nil {
					return err
				}
				if err := eachRecord(recs, h.NumRecords, func(r *rawRecord) {
					off := h.BaseOffset + int64(r.offsetDelta)
					if off < next {
						return
					}
					if len(out) > 0 && off <= out[len(out)-1].off {
						t.Errorf("offset %d after %d", off, out[len(out)-1].off)
					}
					lr := logRec{off: off, key: string(r.key), tomb: r.nullValue, ctl: h.Control()}
					if !r.nullValue {
						lr.val = string(recordValue(r.raw))
					}
					out = append(out, lr)
				}); err != nil {
					return err
				}
				next = last + 1
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		res.Release()
	}
}

// recordValue returns the value of a raw record.
func recordValue(raw []byte) []byte {
	_, n := binary.Varint(raw)
	b := raw[n+1:]
	for range 2 {
		_, m := binary.Varint(b)
		b = b[m:]
	}
	kl, m := binary.Varint(b)
	b = b[m+max(int(kl), 0):]
	vl, m := binary.Varint(b)
	return b[m : m+int(vl)]
}

// compactFixture appends keyed records to a one-shard store and remembers
// what each offset holds.
type compactFixture struct {
	t      testing.TB
	s      *Store
	topic  string
	codec  int8
	clock  *fakeClock
	mu     sync.Mutex
	sent   map[int64]logRec
	nextID int
}

// newCompactStore opens a store on fsys whose clock starts at 1,000,000 ms.
func newCompactStore(t testing.TB, fsys vfs.FS) (*Store, Config, *fakeClock) {
	clock := &fakeClock{}
	clock.ms.Store(1_000_000)
	cfg := retentionConfig(fsys, clock)
	return mustOpen(t, cfg), cfg, clock
}

func (f *compactFixture) produce(keys, perBatch, batches int, tombEvery int) {
	f.t.Helper()
	for range batches {
		var recs []kv
		f.mu.Lock()
		for range perBatch {
			id := f.nextID
			f.nextID++
			k := fmt.Sprintf("k%03d", id%keys)
			sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(id)))
			r := kv{key: []byte(k), val: fmt.Appendf(nil, "v%08d-%x%x", id, sum, sum[:16])}
			if tombEvery > 0 && id%tombEvery == tombEvery-1 {
				r.val = nil
			}
			recs = append(recs, r)
		}
		f.mu.Unlock()
		res := appendWait(f.t, f.s, f.topic, 0, makeKeyedBatch(f.t, f.codec, f.clock.ms.Load(), recs...), true)
		if res.Err != nil {
			f.t.Fatalf("append: %v", res.Err)
		}
		f.mu.Lock()
		for i, r := range recs {
			f.sent[res.BaseOffset+int64(i)] = logRec{off: res.BaseOffset + int64(i), key: string(r.key), val: string(r.val), tomb: r.val == nil}
		}
		f.mu.Unlock()
	}
}

// check verifies a log read back against what was sent, for a cleaned
// end: every record is the one sent at its offset, none twice; every
// record at or above end is there; below it exactly the latest record of
// each key below end is there (tombstones only when keepTombs; without,
// none below end).
func (f *compactFixture) check(got []logRec, end int64, keepTombs bool) {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	latest := map[string]int64{}
	for off, r := range f.sent {
		if l, ok := latest[r.key]; off < end && (!ok || off > l) {
			latest[r.key] = off
		}
	}
	have := map[int64]bool{}
	for _, r := range got {
		if r.ctl {
			continue
		}
		want, ok := f.sent[r.off]
		if !ok || want.key != r.key || want.val != r.val || want.tomb != r.tomb {
			f.t.Fatalf("offset %d holds %+v, sent %+v", r.off, r, want)
		}
		if have[r.off] {
			f.t.Fatalf("offset %d twice", r.off)
		}
		have[r.off] = true
	}
	for off, r := range f.sent {
		switch {
		case off >= end:
			if !have[off] {
				f.t.Fatalf("offset %d (%s) at or above the cleaned end %d lost", off, r.key, end)
			}
		case latest[r.key] == off && !r.tomb:
			if !have[off] {
				f.t.Fatalf("offset %d (%s), its latest value below the cleaned end %d, lost", off, r.key, end)
			}
		case latest[r.key] == off:
			if have[off] != keepTombs {
				f.t.Fatalf("tombstone at %d (%s) below the cleaned end %d: present %v, want %v", off, r.key, end, have[off], keepTombs)
			}
		case have[off]:
			f.t.Fatalf("offset %d (%s) superseded by %d but kept below the cleaned end %d", off, r.key, latest[r.key], end)
		}
	}
}

// compFile is partition 0's compacted file (nil: none).
func (s *Store) compFile(topic string) vfs.File {
	p, err := s.lookup(topic, 0)
	if err != nil {
		return nil
	}
	if c := p.comp.Load(); c != nil {
		return c.seg.f
	}
	return nil
}

// compEnd is a partition 0's cleaned end (0: none).
func (s *Store) compEnd(topic string) int64 {
	p, err := s.lookup(topic, 0)
	if err != nil {
		return 0
	}
	if c := p.comp.Load(); c != nil {
		return c.end
	}
	return 0
}

func newFixture(t testing.TB, s *Store, clock *fakeClock, codec int8, configs map[string]string) *compactFixture {
	if configs == nil {
		configs = map[string]string{}
	}
	if configs["cleanup.policy"] == "" {
		configs["cleanup.policy"] = "compact"
	}
	if _, err := s.CreateTopic("c", 1, configs); err != nil {
		t.Fatal(err)
	}
	return &compactFixture{t: t, s: s, topic: "c", codec: codec, clock: clock, sent: map[int64]logRec{}}
}

func TestCompactLatestPerKey(t *testing.T) {
	for _, codec := range []int8{codecNone, codecGzip, codecSnappy, codecLz4, codecZstd} {
		t.Run(fmt.Sprint("codec", codec), func(t *testing.T) {
			fsys := vfs.NewMemFS()
			s, cfg, clock := newCompactStore(t, fsys)
			f := newFixture(t, s, clock, codec, nil)
			f.produce(50, 7, 360, 0) // about 12 segments of 64 KiB uncompressed
			waitCheckpoints(t, s)
			walBefore := len(walFiles(t, fsys, cfg))
			bytesBefore, _ := s.PartitionBytes("c", 0)
			s.Compact()
			if after, _ := s.PartitionBytes("c", 0); after >= bytesBefore/2 {
				t.Fatalf("PartitionBytes %d before compaction, %d after", bytesBefore, after)
			}
			end := s.compEnd("c")
			if end == 0 {
				t.Fatal("nothing compacted")
			}
			f.check(readLog(t, s, "c", 0), end, true)
			// KIP-74: at least one batch whatever maxBytes, from the
			// compacted file too.
			for _, maxBytes := range []int64{0, 1} {
				res := s.Read("c", 0, 0, maxBytes)
				if res.Err != nil || len(res.Chunks) != 1 || res.Chunks[0].File != s.compFile("c") {
					t.Fatalf("Read(maxBytes %d) from the compacted file: %d chunks, %v", maxBytes, len(res.Chunks), res.Err)
				}
				res.Release()
			}
			s.freePass()
			walAfter := len(walFiles(t, fsys, cfg))
			if codec == codecNone && walAfter >= walBefore {
				t.Fatalf("WAL segments %d before compaction, %d after", walBefore, walAfter)
			}
			// More data, a second generation, then a restart.
			f.produce(50, 7, 180, 0)
			waitCheckpoints(t, s)
			s.Compact()
			if e2 := s.compEnd("c"); e2 <= end {
				t.Fatalf("second pass: cleaned end %d, was %d", e2, end)
			}
			end = s.compEnd("c")
			f.check(readLog(t, s, "c", 0), end, true)
			checkCompactedIndex(t, s, "c")
			st := s.CompactionStats()
			if st.Runs != 2 || st.RecordsRemoved == 0 || st.BytesOut >= st.BytesIn {
				t.Fatalf("stats %+v", st)
			}
			s.Close()
			s = mustOpen(t, cfg)
			defer s.Close()
			f.s = s
			if got := s.compEnd("c"); got != end {
				t.Fatalf("after reopen cleaned end %d, want %d", got, end)
			}
			f.check(readLog(t, s, "c", 0), end, true)
			names, _ := fsys.List(cfg.Dir + "/" + compDirName)
			if len(names) != 1 {
				t.Fatalf("compacted dir holds %v, want one file", names)
			}
			f.produce(50, 7, 15, 0)
			f.check(readLog(t, s, "c", 0), end, true)
		})
	}
}

func TestCompactTombstones(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, _, clock := newCompactStore(t, fsys)
	defer s.Close()
	f := newFixture(t, s, clock, codecNone, map[string]string{"delete.retention.ms": "60000"})
	f.produce(20, 5, 360, 3) // every third record a tombstone
	waitCheckpoints(t, s)
	s.Compact()
	end := s.compEnd("c")
	got := readLog(t, s, "c", 0)
	f.check(got, end, true)
	tombs := 0
	for _, r := range got {
		if r.tomb && r.off < end {
			tombs++
		}
	}
	if tombs == 0 {
		t.Fatal("no tombstone below the cleaned end after the first cleaning")
	}
	clock.ms.Add(59_000)
	s.Compact() // not yet due: nothing new, tombstones stay
	f.check(readLog(t, s, "c", 0), end, true)
	clock.ms.Add(2_000)
	s.Compact()
	got = readLog(t, s, "c", 0)
	f.check(got, s.compEnd("c"), false)
	checkCompactedIndex(t, s, "c")
	for _, r := range got {
		if r.tomb && r.off < s.compEnd("c") {
			t.Fatalf("tombstone at %d survived delete.retention.ms", r.off)
		}
	}
}

// delete.retention.ms at Long.MAX_VALUE keeps tombstones for good (Kafka
// subtracts it from the clean time); its sum with a clean time must not
// wrap to a time long past and remove them at the next cleaning.
func TestCompactTombstonesKeptForever(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, _, clock := newCompactStore(t, fsys)
	defer s.Close()
	f := newFixture(t, s, clock, codecNone, map[string]string{"delete.retention.ms": strconv.FormatInt(math.MaxInt64, 10)})
	f.produce(20, 5, 360, 3) // every third record a tombstone
	waitCheckpoints(t, s)
	s.Compact()
	end := s.compEnd("c")
	tombs := func() (n int) {
		for _, r := range readLog(t, s, "c", 0) {
			if r.tomb && r.off < end {
				n++
			}
		}
		return n
	}
	before := tombs()
	if before == 0 {
		t.Fatal("no tombstone below the cleaned end after the first cleaning")
	}
	clock.ms.Add(30 * 24 * 3600 * 1000)
	s.Compact()
	f.check(readLog(t, s, "c", 0), end, true)
	if after := tombs(); after != before {
		t.Fatalf("%d tombstones below the cleaned end, %d before: removed under delete.retention.ms=MaxInt64", after, before)
	}
}

func TestCompactDirtyRatioAndLag(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, _, clock := newCompactStore(t, fsys)
	defer s.Close()
	f := newFixture(t, s, clock, codecNone, map[string]string{"min.compaction.lag.ms": "10000", "min.cleanable.dirty.ratio": "0.99"})
	f.produce(50, 7, 360, 0)
	waitCheckpoints(t, s)
	s.Compact()
	if end := s.compEnd("c"); end != 0 {
		t.Fatalf("cleaned to %d although every record is younger than min.compaction.lag.ms", end)
	}
	clock.ms.Add(20_000)
	s.Compact()
	end := s.compEnd("c")
	if end == 0 {
		t.Fatal("not cleaned once min.compaction.lag.ms passed")
	}
	// More data: the dirty ratio (dirty over clean plus dirty bytes) is
	// below 0.99 now that a clean part exists: nothing cleaned.
	f.produce(50, 7, 90, 0)
	waitCheckpoints(t, s)
	clock.ms.Add(20_000)
	s.Compact()
	if got := s.compEnd("c"); got != end {
		t.Fatalf("cleaned to %d with a dirty ratio below min.cleanable.dirty.ratio (was %d)", got, end)
	}
	f.check(readLog(t, s, "c", 0), end, true)
	if err := s.SetTopicConfigs("c", map[string]string{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.5"}); err != nil {
		t.Fatal(err)
	}
	s.Compact()
	if got := s.compEnd("c"); got <= end {
		t.Fatalf("not cleaned at min.cleanable.dirty.ratio 0.5 (cleaned end %d)", got)
	}
	f.check(readLog(t, s, "c", 0), s.compEnd("c"), true)
}

// TestCompactCrashAtEveryStep clones the file system before every
// operation of a compaction and of the freeing pass after it, recovers
// each clone and checks that no surviving record is lost or duplicated.
func TestCompactCrashAtEveryStep(t *testing.T) {
	mem := vfs.NewMemFS()
	ffs := vfs.NewFaultFS(mem)
	s, cfg, clock := newCompactStore(t, ffs)
	f := newFixture(t, s, clock, codecLz4, nil)
	f.produce(30, 6, 300, 7)
	waitCheckpoints(t, s)
	s.Compact() // a first generation, so the second replaces one
	f.produce(30, 6, 300, 7)
	waitCheckpoints(t, s)
	s.freePass()

	var clones []*vfs.MemFS
	var mu sync.Mutex
	step := uint64(0)
	end0, deleted0 := s.compEnd("c"), s.Stats().SegmentsDeleted
	ffs.SetInjector(func(op vfs.Op) error {
		if op.Kind == vfs.OpRead {
			return nil
		}
		mu.Lock()
		step++
		for _, mode := range []vfs.CrashMode{vfs.CrashDropUnsynced, vfs.CrashKeepUnsynced, vfs.CrashTorn} {
			clones = append(clones, mem.CrashClone(mode, step))
		}
		mu.Unlock()
		return nil
	})
	s.Compact()
	s.freePass()
	ffs.SetInjector(nil)
	if s.compEnd("c") <= end0 || s.Stats().SegmentsDeleted <= deleted0 {
		t.Fatalf("cleaned end %d (was %d), segments deleted %d (was %d)", s.compEnd("c"), end0, s.Stats().SegmentsDeleted, deleted0)
	}
	s.Close()
	if len(clones) < 10 {
		t.Fatalf("only %d steps", len(clones))
	}
	for i, c := range clones {
		ccfg := cfg
		ccfg.FS = c
		s2, err := Open(ccfg)
		if err != nil {
			t.Fatalf("step %d: reopen: %v", i, err)
		}
		f.s = s2
		f.check(readLog(t, s2, "c", 0), s2.compEnd("c"), true)
		s2.Close()
	}
	t.Logf("%d crash points", len(clones))
}

// TestCompactFaults fails each write-side operation of a compaction in
// turn: the pass fails, the log reads as before, and the next pass
// succeeds.
func TestCompactFaults(t *testing.T) {
	for n := int64(1); ; n++ {
		mem := vfs.NewMemFS()
		ffs := vfs.NewFaultFS(mem)
		s, _, clock := newCompactStore(t, ffs)
		f := newFixture(t, s, clock, codecNone, nil)
		f.produce(30, 6, 300, 0)
		waitCheckpoints(t, s)
		var hit atomic.Bool
		var seen atomic.Int64
		ffs.SetInjector(func(op vfs.Op) error {
			if !strings.Contains(op.Name, compDirName) || op.Kind == vfs.OpRead {
				return nil
			}
			if seen.Add(1) == n {
				hit.Store(true)
				return vfs.ErrInjected
			}
			return nil
		})
		s.Compact()
		ffs.SetInjector(nil)
		if !hit.Load() {
			s.Close()
			if n < 5 {
				t.Fatalf("only %d operations", n)
			}
			return
		}
		end := s.compEnd("c")
		f.check(readLog(t, s, "c", 0), end, true)
		s.Compact()
		if s.compEnd("c") == 0 {
			t.Fatalf("fault %d: the next pass did not compact", n)
		}
		f.check(readLog(t, s, "c", 0), s.compEnd("c"), true)
		s.Close()
	}
}

// TestCompactConcurrentReaders reads the log over and over while appends
// and compactions run.
func TestCompactConcurrentReaders(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, _, clock := newCompactStore(t, fsys)
	defer s.Close()
	f := newFixture(t, s, clock, codecSnappy, map[string]string{"min.cleanable.dirty.ratio": "0.01"})
	f.produce(40, 6, 150, 5)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				got := readLog(t, s, "c", 0)
				f.mu.Lock()
				for _, r := range got {
					if w, ok := f.sent[r.off]; ok && (w.key != r.key || w.val != r.val) {
						t.Errorf("offset %d: %+v, sent %+v", r.off, r, w)
					}
				}
				f.mu.Unlock()
				reads.Add(1)
			}
		}()
	}
	for range 8 {
		f.produce(40, 6, 60, 5)
		waitCheckpoints(t, s)
		s.Compact()
		s.freePass()
	}
	eventually(t, "reads", func() bool { return reads.Load() >= 3 })
	stop.Store(true)
	waitGroup(t, &wg, "readers")
	if s.CompactionStats().Runs < 2 {
		t.Fatalf("stats %+v", s.CompactionStats())
	}
	f.check(readLog(t, s, "c", 0), s.compEnd("c"), true)
}

func TestCompactedFileCorrupt(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, cfg, clock := newCompactStore(t, fsys)
	f := newFixture(t, s, clock, codecNone, nil)
	f.produce(30, 6, 300, 0)
	waitCheckpoints(t, s)
	s.Compact()
	s.Close()
	dir := cfg.Dir + "/" + compDirName
	names, _ := fsys.List(dir)
	if len(names) != 1 {
		t.Fatalf("files %v", names)
	}
	fl, err := fsys.OpenRW(dir + "/" + names[0])
	if err != nil {
		t.Fatal(err)
	}
	size, _ := fl.Size()
	if _, err := fl.WriteAt([]byte{0xff}, size-compTrailerBytes-3); err != nil {
		t.Fatal(err)
	}
	_ = fl.Close()
	s = mustOpen(t, cfg)
	defer s.Close()
	if res := s.Read("c", 0, 0, 1<<20); !errors.Is(res.Err, ErrStorage) {
		t.Fatalf("read of a partition with a corrupt compacted file: %v", res.Err)
	}
}

func TestCompactCodecRoundTrip(t *testing.T) {
	for _, codec := range []int8{codecNone, codecGzip, codecSnappy, codecLz4, codecZstd} {
		b := makeKeyedBatch(t, codec, 5, kv{[]byte("a"), []byte("1")}, kv{[]byte("b"), nil}, kv{[]byte("a"), []byte("3")})
		h, err := ValidateBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		s := &Store{}
		s.comp.seed1 = maphash.MakeSeed()
		s.comp.seed2 = maphash.MakeSeed()
		latest := map[keyHash]int64{s.comp.hash([]byte("a")): 2}
		out, tombs, n, err := s.cleanBatch(b, &h, latest, false, &compScratch{})
		if err != nil || n != 2 || !tombs {
			t.Fatalf("codec %d: n %d tombs %v err %v", codec, n, tombs, err)
		}
		h2, err := ValidateBatch(out)
		if err == nil || !errors.Is(err, ErrBatchCount) {
			// lastOffsetDelta is kept: 2 with 2 records, as Kafka's cleaner leaves it.
			t.Fatalf("codec %d: %v", codec, err)
		}
		if h2.Compression() != codec || h2.LastOffsetDelta != 2 || h2.NumRecords != 2 || h2.BaseOffset != h.BaseOffset ||
			h2.FirstTimestamp != 5 || h2.MaxTimestamp != 7 {
			t.Fatalf("codec %d: header %+v", codec, h2)
		}
		recs, err := batchRecords(out, &h2, nil)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		if err := eachRecord(recs, h2.NumRecords, func(r *rawRecord) { keys = append(keys, fmt.Sprintf("%s %d", r.key, r.offsetDelta)) }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys, []string{"b 1", "a 2"}) {
			t.Fatalf("codec %d: kept %v", codec, keys)
		}
		// Both a's superseded by a later batch, the record with the
		// largest timestamp among them: the max timestamp is the largest
		// kept (5+1).
		out, _, _, err = s.cleanBatch(b, &h, map[keyHash]int64{s.comp.hash([]byte("a")): 9}, false, &compScratch{})
		if h3, _ := ParseBatchHeader(out); err != nil || h3.NumRecords != 1 || h3.MaxTimestamp != 6 || h3.FirstTimestamp != 5 {
			t.Fatalf("codec %d: %+v, %v", codec, h3, err)
		}
		// Every record survives: the producer's bytes.
		out, _, _, _ = s.cleanBatch(b, &h, map[keyHash]int64{}, false, &compScratch{})
		if !bytes.Equal(out, b) {
			t.Fatalf("codec %d: a batch whose records all survive was rewritten", codec)
		}
	}
}

// makeTxnKeyed is makeKeyedBatch as a transactional batch of pid.
func makeTxnKeyed(t testing.TB, pid int64, epoch int16, seq int32, recs ...kv) []byte {
	b := makeKeyedBatch(t, codecNone, 0, recs...)
	binary.BigEndian.PutUint16(b[batchAttributesAt:], attrTransactional)
	return idempotent(b, pid, epoch, seq)
}

// TestCompactTransactions: aborted transactional records are dropped (and
// so never shadow committed values of the same keys), committed ones
// compacted as any, markers kept.
func TestCompactTransactions(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, _, clock := newCompactStore(t, fsys)
	defer s.Close()
	f := newFixture(t, s, clock, codecNone, nil)
	base, aborted := produceTxns(t, s, f)
	f.produce(50, 7, 300, 0)
	waitCheckpoints(t, s)
	s.Compact()
	checkTxnsCompacted(t, s, f, s.compEnd("c"), base, aborted)
}

// produceTxns appends to c/0 ten transactional records (keys t0..t9,
// recorded in f.sent) and commits them, then five more with the same
// keys and aborts them. It returns the base offsets of both batches.
func produceTxns(t *testing.T, s *Store, f *compactFixture) (base, aborted int64) {
	t.Helper()
	pid, epoch, err := s.InitProducerID()
	if err != nil {
		t.Fatal(err)
	}
	var committed []kv
	for i := range 10 {
		committed = append(committed, kv{fmt.Appendf(nil, "t%d", i), []byte("committed")})
	}
	base = mustAppend(t, s, "c", 0, makeTxnKeyed(t, pid, epoch, 0, committed...))
	mustMarker(t, s, "c", 0, pid, epoch, true)
	for i, r := range committed {
		f.sent[base+int64(i)] = logRec{off: base + int64(i), key: string(r.key), val: string(r.val)}
	}
	aborted = mustAppend(t, s, "c", 0, makeTxnKeyed(t, pid, epoch, 10, committed[:5]...))
	mustMarker(t, s, "c", 0, pid, epoch, false)
	return base, aborted
}

// checkTxnsCompacted checks c/0 after a cleaning up to end of what
// produceTxns wrote: both markers and the ten committed records remain,
// none of the aborted ones, and f.check holds.
func checkTxnsCompacted(t *testing.T, s *Store, f *compactFixture, end, base, aborted int64) {
	t.Helper()
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

// TestCompactDelete: with cleanup.policy=compact,delete retention.ms
// expires the compacted runs like chunks, and the next cleaning drops
// what fell below the log start.
func TestCompactDelete(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, _, clock := newCompactStore(t, fsys)
	defer s.Close()
	f := newFixture(t, s, clock, codecNone, map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "100000"})
	f.produce(50, 7, 300, 0)
	waitCheckpoints(t, s)
	s.Compact()
	end := s.compEnd("c")
	if end == 0 {
		t.Fatal("nothing compacted")
	}
	clock.ms.Add(50_000)
	_, young, _ := s.Offsets("c", 0)
	f.produce(50, 7, 100, 0)
	waitCheckpoints(t, s)
	clock.ms.Add(100_000)
	s.retentionPass(s.maint.ctx)
	start, _, _ := s.Offsets("c", 0)
	if start < end || start > young {
		t.Fatalf("log start %d after retention; cleaned end %d, young data from %d", start, end, young)
	}
	got := readLog(t, s, "c", 0)
	if len(got) == 0 || got[0].off < start {
		t.Fatalf("read from the log start %d: %d records, first %+v", start, len(got), got)
	}
	have := map[int64]bool{}
	for _, r := range got {
		if w := f.sent[r.off]; w.key != r.key || w.val != r.val {
			t.Fatalf("offset %d: %+v, sent %+v", r.off, r, w)
		}
		have[r.off] = true
	}
	for off := range f.sent {
		if off >= young && !have[off] {
			t.Fatalf("young record at %d lost", off)
		}
	}
	s.Compact()
	p, _ := s.lookup("c", 0)
	if c := p.comp.Load(); c == nil || (len(c.entries) > 0 && c.entries[0].last < start) {
		t.Fatalf("compacted file still holds data below the log start %d", start)
	}
}

// TestCompactSegmentMs: a partition whose data sits in the shard's active
// segment longer than segment.ms has the segment rolled, then cleaned.
func TestCompactSegmentMs(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, _, clock := newCompactStore(t, fsys)
	defer s.Close()
	f := newFixture(t, s, clock, codecNone, map[string]string{"segment.ms": "60000"})
	f.produce(10, 5, 20, 0) // well under one segment
	s.Compact()
	rolls := s.Stats().SegmentsRoll
	if s.compEnd("c") != 0 {
		t.Fatal("data in the active segment compacted")
	}
	clock.ms.Add(61_000)
	s.Compact() // rolls the shard's active segment
	if s.Stats().SegmentsRoll != rolls+1 {
		t.Fatalf("rolls %d, want %d", s.Stats().SegmentsRoll, rolls+1)
	}
	s.Compact()
	_, hwm, _ := s.Offsets("c", 0)
	if got := s.compEnd("c"); got != hwm {
		t.Fatalf("cleaned end %d after the roll, want %d", got, hwm)
	}
	f.check(readLog(t, s, "c", 0), hwm, true)
	s.Compact() // nothing new in the active segment: no second roll
	if s.Stats().SegmentsRoll != rolls+1 {
		t.Fatalf("rolls %d, want %d", s.Stats().SegmentsRoll, rolls+1)
	}
}

// FuzzCleanBatch: cleaning any bytes framed as a batch never panics; it
// keeps the batch whole, drops it, or returns a batch with the same base
// offset, lastOffsetDelta and codec, a valid CRC and no more records.
func FuzzCleanBatch(f *testing.F) {
	f.Add(makeKeyedBatch(f, codecNone, 1, kv{[]byte("a"), []byte("1")}, kv{[]byte("a"), nil}), int64(0))
	f.Add(makeKeyedBatch(f, codecLz4, 1, kv{[]byte("a"), []byte("1")}, kv{[]byte("b"), []byte("2")}), int64(1))
	f.Add(makeKeyedBatch(f, codecSnappy, 1, kv{[]byte("k"), []byte("v")}), int64(5))
	f.Add(makeBatch(batchSpec{records: 3}), int64(2))
	s := &Store{}
	s.comp.seed1, s.comp.seed2 = maphash.MakeSeed(), maphash.MakeSeed()
	f.Fuzz(func(t *testing.T, b []byte, latestOff int64) {
		batch, _, err := NextBatch(b)
		if err != nil {
			return
		}
		h, _ := ParseBatchHeader(batch)
		latest := map[keyHash]int64{s.comp.hash([]byte("a")): latestOff, s.comp.hash([]byte("k")): latestOff}
		out, _, n, err := s.cleanBatch(batch, &h, latest, latestOff%2 == 0, &compScratch{})
		if err != nil || out == nil || bytes.Equal(out, batch) {
			return
		}
		h2, err := ParseBatchHeader(out)
		if err != nil || h2.Size() != len(out) || h2.BaseOffset != h.BaseOffset || h2.LastOffsetDelta != h.LastOffsetDelta ||
			h2.Compression() != h.Compression() || h2.NumRecords != n || n > h.NumRecords ||
			crc32.Checksum(out[batchAttributesAt:], castagnoli) != h2.CRC {
			t.Fatalf("rebuilt batch %+v from %+v (%d kept)", h2, h, n)
		}
	})
}

// TestCompactMaxTimestamp: ListOffsets -3 names a surviving batch when
// the one with the largest timestamp was compacted away.
func TestCompactMaxTimestamp(t *testing.T) {
	fsys := vfs.NewMemFS()
	s, _, clock := newCompactStore(t, fsys)
	defer s.Close()
	f := newFixture(t, s, clock, codecNone, nil)
	gone := mustAppend(t, s, "c", 0, makeKeyedBatch(t, codecNone, 9_000_000, kv{[]byte("k000"), []byte("newest time, older offset")}))
	f.produce(50, 7, 300, 0) // overwrites k000 at 1_000_000
	waitCheckpoints(t, s)
	if off, ts, err := s.MaxTimestamp("c", 0); err != nil || off != gone || ts != 9_000_000 {
		t.Fatalf("before compaction: MaxTimestamp %d, %d, %v; want %d", off, ts, err, gone)
	}
	s.Compact()
	checkCompactedIndex(t, s, "c")
	if s.compEnd("c") <= gone {
		t.Fatal("not compacted past the batch")
	}
	off, ts, err := s.MaxTimestamp("c", 0)
	if err != nil || off <= gone || ts < 1_000_000 || ts > 1_000_006 {
		t.Fatalf("after compaction: MaxTimestamp %d, %d, %v", off, ts, err)
	}
	res := s.Read("c", 0, off, 1)
	defer res.Release()
	b := make([]byte, BatchHeaderBytes)
	if _, err := res.Chunks[0].File.ReadAt(b, res.Chunks[0].Off); err != nil {
		t.Fatal(err)
	}
	if h, _ := ParseBatchHeader(b); h.BaseOffset != off || h.MaxTimestamp != ts {
		t.Fatalf("MaxTimestamp names %d (%d), the read there gives batch %d (%d)", off, ts, h.BaseOffset, h.MaxTimestamp)
	}
}

// checkCompactedIndex checks every run of partition 0's compacted file
// against its batches: first base, last offset, max timestamp and the
// first batch holding it, all below the cleaned end.
func checkCompactedIndex(t testing.TB, s *Store, topic string) {
	t.Helper()
	p, err := s.lookup(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := p.comp.Load()
	if c == nil {
		return
	}
	for i := range c.entries {
		e := &c.entries[i]
		first, last, maxTs, maxTsOff := int64(-1), int64(-1), int64(math.MinInt64), int64(-1)
		if err := walkBatches(e, func(_ int64, bh *BatchHeader) bool {
			if first < 0 {
				first = bh.BaseOffset
			}
			last = bh.BaseOffset + int64(bh.LastOffsetDelta)
			if bh.MaxTimestamp > maxTs {
				maxTs, maxTsOff = bh.MaxTimestamp, bh.BaseOffset
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if first != e.base || last != e.last || maxTs != e.maxTs || maxTsOff != e.maxTsOff || last >= c.end {
			t.Fatalf("run %d: index %d..%d max %d@%d, batches %d..%d max %d@%d, cleaned end %d",
				i, e.base, e.last, e.maxTs, e.maxTsOff, first, last, maxTs, maxTsOff, c.end)
		}
	}
}

// TestCompactMapKeysBound: with an offset map smaller than the dirty
// part's keys, a cleaning stops at the chunk where the map filled; later
// passes go on from there, each leaving the latest record per key below
// its cleaned end.
func TestCompactMapKeysBound(t *testing.T) {
	fsys := vfs.NewMemFS()
	clock := &fakeClock{}
	clock.ms.Store(1_000_000)
	cfg := retentionConfig(fsys, clock)
	cfg.CompactionMapKeys = 30
	s := mustOpen(t, cfg)
	defer s.Close()
	f := newFixture(t, s, clock, codecNone, map[string]string{"min.cleanable.dirty.ratio": "0.01"})
	f.produce(500, 7, 300, 0) // 500 keys: the map holds a chunk or so
	waitCheckpoints(t, s)
	_, hwm, _ := s.Offsets("c", 0)
	var ends []int64
	for range 50 {
		s.Compact()
		end := s.compEnd("c")
		f.check(readLog(t, s, "c", 0), end, true)
		checkCompactedIndex(t, s, "c")
		if len(ends) > 0 && end == ends[len(ends)-1] {
			break
		}
		ends = append(ends, end)
	}
	t.Logf("cleaned ends %v, high watermark %d", ends, hwm)
	if len(ends) < 3 {
		t.Fatalf("cleaned ends %v: the map bound did not split the cleaning", ends)
	}
	if last := ends[len(ends)-1]; last >= hwm || last < hwm/2 {
		t.Fatalf("cleaned ends %v, high watermark %d", ends, hwm)
	}
}
