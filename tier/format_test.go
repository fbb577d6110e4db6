package tier

import (
	"bytes"
	"errors"
	"testing"
)

func testEntries() []IndexEntry {
	return []IndexEntry{
		{BaseOffset: 100, LastOffset: 104, Pos: 0, Len: 300, MaxTimestamp: 7, MaxTimestampOffset: 102},
		{BaseOffset: 105, LastOffset: 105, Pos: 300, Len: 61, MaxTimestamp: -1, MaxTimestampOffset: 105},
		{BaseOffset: 106, LastOffset: 200, Pos: 361, Len: 1 << 20, MaxTimestamp: 1 << 40, MaxTimestampOffset: 150},
	}
}

func testManifest() *Manifest {
	m := &Manifest{Seq: 9, Part: testPart(3), LogStartOffset: 102}
	m.Objects = []ObjectRef{
		{BaseOffset: 100, LastOffset: 200, DataBytes: 1000, Entries: 3, MaxTimestamp: 5},
		{BaseOffset: 201, LastOffset: 201, DataBytes: 70, Entries: 1, MaxTimestamp: 6},
	}
	for i := range m.Objects {
		o := &m.Objects[i]
		o.Size = o.DataBytes + int64(o.Entries)*indexEntryBytes + trailerBytes
	}
	return m
}

func TestIndexRoundTrip(t *testing.T) {
	entries := testEntries()
	b, err := AppendIndex([]byte("prefix"), entries)
	if err != nil {
		t.Fatal(err)
	}
	b = b[len("prefix"):]
	if len(b) != len(entries)*indexEntryBytes+trailerBytes {
		t.Fatalf("encoded %d bytes", len(b))
	}
	got, tr, err := DecodeIndex(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("decoded %d entries", len(got))
	}
	for i := range got {
		if got[i] != entries[i] {
			t.Fatalf("entry %d: %+v, want %+v", i, got[i], entries[i])
		}
	}
	if tr.BaseOffset != 100 || tr.LastOffset != 200 || tr.DataBytes != 361+1<<20 || tr.IndexBytes() != int64(len(b)) {
		t.Fatalf("trailer %+v", tr)
	}
	for off, want := range map[int64]int{99: -1, 100: 0, 104: 0, 105: 1, 106: 2, 200: 2, 201: -1} {
		if got := findEntry(entries, off); got != want {
			t.Errorf("findEntry(%d) = %d, want %d", off, got, want)
		}
	}
}

func TestIndexRejects(t *testing.T) {
	if _, err := AppendIndex(nil, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("empty index: %v", err)
	}
	bad := testEntries()
	bad[1].BaseOffset = 106 // gap
	if _, err := AppendIndex(nil, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("offset gap: %v", err)
	}
	bad = testEntries()
	bad[2].Pos++ // hole in the data
	if _, err := AppendIndex(nil, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("position gap: %v", err)
	}
	b, _ := AppendIndex(nil, testEntries())
	// Every single-byte corruption is caught (CRCs), as is every truncation.
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x5a
		if _, _, err := DecodeIndex(nil, c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d: %v", i, err)
		}
	}
	for n := range len(b) {
		if _, _, err := DecodeIndex(nil, b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
		if _, _, err := DecodeIndex(nil, b[len(b)-n:]); n != len(b) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("head cut to %d: %v", n, err)
		}
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := testManifest()
	b, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != m.Seq || got.Part != m.Part || got.LogStartOffset != m.LogStartOffset || len(got.Objects) != 2 ||
		got.Objects[0] != m.Objects[0] || got.Objects[1] != m.Objects[1] {
		t.Fatalf("decoded %+v, want %+v", got, m)
	}
	if m.NextOffset() != 202 {
		t.Fatalf("NextOffset %d", m.NextOffset())
	}
	for off, want := range map[int64]int{100: -1, 101: -1, 102: 0, 200: 0, 201: 1, 202: -1} {
		if got := m.Find(off); got != want {
			t.Errorf("Find(%d) = %d, want %d", off, got, want)
		}
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		if _, err := DecodeManifest(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d: %v", i, err)
		}
	}
	for n := range len(b) {
		if _, err := DecodeManifest(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	empty := &Manifest{Part: testPart(0)}
	b, err = empty.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeManifest(b); err != nil || len(got.Objects) != 0 || got.NextOffset() != 0 {
		t.Fatalf("empty manifest: %+v %v", got, err)
	}
}

func TestManifestRejects(t *testing.T) {
	m := testManifest()
	m.Objects[1].BaseOffset = 203
	if _, err := m.AppendBinary(nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("gap between objects: %v", err)
	}
	m = testManifest()
	m.Objects[0].Size--
	if _, err := m.AppendBinary(nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("size disagreeing with entries: %v", err)
	}
	m = testManifest()
	m.LogStartOffset = 99
	if _, err := m.AppendBinary(nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("log start before first object: %v", err)
	}
	m = testManifest()
	m.Part.Topic = ""
	if _, err := m.AppendBinary(nil); err == nil {
		t.Fatal("empty topic name encoded")
	}
}

func TestPointer(t *testing.T) {
	b := encodePointer(1234567)
	if seq, err := decodePointer(b); err != nil || seq != 1234567 {
		t.Fatalf("pointer: %d %v", seq, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x80
		if _, err := decodePointer(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d: %v", i, err)
		}
	}
}

// FuzzDecodeIndex: decoding arbitrary bytes never panics and never
// allocates beyond what the input's length justifies; whatever decodes
// re-encodes to the same bytes and satisfies the reader's invariants.
func FuzzDecodeIndex(f *testing.F) {
	b, _ := AppendIndex(nil, testEntries())
	f.Add(b)
	f.Add(b[:len(b)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, tr, err := DecodeIndex(nil, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if tr.IndexBytes() != int64(len(b)) || len(entries) != tr.Entries {
			t.Fatalf("decoded %d entries from %d bytes", len(entries), len(b))
		}
		again, err := AppendIndex(nil, entries)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encode differs: %v", err)
		}
	})
}

// FuzzDecodeManifest: never panics; what decodes re-encodes identically
// and passes the manifest invariants.
func FuzzDecodeManifest(f *testing.F) {
	b, _ := testManifest().AppendBinary(nil)
	f.Add(b)
	e, _ := (&Manifest{Part: testPart(1)}).AppendBinary(nil)
	f.Add(e)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if err := m.check(); err != nil {
			t.Fatal(err)
		}
		again, err := m.AppendBinary(nil)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encode differs: %v", err)
		}
	})
}
