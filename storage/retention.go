package storage

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Retention and local segment freeing. Two goroutines, started by Open and
// stopped by Close:
//
//   - retention: every RetentionCheckInterval, moves each partition's log
//     start past what retention.ms and retention.bytes let go (whole chunks
//     locally, whole objects in the tier), persists all moves with records in
//     the metadata log, calls Cold.Retain, then runs a freeing pass.
//   - freer: runs a freeing pass when kicked (maybeFree: DeleteTopic, a new
//     index checkpoint, Uploaded, a writer at the MaxWALBytes cap).
//
// A freeing pass deletes sealed segments none of whose chunks is needed
// locally (see segFree). Before unlinking it raises the affected
// partitions' next_min in the metadata log past the deleted chunks and trims
// their chunk indexes, so readers never reach the segment again; readers
// that already hold it keep the open file (the last Release closes it).
// Nothing opens a segment by path after recovery.

// Retention defaults (Kafka's log.retention.*).
const (
	DefaultRetentionCheckInterval = 5 * time.Minute
	DefaultRetentionMs            = 7 * 24 * 60 * 60 * 1000
	DefaultHotBytes               = 1 << 30
	// logFullEvery rate-limits the Error line for ErrLogFull.
	logFullEvery = 10 * time.Second
)

type maintenance struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // cap 1: run a freeing pass

	retMu  sync.Mutex // serialises retention passes
	passMu sync.Mutex // serialises freeing passes

	mu   sync.Mutex
	next chan struct{} // guarded by mu: closed when the next pass to start is done

	lastFullLog atomic.Int64 // unix nanos of the last ErrLogFull log line
	lastFull    atomic.Int64 // unix nanos of the last ErrLogFull (Health)
}

func (s *Store) startMaintenance() {
	m := &s.maint
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.kick = make(chan struct{}, 1)
	m.mu.Lock()
	m.next = make(chan struct{})
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-m.kick:
				s.freePass()
			}
		}
	}()
	if every := s.cfg.RetentionCheckInterval; every > 0 {
		s.runEvery(every, s.retentionPass)
	}
}

// runEvery runs pass every d on a goroutine of its own until the
// maintenance context ends.
func (s *Store) runEvery(d time.Duration, pass func(context.Context)) {
	m := &s.maint
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-t.C:
				pass(m.ctx)
			}
		}
	}()
}

// stopMaintenance cancels the passes (a Cold call in flight sees its
// context end) and waits for them.
func (s *Store) stopMaintenance() {
	if s.maint.cancel == nil {
		return
	}
	s.maint.cancel()
	s.maint.wg.Wait()
}

// maybeFree asks for a freeing pass. It never blocks.
func (s *Store) maybeFree() {
	select {
	case s.maint.kick <- struct{}{}:
	default: // one is pending already
	}
}

// freeSoon kicks a freeing pass and returns a channel closed once a pass
// that started after the call is done.
func (s *Store) freeSoon() <-chan struct{} {
	m := &s.maint
	m.mu.Lock()
	ch := m.next
	m.mu.Unlock()
	s.maybeFree()
	return ch
}

// trimTo drops p's index entries wholly below offset (memory only: the
// segments stay until a freeing pass deletes them).
func (p *partition) trimTo(offset int64) {
	v := p.idx.view()
	if i := v.from(offset); i > v.first {
		p.idx.trim(i)
	}
}

// DeleteRecords moves the log start of a partition to offset (-1: the high
// watermark), never backwards, and persists it before returning the new
// log start (Kafka's low watermark). offset past the high watermark (or
// negative but -1) is ErrOffsetOutOfRange. With Config.Cold a moved log
// start is passed on to Cold.Retain.
func (s *Store) DeleteRecords(topic string, partition int32, offset int64) (int64, error) {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return -1, err
	}
	if p.failed.Load() {
		return -1, ErrStorage
	}
	hwm := p.hwm.Load()
	if offset == -1 {
		offset = hwm
	}
	if offset < 0 || offset > hwm {
		return -1, ErrOffsetOutOfRange
	}
	if err := s.setLogStarts([]startMove{{p, offset}}); err != nil {
		return -1, err
	}
	return p.logStart.Load(), nil
}

type startMove struct {
	p     *partition
	start int64
}

// setLogStarts persists the moves that advance a log start (records in
// the metadata log, whose size depends on the moves, not on the topic
// count), then publishes them, trims the indexes and tells Cold.
func (s *Store) setLogStarts(moves []startMove) error {
	var moved []startMove
	err := s.commit(func() (*metaWait, error) {
		if s.isClosed() {
			return nil, ErrClosed
		}
		var recs [][2]int64
		for _, mv := range moves {
			ref, ok := s.mstate.keys[mv.p.key]
			if !ok || mv.p.deleted.Load() || mv.start <= ref.part().LogStart {
				continue
			}
			recs = append(recs, [2]int64{int64(mv.p.key), mv.start})
			moved = append(moved, mv)
		}
		return s.changeMoves(opLogStarts, recs, func(*tableDraft) func() {
			for _, mv := range moved {
				// Only the committer moves a published log start: max
				// without a race.
				if mv.start > mv.p.logStart.Load() {
					mv.p.logStart.Store(mv.start)
				}
			}
			return nil
		})
	})
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			s.log.Error().Err(err).Msg("persisting log start offsets failed")
		}
		return err
	}
	for _, mv := range moved {
		mv.p.trimTo(mv.start)
		if s.cfg.Cold != nil {
			s.cfg.Cold.Retain(tierPart(mv.p), mv.start)
		}
	}
	if len(moved) > 0 {
		s.maybeFree()
	}
	return nil
}

// changeMoves queues moves (key, value) as records of op, at most
// maxMovesPerRecord each; apply runs with the last. metaMu must be held.
func (s *Store) changeMoves(op int, moves [][2]int64, apply func(*tableDraft) func()) (*metaWait, error) {
	var w *metaWait
	for len(moves) > 0 {
		n := min(len(moves), maxMovesPerRecord)
		var fn func(*tableDraft) func()
		if n == len(moves) {
			fn = apply
		}
		var err error
		if w, err = s.changeLocked(&metaRecord{Op: op, Moves: moves[:n]}, fn); err != nil {
			return nil, err
		}
		moves = moves[n:]
	}
	return w, nil
}

// topicLimit is an integer topic config, or def when unset or unparsable
// (the protocol layer validates configs).
func topicLimit(configs map[string]string, name string, def int64) int64 {
	if v, ok := configs[name]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return def
}

// deletePolicy reports whether a topic's cleanup.policy (its own, else the
// dynamic log.cleanup.policy, else Kafka's default delete) includes
// delete: as in Kafka, retention.ms and retention.bytes apply only then
// (a compact-only topic is only compacted, compact.go).
func (s *Store) deletePolicy(configs map[string]string) bool {
	return s.cleanupPolicyHas(configs, "delete")
}

// cleanupPolicyHas reports whether a topic's cleanup.policy (its own,
// else the dynamic log.cleanup.policy, else Kafka's default delete)
// includes policy.
func (s *Store) cleanupPolicyHas(configs map[string]string, policy string) bool {
	v, ok := configs["cleanup.policy"]
	if !ok {
		v, ok = s.brokerDefault("log.cleanup.policy")
	}
	if !ok {
		v = "delete"
	}
	return slices.ContainsFunc(strings.Split(v, ","), func(p string) bool {
		return strings.TrimSpace(p) == policy
	})
}

// retentionPass applies retention.ms and retention.bytes to every
// partition, then frees what it can.
func (s *Store) retentionPass(ctx context.Context) {
	s.maint.retMu.Lock()
	defer s.maint.retMu.Unlock()
	nowMs := s.now().UnixMilli()
	var moves []startMove
	var coldErrs int
	var coldErr error
	for _, t := range s.table.Load().byName {
		ms := topicLimit(t.info.Configs, "retention.ms", s.retentionDefault("log.retention.ms", s.cfg.RetentionMs))
		bytes := topicLimit(t.info.Configs, "retention.bytes", s.retentionDefault("log.retention.bytes", s.cfg.RetentionBytes))
		if (ms < 0 && bytes < 0) || !s.deletePolicy(t.info.Configs) {
			continue
		}
		for _, p := range t.parts {
			if p.failed.Load() || p.deleted.Load() {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			start, err := s.retainedStart(ctx, p, nowMs, ms, bytes)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				coldErrs, coldErr = coldErrs+1, err
				continue
			}
			if start > p.logStart.Load() {
				moves = append(moves, startMove{p, start})
			}
		}
	}
	if coldErrs > 0 {
		s.log.Warn().Err(coldErr).Int("partitions", coldErrs).Msg("retention: tiered manifests unavailable; those partitions wait for the next pass")
	}
	if len(moves) > 0 {
		if err := s.setLogStarts(moves); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Warn().Err(err).Msg("retention: log start offsets not moved")
		}
	}
	s.freePass()
}

// retUnit is what retention removes at once: a tiered object or a local
// chunk.
type retUnit struct {
	last, maxTs, bytes int64
}

// retainedStart computes p's log start under retention: past every unit
// (from the log start on, tiered first) whose max timestamp is older than
// nowMs-ms, stopping at the first that is not, then past the oldest units
// while the rest would still hold at least bytes. Never past the high
// watermark.
// It fails only when the tier cannot be asked.
func (s *Store) retainedStart(ctx context.Context, p *partition, nowMs, ms, bytes int64) (int64, error) {
	start := p.logStart.Load()
	hwm := p.hwm.Load()
	v := p.idx.view()
	local := localStart(v, hwm)
	var units []retUnit
	var tierBytes int64
	if s.cfg.Cold != nil && start < local {
		m, err := s.cfg.Cold.Manifest(ctx, tierPart(p))
		if err != nil {
			return start, err
		}
		if m != nil {
			for _, o := range m.Objects {
				if o.LastOffset < start {
					continue
				}
				if o.BaseOffset >= local {
					break
				}
				units = append(units, retUnit{last: o.LastOffset, maxTs: o.MaxTimestamp, bytes: o.Size})
				tierBytes += o.Size
			}
		}
	}
	// A compacted file's runs (compact.go) come before the WAL's chunks
	// above its cleaned end (cleanup.policy=compact,delete).
	localFrom := start
	if c := p.comp.Load(); c != nil && s.cfg.Cold == nil {
		for _, e := range c.entries[c.from(start):] {
			units = append(units, retUnit{last: e.last, maxTs: e.maxTs, bytes: e.length})
			tierBytes += e.length
		}
		localFrom = max(localFrom, c.end)
	}
	// Local chunks from the one holding localFrom on, read lazily:
	// retention usually drops a few old ones.
	if len(units) > 0 {
		localFrom = max(localFrom, units[len(units)-1].last+1)
	}
	i := v.from(localFrom)
	var localBytes int64
	if i < v.n {
		localBytes = v.at(v.n-1).cumBytes - v.at(i).cumBytes + v.at(i).length
	}
	k := 0 // next tiered unit; then local chunk i
	peek := func() (retUnit, bool) {
		if k < len(units) {
			return units[k], true
		}
		if i < v.n {
			e := v.at(i)
			return retUnit{last: e.last, maxTs: e.maxTs, bytes: e.length}, true
		}
		return retUnit{}, false
	}
	pop := func() {
		if k < len(units) {
			k++
		} else {
			i++
		}
	}
	total := tierBytes + localBytes
	newStart := start
	if ms >= 0 {
		cutoff := nowMs - ms
		for {
			u, ok := peek()
			if !ok || u.maxTs >= cutoff || u.last >= hwm {
				break
			}
			pop()
			newStart, total = u.last+1, total-u.bytes
		}
	}
	if bytes >= 0 {
		// As Kafka: drop the oldest while what remains still holds at
		// least retention.bytes, so the log never shrinks below it.
		for {
			u, ok := peek()
			if !ok || u.last >= hwm || total-u.bytes < bytes {
				break
			}
			pop()
			newStart, total = u.last+1, total-u.bytes
		}
	}
	return newStart, nil
}

// freePass deletes the sealed segments that are no longer needed locally
// (see segFree): those whose chunks are all below their partitions' log
// starts or belong to deleted partitions; with Cold, also uploaded ones,
// oldest first, while the WAL holds more than HotBytes (or a new segment
// would pass MaxWALBytes).
func (s *Store) freePass() {
	m := &s.maint
	m.passMu.Lock()
	defer m.passMu.Unlock()
	m.mu.Lock()
	done := m.next
	m.next = make(chan struct{})
	m.mu.Unlock()
	defer close(done)
	if s.isClosed() && m.ctx.Err() != nil {
		return
	}

	type cand struct {
		sh  *shard
		seg *segment
	}
	var free, hot []cand
	s.metaMu.Lock()
	for _, sh := range s.shards {
		if sh.failed.Load() {
			continue
		}
		sh.segsMu.Lock()
		// A segment goes only while a newer one has its checkpoint on
		// disk: that checkpoint carries the producer state recovery would
		// otherwise have read from the deleted ones.
		var newestCk uint64
		for _, seg := range sh.segs {
			if seg.sealed && seg.ckDone.Load() {
				newestCk = max(newestCk, seg.id)
			}
		}
		for _, seg := range sh.segs {
			if !seg.sealed || seg.id >= newestCk {
				continue
			}
			switch s.segFree(seg) {
			case freeNow:
				free = append(free, cand{sh, seg})
			case freeHot:
				hot = append(hot, cand{sh, seg})
			}
		}
		sh.segsMu.Unlock()
	}
	total := s.walBytes.Load()
	for _, c := range free {
		total -= c.seg.size
	}
	// Oldest first across shards: segment ids grow at similar rates.
	slices.SortStableFunc(hot, func(a, b cand) int { return cmp.Compare(a.seg.id, b.seg.id) })
	for _, c := range hot {
		if total <= s.cfg.HotBytes && !s.overCap(total) {
			break
		}
		free = append(free, c)
		total -= c.seg.size
	}
	if len(free) == 0 {
		s.metaMu.Unlock()
		return
	}

	// next_min first: once a segment is gone, recovery must neither
	// restart a partition below its chunks nor take the gap they leave
	// for corruption.
	var recs [][2]int64
	var trims []startMove
	for _, c := range free {
		for _, k := range c.seg.keys {
			p := s.byKey[k.key]
			if p == nil {
				continue
			}
			trims = append(trims, startMove{p, k.last + 1})
			if k.last+1 > p.nextMin {
				recs = append(recs, [2]int64{int64(k.key), k.last + 1})
			}
		}
	}
	w, err := s.changeMoves(opNextMins, recs, func(*tableDraft) func() {
		for _, t := range trims {
			t.p.nextMin = max(t.p.nextMin, t.start)
		}
		return nil
	})
	s.metaMu.Unlock()
	if err == nil && w != nil {
		err = <-w.done
	}
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			s.log.Error().Err(err).Msg("persisting metadata before deleting segments failed; nothing deleted")
		}
		return
	}

	// Readers find chunks through the indexes only: after the trim no new
	// read reaches these segments.
	for _, t := range trims {
		t.p.trimTo(t.start)
	}
	dirs := map[*shard]bool{}
	for _, c := range free {
		c.sh.segsMu.Lock()
		c.sh.segs = slices.DeleteFunc(c.sh.segs, func(x *segment) bool { return x == c.seg })
		c.sh.segsMu.Unlock()
		c.seg.deleted.Store(true)
		// The .wal first: an .idx left without it is removed on open.
		err := s.fs.Remove(c.seg.path)
		if err == nil {
			if err = s.fs.Remove(idxPath(c.sh.dir, c.seg.id)); errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		}
		if err != nil {
			s.log.Warn().Err(err).Str("segment", c.seg.path).Msg("deleting WAL segment failed")
		}
		s.walBytes.Add(-c.seg.size)
		s.stats.segsDeleted.Add(1)
		// Space was freed: the WAL is no longer stuck at its cap (Health),
		// even if the next segment takes it back to the cap exactly.
		s.maint.lastFull.Store(0)
		c.seg.release()
		dirs[c.sh] = true
		s.log.Debug().Str("segment", c.seg.path).Msg("WAL segment deleted")
	}
	for sh := range dirs {
		if err := s.fs.SyncDir(sh.dir); err != nil {
			s.log.Warn().Err(err).Str("dir", sh.dir).Msg("syncing WAL directory after deletions failed")
		}
	}
}

type freeKind uint8

const (
	freeNever freeKind = iota
	freeNow            // every chunk below its log start, or of a deleted partition
	freeHot            // some chunks only uploaded: may go under HotBytes pressure
)

// segFree says whether seg may be deleted. metaMu and the shard's segsMu
// are held.
func (s *Store) segFree(seg *segment) freeKind {
	kind := freeNow
	for _, k := range seg.keys {
		p := s.byKey[k.key]
		switch {
		case p == nil || p.deleted.Load():
		case p.failed.Load():
			return freeNever // keep its data for the operator
		case k.last < p.logStart.Load():
		case k.last < p.cleanedEnd():
		case s.cfg.Cold != nil && k.last < p.tieredEnd.Load():
			kind = freeHot
		default:
			return freeNever
		}
	}
	return kind
}

// overCap reports whether one more segment would take WAL bytes past
// MaxWALBytes.
func (s *Store) overCap(walBytes int64) bool {
	return s.cfg.MaxWALBytes > 0 && walBytes+s.cfg.SegmentBytes > s.cfg.MaxWALBytes
}

// walRoom is called by a shard's writer before it rolls: at the
// MaxWALBytes cap it waits for one freeing pass and fails with ErrLogFull
// when that freed too little. The writer may wait; Append never does.
func (s *Store) walRoom(sh *shard) error {
	if !s.overCap(s.walBytes.Load()) {
		return nil
	}
	select {
	case <-s.freeSoon():
	case <-sh.stop:
		return ErrClosed
	}
	if !s.overCap(s.walBytes.Load()) {
		return nil
	}
	s.stats.logFull.Add(1)
	now := time.Now().UnixNano()
	s.maint.lastFull.Store(now)
	last := s.maint.lastFullLog.Load()
	if now-last >= int64(logFullEvery) && s.maint.lastFullLog.CompareAndSwap(last, now) {
		s.log.Error().Int64("wal_bytes", s.walBytes.Load()).Int64("max_wal_bytes", s.cfg.MaxWALBytes).
			Msg("WAL at MaxWALBytes and no segment can be freed: appends fail until retention, DeleteRecords or uploads free space")
	}
	return ErrLogFull
}
