package storage

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Record batch v2 (magic 2) header layout. These offsets are part of the
// Kafka wire format and of klite's on-disk format: batches are stored as the
// producer sent them, with only baseOffset (and, for LogAppendTime topics,
// maxTimestamp and the CRC) rewritten.
const (
	batchBaseOffsetAt      = 0  // int64
	batchLengthAt          = 8  // int32: bytes after this field
	batchLeaderEpochAt     = 12 // int32
	batchMagicAt           = 16 // int8
	batchCRCAt             = 17 // uint32, CRC-32C of attributes..end
	batchAttributesAt      = 21 // int16
	batchLastOffsetDeltaAt = 23 // int32
	batchFirstTimestampAt  = 27 // int64
	batchMaxTimestampAt    = 35 // int64
	batchProducerIDAt      = 43 // int64
	batchProducerEpochAt   = 51 // int16
	batchBaseSequenceAt    = 53 // int32
	batchRecordCountAt     = 57 // int32
	BatchHeaderBytes       = 61

	// batchLengthOverhead is the part of a batch before batchLength counts.
	batchLengthOverhead = 12
)

// Batch attribute bits.
const (
	attrCompressionMask = 0x07
	attrTimestampType   = 0x08 // 1 = LogAppendTime
	attrTransactional   = 0x10
	attrControl         = 0x20
)

var (
	ErrBatchTooShort = errors.New("storage: record batch shorter than its header")
	ErrBatchLength   = errors.New("storage: record batch length does not match its bytes")
	ErrBatchMagic    = errors.New("storage: record batch magic is not 2")
	ErrBatchCRC      = errors.New("storage: record batch CRC mismatch")
	ErrBatchCount    = errors.New("storage: record batch count does not match lastOffsetDelta")
	ErrBatchEmpty    = errors.New("storage: record batch has no records")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the decoded fixed header of a v2 record batch.
type BatchHeader struct {
	BaseOffset      int64
	Length          int32 // batchLength field: total size is Length+12
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	FirstTimestamp  int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	NumRecords      int32
}

// Size is the batch's total size in bytes.
func (h *BatchHeader) Size() int { return int(h.Length) + batchLengthOverhead }

// Transactional reports whether the batch belongs to a transaction.
func (h *BatchHeader) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports whether the batch is a control batch (transaction marker).
func (h *BatchHeader) Control() bool { return h.Attributes&attrControl != 0 }

// Compression is the codec id in the attributes (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
func (h *BatchHeader) Compression() int8 { return int8(h.Attributes & attrCompressionMask) }

// LogAppendTime reports whether the batch's timestamps are broker-assigned.
func (h *BatchHeader) LogAppendTime() bool { return h.Attributes&attrTimestampType != 0 }

// Idempotent reports whether the producer set a producer id.
func (h *BatchHeader) Idempotent() bool { return h.ProducerID >= 0 }

// ParseBatchHeader decodes the header at the start of b. It checks only that
// the header fits; b may hold more than one batch.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	var h BatchHeader
	if len(b) < BatchHeaderBytes {
		return h, ErrBatchTooShort
	}
	be := binary.BigEndian
	h.BaseOffset = int64(be.Uint64(b[batchBaseOffsetAt:]))
	h.Length = int32(be.Uint32(b[batchLengthAt:]))
	h.LeaderEpoch = int32(be.Uint32(b[batchLeaderEpochAt:]))
	h.Magic = int8(b[batchMagicAt])
	h.CRC = be.Uint32(b[batchCRCAt:])
	h.Attributes = int16(be.Uint16(b[batchAttributesAt:]))
	h.LastOffsetDelta = int32(be.Uint32(b[batchLastOffsetDeltaAt:]))
	h.FirstTimestamp = int64(be.Uint64(b[batchFirstTimestampAt:]))
	h.MaxTimestamp = int64(be.Uint64(b[batchMaxTimestampAt:]))
	h.ProducerID = int64(be.Uint64(b[batchProducerIDAt:]))
	h.ProducerEpoch = int16(be.Uint16(b[batchProducerEpochAt:]))
	h.BaseSequence = int32(be.Uint32(b[batchBaseSequenceAt:]))
	h.NumRecords = int32(be.Uint32(b[batchRecordCountAt:]))
	return h, nil
}

// ValidateBatch checks that b is exactly one well-formed v2 batch: magic,
// length, CRC-32C, and a record count consistent with lastOffsetDelta. It
// does not decode records: produce then checks them with ValidateRecords
// (records.go); recovery and reads trust the CRC of what produce accepted.
func ValidateBatch(b []byte) (BatchHeader, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, err
	}
	if h.Magic != 2 {
		return h, ErrBatchMagic
	}
	if h.Length < BatchHeaderBytes-batchLengthOverhead || h.Size() != len(b) {
		return h, ErrBatchLength
	}
	if crc32.Checksum(b[batchAttributesAt:], castagnoli) != h.CRC {
		return h, ErrBatchCRC
	}
	if h.NumRecords <= 0 && !h.Control() {
		return h, ErrBatchEmpty
	}
	if h.LastOffsetDelta < 0 || (h.NumRecords > 0 && h.LastOffsetDelta != h.NumRecords-1) {
		return h, ErrBatchCount
	}
	return h, nil
}

// NextBatch splits the first batch off b. It returns the batch, the rest, and
// an error when the length field is out of bounds. Use it to walk the
// concatenated batches of one produce partition.
func NextBatch(b []byte) (batch, rest []byte, err error) {
	if len(b) < BatchHeaderBytes {
		return nil, b, ErrBatchTooShort
	}
	n := int64(int32(binary.BigEndian.Uint32(b[batchLengthAt:]))) + batchLengthOverhead
	if n < BatchHeaderBytes || n > int64(len(b)) {
		return nil, b, ErrBatchLength
	}
	return b[:n], b[n:], nil
}

// SetBaseOffset overwrites the batch's baseOffset in place. The CRC does not
// cover it, so no recomputation is needed.
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[batchBaseOffsetAt:], uint64(off))
}

// LeaderEpoch is the partition leader epoch klite stamps on every batch: one
// broker that never loses leadership, so always 0, as Metadata reports.
const LeaderEpoch = 0

// SetLeaderEpoch overwrites the batch's partitionLeaderEpoch in place (the
// producer sends -1); like baseOffset it is outside the CRC.
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[batchLeaderEpochAt:], uint32(epoch))
}

// SetLogAppendTime sets maxTimestamp to ts and marks the timestamp type as
// LogAppendTime (consumers then read every record's time as maxTimestamp),
// and recomputes the CRC.
func SetLogAppendTime(b []byte, ts int64) {
	be := binary.BigEndian
	attrs := be.Uint16(b[batchAttributesAt:]) | attrTimestampType
	be.PutUint16(b[batchAttributesAt:], attrs)
	be.PutUint64(b[batchMaxTimestampAt:], uint64(ts))
	be.PutUint32(b[batchCRCAt:], crc32.Checksum(b[batchAttributesAt:], castagnoli))
}
