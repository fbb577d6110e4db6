package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Record-level work of compaction (compact.go): decoding a batch's records
// to find keys and null values, and rebuilding a batch from the records
// that survive. A record is copied as the producer encoded it (its offset
// and timestamp deltas are relative to the batch header, which keeps its
// base offset, lastOffsetDelta and timestamps), so only the record count,
// the length, the CRC and, for a compressed batch, the compression change.

// compactMaxRecordBytes bounds a batch's decompressed records during
// compaction. A batch past it (impossible for one produce accepted under
// the default limits) is kept whole, uncleaned.
const compactMaxRecordBytes = 256 << 20

var errCompactRecords = errors.New("storage: compaction: malformed records")

// batchRecords returns the records section of batch, decompressed.
func batchRecords(batch []byte, h *BatchHeader) ([]byte, error) {
	data := batch[BatchHeaderBytes:]
	var r io.Reader
	switch h.Compression() {
	case codecNone:
		return data, nil
	case codecGzip:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = zr
	case codecSnappy:
		if len(data) >= xerialHeaderBytes && bytes.HasPrefix(data, xerialMagic) {
			x := new(xerialReader)
			x.reset(data[xerialHeaderBytes:], compactMaxRecordBytes)
			r = x
			break
		}
		return snappyBlock(nil, data, compactMaxRecordBytes)
	case codecLz4:
		r = lz4.NewReader(bytes.NewReader(data))
	case codecZstd:
		d, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(compactMaxRecordBytes))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		r = d
	default:
		return nil, fmt.Errorf("%w: codec %d", errCompactRecords, h.Compression())
	}
	out, err := io.ReadAll(io.LimitReader(r, compactMaxRecordBytes+1))
	if err != nil {
		return nil, err
	}
	if len(out) > compactMaxRecordBytes {
		return nil, fmt.Errorf("%w: more than %d bytes decompressed", errCompactRecords, compactMaxRecordBytes)
	}
	return out, nil
}

// rawRecord is one record of a batch as stored.
type rawRecord struct {
	raw         []byte // the whole record, its length prefix included
	offsetDelta int32
	key         []byte // nil: no key
	nullValue   bool   // a tombstone
}

// eachRecord calls fn with every record of recs (count of them).
func eachRecord(recs []byte, count int32, fn func(r *rawRecord)) error {
	var r rawRecord
	for i := int32(0); i < count; i++ {
		l, n := binary.Varint(recs)
		if n <= 0 || l < 1 || l > int64(len(recs)-n) {
			return errCompactRecords
		}
		r.raw = recs[:n+int(l)]
		body := recs[n : n+int(l)]
		recs = recs[n+int(l):]
		body = body[1:]             // attributes
		_, m := binary.Varint(body) // timestamp delta
		if m <= 0 {
			return errCompactRecords
		}
		body = body[m:]
		od, m := binary.Varint(body)
		if m <= 0 {
			return errCompactRecords
		}
		body = body[m:]
		r.offsetDelta = int32(od)
		kl, m := binary.Varint(body)
		if m <= 0 || kl < -1 || kl > int64(len(body)-m) {
			return errCompactRecords
		}
		body = body[m:]
		r.key = nil
		if kl >= 0 {
			r.key = body[:kl:kl]
			body = body[kl:]
		}
		vl, m := binary.Varint(body)
		if m <= 0 || vl < -1 {
			return errCompactRecords
		}
		r.nullValue = vl < 0
		fn(&r)
	}
	if len(recs) != 0 {
		return errCompactRecords
	}
	return nil
}

var zstdEnc = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err) // constant options
	}
	return e
})

// compressRecords compresses recs with codec; orig is the batch's original
// compressed body, whose framing (xerial or raw snappy) is kept.
func compressRecords(codec int8, recs, orig []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch codec {
	case codecNone:
		return recs, nil
	case codecGzip:
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(recs); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case codecSnappy:
		if !bytes.HasPrefix(orig, xerialMagic) {
			return snappy.Encode(nil, recs), nil
		}
		// Xerial framing as the Java producer writes it: magic, version 1,
		// compatible version 1, then length-prefixed blocks of 32 KiB input.
		out := append([]byte(nil), xerialMagic...)
		out = binary.BigEndian.AppendUint32(out, 1)
		out = binary.BigEndian.AppendUint32(out, 1)
		for len(recs) > 0 {
			n := min(len(recs), 32<<10)
			blk := snappy.Encode(nil, recs[:n])
			out = binary.BigEndian.AppendUint32(out, uint32(len(blk)))
			out = append(out, blk...)
			recs = recs[n:]
		}
		return out, nil
	case codecLz4:
		w := lz4.NewWriter(&buf)
		if _, err := w.Write(recs); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case codecZstd:
		return zstdEnc().EncodeAll(recs, nil), nil
	default:
		return nil, fmt.Errorf("%w: codec %d", errCompactRecords, codec)
	}
	return buf.Bytes(), nil
}

// rebuildBatch returns a batch with the header of batch (base offset,
// lastOffsetDelta, timestamps, producer fields and attributes unchanged)
// holding the records kept (count of them, uncompressed) under the
// batch's codec, with a new length and CRC.
func rebuildBatch(batch []byte, h *BatchHeader, kept []byte, count int32) ([]byte, error) {
	body, err := compressRecords(h.Compression(), kept, batch[BatchHeaderBytes:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, BatchHeaderBytes, BatchHeaderBytes+len(body))
	copy(out, batch[:BatchHeaderBytes])
	out = append(out, body...)
	be := binary.BigEndian
	be.PutUint32(out[batchLengthAt:], uint32(len(out)-batchLengthOverhead))
	be.PutUint32(out[batchRecordCountAt:], uint32(count))
	be.PutUint32(out[batchCRCAt:], crc32.Checksum(out[batchAttributesAt:], castagnoli))
	return out, nil
}
