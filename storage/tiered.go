package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

// Tiering: the store as the uploader's tier.Source, and cold reads through
// Config.Cold for offsets the WAL no longer holds. See Sealed, Uploaded,
// Store (log start) and tier/doc.go.
//
// Chunk boundaries: the uploader continues a partition's tiered log exactly
// at its manifest's NextOffset and refuses chunks that start elsewhere
// (tier.ErrGap). When everything in the bucket came from this store,
// NextOffset is the end of a chunk Sealed returned, so the next chunk
// starts there; after Restore the WAL starts at NextOffset. Sealed still
// copes with a from inside a chunk (a manifest written by another store):
// it returns the rest of that chunk from the batch holding from.
//
// Nothing below the log start is offered: a from below it (the tier's end
// lags a DeleteRecords or retention that ran within one flush interval, a
// Restore past the tier's end, a Retain lost to a crash) is raised to it,
// and Sealed asks Cold.Retain(logStart) again. Retain past the tier's end
// restarts the tiered log empty at the log start; until that runs, a
// tiered log with objects refuses the later chunks (tier.ErrGap, one
// round), an empty one starts at them. A move racing Sealed may still let
// data just below the new log start through: the Retain the move queued
// trims it.

// coldReadTimeout bounds one cold read or timestamp lookup (object store
// round trips with the tier's own retries).
const coldReadTimeout = 30 * time.Second

func tierPart(p *partition) tier.Partition {
	return tier.Partition{Topic: p.t.info.Name, TopicID: p.t.info.ID, Partition: p.num}
}

// lookupTier finds p's partition; its topic must still be the one with p's ID.
func (s *Store) lookupTier(tp tier.Partition) (*partition, error) {
	t := s.table.Load().byID[TopicID(tp.TopicID)]
	if t == nil || t.info.Name != tp.Topic || tp.Partition < 0 || tp.Partition >= int32(len(t.parts)) {
		return nil, ErrUnknownTopic
	}
	return t.parts[tp.Partition], nil
}

// localStart is the first offset p's WAL holds: the first live chunk's
// base, or hwm when no chunk is live (everything below it is tiered or
// gone).
func localStart(v indexView, hwm int64) int64 {
	if v.first < v.n {
		return v.at(v.first).base
	}
	return hwm
}

// LocalStart returns the first offset of p the WAL holds: Kafka's local
// log start offset (KIP-405; ListOffsets -4). It is never below the log
// start, and is the high watermark when the WAL holds nothing of p
// (everything below is tiered or deleted), as Kafka's is the base of its
// empty active segment then. Without Config.Cold it is the log start, as
// in Kafka without remote storage.
func (s *Store) LocalStart(topic string, partition int32) (int64, error) {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return -1, err
	}
	if p.failed.Load() {
		return -1, ErrStorage
	}
	// Log start, then hwm, then the index (as Read): every chunk below
	// hwm is in the view, and the log start never passes that hwm.
	logStart := p.logStart.Load()
	if s.cfg.Cold == nil {
		return logStart, nil
	}
	hwm := p.hwm.Load()
	return max(localStart(p.idx.view(), hwm), logStart), nil
}

// Partitions lists every partition of every topic (tier.Source).
func (s *Store) Partitions() []tier.Partition {
	tab := s.table.Load()
	var out []tier.Partition
	for _, t := range tab.byName {
		for _, p := range t.parts {
			if !p.failed.Load() && !p.deleted.Load() {
				out = append(out, tierPart(p))
			}
		}
	}
	slices.SortFunc(out, func(a, b tier.Partition) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

// Sealed appends to dst p's chunks from the one holding from (from the one
// holding the log start when from is below it, see the file comment; from
// the first one the WAL holds when from is below that) that lie wholly
// below the high watermark: fsynced, never changing again, the active
// segment's included. They are contiguous and total about maxBytes (at
// least one chunk). release unpins their segments; until then they are
// not closed. A from inside a chunk yields the rest of that chunk from the
// batch holding from. Since the active segment's fsynced chunks count, the
// uploader's flush interval bounds how long data is local-only.
func (s *Store) Sealed(tp tier.Partition, from, maxBytes int64, dst []tier.SourceChunk) ([]tier.SourceChunk, func(), error) {
	p, err := s.lookupTier(tp)
	if err != nil {
		return dst, nil, err
	}
	if p.failed.Load() {
		return dst, nil, ErrStorage
	}
	hwm := p.hwm.Load() // first: every chunk below it is already in the index
	if ls := p.logStart.Load(); from < ls {
		if s.cfg.Cold != nil {
			s.cfg.Cold.Retain(tp, ls) // coalesced with any pending one; returns at once
		}
		from = ls
	}
	v := p.idx.view()
	i := v.from(from) // v.first when from is below the WAL
	var pins pinSet
	release := pins.release
	var total int64
	n0 := len(dst)
	for ; i < v.n && (len(dst) == n0 || total < maxBytes); i++ {
		e := v.at(i)
		if e.last >= hwm {
			break
		}
		if e.length > math.MaxInt32 { // SourceChunk.Len; only a segment over 2 GiB allows it
			release()
			return dst[:n0], nil, fmt.Errorf("%w: chunk [%d, %d] of %d bytes is too large to tier", ErrStorage, e.base, e.last, e.length)
		}
		if !pins.hold(e.seg) {
			// The segment is being deleted (its chunks are below the log
			// start or already tiered): what follows does not continue
			// what came before; start after it if nothing is taken yet.
			if len(dst) == n0 {
				continue
			}
			break
		}
		c := tier.SourceChunk{BaseOffset: e.base, LastOffset: e.last, MaxTimestamp: e.maxTs,
			MaxTimestampOffset: e.maxTsOff, File: e.seg.f, Pos: e.pos, Len: int32(e.length)}
		if len(dst) == n0 && from > e.base {
			if c, err = chunkFrom(e, from); err != nil {
				release()
				return dst[:n0], nil, err
			}
		}
		dst = append(dst, c)
		total += int64(c.Len)
	}
	if len(dst) == n0 {
		release()
		return dst, func() {}, nil
	}
	var once sync.Once
	return dst, func() { once.Do(release) }, nil
}

// chunkFrom returns the part of e from the batch holding from on, with its
// offsets and max timestamp read from the batch headers. from must lie in e.
func chunkFrom(e *chunkEntry, from int64) (tier.SourceChunk, error) {
	c := tier.SourceChunk{LastOffset: e.last, MaxTimestamp: -1, MaxTimestampOffset: -1, File: e.seg.f}
	found := false
	err := walkHeld(e, func(pos int64, bh *BatchHeader) bool {
		if !found && bh.BaseOffset+int64(bh.LastOffsetDelta) >= from {
			found = true
			c.BaseOffset, c.Pos = bh.BaseOffset, pos
		}
		if found && (c.MaxTimestampOffset < 0 || bh.MaxTimestamp > c.MaxTimestamp) {
			c.MaxTimestamp, c.MaxTimestampOffset = bh.MaxTimestamp, bh.BaseOffset
		}
		return true
	})
	if err != nil {
		return c, err
	}
	if !found {
		return c, errBatchWalk
	}
	c.Len = int32(e.end() - c.Pos)
	return c, nil
}

// Uploaded records that p's offsets below end are in the bucket under a
// published manifest (tier.Source). The tiered end never decreases; it is
// not persisted: after a restart the uploader loads each manifest and
// reports its NextOffset before anything it covers is freed.
func (s *Store) Uploaded(tp tier.Partition, end int64) {
	p, err := s.lookupTier(tp)
	if err != nil {
		return
	}
	for {
		old := p.tieredEnd.Load()
		if end <= old {
			return
		}
		if p.tieredEnd.CompareAndSwap(old, end) {
			break
		}
	}
	s.maybeFree()
}

// coldBytes is a cold read's bytes as a ReadFile: no descriptor, so netloop
// writes it instead of using sendfile.
type coldBytes []byte

func (m coldBytes) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("storage: negative offset")
	}
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(b, m[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (coldBytes) Fd() uintptr { return vfs.NoFd }

// readCold serves a read below the WAL's first offset from Config.Cold:
// one in-memory chunk of whole batches from the one holding offset. The
// batches may run past the local start; the consumer's next fetch then
// continues locally. A failure is ErrStorage (KAFKA_STORAGE_ERROR, which
// clients retry) without failing the partition: the bucket may be back
// on the next try. Objects that retention removed meanwhile read as
// ErrOffsetOutOfRange, as locally; an object missing at or above the log
// start is ErrStorage (the bucket lost data: out of range would send
// clients to their reset policy, skipping or re-reading everything). The
// tier logs and counts each failure (tier.Cold.Stats).
// readCold reads from the tier; batches from end on (a read_committed
// read's last stable offset) are cut off.
func (s *Store) readCold(p *partition, res ReadResult, offset, maxBytes, end int64) ReadResult {
	res.LogStartOffset = p.logStart.Load()
	if offset < res.LogStartOffset {
		res.Err = ErrOffsetOutOfRange
		return res
	}
	ctx, cancel := context.WithTimeout(context.Background(), coldReadTimeout)
	defer cancel()
	b, err := s.cfg.Cold.Read(ctx, tierPart(p), offset, maxBytes)
	if err != nil {
		res.Err = s.coldErr(p, offset, err)
		return res
	}
	if len(b) == 0 {
		res.Err = fmt.Errorf("%w: tier returned nothing at %d", ErrStorage, offset)
		return res
	}
	if len(b) >= batchBaseOffsetAt+8 && int64(binary.BigEndian.Uint64(b[batchBaseOffsetAt:])) >= end {
		// Compacted away up to end (the next surviving batch is past a
		// read_committed read's last stable offset): nothing to return.
		return res
	}
	b = cutBatchesAt(b, end)
	res.Chunks = []Chunk{{File: coldBytes(b), Off: 0, Len: int64(len(b))}}
	res.Bytes = int64(len(b))
	s.stats.reads.Add(1)
	s.stats.readBytes.Add(res.Bytes)
	p.bytesOut.Add(res.Bytes)
	return res
}

// cutBatchesAt returns the whole batches of b that start below end (at
// least the first).
func cutBatchesAt(b []byte, end int64) []byte {
	n := 0
	for rest := b; len(rest) > 0; {
		batch, next, err := NextBatch(rest)
		if err != nil {
			break
		}
		if n > 0 && int64(binary.BigEndian.Uint64(batch[batchBaseOffsetAt:])) >= end {
			break
		}
		n += len(batch)
		rest = next
	}
	if n == 0 {
		return b
	}
	return b[:n]
}

func (s *Store) coldErr(p *partition, offset int64, err error) error {
	// The log start is read after the failure: a retention that raced the
	// read moved it first (storage moves it before the tier deletes).
	if (errors.Is(err, tier.ErrNotFound) || errors.Is(err, tier.ErrNotTiered)) && offset < p.logStart.Load() {
		return ErrOffsetOutOfRange
	}
	return fmt.Errorf("%w: tier: %v", ErrStorage, err)
}

// coldOffsetForTime looks ts up in the tier for a partition whose log
// starts below its WAL. found is false when the answer lies in the WAL.
// An offset below the log start (the tier trims after storage) is raised
// to it, as Kafka does.
func (s *Store) coldOffsetForTime(p *partition, ts, local int64) (off, tsOut int64, found bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), coldReadTimeout)
	defer cancel()
	off, tsOut, err = s.cfg.Cold.OffsetForTime(ctx, tierPart(p), ts)
	if err != nil {
		return -1, -1, false, fmt.Errorf("%w: tier: %v", ErrStorage, err)
	}
	if off < 0 || off >= local {
		return -1, -1, false, nil
	}
	return max(off, p.logStart.Load()), tsOut, true, nil
}

// coldMaxTimestamper is the ColdLog's exact answer for ListOffsets -3
// (tier.Cold implements it): the batch with the largest max timestamp at or
// above the tier's log start.
type coldMaxTimestamper interface {
	MaxTimestamp(ctx context.Context, p tier.Partition) (offset, timestamp int64, err error)
}

// coldMaxTimestamp returns the tier's batch with the largest max timestamp
// when it is larger than localTs (ties go to the earlier, tiered batch).
func (s *Store) coldMaxTimestamp(p *partition, localTs int64) (off, ts int64, found bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), coldReadTimeout)
	defer cancel()
	tp := tierPart(p)
	m, err := s.cfg.Cold.Manifest(ctx, tp)
	if err != nil {
		return -1, -1, false, fmt.Errorf("%w: tier: %v", ErrStorage, err)
	}
	if m == nil || len(m.Objects) == 0 {
		return -1, -1, false, nil
	}
	if mt, ok := s.cfg.Cold.(coldMaxTimestamper); ok {
		off, ts, err = mt.MaxTimestamp(ctx, tp)
	} else {
		// The manifest's maxima may count batches below the log start;
		// then the answer is the local one.
		best := m.Objects[0].MaxTimestamp
		for _, o := range m.Objects[1:] {
			best = max(best, o.MaxTimestamp)
		}
		off, ts, err = s.cfg.Cold.OffsetForTime(ctx, tp, best)
	}
	if err != nil {
		return -1, -1, false, fmt.Errorf("%w: tier: %v", ErrStorage, err)
	}
	if off < 0 || ts < localTs {
		return -1, -1, false, nil
	}
	return max(off, p.logStart.Load()), ts, true, nil
}
