package tier

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Record batch v2 fields the verifier reads besides those in cold.go
// (Kafka's on-disk format; the CRC-32C covers attributes to the end).
const (
	batchMagicAt = 16
	batchCRCAt   = 17
	batchCRCFrom = 21
	batchMagicV2 = 2
)

// verifySpan checks the bytes of index entries idx[first:end], fetched
// from an object, before anything of them is served or cached: each
// entry's bytes are whole v2 batches whose CRC-32C holds, whose offsets
// run contiguously from the entry's BaseOffset to its LastOffset, and
// whose lengths add up to the entry's Len. The object format checksums
// only its index and trailer, so this is what stops a flipped bit or an
// edited base offset in the bucket from reaching a client (clients skip
// to the offsets they asked for, trusting these). The cost is one CRC
// pass over bytes already in memory, once per GET (hits are not checked
// again: cached buffers are immutable). In a sparse (version 2) object
// the batches of an entry lie within its offsets, in order, gaps allowed.
func verifySpan(buf []byte, idx []IndexEntry, first, end int32, sparse bool) error {
	pos := idx[first].Pos
	for k := first; k < end; k++ {
		e := &idx[k]
		start := e.Pos - pos
		if start < 0 || start+int64(e.Len) > int64(len(buf)) {
			return fmt.Errorf("%w: entry %d [%d, %d] outside the %d bytes fetched", ErrCorrupt, k, e.BaseOffset, e.LastOffset, len(buf))
		}
		if err := verifyBatches(buf[start:start+int64(e.Len)], e.BaseOffset, e.LastOffset, sparse); err != nil {
			return fmt.Errorf("entry %d [%d, %d]: %w", k, e.BaseOffset, e.LastOffset, err)
		}
	}
	return nil
}

// verifyBatches checks that b is whole v2 batches, each with a valid
// CRC-32C, holding exactly offsets base..last without a gap (storage's
// chunks are contiguous; see storage.validChunk); sparse: offsets rising
// within base..last, gaps allowed (compacted objects).
func verifyBatches(b []byte, base, last int64, sparse bool) error {
	next := base
	for at := 0; at < len(b); {
		rest := b[at:]
		if len(rest) < batchHeaderBytes {
			return fmt.Errorf("%w: %d bytes at %d are not a batch header", ErrCorrupt, len(rest), at)
		}
		size := int64(batchLengthPrefixLen) + int64(int32(binary.BigEndian.Uint32(rest[batchLengthAt:])))
		if size < batchHeaderBytes || size > int64(len(rest)) {
			return fmt.Errorf("%w: batch at %d claims %d bytes of %d", ErrCorrupt, at, size, len(rest))
		}
		batch := rest[:size]
		if batch[batchMagicAt] != batchMagicV2 {
			return fmt.Errorf("%w: batch at %d has magic %d", ErrCorrupt, at, batch[batchMagicAt])
		}
		if crc32.Checksum(batch[batchCRCFrom:], crcTable) != binary.BigEndian.Uint32(batch[batchCRCAt:]) {
			return fmt.Errorf("%w: batch at offset %d fails its CRC", ErrCorrupt, int64(binary.BigEndian.Uint64(batch)))
		}
		bb := int64(binary.BigEndian.Uint64(batch))
		delta := int32(binary.BigEndian.Uint32(batch[batchLastDeltaAt:]))
		if (bb != next && (!sparse || bb < next)) || delta < 0 {
			return fmt.Errorf("%w: batch base offset %d (last offset delta %d), want %d", ErrCorrupt, bb, delta, next)
		}
		next = bb + int64(delta) + 1
		at += int(size)
	}
	if next != last+1 && (!sparse || next > last+1) {
		return fmt.Errorf("%w: batches end at offset %d, index says %d", ErrCorrupt, next-1, last)
	}
	return nil
}
