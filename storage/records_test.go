package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ---- building records and batches ----

type hdr struct{ k, v []byte } // v nil: null value

// rec encodes one record with offset delta i.
func rec(i int, key, val []byte, headers ...hdr) []byte {
	var body []byte
	body = append(body, 0)
	body = binary.AppendVarint(body, int64(i)*3) // timestamp delta
	body = binary.AppendVarint(body, int64(i))
	body = appendBytes(body, key)
	body = appendBytes(body, val)
	body = binary.AppendVarint(body, int64(len(headers)))
	for _, h := range headers {
		body = appendBytes(body, h.k)
		body = appendBytes(body, h.v)
	}
	return append(binary.AppendVarint(nil, int64(len(body))), body...)
}

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	return append(binary.AppendVarint(b, int64(len(v))), v...)
}

// rawRec encodes a record from a hand-made body (its length prefixed).
func rawRec(body ...byte) []byte { return append(binary.AppendVarint(nil, int64(len(body))), body...) }

func recs(n, valueBytes int) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		b = append(b, rec(i, []byte{'k', byte(i)}, bytes.Repeat([]byte{byte(i)}, valueBytes))...)
	}
	return b
}

// compress encodes data with codec the way producers do (snappy 5 is
// xerial framing, as the Java producer writes it).
func compress(t testing.TB, codec int, data io.Reader) []byte {
	t.Helper()
	var out bytes.Buffer
	var w io.WriteCloser
	switch codec {
	case codecNone:
		b, _ := io.ReadAll(data)
		return b
	case codecGzip:
		w = gzip.NewWriter(&out)
	case codecLz4:
		w = lz4.NewWriter(&out)
	case codecZstd:
		zw, err := zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	case codecSnappy:
		b, _ := io.ReadAll(data)
		return snappy.Encode(nil, b)
	case codecXerial:
		out.Write(xerialMagic)
		out.Write([]byte{0, 0, 0, 1, 0, 0, 0, 1})
		buf := make([]byte, 32<<10)
		for {
			n, err := io.ReadFull(data, buf)
			if n > 0 {
				block := snappy.Encode(nil, buf[:n])
				out.Write(binary.BigEndian.AppendUint32(nil, uint32(len(block))))
				out.Write(block)
			}
			if err != nil {
				return out.Bytes()
			}
		}
	}
	if _, err := io.Copy(struct{ io.Writer }{w}, data); err != nil { // lz4.Writer.ReadFrom wants a fresh writer
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

const codecXerial = 5 // test-only: snappy in xerial framing

func codecID(codec int) int16 {
	if codec == codecXerial {
		return codecSnappy
	}
	return int16(codec)
}

// batchWith wraps body (already compressed as codec says) in a v2 batch
// declaring count records, with a valid CRC.
func batchWith(codec int, count int32, body []byte) []byte {
	b := make([]byte, BatchHeaderBytes, BatchHeaderBytes+len(body))
	be := binary.BigEndian
	be.PutUint32(b[batchLeaderEpochAt:], 0xffffffff)
	b[batchMagicAt] = 2
	be.PutUint16(b[batchAttributesAt:], uint16(codecID(codec)))
	be.PutUint32(b[batchLastOffsetDeltaAt:], uint32(count-1))
	be.PutUint64(b[batchProducerIDAt:], math.MaxUint64)
	be.PutUint16(b[batchProducerEpochAt:], 0xffff)
	be.PutUint32(b[batchBaseSequenceAt:], 0xffffffff)
	be.PutUint32(b[batchRecordCountAt:], uint32(count))
	b = append(b, body...)
	be.PutUint32(b[batchLengthAt:], uint32(len(b)-batchLengthOverhead))
	be.PutUint32(b[batchCRCAt:], crc32.Checksum(b[batchAttributesAt:], castagnoli))
	return b
}

func validate(b []byte, max int64) error {
	h, err := ValidateBatch(b)
	if err != nil {
		return err
	}
	return ValidateRecords(b, &h, max, false)
}

var allCodecs = []int{codecNone, codecGzip, codecSnappy, codecXerial, codecLz4, codecZstd}

// ---- tests ----

func TestValidateRecordsValid(t *testing.T) {
	bodies := map[string]struct {
		n    int32
		data []byte
	}{
		"one":           {1, rec(0, nil, []byte("v"))},
		"null value":    {1, rec(0, []byte("k"), nil)},
		"empty key":     {1, rec(0, []byte{}, []byte{})},
		"headers":       {2, append(rec(0, nil, []byte("a"), hdr{[]byte("h"), []byte("1")}, hdr{[]byte(""), nil}), rec(1, []byte("k"), nil, hdr{[]byte("x"), []byte{}})...)},
		"many":          {500, recs(500, 100)},
		"across chunks": {3, recs(3, 100<<10)}, // values longer than the decode buffer
	}
	for name, c := range bodies {
		for _, codec := range allCodecs {
			b := batchWith(codec, c.n, compress(t, codec, bytes.NewReader(c.data)))
			if err := validate(b, 64<<20); err != nil {
				t.Errorf("%s codec %d: %v", name, codec, err)
			}
		}
	}
}

func TestValidateRecordsInvalid(t *testing.T) {
	one := rec(0, []byte("k"), []byte("value"))
	three := append(append(rec(0, nil, []byte("a")), rec(1, nil, []byte("b"))...), rec(2, nil, []byte("c"))...)
	garbage := []byte("this is not a record at all, just bytes under a valid CRC")
	cases := []struct {
		name  string
		count int32
		body  []byte
	}{
		{"garbage", 1, garbage},
		{"count 1 holding 3", 1, three},
		{"count 3 holding 1", 3, one},
		{"count 2^31-1 holding 1", math.MaxInt32, one},
		{"empty records", 1, nil},
		{"truncated length varint", 1, []byte{0x80}},
		{"truncated delta varint", 1, rawRec(0, 0, 0x80)},
		{"overlong varint", 1, rawRec(0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 1, 1, 0)},
		{"varint overflowing 32 bits", 1, rawRec(0, 0, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 1, 0)},
		{"negative record length", 1, []byte{0x01, 0, 0, 0, 1, 1, 0}},
		{"record length past the batch", 1, append([]byte{0x7e}, one[1:]...)},
		{"record shorter than its fields", 1, rawRec(0, 0, 0, 1)},
		{"trailing bytes in a record", 1, rawRec(0, 0, 0, 1, 1, 0, 9, 9)},
		{"trailing bytes after the last record", 1, append(append([]byte{}, one...), 0)},
		{"offset delta 1 first", 1, rec(1, nil, []byte("x"))},
		{"offset deltas out of order", 2, append(rec(1, nil, nil), rec(0, nil, nil)...)},
		{"key length -2", 1, rawRec(0, 0, 0, 3, 1, 0)},
		{"key length past the record", 1, rawRec(0, 0, 0, 20, 1, 0)},
		{"value length past the record", 1, rawRec(0, 0, 0, 1, 40, 'a', 0)},
		{"negative header count", 1, rawRec(0, 0, 0, 1, 1, 1)},
		{"header count past the record", 1, rawRec(0, 0, 0, 1, 1, 100)},
		{"null header key", 1, rawRec(0, 0, 0, 1, 1, 2, 1, 1)},
		{"header value length -3", 1, rawRec(0, 0, 0, 1, 1, 2, 2, 'h', 5)},
		{"header value past the record", 1, rawRec(0, 0, 0, 1, 1, 2, 2, 'h', 10, 'x')},
	}
	for _, c := range cases {
		for _, codec := range allCodecs {
			b := batchWith(codec, c.count, compress(t, codec, bytes.NewReader(c.body)))
			err := validate(b, 64<<20)
			if !errors.Is(err, ErrRecordInvalid) {
				t.Errorf("%s codec %d: %v, want ErrRecordInvalid", c.name, codec, err)
			}
		}
	}
}

func TestValidateRecordsErrorNamesRecord(t *testing.T) {
	body := append(rec(0, nil, []byte("ok")), rec(2, nil, []byte("bad delta"))...)
	err := validate(batchWith(codecNone, 2, body), 1<<20)
	var re *RecordError
	if !errors.As(err, &re) || re.Index != 1 || re.Kind != ErrRecordInvalid {
		t.Fatalf("got %v, want record 1 invalid", err)
	}
}

func TestValidateRecordsCorrupt(t *testing.T) {
	good := recs(3, 1000)
	cut := func(codec int) []byte {
		c := compress(t, codec, bytes.NewReader(good))
		return c[:len(c)-5] // the stream's end (checksum, end mark) is gone
	}
	flip := func(codec int) []byte {
		c := compress(t, codec, bytes.NewReader(good))
		c[len(c)-1] ^= 0xff // checksum
		return c
	}
	garbage := bytes.Repeat([]byte("not compressed "), 20)
	cases := []struct {
		name  string
		codec int
		body  []byte
	}{
		{"gzip garbage", codecGzip, garbage},
		{"gzip truncated", codecGzip, cut(codecGzip)},
		{"gzip bad crc", codecGzip, flip(codecGzip)},
		{"gzip trailing garbage", codecGzip, append(compress(t, codecGzip, bytes.NewReader(good)), 1, 2, 3)},
		{"zstd garbage", codecZstd, garbage},
		{"zstd truncated", codecZstd, cut(codecZstd)},
		{"lz4 garbage", codecLz4, garbage},
		{"lz4 truncated", codecLz4, cut(codecLz4)},
		{"snappy garbage", codecSnappy, []byte{0xff, 0xff, 0x03, 1, 2, 3}},
		{"snappy truncated", codecSnappy, cut(codecSnappy)},
		{"xerial truncated", codecXerial, cut(codecXerial)},
		{"xerial block length past the end", codecXerial, append(append(append([]byte{}, xerialMagic...), 0, 0, 0, 1, 0, 0, 0, 1), 0, 0, 1, 0, 1)},
		{"empty gzip body", codecGzip, nil},
	}
	for _, c := range cases {
		err := validate(batchWith(c.codec, 3, c.body), 64<<20)
		if !errors.Is(err, ErrRecordsCorrupt) {
			t.Errorf("%s: %v, want ErrRecordsCorrupt", c.name, err)
		}
	}
}

// zeroReader is an endless reader of zero bytes.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// bomb is one record whose value is size zero bytes, compressed: a few KiB
// that decompress to size.
func bomb(t testing.TB, codec int, size int) []byte {
	var head []byte
	head = append(head, 0, 0, 0, 1) // attributes, ts delta, offset delta, null key
	head = binary.AppendVarint(head, int64(size))
	bodyLen := len(head) + size + 1
	stream := io.MultiReader(bytes.NewReader(binary.AppendVarint(nil, int64(bodyLen))), bytes.NewReader(head),
		io.LimitReader(zeroReader{}, int64(size)), bytes.NewReader([]byte{0}))
	return batchWith(codec, 1, compress(t, codec, stream))
}

// A decompression bomb is refused once it passes the limit, and validating
// one that stays under a huge limit streams it: memory allocated is a small
// fraction of what it decompresses to.
func TestValidateRecordsBomb(t *testing.T) {
	const size = 16 << 20
	// No GC while measuring: a GC empties the decoder pools (sync.Pool)
	// between the warming call and the measured one, and the measured one
	// then allocates a fresh lz4 block buffer (seen once in CI: 4.26 MB).
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for _, codec := range []int{codecGzip, codecXerial, codecLz4, codecZstd} {
		b := bomb(t, codec, size)
		if len(b) > size/16 { // snappy expands at most ~21x
			t.Fatalf("codec %d: bomb of %d bytes is no bomb", codec, len(b))
		}
		if err := validate(b, 1<<20); !errors.Is(err, ErrRecordsTooLarge) {
			t.Fatalf("codec %d: %v, want ErrRecordsTooLarge", codec, err)
		}
		_ = validate(b, 1<<40) // warm the pools
		// TotalAlloc counts the whole process, so goroutines other tests
		// left behind (a store closing) add to a measurement now and then:
		// the least of a few is the validation's own.
		least := uint64(1<<64 - 1)
		for range 5 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := validate(b, 1<<40); err != nil {
				t.Fatalf("codec %d: %v", codec, err)
			}
			runtime.ReadMemStats(&after)
			least = min(least, after.TotalAlloc-before.TotalAlloc)
		}
		if least > size/8 && !raceEnabled {
			t.Fatalf("codec %d: validating a %d-byte bomb allocated %d bytes (least of 5)", codec, size, least)
		}
	}
	// Raw snappy is one block: its claimed size is checked before any
	// buffer is made.
	b := bomb(t, codecSnappy, size)
	if err := validate(b, 1<<20); !errors.Is(err, ErrRecordsTooLarge) {
		t.Fatalf("snappy: %v, want ErrRecordsTooLarge", err)
	}
	claim := batchWith(codecSnappy, 1, binary.AppendUvarint(nil, 1<<30)) // 1 GiB claimed by 5 bytes
	if err := validate(claim, 1<<40); !errors.Is(err, ErrRecordsCorrupt) {
		t.Fatalf("snappy claim: %v, want ErrRecordsCorrupt", err)
	}
}

// A zstd frame asking for a window past zstd's default limit is refused
// before any window is allocated.
func TestValidateRecordsZstdWindow(t *testing.T) {
	// Frame header: magic, descriptor (no single segment, no checksum),
	// window descriptor exponent 20 -> 1 GiB window.
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3, 0x01, 0x00, 0x00}
	err := validate(batchWith(codecZstd, 1, frame), 1<<40)
	if !errors.Is(err, ErrRecordsTooLarge) {
		t.Fatalf("got %v, want ErrRecordsTooLarge", err)
	}
}

func TestValidateRecordsNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are checked without -race (its sync.Pool drops items)")
	}
	b := batchWith(codecNone, 100, recs(100, 1000))
	h, _ := ValidateBatch(b)
	if n := testing.AllocsPerRun(100, func() { _ = ValidateRecords(b, &h, 1<<20, false) }); n != 0 {
		t.Fatalf("%v allocations per uncompressed batch", n)
	}
	for _, codec := range []int{codecLz4, codecZstd, codecGzip, codecXerial} {
		b := batchWith(codec, 100, compress(t, codec, bytes.NewReader(recs(100, 1000))))
		h, _ := ValidateBatch(b)
		n := testing.AllocsPerRun(100, func() { _ = ValidateRecords(b, &h, 1<<20, false) })
		t.Logf("codec %d: %v allocations per batch", codec, n)
		if n > 4 {
			t.Errorf("codec %d: %v allocations per batch, decoders not reused?", codec, n)
		}
	}
}

// The stored bytes are the producer's: validation never writes.
func TestValidateRecordsReadOnly(t *testing.T) {
	for _, codec := range allCodecs {
		b := batchWith(codec, 50, compress(t, codec, bytes.NewReader(recs(50, 300))))
		was := append([]byte(nil), b...)
		if err := validate(b, 1<<20); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, was) {
			t.Fatalf("codec %d: batch changed by validation", codec)
		}
	}
}

// ---- fuzz ----

// FuzzValidateRecords: for any records bytes, codec and count, under a valid
// CRC, ValidateRecords never panics and never reads past its input (the
// slice has no spare capacity); a batch it accepts decodes with franz-go's
// decompressor and kmsg's record reader into exactly count records whose
// offset deltas are 0..count-1.
func FuzzValidateRecords(f *testing.F) {
	for _, codec := range allCodecs {
		f.Add(uint8(codec), int32(3), compress(f, codec, bytes.NewReader(recs(3, 20))))
		f.Add(uint8(codec), int32(1), compress(f, codec, bytes.NewReader(rec(0, []byte("k"), nil, hdr{[]byte("h"), []byte("v")}))))
	}
	f.Add(uint8(0), int32(1), []byte("garbage"))
	f.Add(uint8(0), int32(1), append(recs(1, 5), recs(1, 5)...))
	f.Fuzz(func(t *testing.T, codec uint8, count int32, body []byte) {
		codec %= 6
		b := batchWith(int(codec), count, body)
		b = b[:len(b):len(b)]
		h, err := ValidateBatch(b)
		if err != nil {
			return
		}
		if err := ValidateRecords(b, &h, 1<<20, false); err != nil {
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RecordError", err)
			}
			return
		}
		raw := b[BatchHeaderBytes:]
		if c := h.Compression(); c != 0 {
			raw, err = kgo.DefaultDecompressor().Decompress(raw, kgo.CompressionCodecType(c))
			if err != nil {
				t.Fatalf("accepted, but franz-go cannot decompress: %v", err)
			}
		}
		for i := int32(0); i < h.NumRecords; i++ {
			n, used := binary.Varint(raw)
			if used <= 0 || n < 0 || int64(len(raw)-used) < n {
				t.Fatalf("accepted, but record %d has no length (%d, %d)", i, n, used)
			}
			var r kmsg.Record
			if err := r.ReadFrom(raw[:used+int(n)]); err != nil {
				t.Fatalf("accepted, but kmsg cannot read record %d: %v", i, err)
			}
			if r.OffsetDelta != i {
				t.Fatalf("accepted, but record %d has offset delta %d", i, r.OffsetDelta)
			}
			raw = raw[used+int(n):]
		}
		if len(raw) != 0 {
			t.Fatalf("accepted with %d bytes after the records", len(raw))
		}
	})
}

// ---- benchmarks ----

// benchRecords is size bytes of records of about recBytes whose values look
// like log lines (compressible about 3-5x, as real payloads are).
func benchRecords(size, recBytes int) (body []byte, n int32) {
	rng := uint32(1)
	line := make([]byte, 0, recBytes+100)
	for len(body) < size-recBytes-100 {
		line = line[:0]
		for len(line) < recBytes-10 {
			rng = rng*1664525 + 1013904223
			line = fmt.Appendf(line, `{"ts":%d,"user":"u%d","op":"get","ok":true} `, rng%100000, rng%977)
		}
		body = append(body, rec(int(n), []byte("key"), line[:recBytes-10])...)
		n++
	}
	return body, n
}

// BenchmarkValidateRecords measures ValidateRecords (CRC excluded: that is
// ValidateBatch's) on batches of 1 KiB records. SetBytes is the
// uncompressed record bytes, so MB/s is of what producers wrote.
func BenchmarkValidateRecords(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20} {
		raw, n := benchRecords(size, 1000)
		// Baselines: the header and CRC check every batch already had, and
		// the walk over 100-byte records (per-record cost).
		crcBatch := batchWith(codecNone, n, raw)
		b.Run(fmt.Sprintf("crc/%dKiB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for range b.N {
				if _, err := ValidateBatch(crcBatch); err != nil {
					b.Fatal(err)
				}
			}
		})
		small, sn := benchRecords(size, 100)
		smallBatch := batchWith(codecNone, sn, small)
		b.Run(fmt.Sprintf("none-100B/%dKiB", size>>10), func(b *testing.B) {
			h, _ := ValidateBatch(smallBatch)
			b.ReportAllocs()
			b.SetBytes(int64(len(small)))
			b.ReportMetric(float64(sn), "records")
			for range b.N {
				if err := ValidateRecords(smallBatch, &h, 64<<20, false); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, c := range []struct {
			name  string
			codec int
		}{{"none", codecNone}, {"lz4", codecLz4}, {"zstd", codecZstd}, {"snappy", codecSnappy}, {"gzip", codecGzip}} {
			batch := batchWith(c.codec, n, compress(b, c.codec, bytes.NewReader(raw)))
			h, err := ValidateBatch(batch)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/%dKiB", c.name, size>>10), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(raw)))
				b.ReportMetric(float64(len(raw))/float64(len(batch)-BatchHeaderBytes), "ratio")
				for range b.N {
					if err := ValidateRecords(batch, &h, 64<<20, false); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDecompressOnly is the codec alone (franz-go's consumer
// decompressor), a baseline for BenchmarkValidateRecords.
func BenchmarkDecompressOnly(b *testing.B) {
	raw, n := benchRecords(1<<20, 1000)
	for _, c := range []struct {
		name  string
		codec int
	}{{"lz4", codecLz4}, {"zstd", codecZstd}, {"snappy", codecSnappy}, {"gzip", codecGzip}} {
		batch := batchWith(c.codec, n, compress(b, c.codec, bytes.NewReader(raw)))
		d := kgo.DefaultDecompressor()
		b.Run(c.name+"/1024KiB", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for range b.N {
				if _, err := d.Decompress(batch[BatchHeaderBytes:], kgo.CompressionCodecType(c.codec)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// On compacted topics every record needs a key (Kafka's validateKey).
func TestValidateRecordsKeyRequired(t *testing.T) {
	keyed := append(rec(0, []byte("a"), []byte("1")), rec(1, []byte{}, nil)...) // an empty key is a key
	unkeyed := append(rec(0, []byte("a"), []byte("1")), rec(1, nil, []byte("2"))...)
	for _, codec := range allCodecs {
		for _, c := range []struct {
			body        []byte
			keyRequired bool
			ok          bool
		}{{keyed, true, true}, {unkeyed, false, true}, {unkeyed, true, false}} {
			b := batchWith(codec, 2, compress(t, codec, bytes.NewReader(c.body)))
			h, _ := ValidateBatch(b)
			err := ValidateRecords(b, &h, 1<<20, c.keyRequired)
			var re *RecordError
			switch {
			case c.ok && err != nil:
				t.Errorf("codec %d key required %v: %v", codec, c.keyRequired, err)
			case !c.ok && (!errors.As(err, &re) || re.Index != 1 || re.Kind != ErrRecordInvalid):
				t.Errorf("codec %d: %v, want record 1 invalid", codec, err)
			}
		}
	}
}

// TestValidateRecordsLz4FramesKafkaReads: Kafka's consumers read lz4 as one
// frame of the current format (Java's KafkaLZ4BlockInputStream refuses
// other magics and stops at the first end mark; librdkafka's LZ4F has no
// legacy format). pierrec/lz4 reads legacy frames, skips skippable frames
// and reads on past an end mark, so a body franz-go reads may stall or
// break the others: each is refused.
func TestValidateRecordsLz4FramesKafkaReads(t *testing.T) {
	good := recs(3, 100)
	frame := func(data []byte, opts ...lz4.Option) []byte {
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if err := w.Apply(opts...); err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
		return buf.Bytes()
	}
	one := rec(0, nil, []byte("first"))
	two := rec(1, nil, []byte("second"))
	skippable := []byte{0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 'h', 'i'}
	cases := []struct {
		name  string
		count int32
		body  []byte
	}{
		{"legacy frame", 3, frame(good, lz4.LegacyOption(true))},
		{"skippable frame first", 3, append(skippable, frame(good)...)},
		{"records across two frames", 2, append(frame(one), frame(two)...)},
	}
	for i, opts := range [][]lz4.Option{
		nil,
		{lz4.BlockChecksumOption(true), lz4.SizeOption(uint64(len(good)))},
		{lz4.ChecksumOption(false), lz4.BlockSizeOption(lz4.Block64Kb)},
		{lz4.CompressionLevelOption(lz4.Level9)},
	} {
		if err := validate(batchWith(codecLz4, 3, frame(good, opts...)), 1<<20); err != nil {
			t.Fatalf("one frame (options %d): %v", i, err)
		}
	}
	incompressible := make([]byte, 200<<10) // blocks stored as is
	x := uint64(88172645463325252)
	for i := range incompressible {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		incompressible[i] = byte(x)
	}
	big := rec(0, nil, incompressible)
	if err := validate(batchWith(codecLz4, 1, frame(big, lz4.BlockSizeOption(lz4.Block64Kb), lz4.BlockChecksumOption(true))), 1<<20); err != nil {
		t.Fatalf("one frame of stored blocks: %v", err)
	}
	for _, c := range cases {
		if err := validate(batchWith(codecLz4, c.count, c.body), 1<<20); !errors.Is(err, ErrRecordsCorrupt) {
			t.Errorf("%s: %v, want ErrRecordsCorrupt", c.name, err)
		}
	}
}
