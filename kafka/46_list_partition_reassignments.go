package kafka

// ListPartitionReassignments (key 46), version 0 (KIP-455), as a one-node
// Kafka 4.x cluster answers it.
//
// Behaviour: no reassignment is ever in progress (a reassignment to
// [NodeID], the only one AlterPartitionReassignments accepts, completes at
// once), so the answer is an empty list, for every topic named or for all
// (Topics null). Unknown topics are left out, as Kafka's controller leaves
// them out.
//
// ACLs (-authorizer): DESCRIBE on the cluster; without it the top-level
// ErrorCode is CLUSTER_AUTHORIZATION_FAILED.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const listPartitionReassignmentsKey = 46

func init() {
	register(listPartitionReassignmentsKey, 0, 0, (*Handler).listPartitionReassignments)
}

func (h *Handler) listPartitionReassignments(r *request) {
	req := kmsg.NewPtrListPartitionReassignmentsRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrListPartitionReassignmentsResponse()
	resp.Version = r.version
	if !h.authorizedCluster(r, acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		resp.ErrorMessage = codeMessage(resp.ErrorCode)
	}
	resp.Topics = []kmsg.ListPartitionReassignmentsResponseTopic{}
	r.respond(resp)
}
