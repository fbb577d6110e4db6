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

// batchRecords returns the records section of batch, decompressed into
// dst (grown as needed) unless uncompressed. Decoders come from the pools
// produce validation uses.
func batchRecords(batch []byte, h *BatchHeader, dst []byte) ([]byte, error) {
	data := batch[BatchHeaderBytes:]
	switch h.Compression() {
	case codecNone:
		return data, nil
	case codecGzip:
		d := gzipPool.Get().(*gzipDecoder)
		defer gzipPool.Put(d)
		d.src.Reset(data)
		if err := d.zr.Reset(&d.src); err != nil {
			return nil, err
		}
		return readAllInto(&d.zr, dst)
	case codecSnappy:
		if len(data) >= xerialHeaderBytes && bytes.HasPrefix(data, xerialMagic) {
			x := xerPool.Get().(*xerialReader)
			defer xerPool.Put(x)
			x.reset(data[xerialHeaderBytes:], compactMaxRecordBytes)
			return readAllInto(x, dst)
		}
		return snappyBlock(dst, data, compactMaxRecordBytes)
	case codecLz4:
		d := lz4Pool.Get().(*lz4Decoder)
		defer lz4Pool.Put(d)
		d.src.Reset(data)
		d.zr.Reset(&d.src)
		return readAllInto(d.zr, dst)
	case codecZstd:
		d := zstdPool.Get().(*zstdDecoder)
		out, err := d.zr.DecodeAll(data, dst[:0])
		zstdPool.Put(d)
		if err == nil {
			return out, nil
		}
		// A window past the pooled decoders' (rare): a decoder of its own.
		zr, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(compactMaxRecordBytes))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		return zr.DecodeAll(data, dst[:0])
	}
	return nil, fmt.Errorf("%w: codec %d", errCompactRecords, h.Compression())
}

// readAllInto reads r to its end into dst, at most compactMaxRecordBytes.
func readAllInto(r io.Reader, dst []byte) ([]byte, error) {
	dst = dst[:0]
	for {
		if len(dst) == cap(dst) {
			if len(dst) > compactMaxRecordBytes {
				return nil, fmt.Errorf("%w: more than %d bytes decompressed", errCompactRecords, compactMaxRecordBytes)
			}
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// rawRecord is one record of a batch as stored.
type rawRecord struct {
	raw         []byte // the whole record, its length prefix included
	tsDelta     int64
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
		body = body[1:] // attributes
		tsd, m := binary.Varint(body)
		if m <= 0 {
			return errCompactRecords
		}
		body = body[m:]
		r.tsDelta = tsd
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

var (
	gzipEncPool = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
	// 64 KiB blocks, as Kafka's producers write (the default 4 MiB block
	// costs 4 MiB of buffers per writer).
	lz4EncPool = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb))
		return w
	}}
)

// compressRecords appends recs compressed with codec to dst; orig is the
// batch's original compressed body, whose framing (xerial or raw snappy)
// is kept.
func compressRecords(codec int8, recs, orig, dst []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	switch codec {
	case codecNone:
		return append(dst, recs...), nil
	case codecGzip:
		w := gzipEncPool.Get().(*gzip.Writer)
		defer gzipEncPool.Put(w)
		if err := streamTo(w, buf, recs); err != nil {
			return nil, err
		}
	case codecSnappy:
		if !bytes.HasPrefix(orig, xerialMagic) {
			return append(dst, snappy.Encode(nil, recs)...), nil
		}
		// Xerial framing as the Java producer writes it: magic, version 1,
		// compatible version 1, then length-prefixed blocks of 32 KiB input.
		out := append(dst, xerialMagic...)
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
		w := lz4EncPool.Get().(*lz4.Writer)
		defer lz4EncPool.Put(w)
		if err := streamTo(w, buf, recs); err != nil {
			return nil, err
		}
	case codecZstd:
		return zstdEnc().EncodeAll(recs, dst), nil
	default:
		return nil, fmt.Errorf("%w: codec %d", errCompactRecords, codec)
	}
	return buf.Bytes(), nil
}

// streamTo compresses recs into buf through the pooled stream writer w.
func streamTo(w interface {
	Reset(io.Writer)
	io.WriteCloser
}, buf *bytes.Buffer, recs []byte) error {
	w.Reset(buf)
	if _, err := w.Write(recs); err != nil {
		return err
	}
	return w.Close()
}

// rebuildBatch returns, in dst's memory, a batch with the header of batch (base offset,
// lastOffsetDelta, first timestamp, producer fields and attributes
// unchanged) holding the records kept (count of them, uncompressed) under
// the batch's codec, with a new length, max timestamp and CRC.
func rebuildBatch(batch []byte, h *BatchHeader, kept []byte, count int32, maxTs int64, dst []byte) ([]byte, error) {
	out, err := compressRecords(h.Compression(), kept, batch[BatchHeaderBytes:], append(dst[:0], batch[:BatchHeaderBytes]...))
	if err != nil {
		return nil, err
	}
	be := binary.BigEndian
	be.PutUint32(out[batchLengthAt:], uint32(len(out)-batchLengthOverhead))
	be.PutUint32(out[batchRecordCountAt:], uint32(count))
	be.PutUint64(out[batchMaxTimestampAt:], uint64(maxTs))
	be.PutUint32(out[batchCRCAt:], crc32.Checksum(out[batchAttributesAt:], castagnoli))
	return out, nil
}
