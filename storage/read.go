package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/klite/klite/vfs"
)

// readHold is what one ReadResult keeps until Release: the segment
// references and the chunk slice. Pooled, so a read allocates nothing.
type readHold struct {
	segs   pinSet
	chunks []Chunk
	// block caches file bytes while walking batch prefixes in a chunk:
	// one pread covers many small batches.
	block    []byte
	blockF   vfs.File
	blockPos int64
	blockLen int
	release  func()
}

// walkBlockBytes is how much of a chunk one pread fetches while walking.
const walkBlockBytes = 32 << 10

var holdPool sync.Pool

func init() {
	holdPool.New = func() any {
		h := &readHold{segs: make([]*segment, 0, 4), chunks: make([]Chunk, 0, 8)}
		h.release = h.drop
		return h
	}
}

func (h *readHold) drop() {
	h.segs.release()
	clear(h.chunks)
	h.chunks = h.chunks[:0]
	h.blockF, h.blockLen = nil, 0
	holdPool.Put(h)
}

// pinSet is the segments one reader holds a reference on, each once.
type pinSet []*segment

// hold takes a reference on seg unless one is held already, before its
// file is read (a freeing pass may drop the store's reference at any
// time). False when the segment is closed (deleted, or the store closed).
func (ps *pinSet) hold(seg *segment) bool {
	if slices.Contains(*ps, seg) {
		return true
	}
	if !seg.acquire() {
		return false
	}
	*ps = append(*ps, seg)
	return true
}

// release drops every reference and empties the set.
func (ps *pinSet) release() {
	for _, s := range *ps {
		s.release()
	}
	clear(*ps)
	*ps = (*ps)[:0]
}

// add appends a chunk of a held segment.
func (h *readHold) add(seg *segment, off, n int64) {
	h.chunks = append(h.chunks, Chunk{File: seg.f, Off: off, Len: n})
}

var errBatchWalk = fmt.Errorf("%w: batch framing broken inside a chunk", ErrStorage)

// prefix reads the baseOffset, last offset and total size of the batch at
// pos.
func (h *readHold) prefix(f vfs.File, pos, end int64) (base, last, size int64, err error) {
	const need = batchLastOffsetDeltaAt + 4
	if h.blockF != f || pos < h.blockPos || pos+need > h.blockPos+int64(h.blockLen) {
		if h.block == nil {
			h.block = make([]byte, walkBlockBytes)
		}
		n := min(int64(len(h.block)), end-pos)
		if n < need {
			return 0, 0, 0, errBatchWalk
		}
		m, err := f.ReadAt(h.block[:n], pos)
		if m < need {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, 0, fmt.Errorf("%w: %v", ErrStorage, err)
		}
		h.blockF, h.blockPos, h.blockLen = f, pos, m
	}
	b := h.block[pos-h.blockPos:]
	base = int64(binary.BigEndian.Uint64(b[batchBaseOffsetAt:]))
	last = base + int64(int32(binary.BigEndian.Uint32(b[batchLastOffsetDeltaAt:])))
	size = int64(int32(binary.BigEndian.Uint32(b[batchLengthAt:]))) + batchLengthOverhead
	if size < BatchHeaderBytes || pos+size > end {
		return 0, 0, 0, errBatchWalk
	}
	return base, last, size, nil
}

// seek returns the position of the first batch in the chunk whose last
// offset is >= offset (the chunk's last batch when none is), walking
// batch prefixes (no record decoding). In the WAL that is the batch
// holding offset; in a compacted file, where whole batches are gone, it
// is the next surviving one, as Kafka answers: a batch wholly below the
// fetch offset would be all a KIP-74 read returns when it alone exceeds
// the budget, and its consumer would ask for the same offset forever.
func (h *readHold) seek(e *chunkEntry, offset int64) (int64, error) {
	f := e.seg.f
	cur := e.pos
	for {
		_, last, size, err := h.prefix(f, cur, e.end())
		if err != nil {
			return 0, err
		}
		if last >= offset || cur+size >= e.end() {
			return cur, nil
		}
		cur += size
	}
}

// fit returns the bytes of the whole batches from pos that fit in budget
// and start below endOff, or of the first batch alone when none fits and
// atLeastOne is set.
func (h *readHold) fit(e *chunkEntry, pos, budget, endOff int64, atLeastOne bool) (int64, error) {
	var n int64
	for pos+n < e.end() {
		base, _, size, err := h.prefix(e.seg.f, pos+n, e.end())
		if err != nil {
			return 0, err
		}
		if base >= endOff && (n > 0 || !atLeastOne) {
			break
		}
		if n+size > budget {
			if n == 0 && atLeastOne {
				return size, nil
			}
			break
		}
		n += size
	}
	return n, nil
}

// Read returns whole batches starting with the one that contains offset,
// up to maxBytes, but always at least one whole batch when one exists
// below the high watermark (KIP-74). offset == high watermark returns no
// chunks and no error; offset outside [log start, high watermark] returns
// ErrOffsetOutOfRange. The caller must Release the result once its chunks
// are sent. LastStableOffset is the partition's last stable offset (txn.go).
func (s *Store) Read(topic string, partition int32, offset int64, maxBytes int64) ReadResult {
	return s.read(topic, partition, offset, maxBytes, false)
}

// ReadCommitted is Read for a read_committed consumer (KIP-98): it returns
// only batches below the last stable offset, and no chunks (no error) for
// an offset in [last stable offset, high watermark].
func (s *Store) ReadCommitted(topic string, partition int32, offset int64, maxBytes int64) ReadResult {
	return s.read(topic, partition, offset, maxBytes, true)
}

func (s *Store) read(topic string, partition int32, offset int64, maxBytes int64, committed bool) ReadResult {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return ReadResult{HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1, Err: err}
	}
	if p.failed.Load() {
		return ReadResult{HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1, Err: ErrStorage}
	}
	// Log start, then hwm (a log start never passes the hwm of its time),
	// then the index: every chunk below hwm is already in it.
	// The last stable offset after hwm (see txn.go).
	logStart := p.logStart.Load()
	hwm := p.hwm.Load()
	lso := p.lso(logStart, hwm)
	res := ReadResult{HighWatermark: hwm, LastStableOffset: lso, LogStartOffset: logStart}
	if offset == hwm {
		return res
	}
	if offset < logStart || offset > hwm {
		res.Err = ErrOffsetOutOfRange
		return res
	}
	end := hwm // batches from end on are not returned
	if committed {
		if offset >= lso {
			return res
		}
		end = lso
	}
	// Below a compacted file's cleaned end the read goes there (compact.go).
	// Compaction publishes a file before it trims the index below its end
	// and before any segment goes, so a WAL read that finds its chunk gone
	// while a newer file was published retries.
	for attempt := 0; ; attempt++ {
		c := p.comp.Load()
		from := offset
		if c != nil && offset < c.end {
			r, ok, gone := s.readCompactedRange(c, res, offset, maxBytes)
			switch {
			case gone && attempt < 8:
				continue
			case gone:
				r.Err = ErrClosed
				return r
			case ok:
				if r.Err == nil {
					s.countRead(p, r.Bytes)
				}
				return r
			}
			if from = c.end; from >= end {
				return res // nothing left below end
			}
		}
		r := s.readWAL(p, res, from, maxBytes, end)
		if errors.Is(r.Err, ErrOffsetOutOfRange) && attempt < 8 && p.comp.Load() != c {
			continue
		}
		return r
	}
}

// readWAL is read from the WAL's chunk index.
func (s *Store) readWAL(p *partition, res ReadResult, offset, maxBytes, end int64) ReadResult {
	hwm := res.HighWatermark
	var err error
	v := p.idx.view()
	if s.cfg.Cold != nil && offset < localStart(v, hwm) {
		return s.readCold(p, res, offset, maxBytes, end) // tiering hook (tiered.go)
	}
	i := v.find(offset)
	if i < 0 {
		// Below the local data: the log start moved past it meanwhile.
		res.Err = ErrOffsetOutOfRange
		return res
	}
	h := holdPool.Get().(*readHold)
	fail := func(err error) ReadResult {
		h.drop()
		res.Err = err
		return res
	}
	e := v.at(i)
	if !h.segs.hold(e.seg) {
		if s.cfg.Cold != nil && !s.isClosed() {
			// Tiering hook (tiered.go): the segment was freed meanwhile.
			h.drop()
			return s.readCold(p, res, offset, maxBytes, end)
		}
		return fail(goneErr(e.seg))
	}
	start := e.pos
	if offset != e.base {
		if start, err = h.seek(e, offset); err != nil {
			return fail(err)
		}
	}
	budget := maxBytes
	n := e.end() - start
	if n > budget || e.last >= end {
		if n, err = h.fit(e, start, budget, end, true); err != nil {
			return fail(err)
		}
	}
	h.add(e.seg, start, n)
	res.Bytes = n
	budget -= n
	for i++; i < v.n && budget > 0 && n == e.end()-start; i++ {
		e = v.at(i)
		if e.base >= end {
			break
		}
		if !h.segs.hold(e.seg) {
			if e.seg.deleted.Load() {
				break // freed meanwhile: what is held is a good answer
			}
			return fail(ErrClosed)
		}
		start, n = e.pos, e.length
		if n > budget || e.last >= end {
			if n, err = h.fit(e, start, budget, end, false); err != nil {
				return fail(err)
			}
			if n == 0 {
				break
			}
		}
		h.add(e.seg, start, n)
		res.Bytes += n
		budget -= n
	}
	res.Chunks = h.chunks
	res.release = h.release
	s.countRead(p, res.Bytes)
	return res
}

// countRead counts a read of n bytes from p.
func (s *Store) countRead(p *partition, n int64) {
	s.stats.reads.Add(1)
	s.stats.readBytes.Add(n)
	p.bytesOut.Add(n)
}

// goneErr is the error for a read whose segment could not be held: freed
// under it (the log start moved past the offset) or closed with the store.
func goneErr(seg *segment) error {
	if seg.deleted.Load() {
		return ErrOffsetOutOfRange
	}
	return ErrClosed
}

// OffsetForTime returns the base offset and max timestamp of the first
// batch whose maxTimestamp is >= ts, or (-1, -1).
func (s *Store) OffsetForTime(topic string, partition int32, ts int64) (int64, int64, error) {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return -1, -1, err
	}
	if p.failed.Load() {
		return -1, -1, ErrStorage
	}
	logStart := p.logStart.Load()
	hwm := p.hwm.Load()
	v := p.idx.view()
	if ls := localStart(v, hwm); s.cfg.Cold != nil && logStart < ls {
		// Tiering hook (tiered.go): a tiered batch comes first.
		if off, t, ok, err := s.coldOffsetForTime(p, ts, ls); ok || err != nil {
			return off, t, err
		}
	}
	// The compacted file first (compact.go), then the WAL's chunks above
	// its cleaned end.
	cleanEnd := logStart
	if c := p.comp.Load(); c != nil {
		cleanEnd = max(cleanEnd, c.end)
		for i := c.from(logStart); i < len(c.entries); i++ {
			e := &c.entries[i]
			if e.maxTs < ts {
				continue
			}
			if off, mts, err := firstBatchAtTime(e, logStart, ts); err != nil || off >= 0 {
				return off, mts, err
			}
		}
	}
	// Chunks with a batch >= ts from the first on; only batches at or
	// past the log start count.
	for i := v.findTime(ts); i >= 0 && i < v.n; i++ {
		e := v.at(i)
		if e.base >= hwm {
			break
		}
		if e.maxTs < ts || e.last < cleanEnd {
			continue
		}
		if off, mts, err := firstBatchAtTime(e, logStart, ts); err != nil || off >= 0 {
			return off, mts, err
		}
	}
	return -1, -1, nil
}

// firstBatchAtTime returns the base offset and max timestamp of e's first
// batch at or past logStart whose max timestamp is >= ts, or (-1, -1).
func firstBatchAtTime(e *chunkEntry, logStart, ts int64) (int64, int64, error) {
	off, mts := int64(-1), int64(-1)
	err := walkBatches(e, func(_ int64, bh *BatchHeader) bool {
		if bh.BaseOffset+int64(bh.LastOffsetDelta) >= logStart && bh.MaxTimestamp >= ts {
			off, mts = bh.BaseOffset, bh.MaxTimestamp
			return false
		}
		return true
	})
	return off, mts, err
}

// walkBatches calls fn with each batch header of e until fn returns false,
// holding e's segment meanwhile.
func walkBatches(e *chunkEntry, fn func(pos int64, bh *BatchHeader) bool) error {
	if !e.seg.acquire() {
		return goneErr(e.seg)
	}
	defer e.seg.release()
	return walkHeld(e, fn)
}

// walkHeld is walkBatches for a caller that holds e's segment.
func walkHeld(e *chunkEntry, fn func(pos int64, bh *BatchHeader) bool) error {
	var hdr [BatchHeaderBytes]byte
	for pos := e.pos; pos < e.end(); {
		if n, err := e.seg.f.ReadAt(hdr[:], pos); n < len(hdr) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("%w: %v", ErrStorage, err)
		}
		bh, _ := ParseBatchHeader(hdr[:])
		if bh.Size() < BatchHeaderBytes || pos+int64(bh.Size()) > e.end() {
			return errBatchWalk
		}
		if !fn(pos, &bh) {
			return nil
		}
		pos += int64(bh.Size())
	}
	return nil
}

// MaxTimestamp returns the offset and time of the batch with the largest
// maxTimestamp (the first such batch), or (-1, -1) for an empty partition.
func (s *Store) MaxTimestamp(topic string, partition int32) (int64, int64, error) {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return -1, -1, err
	}
	if p.failed.Load() {
		return -1, -1, ErrStorage
	}
	logStart := p.logStart.Load()
	hwm := p.hwm.Load()
	v := p.idx.view()
	// A compacted partition (compact.go): the WAL above the cleaned end
	// (the running max may name a batch compaction removed), then the
	// compacted file's runs, whose maxima are surviving batches.
	c := p.comp.Load()
	from := logStart
	if c != nil {
		from = max(from, c.end)
	}
	off, ts, err := localMaxTimestamp(v, from, hwm)
	if err != nil {
		return -1, -1, err
	}
	if c != nil {
		coff, cts, err := compactedMaxTimestamp(c, logStart)
		if err != nil {
			return -1, -1, err
		}
		if coff >= 0 && (off < 0 || cts >= ts) {
			off, ts = coff, cts
		}
	}
	if s.cfg.Cold != nil && logStart < localStart(v, hwm) {
		// Tiering hook (tiered.go): the tier may hold the largest.
		if coff, cts, ok, err := s.coldMaxTimestamp(p, ts); ok || err != nil {
			return coff, cts, err
		}
	}
	return off, ts, nil
}

// compactedMaxTimestamp is MaxTimestamp over c's runs from logStart on
// (the first batch with the largest), or (-1, -1).
func compactedMaxTimestamp(c *compacted, logStart int64) (int64, int64, error) {
	off, ts := int64(-1), int64(math.MinInt64)
	for i := c.from(logStart); i < len(c.entries); i++ {
		var err error
		if off, ts, err = foldMaxTimestamp(&c.entries[i], logStart, off, ts); err != nil {
			return -1, -1, err
		}
	}
	if off < 0 {
		return -1, -1, nil
	}
	return off, ts, nil
}

// foldMaxTimestamp folds chunk e into the running maximum (off, ts) over
// the batches from logStart on, keeping the first batch with the largest:
// e's own max answers unless it lies below logStart, then e is walked.
func foldMaxTimestamp(e *chunkEntry, logStart, off, ts int64) (int64, int64, error) {
	if e.maxTs <= ts {
		return off, ts, nil
	}
	if e.maxTsOff >= logStart {
		return e.maxTsOff, e.maxTs, nil
	}
	err := walkBatches(e, func(_ int64, bh *BatchHeader) bool {
		if bh.BaseOffset+int64(bh.LastOffsetDelta) >= logStart && bh.MaxTimestamp > ts {
			off, ts = bh.BaseOffset, bh.MaxTimestamp
		}
		return true
	})
	return off, ts, err
}

// localMaxTimestamp is MaxTimestamp over the live chunks below hwm, from
// logStart on. The running max answers unless it lies below the log start;
// then the live chunks are compared (walking the one holding the log
// start when its own max lies below it).
func localMaxTimestamp(v indexView, logStart, hwm int64) (int64, int64, error) {
	i := v.find(hwm - 1)
	if i < 0 {
		return -1, -1, nil
	}
	if e := v.at(i); e.prefMaxTsOff >= logStart {
		return e.prefMaxTsOff, e.prefMaxTs, nil
	}
	off, ts := int64(-1), int64(math.MinInt64)
	for j := v.from(logStart); j <= i; j++ {
		var err error
		if off, ts, err = foldMaxTimestamp(v.at(j), logStart, off, ts); err != nil {
			return -1, -1, err
		}
	}
	if off < 0 {
		return -1, -1, nil
	}
	return off, ts, nil
}
