package kafka

// ElectLeaders (key 43), versions 0-2 (KIP-183, KIP-460), as a one-node
// Kafka 4.x cluster answers it.
//
// Behaviour: every partition already has its only replica, NodeID, as
// leader, which is also its preferred leader, so no election is ever
// needed. Each named partition answers ELECTION_NOT_NEEDED for a preferred
// (0) or unclean (1) election, UNKNOWN_TOPIC_OR_PARTITION when it does not
// exist; another ElectionType is INVALID_REQUEST. Topics null (every
// partition) answers an empty list: Kafka's controller leaves out the
// partitions that needed no election when electing all.
//
// ACLs (-authorizer): ALTER on the cluster; without it the top-level
// ErrorCode (v1+) is CLUSTER_AUTHORIZATION_FAILED and every named partition
// carries it too (v0 has only those).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const electLeadersKey = 43

func init() { register(electLeadersKey, 0, 2, (*Handler).electLeaders) }

func (h *Handler) electLeaders(r *request) {
	req := kmsg.NewPtrElectLeadersRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrElectLeadersResponse()
	resp.Version = r.version
	var all int16 // an error for every partition
	switch {
	case !h.authorizedCluster(r, acl.OpAlter):
		all = kerr.ClusterAuthorizationFailed.Code
		resp.ErrorCode = all
	case r.version >= 1 && req.ElectionType != 0 && req.ElectionType != 1:
		all = kerr.InvalidRequest.Code
	}
	for _, t := range req.Topics {
		rt := kmsg.NewElectLeadersResponseTopic()
		rt.Topic = t.Topic
		info, found := h.topic(t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewElectLeadersResponseTopicPartition()
			rp.Partition = p
			switch {
			case all != 0:
				rp.ErrorCode = all
			case !found || !partitionOK(&info, p):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				rp.ErrorCode = kerr.ElectionNotNeeded.Code
				rp.ErrorMessage = strp("Leader election not needed for topic partition.")
			}
			if rp.ErrorMessage == nil {
				rp.ErrorMessage = codeMessage(rp.ErrorCode)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	r.respond(resp)
}

// codeMessage is the Kafka error text of code for an ErrorMessage field, nil
// for 0.
func codeMessage(code int16) *string {
	if e, ok := kerr.ErrorForCode(code).(*kerr.Error); ok {
		return &e.Message
	}
	return nil
}
