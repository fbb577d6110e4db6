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
	// Read returns p's whole batches from the one containing offset on,
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

// The Store's method set, as the kafka package uses it (kafka.Storage):
//
//	Open(cfg Config) (*Store, error)
//	(*Store) Close() error                      // fails unwritten appends, fsyncs written ones, closes
//	(*Store) CreateTopic(name string, partitions int32, configs map[string]string) (TopicInfo, error)
//	(*Store) DeleteTopic(name string) error
//	(*Store) SetTopicConfigs(name string, configs map[string]string) error
//	(*Store) CreatePartitions(name string, count int32) (TopicInfo, error)
//	(*Store) CheckCreate(name string, partitions int32) error // what CreateTopic would answer, nothing changed (ValidateOnly)
//	(*Store) CheckGrow(name string, count int32) error         // what CreatePartitions would answer, nothing changed
//	(*Store) Topics() []TopicInfo               // sorted by name
//	(*Store) Topic(name string) (TopicInfo, bool)
//	(*Store) TopicByID(id TopicID) (TopicInfo, bool)
//	(*Store) Append(topic string, partition int32, batches []byte, durable bool, done func(AppendResult))
//	(*Store) Read(topic string, partition int32, offset int64, maxBytes int64) ReadResult
//	(*Store) Offsets(topic string, partition int32) (logStart, highWatermark int64, err error)
//	(*Store) OffsetForTime(topic string, partition int32, ts int64) (offset, timestamp int64, err error)
//	(*Store) MaxTimestamp(topic string, partition int32) (offset, timestamp int64, err error)
//	(*Store) Watch(topic string, partition int32, after int64, fn func()) (cancel func())
//	(*Store) InitProducerID() (id int64, epoch int16, err error)
//	(*Store) DeleteRecords(topic string, partition int32, offset int64) (logStart int64, err error)
//
// Retention and tiering (retention.go, tiered.go):
//
//	(*Store) Partitions() []tier.Partition                 // tier.Source
//	(*Store) Sealed(p, from, maxBytes, dst) ([]tier.SourceChunk, func(), error) // tier.Source
//	(*Store) Uploaded(p tier.Partition, end int64)         // tier.Source
//	(*Store) LocalStart(topic string, partition int32) (int64, error) // first offset in the WAL (ListOffsets -4)
//	(*Store) Snapshot() tier.MetaSnapshot                  // topics, log starts, producer state (Offsets nil)
//	(*Store) Restore(snap *tier.MetaSnapshot, next map[tier.Partition]int64) error
//
// Log start: every partition has a log start offset (persisted in
// metadata), the first offset readable locally or from the tier. It only
// moves forward: retention (retention.ms by batch max timestamp,
// retention.bytes over the whole log, local and tiered), DeleteRecords.
// Reads, ListOffsets and Fetch below it get ErrOffsetOutOfRange; Offsets
// reports it. A read at or above the log start but below the first offset
// the WAL still holds (the local start) goes to Config.Cold; its bytes come
// back as a Chunk whose File is in memory (Fd() == ^uintptr(0)).
//
// DeleteRecords moves p's log start to offset (-1: the high watermark),
// never backwards, persisted before it returns; offset past the high
// watermark is ErrOffsetOutOfRange. It returns the new log start (Kafka's
// low watermark) and calls Cold.Retain.
//
// Local segments: a sealed segment is deleted once every chunk in it is
// below its partition's log start, or (with Cold) below its tiered end
// (Uploaded) while the WAL holds more than Config.HotBytes. Uploaded data
// is kept locally up to HotBytes as a read cache; expired data is freed at
// the next retention pass. With MaxWALBytes set, an append that would take
// the WAL past it fails with ErrLogFull when nothing can be freed.
//
// Sealed (tier.Source) returns chunks below the high watermark (fsynced,
// never changing again), including those of the active segment, so the
// uploader's flush interval bounds how long data is local-only. Uploaded
// is not persisted: after a restart the uploader loads each manifest and
// reports its NextOffset before anything it covers is freed.
//
// Restore (disaster recovery) runs on a store opened on an empty Dir:
// it creates snap's topics with their IDs and configs, starts each
// partition's log at next[p] (the manifest's NextOffset; 0 when absent)
// with log start from the snapshot (at least the manifest's), marks
// everything below next[p] as uploaded, and loads snap.Producers.
//
// Append: batches are the validated, concatenated v2 batches of one produce
// partition (kafka has checked magic, length, CRC, counts). The store copies
// them before done runs, so the caller may reuse the buffer once done has
// been called. done runs exactly once, on a store goroutine, and must not
// block: after the write when durable is false (acks 0/1), after the
// fdatasync that covers it when durable is true (acks=all). The high
// watermark only moves past data once it is fsynced. Append never blocks
// (the kafka layer calls it on a netloop event loop): when the append fails
// at once (unknown partition, store closed, batch larger than a segment,
// ErrBusy because the shard already queues Config.MaxQueueBytes), done runs
// on the caller's goroutine before Append returns. Appends still queued or
// not yet written when Close runs fail with ErrClosed (the queued ones on
// Close's goroutine); appends already written complete after their fsync.
//
// Read: whole batches starting with the one that contains offset, up to
// maxBytes, but always at least one whole batch when one exists below the
// high watermark (KIP-74); callers pass maxBytes<=0 for "one batch at most
// when over budget" semantics handled by kafka. offset == high watermark
// returns no chunks and no error; offset outside [logStart, hwm] returns
// ErrOffsetOutOfRange.
//
// SetTopicConfigs replaces a topic's explicit configs and CreatePartitions
// grows its partition count; both persist metadata (fsync) before
// returning and publish a new TopicInfo (earlier snapshots are unchanged).

// OffsetForTime: the first offset whose batch maxTimestamp >= ts (the batch's
// base offset and its max timestamp), or (-1, -1) when none.
// MaxTimestamp: the offset and time of the batch with the largest maxTimestamp.
//
// Watch: fn runs once (on a store goroutine, must not block) as soon as the
// high watermark exceeds after, or the partition is deleted, or the store
// closes; at once if that is already true. cancel stops it if it has not run.
