package storage

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klite/klite/vfs"
)

// recover rebuilds every partition's index, next offset and producer state
// from the shards' segments. Sealed segments with an index checkpoint are
// not read; the others are scanned chunk by chunk. All recovered data is
// durable, so each high watermark is set to the log end.
func (s *Store) recover() error {
	t0 := time.Now()
	rs := &s.recovery
	// Every shard directory, then one fsync of Dir for all of them (Open
	// made Dir itself durable): one directory fsync costs a disk cache
	// flush, so not one per shard and parent.
	for _, sh := range s.shards {
		if err := s.fs.MkdirAll(sh.dir); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
	}
	if err := s.fs.SyncDir(s.cfg.Dir); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	for _, sh := range s.shards {
		if err := sh.recover(rs); err != nil {
			return err
		}
	}
	if err := s.recoverCompacted(); err != nil {
		return err
	}
	for _, p := range s.byKey {
		// A partition whose chunks were all deleted continues where its
		// log ended (next_min), never below its log start.
		p.next = max(p.next, p.nextMin, p.logStart.Load())
		p.hwm.Store(p.next)
		p.trimTo(p.logStart.Load())
		if p.failed.Load() {
			rs.FailedPartitions++
		}
	}
	rs.Took = time.Since(t0)
	ev := s.log.Info()
	if rs.FailedPartitions > 0 {
		ev = s.log.Error()
	}
	ev.Int("segments", rs.Segments).Int("from_checkpoint", rs.FromCheckpoint).Int("scanned", rs.Scanned).
		Int("partitions", len(s.byKey)).Int("failed_partitions", rs.FailedPartitions).Int("chunks", rs.Chunks).
		Int64("bytes", rs.Bytes).Int64("torn_bytes", rs.TornBytes).Dur("took", rs.Took).Msg("recovered")
	return nil
}

// scanResult is what a segment scan found.
type scanResult struct {
	entries []ckEntry
	end     int64 // end of the last whole, valid chunk
	tornEnd int64 // end of the non-zero bytes after end; > end when torn
}

func (s *shard) recover(rs *RecoveryStats) error {
	fsys := s.st.fs
	names, err := fsys.List(s.dir)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	var ids []uint64
	hasIdx := map[uint64]bool{}
	hasSeg := map[uint64]bool{}
	for _, name := range names {
		if strings.HasSuffix(name, prepSuffix) || strings.HasSuffix(name, tmpSuffix) {
			if err := fsys.Remove(s.dir + "/" + name); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			continue
		}
		if id, ok := parseSegName(name, segSuffix); ok {
			ids = append(ids, id)
			hasSeg[id] = true
		} else if id, ok := parseSegName(name, idxSuffix); ok {
			hasIdx[id] = true
		}
	}
	// The names found may not be durable: the last process may have died
	// after a rename whose directory fsync failed. New acknowledgements
	// will build on them, so make them durable first.
	if err := fsys.SyncDir(s.dir); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	for id := range hasIdx {
		if !hasSeg[id] {
			// A crash while deleting the segment (the .wal goes first).
			if err := fsys.Remove(idxPath(s.dir, id)); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			delete(hasIdx, id)
		}
	}
	slices.Sort(ids)
	nowMs := s.st.now().UnixMilli()
	prods := producerMap{}
	aborted := abortedByKey{}
	var last *segment
	lastSealed := false
	for k, id := range ids {
		isLast := k == len(ids)-1
		path := segPath(s.dir, id)
		var f vfs.File
		if isLast {
			f, err = fsys.OpenRW(path)
		} else {
			f, err = fsys.Open(path)
		}
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		seg := newSegment(id, path, f)
		if seg.size, err = f.Size(); err != nil {
			_ = f.Close()
			return fmt.Errorf("storage: %w", err)
		}
		s.addSegment(seg)
		rs.Segments++
		last, lastSealed = seg, false
		if hasIdx[id] {
			ck, err := s.loadCheckpoint(id)
			if err == nil {
				s.applyEntries(seg, ck.entries, rs)
				s.markSealed(seg, ck.entries)
				seg.ckDone.Store(true)
				prods = ck.producers
				aborted.load(ck.aborted)
				rs.FromCheckpoint++
				lastSealed = true
				continue
			}
			s.log.Warn().Err(err).Str("segment", path).Msg("ignoring index checkpoint; scanning the segment")
		}
		rs.Scanned++
		res, err := s.scan(seg, prods, aborted, nowMs, isLast)
		if err != nil {
			return err
		}
		s.applyEntries(seg, res.entries, rs)
		if res.tornEnd > res.end {
			if !isLast {
				// Segments are fsynced before the next one is used, so
				// only the newest may hold a torn tail: this is corruption.
				s.log.Error().Str("segment", path).Int64("at", res.end).
					Msg("corrupt WAL segment: failing every partition of the shard")
				s.failAllPartitions()
			} else {
				if err := s.cutTorn(seg, res); err != nil {
					return err
				}
				rs.TornBytes += res.tornEnd - res.end
			}
		}
		if isLast {
			s.ck, s.pos = res.entries, res.end
			continue
		}
		s.markSealed(seg, res.entries)
		prod, np := encodeProducers(prods)
		b := encodeCheckpoint(id, res.entries, prod, np, aborted.flat())
		if err := vfs.WriteFile(fsys, idxPath(s.dir, id), b); err != nil {
			s.log.Warn().Err(err).Str("segment", path).Msg("index checkpoint not written")
		} else {
			seg.ckDone.Store(true)
		}
	}
	for k := range prods {
		if p := s.st.byKey[k.key]; p == nil || p.sh != s {
			delete(prods, k)
		}
	}
	prods.expire(nowMs - s.st.cfg.ProducerExpiry.Milliseconds())
	s.producers = prods
	s.installTxns(prods, aborted)

	if last != nil && !lastSealed {
		s.seg, s.nextSegID = last, last.id+1
		return nil
	}
	id := uint64(0)
	if last != nil {
		id = last.id + 1
	}
	// Reserved only: Open does not wait for zeros (see Prealloc).
	f, err := s.prepare(id, nil)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	seg, err := s.install(prepResult{id: id, f: f})
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	s.seg, s.pos, s.ck = seg, 0, nil
	return nil
}

func (s *shard) failAllPartitions() {
	for _, p := range s.st.byKey {
		if p.sh == s {
			p.failed.Store(true)
		}
	}
}

func (s *shard) loadCheckpoint(id uint64) (checkpoint, error) {
	f, err := s.st.fs.Open(idxPath(s.dir, id))
	if err != nil {
		return checkpoint{}, err
	}
	defer f.Close()
	b, err := vfs.ReadAll(f)
	if err != nil {
		return checkpoint{}, err
	}
	return decodeCheckpoint(b, id)
}

// applyEntries adds recovered chunks to their partitions' indexes, checking
// that each partition's offsets continue without a gap. A gap is accepted
// only up to the partition's next_min: segments holding chunks below it
// may have been deleted (an older one can outlive a newer one, kept by
// another partition's chunks), and what precedes such a gap is below the
// log start or tiered, so the index restarts after it.
func (s *shard) applyEntries(seg *segment, entries []ckEntry, rs *RecoveryStats) {
	for _, e := range entries {
		p := s.st.byKey[e.key]
		if p == nil || p.failed.Load() {
			continue // a deleted topic's chunk, or already failed
		}
		if p.sh == s && e.base > p.next && e.base <= p.nextMin {
			p.idx.trim(p.idx.n.Load())
			p.next = e.base
		}
		if p.sh != s || e.base != p.next {
			s.log.Error().Str("topic", p.t.info.Name).Int32("partition", p.num).Int64("offset", e.base).
				Int64("expected", p.next).Str("segment", seg.path).Msg("WAL chunk out of order: partition failed")
			p.failed.Store(true)
			continue
		}
		p.idx.add(chunkEntry{base: e.base, last: e.last, seg: seg, pos: e.pos, length: e.length, maxTs: e.maxTs, maxTsOff: e.maxTsOff})
		p.next = e.last + 1
		rs.Chunks++
		rs.Bytes += e.length
	}
}

// scan reads a segment chunk by chunk, validating each chunk header and
// every batch (CRC-32C, offsets), replaying producer state as it goes. It
// stops at the first zero header or invalid chunk, and then looks for
// non-zero bytes past that point: those are a torn tail. In a sealed
// segment it looks up to the end of the file (anything there is
// corruption); in the newest one only as far as a crash can have left
// written bytes (tornWindowEnd).
func (s *shard) scan(seg *segment, prods producerMap, aborted abortedByKey, nowMs int64, newest bool) (scanResult, error) {
	var res scanResult
	size, err := seg.f.Size()
	if err != nil {
		return res, fmt.Errorf("storage: %w", err)
	}
	r := newWindowReader(seg.f, size, 1<<20)
	pos, declared := int64(0), int64(0)
	for pos+chunkHeaderBytes <= size {
		hb, err := r.at(pos, chunkHeaderBytes)
		if err != nil {
			return res, fmt.Errorf("storage: %s: %w", seg.path, err)
		}
		if len(hb) < chunkHeaderBytes || allZero(hb) {
			break
		}
		h, err := parseChunkHeader(hb)
		if err != nil {
			break
		}
		if pos+chunkHeaderBytes+int64(h.length) > size {
			declared = size
			break
		}
		data, err := r.at(pos+chunkHeaderBytes, int(h.length))
		if err != nil {
			return res, fmt.Errorf("storage: %s: %w", seg.path, err)
		}
		maxTs, maxTsOff, ok := validChunk(h, data)
		if !ok {
			// Keep the whole declared chunk aside, even its zero bytes.
			declared = pos + chunkHeaderBytes + int64(h.length)
			break
		}
		for b := data; len(b) > 0; {
			batch, rest, _ := NextBatch(b)
			bh, _ := ParseBatchHeader(batch)
			if ab, ok := prods.replay(h.key, &bh, batch, nowMs); ok {
				aborted[h.key] = append(aborted[h.key], ab)
			}
			b = rest
		}
		res.entries = append(res.entries, ckEntry{key: h.key, base: h.base, last: h.last,
			pos: pos + chunkHeaderBytes, length: int64(h.length), maxTs: maxTs, maxTsOff: maxTsOff})
		pos += chunkHeaderBytes + int64(h.length)
	}
	res.end = pos
	limit := size
	if newest {
		limit = min(size, tornWindowEnd(pos, declared, s.st.cfg.unsyncedBytes))
	}
	res.tornEnd, err = lastNonZero(seg.f, pos, limit)
	if err != nil {
		return res, fmt.Errorf("storage: %s: %w", seg.path, err)
	}
	res.tornEnd = max(res.tornEnd, declared)
	return res, nil
}

// tornWindowEnd bounds where a crash can have left written bytes in the
// newest segment, given the end of its last whole chunk and the declared
// end of the chunk header found there (0 when none parses). The writer
// never writes past synced+unsynced, where synced (all bytes below it
// durable) is at most max(end+chunkHeaderBytes, declared): were the header
// at end durable, it would parse, and were its whole chunk durable, the
// chunk would be whole. See doc.go.
func tornWindowEnd(end, declared, unsynced int64) int64 {
	return max(end+chunkHeaderBytes, declared) + unsynced
}

// validChunk checks a chunk's batches against its header.
func validChunk(h chunkHeader, data []byte) (maxTs, maxTsOff int64, ok bool) {
	maxTs, maxTsOff = math.MinInt64, -1
	next := h.base
	var count uint32
	for b := data; len(b) > 0; {
		batch, rest, err := NextBatch(b)
		if err != nil {
			return 0, 0, false
		}
		bh, err := ValidateBatch(batch)
		if err != nil || bh.BaseOffset != next {
			return 0, 0, false
		}
		if bh.MaxTimestamp > maxTs {
			maxTs, maxTsOff = bh.MaxTimestamp, bh.BaseOffset
		}
		next += int64(bh.LastOffsetDelta) + 1
		count++
		b = rest
	}
	return maxTs, maxTsOff, count == h.count && next-1 == h.last
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// lastNonZero returns one past the last non-zero byte in [from, size), or
// from when there is none.
func lastNonZero(f vfs.File, from, size int64) (int64, error) {
	end := from
	buf := make([]byte, 1<<20)
	for pos := from; pos < size; {
		n := min(int64(len(buf)), size-pos)
		m, err := f.ReadAt(buf[:n], pos)
		if m < int(n) && err != nil && err != io.EOF {
			return 0, err
		}
		b := buf[:m]
		if !allZero(b) {
			i := len(b) - 1
			for b[i] == 0 {
				i--
			}
			end = pos + int64(i) + 1
		}
		if m == 0 {
			break
		}
		pos += int64(m)
	}
	return end, nil
}

// cutTorn copies the torn tail aside (<segment>.torn-<unix nanos>), then
// zeroes it (or truncates it when segments are not preallocated) and
// fsyncs, so later writes can never line up with stale chunks.
func (s *shard) cutTorn(seg *segment, res scanResult) error {
	fsys := s.st.fs
	aside := seg.path + tornInfix + strconv.FormatInt(s.st.now().UnixNano(), 10)
	f, err := fsys.Create(aside)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	buf := make([]byte, min(res.tornEnd-res.end, 1<<20))
	for off := res.end; off < res.tornEnd && err == nil; {
		n := min(int64(len(buf)), res.tornEnd-off)
		var m int
		if m, err = seg.f.ReadAt(buf[:n], off); int64(m) == n {
			err = nil
		}
		if err == nil {
			_, err = f.WriteAt(buf[:n], off-res.end)
		}
		off += n
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.SyncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("storage: keeping torn tail of %s: %w", seg.path, err)
	}
	if s.st.cfg.Prealloc == PreallocNone {
		err = seg.f.Truncate(res.end)
	} else {
		err = zeroRange(seg.f, res.end, res.tornEnd)
	}
	if err == nil {
		err = seg.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("storage: cutting torn tail of %s: %w", seg.path, err)
	}
	s.log.Warn().Str("segment", seg.path).Int64("at", res.end).Int64("bytes", res.tornEnd-res.end).
		Str("kept", aside).Msg("cut torn WAL tail")
	return nil
}
