package kafka

// ConsumerGroupDescribe (key 69), versions 0-1 (KIP-848).
//
// Behaviour: for each consumer-protocol group: its state (Empty, Assigning,
// Reconciling, Stable), group epoch, assignment epoch, assignor and members
// with their epochs, subscriptions, current and target assignments
// (topic ids and names), and member type "consumer" (v1). A group that does
// not exist, or a classic group, answers GROUP_ID_NOT_FOUND, as Kafka does;
// an empty group id INVALID_GROUP_ID. AuthorizedOperations is always "not
// requested" (INT32_MIN): klite has no ACLs.
//
// ACLs (-authorizer): DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED), with the
// KIP-430 authorized operations, authz_groups.go.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

const consumerGroupDescribeKey = 69

func init() { register(consumerGroupDescribeKey, 0, 1, (*Handler).consumerGroupDescribe) }

func (h *Handler) consumerGroupDescribe(r *request) {
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups == nil {
		resp := kmsg.NewPtrConsumerGroupDescribeResponse()
		resp.Version = r.version
		for _, g := range req.Groups {
			dg := kmsg.NewConsumerGroupDescribeResponseGroup()
			dg.Group, dg.ErrorCode = g, noCoordinator
			resp.Groups = append(resp.Groups, dg)
		}
		r.respond(resp)
		return
	}
	if h.cfg.Authorizer != nil {
		h.consumerGroupDescribeAuthz(r, req)
		return
	}
	h.cfg.Groups.ConsumerGroupDescribe(req, groupRespond[*kmsg.ConsumerGroupDescribeResponse](r))
}
