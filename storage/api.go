package storage

import (
	"context"
	"errors"
	"io"

	"github.com/klite/klite/tier"
)

// Errors the protocol layer maps to Kafka error codes (see kafka/errors.go).
var (
	ErrUnknownTopic         = errors.New("storage: unknown topic or partition")  // UNKNOWN_TOPIC_OR_PARTITION
	ErrTopicExists          = errors.New("storage: topic already exists")        // TOPIC_ALREADY_EXISTS
	ErrInvalidPartitions    = errors.New("storage: invalid partition count")     // INVALID_PARTITIONS
	ErrOffsetOutOfRange     = errors.New("storage: offset out of range")         // OFFSET_OUT_OF_RANGE
	ErrOutOfOrderSequence   = errors.New("storage: out of order sequence")       // OUT_OF_ORDER_SEQUENCE_NUMBER
	ErrInvalidProducerEpoch = errors.New("storage: invalid producer epoch")      // INVALID_PRODUCER_EPOCH
	ErrUnknownProducerID    = errors.New("storage: unknown producer id")         // UNKNOWN_PRODUCER_ID
	ErrStorage              = errors.New("storage: disk failure")                // KAFKA_STORAGE_ERROR
	ErrClosed               = errors.New("storage: closed")                      // KAFKA_STORAGE_ERROR (shutting down)
	ErrTooLarge             = errors.New("storage: batch larger than a segment") // MESSAGE_TOO_LARGE
	// ErrPartitionLimit: a change would pass Config.MaxTotalPartitions.
	ErrPartitionLimit = errors.New("storage: broker partition limit reached") // POLICY_VIOLATION
	// ErrTopicCollision: the name equals another topic's with '.' read as
	// '_' (Kafka refuses such names: their metric names would clash).
	ErrTopicCollision = errors.New("storage: topic name collides") // INVALID_TOPIC_EXCEPTION
	// ErrMetadataFull: the change would make the metadata (topics, their
	// configs and partitions) larger than a snapshot may be.
	ErrMetadataFull = errors.New("storage: metadata at its size limit") // POLICY_VIOLATION
	// ErrBusy: the shard's append queue is full (Config.MaxQueueBytes);
	// nothing was written, so a retry is safe. Kafka has no overload code
	// for produce (its network threads block instead); REQUEST_TIMED_OUT is
	// retriable in every client and the closest meaning.
	ErrBusy = errors.New("storage: shard queue full, retry") // REQUEST_TIMED_OUT
	// ErrLogFull: the WAL reached Config.MaxWALBytes and no sealed segment
	// may be freed (nothing expired, nothing uploaded). Nothing was
	// written; the operator gets an Error log line (rate-limited).
	ErrLogFull = errors.New("storage: WAL at its size cap and nothing can be freed") // KAFKA_STORAGE_ERROR
)

// ColdLog is the tiered part of the partitions' logs: what the bucket holds
// below (and overlapping) the local WAL. tier.Cold implements it; nil in
// Config means local-only. Methods may do network I/O: storage calls them
// only off the event loop (Read and OffsetForTime are called from fetch
// and ListOffsets goroutines, the rest from the store's own goroutines).
type ColdLog interface {
	// Manifest returns p's published manifest; nil, nil when nothing of p
	// is tiered. The first call for p may load it from the bucket.
	Manifest(ctx context.Context, p tier.Partition) (*tier.Manifest, error)
	// Read returns p's whole batches from the one containing offset on
	// (in compacted data, from the first one ending at or after offset),
	// about maxBytes of them but at least one batch. offset lies in
	// [m.LogStartOffset, m.NextOffset()) of the published manifest m.
	Read(ctx context.Context, p tier.Partition, offset, maxBytes int64) ([]byte, error)
	// OffsetForTime returns the base offset and max timestamp of p's first
	// tiered batch whose max timestamp is >= ts, or (-1, -1, nil).
	OffsetForTime(ctx context.Context, p tier.Partition, ts int64) (offset, timestamp int64, err error)
	// Retain drops p's tiered data below offset (retention, DeleteRecords).
	// It returns at once; the manifest is republished in the background.
	Retain(p tier.Partition, offset int64)
	// Forget removes everything of a deleted partition (in the background).
	Forget(p tier.Partition)
}

// TopicID is a topic's 16-byte UUID (KIP-516).
type TopicID [16]byte

// TopicInfo describes a topic. Values are snapshots; mutate nothing.
type TopicInfo struct {
	Name       string
	ID         TopicID
	Partitions int32
	Configs    map[string]string // only explicitly set configs
}

// AppendResult is the outcome of appending the batches of one produce partition.
type AppendResult struct {
	// BaseOffset is the offset given to the first record. For a duplicate
	// retry of an idempotent batch it is the offset the original got.
	BaseOffset int64
	// LogAppendTime is the broker time stamped on LogAppendTime topics, else -1.
	LogAppendTime  int64
	LogStartOffset int64
	// Err is nil or one of the errors above.
	Err error
}

// ReadResult is the outcome of a partition read. Release must be called once
// the chunks have been sent (it drops segment references).
type ReadResult struct {
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	// Chunks are byte ranges of whole batches in offset order, the first
	// containing the requested offset. Empty when offset == HighWatermark.
	Chunks []Chunk
	Bytes  int64 // sum of chunk lengths
	Err    error // ErrOffsetOutOfRange, ErrUnknownTopic, ErrStorage
	// release is set by the store.
	release func()
}

// Release drops the segment references the chunks hold. Safe to call twice.
func (r *ReadResult) Release() {
	if r.release != nil {
		r.release()
		r.release = nil
	}
}

// Chunk is a range of a segment file that holds whole record batches of one
// partition, contiguous on disk.
type Chunk struct {
	File ReadFile
	Off  int64
	Len  int64
}

// ReadFile is a segment file readable by range. Fd returns ^uintptr(0) when
// the file has no kernel descriptor (in-memory test FS). It matches
// netloop.SendFile, so chunks can be sent with sendfile.
type ReadFile interface {
	io.ReaderAt
	Fd() uintptr
}

// The contract of each Store method is on the method (go doc
// storage.Store); kafka.Storage is the subset the protocol layer uses, and
// Partitions, Sealed and Uploaded make the Store a tier.Source.
