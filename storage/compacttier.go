package storage

import (
	"context"
	"errors"
	"math"

	"github.com/klite/klite/tier"
)

// Compaction of tiered data (Config.Cold): see doc.go ("Compaction of
// tiered data"). The bucket's copy of a compacted topic's partition is
// cleaned; the local WAL is not (it keeps only -wal-hot-bytes of uploaded
// data anyway). Compaction only removes records, never changes one at an
// offset, so the WAL's uncompacted copy and the bucket's compacted copy
// of the same offsets are both valid views and reads may mix them.

// ColdCompactor is what compaction of tiered data needs of a ColdLog
// beyond reads; tier.Cold implements it. With a ColdLog that does not,
// compacted topics keep their whole tiered history.
type ColdCompactor interface {
	// ObjectData returns the batches of m's object i, all checked, in
	// dst's memory (grown as needed).
	ObjectData(ctx context.Context, m *tier.Manifest, i int, dst []byte) ([]byte, error)
	// CleanOrphans deletes what a crashed cleaning left in the bucket
	// (cheap once done: it runs once per partition after start and after
	// failures).
	CleanOrphans(ctx context.Context, p tier.Partition) error
	// Rewrite starts replacing [m.LogStartOffset, end) of p's tiered log
	// (end an object boundary of m) by the batches added to it.
	Rewrite(ctx context.Context, p tier.Partition, m *tier.Manifest, end int64) (*tier.Rewrite, error)
}

// compactTiered cleans p's tiered log when its dirty part warrants it.
// The manifest's objects are a cleaned prefix (Gen > 0, written by earlier
// cleanings) followed by objects as uploaded (Gen 0). Dirty are the Gen 0
// objects from the cleaned end on wholly below the last stable offset and
// older than min.compaction.lag.ms; the offset map covers them object by
// object until it holds CompactionMapKeys keys, and [log start, end of the
// last dirty object taken) is rewritten through cleanBatch.
func (s *Store) compactTiered(ctx context.Context, p *partition, lim compactLimits, th *compThrottle) error {
	cc, ok := s.cfg.Cold.(ColdCompactor)
	if !ok {
		return nil
	}
	nowMs := s.now().UnixMilli()
	tp := tierPart(p)
	mctx, cancel := context.WithTimeout(ctx, coldReadTimeout)
	m, err := s.cfg.Cold.Manifest(mctx, tp)
	cancel()
	if err != nil || m == nil || len(m.Objects) == 0 {
		return err
	}
	if err := cc.CleanOrphans(ctx, tp); err != nil {
		return err
	}
	logStart := max(p.logStart.Load(), m.LogStartOffset)
	lso := p.lso(logStart, p.hwm.Load())

	nClean := 0
	var cleanBytes, dirtyBytes int64
	tombsDue := false
	for nClean < len(m.Objects) && m.Objects[nClean].Gen > 0 {
		o := &m.Objects[nClean]
		cleanBytes += o.DataBytes
		tombsDue = tombsDue || (o.CleanedAt >= 0 && tombstoneExpired(o.CleanedAt, lim.deleteRetentionMs, nowMs))
		nClean++
	}
	nDirty := nClean
	for nDirty < len(m.Objects) {
		o := &m.Objects[nDirty]
		if o.Gen > 0 || o.LastOffset >= lso || (lim.minLagMs > 0 && o.MaxTimestamp > nowMs-lim.minLagMs) {
			break
		}
		dirtyBytes += o.DataBytes
		nDirty++
	}
	dirty := m.Objects[nClean:nDirty]
	due := len(dirty) > 0 && float64(dirtyBytes) >= lim.minRatio*float64(cleanBytes+dirtyBytes)
	if len(dirty) > 0 && lim.maxLagMs < math.MaxInt64 && dirty[0].MaxTimestamp <= nowMs-lim.maxLagMs {
		due = true
	}
	if !due && !tombsDue {
		return nil
	}

	// The offset map over the dirty objects, object by object, until it
	// holds CompactionMapKeys keys.
	cs := &s.comp
	latest := map[keyHash]int64{}
	sc := &compScratch{}
	// Aborted transactions over the whole range that can be cleaned
	// (m.Objects[nDirty-1] exists: due or tombsDue).
	if p.deleted.Load() {
		return errCompactDeleted
	}
	isAborted, err := s.abortedIn(p, m.Objects[0].BaseOffset, m.Objects[nDirty-1].LastOffset+1)
	if err != nil {
		return err
	}
	var buf []byte // one object's data at a time
	take := 0
	for k := range dirty {
		if k > 0 && len(latest) >= s.cfg.CompactionMapKeys {
			break
		}
		if p.deleted.Load() {
			return errCompactDeleted
		}
		data, err := s.coldObject(ctx, cc, m, nClean+k, th, buf)
		if err != nil {
			return err
		}
		buf = data
		if err := cs.mapKeys(latest, data, logStart, isAborted, sc); err != nil {
			return err
		}
		take = k + 1
	}
	n := nClean + take
	if n == 0 {
		return nil
	}
	end := m.Objects[n-1].LastOffset + 1
	if logStart >= end {
		return nil // retention drops it all
	}
	w, err := cc.Rewrite(ctx, tp, m, end)
	if err != nil {
		return err
	}
	var in, kept, removed int64
	for i := range n {
		o := &m.Objects[i]
		if o.LastOffset < logStart {
			continue
		}
		if p.deleted.Load() {
			w.Abort(ctx)
			return errCompactDeleted
		}
		data, err := s.coldObject(ctx, cc, m, i, th, buf)
		if err != nil {
			w.Abort(ctx)
			return err
		}
		buf = data
		in += int64(len(data))
		// Tombstones of an uploaded object are cleaned now; those of a
		// cleaned one keep the clock of the cleaning that first wrote them
		// (tier.ObjectRef.CleanedAt) and go once it is past
		// delete.retention.ms.
		clock := nowMs
		dropTombs := false
		if o.Gen > 0 {
			clock = o.CleanedAt
			dropTombs = clock >= 0 && tombstoneExpired(clock, lim.deleteRetentionMs, nowMs)
		}
		err = eachBatch(data, func(batch []byte, h *BatchHeader) error {
			last := h.BaseOffset + int64(h.LastOffsetDelta)
			// The range's last batch is always kept (whole if cleaning
			// would empty it): a read in a gap then always finds a later
			// batch in the bucket, and the tiered end stays an offset the
			// bucket holds.
			isEnd := last == end-1
			if last < logStart {
				removed += int64(max(h.NumRecords, 0))
				return nil
			}
			if h.Control() || (isEnd && isAborted(h)) {
				kept += int64(len(batch))
				return w.Add(ctx, batch, -1)
			}
			if isAborted(h) {
				removed += int64(max(h.NumRecords, 0))
				return nil
			}
			out, tombs, nk, err := s.cleanBatch(batch, h, latest, dropTombs, sc)
			if err != nil {
				return err
			}
			if out == nil && isEnd {
				// Kept whole. Its tombstones get the object's clock unless
				// that expired: they then stay (legal: at least
				// delete.retention.ms) without making every later pass due.
				out, nk = batch, h.NumRecords
				tombs = !dropTombs && batchHasTombstone(batch, h, sc)
			}
			removed += int64(h.NumRecords - nk)
			if out == nil {
				return nil
			}
			kept += int64(len(out))
			c := int64(-1)
			if tombs {
				c = clock
			}
			return w.Add(ctx, out, c)
		})
		if err != nil {
			w.Abort(ctx)
			return err
		}
	}
	put, deleted, err := w.Commit(ctx)
	if errors.Is(err, tier.ErrRewriteStale) {
		return nil // retention or a deletion got there first; the next pass looks again
	}
	if err != nil {
		return err
	}
	cs.runs.Add(1)
	cs.tieredRuns.Add(1)
	cs.bytesIn.Add(in)
	cs.bytesOut.Add(kept)
	cs.removed.Add(removed)
	cs.tieredPut.Add(put)
	cs.tieredDeleted.Add(deleted)
	s.log.Debug().Str("topic", p.t.info.Name).Int32("partition", p.num).Int64("offset", end).
		Int64("bytes_in", in).Int64("bytes_out", kept).Int64("records_removed", removed).
		Int64("bucket_bytes_put", put).Int64("bucket_bytes_deleted", deleted).Msg("tiered partition compacted")
	return nil
}

// coldObject reads m's object i through the compaction throttle.
func (s *Store) coldObject(ctx context.Context, cc ColdCompactor, m *tier.Manifest, i int, th *compThrottle, dst []byte) ([]byte, error) {
	if err := th.wait(ctx, m.Objects[i].DataBytes); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, coldReadTimeout)
	defer cancel()
	return cc.ObjectData(rctx, m, i, dst)
}

// abortedIn returns whether a batch of p in [from, to) belongs to an
// aborted transaction.
func (s *Store) abortedIn(p *partition, from, to int64) (func(h *BatchHeader) bool, error) {
	var as []AbortedTxn
	if t := p.txns.Load(); t != nil {
		var err error
		if as, err = s.AbortedTxns(p.t.info.Name, p.num, from, to); err != nil {
			return nil, err
		}
	}
	return abortedFunc(as), nil
}

// batchHasTombstone says whether batch holds a keyed record with a null
// value (false when its records cannot be decoded).
func batchHasTombstone(batch []byte, h *BatchHeader, sc *compScratch) bool {
	recs, err := batchRecords(batch, h, sc.recs)
	if err != nil {
		return false
	}
	if h.Compression() != codecNone {
		sc.recs = recs
	}
	found := false
	_ = eachRecord(recs, h.NumRecords, func(r *rawRecord) {
		found = found || (r.key != nil && r.nullValue)
	})
	return found
}
