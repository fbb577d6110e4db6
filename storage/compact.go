package storage

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

// Log compaction of cleanup.policy=compact topics on the local WAL; see
// doc.go ("Compaction") for the design and compactfile.go for the format.
//
// A pass (every Config.CompactionInterval, on its own goroutine) looks at
// each partition of a compacted topic: its dirty part is the chunks from
// the cleaned end on that lie in sealed WAL segments, below the last
// stable offset, and whose max timestamp is at least min.compaction.lag.ms
// old. When dirty/(clean+dirty) reaches min.cleanable.dirty.ratio, or the
// oldest dirty chunk is max.compaction.lag.ms old, or tombstones or
// transaction markers in the compacted file passed delete.retention.ms,
// the partition is cleaned:
// an offset map (key hash -> latest offset) is built over the dirty chunks
// (at most Config.CompactionMapKeys keys; the cleaned end then stops at the
// chunk where the map filled, as Kafka's cleaner stops at its dedupe
// buffer), then the old compacted file and the dirty chunks are copied
// into the next generation, dropping every record whose key has a later
// offset in the map, aborted transactional data, keyless records (as
// Kafka does), tombstones cleaned more than delete.retention.ms ago,
// transaction markers whose transactions' data a cleaning found gone more
// than delete.retention.ms ago, and batches below the log start. Its
// cleaned end is the end of the last dirty chunk taken: a chunk boundary.
// Once published, the partition's chunk index is trimmed below it and WAL
// segments whose chunks are all below their partitions' log starts or
// cleaned ends are freed.

// Compaction defaults.
const (
	DefaultCompactionMapKeys = 1 << 20
	// DefaultCompactionMinRollInterval is cmd/klite's default floor of
	// forced rolls (Config.CompactionMinRollInterval).
	DefaultCompactionMinRollInterval = 10 * time.Minute
	// Kafka's topic defaults, used when neither the topic nor the dynamic
	// broker configs set them.
	defaultMinCleanableRatio = 0.5
	defaultDeleteRetentionMs = 24 * 60 * 60 * 1000
	defaultSegmentMs         = 7 * 24 * 60 * 60 * 1000
)

type compState struct {
	passMu sync.Mutex // serialises passes
	pubMu  sync.Mutex // serialises publishing and dropping compacted files
	seed1  maphash.Seed
	seed2  maphash.Seed

	// Counters (atomic).
	runs, bytesRead, bytesIn, bytesOut, removed, markersRemoved atomic.Int64
	tieredRuns, tieredPut, tieredDeleted                        atomic.Int64
}

// compactPolicy says whether cleanup.policy (the topic's, else the dynamic
// log.cleanup.policy, else delete) includes compact.
func (s *Store) compactPolicy(configs map[string]string) bool {
	return s.cleanupPolicyHas(configs, "compact")
}

// compactLimits are one topic's compaction settings.
type compactLimits struct {
	minRatio                                         float64
	minLagMs, maxLagMs, deleteRetentionMs, segmentMs int64
}

func (s *Store) compactLimitsOf(configs map[string]string) compactLimits {
	l := compactLimits{
		minRatio:          defaultMinCleanableRatio,
		minLagMs:          topicLimit(configs, "min.compaction.lag.ms", s.retentionDefault("log.cleaner.min.compaction.lag.ms", 0)),
		maxLagMs:          topicLimit(configs, "max.compaction.lag.ms", s.retentionDefault("log.cleaner.max.compaction.lag.ms", math.MaxInt64)),
		deleteRetentionMs: topicLimit(configs, "delete.retention.ms", s.retentionDefault("log.cleaner.delete.retention.ms", defaultDeleteRetentionMs)),
		segmentMs:         topicLimit(configs, "segment.ms", s.retentionDefault("log.roll.ms", defaultSegmentMs)),
	}
	v, ok := configs["min.cleanable.dirty.ratio"]
	if !ok {
		v, ok = s.brokerDefault("log.cleaner.min.cleanable.ratio")
	}
	if ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
			l.minRatio = f
		}
	}
	return l
}

// startCompaction runs passes every CompactionInterval until Close.
func (s *Store) startCompaction() {
	if every := s.cfg.CompactionInterval; every > 0 {
		s.runEvery(every, s.compactPass)
	}
}

// compactPass cleans every partition of the compacted topics that needs it.
func (s *Store) compactPass(ctx context.Context) {
	cs := &s.comp
	cs.passMu.Lock()
	defer cs.passMu.Unlock()
	var throttle compThrottle
	throttle.init(s.cfg.CompactionBytesPerSec, &cs.bytesRead)
	sealed := map[*shard]map[*segment]bool{} // per pass: one walk per shard
	sealedOf := func(sh *shard) map[*segment]bool {
		m, ok := sealed[sh]
		if !ok {
			m = sh.sealedSegs()
			sealed[sh] = m
		}
		return m
	}
	for _, t := range s.table.Load().byName {
		if !s.compactPolicy(t.info.Configs) {
			// A topic switched from compact to delete: its compacted
			// files go once retention moved the log start past them.
			for _, p := range t.parts {
				if c := p.comp.Load(); c != nil && p.logStart.Load() >= c.end {
					s.dropCompacted(p, c)
				}
			}
			continue
		}
		lim := s.compactLimitsOf(t.info.Configs)
		for _, p := range t.parts {
			if ctx.Err() != nil {
				return
			}
			if p.failed.Load() || p.deleted.Load() {
				continue
			}
			var err error
			if s.cfg.Cold != nil {
				err = s.compactTiered(ctx, p, lim, &throttle) // compacttier.go
			} else {
				err = s.compactPartition(ctx, p, lim, &throttle, sealedOf(p.sh))
			}
			if err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) && !errors.Is(err, errCompactDeleted) &&
				!errors.Is(err, tier.ErrRewriteStale) {
				s.log.Warn().Err(err).Str("topic", t.info.Name).Int32("partition", p.num).Msg("compaction failed; retried next pass")
			}
		}
	}
}

// compThrottle bounds the bytes read by a pass per second, and counts
// them as they are read.
type compThrottle struct {
	rate  int64
	start time.Time
	bytes int64
	read  *atomic.Int64
}

func (t *compThrottle) init(rate int64, read *atomic.Int64) {
	t.rate, t.start, t.read = rate, time.Now(), read
}

func (t *compThrottle) wait(ctx context.Context, n int64) error {
	t.bytes += n
	t.read.Add(n)
	if t.rate <= 0 {
		return ctx.Err()
	}
	ahead := time.Duration(float64(t.bytes)/float64(t.rate)*float64(time.Second)) - time.Since(t.start)
	if ahead <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(ahead)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// errCompactDeleted stops a cleaning of a partition deleted meanwhile.
var errCompactDeleted = errors.New("storage: compaction: partition deleted")

type keyHash [2]uint64

func (cs *compState) hash(key []byte) keyHash {
	return keyHash{maphash.Bytes(cs.seed1, key), maphash.Bytes(cs.seed2, key)}
}

// sealedSegs returns the sealed segments of sh.
func (sh *shard) sealedSegs() map[*segment]bool {
	sh.segsMu.Lock()
	defer sh.segsMu.Unlock()
	m := make(map[*segment]bool, len(sh.segs))
	for _, seg := range sh.segs {
		if seg.sealed {
			m[seg] = true
		}
	}
	return m
}

// rollActive seals seg, sh's active segment, unless it is no longer the
// active one, is empty or has been active less than
// Config.CompactionMinRollInterval, and waits for the roll. The sealed
// file is cut to the bytes written: segment.ms can be as low as 1 ms, and
// a forced roll would otherwise leave a whole preallocated segment on
// disk each time, for what may be a few bytes that other topics sharing
// the shard keep for their retention. The floor bounds the files such
// rolls add per shard: 144 a day at 10 minutes, where a roll every 15 s
// pass (segment.ms=1) made 5,760.
func (s *Store) rollActive(sh *shard, seg *segment) {
	if floor := s.cfg.CompactionMinRollInterval.Milliseconds(); floor > 0 && s.now().UnixMilli()-sh.activeSince.Load() < floor {
		return
	}
	_ = sh.onWriter(func() {
		if sh.failed.Load() || sh.seg != seg || sh.pos == 0 {
			return
		}
		if err := s.walRoom(sh); err != nil {
			return
		}
		used := sh.pos
		if err := sh.roll(s.now().UnixMilli()); err != nil {
			sh.fail("roll", err)
			return
		}
		// Sealed and fsynced, not yet freeable (no newer segment has a
		// checkpoint), so seg.size is the writer's to change. A crash
		// before the cut leaves the zero tail a full segment has.
		if used < seg.size {
			if err := seg.f.Truncate(used); err != nil {
				s.log.Warn().Err(err).Str("segment", seg.path).Msg("cutting a rolled WAL segment to its data failed")
				return
			}
			if err := seg.f.Sync(); err != nil {
				s.log.Warn().Err(err).Str("segment", seg.path).Msg("cutting a rolled WAL segment to its data: fsync failed")
			}
			s.walBytes.Add(used - seg.size)
			seg.size = used
		}
	})
}

// batchSource is a run of batches to copy: a dirty chunk or an entry of
// the old compacted file.
type batchSource struct {
	e         chunkEntry
	cleanedAt int64 // -1: dirty (cleaned now)
	flags     uint32
}

// compactPartition cleans p when its dirty part warrants it.
func (s *Store) compactPartition(ctx context.Context, p *partition, lim compactLimits, th *compThrottle, sealed map[*segment]bool) error {
	nowMs := s.now().UnixMilli()
	old := p.comp.Load()
	logStart := p.logStart.Load()
	hwm := p.hwm.Load()
	lso := p.lso(logStart, hwm)
	from := logStart
	var cleanBytes int64
	if old != nil {
		from = max(from, old.end)
		cleanBytes = old.bytes
	}
	v := p.idx.view()
	var dirty []chunkEntry
	var dirtyBytes int64
	for i := v.from(from); i < v.n; i++ {
		e := v.at(i)
		if !sealed[e.seg] {
			// The active segment is never compacted. As Kafka rolls a
			// partition's active segment at segment.ms (and at
			// max.compaction.lag.ms, KIP-354), the shard's is rolled once
			// the partition's first chunk in it is that old.
			if roll := min(lim.segmentMs, lim.maxLagMs); roll > 0 && e.maxTs <= nowMs-roll {
				s.rollActive(p.sh, e.seg) // cleanable from the next pass on
			}
			break
		}
		if e.last >= lso || (lim.minLagMs > 0 && e.maxTs > nowMs-lim.minLagMs) {
			break
		}
		dirty = append(dirty, *e)
		dirtyBytes += e.length
	}
	due := len(dirty) > 0 && float64(dirtyBytes) >= lim.minRatio*float64(cleanBytes+dirtyBytes)
	if len(dirty) > 0 && lim.maxLagMs < math.MaxInt64 && dirty[0].maxTs <= nowMs-lim.maxLagMs {
		due = true
	}
	if old != nil && (old.removalsDue(lim.deleteRetentionMs, nowMs) ||
		(len(old.entries) > 0 && old.entries[0].last < logStart)) {
		due = true
	}
	if !due {
		return nil
	}

	// The aborted transactions of the whole range cleaned: to drop the
	// dirty part's aborted data, and for the new file's aborted section.
	var as []AbortedTxn
	if t := p.txns.Load(); t != nil {
		hi := from
		if len(dirty) > 0 {
			hi = dirty[len(dirty)-1].last + 1
		}
		var err error
		if as, err = s.AbortedTxns(p.t.info.Name, p.num, logStart, hi); err != nil {
			return err
		}
	}
	abortedAt := make(map[int64]AbortedTxn, len(as)) // by marker offset
	for _, a := range as {
		abortedAt[a.LastOffset] = a
	}
	isAborted := abortedFunc(as)

	// The offset map over the dirty chunks, chunk by chunk, until it holds
	// CompactionMapKeys keys.
	cs := &s.comp
	latest := map[keyHash]int64{}
	sc := &compScratch{}
	take := 0
	var buf []byte
	for k := range dirty {
		if k > 0 && len(latest) >= s.cfg.CompactionMapKeys {
			break
		}
		if p.deleted.Load() {
			return errCompactDeleted
		}
		var err error
		if buf, err = readRun(&dirty[k], buf); err != nil {
			return err
		}
		if err := th.wait(ctx, dirty[k].length); err != nil {
			return err
		}
		if err := cs.mapKeys(latest, buf, logStart, isAborted, sc); err != nil {
			return err
		}
		take = k + 1
	}
	dirty = dirty[:take]
	end := from
	if old != nil {
		end = old.end
	}
	if take > 0 {
		end = dirty[take-1].last + 1
	}

	var srcs []batchSource
	if old != nil {
		if !old.seg.acquire() {
			return ErrClosed
		}
		defer old.seg.release()
		for i, e := range old.entries {
			srcs = append(srcs, batchSource{e: e, cleanedAt: old.meta[i].cleanedAt, flags: old.meta[i].flags})
		}
	}
	for _, e := range dirty {
		srcs = append(srcs, batchSource{e: e, cleanedAt: -1})
	}

	gen := uint64(1)
	if old != nil {
		gen = old.gen + 1
	}
	path := s.compPath(p.key, gen)
	tmp := path + vfs.TmpSuffix
	f, err := s.fs.Create(tmp)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		_ = f.Close()
		_ = s.fs.Remove(tmp)
		return err
	}
	w := newCompWriter(f, p.key, gen, end)
	var in, kept int64
	var removed, markersRemoved int64
	// Producers with transactional data kept since their last marker: a
	// marker whose transaction has none (all superseded, below the log
	// start, or aborted and dropped) goes delete.retention.ms after a
	// cleaning first found that, as Kafka's cleaner removes it once the
	// delete horizon (KIP-534) it set then has passed.
	pending := map[int64]bool{}
	for i := range srcs {
		src := &srcs[i]
		if src.e.last < logStart {
			continue
		}
		if p.deleted.Load() {
			return fail(errCompactDeleted)
		}
		if buf, err = readRun(&src.e, buf); err != nil {
			return fail(err)
		}
		in += src.e.length
		if err := th.wait(ctx, src.e.length); err != nil {
			return fail(err)
		}
		cleanedAt, dropTombs := src.cleanedAt, src.cleanedAt >= 0 && tombstoneExpired(src.cleanedAt, lim.deleteRetentionMs, nowMs)
		if cleanedAt < 0 {
			cleanedAt = nowMs
		}
		goneRun := src.flags&compFlagMarkers != 0
		err = eachBatch(buf, func(batch []byte, h *BatchHeader) error {
			last := h.BaseOffset + int64(h.LastOffsetDelta)
			if last < logStart || isAborted(h) {
				removed += int64(max(h.NumRecords, 0))
				return nil
			}
			if h.Control() {
				commit, marker := MarkerCommit(batch)
				gone := marker && !pending[h.ProducerID]
				if marker {
					delete(pending, h.ProducerID)
				}
				at := cleanedAt
				switch {
				case gone && goneRun && tombstoneExpired(at, lim.deleteRetentionMs, nowMs):
					removed++
					markersRemoved++
					return nil
				case gone && !goneRun:
					at = nowMs // its delete horizon starts now
				}
				if marker && !commit {
					if a, ok := abortedAt[h.BaseOffset]; ok && a.ProducerID == h.ProducerID {
						w.aborted = append(w.aborted, a)
					}
				}
				kept += int64(len(batch))
				return w.add(batch, h, at, false, gone)
			}
			out, tombs, n, err := s.cleanBatch(batch, h, latest, dropTombs, sc)
			if err != nil {
				return err
			}
			removed += int64(h.NumRecords - n)
			if out == nil {
				return nil
			}
			if h.Transactional() {
				pending[h.ProducerID] = true
			}
			kept += int64(len(out))
			if &out[0] != &batch[0] {
				rh, _ := ParseBatchHeader(out) // rebuilt: its own max timestamp
				return w.add(out, &rh, cleanedAt, tombs, false)
			}
			return w.add(out, h, cleanedAt, tombs, false)
		})
		if err != nil {
			return fail(err)
		}
	}
	if err := w.finish(); err != nil {
		return fail(err)
	}
	if err := s.fs.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := s.fs.SyncDir(filepath.Dir(path)); err != nil {
		// The rename may or may not survive a crash: both are complete
		// states. Not published now; the next pass writes gen again.
		_ = f.Close()
		_ = s.fs.Remove(path)
		return err
	}
	nc := &compacted{gen: gen, end: end, entries: w.entries, meta: w.meta, bytes: w.bytes, aborted: w.aborted, abortedKnown: true}
	nc.seg = newSegment(gen, path, f)
	for i := range nc.entries {
		nc.entries[i].seg = nc.seg
	}
	if !s.publishCompacted(p, old, nc) {
		return nil
	}
	cs.runs.Add(1)
	cs.bytesIn.Add(in)
	cs.bytesOut.Add(kept)
	cs.removed.Add(removed)
	cs.markersRemoved.Add(markersRemoved)
	s.log.Debug().Str("topic", p.t.info.Name).Int32("partition", p.num).Int64("offset", end).
		Int64("bytes_in", in).Int64("bytes_out", kept).Int64("records_removed", removed).Msg("partition compacted")
	s.maybeFree()
	return nil
}

// publishCompacted makes nc p's compacted file in place of old (reads
// below nc.end go there from now on), trims p's chunk index below nc.end
// and removes old's file (readers holding it keep the open file). False,
// with nc discarded, when p was deleted meanwhile.
func (s *Store) publishCompacted(p *partition, old, nc *compacted) bool {
	s.comp.pubMu.Lock()
	defer s.comp.pubMu.Unlock()
	if p.deleted.Load() || s.isClosed() || p.comp.Load() != old {
		_ = s.fs.Remove(nc.seg.path)
		nc.seg.release()
		return false
	}
	// The aborted index first: an entry it drops belongs to a marker that
	// only the old file still has, whose data is gone from it already, so
	// a fetch reading the old file meanwhile loses nothing. The other way
	// round, a read_committed fetch could read the new file (marker gone)
	// and then get the stale entry, and its consumer would skip the
	// producer's later committed data as aborted.
	p.setAbortedBelow(nc)
	p.comp.Store(nc)
	p.trimTo(nc.end)
	if old != nil {
		s.removeCompacted(old)
	}
	return true
}

// dropCompacted removes p's compacted file: c when c is not nil and
// still p's (the log start passed its end), any when c is nil (a deleted
// partition). Readers holding it keep the open file.
func (s *Store) dropCompacted(p *partition, c *compacted) {
	s.comp.pubMu.Lock()
	defer s.comp.pubMu.Unlock()
	if c != nil && !p.comp.CompareAndSwap(c, nil) {
		return
	}
	if c == nil {
		c = p.comp.Swap(nil)
	}
	if c != nil {
		s.removeCompacted(c)
	}
}

// removeCompacted removes c's file and drops the store's reference on it
// (readers holding it keep the open file). pubMu is held.
func (s *Store) removeCompacted(c *compacted) {
	if err := s.fs.Remove(c.seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn().Err(err).Str("file", c.seg.path).Msg("removing a compacted file no longer used failed; removed on restart")
	}
	c.seg.release()
}

// abortedFunc returns whether a batch belongs to one of the aborted
// transactions as (AbortedTxns' answer, by first offset). A producer's
// transactions do not overlap, so its entries are in offset order and the
// one that may hold a batch is found by binary search: a producer with
// many aborted transactions costs a cleaning log(n) per batch, not n.
func abortedFunc(as []AbortedTxn) func(h *BatchHeader) bool {
	byPid := map[int64][]AbortedTxn{}
	for _, a := range as {
		byPid[a.ProducerID] = append(byPid[a.ProducerID], a)
	}
	return func(h *BatchHeader) bool {
		if !h.Transactional() || h.Control() {
			return false
		}
		txns := byPid[h.ProducerID]
		i := sort.Search(len(txns), func(i int) bool { return txns[i].LastOffset > h.BaseOffset })
		return i < len(txns) && txns[i].FirstOffset <= h.BaseOffset
	}
}

// compScratch holds one cleaning's reused buffers.
type compScratch struct {
	recs, kept, out []byte
}

// cleanBatch returns batch without the records that do not survive: a key
// with a later offset in latest, no key, or (dropTombs) a null value. out
// is batch itself when every record survives, nil when none does; n is the
// records kept, tombs whether a kept one is a tombstone. A batch whose
// records cannot be decoded is kept whole. A rebuilt batch lives in sc
// until the next call.
func (s *Store) cleanBatch(batch []byte, h *BatchHeader, latest map[keyHash]int64, dropTombs bool, sc *compScratch) (out []byte, tombs bool, n int32, err error) {
	recs, derr := batchRecords(batch, h, sc.recs)
	if derr != nil {
		return batch, false, h.NumRecords, nil
	}
	if h.Compression() != codecNone {
		sc.recs = recs
	}
	kept := sc.kept[:0]
	defer func() { sc.kept = kept }()
	maxDelta := int64(math.MinInt64)
	all := true
	derr = eachRecord(recs, h.NumRecords, func(r *rawRecord) {
		off := h.BaseOffset + int64(r.offsetDelta)
		keep := r.key != nil && !(r.nullValue && dropTombs)
		if keep {
			if l, ok := latest[s.comp.hash(r.key)]; ok && l > off {
				keep = false
			}
		}
		if !keep {
			all = false
			return
		}
		n++
		tombs = tombs || r.nullValue
		maxDelta = max(maxDelta, r.tsDelta)
		kept = append(kept, r.raw...)
	})
	if derr != nil {
		return batch, false, h.NumRecords, nil
	}
	switch {
	case all:
		return batch, tombs, n, nil
	case n == 0:
		// Producer state lives in the WAL's index checkpoints, not in the
		// compacted file, so an emptied batch need not be kept.
		return nil, false, 0, nil
	}
	// Kafka's cleaner recomputes a rebuilt batch's max timestamp from the
	// records kept; with LogAppendTime it is every record's time, kept.
	maxTs := h.MaxTimestamp
	if !h.LogAppendTime() {
		maxTs = h.FirstTimestamp + maxDelta
	}
	out, err = rebuildBatch(batch, h, kept, n, maxTs, sc.out)
	if err == nil {
		sc.out = out
	}
	return out, tombs, n, err
}

// readRun reads the batches of e into buf (grown as needed), holding e's
// segment meanwhile.
func readRun(e *chunkEntry, buf []byte) ([]byte, error) {
	if !e.seg.acquire() {
		return buf, goneErr(e.seg)
	}
	defer e.seg.release()
	if int64(cap(buf)) < e.length {
		buf = make([]byte, e.length)
	}
	buf = buf[:e.length]
	if n, err := e.seg.f.ReadAt(buf, e.pos); int64(n) < e.length {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	return buf, nil
}

// mapKeys records in latest the offset of each key's last record in buf
// (a run of batches in offset order): the offset map of a cleaning.
// Control batches, aborted data and batches below logStart add nothing;
// a batch whose records cannot be decoded neither (it is kept whole).
func (cs *compState) mapKeys(latest map[keyHash]int64, buf []byte, logStart int64, isAborted func(*BatchHeader) bool, sc *compScratch) error {
	return eachBatch(buf, func(batch []byte, h *BatchHeader) error {
		if h.Control() || isAborted(h) || h.BaseOffset+int64(h.LastOffsetDelta) < logStart {
			return nil
		}
		recs, err := batchRecords(batch, h, sc.recs)
		if err != nil {
			return nil // kept whole when copied
		}
		if h.Compression() != codecNone {
			sc.recs = recs
		}
		return eachRecord(recs, h.NumRecords, func(r *rawRecord) {
			if r.key != nil {
				latest[cs.hash(r.key)] = h.BaseOffset + int64(r.offsetDelta)
			}
		})
	})
}

// eachBatch calls fn with every batch in b.
func eachBatch(b []byte, fn func(batch []byte, h *BatchHeader) error) error {
	for len(b) > 0 {
		batch, rest, err := NextBatch(b)
		if err != nil {
			return errBatchWalk
		}
		h, _ := ParseBatchHeader(batch)
		if err := fn(batch, &h); err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// recoverCompacted opens each partition's newest compacted file, removes
// older generations, temporary files and the files of partitions that no
// longer exist, and trims each index below its cleaned end. A newest file
// that does not verify fails its partition.
func (s *Store) recoverCompacted() error {
	dir := filepath.Join(s.cfg.Dir, compDirName)
	if err := vfs.MkdirAllSync(s.fs, dir); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	names, err := s.fs.List(dir)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	newest := map[uint32]uint64{}
	var stale []string
	for _, name := range names {
		key, gen, ok := parseCompName(name)
		if !ok {
			if strings.HasSuffix(name, vfs.TmpSuffix) {
				stale = append(stale, name)
			}
			continue
		}
		if p := s.byKey[key]; p == nil || p.deleted.Load() {
			stale = append(stale, name)
			continue
		}
		if g, ok := newest[key]; ok {
			stale = append(stale, compName(key, min(g, gen)))
		}
		newest[key] = max(newest[key], gen)
	}
	for key, gen := range newest {
		p := s.byKey[key]
		path := s.compPath(key, gen)
		f, err := s.fs.Open(path)
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		c, err := readCompacted(f, path, key)
		if err != nil {
			_ = f.Close()
			s.log.Error().Err(err).Str("file", path).Str("topic", p.t.info.Name).Int32("partition", p.num).
				Msg("compacted file corrupt: partition offline")
			p.failed.Store(true)
			continue
		}
		p.comp.Store(c)
		p.next = max(p.next, c.end)
		p.trimTo(c.end)
		p.setAbortedBelow(c) // checkpoints may predate c
		if s.cfg.Cold != nil {
			// Compacted while the broker ran without the tier: the cleaned
			// prefix stays local and is served from here, but it is not
			// uploaded (the tier starts, or must continue, elsewhere).
			s.log.Warn().Str("topic", p.t.info.Name).Int32("partition", p.num).Int64("offset", c.end).
				Msg("partition compacted without the tier: its compacted prefix is read locally and not uploaded")
		}
	}
	for _, name := range stale {
		if err := s.fs.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("storage: %w", err)
		}
	}
	if len(stale) > 0 {
		if err := s.fs.SyncDir(dir); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
	}
	return nil
}

// closeCompacted drops the store's reference on every compacted file.
func (s *Store) closeCompacted() {
	s.comp.pubMu.Lock()
	defer s.comp.pubMu.Unlock()
	for _, t := range s.table.Load().byName {
		for _, p := range t.parts {
			if c := p.comp.Swap(nil); c != nil {
				c.seg.release()
			}
		}
	}
}

// CompactionStats are compaction's counters.
type CompactionStats struct {
	Runs int64 // partitions cleaned
	// BytesRead counts batch bytes as cleanings read them (dirty chunks
	// twice: once to map their keys, once to copy them), finished or not.
	BytesRead      int64
	BytesIn        int64 // batch bytes cleaned: the input of finished cleanings
	BytesOut       int64 // batch bytes written to compacted files
	RecordsRemoved int64
	MarkersRemoved int64 // transaction markers removed (counted in RecordsRemoved too)
	// With Config.Cold (counted in the above too): partitions cleaned in
	// the bucket, bytes of objects put and of the objects they replaced.
	TieredRuns, TieredBytesPut, TieredBytesDeleted int64
}

// CompactionStats returns a snapshot of compaction's counters.
func (s *Store) CompactionStats() CompactionStats {
	cs := &s.comp
	return CompactionStats{Runs: cs.runs.Load(), BytesRead: cs.bytesRead.Load(), BytesIn: cs.bytesIn.Load(), BytesOut: cs.bytesOut.Load(), RecordsRemoved: cs.removed.Load(),
		MarkersRemoved: cs.markersRemoved.Load(),
		TieredRuns:     cs.tieredRuns.Load(), TieredBytesPut: cs.tieredPut.Load(), TieredBytesDeleted: cs.tieredDeleted.Load()}
}

// Compact runs one compaction pass now (tests, benchmarks and operators'
// tools); it returns once the pass is done.
func (s *Store) Compact() {
	s.compactPass(s.maint.ctx)
}

// readCompactedRange is Read's part below c.end: whole batches of c from
// the one holding offset, at least one, up to maxBytes. ok is false when
// c holds no batch at or above offset (the read continues at c.end in the
// WAL) or was replaced and closed meanwhile (gone).
func (s *Store) readCompactedRange(c *compacted, res ReadResult, offset, maxBytes int64) (r ReadResult, ok, gone bool) {
	i := c.from(offset)
	if i == len(c.entries) {
		return res, false, false
	}
	h := holdPool.Get().(*readHold)
	if !h.segs.hold(c.seg) {
		h.drop()
		return res, false, true
	}
	fail := func(err error) (ReadResult, bool, bool) {
		h.drop()
		res.Err = err
		return res, true, false
	}
	budget := maxBytes
	for first := true; i < len(c.entries) && (first || budget > 0); i++ {
		e := &c.entries[i]
		start := e.pos
		if first && offset > e.base {
			var err error
			if start, err = h.seek(e, offset); err != nil {
				return fail(err)
			}
		}
		n := e.end() - start
		if n > budget {
			var err error
			if n, err = h.fit(e, start, budget, math.MaxInt64, first); err != nil {
				return fail(err)
			}
		}
		first = false
		if n == 0 {
			break
		}
		h.add(c.seg, start, n)
		res.Bytes += n
		budget -= n
		if start+n != e.end() {
			break
		}
	}
	res.Chunks = h.chunks
	res.release = h.release
	return res, true, false
}
