package kafka

// AlterPartitionReassignments (key 45), versions 0-1 (KIP-455, KIP-860),
// as a one-node Kafka 4.x cluster answers it.
//
// Behaviour per named partition:
//   - unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION;
//   - Replicas null (cancel): NO_REASSIGNMENT_IN_PROGRESS, none ever is;
//   - Replicas empty, with a duplicate, or naming a broker other than
//     NodeID (Kafka: no such broker is registered): INVALID_REPLICA_ASSIGNMENT;
//   - Replicas exactly [NodeID]: success; the target is the current
//     assignment, so the reassignment completes at once and
//     ListPartitionReassignments never shows it (as in Kafka).
//
// Replicas with a duplicate of NodeID only are refused before the
// replication factor is compared, so AllowReplicationFactorChange (v1) never
// decides anything here; the response echoes it.
//
// ACLs (-authorizer): ALTER on the cluster; without it the top-level
// ErrorCode is CLUSTER_AUTHORIZATION_FAILED and no partition is answered, as
// in Kafka.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const alterPartitionReassignmentsKey = 45

func init() {
	register(alterPartitionReassignmentsKey, 0, 1, (*Handler).alterPartitionReassignments)
}

func (h *Handler) alterPartitionReassignments(r *request) {
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrAlterPartitionAssignmentsResponse()
	resp.Version = r.version
	resp.AllowReplicationFactorChange = req.AllowReplicationFactorChange
	if !h.authorizedCluster(r, acl.OpAlter) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		resp.ErrorMessage = codeMessage(resp.ErrorCode)
		r.respond(resp)
		return
	}
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		rt.Topic = t.Topic
		info, found := h.topic(t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			switch {
			case !found || !partitionOK(&info, p.Partition):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p.Replicas == nil:
				rp.ErrorCode = kerr.NoReassignmentInProgress.Code
			default:
				if msg := h.badReplicas(p.Replicas); msg != "" {
					rp.ErrorCode, rp.ErrorMessage = kerr.InvalidReplicaAssignment.Code, &msg
				}
			}
			if rp.ErrorCode != 0 && rp.ErrorMessage == nil {
				rp.ErrorMessage = codeMessage(rp.ErrorCode)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	r.respond(resp)
}

// badReplicas explains why a target replica list cannot be placed on this
// one-node cluster, or returns "".
func (h *Handler) badReplicas(replicas []int32) string {
	if len(replicas) == 0 {
		return "The replica set cannot be empty."
	}
	seen := map[int32]bool{}
	for _, id := range replicas {
		if seen[id] {
			return fmt.Sprintf("The replica set %v contains a duplicate broker id.", replicas)
		}
		seen[id] = true
		if id != h.cfg.NodeID {
			return fmt.Sprintf("The manual partition assignment includes broker %d, but no such broker is registered.", id)
		}
	}
	return ""
}
