package tier

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testSource is a Source over real files: each partition's chunks are
// written interleaved into "segment" files, as storage's shard WAL holds
// them, and sealed up to a watermark.
type testSource struct {
	t   testing.TB
	dir string

	mu       sync.Mutex
	parts    []Partition
	chunks   map[Partition][]SourceChunk // guarded by mu
	data     map[Partition][]byte        // the partition's batches, contiguous (expected object data)
	sealed   map[Partition]int64         // chunks with LastOffset < sealed are sealed
	uploaded map[Partition]int64
	pinned   int // outstanding releases
	files    []*os.File
}

func newTestSource(t testing.TB) *testSource {
	s := &testSource{t: t, dir: t.TempDir(), chunks: map[Partition][]SourceChunk{}, data: map[Partition][]byte{},
		sealed: map[Partition]int64{}, uploaded: map[Partition]int64{}}
	t.Cleanup(func() {
		for _, f := range s.files {
			f.Close()
		}
	})
	return s
}

func testPart(i int) Partition {
	p := Partition{Topic: "orders", Partition: int32(i)}
	p.TopicID[0], p.TopicID[15] = 0xab, byte(i)
	return p
}

// addSegment writes one segment file holding nChunks chunks for each of
// parts, interleaved, each chunk of 1..maxChunk bytes covering 1..5
// offsets, and seals everything written.
func (s *testSource) addSegment(rng *rand.Rand, parts []Partition, nChunks, maxChunk int) {
	f := s.newSegmentFile()
	var pos int64
	s.mu.Lock()
	defer s.mu.Unlock()
	for range nChunks {
		for _, p := range parts {
			base := s.nextOffset(p)
			n := batchHeaderBytes + rng.IntN(maxChunk)
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			last := base + int64(rng.IntN(5))
			// One batch: the reader checks what it fetches.
			putTestBatch(b, base, int32(last-base), 1000+base)
			// A chunk header's worth of other bytes in between, as in a WAL.
			pos += 40
			if _, err := f.WriteAt(b, pos); err != nil {
				s.t.Fatal(err)
			}
			s.chunks[p] = append(s.chunks[p], SourceChunk{BaseOffset: base, LastOffset: last,
				MaxTimestamp: 1000 + base, MaxTimestampOffset: base, File: f, Pos: pos, Len: int32(n)})
			s.data[p] = append(s.data[p], b...)
			s.sealed[p] = last + 1
			pos += int64(n)
		}
	}
}

// putTestBatch makes b (at least batchHeaderBytes, the rest payload) one
// v2 batch of offsets base..base+lastDelta with a valid CRC-32C.
func putTestBatch(b []byte, base int64, lastDelta int32, maxTS int64) {
	binary.BigEndian.PutUint64(b, uint64(base))
	binary.BigEndian.PutUint32(b[batchLengthAt:], uint32(len(b)-batchLengthPrefixLen))
	b[batchMagicAt] = batchMagicV2
	binary.BigEndian.PutUint32(b[batchLastDeltaAt:], uint32(lastDelta))
	binary.BigEndian.PutUint64(b[batchMaxTimestampAt:], uint64(maxTS))
	binary.BigEndian.PutUint32(b[batchCRCAt:], crc32.Checksum(b[batchCRCFrom:], crcTable))
}

// newSegmentFile creates the source's next segment file.
func (s *testSource) newSegmentFile() *os.File {
	f, err := os.Create(filepath.Join(s.dir, fmt.Sprintf("%020d.wal", len(s.files))))
	if err != nil {
		s.t.Fatal(err)
	}
	s.files = append(s.files, f)
	return f
}

// nextOffset registers p (if new) and returns the offset after its last
// chunk. s.mu held.
func (s *testSource) nextOffset(p Partition) int64 {
	cs, ok := s.chunks[p]
	if !ok {
		s.parts = append(s.parts, p)
		s.chunks[p] = nil
	}
	if len(cs) == 0 {
		return 0
	}
	return cs[len(cs)-1].LastOffset + 1
}

// caughtUp reports whether every one of parts is uploaded as far as it is
// sealed.
func (s *testSource) caughtUp(parts []Partition) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range parts {
		if s.uploaded[p] != s.sealed[p] {
			return false
		}
	}
	return true
}

func (s *testSource) Partitions() []Partition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Partition(nil), s.parts...)
}

func (s *testSource) Sealed(p Partition, from, maxBytes int64, dst []SourceChunk) ([]SourceChunk, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var size int64
	for _, c := range s.chunks[p] {
		if c.LastOffset < from || c.LastOffset >= s.sealed[p] {
			continue
		}
		if size > 0 && size+int64(c.Len) > maxBytes {
			break
		}
		dst = append(dst, c)
		size += int64(c.Len)
	}
	s.pinned++
	return dst, func() {
		s.mu.Lock()
		s.pinned--
		s.mu.Unlock()
	}, nil
}

func (s *testSource) Uploaded(p Partition, end int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if end < s.uploaded[p] {
		s.t.Errorf("Uploaded moved back: %d after %d", end, s.uploaded[p])
	}
	s.uploaded[p] = end
}

// expectRead checks that reading every chunk's base offset from the tier
// yields exactly that chunk's bytes (and, with a larger budget, the bytes
// that follow it).
func expectRead(t *testing.T, ctx context.Context, r *Reader, m *Manifest, s *testSource, maxBytes int64) {
	t.Helper()
	p := m.Part
	s.mu.Lock()
	chunks := s.chunks[p]
	data := s.data[p]
	s.mu.Unlock()
	var pos int64
	for _, c := range chunks {
		if c.LastOffset >= m.NextOffset() {
			break
		}
		for _, off := range []int64{c.BaseOffset, c.LastOffset} {
			got, err := r.Read(ctx, m, off, maxBytes)
			if err != nil {
				t.Fatalf("read %d: %v", off, err)
			}
			if len(got) < int(c.Len) || !bytes.Equal(got, data[pos:pos+int64(len(got))]) {
				t.Fatalf("read %d: %d bytes differ from the source's at %d (chunk of %d)", off, len(got), pos, c.Len)
			}
			if len(got) > int(c.Len) && int64(len(got)) > maxBytes {
				t.Fatalf("read %d: %d bytes over budget %d", off, len(got), maxBytes)
			}
		}
		pos += int64(c.Len)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed+1)) }
