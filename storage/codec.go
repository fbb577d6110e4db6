package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Decompression for record validation: streaming decoders from pools,
// never the whole output in memory (raw snappy, a single block, is the one
// exception: it is decoded into a buffer bounded by the limit).
//
// Libraries: klauspost/compress for gzip, snappy and zstd, pierrec/lz4/v4
// for lz4 frames: the ones franz-go's consumer decodes with, so a batch
// klite accepts is one that client can read.

// Batch compression codec ids (attributes & 7).
const (
	codecNone   = 0
	codecGzip   = 1
	codecSnappy = 2
	codecLz4    = 3
	codecZstd   = 4
)

const (
	// decodeChunkBytes is the buffer decompressed records are walked
	// through.
	decodeChunkBytes = 64 << 10
	// zstdPooledWindow is the largest zstd window a pooled decoder keeps
	// memory for. Producers' defaults are 64 KiB (franz-go) to 8 MiB
	// (zstd level 19 as a stream, klauspost's default).
	zstdPooledWindow = 8 << 20
	// zstdMaxWindow is the largest window accepted at all: zstd's default
	// decoder limit (window log 27), so what the Java and librdkafka
	// consumers read. Larger windows decode with a decoder of their own
	// that is dropped afterwards.
	zstdMaxWindow = 128 << 20
	// snappyMaxRatio bounds what snappy can expand to: a 3-byte copy
	// element yields at most 64 bytes. A block claiming more is corrupt,
	// refused before its output buffer is allocated.
	snappyMaxRatio = 22
)

// decodeSlots bounds the compressed batches validated at once, and with it
// the decoders' memory (windows and buffers): one slot per CPU.
var decodeSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

var chunkPool = sync.Pool{New: func() any { b := make([]byte, decodeChunkBytes); return &b }}

// snappyBufPool holds the output buffers of raw snappy blocks, kept up to
// snappyPooledBytes.
var snappyBufPool = sync.Pool{New: func() any { return new([]byte) }}

const snappyPooledBytes = 4 << 20

type gzipDecoder struct {
	src bytes.Reader
	zr  gzip.Reader
}

type lz4Decoder struct {
	src bytes.Reader
	zr  *lz4.Reader
}

type zstdDecoder struct {
	src bytes.Reader
	zr  *zstd.Decoder
}

var (
	gzipPool = sync.Pool{New: func() any { return new(gzipDecoder) }}
	lz4Pool  = sync.Pool{New: func() any { return &lz4Decoder{zr: lz4.NewReader(nil)} }}
	zstdPool = sync.Pool{New: func() any { return newZstdDecoder(zstdPooledWindow) }}
	xerPool  = sync.Pool{New: func() any { return new(xerialReader) }}
)

func newZstdDecoder(window uint64) *zstdDecoder {
	// Concurrency 1 decodes in the caller's Read, no goroutines, so an
	// unused decoder is plain garbage (no Close needed when the pool drops it).
	zr, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(window),
		zstd.WithDecoderMaxMemory(window),
	)
	if err != nil {
		panic(err) // constant options
	}
	return &zstdDecoder{zr: zr}
}

// validateCompressed walks the records of a compressed batch through a
// streaming decoder.
func validateCompressed(data []byte, h *BatchHeader, max int64, keyRequired bool) error {
	decodeSlots <- struct{}{}
	defer func() { <-decodeSlots }()

	chunk := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(chunk)
	w := walker{chunk: *chunk, max: max, keyRequired: keyRequired}

	switch h.Compression() {
	case codecGzip:
		d := gzipPool.Get().(*gzipDecoder)
		defer gzipPool.Put(d)
		d.src.Reset(data)
		if err := d.zr.Reset(&d.src); err != nil {
			return decodeError(err)
		}
		w.src = &d.zr
	case codecSnappy:
		if len(data) >= xerialHeaderBytes && bytes.HasPrefix(data, xerialMagic) {
			x := xerPool.Get().(*xerialReader)
			defer xerPool.Put(x)
			x.reset(data[xerialHeaderBytes:], max)
			w.src = x
			break
		}
		// Raw snappy is one block: decode it whole (bounded), then walk it
		// as uncompressed bytes.
		buf := snappyBufPool.Get().(*[]byte)
		out, err := snappyBlock(*buf, data, max)
		if err != nil {
			snappyBufPool.Put(buf)
			return err
		}
		w := walker{buf: out, keyRequired: keyRequired}
		err = w.walk(h.NumRecords)
		if cap(out) <= snappyPooledBytes {
			*buf = out[:0]
		}
		snappyBufPool.Put(buf)
		return err
	case codecLz4:
		d := lz4Pool.Get().(*lz4Decoder)
		defer lz4Pool.Put(d)
		d.src.Reset(data)
		d.zr.Reset(&d.src)
		w.src = d.zr
	case codecZstd:
		var hdr zstd.Header
		window := uint64(0)
		if hdr.Decode(data) == nil {
			window = hdr.WindowSize
			if hdr.SingleSegment {
				window = hdr.FrameContentSize
			}
		}
		if window > zstdMaxWindow || (window > zstdPooledWindow && window > uint64(max)) {
			return &RecordError{Index: -1, Reason: fmt.Sprintf("zstd window of %d bytes", window), Kind: ErrRecordsTooLarge}
		}
		d := zstdPool.Get().(*zstdDecoder)
		if window > zstdPooledWindow {
			zstdPool.Put(d)
			d = newZstdDecoder(zstdMaxWindow) // rare: not kept, so its memory goes
		} else {
			defer zstdPool.Put(d)
		}
		d.src.Reset(data)
		if err := d.zr.Reset(&d.src); err != nil {
			return decodeError(err)
		}
		defer d.zr.Reset(nil) //nolint:errcheck // drops the reference to data
		w.src = d.zr
	default:
		return &RecordError{Index: -1, Reason: fmt.Sprintf("codec %d", h.Compression()), Kind: ErrBatchCodec}
	}
	return w.walk(h.NumRecords)
}

// decodeError classifies a decompressor's error.
func decodeError(err error) error {
	var re *RecordError
	if errors.As(err, &re) {
		return re
	}
	kind := ErrRecordsCorrupt
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		kind = ErrRecordsTooLarge
	}
	return &RecordError{Index: -1, Reason: err.Error(), Kind: kind}
}

// snappyBlock decodes one raw snappy block into dst (grown as needed),
// refusing one that claims more than max bytes or more than snappy can
// expand to.
func snappyBlock(dst, src []byte, max int64) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	switch {
	case err != nil:
		return nil, decodeError(err)
	case int64(n) > max:
		return nil, &RecordError{Index: -1, Reason: fmt.Sprintf("snappy block decompresses to %d bytes, more than %d", n, max), Kind: ErrRecordsTooLarge}
	case n > snappyMaxRatio*len(src)+64:
		return nil, &RecordError{Index: -1, Reason: fmt.Sprintf("snappy block of %d bytes claims %d", len(src), n), Kind: ErrRecordsCorrupt}
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	out, err := snappy.Decode(dst[:cap(dst)], src)
	if err != nil {
		return nil, decodeError(err)
	}
	return out, nil
}

// Xerial framing, what the Java producer's snappy writes: an 8-byte magic,
// two int32 versions, then blocks of int32 length + raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderBytes = 16

var errXerial = errors.New("malformed xerial snappy framing")

// xerialReader streams the blocks of a xerial-framed body, one decoded
// block at a time.
type xerialReader struct {
	src  []byte // undecoded blocks
	out  []byte // decoded, not yet read
	buf  []byte // reused block buffer
	left int64  // decoded bytes still allowed
}

func (x *xerialReader) reset(src []byte, max int64) {
	x.src, x.out, x.left = src, nil, max
}

func (x *xerialReader) Read(p []byte) (int, error) {
	for len(x.out) == 0 {
		if len(x.src) == 0 {
			return 0, io.EOF
		}
		if len(x.src) < 4 {
			return 0, errXerial
		}
		n := int64(binary.BigEndian.Uint32(x.src))
		if n > int64(len(x.src)-4) {
			return 0, errXerial
		}
		block := x.src[4 : 4+n]
		x.src = x.src[4+n:]
		out, err := snappyBlock(x.buf, block, x.left)
		if err != nil {
			return 0, err
		}
		x.buf = out[:0]
		if cap(x.buf) > decodeChunkBytes*4 {
			x.buf = nil // an odd large block: do not keep its buffer pooled
		}
		x.left -= int64(len(out))
		x.out = out
	}
	n := copy(p, x.out)
	x.out = x.out[n:]
	return n, nil
}
