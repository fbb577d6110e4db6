package kafka

// DescribeTransactions (key 65), version 0 (KIP-664).
//
// Behaviour: per transactional id, the coordinator's state (Kafka's state
// names), timeout, start time of the open transaction (-1 when none),
// producer id and epoch and the partitions of the transaction. An id the
// coordinator does not know answers TRANSACTIONAL_ID_NOT_FOUND; without a
// coordinator, COORDINATOR_NOT_AVAILABLE.
//
// ACLs (-authorizer): DESCRIBE on each transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, per id).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const describeTransactionsKey = 65

func init() { register(describeTransactionsKey, 0, 0, (*Handler).describeTransactions) }

func (h *Handler) describeTransactions(r *request) {
	req := kmsg.NewPtrDescribeTransactionsRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrDescribeTransactionsResponse()
	resp.Version = r.version
	for _, id := range req.TransactionalIDs {
		s := kmsg.NewDescribeTransactionsResponseTransactionState()
		s.TransactionalID, s.ProducerID, s.ProducerEpoch, s.StartTimestamp = id, -1, -1, -1
		switch {
		case !h.txnAllowed(r, acl.OpDescribe, id):
			s.ErrorCode = txnAuthFailed
		case h.cfg.Txns == nil:
			s.ErrorCode = noCoordinator
		default:
			d, ok := h.cfg.Txns.Describe(id)
			if !ok {
				s.ErrorCode = kerr.TransactionalIDNotFound.Code
				break
			}
			s.State, s.TimeoutMillis, s.StartTimestamp = d.State.String(), d.TimeoutMs, d.StartMs
			s.ProducerID, s.ProducerEpoch = d.PID, d.Epoch
			for _, tp := range d.Parts {
				if n := len(s.Topics); n > 0 && s.Topics[n-1].Topic == tp.Topic {
					s.Topics[n-1].Partitions = append(s.Topics[n-1].Partitions, tp.Partition)
					continue
				}
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic, t.Partitions = tp.Topic, []int32{tp.Partition}
				s.Topics = append(s.Topics, t)
			}
		}
		resp.TransactionStates = append(resp.TransactionStates, s)
	}
	r.respond(resp)
}
