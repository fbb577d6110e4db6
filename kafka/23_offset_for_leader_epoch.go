package kafka

// OffsetForLeaderEpoch (key 23), versions 2-4 (KIP-101, KIP-279, KIP-320),
// as Kafka 4.x (which dropped v0-1).
//
// Leader epochs in klite: every partition has exactly one leader epoch, 0,
// starting at offset 0, for its whole life. Kafka bumps a partition's epoch
// when its leader changes (election, reassignment, broker restart in a
// cluster); klite is one node that is always the leader, so nothing ever
// bumps it. Storage stamps 0 as the partitionLeaderEpoch of every batch it
// appends (storage.LeaderEpoch), Metadata, Fetch and ListOffsets report 0,
// and after a restart (or a restore from the bucket) it is still 0: the
// epoch is a constant of the format, so it survives restarts without being
// stored, and the epoch of every stored batch agrees with what this API
// answers.
//
// Behaviour per partition, as Kafka's leader answers (LeaderEpochFileCache
// with the single entry (epoch 0, start 0)):
//   - CurrentLeaderEpoch (v2+): -1 skips the check; above 0
//     UNKNOWN_LEADER_EPOCH; below 0 otherwise FENCED_LEADER_EPOCH;
//   - LeaderEpoch 0: epoch 0 with the log end offset (the high watermark:
//     klite's log end) as EndOffset;
//   - LeaderEpoch above 0, or -1 (undefined): epoch -1, end offset -1, as
//     Kafka answers an epoch newer than it knows;
//   - LeaderEpoch below -1: that epoch with end offset 0 (the start of the
//     first epoch), as Kafka answers an epoch older than its first;
//   - unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION.
//
// ReplicaID (v3+): -1 (consumer) and -2 (debug) are answered as above; a
// broker id (a follower) needs CLUSTER_ACTION, as in Kafka: klite has no
// followers, but the answer is the same.
//
// ACLs (-authorizer): a follower's request needs CLUSTER_ACTION on the
// cluster, a client's DESCRIBE on each topic (TOPIC_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const offsetForLeaderEpochKey = 23

func init() { register(offsetForLeaderEpochKey, 2, 4, (*Handler).offsetForLeaderEpoch) }

func (h *Handler) offsetForLeaderEpoch(r *request) {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	resp.Version = r.version
	follower := r.version >= 3 && req.ReplicaID >= 0
	clusterOK := follower && h.authorizedCluster(r, acl.OpClusterAction)
	resp.Topics = make([]kmsg.OffsetForLeaderEpochResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		t := &req.Topics[ti]
		rt := &resp.Topics[ti]
		rt.Default()
		rt.Topic = t.Topic
		info, found := h.topic(t.Topic) // internal ones too: an empty log
		code := int16(0)
		switch {
		case follower && !clusterOK:
			code = kerr.ClusterAuthorizationFailed.Code
		case !follower && !h.authorized(r, acl.OpDescribe, acl.ResourceTopic, t.Topic):
			code = kerr.TopicAuthorizationFailed.Code
		}
		rt.Partitions = make([]kmsg.OffsetForLeaderEpochResponseTopicPartition, len(t.Partitions))
		for pi := range t.Partitions {
			p := &t.Partitions[pi]
			rp := &rt.Partitions[pi]
			rp.Default()
			rp.Partition, rp.LeaderEpoch, rp.EndOffset = p.Partition, -1, -1
			switch {
			case code != 0:
				rp.ErrorCode = code
			case !found || !partitionOK(&info, p.Partition):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p.CurrentLeaderEpoch > leaderEpoch:
				rp.ErrorCode = kerr.UnknownLeaderEpoch.Code
			case p.CurrentLeaderEpoch < -1:
				rp.ErrorCode = kerr.FencedLeaderEpoch.Code
			case p.LeaderEpoch == leaderEpoch:
				_, end, err := h.offsetsOf(&info).Offsets(info.Name, p.Partition)
				if err != nil {
					rp.ErrorCode = h.errCode(err)
					break
				}
				rp.LeaderEpoch, rp.EndOffset = leaderEpoch, end
			case p.LeaderEpoch < -1:
				rp.LeaderEpoch, rp.EndOffset = p.LeaderEpoch, 0
			}
		}
	}
	r.respond(resp)
}
