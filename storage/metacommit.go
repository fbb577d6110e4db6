package storage

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klite/klite/vfs"
)

// metaLog group-commits metadata changes: writers apply a change to the
// model and queue its record under Store.metaMu (no I/O), then wait; one
// committer goroutine writes everything queued as one frame, fdatasyncs
// once, and then, in log order, publishes each change (its apply func,
// under metaMu, on one draft of the topic table stored once per group) and
// wakes the writers. Readers load the table and never wait for any of it.
type metaLog struct {
	mu     sync.Mutex // guards queue, closed, err
	queue  []*metaWait
	closed bool
	err    error // sticky: a failed write or fsync takes metadata offline

	wake    chan struct{} // cap 1
	stopped chan struct{} // closed when the committer returns

	// Committer goroutine only (Open before it starts).
	gen      uint64
	f        vfs.File
	size     int64
	snapSize int64

	// stats count the bytes, frames and snapshots written (atomic).
	stats struct{ bytes, frames, snapshots atomic.Int64 }
}

// metaWait is one queued change.
type metaWait struct {
	rec []byte
	// apply publishes the change, after it is durable, in log order, with
	// metaMu held; the func it returns (if any) runs after the table is
	// stored and outside metaMu.
	apply func(d *tableDraft) func()
	done  chan error // buffered
}

// tableDraft is the topic table being changed by one group: cloned at
// the first change, stored once.
type tableDraft struct {
	old, tab *topicTable
}

func (d *tableDraft) cur() *topicTable {
	if d.tab != nil {
		return d.tab
	}
	return d.old
}

func (d *tableDraft) edit() *topicTable {
	if d.tab == nil {
		d.tab = &topicTable{byName: maps.Clone(d.old.byName), byID: maps.Clone(d.old.byID)}
	}
	return d.tab
}

func (d *tableDraft) put(t *topic) {
	tab := d.edit()
	tab.byName[t.info.Name] = t
	tab.byID[t.info.ID] = t
}

func (d *tableDraft) remove(t *topic) {
	tab := d.edit()
	delete(tab.byName, t.info.Name)
	delete(tab.byID, t.info.ID)
}

// changeLocked applies rec to the model and queues it. metaMu must be
// held; the caller releases it and then waits on the result's done.
func (s *Store) changeLocked(rec *metaRecord, apply func(d *tableDraft) func()) (*metaWait, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	if len(b) > maxMetaFrameBytes {
		// Only a topic of far more partitions than MaxPartitions allows
		// could take this much.
		return nil, fmt.Errorf("%w: metadata record of %d bytes over %d", ErrInvalidPartitions, len(b), maxMetaFrameBytes)
	}
	// A snapshot holds all the metadata in one frame: a change that could
	// make it larger than a snapshot may be is refused, not made and then
	// found unwritable.
	if g := s.mstate.growth(rec); g > 0 && s.mstate.bytes+g > s.cfg.metaSnapBytes-metaFileJSONBytes {
		return nil, fmt.Errorf("%w: the metadata would pass %d bytes", ErrMetadataFull, s.cfg.metaSnapBytes)
	}
	ml := &s.mlog
	ml.mu.Lock()
	defer ml.mu.Unlock()
	switch {
	case ml.err != nil:
		return nil, fmt.Errorf("%w: metadata log failed: %v", ErrStorage, ml.err)
	case ml.closed:
		return nil, ErrClosed
	}
	if err := s.mstate.apply(rec); err != nil {
		// The caller validated against the same model: a bug.
		return nil, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	w := &metaWait{rec: b, apply: apply, done: make(chan error, 1)}
	ml.queue = append(ml.queue, w)
	select {
	case ml.wake <- struct{}{}:
	default:
	}
	return w, nil
}

// commit runs the changes in metaMu-held fn (which queues them with
// changeLocked) and waits for the last one.
func (s *Store) commit(fn func() (*metaWait, error)) error {
	s.metaMu.Lock()
	w, err := fn()
	s.metaMu.Unlock()
	if err != nil || w == nil {
		return err
	}
	return <-w.done
}

func (s *Store) startMetaLog(mo *metaOpen) {
	ml := &s.mlog
	ml.gen, ml.f, ml.size, ml.snapSize = mo.gen, mo.log, mo.size, mo.snapSize
	ml.wake = make(chan struct{}, 1)
	ml.stopped = make(chan struct{})
	go s.runMetaLog()
}

// stopMetaLog lets the committer write what is queued and waits for it.
func (s *Store) stopMetaLog() {
	ml := &s.mlog
	ml.mu.Lock()
	ml.closed = true
	ml.mu.Unlock()
	select {
	case ml.wake <- struct{}{}:
	default:
	}
	<-ml.stopped
	if ml.f != nil {
		_ = ml.f.Close()
	}
}

func (s *Store) runMetaLog() {
	ml := &s.mlog
	defer close(ml.stopped)
	for {
		<-ml.wake
		for {
			ml.mu.Lock()
			batch, closed := ml.queue, ml.closed
			ml.queue = nil
			ml.mu.Unlock()
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
			s.commitMeta(batch)
		}
	}
}

// commitMeta makes batch durable (in the log, or in a new snapshot once
// the log has grown past it) and publishes it.
func (s *Store) commitMeta(batch []*metaWait) {
	ml := &s.mlog
	err := ml.err
	if err == nil {
		if ml.size >= max(s.cfg.metaLogBytes, ml.snapSize) {
			batch, err = s.snapshotMeta(batch)
		} else {
			err = s.appendMeta(batch)
		}
	}
	if err != nil {
		if ml.err == nil {
			s.log.Error().Err(err).Msg("writing the metadata log failed: metadata changes fail until restart")
			ml.mu.Lock()
			ml.err = err
			ml.mu.Unlock()
		}
		for _, w := range batch {
			w.done <- fmt.Errorf("%w: %v", ErrStorage, err)
		}
		return
	}
	s.metaMu.Lock()
	d := tableDraft{old: s.table.Load()}
	var afters []func()
	for _, w := range batch {
		if w.apply != nil {
			if a := w.apply(&d); a != nil {
				afters = append(afters, a)
			}
		}
	}
	if d.tab != nil {
		s.table.Store(d.tab)
	}
	s.metaMu.Unlock()
	for _, a := range afters {
		a()
	}
	for _, w := range batch {
		w.done <- nil
	}
}

// appendMeta writes batch as frames of at most maxMetaFrameBytes, each
// written once and fdatasynced before the next.
func (s *Store) appendMeta(batch []*metaWait) error {
	ml := &s.mlog
	buf := make([]byte, 0, 4096)
	var payload []byte
	flush := func() error {
		if len(payload) == 0 {
			return nil
		}
		buf = appendMetaFrame(buf[:0], payload)
		payload = payload[:0]
		if _, err := ml.f.WriteAt(buf, ml.size); err != nil {
			return err
		}
		if err := ml.f.Sync(); err != nil {
			return err
		}
		ml.size += int64(len(buf))
		ml.stats.bytes.Add(int64(len(buf)))
		ml.stats.frames.Add(1)
		return nil
	}
	for _, w := range batch {
		if len(payload) > 0 && len(payload)+1+len(w.rec) > maxMetaFrameBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(payload) > 0 {
			payload = append(payload, '\n')
		}
		payload = append(payload, w.rec...)
	}
	return flush()
}

// snapshotMeta replaces the log: it takes everything queued (the model
// holds it all and nothing else while metaMu is held), writes the model
// as snapshot gen+1, starts log gen+1 and removes gen's files. It returns
// the changes the snapshot made durable.
func (s *Store) snapshotMeta(batch []*metaWait) ([]*metaWait, error) {
	ml := &s.mlog
	t0 := time.Now()
	s.metaMu.Lock()
	ml.mu.Lock()
	batch = append(batch, ml.queue...)
	ml.queue = nil
	ml.mu.Unlock()
	m := s.mstate.file()
	s.metaMu.Unlock()

	dir, gen := s.cfg.Dir, ml.gen+1
	size, err := writeMetaSnapshot(s.fs, dir, gen, m, s.cfg.metaSnapBytes)
	if err != nil {
		return batch, err
	}
	f, err := s.fs.Create(filepath.Join(dir, metaLogName(gen)))
	if err == nil {
		err = s.fs.SyncDir(dir)
	}
	if err != nil {
		return batch, err
	}
	old := ml.gen
	_ = ml.f.Close()
	ml.gen, ml.f, ml.size, ml.snapSize = gen, f, 0, size
	ml.stats.bytes.Add(size)
	ml.stats.snapshots.Add(1)
	// The old files only cost space now: a failure to remove them is
	// retried at the next open.
	for _, name := range []string{metaSnapName(old), metaLogName(old)} {
		if err := s.fs.Remove(filepath.Join(dir, name)); err != nil {
			s.log.Warn().Err(err).Str("file", name).Msg("removing an old metadata file failed")
		}
	}
	s.log.Debug().Uint64("generation", gen).Int64("bytes", size).Dur("took", time.Since(t0)).Msg("metadata snapshot written")
	return batch, nil
}

// MetaStats describe the metadata log's writes.
type MetaStats struct {
	BytesWritten int64 // frames and snapshots
	Frames       int64 // group commits (one fdatasync each)
	Snapshots    int64
}

// MetaStats returns the metadata log's counters.
func (s *Store) MetaStats() MetaStats {
	ml := &s.mlog
	return MetaStats{BytesWritten: ml.stats.bytes.Load(), Frames: ml.stats.frames.Load(), Snapshots: ml.stats.snapshots.Load()}
}
