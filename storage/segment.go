package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/klite/klite/vfs"
)

// Chunk header layout. Part of the on-disk format (see doc.go); all fields
// big-endian.
const (
	chunkMagic       = 0x4B4C4348 // "KLCH"
	chunkVersion     = 1
	chunkMagicAt     = 0  // uint32
	chunkVersionAt   = 4  // uint8
	chunkFlagsAt     = 5  // uint8, 0
	chunkKeyAt       = 8  // uint32 partition key (never reused)
	chunkCountAt     = 12 // uint32 batch count
	chunkBaseAt      = 16 // int64 base offset of the first batch
	chunkLastAt      = 24 // int64 last offset of the last batch
	chunkLengthAt    = 32 // uint32 bytes of batches after the header
	chunkCRCAt       = 36 // uint32 CRC-32C of bytes [0, 36)
	chunkHeaderBytes = 40
)

// File name suffixes. Part of the on-disk format.
const (
	segSuffix   = ".wal"
	idxSuffix   = ".idx"
	prepSuffix  = ".prep"       // a segment being preallocated; deleted on open
	tmpSuffix   = vfs.TmpSuffix // a file being written before its rename (vfs.WriteFile); deleted on open
	tornInfix   = ".torn-"      // a copy of a torn tail cut off by recovery
	segNameBase = 20            // digits in a segment file name
)

type chunkHeader struct {
	key    uint32
	count  uint32
	base   int64
	last   int64
	length uint32
}

func putChunkHeader(b []byte, h chunkHeader) {
	be := binary.BigEndian
	be.PutUint32(b[chunkMagicAt:], chunkMagic)
	b[chunkVersionAt] = chunkVersion
	b[chunkFlagsAt] = 0
	b[6], b[7] = 0, 0
	be.PutUint32(b[chunkKeyAt:], h.key)
	be.PutUint32(b[chunkCountAt:], h.count)
	be.PutUint64(b[chunkBaseAt:], uint64(h.base))
	be.PutUint64(b[chunkLastAt:], uint64(h.last))
	be.PutUint32(b[chunkLengthAt:], h.length)
	be.PutUint32(b[chunkCRCAt:], crc32.Checksum(b[:chunkCRCAt], castagnoli))
}

var errChunkHeader = fmt.Errorf("%w: bad chunk header", ErrStorage)

func parseChunkHeader(b []byte) (chunkHeader, error) {
	be := binary.BigEndian
	if len(b) < chunkHeaderBytes || be.Uint32(b[chunkMagicAt:]) != chunkMagic || b[chunkVersionAt] != chunkVersion ||
		be.Uint32(b[chunkCRCAt:]) != crc32.Checksum(b[:chunkCRCAt], castagnoli) {
		return chunkHeader{}, errChunkHeader
	}
	h := chunkHeader{
		key:    be.Uint32(b[chunkKeyAt:]),
		count:  be.Uint32(b[chunkCountAt:]),
		base:   int64(be.Uint64(b[chunkBaseAt:])),
		last:   int64(be.Uint64(b[chunkLastAt:])),
		length: be.Uint32(b[chunkLengthAt:]),
	}
	if h.count == 0 || h.last < h.base || h.base < 0 || h.length < BatchHeaderBytes {
		return chunkHeader{}, errChunkHeader
	}
	return h, nil
}

// segment is one WAL file of a shard. It is reference counted: the store
// holds one reference while open, and every read that hands out a Chunk of
// it holds one until ReadResult.Release, so a sendfile in flight never
// sees a closed descriptor.
type segment struct {
	id   uint64
	path string
	f    vfs.File
	refs atomic.Int64
	size int64 // what it adds to Store.walBytes; set before addSegment

	ckDone  atomic.Bool // its index checkpoint is on disk
	deleted atomic.Bool // unlinked (freeing pass); set before the store's reference is dropped

	// Guarded by the shard's segsMu.
	sealed bool
	keys   []segKey // sealed: every partition key in it and its last offset there
}

// segKey is a partition's last offset in a sealed segment: the segment may
// go once that is below what the partition still needs locally.
type segKey struct {
	key  uint32
	last int64
}

func summarize(entries []ckEntry) []segKey {
	at := map[uint32]int{}
	var keys []segKey
	for _, e := range entries {
		if i, ok := at[e.key]; ok {
			keys[i].last = max(keys[i].last, e.last)
			continue
		}
		at[e.key] = len(keys)
		keys = append(keys, segKey{key: e.key, last: e.last})
	}
	return keys
}

func newSegment(id uint64, path string, f vfs.File) *segment {
	s := &segment{id: id, path: path, f: f}
	s.refs.Store(1)
	return s
}

// acquire takes a reference unless the segment is already closed.
func (s *segment) acquire() bool {
	for {
		r := s.refs.Load()
		if r <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// release drops a reference and closes the file with the last one.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		_ = s.f.Close()
	}
}

func segName(id uint64) string { return fmt.Sprintf("%0*d", segNameBase, id) }

func segPath(dir string, id uint64) string { return filepath.Join(dir, segName(id)+segSuffix) }
func idxPath(dir string, id uint64) string { return filepath.Join(dir, segName(id)+idxSuffix) }
func prepPath(dir string, id uint64) string {
	return filepath.Join(dir, segName(id)+segSuffix+prepSuffix)
}

// parseSegName returns the id of a name like 00000000000000000007.wal.
func parseSegName(name, suffix string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, suffix)
	if !ok || len(base) != segNameBase {
		return 0, false
	}
	id, err := strconv.ParseUint(base, 10, 64)
	return id, err == nil
}

// windowReader reads a file sequentially through a large buffer, for
// recovery scans.
type windowReader struct {
	f     vfs.File
	size  int64
	buf   []byte
	start int64 // file position of buf[0]
	n     int   // valid bytes in buf
}

func newWindowReader(f vfs.File, size int64, window int) *windowReader {
	return &windowReader{f: f, size: size, buf: make([]byte, window)}
}

// at returns n bytes at pos, or fewer when the file ends first. The slice
// is valid until the next call.
func (r *windowReader) at(pos int64, n int) ([]byte, error) {
	if pos >= r.start && pos+int64(n) <= r.start+int64(r.n) {
		return r.buf[pos-r.start : pos-r.start+int64(n)], nil
	}
	if n > len(r.buf) {
		r.buf = make([]byte, n)
	}
	want := min(int64(len(r.buf)), r.size-pos)
	if want <= 0 {
		return nil, nil
	}
	m, err := r.f.ReadAt(r.buf[:want], pos)
	if m < int(want) && err != nil {
		return nil, err
	}
	r.start, r.n = pos, m
	return r.buf[:min(n, m)], nil
}
