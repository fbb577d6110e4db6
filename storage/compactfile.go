package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klite/klite/vfs"
)

// Compacted file (<Dir>/compacted/<key>-<gen>.klc): the cleaned prefix of
// one partition, below its cleaned end. Part of the on-disk format;
// big-endian:
//
//	header:  magic u32 "KLCF" | version u16 =2 | 0 u16 | partition key u32 |
//	         0 u32 | generation u64 | cleaned end i64            (32 bytes)
//	batches: record batches v2, offset order, each with its own CRC
//	index:   entries, each a run of batches of at most 64 KiB (or one
//	         batch) cleaned at the same time:
//	         base i64 | last i64 | pos i64 | maxTs i64 | maxTsOff i64 |
//	         cleanedAt i64 (unix ms) | length u32 | flags u32  (56 bytes)
//	         flags bit 0: the run holds a tombstone
//	         flags bit 1: the run holds only transaction markers whose
//	         transactions have no data left in the log; its cleanedAt is
//	         when a cleaning found that (the markers' delete horizon
//	         starts there, as KIP-534's does)
//	aborted: (version 2) count u32 | count x (pid i64 | first i64 | last i64):
//	         the aborted transactions whose ABORT markers the file holds,
//	         by marker offset: the partition's aborted-transaction index
//	         below the cleaned end (Kafka's cleaned .txnindex)
//	trailer: index position u64 | entries u32 | CRC-32C u32 of header,
//	         index and aborted section | magic u32 "KLCF"      (20 bytes)
//
// Version 1 (no aborted section, flag bit 1 never set) is still read: its
// files kept every marker, so the checkpoints' aborted index stands.
//
// The file is written as <name>.tmp, fsynced, renamed and its directory
// fsynced before anything relies on it, so a file under its final name is
// whole; one that does not verify is corruption.
const (
	compDirName        = "compacted"
	compSuffix         = ".klc"
	compMagic          = 0x4B4C4346 // "KLCF"
	compVersion        = 2
	compVersionV1      = 1 // read only
	compHeaderBytes    = 32
	compEntryBytes     = 56
	compTrailerBytes   = 20
	compAbortedBytes   = 24
	compRunBytes       = 64 << 10
	compFlagTombstones = 1
	compFlagMarkers    = 2
	compWriteBuf       = 1 << 20
)

var errCompFile = fmt.Errorf("%w: bad compacted file", ErrStorage)

// compMeta is what an index entry holds beyond a chunkEntry's fields.
type compMeta struct {
	cleanedAt int64 // when its batches were first cleaned (unix ms)
	flags     uint32
}

// compacted is a partition's published compacted file. Immutable once
// published; replaced whole by the next generation.
type compacted struct {
	gen     uint64
	end     int64    // cleaned end: offsets below it are read here, the rest from the WAL
	seg     *segment // the open file, reference counted like a WAL segment (id = gen)
	entries []chunkEntry
	meta    []compMeta
	bytes   int64 // batch bytes
	// aborted is the aborted-transaction index below end (version 2:
	// abortedKnown), by marker offset.
	aborted      []AbortedTxn
	abortedKnown bool
}

// from returns the first entry whose last offset is >= offset
// (len(entries) when none).
func (c *compacted) from(offset int64) int {
	lo, hi := 0, len(c.entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c.entries[m].last < offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// cleanedEnd is p's compacted file's cleaned end, 0 when it has none. One
// load: compaction may drop the file between two.
func (p *partition) cleanedEnd() int64 {
	if c := p.comp.Load(); c != nil {
		return c.end
	}
	return 0
}

// removalsDue says whether a tombstone or a transaction marker in c may be
// removed at nowMs under deleteRetentionMs.
func (c *compacted) removalsDue(deleteRetentionMs, nowMs int64) bool {
	for _, m := range c.meta {
		if m.flags&(compFlagTombstones|compFlagMarkers) != 0 && tombstoneExpired(m.cleanedAt, deleteRetentionMs, nowMs) {
			return true
		}
	}
	return false
}

// tombstoneExpired says whether a tombstone cleaned first at cleanedAt is
// past deleteRetentionMs at nowMs. As Kafka's delete horizon, it subtracts:
// cleanedAt+deleteRetentionMs would wrap for Long.MAX_VALUE ("keep them").
func tombstoneExpired(cleanedAt, deleteRetentionMs, nowMs int64) bool {
	return cleanedAt <= nowMs-max(deleteRetentionMs, 0)
}

func compName(key uint32, gen uint64) string {
	return fmt.Sprintf("%010d-%020d%s", key, gen, compSuffix)
}

// parseCompName returns the key and generation of a compacted file name.
func parseCompName(name string) (uint32, uint64, bool) {
	base, ok := strings.CutSuffix(name, compSuffix)
	if !ok {
		return 0, 0, false
	}
	k, g, ok := strings.Cut(base, "-")
	if !ok || len(k) != 10 || len(g) != segNameBase {
		return 0, 0, false
	}
	key, err1 := strconv.ParseUint(k, 10, 32)
	gen, err2 := strconv.ParseUint(g, 10, 64)
	return uint32(key), gen, err1 == nil && err2 == nil
}

// compWriter writes a compacted file sequentially.
type compWriter struct {
	f       vfs.File
	pos     int64 // file position after the buffered bytes
	buf     []byte
	entries []chunkEntry
	meta    []compMeta
	bytes   int64
	aborted []AbortedTxn // the aborted section, by marker offset
	hdr     [compHeaderBytes]byte
}

func newCompWriter(f vfs.File, key uint32, gen uint64, end int64) *compWriter {
	w := &compWriter{f: f, buf: make([]byte, 0, compWriteBuf)}
	be := binary.BigEndian
	be.PutUint32(w.hdr[0:], compMagic)
	be.PutUint16(w.hdr[4:], compVersion)
	be.PutUint32(w.hdr[8:], key)
	be.PutUint64(w.hdr[16:], gen)
	be.PutUint64(w.hdr[24:], uint64(end))
	w.buf = append(w.buf, w.hdr[:]...)
	w.pos = compHeaderBytes
	return w
}

func (w *compWriter) write(b []byte) error {
	if len(w.buf)+len(b) > cap(w.buf) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(b) > cap(w.buf) {
		_, err := w.f.WriteAt(b, w.pos)
		w.pos += int64(len(b))
		return err
	}
	w.buf = append(w.buf, b...)
	w.pos += int64(len(b))
	return nil
}

func (w *compWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.f.WriteAt(w.buf, w.pos-int64(len(w.buf)))
	w.buf = w.buf[:0]
	return err
}

// add appends one batch, cleaned first at cleanedAt; markersGone: a
// transaction marker without data left, found so at cleanedAt (such
// markers get runs of their own).
func (w *compWriter) add(batch []byte, h *BatchHeader, cleanedAt int64, tombstones, markersGone bool) error {
	last := h.BaseOffset + int64(h.LastOffsetDelta)
	n := len(w.entries)
	var kind uint32
	if markersGone {
		kind = compFlagMarkers
	}
	if n == 0 || w.meta[n-1].cleanedAt != cleanedAt || w.meta[n-1].flags&compFlagMarkers != kind ||
		w.entries[n-1].length+int64(len(batch)) > compRunBytes {
		w.entries = append(w.entries, chunkEntry{base: h.BaseOffset, pos: w.pos, maxTs: h.MaxTimestamp, maxTsOff: h.BaseOffset})
		w.meta = append(w.meta, compMeta{cleanedAt: cleanedAt, flags: kind})
		n++
	}
	e, m := &w.entries[n-1], &w.meta[n-1]
	e.last = last
	e.length += int64(len(batch))
	if h.MaxTimestamp > e.maxTs {
		e.maxTs, e.maxTsOff = h.MaxTimestamp, h.BaseOffset
	}
	if tombstones {
		m.flags |= compFlagTombstones
	}
	w.bytes += int64(len(batch))
	return w.write(batch)
}

// finish writes the index and trailer and fsyncs the file.
func (w *compWriter) finish() error {
	be := binary.BigEndian
	idxPos := w.pos
	idx := make([]byte, 0, len(w.entries)*compEntryBytes+4+len(w.aborted)*compAbortedBytes+compTrailerBytes)
	for i, e := range w.entries {
		idx = be.AppendUint64(idx, uint64(e.base))
		idx = be.AppendUint64(idx, uint64(e.last))
		idx = be.AppendUint64(idx, uint64(e.pos))
		idx = be.AppendUint64(idx, uint64(e.maxTs))
		idx = be.AppendUint64(idx, uint64(e.maxTsOff))
		idx = be.AppendUint64(idx, uint64(w.meta[i].cleanedAt))
		idx = be.AppendUint32(idx, uint32(e.length))
		idx = be.AppendUint32(idx, w.meta[i].flags)
	}
	idx = be.AppendUint32(idx, uint32(len(w.aborted)))
	for _, a := range w.aborted {
		idx = be.AppendUint64(idx, uint64(a.ProducerID))
		idx = be.AppendUint64(idx, uint64(a.FirstOffset))
		idx = be.AppendUint64(idx, uint64(a.LastOffset))
	}
	crc := crc32.Update(crc32.Checksum(w.hdr[:], castagnoli), castagnoli, idx)
	idx = be.AppendUint64(idx, uint64(idxPos))
	idx = be.AppendUint32(idx, uint32(len(w.entries)))
	idx = be.AppendUint32(idx, crc)
	idx = be.AppendUint32(idx, compMagic)
	if err := w.write(idx); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	return w.f.Sync()
}

// readCompacted opens a compacted file already opened as f and checks it
// belongs to key.
func readCompacted(f vfs.File, path string, key uint32) (*compacted, error) {
	be := binary.BigEndian
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size < compHeaderBytes+compTrailerBytes {
		return nil, errCompFile
	}
	var tr [compTrailerBytes]byte
	if _, err := f.ReadAt(tr[:], size-compTrailerBytes); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	idxPos, n := int64(be.Uint64(tr[0:])), int64(be.Uint32(tr[8:]))
	if be.Uint32(tr[16:]) != compMagic || idxPos < compHeaderBytes || idxPos+n*compEntryBytes+compTrailerBytes > size {
		return nil, errCompFile
	}
	var hdr [compHeaderBytes]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	version := be.Uint16(hdr[4:])
	idx := make([]byte, size-compTrailerBytes-idxPos)
	if _, err := f.ReadAt(idx, idxPos); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if crc32.Update(crc32.Checksum(hdr[:], castagnoli), castagnoli, idx) != be.Uint32(tr[12:]) ||
		be.Uint32(hdr[0:]) != compMagic || (version != compVersion && version != compVersionV1) || be.Uint32(hdr[8:]) != key {
		return nil, errCompFile
	}
	rest := idx[n*compEntryBytes:]
	var aborted []AbortedTxn
	switch {
	case version == compVersionV1 && len(rest) != 0:
		return nil, errCompFile
	case version == compVersion:
		if len(rest) < 4 {
			return nil, errCompFile
		}
		m := int64(be.Uint32(rest))
		rest = rest[4:]
		if int64(len(rest)) != m*compAbortedBytes {
			return nil, errCompFile
		}
		aborted = make([]AbortedTxn, m)
		for i := range aborted {
			b := rest[i*compAbortedBytes:]
			aborted[i] = AbortedTxn{ProducerID: int64(be.Uint64(b)), FirstOffset: int64(be.Uint64(b[8:])), LastOffset: int64(be.Uint64(b[16:]))}
		}
	}
	c := &compacted{gen: be.Uint64(hdr[16:]), end: int64(be.Uint64(hdr[24:])), aborted: aborted, abortedKnown: version == compVersion}
	for i, a := range aborted {
		if a.LastOffset >= c.end || a.FirstOffset > a.LastOffset || (i > 0 && a.LastOffset <= aborted[i-1].LastOffset) {
			return nil, errCompFile
		}
	}
	c.seg = newSegment(c.gen, path, f)
	c.entries = make([]chunkEntry, n)
	c.meta = make([]compMeta, n)
	prevEnd := int64(compHeaderBytes)
	for i := range c.entries {
		b := idx[i*compEntryBytes:]
		e := chunkEntry{
			base: int64(be.Uint64(b[0:])), last: int64(be.Uint64(b[8:])), pos: int64(be.Uint64(b[16:])),
			maxTs: int64(be.Uint64(b[24:])), maxTsOff: int64(be.Uint64(b[32:])),
			length: int64(be.Uint32(b[48:])), seg: c.seg,
		}
		if e.pos != prevEnd || e.length < BatchHeaderBytes || e.last < e.base || e.last >= c.end ||
			(i > 0 && e.base <= c.entries[i-1].last) {
			return nil, errCompFile
		}
		prevEnd = e.end()
		c.bytes += e.length
		c.entries[i] = e
		c.meta[i] = compMeta{cleanedAt: int64(be.Uint64(b[40:])), flags: be.Uint32(b[52:])}
	}
	if prevEnd != idxPos {
		return nil, errCompFile
	}
	return c, nil
}

func (s *Store) compPath(key uint32, gen uint64) string {
	return filepath.Join(s.cfg.Dir, compDirName, compName(key, gen))
}
