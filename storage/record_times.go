package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// RecordTimestamps calls fn with the offset delta and timestamp of each
// record of b, one whole stored batch (header included), in order, until fn
// returns false. A record's timestamp is the batch's first timestamp plus
// its delta; in a LogAppendTime batch every record's is the batch's
// maxTimestamp, as Kafka's consumers read it. A compressed batch is
// decompressed whole, refused past maxDecompressed bytes. ListOffsets uses
// it to answer with the exact record inside a batch (Kafka semantics); it is
// not on any hot path.
func RecordTimestamps(b []byte, maxDecompressed int64, fn func(offsetDelta int32, ts int64) bool) error {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return err
	}
	if len(b) < h.Size() || h.Size() < BatchHeaderBytes {
		return ErrBatchLength
	}
	recs := b[BatchHeaderBytes:h.Size()]
	if h.Compression() != codecNone {
		if recs, err = decompressAll(recs, &h, maxDecompressed); err != nil {
			return err
		}
	}
	for i := int32(0); i < h.NumRecords && len(recs) > 0; i++ {
		size, n := binary.Varint(recs)
		if n <= 0 || size < 0 || int64(len(recs)-n) < size {
			return fmt.Errorf("%w: record %d length", ErrRecordInvalid, i)
		}
		rec := recs[n : n+int(size)]
		recs = recs[n+int(size):]
		if len(rec) < 1 {
			return fmt.Errorf("%w: record %d truncated", ErrRecordInvalid, i)
		}
		rec = rec[1:] // attributes
		tsDelta, n := binary.Varint(rec)
		if n <= 0 {
			return fmt.Errorf("%w: record %d timestamp delta", ErrRecordInvalid, i)
		}
		offDelta, m := binary.Varint(rec[n:])
		if m <= 0 {
			return fmt.Errorf("%w: record %d offset delta", ErrRecordInvalid, i)
		}
		ts := h.FirstTimestamp + tsDelta
		if h.LogAppendTime() {
			ts = h.MaxTimestamp
		}
		if !fn(int32(offDelta), ts) {
			return nil
		}
	}
	return nil
}

// decompressAll decodes a compressed records section whole, at most max
// bytes of it.
func decompressAll(data []byte, h *BatchHeader, max int64) ([]byte, error) {
	var r io.Reader
	switch h.Compression() {
	case codecGzip:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, decodeError(err)
		}
		r = zr
	case codecSnappy:
		if len(data) >= xerialHeaderBytes && bytes.HasPrefix(data, xerialMagic) {
			x := &xerialReader{}
			x.reset(data[xerialHeaderBytes:], max)
			r = x
			break
		}
		return snappyBlock(nil, data, max)
	case codecLz4:
		r = lz4.NewReader(bytes.NewReader(data))
	case codecZstd:
		zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, decodeError(err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("%w: codec %d", ErrBatchCodec, h.Compression())
	}
	out, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, decodeError(err)
	}
	if int64(len(out)) > max {
		return nil, fmt.Errorf("%w: batch decompresses past %d bytes", ErrRecordsTooLarge, max)
	}
	return out, nil
}
