package tier

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Data object format (part of the bucket format; never change in place,
// bump objectVersion):
//
//	[0, dataBytes)                 the partition's record batches, contiguous, as a fetch sends them
//	[dataBytes, +44*entries)       index: one entry per chunk (see IndexEntry), offset order
//	[end-48, end)                  trailer
//
//	index entry (44 bytes, big-endian):
//	| base offset i64 | last offset i64 | position u64 | length u32 | max timestamp i64 | max timestamp offset i64 |
//
//	trailer (48 bytes, big-endian):
//	| magic "KLTO" u32 | version u8 =1|2 | flags u8 =0 | 0 u16 | data bytes u64 | entries u32 |
//	| index CRC-32C u32 | base offset i64 | last offset i64 | 0 u32 | trailer CRC-32C u32 |
//
// The index is a footer rather than a separate object so that one PUT makes
// data and index visible together: no state exists where one is there
// without the other. The manifest records data bytes and size, so a reader
// fetches index+trailer with one ranged GET and then exactly the batches it
// needs with another; without a manifest (disaster recovery, fsck) the
// trailer alone locates the index.
//
// Version 1 objects (uploaded as written) hold every offset of each entry.
// Version 2 objects (written by compaction, rewrite.go) are sparse: entries
// stay contiguous in offsets and bytes, but the batches of an entry may
// start after its base offset, leave gaps between them and end before its
// last offset (records compacted away keep no place). The layout is the
// same; only the verifier's offset checks differ, and a binary that knows
// only version 1 refuses a version 2 object cleanly.
const (
	objectMagic      = 0x4b4c544f // "KLTO"
	objectVersion    = 1
	objectVersionV2  = 2 // sparse offsets
	indexEntryBytes  = 44
	trailerBytes     = 48
	maxObjectEntries = 1 << 20 // bounds decoding allocations (a 46 MiB index)
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// IndexEntry locates one run of batches (a storage chunk) inside a data
// object.
type IndexEntry struct {
	BaseOffset int64
	LastOffset int64
	// Pos is the byte position of the first batch in the object; Len the
	// bytes of batches.
	Pos int64
	Len int32
	// MaxTimestamp is the largest batch max timestamp in the run, and
	// MaxTimestampOffset the base offset of the first batch carrying it.
	MaxTimestamp       int64
	MaxTimestampOffset int64
}

// Trailer is the decoded fixed-size end of a data object.
type Trailer struct {
	Version    uint8 // objectVersion, or objectVersionV2 (sparse)
	DataBytes  int64
	Entries    int
	IndexCRC   uint32
	BaseOffset int64
	LastOffset int64
}

// IndexBytes is the size of the index and trailer that follow the data.
func (t Trailer) IndexBytes() int64 { return int64(t.Entries)*indexEntryBytes + trailerBytes }

// Sparse reports whether the object may have offset gaps (version 2).
func (t Trailer) Sparse() bool { return t.Version == objectVersionV2 }

// AppendIndex appends the index and trailer of a version 1 object for
// entries (whose positions must already be object positions, contiguous
// from 0) to dst.
func AppendIndex(dst []byte, entries []IndexEntry) ([]byte, error) {
	return appendIndex(dst, entries, objectVersion)
}

// appendIndex is AppendIndex for object version v.
func appendIndex(dst []byte, entries []IndexEntry, v uint8) ([]byte, error) {
	if err := checkEntries(entries, -1); err != nil {
		return dst, err
	}
	start := len(dst)
	var e [indexEntryBytes]byte
	for _, x := range entries {
		binary.BigEndian.PutUint64(e[0:], uint64(x.BaseOffset))
		binary.BigEndian.PutUint64(e[8:], uint64(x.LastOffset))
		binary.BigEndian.PutUint64(e[16:], uint64(x.Pos))
		binary.BigEndian.PutUint32(e[24:], uint32(x.Len))
		binary.BigEndian.PutUint64(e[28:], uint64(x.MaxTimestamp))
		binary.BigEndian.PutUint64(e[36:], uint64(x.MaxTimestampOffset))
		dst = append(dst, e[:]...)
	}
	last := entries[len(entries)-1]
	var t [trailerBytes]byte
	binary.BigEndian.PutUint32(t[0:], objectMagic)
	t[4] = v
	binary.BigEndian.PutUint64(t[8:], uint64(last.Pos+int64(last.Len)))
	binary.BigEndian.PutUint32(t[16:], uint32(len(entries)))
	binary.BigEndian.PutUint32(t[20:], crc32.Checksum(dst[start:], crcTable))
	binary.BigEndian.PutUint64(t[24:], uint64(entries[0].BaseOffset))
	binary.BigEndian.PutUint64(t[32:], uint64(last.LastOffset))
	binary.BigEndian.PutUint32(t[44:], crc32.Checksum(t[:44], crcTable))
	return append(dst, t[:]...), nil
}

// DecodeTrailer checks and decodes the last trailerBytes of an object.
func DecodeTrailer(b []byte) (Trailer, error) {
	if len(b) != trailerBytes {
		return Trailer{}, fmt.Errorf("%w: trailer of %d bytes", ErrCorrupt, len(b))
	}
	if binary.BigEndian.Uint32(b[0:]) != objectMagic {
		return Trailer{}, fmt.Errorf("%w: bad object magic", ErrCorrupt)
	}
	if crc32.Checksum(b[:44], crcTable) != binary.BigEndian.Uint32(b[44:]) {
		return Trailer{}, fmt.Errorf("%w: trailer CRC mismatch", ErrCorrupt)
	}
	if b[4] != objectVersion && b[4] != objectVersionV2 {
		return Trailer{}, fmt.Errorf("%w: object version %d", ErrCorrupt, b[4])
	}
	t := Trailer{
		Version:    b[4],
		DataBytes:  int64(binary.BigEndian.Uint64(b[8:])),
		Entries:    int(binary.BigEndian.Uint32(b[16:])),
		IndexCRC:   binary.BigEndian.Uint32(b[20:]),
		BaseOffset: int64(binary.BigEndian.Uint64(b[24:])),
		LastOffset: int64(binary.BigEndian.Uint64(b[32:])),
	}
	if t.DataBytes < 0 || t.Entries <= 0 || t.Entries > maxObjectEntries || t.BaseOffset < 0 || t.LastOffset < t.BaseOffset {
		return Trailer{}, fmt.Errorf("%w: trailer fields out of range", ErrCorrupt)
	}
	return t, nil
}

// DecodeIndex decodes index+trailer bytes (the object's last
// t.IndexBytes() bytes, as one ranged GET returns them), appending the
// entries to dst. Every invariant the reader relies on is checked, so a
// decoded index can be binary searched and its ranges read without further
// bounds checks.
func DecodeIndex(dst []IndexEntry, b []byte) ([]IndexEntry, Trailer, error) {
	if len(b) < trailerBytes {
		return dst, Trailer{}, fmt.Errorf("%w: index of %d bytes", ErrCorrupt, len(b))
	}
	t, err := DecodeTrailer(b[len(b)-trailerBytes:])
	if err != nil {
		return dst, t, err
	}
	if int64(len(b)) != t.IndexBytes() {
		return dst, t, fmt.Errorf("%w: index of %d bytes for %d entries", ErrCorrupt, len(b), t.Entries)
	}
	ib := b[:len(b)-trailerBytes]
	if crc32.Checksum(ib, crcTable) != t.IndexCRC {
		return dst, t, fmt.Errorf("%w: index CRC mismatch", ErrCorrupt)
	}
	start := len(dst)
	dst = append(dst, make([]IndexEntry, t.Entries)...)
	out := dst[start:]
	for i := range out {
		e := ib[i*indexEntryBytes:]
		out[i] = IndexEntry{
			BaseOffset:         int64(binary.BigEndian.Uint64(e[0:])),
			LastOffset:         int64(binary.BigEndian.Uint64(e[8:])),
			Pos:                int64(binary.BigEndian.Uint64(e[16:])),
			Len:                int32(binary.BigEndian.Uint32(e[24:])),
			MaxTimestamp:       int64(binary.BigEndian.Uint64(e[28:])),
			MaxTimestampOffset: int64(binary.BigEndian.Uint64(e[36:])),
		}
	}
	if err := checkEntries(out, t.DataBytes); err != nil {
		return dst[:start], t, err
	}
	if out[0].BaseOffset != t.BaseOffset || out[len(out)-1].LastOffset != t.LastOffset {
		return dst[:start], t, fmt.Errorf("%w: trailer offsets disagree with index", ErrCorrupt)
	}
	return dst, t, nil
}

// checkEntries verifies entries are non-empty, offset- and position-
// contiguous from position 0, and (if dataBytes >= 0) end at dataBytes.
func checkEntries(entries []IndexEntry, dataBytes int64) error {
	if len(entries) == 0 {
		return fmt.Errorf("%w: no index entries", ErrCorrupt)
	}
	if len(entries) > maxObjectEntries {
		return fmt.Errorf("%w: %d index entries", ErrCorrupt, len(entries))
	}
	var pos int64
	for i, e := range entries {
		if e.BaseOffset < 0 || e.LastOffset < e.BaseOffset || e.Len <= 0 || e.Pos != pos {
			return fmt.Errorf("%w: index entry %d invalid", ErrCorrupt, i)
		}
		if i > 0 && e.BaseOffset != entries[i-1].LastOffset+1 {
			return fmt.Errorf("%w: index entry %d not contiguous", ErrCorrupt, i)
		}
		pos += int64(e.Len)
	}
	if dataBytes >= 0 && pos != dataBytes {
		return fmt.Errorf("%w: index covers %d of %d data bytes", ErrCorrupt, pos, dataBytes)
	}
	return nil
}

// findEntry returns the index of the entry holding offset, or -1.
func findEntry(entries []IndexEntry, offset int64) int {
	lo, hi := 0, len(entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if entries[m].LastOffset < offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(entries) || entries[lo].BaseOffset > offset {
		return -1
	}
	return lo
}
