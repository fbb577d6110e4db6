package tier

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// batchFixture uploads one object of p holding 4 chunks of 3 batches each
// and returns the store, the source's batches and the manifest.
func batchFixture(t *testing.T) (*MemStore, *testSource, []testBatch, *Manifest) {
	t.Helper()
	ctx := context.Background()
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	batches := src.addBatchSegment(p, 4, 3, func(i int) int64 { return int64(1000 + i) })
	if _, err := testUploader(store, src, 1<<20).UploadPartition(ctx, p); err != nil {
		t.Fatal(err)
	}
	m, err := LoadManifest(ctx, store, p)
	if err != nil || len(m.Objects) != 1 {
		t.Fatalf("manifest %+v, %v; want one object", m, err)
	}
	return store, src, batches, m
}

// editObject rewrites key in store with edit applied to its bytes.
func editObject(t *testing.T, store *MemStore, key string, edit func([]byte)) {
	t.Helper()
	ctx := context.Background()
	b, err := Get(ctx, store, key, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	edit(b)
	if err := store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// batchPos returns the object position of each batch (the object's data
// is the source's batches, contiguous from 0).
func batchPos(src *testSource, p Partition) []int64 {
	var out []int64
	data := src.data[p]
	for at := 0; at < len(data); {
		out = append(out, int64(at))
		at += batchLengthPrefixLen + int(binary.BigEndian.Uint32(data[at+batchLengthAt:]))
	}
	return out
}

// TestReaderRejectsEditedBatches: every kind of edit to an uploaded
// object's batches is caught when the span is fetched: nothing of it is
// served (no batch at a wrong offset, no batch failing its CRC), the error
// is ErrCorrupt naming the object, the corrupt counter moves, and the
// untouched chunks of the object still read.
func TestReaderRejectsEditedBatches(t *testing.T) {
	ctx := context.Background()
	add := func(at int, d uint64) func([]byte) {
		return func(b []byte) { binary.BigEndian.PutUint64(b[at:], binary.BigEndian.Uint64(b[at:])+d) }
	}
	type edit struct {
		name  string
		batch int // 0..11: chunk batch/3, the 3rd batch of each chunk is 2, 5, 8, 11
		apply func(pos []int64, i int) func([]byte)
	}
	edits := []edit{
		{"base offset +3, first batch of a chunk", 3, func(pos []int64, i int) func([]byte) { return add(int(pos[i]), 3) }},
		{"base offset +3, middle batch", 4, func(pos []int64, i int) func([]byte) { return add(int(pos[i]), 3) }},
		{"base offset +3, last batch", 5, func(pos []int64, i int) func([]byte) { return add(int(pos[i]), 3) }},
		{"base offset -1, middle batch", 7, func(pos []int64, i int) func([]byte) { return add(int(pos[i]), ^uint64(0)) }},
		{"last offset delta +1, last batch", 11, func(pos []int64, i int) func([]byte) {
			return func(b []byte) { b[pos[i]+batchLastDeltaAt+3]++ }
		}},
		{"flipped payload byte", 1, func(pos []int64, i int) func([]byte) {
			return func(b []byte) { b[pos[i]+batchHeaderBytes-1] ^= 0x10 }
		}},
		{"flipped CRC byte", 9, func(pos []int64, i int) func([]byte) {
			return func(b []byte) { b[pos[i]+batchCRCAt] ^= 1 }
		}},
		{"magic 1", 2, func(pos []int64, i int) func([]byte) {
			return func(b []byte) { b[pos[i]+batchMagicAt] = 1 }
		}},
		{"batch length shorter", 6, func(pos []int64, i int) func([]byte) {
			return func(b []byte) { b[pos[i]+batchLengthAt+3]-- }
		}},
	}
	for _, e := range edits {
		t.Run(e.name, func(t *testing.T) {
			store, src, batches, m := batchFixture(t)
			key := m.ObjectKey(0)
			editObject(t, store, key, e.apply(batchPos(src, m.Part), e.batch))
			r := NewReader(ReaderConfig{Store: store, ReadAheadBytes: 1})
			bad := batches[e.batch]
			for _, off := range []int64{bad.base, bad.last} {
				b, err := r.Read(ctx, m, off, 1)
				var oe *ObjectError
				if !errors.Is(err, ErrCorrupt) || !errors.As(err, &oe) || oe.Key != key {
					t.Fatalf("read at %d: %d bytes, %v; want ErrCorrupt naming %s", off, len(b), err, key)
				}
			}
			if got := r.Stats().Corrupt; got != 2 {
				t.Fatalf("corrupt counter %d, want 2", got)
			}
			// The chunks around it are intact and read.
			chunk := e.batch / 3
			for c := range 4 {
				if c == chunk {
					continue
				}
				off := batches[c*3].base
				if _, err := r.Read(ctx, m, off, 1); err != nil {
					t.Fatalf("intact chunk %d at %d: %v", c, off, err)
				}
			}
		})
	}
}

// TestReaderVerifiesReadAhead: a read-ahead GET that takes in an edited
// entry fails as a whole, so a later read of that entry cannot come from
// the cache unchecked.
func TestReaderVerifiesReadAhead(t *testing.T) {
	ctx := context.Background()
	store, src, batches, m := batchFixture(t)
	editObject(t, store, m.ObjectKey(0), add3(batchPos(src, m.Part)[10]))
	r := NewReader(ReaderConfig{Store: store, ReadAheadBytes: 1 << 20})
	if _, err := r.Read(ctx, m, 0, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read-ahead over an edited chunk: %v", err)
	}
	if _, err := r.Read(ctx, m, batches[10].base, 1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of the edited chunk after: %v", err)
	}
}

func add3(at int64) func([]byte) {
	return func(b []byte) { binary.BigEndian.PutUint64(b[at:], binary.BigEndian.Uint64(b[at:])+3) }
}

// TestColdReadFailuresLoggedAndCounted: a missing object and a corrupt one
// are logged at Error with topic, partition, offset and object key, and
// counted; the store being down is logged at Warn and counted; an offset
// outside the tier is an answer, neither logged nor counted.
func TestColdReadFailuresLoggedAndCounted(t *testing.T) {
	ctx := context.Background()
	store, src, batches, m := batchFixture(t)
	var logBuf bytes.Buffer
	up := testUploader(store, src, 1<<20)
	c := NewCold(ColdConfig{Uploader: up, Reader: NewReader(ReaderConfig{Store: store}), Log: zerolog.New(&logBuf)})
	defer c.Close()
	key := m.ObjectKey(0)
	p := m.Part

	if _, err := c.Read(ctx, p, m.NextOffset(), 1); !errors.Is(err, ErrNotTiered) {
		t.Fatalf("read past the tier: %v", err)
	}
	if st := c.Stats(); st != (ColdStats{}) || logBuf.Len() != 0 {
		t.Fatalf("an offset outside the tier counted %+v or logged %s", st, logBuf.String())
	}

	store.SetDown(errors.New("bucket unreachable"))
	if _, err := c.Read(ctx, p, 0, 1); err == nil {
		t.Fatal("read with the store down succeeded")
	}
	store.SetDown(nil)
	if st := c.Stats(); st.ReadErrors != 1 || !strings.Contains(logBuf.String(), `"level":"warn"`) {
		t.Fatalf("store down: %+v, log %s", st, logBuf.String())
	}

	editObject(t, store, key, add3(batchPos(src, p)[4]))
	if _, err := c.Read(ctx, p, batches[4].base, 1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of an edited batch: %v", err)
	}
	if err := store.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ctx, p, batches[7].base, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read of a deleted object: %v", err)
	}
	if st := c.Stats(); st != (ColdStats{ReadErrors: 3, Missing: 1, Corrupt: 1}) {
		t.Fatalf("stats %+v", st)
	}
	log := logBuf.String()
	for _, want := range []string{
		fmt.Sprintf(`"level":"error","component":"tier","error":"tier: object %s: entry 1 [4, 12]: tier: corrupt object: batch base offset`, key),
		fmt.Sprintf(`"topic":"%s","partition":0,"offset":%d,"object":"%s"`, p.Topic, batches[4].base, key),
		fmt.Sprintf(`"offset":%d,"object":"%s","message":"tier: an object the manifest lists is missing`, batches[7].base, key),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
}

// BenchmarkVerifySpan: the cost of checking a fetched span (one CRC-32C
// pass plus a header walk), per batch size.
func BenchmarkVerifySpan(b *testing.B) {
	const span = 4 << 20
	for _, batchBytes := range []int{1 << 10, 16 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("batch=%d", batchBytes), func(b *testing.B) {
			buf := make([]byte, span)
			var off int64
			for at := 0; at < span; at += batchBytes {
				putTestBatch(buf[at:at+batchBytes], off, 9, 0)
				off += 10
			}
			idx := []IndexEntry{{BaseOffset: 0, LastOffset: off - 1, Pos: 0, Len: span}}
			b.SetBytes(span)
			b.ReportAllocs()
			for b.Loop() {
				if err := verifySpan(buf, idx, 0, 1, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
