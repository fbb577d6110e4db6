package tier

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Rewrite replaces a prefix of a partition's tiered log by new, sparse
// (version 2) objects: how storage compacts tiered data. Compaction only
// removes records, never changes one at an offset, so a reader holding
// the old manifest and one holding the new read the same surviving
// records; new objects get keys no published manifest ever used
// (GenObjectKey with a new generation).
//
// The caller adds the surviving batches of [m.LogStartOffset, end) in
// offset order (Add); each object is put as soon as the next batch does
// not fit it (memory: one object), so objects stay about ObjectBytes.
// Commit then publishes, under the partition's upload lock, a manifest
// with the new objects in place of the old ones and deletes those. Between
// the puts and the publish nothing references the new objects: a crash
// leaves orphans, which the next Rewrite of the partition after a start
// (CleanOrphans) deletes, as it does objects a crash left between the
// publish and the deletes.
type Rewrite struct {
	u    *Uploader
	p    Partition
	st   *partState // p's state when the rewrite started: gone once p is forgotten
	base *Manifest  // the manifest the rewrite started from
	end  int64      // the replaced prefix is [base.LogStartOffset, end), end an object boundary
	gen  uint32

	objs []ObjectRef // put, in offset order
	cur  rwObject    // being filled
	done bool
}

// rwObject is the object a Rewrite is filling.
type rwObject struct {
	base    int64 // first offset the object covers
	data    []byte
	entries []IndexEntry
	clock   int64 // CleanedAt of its tombstones; -1: none yet
	maxTs   int64
}

// rewriteEntryBytes bounds the batches of one index entry of a rewritten
// object, so a cold read of one offset fetches about this much.
const rewriteEntryBytes = 1 << 20

// ErrRewriteStale: the partition's tiered log changed under a rewrite in a
// way it cannot be committed over (retention passed its end, or the
// objects it replaces are no longer those it read); nothing was published.
var ErrRewriteStale = errors.New("tier: rewrite: tiered log changed meanwhile")

// NewRewrite starts a rewrite of p's manifest m (as Manifest returned it)
// over [m.LogStartOffset, end); end must be the end of one of m's objects.
// Before p's first rewrite since this Uploader started, the orphans of an
// earlier crash are deleted (CleanOrphans).
func (u *Uploader) NewRewrite(ctx context.Context, p Partition, m *Manifest, end int64) (*Rewrite, error) {
	if m == nil || len(m.Objects) == 0 || m.Part != p {
		return nil, fmt.Errorf("tier: rewrite of %s/%d: no tiered objects", p.Topic, p.Partition)
	}
	n := 0
	var gen uint32
	for n < len(m.Objects) && m.Objects[n].LastOffset < end {
		gen = max(gen, m.Objects[n].Gen)
		n++
	}
	if n == 0 || m.Objects[n-1].LastOffset+1 != end {
		return nil, fmt.Errorf("tier: rewrite of %s/%d: %d is not an object boundary", p.Topic, p.Partition, end)
	}
	for _, o := range m.Objects[n:] {
		gen = max(gen, o.Gen)
	}
	if _, err := u.CleanOrphansOnce(ctx, p); err != nil {
		return nil, err
	}
	return &Rewrite{u: u, p: p, st: u.state(p), base: m, end: end, gen: gen + 1,
		cur: rwObject{base: m.Objects[0].BaseOffset, clock: -1, maxTs: -1}}, nil
}

// Add appends one batch (whole, its CRC valid, in offset order within
// [base log start, end)). cleanedAt is when the tombstones in it were
// first cleaned (unix ms), or -1 when it holds none; an object holds the
// tombstones of one cleanedAt only (delete.retention.ms is kept per
// object), so a different one starts a new object.
func (w *Rewrite) Add(ctx context.Context, batch []byte, cleanedAt int64) error {
	if w.done {
		return errors.New("tier: rewrite: Add after Commit")
	}
	if len(batch) < batchHeaderBytes {
		return fmt.Errorf("tier: rewrite: batch of %d bytes", len(batch))
	}
	base := int64(binary.BigEndian.Uint64(batch))
	last := base + int64(int32(binary.BigEndian.Uint32(batch[batchLastDeltaAt:])))
	if base < w.cur.base || last < base || last >= w.end || (len(w.cur.entries) > 0 && base <= w.cur.entries[len(w.cur.entries)-1].LastOffset) {
		return fmt.Errorf("tier: rewrite of %s/%d: batch [%d, %d] out of order", w.p.Topic, w.p.Partition, base, last)
	}
	c := &w.cur
	if len(c.entries) > 0 && (int64(len(c.data)+len(batch)) > w.u.cfg.ObjectBytes ||
		(cleanedAt >= 0 && c.clock >= 0 && cleanedAt != c.clock)) {
		if err := w.put(ctx, base-1); err != nil {
			return err
		}
	}
	ts := int64(binary.BigEndian.Uint64(batch[batchMaxTimestampAt:]))
	n := len(c.entries)
	if n == 0 || int64(c.entries[n-1].Len)+int64(len(batch)) > rewriteEntryBytes {
		eb := c.base
		if n > 0 {
			eb = c.entries[n-1].LastOffset + 1
		}
		c.entries = append(c.entries, IndexEntry{BaseOffset: eb, Pos: int64(len(c.data)), MaxTimestamp: ts, MaxTimestampOffset: base})
		n++
	}
	e := &c.entries[n-1]
	e.LastOffset = last
	e.Len += int32(len(batch))
	if ts > e.MaxTimestamp {
		e.MaxTimestamp, e.MaxTimestampOffset = ts, base
	}
	c.maxTs = max(c.maxTs, ts)
	if cleanedAt >= 0 {
		c.clock = cleanedAt
	}
	c.data = append(c.data, batch...)
	return nil
}

// put uploads the object being filled as covering up to last, and starts
// the next one at last+1.
func (w *Rewrite) put(ctx context.Context, last int64) error {
	c := &w.cur
	c.entries[len(c.entries)-1].LastOffset = last
	body, err := appendIndex(c.data, c.entries, objectVersionV2)
	if err != nil {
		return fmt.Errorf("tier: rewrite of %s/%d: %w", w.p.Topic, w.p.Partition, err)
	}
	ref := ObjectRef{BaseOffset: c.base, LastOffset: last, Size: int64(len(body)), DataBytes: int64(len(c.data)),
		Entries: int32(len(c.entries)), MaxTimestamp: c.maxTs, Gen: w.gen, CleanedAt: c.clock}
	key := w.p.refKey(&ref)
	if err := w.u.cfg.Owner.Check(ctx); err != nil {
		return err
	}
	if err := w.u.retry(ctx, "put compacted object", w.p, func() error {
		return w.u.cfg.Store.Put(ctx, key, newBytesReader(body), int64(len(body)), PutOptions{})
	}); err != nil {
		return err
	}
	w.u.objects.Add(1)
	w.u.bytes.Add(int64(len(body)))
	w.objs = append(w.objs, ref)
	*c = rwObject{base: last + 1, data: c.data[:0], entries: c.entries[:0], clock: -1, maxTs: -1}
	return nil
}

// Abort deletes the objects put so far (best effort: what is left is an
// orphan for CleanOrphans). Only before Commit.
func (w *Rewrite) Abort(ctx context.Context) {
	if w.done {
		return
	}
	w.done = true
	w.deleteNew(ctx, w.objs)
}

func (w *Rewrite) deleteNew(ctx context.Context, objs []ObjectRef) {
	for i := range objs {
		if w.u.cfg.Owner.Check(ctx) != nil || w.u.cfg.Store.Delete(ctx, w.p.refKey(&objs[i])) != nil {
			w.st.orphansDone.Store(false)
			return
		}
	}
}

// Commit puts the last object and publishes the rewritten manifest, then
// deletes the objects it replaced; it returns the bytes of objects put
// and deleted. It takes p's upload lock, so it is ordered with uploads and
// retention: uploads only append after end, retention only cuts the
// front, and both are taken into account. If retention moved the log
// start to end or past it, or the objects from end on are not those the
// rewrite started from, nothing is published (ErrRewriteStale) and the new
// objects are deleted. A failed publish leaves them for CleanOrphans:
// the publish may have landed.
func (w *Rewrite) Commit(ctx context.Context) (put, deleted int64, err error) {
	if w.done {
		return 0, 0, errors.New("tier: rewrite: Commit after Commit or Abort")
	}
	if len(w.cur.entries) == 0 && len(w.objs) == 0 {
		w.Abort(ctx)
		return 0, 0, fmt.Errorf("tier: rewrite of %s/%d: no batches", w.p.Topic, w.p.Partition)
	}
	if len(w.cur.entries) > 0 {
		if err := w.put(ctx, w.end-1); err != nil {
			w.Abort(ctx)
			return 0, 0, err
		}
	} else if last := w.objs[len(w.objs)-1].LastOffset; last != w.end-1 {
		// Cannot happen: put always leaves an object being filled.
		w.Abort(ctx)
		return 0, 0, fmt.Errorf("tier: rewrite of %s/%d: objects end at %d, not %d", w.p.Topic, w.p.Partition, last, w.end-1)
	}
	for _, o := range w.objs {
		put += o.Size
	}
	// The state the rewrite started with, not u.state(p): after a Forget
	// (the topic deleted, its prefix being emptied) that would be a fresh
	// one, and the commit would publish into the deleted partition.
	st := w.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gone {
		w.Abort(ctx)
		return 0, 0, ErrRewriteStale
	}
	if err := w.u.load(ctx, st, w.p); err != nil {
		w.Abort(ctx)
		return 0, 0, err
	}
	cur := st.m
	old, rest, ok := w.split(cur)
	if !ok || cur.LogStartOffset >= w.end {
		w.Abort(ctx)
		return 0, 0, ErrRewriteStale
	}
	keep := 0
	for keep < len(w.objs) && w.objs[keep].LastOffset < cur.LogStartOffset {
		keep++
	}
	objs := make([]ObjectRef, 0, len(w.objs)-keep+len(rest))
	objs = append(objs, w.objs[keep:]...)
	objs = append(objs, rest...)
	m := &Manifest{Seq: cur.Seq + 1, Part: w.p, LogStartOffset: cur.LogStartOffset, Objects: objs}
	m.fillKeys(nil)
	w.done = true
	if err := w.u.publish(ctx, st, w.p, m); err != nil {
		// Perhaps published after all (the answer was lost): the new
		// objects stay until CleanOrphans knows.
		st.orphansDone.Store(false)
		return 0, 0, err
	}
	w.u.notePublished()
	w.deleteNew(ctx, w.objs[:keep])
	for i := range old {
		key := w.p.refKey(&old[i])
		if err := w.u.retry(ctx, "delete compacted object", w.p, func() error {
			return w.u.cfg.Store.Delete(ctx, key)
		}); err != nil {
			// Unreferenced now: CleanOrphans removes it later.
			st.orphansDone.Store(false)
			return put, deleted, nil
		}
		deleted += old[i].Size
	}
	return put, deleted, nil
}

// split returns cur's objects below w.end and from w.end on, checking
// that those from w.end on start with the ones the rewrite started from
// (uploads only append) and those below are a suffix of them (retention
// only cuts the front).
func (w *Rewrite) split(cur *Manifest) (old, rest []ObjectRef, ok bool) {
	j := 0
	for j < len(cur.Objects) && cur.Objects[j].LastOffset < w.end {
		j++
	}
	bj := 0
	for bj < len(w.base.Objects) && w.base.Objects[bj].LastOffset < w.end {
		bj++
	}
	old, rest = cur.Objects[:j], cur.Objects[j:]
	want := w.base.Objects[bj:]
	if len(rest) < len(want) || (len(rest) > 0 && rest[0].BaseOffset != w.end) {
		return nil, nil, false
	}
	for i := range want {
		if rest[i] != want[i] {
			return nil, nil, false
		}
	}
	wantOld := w.base.Objects[:bj]
	if len(old) > len(wantOld) {
		return nil, nil, false
	}
	for i := range old {
		if old[i] != wantOld[len(wantOld)-len(old)+i] {
			return nil, nil, false
		}
	}
	return old, rest, true
}

// CleanOrphansOnce is CleanOrphans unless it already ran for p since
// this Uploader started and no rewrite failed since in a way that may
// have left orphans.
func (u *Uploader) CleanOrphansOnce(ctx context.Context, p Partition) (int, error) {
	if u.state(p).orphansDone.Load() {
		return 0, nil
	}
	return u.CleanOrphans(ctx, p)
}

// CleanOrphans deletes p's data objects that its published manifest does
// not reference and that lie below the manifest's end (an upload in flight
// only writes at or past it): objects of a rewrite or upload that a crash
// (or a lost answer) stopped before its publish, and objects a crash
// stopped before their deletion after one. It holds p's upload lock while
// it lists, and returns the objects deleted.
func (u *Uploader) CleanOrphans(ctx context.Context, p Partition) (int, error) {
	st := u.state(p)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gone {
		return 0, nil
	}
	// What the bucket says, never a manifest kept in memory: deleting by
	// a stale one would delete objects a newer one references.
	st.set(nil)
	if err := u.load(ctx, st, p); err != nil {
		return 0, err
	}
	m := st.m
	refs := make(map[string]bool, len(m.Objects))
	for i := range m.Objects {
		refs[m.ObjectKey(i)] = true
	}
	next := m.NextOffset()
	dir := p.Dir() + "data/"
	var orphans []string
	err := u.cfg.Store.List(ctx, dir, "", func(o ObjectInfo) error {
		name := strings.TrimPrefix(o.Key, dir)
		if len(name) < 20 || refs[o.Key] {
			return nil
		}
		if base, err := strconv.ParseInt(name[:20], 10, 64); err != nil || base >= next {
			return nil
		}
		orphans = append(orphans, o.Key)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(orphans) > 0 {
		if err := u.cfg.Owner.Check(ctx); err != nil {
			return 0, err
		}
	}
	for i, k := range orphans {
		if err := u.retry(ctx, "delete orphan", p, func() error { return u.cfg.Store.Delete(ctx, k) }); err != nil {
			return i, err
		}
	}
	st.orphansDone.Store(true)
	return len(orphans), nil
}
