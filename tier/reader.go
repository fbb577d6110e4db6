package tier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ErrNotTiered: the offset is not in the tier (below its log start, or at
// or past its end).
var ErrNotTiered = errors.New("tier: offset not in tiered log")

// Reader defaults; each is overridable in ReaderConfig.
const (
	defaultCacheBytes     = 256 << 20
	defaultReadAheadBytes = 4 << 20
)

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	Store ObjectStore
	// CacheBytes bounds cached batch bytes plus decoded indexes.
	CacheBytes int64
	// ReadAheadBytes is how much a sequential reader fetches per GET (whole
	// index entries, not past the object's data).
	ReadAheadBytes int64
}

// ReaderStats are cumulative counters (atomics).
type ReaderStats struct {
	Gets, GetBytes, Hits, Misses int64
	// Corrupt counts fetched spans and indexes that failed their checks
	// (never served).
	Corrupt int64
}

// Reader serves cold reads: the batches holding an offset, fetched with a
// ranged GET of exactly their bytes (or more, read ahead, when the
// previous entry of the object was read recently), cached in a bounded LRU.
// Safe for concurrent use.
type Reader struct {
	cfg   ReaderConfig
	cache *cache

	mu       sync.Mutex
	inflight map[cacheKey]*flight // guarded by mu

	gets, getBytes, hits, misses, corrupt atomic.Int64
}

// NewReader returns a reader.
func NewReader(cfg ReaderConfig) *Reader {
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = defaultCacheBytes
	}
	if cfg.ReadAheadBytes <= 0 {
		cfg.ReadAheadBytes = defaultReadAheadBytes
	}
	return &Reader{cfg: cfg, cache: newCache(cfg.CacheBytes), inflight: make(map[cacheKey]*flight)}
}

// Stats returns the counters so far.
func (r *Reader) Stats() ReaderStats {
	return ReaderStats{Gets: r.gets.Load(), GetBytes: r.getBytes.Load(), Hits: r.hits.Load(), Misses: r.misses.Load(),
		Corrupt: r.corrupt.Load()}
}

// Read returns batches of m's partition starting with the one holding
// offset: whole index entries (storage chunks), contiguous, at most
// maxBytes unless the first entry alone is larger (then just it, as Kafka
// returns at least one batch). The first batch may start before offset;
// clients skip to the offset they asked for, as with a local fetch. The
// returned bytes are shared and must not be modified. Every batch was
// checked when fetched (verifySpan): a CRC or offset mismatch is
// ErrCorrupt and nothing of that GET is served or cached. Errors about an
// object are *ObjectError.
//
// In a compacted (sparse) object the batches start at the first one
// ending at or after offset: an offset whose records were compacted away
// reads as the next surviving batch, possibly in the next entry or
// object, as Kafka serves a compacted log.
func (r *Reader) Read(ctx context.Context, m *Manifest, offset, maxBytes int64) ([]byte, error) {
	for {
		b, next, err := r.read(ctx, m, offset, maxBytes)
		if err != nil || len(b) > 0 {
			return b, err
		}
		// Entry compacted away from offset on (only the entry holding
		// offset can be: the next one's batches start at or after its
		// base), so this loops at most once more per object.
		offset = next
	}
}

// read is Read within the entry holding offset and those after it in the
// same object. An empty result (sparse objects only) means nothing at or
// after offset is left in that entry; next is where to look instead.
func (r *Reader) read(ctx context.Context, m *Manifest, offset, maxBytes int64) ([]byte, int64, error) {
	oi := m.Find(offset)
	if oi < 0 {
		return nil, 0, fmt.Errorf("%w: %d not in [%d, %d) of %s/%d", ErrNotTiered, offset, m.LogStartOffset, m.NextOffset(), m.Part.Topic, m.Part.Partition)
	}
	ref := &m.Objects[oi]
	key := m.ObjectKey(oi)
	idx, err := r.index(ctx, key, ref)
	if err != nil {
		return nil, 0, &ObjectError{Key: key, Err: err}
	}
	k := int32(findEntry(idx, offset))
	if k < 0 {
		return nil, 0, &ObjectError{Key: key, Err: fmt.Errorf("%w: object does not index offset %d", ErrCorrupt, offset)}
	}
	if it := r.cache.get(key, k); it != nil {
		r.hits.Add(1)
		return trimSparse(spanBytes(it, idx, k, maxBytes), ref, idx[k], offset)
	}
	r.misses.Add(1)

	// One GET per missing range: concurrent readers of the same entry (many
	// consumers at the same position) wait for the first one's GET.
	fk := cacheKey{key, k}
	r.mu.Lock()
	if f := r.inflight[fk]; f != nil {
		r.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, 0, &ObjectError{Key: key, Err: ctx.Err()}
		}
		if f.err == nil {
			return trimSparse(spanBytes(f.it, idx, k, maxBytes), ref, idx[k], offset)
		}
		// The leader failed (perhaps only its context): try on our own.
		it, err := r.fetch(ctx, key, idx, k, maxBytes, ref.Gen > 0)
		if err != nil {
			return nil, 0, err
		}
		return trimSparse(spanBytes(it, idx, k, maxBytes), ref, idx[k], offset)
	}
	f := &flight{done: make(chan struct{})}
	r.inflight[fk] = f
	r.mu.Unlock()
	f.it, f.err = r.fetch(ctx, key, idx, k, maxBytes, ref.Gen > 0)
	r.mu.Lock()
	delete(r.inflight, fk)
	r.mu.Unlock()
	close(f.done)
	if f.err != nil {
		return nil, 0, f.err
	}
	return trimSparse(spanBytes(f.it, idx, k, maxBytes), ref, idx[k], offset)
}

// trimSparse drops the leading batches of b (starting with entry e) that
// end before offset, in a compacted object; next is where the read
// continues when none is left.
func trimSparse(b []byte, ref *ObjectRef, e IndexEntry, offset int64) ([]byte, int64, error) {
	next := e.LastOffset + 1
	if ref.Gen == 0 || offset <= e.BaseOffset {
		return b, next, nil
	}
	for h, ok := batchHeaderAt(b); ok && h.last < offset; h, ok = batchHeaderAt(b) {
		b = b[h.size:]
	}
	return b, next, nil
}

// flight is one GET in progress; it and err are set before done closes.
type flight struct {
	done chan struct{}
	it   *cacheItem
	err  error
}

// fetch GETs entry k of key and what follows it (read-ahead) and caches
// the span.
func (r *Reader) fetch(ctx context.Context, key string, idx []IndexEntry, k int32, maxBytes int64, sparse bool) (*cacheItem, error) {
	// Sequential if this object's previous entry was read recently.
	want := maxBytes
	if k > 0 && r.cache.has(key, k-1) {
		want = max(want, r.cfg.ReadAheadBytes)
	}
	end := k + 1
	size := int64(idx[k].Len)
	for int(end) < len(idx) && size+int64(idx[end].Len) <= want && !r.cache.has(key, end) {
		size += int64(idx[end].Len)
		end++
	}
	buf := make([]byte, size)
	if err := r.cfg.Store.GetRange(ctx, key, idx[k].Pos, buf); err != nil {
		return nil, &ObjectError{Key: key, Err: err}
	}
	r.gets.Add(1)
	r.getBytes.Add(size)
	if err := verifySpan(buf, idx, k, end, sparse); err != nil {
		r.corrupt.Add(1)
		return nil, &ObjectError{Key: key, Err: err}
	}
	it := &cacheItem{obj: key, first: k, end: end, pos: idx[k].Pos, buf: buf, charge: size}
	r.cache.add(it)
	return it, nil
}

// spanBytes returns whole entries of span it from entry k, within
// maxBytes but at least one entry.
func spanBytes(it *cacheItem, idx []IndexEntry, k int32, maxBytes int64) []byte {
	start := idx[k].Pos - it.pos
	n := int64(idx[k].Len)
	for e := k + 1; e < it.end && n+int64(idx[e].Len) <= maxBytes; e++ {
		n += int64(idx[e].Len)
	}
	return it.buf[start : start+n : start+n]
}

// Index returns the decoded index of m's object i (cached like batches).
// The entries are shared and must not be modified.
func (r *Reader) Index(ctx context.Context, m *Manifest, i int) ([]IndexEntry, error) {
	if i < 0 || i >= len(m.Objects) {
		return nil, fmt.Errorf("tier: object %d of a manifest with %d", i, len(m.Objects))
	}
	key := m.ObjectKey(i)
	idx, err := r.index(ctx, key, &m.Objects[i])
	if err != nil {
		return nil, &ObjectError{Key: key, Err: err}
	}
	return idx, nil
}

// ObjectError is a read's failure with the key of the object it concerns
// (for logs); it unwraps to the cause (ErrNotFound, ErrCorrupt, ErrRange,
// a store or context error).
type ObjectError struct {
	Key string
	Err error
}

func (e *ObjectError) Error() string { return "tier: object " + e.Key + ": " + e.Err.Error() }

func (e *ObjectError) Unwrap() error { return e.Err }

// index returns the decoded index of an object, from the cache or with
// one ranged GET of its footer.
func (r *Reader) index(ctx context.Context, key string, ref *ObjectRef) ([]IndexEntry, error) {
	if it := r.cache.get(key, -1); it != nil {
		return it.idx, nil
	}
	b := make([]byte, ref.Size-ref.DataBytes)
	if err := r.cfg.Store.GetRange(ctx, key, ref.DataBytes, b); err != nil {
		return nil, err
	}
	r.gets.Add(1)
	r.getBytes.Add(int64(len(b)))
	idx, t, err := DecodeIndex(nil, b)
	if err != nil {
		r.corrupt.Add(1)
		return nil, fmt.Errorf("index: %w", err)
	}
	if t.DataBytes != ref.DataBytes || t.BaseOffset != ref.BaseOffset || t.LastOffset != ref.LastOffset || t.Entries != int(ref.Entries) ||
		t.Sparse() != (ref.Gen > 0) {
		r.corrupt.Add(1)
		return nil, fmt.Errorf("%w: object disagrees with its manifest entry", ErrCorrupt)
	}
	r.cache.add(&cacheItem{obj: key, first: -1, idx: idx, charge: int64(len(idx)) * int64(unsafe.Sizeof(IndexEntry{}))})
	return idx, nil
}

// ObjectData returns all the batches of m's object i with one GET, each
// checked as Read checks them (verifySpan), in dst's memory (grown as
// needed); not cached (compaction reads whole objects once).
func (r *Reader) ObjectData(ctx context.Context, m *Manifest, i int, dst []byte) ([]byte, error) {
	idx, err := r.Index(ctx, m, i)
	if err != nil {
		return nil, err
	}
	ref := &m.Objects[i]
	key := m.ObjectKey(i)
	buf := dst[:0]
	if int64(cap(buf)) < ref.DataBytes {
		buf = make([]byte, ref.DataBytes)
	}
	buf = buf[:ref.DataBytes]
	if err := r.cfg.Store.GetRange(ctx, key, 0, buf); err != nil {
		return nil, &ObjectError{Key: key, Err: err}
	}
	r.gets.Add(1)
	r.getBytes.Add(ref.DataBytes)
	if err := verifySpan(buf, idx, 0, int32(len(idx)), ref.Gen > 0); err != nil {
		r.corrupt.Add(1)
		return nil, &ObjectError{Key: key, Err: err}
	}
	return buf, nil
}
