package storage

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"sync"
	"sync/atomic"
)

// chunkEntry locates one chunk of a partition: its offsets and the file
// range of its batches (after the chunk header).
type chunkEntry struct {
	base, last int64
	seg        *segment
	pos        int64 // file position of the first batch
	length     int64 // bytes of batches
	maxTs      int64 // largest batch maxTimestamp in the chunk
	maxTsOff   int64 // base offset of the first batch with maxTs
	// Running maximum over this and all earlier chunks of the partition:
	// monotone, so OffsetForTime can binary search it.
	prefMaxTs    int64
	prefMaxTsOff int64
	// cumBytes is the running sum of length over this and all earlier
	// chunks: retention sums a partition's bytes without a walk.
	cumBytes int64
}

func (e *chunkEntry) end() int64 { return e.pos + e.length }

// indexPageEntries is the size of one index page. A page is never moved
// and its entries below the published length never change, so readers
// hold entries without a lock. Pages wholly below the first live entry are
// dropped from the page table once segments are deleted (trim); readers
// holding an older table keep theirs alive.
const indexPageEntries = 512

type indexPage [indexPageEntries]chunkEntry

// chunkIndex is a partition's list of chunks, in offset order. One
// goroutine (the shard's syncer, or recovery before it starts) appends;
// the store's freeing pass trims its front. Readers load n, then the page
// table, then first, and only read entries in [first, n): trim stores
// first before publishing a table without the pages below it, so a
// reader that sees the new table also sees the new first.
type chunkIndex struct {
	n     atomic.Int64
	first atomic.Int64 // index of the first live entry
	// trimMaxTs is the running max timestamp of the trimmed entries,
	// stored before first.
	trimMaxTs atomic.Int64
	pages     atomic.Pointer[[]*indexPage]
	// tableMu serialises page table replacement (append growth, trim).
	tableMu sync.Mutex
	// Running max timestamp and byte sum of the entries added so far.
	// Appender only.
	prefMaxTs, prefMaxTsOff, cumBytes int64
}

// add publishes e. Appender only.
func (x *chunkIndex) add(e chunkEntry) {
	i := x.n.Load()
	if i == 0 || e.maxTs > x.prefMaxTs {
		x.prefMaxTs, x.prefMaxTsOff = e.maxTs, e.maxTsOff
	}
	e.prefMaxTs, e.prefMaxTsOff = x.prefMaxTs, x.prefMaxTsOff
	x.cumBytes += e.length
	e.cumBytes = x.cumBytes
	var pages []*indexPage
	if p := x.pages.Load(); p != nil {
		pages = *p
	}
	if int(i/indexPageEntries) >= len(pages) {
		x.tableMu.Lock()
		if p := x.pages.Load(); p != nil {
			pages = *p
		}
		np := make([]*indexPage, len(pages), len(pages)+1+len(pages)/2)
		copy(np, pages)
		np = append(np, new(indexPage))
		x.pages.Store(&np)
		x.tableMu.Unlock()
		pages = np
	}
	pages[i/indexPageEntries][i%indexPageEntries] = e
	x.n.Store(i + 1)
}

// trim makes entries below first unreachable and drops the pages wholly
// below it. first only grows. Any goroutine; concurrent with add.
func (x *chunkIndex) trim(first int64) {
	x.tableMu.Lock()
	defer x.tableMu.Unlock()
	if first <= x.first.Load() || first > x.n.Load() {
		return
	}
	x.trimMaxTs.Store(indexView{n: first, pages: *x.pages.Load()}.at(first - 1).prefMaxTs)
	x.first.Store(first)
	p := x.pages.Load()
	if p == nil {
		return
	}
	dead := int(first / indexPageEntries)
	if dead == 0 || (*p)[dead-1] == nil {
		return
	}
	np := slices.Clone(*p)
	for k := range dead {
		np[k] = nil
	}
	x.pages.Store(&np)
}

// view is a consistent snapshot for a reader: entries [first, n).
type indexView struct {
	first, n  int64
	trimMaxTs int64 // when first > 0
	pages     []*indexPage
}

func (x *chunkIndex) view() indexView {
	n := x.n.Load()
	if n == 0 {
		return indexView{}
	}
	pages := *x.pages.Load()
	first := x.first.Load()
	return indexView{first: first, n: n, trimMaxTs: x.trimMaxTs.Load(), pages: pages}
}

func (v indexView) at(i int64) *chunkEntry {
	return &v.pages[i/indexPageEntries][i%indexPageEntries]
}

// find returns the index of the last live chunk whose base is <= offset,
// or -1.
func (v indexView) find(offset int64) int64 {
	lo, hi := v.first, v.n // first index with base > offset
	for lo < hi {
		m := int64(uint64(lo+hi) >> 1)
		if v.at(m).base <= offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == v.first {
		return -1
	}
	return lo - 1
}

// from returns the first live chunk whose last offset is >= offset: v.first
// when offset lies below the live chunks, v.n when above them.
func (v indexView) from(offset int64) int64 {
	i := v.find(offset)
	if i < 0 {
		return v.first
	}
	if v.at(i).last < offset {
		i++
	}
	return i
}

// findTime returns the first live chunk holding a batch with maxTimestamp
// >= ts, or -1. The running max (prefMaxTs) also covers trimmed chunks, so
// it only decides when ts is above their max; otherwise the live chunks
// are walked from the first (the earliest usually matches at once: the
// trimmed chunks are the oldest).
func (v indexView) findTime(ts int64) int64 {
	if v.first > 0 && v.trimMaxTs >= ts {
		for i := v.first; i < v.n; i++ {
			if v.at(i).maxTs >= ts {
				return i
			}
		}
		return -1
	}
	lo, hi := v.first, v.n
	for lo < hi {
		m := int64(uint64(lo+hi) >> 1)
		if v.at(m).prefMaxTs >= ts {
			hi = m
		} else {
			lo = m + 1
		}
	}
	if lo == v.n {
		return -1
	}
	return lo
}

// Index checkpoint file (<segment>.idx), written once a segment is sealed
// and fsynced. Part of the on-disk format; big-endian:
//
//	header:   magic u32 "KLIX" | version u16 | 0 u16 | segment id u64 |
//	          entries u32 | producers u32
//	entry:    key u32 | base i64 | last i64 | pos i64 | length u32 |
//	          maxTs i64 | maxTsOff i64                        (48 bytes)
//	aborted:  version 2 only: the shard's aborted transactions at the
//	          end of the segment, see txn.go (appendAborted)
//	producer: see producer.go (encodeProducers)
//	trailer:  CRC-32C u32 of everything before it
//
// Version 1 (before transactions) has no aborted section; both decode.
const (
	ckMagic       = 0x4B4C4958 // "KLIX"
	ckVersion     = 2
	ckVersion1    = 1
	ckHeaderBytes = 24
	ckEntryBytes  = 48
)

// ckEntry is a checkpointed chunk: a chunkEntry with its partition key
// instead of a segment pointer.
type ckEntry struct {
	key             uint32
	base, last, pos int64
	length          int64
	maxTs, maxTsOff int64
}

var errCheckpoint = errors.New("storage: bad index checkpoint")

func encodeCheckpoint(segID uint64, entries []ckEntry, producers []byte, nProducers int, aborted []ckAborted) []byte {
	be := binary.BigEndian
	b := make([]byte, ckHeaderBytes, ckHeaderBytes+len(entries)*ckEntryBytes+4+len(aborted)*ckAbortedBytes+len(producers)+4)
	be.PutUint32(b[0:], ckMagic)
	be.PutUint16(b[4:], ckVersion)
	be.PutUint64(b[8:], segID)
	be.PutUint32(b[16:], uint32(len(entries)))
	be.PutUint32(b[20:], uint32(nProducers))
	for _, e := range entries {
		b = be.AppendUint32(b, e.key)
		b = be.AppendUint64(b, uint64(e.base))
		b = be.AppendUint64(b, uint64(e.last))
		b = be.AppendUint64(b, uint64(e.pos))
		b = be.AppendUint32(b, uint32(e.length))
		b = be.AppendUint64(b, uint64(e.maxTs))
		b = be.AppendUint64(b, uint64(e.maxTsOff))
	}
	b = appendAborted(b, aborted)
	b = append(b, producers...)
	return be.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

type checkpoint struct {
	entries   []ckEntry
	producers producerMap
	aborted   []ckAborted
}

func decodeCheckpoint(b []byte, segID uint64) (checkpoint, error) {
	be := binary.BigEndian
	var ck checkpoint
	if len(b) < ckHeaderBytes+4 {
		return ck, errCheckpoint
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != be.Uint32(b[len(b)-4:]) ||
		be.Uint32(b[0:]) != ckMagic || be.Uint64(b[8:]) != segID {
		return ck, errCheckpoint
	}
	version := be.Uint16(b[4:])
	if version != ckVersion && version != ckVersion1 {
		return ck, errCheckpoint
	}
	ne, np := int(be.Uint32(b[16:])), int(be.Uint32(b[20:]))
	rest := body[ckHeaderBytes:]
	if ne > len(rest)/ckEntryBytes {
		return ck, errCheckpoint
	}
	ck.entries = make([]ckEntry, ne)
	for i := range ck.entries {
		e := rest[i*ckEntryBytes:]
		ck.entries[i] = ckEntry{
			key:      be.Uint32(e[0:]),
			base:     int64(be.Uint64(e[4:])),
			last:     int64(be.Uint64(e[12:])),
			pos:      int64(be.Uint64(e[20:])),
			length:   int64(be.Uint32(e[28:])),
			maxTs:    int64(be.Uint64(e[32:])),
			maxTsOff: int64(be.Uint64(e[40:])),
		}
	}
	rest = rest[ne*ckEntryBytes:]
	if version >= 2 {
		if len(rest) < 4 {
			return ck, errCheckpoint
		}
		na := int(be.Uint32(rest))
		if na > (len(rest)-4)/ckAbortedBytes {
			return ck, errCheckpoint
		}
		n := 4 + na*ckAbortedBytes
		var err error
		if ck.aborted, err = decodeAborted(rest[:n]); err != nil {
			return ck, err
		}
		rest = rest[n:]
	}
	var err error
	ck.producers, err = decodeProducers(rest, np)
	if err != nil {
		return ck, errCheckpoint
	}
	return ck, nil
}
