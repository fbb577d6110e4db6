package kafka

import "github.com/klite/klite/storage"

// Storage is what the protocol layer needs from the log. *storage.Store
// implements it; handler tests use an in-memory fake. Semantics are documented
// on *storage.Store's methods (go doc storage.Store).
type Storage interface {
	CreateTopic(name string, partitions int32, configs map[string]string) (storage.TopicInfo, error)
	// CheckCreate and CheckGrow answer what CreateTopic and
	// CreatePartitions would, changing nothing (ValidateOnly).
	CheckCreate(name string, partitions int32) error
	CheckGrow(name string, count int32) error
	DeleteTopic(name string) error
	SetTopicConfigs(name string, configs map[string]string) error
	CreatePartitions(name string, count int32) (storage.TopicInfo, error)
	Topics() []storage.TopicInfo
	Topic(name string) (storage.TopicInfo, bool)
	TopicByID(id storage.TopicID) (storage.TopicInfo, bool)

	Append(topic string, partition int32, batches []byte, durable bool, done func(storage.AppendResult))
	Read(topic string, partition int32, offset int64, maxBytes int64) storage.ReadResult
	Offsets(topic string, partition int32) (logStart, highWatermark int64, err error)
	LocalStart(topic string, partition int32) (int64, error)
	LatestTiered(topic string, partition int32) (int64, error)
	OffsetForTime(topic string, partition int32, ts int64) (offset, timestamp int64, err error)
	MaxTimestamp(topic string, partition int32) (offset, timestamp int64, err error)
	Watch(topic string, partition int32, after int64, fn func()) (cancel func())

	InitProducerID() (id int64, epoch int16, err error)
	DeleteRecords(topic string, partition int32, offset int64) (logStart int64, err error)

	// DescribeLogDirs (35_describe_log_dirs.go).
	PartitionBytes(topic string, partition int32) (int64, error)
	VolumeBytes() (total, usable int64, err error)

	// Transactions (storage/txn.go): markers, the last stable offset,
	// read_committed reads and the aborted-transaction index.
	WriteTxnMarker(topic string, partition int32, pid int64, epoch int16, commit bool, coordinatorEpoch int32, done func(storage.AppendResult))
	ReadCommitted(topic string, partition int32, offset int64, maxBytes int64) storage.ReadResult
	LastStableOffset(topic string, partition int32) (int64, error)
	AbortedTxns(topic string, partition int32, from, to int64) ([]storage.AbortedTxn, error)

	// Producers: the producer state of partitions (DescribeProducers).
	Producers(topic string, partitions []int32) []storage.PartitionProducers
}
