package tier

// MetaSnapshot is what the bucket holds besides the partitions' manifests
// so a broker on an empty disk can rebuild itself: topics with their IDs,
// configs and log starts, the idempotent producer state and the committed
// group offsets. It is published under meta/ with PublishVersion after the
// manifests it describes (so it never names data that is not there).
// Producers and Offsets are opaque here: storage and group encode them.
type MetaSnapshot struct {
	Topics    []SnapshotTopic
	Producers []byte
	Offsets   []byte
}

// SnapshotTopic is one topic of a MetaSnapshot.
type SnapshotTopic struct {
	Name       string
	ID         [16]byte
	Partitions int32
	Configs    map[string]string
	LogStart   []int64 // per partition
}
