package storage

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/twmb/franz-go/pkg/kbin"
)

// Record validation. Kafka's log validator reads every record of a produced
// batch (DefaultRecord's layout) and refuses a batch whose records do not
// parse; ValidateRecords does the same for klite, reading only: the batch is
// stored exactly as the producer sent it.
//
// A record (magic 2), every integer a zigzag varint unless noted:
//
//	length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
//	keyLength varint | key | valueLength varint | value |
//	headerCount varint | { headerKeyLength varint | key | headerValueLength varint | value }...
//
// Checked, as Kafka does and then some where a consumer would break:
//   - the length is non-negative and the body fits the bytes left, and the
//     fields fill the body exactly (no bytes left over in a record);
//   - varints are at most 5 bytes (varlongs 10) and do not overflow;
//   - offsetDelta equals the record's index (Kafka rewrites a compressed
//     batch whose inner offsets are off; klite stores bytes as sent, so it
//     refuses them);
//   - key and value lengths are -1 (null) or within the record; header
//     counts are non-negative, header keys are not null; keys are not null
//     when the caller says so (compacted topics);
//   - the batch holds exactly its declared count of records, nothing after
//     the last one;
//   - compressed records (gzip, snappy raw or xerial-framed, lz4 frame,
//     zstd) decompress completely, checksums included, and to no more than
//     the caller's limit. They are streamed through a small buffer: a
//     decompression bomb costs at most the limit in CPU, never in memory.

var (
	// ErrRecordInvalid: a record does not parse (Kafka: INVALID_RECORD).
	ErrRecordInvalid = errors.New("storage: invalid record")
	// ErrRecordsCorrupt: the compressed records do not decompress (Kafka:
	// CORRUPT_MESSAGE).
	ErrRecordsCorrupt = errors.New("storage: compressed records do not decode")
	// ErrRecordsTooLarge: the records decompress past the caller's limit
	// (Kafka: MESSAGE_TOO_LARGE).
	ErrRecordsTooLarge = errors.New("storage: records decompress past the limit")
	// ErrBatchCodec: the compression codec id is unknown.
	ErrBatchCodec = errors.New("storage: unknown compression codec")
)

// RecordError says which record of a batch failed validation and why. It
// wraps one of ErrRecordInvalid, ErrRecordsCorrupt, ErrRecordsTooLarge.
type RecordError struct {
	// Index is the record's position in its batch (Kafka's batch index);
	// -1 when the fault is the batch's, not one record's.
	Index  int32
	Reason string
	Kind   error
}

func (e *RecordError) Error() string {
	if e.Index < 0 {
		return e.Kind.Error() + ": " + e.Reason
	}
	return fmt.Sprintf("%v: record %d: %s", e.Kind, e.Index, e.Reason)
}

func (e *RecordError) Unwrap() error { return e.Kind }

const (
	varintMaxBytes  = 5
	varlongMaxBytes = 10
	// minRecordBytes is the smallest record: a length byte and six one-byte
	// fields (attributes, deltas, null key, null value, no headers).
	minRecordBytes = 7
)

// ValidateRecords checks every record of b, a batch whose header h
// ValidateBatch accepted, and returns nil or a *RecordError. maxDecompressed
// bounds what a compressed batch may decompress to; keyRequired refuses
// records without a key (Kafka's rule for compacted topics). Uncompressed batches
// are walked in place without allocating. A compressed batch waits for one
// of GOMAXPROCS decoding slots (see codec.go), so do not call this from a
// goroutine that must not block.
func ValidateRecords(b []byte, h *BatchHeader, maxDecompressed int64, keyRequired bool) error {
	if len(b) < BatchHeaderBytes {
		return &RecordError{Index: -1, Reason: "batch shorter than its header", Kind: ErrRecordInvalid}
	}
	recs := b[BatchHeaderBytes:]
	if h.Compression() == 0 {
		w := walker{buf: recs, keyRequired: keyRequired}
		return w.walk(h.NumRecords)
	}
	return validateCompressed(recs, h, maxDecompressed, keyRequired)
}

// walker reads records from buf, refilled from src when src is set
// (decompressed bytes); with src nil, buf is every byte of the records.
type walker struct {
	buf   []byte // unread bytes are buf[pos:]
	pos   int
	src   io.Reader
	chunk []byte // backing array buf is refilled into (src only)
	eof   bool   // src is exhausted
	err   error  // src failed: a *RecordError (corrupt or too large)
	read  int64  // bytes taken from src
	max   int64  // limit on read

	keyRequired bool // a null key is invalid
}

// fill makes at least want bytes readable if src has them.
func (w *walker) fill(want int) {
	if w.src == nil || w.eof || w.err != nil {
		return
	}
	k := copy(w.chunk, w.buf[w.pos:])
	for idle := 0; k < want && !w.eof && w.err == nil; {
		m, err := w.src.Read(w.chunk[k:])
		k += m
		w.read += int64(m)
		switch {
		case w.read > w.max:
			w.err = &RecordError{Index: -1, Reason: fmt.Sprintf("records decompress to more than %d bytes", w.max), Kind: ErrRecordsTooLarge}
		case err == io.EOF:
			w.eof = true
		case err != nil:
			w.err = decodeError(err)
		case m == 0:
			if idle++; idle > 100 {
				w.err = &RecordError{Index: -1, Reason: "decompressor made no progress", Kind: ErrRecordsCorrupt}
			}
		}
	}
	w.buf, w.pos = w.chunk[:k], 0
}

// skip consumes n bytes; false if there are fewer.
func (w *walker) skip(n int) bool {
	for {
		avail := len(w.buf) - w.pos
		if n <= avail {
			w.pos += n
			return true
		}
		n -= avail
		w.pos = len(w.buf)
		w.fill(min(n, len(w.chunk)))
		if len(w.buf) == w.pos {
			return false
		}
	}
}

// varint reads a zigzag varint of at most 5 bytes, all within lim bytes.
func (w *walker) varint(lim *int) (int32, bool) {
	// One-byte varints (attributes, small deltas, header counts) are most
	// of a record's fields: decode them inline.
	if w.pos < len(w.buf) && *lim > 0 {
		if b := w.buf[w.pos]; b < 0x80 {
			w.pos++
			*lim--
			return int32(b>>1) ^ -int32(b&1), true
		}
	}
	if len(w.buf)-w.pos < varintMaxBytes {
		w.fill(varintMaxBytes)
	}
	in := w.buf[w.pos:]
	if len(in) > *lim {
		in = in[:*lim]
	}
	v, n := kbin.Varint(in)
	if n <= 0 {
		return 0, false
	}
	w.pos += n
	*lim -= n
	return v, true
}

// varlong reads a zigzag varlong of at most 10 bytes, all within lim bytes.
func (w *walker) varlong(lim *int) bool {
	if len(w.buf)-w.pos < varlongMaxBytes {
		w.fill(varlongMaxBytes)
	}
	in := w.buf[w.pos:]
	if len(in) > *lim {
		in = in[:*lim]
	}
	_, n := kbin.Varlong(in)
	if n <= 0 {
		return false
	}
	w.pos += n
	*lim -= n
	return true
}

// bytesField reads a length and skips that many bytes: -1 is null (when
// nullOK), anything else must fit in lim.
func (w *walker) bytesField(lim *int, nullOK bool) (ok bool, why string) {
	n, ok := w.varint(lim)
	switch {
	case !ok:
		return false, "malformed length varint"
	case n == -1 && !nullOK:
		return false, "null"
	case n == -1:
		return true, ""
	case n < 0:
		return false, fmt.Sprintf("length %d", n)
	case int(n) > *lim:
		return false, fmt.Sprintf("length %d exceeds the %d bytes left in the record", n, *lim)
	}
	*lim -= int(n)
	if !w.skip(int(n)) {
		return false, "truncated"
	}
	return true, ""
}

// atEnd reports whether every byte has been read.
func (w *walker) atEnd() bool {
	if w.pos < len(w.buf) {
		return false
	}
	w.fill(1)
	return w.pos == len(w.buf)
}

// fail builds the error for record i: the decompressor's own if it failed.
func (w *walker) fail(i int32, format string, args ...any) error {
	if w.err != nil {
		return w.err
	}
	return &RecordError{Index: i, Reason: fmt.Sprintf(format, args...), Kind: ErrRecordInvalid}
}

// walk checks count records and that nothing follows them.
func (w *walker) walk(count int32) error {
	for i := int32(0); i < count; i++ {
		if w.atEnd() {
			return w.fail(-1, "batch declares %d records but holds %d", count, i)
		}
		outside := math.MaxInt
		size, ok := w.varint(&outside)
		switch {
		case !ok:
			return w.fail(i, "malformed record length varint")
		case size < minRecordBytes-1:
			return w.fail(i, "record length %d", size)
		case w.src == nil && int(size) > len(w.buf)-w.pos:
			return w.fail(i, "record length %d exceeds the %d bytes left in the batch", size, len(w.buf)-w.pos)
		}
		lim := int(size)
		// Attributes: unused in magic 2, any value is accepted (as Kafka does).
		lim--
		if !w.skip(1) {
			return w.fail(i, "truncated record")
		}
		if !w.varlong(&lim) {
			return w.fail(i, "malformed timestamp delta")
		}
		delta, ok := w.varint(&lim)
		if !ok {
			return w.fail(i, "malformed offset delta")
		}
		if delta != i {
			return w.fail(i, "offset delta %d, want %d", delta, i)
		}
		if ok, why := w.bytesField(&lim, !w.keyRequired); !ok {
			if why == "null" {
				return w.fail(i, "a compacted topic takes only records with a key")
			}
			return w.fail(i, "key: %s", why)
		}
		if ok, why := w.bytesField(&lim, true); !ok {
			return w.fail(i, "value: %s", why)
		}
		headers, ok := w.varint(&lim)
		switch {
		case !ok:
			return w.fail(i, "malformed header count")
		case headers < 0 || int(headers) > lim:
			return w.fail(i, "header count %d with %d bytes left in the record", headers, lim)
		}
		for j := int32(0); j < headers; j++ {
			if ok, why := w.bytesField(&lim, false); !ok {
				return w.fail(i, "header %d key: %s", j, why)
			}
			if ok, why := w.bytesField(&lim, true); !ok {
				return w.fail(i, "header %d value: %s", j, why)
			}
		}
		if lim != 0 {
			return w.fail(i, "%d bytes left over in the record", lim)
		}
	}
	if !w.atEnd() {
		return w.fail(-1, "bytes after the last of %d records", count)
	}
	if w.err != nil { // a stream that failed after its last record (a bad checksum)
		return w.err
	}
	return nil
}
