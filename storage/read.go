package storage

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// readHold is what one ReadResult keeps until Release: the segment
// references and the chunk slice. Pooled, so a read allocates nothing.
type readHold struct {
	segs   []*segment
	chunks []Chunk
	// block caches file bytes while walking batch prefixes in a chunk:
	// one pread covers many small batches.
	block    []byte
	blockF   File
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
	for _, s := range h.segs {
		s.release()
	}
	clear(h.segs)
	clear(h.chunks)
	h.segs, h.chunks = h.segs[:0], h.chunks[:0]
	h.blockF, h.blockLen = nil, 0
	holdPool.Put(h)
}

// add appends a chunk, taking a reference on its segment once per read.
func (h *readHold) add(seg *segment, off, n int64) bool {
	held := false
	for _, s := range h.segs {
		if s == seg {
			held = true
			break
		}
	}
	if !held {
		if !seg.acquire() {
			return false
		}
		h.segs = append(h.segs, seg)
	}
	h.chunks = append(h.chunks, Chunk{File: seg.f, Off: off, Len: n})
	return true
}

var errBatchWalk = fmt.Errorf("%w: batch framing broken inside a chunk", ErrStorage)

// prefix reads the baseOffset and total size of the batch at pos.
func (h *readHold) prefix(f File, pos, end int64) (base, size int64, err error) {
	if h.blockF != f || pos < h.blockPos || pos+batchLengthOverhead > h.blockPos+int64(h.blockLen) {
		if h.block == nil {
			h.block = make([]byte, walkBlockBytes)
		}
		n := min(int64(len(h.block)), end-pos)
		if n < batchLengthOverhead {
			return 0, 0, errBatchWalk
		}
		m, err := f.ReadAt(h.block[:n], pos)
		if m < batchLengthOverhead {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, fmt.Errorf("%w: %v", ErrStorage, err)
		}
		h.blockF, h.blockPos, h.blockLen = f, pos, m
	}
	b := h.block[pos-h.blockPos:]
	base = int64(binary.BigEndian.Uint64(b[batchBaseOffsetAt:]))
	size = int64(int32(binary.BigEndian.Uint32(b[batchLengthAt:]))) + batchLengthOverhead
	if size < BatchHeaderBytes || pos+size > end {
		return 0, 0, errBatchWalk
	}
	return base, size, nil
}

// seek returns the position of the batch containing offset in the chunk,
// walking batch prefixes (no record decoding).
func (h *readHold) seek(e *chunkEntry, offset int64) (int64, error) {
	f := e.seg.f
	cur := e.pos
	_, size, err := h.prefix(f, cur, e.end())
	if err != nil {
		return 0, err
	}
	for cur+size < e.end() {
		nbase, nsize, err := h.prefix(f, cur+size, e.end())
		if err != nil {
			return 0, err
		}
		if nbase > offset {
			break
		}
		cur, size = cur+size, nsize
	}
	return cur, nil
}

// fit returns the bytes of the whole batches from pos that fit in budget,
// or of the first batch alone when none fits and atLeastOne is set.
func (h *readHold) fit(e *chunkEntry, pos, budget int64, atLeastOne bool) (int64, error) {
	var n int64
	for pos+n < e.end() {
		_, size, err := h.prefix(e.seg.f, pos+n, e.end())
		if err != nil {
			return 0, err
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

// Read returns whole batches from the one containing offset, up to
// maxBytes but at least one batch (KIP-74); see api.go.
func (s *Store) Read(topic string, partition int32, offset int64, maxBytes int64) ReadResult {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return ReadResult{HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1, Err: err}
	}
	if p.failed.Load() {
		return ReadResult{HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1, Err: ErrStorage}
	}
	// hwm first: every chunk below it is already in the index.
	hwm := p.hwm.Load()
	res := ReadResult{HighWatermark: hwm, LastStableOffset: hwm, LogStartOffset: 0}
	if offset == hwm {
		return res
	}
	if offset < 0 || offset > hwm {
		res.Err = ErrOffsetOutOfRange
		return res
	}
	v := p.idx.view()
	i := v.find(offset)
	if i < 0 {
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
	start := e.pos
	if offset != e.base {
		if start, err = h.seek(e, offset); err != nil {
			return fail(err)
		}
	}
	budget := maxBytes
	n := e.end() - start
	if n > budget {
		if n, err = h.fit(e, start, budget, true); err != nil {
			return fail(err)
		}
	}
	if !h.add(e.seg, start, n) {
		return fail(ErrClosed)
	}
	res.Bytes = n
	budget -= n
	for i++; i < v.n && budget > 0 && n == e.end()-start; i++ {
		e = v.at(i)
		if e.base >= hwm {
			break
		}
		start, n = e.pos, e.length
		if n > budget {
			if n, err = h.fit(e, start, budget, false); err != nil {
				return fail(err)
			}
			if n == 0 {
				break
			}
		}
		if !h.add(e.seg, start, n) {
			return fail(ErrClosed)
		}
		res.Bytes += n
		budget -= n
	}
	res.Chunks = h.chunks
	res.release = h.release
	s.stats.reads.Add(1)
	s.stats.readBytes.Add(res.Bytes)
	return res
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
	hwm := p.hwm.Load()
	v := p.idx.view()
	i := v.findTime(ts)
	if i < 0 || v.at(i).base >= hwm {
		return -1, -1, nil
	}
	e := v.at(i)
	if !e.seg.acquire() {
		return -1, -1, ErrClosed
	}
	defer e.seg.release()
	var hdr [BatchHeaderBytes]byte
	for pos := e.pos; pos < e.end(); {
		if _, err := e.seg.f.ReadAt(hdr[:], pos); err != nil && err != io.EOF {
			return -1, -1, fmt.Errorf("%w: %v", ErrStorage, err)
		}
		bh, _ := ParseBatchHeader(hdr[:])
		if bh.Size() < BatchHeaderBytes || pos+int64(bh.Size()) > e.end() {
			return -1, -1, errBatchWalk
		}
		if bh.MaxTimestamp >= ts {
			return bh.BaseOffset, bh.MaxTimestamp, nil
		}
		pos += int64(bh.Size())
	}
	// The index says the chunk holds such a batch; the file disagrees.
	return -1, -1, errBatchWalk
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
	hwm := p.hwm.Load()
	v := p.idx.view()
	i := v.find(hwm - 1)
	if i < 0 {
		return -1, -1, nil
	}
	e := v.at(i)
	return e.prefMaxTsOff, e.prefMaxTs, nil
}
