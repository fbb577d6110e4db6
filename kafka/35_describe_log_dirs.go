package kafka

// DescribeLogDirs (key 35), versions 1-4, as Kafka 4.x (which dropped v0).
//
// Behaviour: one log dir, the WAL directory (Config.LogDirs, Kafka's
// log.dirs), holding every partition. Topics null lists every topic and
// partition; otherwise the listed partitions that exist (unknown topics and
// partitions are left out, as Kafka leaves out what it does not host). Size
// is the bytes of the partition's batches in the WAL from its log start on
// (storage.Store.PartitionBytes: Kafka's local log size; data tiered to the
// bucket is not counted, as Kafka does not count remote segments),
// OffsetLag 0 and IsFuture false (no replica moves between dirs).
// TotalBytes and UsableBytes (v4, KIP-827) are the volume's, from statfs;
// a volume that cannot be read answers KAFKA_STORAGE_ERROR for the dir.
//
// Differences from Apache Kafka: the WAL is shared by all partitions, so a
// partition's size is its share of the WAL, not a directory of its own.
// The internal topics are not listed: klite keeps committed offsets and
// transaction state in its offsets log, not in partitioned topics.
//
// ACLs (-authorizer): DESCRIBE on the cluster; without it the response is
// empty, with CLUSTER_AUTHORIZATION_FAILED in v3+'s ErrorCode, as in Kafka.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

const describeLogDirsKey = 35

func init() { register(describeLogDirsKey, 1, 4, (*Handler).describeLogDirs) }

func (h *Handler) describeLogDirs(r *request) {
	req := kmsg.NewPtrDescribeLogDirsRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrDescribeLogDirsResponse()
	resp.Version = r.version
	if !h.authorizedCluster(r, acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		r.respond(resp)
		return
	}
	// statfs and a walk of every partition: off the event loop.
	h.async(r, func() { r.respond(h.describeLogDirsResponse(resp, req)) })
}

func (h *Handler) describeLogDirsResponse(resp *kmsg.DescribeLogDirsResponse, req *kmsg.DescribeLogDirsRequest) *kmsg.DescribeLogDirsResponse {
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = h.cfg.LogDirs
	total, usable, err := h.st.VolumeBytes()
	if err != nil {
		dir.ErrorCode = kerr.KafkaStorageError.Code
		resp.Dirs = []kmsg.DescribeLogDirsResponseDir{dir}
		return resp
	}
	dir.TotalBytes, dir.UsableBytes = total, usable

	add := func(info *storage.TopicInfo, partitions []int32) {
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = info.Name
		seen := make(map[int32]bool, len(partitions))
		for _, p := range partitions {
			if !partitionOK(info, p) || seen[p] {
				continue
			}
			seen[p] = true
			size, err := h.st.PartitionBytes(info.Name, p)
			if err != nil {
				continue // deleted meanwhile, or failed: not hosted
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition, dp.Size = p, size
			dt.Partitions = append(dt.Partitions, dp)
		}
		if len(dt.Partitions) > 0 {
			dir.Topics = append(dir.Topics, dt)
		}
	}
	if req.Topics == nil {
		for _, info := range h.st.Topics() {
			add(&info, allPartitions(info.Partitions))
		}
	} else {
		// A topic listed twice is one set of partitions, as in Kafka.
		var order []string
		parts := map[string][]int32{}
		for _, t := range req.Topics {
			if _, ok := parts[t.Topic]; !ok {
				order = append(order, t.Topic)
			}
			parts[t.Topic] = append(parts[t.Topic], t.Partitions...)
		}
		for _, name := range order {
			if info, ok := h.st.Topic(name); ok {
				add(&info, parts[name])
			}
		}
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{dir}
	return resp
}

// allPartitions returns 0..n-1.
func allPartitions(n int32) []int32 {
	ps := make([]int32, n)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps
}
