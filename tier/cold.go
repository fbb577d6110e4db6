package tier

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Cold defaults; each is overridable in ColdConfig.
const (
	defaultColdBackoff    = 500 * time.Millisecond
	defaultColdMaxBackoff = 30 * time.Second
	defaultColdParallel   = 4
)

// Record batch v2 header fields Cold reads (Kafka's on-disk format).
const (
	batchHeaderBytes     = 61
	batchLengthAt        = 8  // i32: bytes after the length field
	batchLastDeltaAt     = 23 // i32: last offset delta
	batchMaxTimestampAt  = 35 // i64
	batchLengthPrefixLen = 12 // base offset + length
)

// ColdConfig configures a Cold.
type ColdConfig struct {
	Uploader *Uploader // required: manifests, retention
	Reader   *Reader   // required: batches and indexes
	Log      zerolog.Logger
	// Backoff..MaxBackoff pace retries of background retention and
	// deletion: exponential with jitter, never giving up before Close.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Parallel bounds background jobs (retention, deletion) running at once.
	Parallel int
}

// Cold is the tiered part of the partitions' logs as storage sees it
// (storage.ColdLog): published manifests, cold reads, time lookups, and
// retention and deletion that run in the background. Safe for concurrent
// use; Close stops the background work.
type Cold struct {
	cfg     ColdConfig
	warn    zerolog.Logger
	readLog zerolog.Logger // cold read failures; rate-limited

	readErrors, missing, corrupt atomic.Int64
	ctx                          context.Context
	cancel                       context.CancelFunc
	sem                          chan struct{}
	wg                           sync.WaitGroup

	mu     sync.Mutex
	jobs   map[Partition]*coldJob // guarded by mu; one worker per entry
	closed bool                   // guarded by mu
}

// coldJob is one partition's pending background work. guarded by Cold.mu
type coldJob struct {
	retain int64 // newest offset asked for and not yet done; -1: none
	forget bool
}

// NewCold returns a Cold over cfg's uploader and reader.
func NewCold(cfg ColdConfig) *Cold {
	if cfg.Backoff <= 0 {
		cfg.Backoff = defaultColdBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = defaultColdMaxBackoff
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = defaultColdParallel
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Cold{cfg: cfg, warn: warnLogger(cfg.Log, 5), readLog: warnLogger(cfg.Log, 10),
		ctx: ctx, cancel: cancel, sem: make(chan struct{}, cfg.Parallel), jobs: make(map[Partition]*coldJob)}
}

// Close stops background retention and deletion (work not done is
// dropped: retention is asked again by the next pass) and waits for it.
func (c *Cold) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// Manifest returns p's published manifest, or nil, nil when the bucket
// holds none. A manifest whose objects were all retained is returned: its
// NextOffset is where the tier ends, or where it restarts when Retain
// moved the log start past that end.
func (c *Cold) Manifest(ctx context.Context, p Partition) (*Manifest, error) {
	m, err := c.cfg.Uploader.Manifest(ctx, p)
	if err != nil || m.Seq == 0 {
		return nil, err
	}
	return m, nil
}

// Read returns p's whole batches from the one holding offset, about
// maxBytes but at least one batch (Reader.Read over the published
// manifest). ErrNotTiered if offset is outside the tier.
func (c *Cold) Read(ctx context.Context, p Partition, offset, maxBytes int64) ([]byte, error) {
	m, err := c.Manifest(ctx, p)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%w: nothing of %s/%d is tiered", ErrNotTiered, p.Topic, p.Partition)
	}
	b, err := c.cfg.Reader.Read(ctx, m, offset, maxBytes)
	for try := 0; errors.Is(err, ErrNotFound) && try < 3; try++ {
		// Retention or a compaction deleted the object after we took the
		// manifest; the newer one (published before the delete) has the
		// answer. Compactions in a row may replace it again meanwhile.
		m2, merr := c.Manifest(ctx, p)
		if merr != nil || m2 == nil || m2 == m {
			break
		}
		m = m2
		b, err = c.cfg.Reader.Read(ctx, m, offset, maxBytes)
	}
	if err != nil {
		c.readFailed(p, offset, err)
	}
	return b, err
}

// ColdStats are Cold's cumulative failure counters (atomics), for the
// metrics endpoint.
type ColdStats struct {
	// ReadErrors counts failed cold reads of any kind (missing and corrupt
	// included; an offset outside the tier is an answer, not counted).
	ReadErrors int64
	// Missing counts reads of an object the manifest lists and the bucket
	// lacks; Corrupt reads of an object (or span) that failed its checks.
	Missing, Corrupt int64
}

// Stats returns the counters so far.
func (c *Cold) Stats() ColdStats {
	return ColdStats{ReadErrors: c.readErrors.Load(), Missing: c.missing.Load(), Corrupt: c.corrupt.Load()}
}

// readFailed counts a failed read and logs it (rate-limited): at Error
// when the bucket lacks an object its manifest lists or an object failed
// its checks (data at risk: an operator must look), at Warn otherwise (the
// store is unreachable, a timeout). The client gets KAFKA_STORAGE_ERROR
// and retries, so without this the stall would be silent.
func (c *Cold) readFailed(p Partition, offset int64, err error) {
	if errors.Is(err, ErrNotTiered) {
		return
	}
	c.readErrors.Add(1)
	key := ""
	var oe *ObjectError
	if errors.As(err, &oe) {
		key = oe.Key
	}
	var ev *zerolog.Event
	var msg string
	switch {
	case errors.Is(err, ErrNotFound):
		c.missing.Add(1)
		ev, msg = c.readLog.Error(), "tier: an object the manifest lists is missing from the bucket; the partition's reads there fail until it is restored"
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrRange):
		c.corrupt.Add(1)
		ev, msg = c.readLog.Error(), "tier: object read back from the bucket failed its checks; not served"
	default:
		ev, msg = c.readLog.Warn(), "tier: cold read failed"
	}
	ev.Err(err).Str("topic", p.Topic).Int32("partition", p.Partition).Int64("offset", offset).Str("object", key).Msg(msg)
}

// OffsetForTime returns the base offset and max timestamp of p's first
// tiered batch (at or above the tier's log start) whose max timestamp is
// >= ts, or (-1, -1, nil). The manifest's per-object max timestamp picks
// the object, its index the chunk, and the chunk's batch headers the
// batch, so it costs at most an index GET and one chunk GET (both cached).
// Failures are logged and counted as Read's are.
//
// An object deleted meanwhile (retention, or a compaction that replaced
// it) is looked up again in the newer manifest, as Read does.
func (c *Cold) OffsetForTime(ctx context.Context, p Partition, ts int64) (int64, int64, error) {
	m, err := c.Manifest(ctx, p)
	if err != nil || m == nil {
		return -1, -1, err
	}
	off, mts, at, err := c.offsetForTime(ctx, p, m, ts)
	if errors.Is(err, ErrNotFound) {
		if m2, merr := c.Manifest(ctx, p); merr == nil && m2 != nil && m2 != m {
			off, mts, at, err = c.offsetForTime(ctx, p, m2, ts)
		}
	}
	if err != nil && at >= 0 {
		c.readFailed(p, at, err)
	}
	return off, mts, err
}

// offsetForTime is OffsetForTime over m; a failed read's offset is at
// (-1 for other errors).
func (c *Cold) offsetForTime(ctx context.Context, p Partition, m *Manifest, ts int64) (off, mts, at int64, err error) {
	for i := range m.Objects {
		if m.Objects[i].MaxTimestamp < ts {
			continue
		}
		idx, err := c.cfg.Reader.Index(ctx, m, i)
		if err != nil {
			return -1, -1, m.Objects[i].BaseOffset, err
		}
		for _, e := range idx {
			if e.LastOffset < m.LogStartOffset || e.MaxTimestamp < ts {
				continue
			}
			at := max(e.BaseOffset, m.LogStartOffset)
			b, err := c.cfg.Reader.Read(ctx, m, at, 1)
			if err != nil {
				return -1, -1, at, err
			}
			off, mts, ok := firstBatchAfter(b, ts, m.LogStartOffset)
			if !ok && at > e.BaseOffset {
				continue // the batch with that timestamp is below the log start
			}
			if !ok {
				return -1, -1, -1, fmt.Errorf("%w: %s/%d chunk at %d has no batch with max timestamp >= %d (index says %d)",
					ErrCorrupt, p.Topic, p.Partition, e.BaseOffset, ts, e.MaxTimestamp)
			}
			return off, mts, -1, nil
		}
	}
	return -1, -1, -1, nil
}

// MaxTimestamp returns the base offset and max timestamp of p's tiered
// batch with the largest max timestamp at or above the tier's log start
// (the first such batch on ties), or (-1, -1, nil) when none is. The
// manifest's per-object maxima also count batches that retention cut off
// the first object, so that object's index entries are used instead, and
// for the entry holding the log start its batch headers from there on.
func (c *Cold) MaxTimestamp(ctx context.Context, p Partition) (int64, int64, error) {
	m, err := c.Manifest(ctx, p)
	if err != nil || m == nil {
		return -1, -1, err
	}
	best, found, at, err := c.maxTimestamp(ctx, m)
	if errors.Is(err, ErrNotFound) {
		if m2, merr := c.Manifest(ctx, p); merr == nil && m2 != nil && m2 != m {
			best, found, at, err = c.maxTimestamp(ctx, m2)
		}
	}
	if err != nil {
		c.readFailed(p, at, err)
		return -1, -1, err
	}
	if !found {
		return -1, -1, nil
	}
	return c.OffsetForTime(ctx, p, best)
}

// maxTimestamp is the largest max timestamp of m's batches at or above
// its log start; on failure at is the offset whose read failed.
func (c *Cold) maxTimestamp(ctx context.Context, m *Manifest) (best int64, found bool, at int64, err error) {
	if len(m.Objects) == 0 {
		return 0, false, 0, nil
	}
	note := func(ts int64) {
		if !found || ts > best {
			best, found = ts, true
		}
	}
	for _, o := range m.Objects[1:] {
		note(o.MaxTimestamp)
	}
	idx, err := c.cfg.Reader.Index(ctx, m, 0)
	if err != nil {
		return 0, false, m.Objects[0].BaseOffset, err
	}
	start := m.LogStartOffset
	for _, e := range idx {
		switch {
		case e.LastOffset < start:
		case e.BaseOffset >= start:
			note(e.MaxTimestamp)
		default: // the entry holding the log start: its batches from there on
			b, err := c.cfg.Reader.Read(ctx, m, start, int64(e.Len))
			if err != nil {
				return 0, false, start, err
			}
			for h, ok := batchHeaderAt(b); ok && h.base <= e.LastOffset; h, ok = batchHeaderAt(b) {
				if h.last >= start {
					note(h.maxTs)
				}
				b = b[h.size:]
			}
		}
	}
	return best, found, 0, nil
}

// firstBatchAfter walks b's batch headers for the first batch ending at
// or after logStart with max timestamp >= ts.
func firstBatchAfter(b []byte, ts, logStart int64) (int64, int64, bool) {
	for {
		h, ok := batchHeaderAt(b)
		if !ok {
			return 0, 0, false
		}
		if h.last >= logStart && h.maxTs >= ts {
			return h.base, h.maxTs, true
		}
		b = b[h.size:]
	}
}

// batchHead is what the tier reads of a batch's header.
type batchHead struct {
	base, last, maxTs, size int64
}

// batchHeaderAt decodes the header of the batch b starts with; false when
// b does not hold a whole batch.
func batchHeaderAt(b []byte) (batchHead, bool) {
	if len(b) < batchHeaderBytes {
		return batchHead{}, false
	}
	size := int64(batchLengthPrefixLen) + int64(int32(binary.BigEndian.Uint32(b[batchLengthAt:])))
	if size < batchHeaderBytes || size > int64(len(b)) {
		return batchHead{}, false
	}
	base := int64(binary.BigEndian.Uint64(b))
	return batchHead{base: base, last: base + int64(int32(binary.BigEndian.Uint32(b[batchLastDeltaAt:]))),
		maxTs: int64(binary.BigEndian.Uint64(b[batchMaxTimestampAt:])), size: size}, true
}

// Retain drops p's tiered data below offset in the background: calls for
// the same partition coalesce (the largest offset wins) and a failed pass
// is retried with backoff until it succeeds or Close. An offset past the
// tier's end restarts the tiered log there (Uploader.Retain). Storage
// asks again whenever the uploader's next offset lags the log start
// (Source.Sealed), so a Retain dropped by Close or a crash is redone.
func (c *Cold) Retain(p Partition, offset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j := c.job(p); j != nil {
		j.retain = max(j.retain, offset)
	}
}

// Forget removes p's objects and manifests from the bucket in the
// background (its topic was deleted), after any retention of p under way,
// and drops the uploader's state for it. Source.Partitions must no longer
// list p. Deletion retries until done or Close; what a crash leaves is
// unreferenced by any snapshot, for a listing GC.
func (c *Cold) Forget(p Partition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j := c.job(p); j != nil {
		j.forget = true
	}
}

// job returns p's pending job, creating it and starting p's worker when
// there is none; nil after Close. c.mu held.
func (c *Cold) job(p Partition) *coldJob {
	if c.closed {
		return nil
	}
	j := c.jobs[p]
	if j == nil {
		j = &coldJob{retain: -1}
		c.jobs[p] = j
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.work(p)
		}()
	}
	return j
}

// work does p's jobs until none is left. It owns c.jobs[p] until it
// deletes it.
func (c *Cold) work(p Partition) {
	wait := c.cfg.Backoff
	for {
		c.mu.Lock()
		j := c.jobs[p]
		forget, off := j.forget, j.retain
		if !forget && off < 0 {
			delete(c.jobs, p)
			c.mu.Unlock()
			return
		}
		j.retain = -1
		c.mu.Unlock()

		var err error
		select {
		case c.sem <- struct{}{}:
			if forget {
				err = c.forget(c.ctx, p)
			} else {
				_, err = c.cfg.Uploader.Retain(c.ctx, p, off)
			}
			<-c.sem
		case <-c.ctx.Done():
			err = c.ctx.Err()
		}
		if c.ctx.Err() != nil {
			return
		}
		if err == nil {
			wait = c.cfg.Backoff
			if forget {
				c.mu.Lock()
				delete(c.jobs, p)
				c.mu.Unlock()
				return
			}
			continue
		}
		what := "retention"
		if forget {
			what = "deletion"
		}
		c.warn.Warn().Err(err).Str("topic", p.Topic).Int32("partition", p.Partition).Dur("retry_in", wait).
			Msg("tier: " + what + " failed; retrying")
		c.mu.Lock()
		j.retain = max(j.retain, off)
		c.mu.Unlock()
		if !sleepJittered(c.ctx, wait) {
			return
		}
		wait = min(2*wait, c.cfg.MaxBackoff)
	}
}

// forget deletes everything under p.Dir(): the manifest pointer, then the
// versions oldest first (the newest stays readable, naming only objects
// still there), then the data objects.
func (c *Cold) forget(ctx context.Context, p Partition) error {
	c.cfg.Uploader.Forget(p)
	if err := c.cfg.Uploader.cfg.Owner.Check(ctx); err != nil {
		return err
	}
	store := c.cfg.Uploader.cfg.Store
	mdir := p.manifestDir()
	var manifests, data []string
	err := store.List(ctx, p.Dir(), "", func(o ObjectInfo) error {
		if strings.HasPrefix(o.Key, mdir) {
			manifests = append(manifests, o.Key)
		} else {
			data = append(data, o.Key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(manifests)+len(data)+1)
	keys = append(keys, pointerKey(mdir))
	for _, k := range manifests {
		if k != pointerKey(mdir) {
			keys = append(keys, k)
		}
	}
	keys = append(keys, data...)
	for _, k := range keys {
		if err := store.Delete(ctx, k); err != nil {
			return err
		}
	}
	// A Manifest call meanwhile may have loaded state again.
	c.cfg.Uploader.Forget(p)
	return nil
}

// ObjectData returns the batches of m's object i (p's published manifest
// or an older one), all checked, in dst's memory (grown as needed); for
// compaction (storage.ColdCompactor). A failure is logged and counted as a
// read's. An object gone because a newer manifest replaced it (retention
// ran meanwhile) is ErrRewriteStale, not a failed read.
func (c *Cold) ObjectData(ctx context.Context, m *Manifest, i int, dst []byte) ([]byte, error) {
	b, err := c.cfg.Reader.ObjectData(ctx, m, i, dst)
	if errors.Is(err, ErrNotFound) {
		if cur, merr := c.Manifest(ctx, m.Part); merr == nil && cur != nil && cur != m && !cur.references(m.ObjectKey(i)) {
			return nil, fmt.Errorf("%w: %v", ErrRewriteStale, err)
		}
	}
	if err != nil {
		c.readFailed(m.Part, m.Objects[i].BaseOffset, err)
	}
	return b, err
}

// Rewrite starts a rewrite of the prefix [m.LogStartOffset, end) of p's
// tiered log (Uploader.NewRewrite); for compaction (storage.ColdCompactor).
func (c *Cold) Rewrite(ctx context.Context, p Partition, m *Manifest, end int64) (*Rewrite, error) {
	return c.cfg.Uploader.NewRewrite(ctx, p, m, end)
}

// CleanOrphans deletes p's unreferenced data objects below its tiered end
// (Uploader.CleanOrphans) once after start and again after a rewrite that
// may have left some; for compaction (storage.ColdCompactor).
func (c *Cold) CleanOrphans(ctx context.Context, p Partition) error {
	_, err := c.cfg.Uploader.CleanOrphansOnce(ctx, p)
	return err
}
