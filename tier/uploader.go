package tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// SourceChunk is a sealed run of one partition's batches in a local file:
// storage's chunk index entry plus the file it lives in.
type SourceChunk struct {
	BaseOffset, LastOffset int64
	MaxTimestamp           int64
	MaxTimestampOffset     int64
	File                   io.ReaderAt // a sealed segment: concurrent ReadAt, never changes
	Pos                    int64       // file position of the first batch
	Len                    int32       // bytes of batches
}

// Source is what the local log (storage) offers the uploader.
type Source interface {
	// Partitions lists the partitions that may have data to upload.
	Partitions() []Partition
	// Sealed appends to dst p's chunks from offset from on, in offset
	// order and contiguous, all durable and never changing again (below
	// the high watermark; the active segment's included), stopping once about
	// maxBytes are collected (at least one chunk if there is any). The
	// first chunk starts at from; when from is below the partition's log
	// start, it is the chunk holding the log start instead (nothing below
	// the log start is offered: the tiered log restarts there, see
	// Retain). release pins the chunks' segments until called (storage
	// must not delete or reuse them meanwhile). No chunks: nothing sealed.
	Sealed(p Partition, from, maxBytes int64, dst []SourceChunk) (chunks []SourceChunk, release func(), err error)
	// Uploaded reports that p's offsets below end are durable in the
	// bucket and referenced by a published manifest: storage may drop
	// local segments holding nothing newer.
	Uploaded(p Partition, end int64)
}

// ErrGap: the source's chunks do not continue the tiered log.
var ErrGap = errors.New("tier: sealed data does not continue the tiered log")

// Uploader defaults; each is overridable in UploaderConfig.
const (
	defaultObjectBytes    = 64 << 20
	defaultUploadParallel = 4
	defaultUploadAttempts = 5
	defaultUploadBackoff  = 200 * time.Millisecond
	defaultUploadMaxWait  = 30 * time.Second
	defaultUploadInterval = 10 * time.Second
)

// UploaderConfig configures an Uploader.
type UploaderConfig struct {
	Store  ObjectStore
	Source Source
	Log    zerolog.Logger
	// ObjectBytes is the target data size of one object (one object may
	// hold less, or more by less than one chunk).
	ObjectBytes int64
	// Parallel bounds the partitions uploading at once (each uploads its
	// objects in order; s3store.Store adds multipart parallelism per object).
	Parallel int
	// Attempts and Backoff..MaxBackoff govern retrying a whole step (object
	// put, manifest publish) after the store's own retries gave up:
	// exponential backoff with full jitter.
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Interval is the flush interval: every Interval (and on Kick) Run
	// uploads all durable data Source.Sealed offers, so nothing stays
	// local-only much longer than Interval; within a round objects are cut
	// at ObjectBytes, so only a round's last object per partition is small.
	Interval time.Duration
	// Owner, if set, is checked before every data object put and manifest
	// publish: once another broker owns the prefix, nothing more is
	// written (ErrNotOwner).
	Owner *Owner
}

func (c *UploaderConfig) setDefaults() {
	if c.ObjectBytes <= 0 {
		c.ObjectBytes = defaultObjectBytes
	}
	if c.Parallel <= 0 {
		c.Parallel = defaultUploadParallel
	}
	if c.Attempts <= 0 {
		c.Attempts = defaultUploadAttempts
	}
	if c.Backoff <= 0 {
		c.Backoff = defaultUploadBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = defaultUploadMaxWait
	}
	if c.Interval <= 0 {
		c.Interval = defaultUploadInterval
	}
}

// Uploader copies sealed partition data to the object store: data object
// (data + index footer) first, then a new manifest version, then the
// pointer, then Source.Uploaded. A crash at any point leaves the newest
// manifest referencing only complete objects; an object uploaded but never
// published is an orphan that a later upload overwrites or GC removes.
type Uploader struct {
	cfg  UploaderConfig
	kick chan struct{}
	warn zerolog.Logger // rate-limited: an S3 outage must not flood the log

	// published signals (capacity 1) that a manifest was published since
	// the last receive: SnapshotLoop writes a metadata snapshot after it.
	published chan struct{}

	mu    sync.Mutex
	parts map[Partition]*partState // guarded by mu

	// Metrics (atomic): objects and their bytes put, and partition
	// uploads that failed (one per partition per round).
	objects, bytes, errors atomic.Int64
}

// UploaderStats are the uploader's cumulative counters.
type UploaderStats struct {
	Objects, Bytes int64 // data objects put (index included in Bytes)
	Errors         int64 // partition uploads that failed after their retries, one per partition per round
}

// Stats returns the counters so far.
func (u *Uploader) Stats() UploaderStats {
	return UploaderStats{Objects: u.objects.Load(), Bytes: u.bytes.Load(), Errors: u.errors.Load()}
}

type partState struct {
	mu sync.Mutex // serialises one partition's uploads and retention
	m  *Manifest  // guarded by mu; nil until loaded
	// pub is m, readable without mu (atomic). Manifests are never
	// modified once stored here.
	pub atomic.Pointer[Manifest]
	// reported is the end last passed to Source.Uploaded. guarded by mu
	reported int64
	gone     bool // Forget ran; guarded by mu
	// orphansDone: CleanOrphans ran since the last failure that may have
	// left unreferenced objects (atomic).
	orphansDone atomic.Bool
}

// set installs m (nil: reload before next use). st.mu held.
func (st *partState) set(m *Manifest) {
	st.m = m
	st.pub.Store(m)
}

// NewUploader returns an uploader; Run or UploadAll drive it.
func NewUploader(cfg UploaderConfig) *Uploader {
	cfg.setDefaults()
	return &Uploader{cfg: cfg, kick: make(chan struct{}, 1), published: make(chan struct{}, 1),
		warn:  warnLogger(cfg.Log, 5),
		parts: make(map[Partition]*partState)}
}

// warnLogger is log for the tier's retry warnings: at most burst a minute,
// so an S3 outage does not flood the log.
func warnLogger(log zerolog.Logger, burst uint32) zerolog.Logger {
	return log.With().Str("component", "tier").Logger().Sample(&zerolog.BurstSampler{Burst: burst, Period: time.Minute})
}

// Published returns a channel that receives (coalesced) after an
// UploadAll round that published a manifest, or a Retain that did.
func (u *Uploader) Published() <-chan struct{} { return u.published }

func (u *Uploader) notePublished() {
	select {
	case u.published <- struct{}{}:
	default:
	}
}

func (u *Uploader) state(p Partition) *partState {
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.parts[p]
	if st == nil {
		st = &partState{}
		u.parts[p] = st
	}
	return st
}

// Forget drops the uploader's state for p (its topic was deleted), after
// any upload or retention of p under way; calls that were waiting for it
// do nothing. The bucket keeps p's objects (Cold.Forget deletes them).
func (u *Uploader) Forget(p Partition) {
	u.mu.Lock()
	st := u.parts[p]
	delete(u.parts, p)
	u.mu.Unlock()
	if st != nil {
		st.mu.Lock()
		st.gone = true
		st.mu.Unlock()
	}
}

// Manifest returns p's newest published manifest known to this uploader
// (loading it from the store on first use). The caller must not modify it.
func (u *Uploader) Manifest(ctx context.Context, p Partition) (*Manifest, error) {
	st := u.state(p)
	if m := st.pub.Load(); m != nil {
		return m, nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := u.load(ctx, st, p); err != nil {
		return nil, err
	}
	return st.m, nil
}

// load reads p's manifest into st. st.mu held.
func (u *Uploader) load(ctx context.Context, st *partState, p Partition) error {
	if st.m != nil {
		return nil
	}
	var m *Manifest
	err := u.retry(ctx, "load manifest", p, func() error {
		var err error
		m, err = LoadManifest(ctx, u.cfg.Store, p)
		return err
	})
	if err != nil {
		return err
	}
	st.set(m)
	return nil
}

// Kick asks Run to scan now.
func (u *Uploader) Kick() {
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// Run uploads until ctx ends: every Interval, and on Kick. A round that
// fails (S3 down) is retried after a backoff that doubles up to
// MaxBackoff, but never beyond Interval, so one broken partition does not
// slow the others' flushes (Kicks do not shorten it); each partition keeps
// its place, so the next good round continues where the last one stopped.
func (u *Uploader) Run(ctx context.Context) {
	t := time.NewTicker(u.cfg.Interval)
	defer t.Stop()
	wait := u.cfg.Backoff
	for {
		err := u.UploadAll(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			wait = u.cfg.Backoff
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-u.kick:
			}
			continue
		}
		if !errors.Is(err, ErrNotOwner) { // Owner logs that at Error
			u.warn.Warn().Err(err).Dur("retry_in", wait).Msg("tier: upload round incomplete; retrying")
		}
		if !sleepJittered(ctx, wait) {
			return
		}
		wait = max(min(2*wait, u.cfg.MaxBackoff, u.cfg.Interval), u.cfg.Backoff)
	}
}

// sleepJittered waits a random time in [wait/2, wait), so retries after a
// shared failure spread out, and reports false if ctx ended first.
func sleepJittered(ctx context.Context, wait time.Duration) bool {
	return sleepCtx(ctx, rand.N(wait)/2+wait/2)
}

// sleepCtx waits d and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// UploadAll uploads every sealed byte of every source partition, Parallel
// partitions at a time, and returns the first error (after all finish).
func (u *Uploader) UploadAll(ctx context.Context) error {
	parts := u.cfg.Source.Partitions()
	sem := make(chan struct{}, u.cfg.Parallel)
	var wg sync.WaitGroup
	var emu sync.Mutex
	var first error
	var uploaded atomic.Bool
	// One signal per round, after all of it: a snapshot taken then
	// describes every manifest the round published.
	defer func() {
		if uploaded.Load() {
			u.notePublished()
		}
	}()
	for _, p := range parts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			n, err := u.UploadPartition(ctx, p)
			if n > 0 {
				uploaded.Store(true)
			}
			if err != nil {
				if ctx.Err() == nil {
					u.errors.Add(1)
				}
				emu.Lock()
				if first == nil {
					first = err
				}
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// UploadPartition uploads p's durable data not yet in the tier (what
// Source.Sealed offers), one object per ObjectBytes, in offset order. It
// returns the objects uploaded. A partition with nothing new costs one
// Sealed call and no request, once its manifest is loaded; after that
// first load the manifest's end goes to Source.Uploaded, so storage knows
// what the bucket already holds (after a restart).
func (u *Uploader) UploadPartition(ctx context.Context, p Partition) (int, error) {
	st := u.state(p)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gone {
		return 0, nil
	}
	if err := u.load(ctx, st, p); err != nil {
		return 0, err
	}
	if end := st.m.NextOffset(); st.m.Seq > 0 && end > st.reported {
		st.reported = end
		u.cfg.Source.Uploaded(p, end)
	}
	roundEnd := time.Now().Add(u.cfg.Interval)
	var chunks []SourceChunk
	n, reloads := 0, 0
	const maxReloads = 3
	for {
		var release func()
		var err error
		chunks, release, err = u.cfg.Source.Sealed(p, st.m.NextOffset(), u.cfg.ObjectBytes, chunks[:0])
		if err != nil {
			return n, fmt.Errorf("tier: sealed data of %s/%d: %w", p.Topic, p.Partition, err)
		}
		if release == nil {
			release = func() {}
		}
		if len(chunks) == 0 {
			release()
			return n, nil
		}
		err = u.uploadObject(ctx, st, p, chunks)
		release()
		if errors.Is(err, ErrExists) && reloads < maxReloads {
			// Our view was stale (for one, a round cancelled after its
			// manifest PUT landed but before it saw the answer): reload
			// and go on from what the bucket says.
			reloads++
			if err := u.load(ctx, st, p); err != nil {
				return n, err
			}
			continue
		}
		if err != nil {
			return n, err
		}
		n++
		st.reported = st.m.NextOffset()
		u.cfg.Source.Uploaded(p, st.reported)
		if time.Now().After(roundEnd) {
			// A producer that never pauses always leaves a new durable
			// chunk behind: without a bound the round, and the metadata
			// snapshot that follows each round, would never finish. Run
			// starts the next round at once (its ticker has fired).
			return n, nil
		}
	}
}

// uploadObject uploads one object from chunks and publishes the manifest
// that adds it. st.mu held.
func (u *Uploader) uploadObject(ctx context.Context, st *partState, p Partition, chunks []SourceChunk) error {
	next := st.m.NextOffset()
	first := chunks[0].BaseOffset
	// A tiered log with objects continues exactly at next. An empty one
	// (new, or restarted by Retain) starts at the source's first chunk:
	// one at or past next (the log start moved on), or the one holding
	// next (a log start inside a chunk).
	empty := len(st.m.Objects) == 0
	if first != next && (!empty || chunks[0].LastOffset < next) {
		return fmt.Errorf("%w: %s/%d tier ends at %d, sealed data starts at %d", ErrGap, p.Topic, p.Partition, next, first)
	}
	entries := make([]IndexEntry, len(chunks))
	secs := make([]section, 0, len(chunks)+1)
	var pos int64
	ref := ObjectRef{BaseOffset: first, LastOffset: chunks[len(chunks)-1].LastOffset, Entries: int32(len(chunks)), MaxTimestamp: -1}
	for i, c := range chunks {
		entries[i] = IndexEntry{BaseOffset: c.BaseOffset, LastOffset: c.LastOffset, Pos: pos, Len: c.Len,
			MaxTimestamp: c.MaxTimestamp, MaxTimestampOffset: c.MaxTimestampOffset}
		secs = append(secs, section{r: c.File, pos: c.Pos, n: int64(c.Len)})
		pos += int64(c.Len)
		ref.MaxTimestamp = max(ref.MaxTimestamp, c.MaxTimestamp)
	}
	idx, err := AppendIndex(nil, entries)
	if err != nil {
		return fmt.Errorf("tier: %s/%d: source chunks: %w", p.Topic, p.Partition, err)
	}
	secs = append(secs, section{mem: idx, n: int64(len(idx))})
	body := newSectionsReader(secs)
	ref.DataBytes, ref.Size = pos, body.Size()

	key := p.ObjectKey(ref.BaseOffset, ref.LastOffset)
	if err := u.cfg.Owner.Check(ctx); err != nil {
		return err
	}
	if err := u.retry(ctx, "put object", p, func() error {
		return u.cfg.Store.Put(ctx, key, body, body.Size(), PutOptions{})
	}); err != nil {
		return err
	}
	u.objects.Add(1)
	u.bytes.Add(body.Size())

	m := &Manifest{Seq: st.m.Seq + 1, Part: p, LogStartOffset: st.m.LogStartOffset,
		Objects: append(st.m.Objects[:len(st.m.Objects):len(st.m.Objects)], ref)}
	if empty {
		m.LogStartOffset = max(first, next)
	}
	m.fillKeys(st.m)
	return u.publish(ctx, st, p, m)
}

// publish publishes m as p's next manifest and installs it in st. st.mu
// held.
func (u *Uploader) publish(ctx context.Context, st *partState, p Partition, m *Manifest) error {
	if err := u.cfg.Owner.Check(ctx); err != nil {
		return err
	}
	if err := u.retry(ctx, "publish manifest", p, func() error {
		return PublishManifest(ctx, u.cfg.Store, m)
	}); err != nil {
		if errors.Is(err, ErrExists) {
			// Another writer published this sequence: our view is stale.
			// Reload on the next attempt rather than overwrite theirs.
			st.set(nil)
		}
		return err
	}
	st.set(m)
	return nil
}

// retry runs fn until it succeeds, fails with a permanent error, or
// Attempts are used, sleeping with exponential backoff and full jitter.
func (u *Uploader) retry(ctx context.Context, what string, p Partition, fn func() error) error {
	wait := u.cfg.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		if err = fn(); err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= u.cfg.Attempts {
			break
		}
		if !sleepCtx(ctx, rand.N(wait)+1) {
			return ctx.Err()
		}
		wait = min(2*wait, u.cfg.MaxBackoff)
	}
	u.warn.Warn().Err(err).Str("topic", p.Topic).Int32("partition", p.Partition).
		Int("attempts", u.cfg.Attempts).Msg("tier: " + what + ": retries exhausted")
	return err
}

// retryable reports whether err may succeed on a later attempt.
func retryable(err error) bool {
	return !errors.Is(err, ErrExists) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrGap) && !errors.Is(err, ErrNotOwner) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// Retain drops p's tiered data below offset: it publishes a manifest whose
// log start is offset (objects wholly below it removed), then deletes
// those objects. Deleting after publishing means no published manifest
// newer than the pointer references a deleted object; readers still
// holding an older manifest get ErrNotFound for dropped objects; Cold
// retries with the newer manifest, and storage answers an offset below
// the log start OFFSET_OUT_OF_RANGE as for local retention. An offset
// past the tiered end restarts the tiered log there: no objects, log
// start and next offset both offset, so uploads continue at the
// partition's new log start instead of waiting for data that is gone
// (DeleteRecords or retention within one flush interval, Restore past the
// tier's end). It returns the objects deleted.
func (u *Uploader) Retain(ctx context.Context, p Partition, offset int64) (int, error) {
	st := u.state(p)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gone {
		return 0, nil
	}
	if err := u.load(ctx, st, p); err != nil {
		return 0, err
	}
	old := st.m
	if offset <= old.LogStartOffset {
		return 0, nil
	}
	drop := 0
	for drop < len(old.Objects) && old.Objects[drop].LastOffset < offset {
		drop++
	}
	m := &Manifest{Seq: old.Seq + 1, Part: p, LogStartOffset: offset, Objects: old.Objects[drop:len(old.Objects):len(old.Objects)]}
	if len(old.keys) == len(old.Objects) {
		m.keys = old.keys[drop:len(old.keys):len(old.keys)]
	} else {
		m.fillKeys(nil)
	}
	if err := u.publish(ctx, st, p, m); err != nil {
		return 0, err
	}
	u.notePublished()
	for i := range drop {
		key := old.ObjectKey(i)
		if err := u.retry(ctx, "delete object", p, func() error {
			return u.cfg.Store.Delete(ctx, key)
		}); err != nil {
			// Unreferenced now: an orphan for the listing GC, not a
			// correctness problem.
			return i, err
		}
	}
	return drop, nil
}
