package kafka

// AddOffsetsToTxn (key 25), versions 0-4.
//
// Behaviour: adds a group's offsets to the producer's transaction
// (txn.Coordinator.AddOffsets), durably before the answer; the producer's
// TxnOffsetCommits to that group are then accepted, and its pending offsets
// there are committed or dropped when the transaction ends. Kafka adds the
// group's __consumer_offsets partition to the transaction; klite keeps the
// group itself. A group id longer than 32767 bytes answers
// INVALID_GROUP_ID; a group beyond -transaction-max-groups in one
// transaction POLICY_VIOLATION. Errors as AddPartitionsToTxn's; PRODUCER_FENCED is
// INVALID_PRODUCER_EPOCH before v2 (KIP-588).
//
// ACLs (-authorizer): WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on the group
// (GROUP_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const addOffsetsToTxnKey = 25

func init() { register(addOffsetsToTxnKey, 0, 4, (*Handler).addOffsetsToTxn) }

func (h *Handler) addOffsetsToTxn(r *request) {
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrAddOffsetsToTxnResponse()
	resp.Version = r.version
	switch {
	case req.TransactionalID == "":
		resp.ErrorCode = kerr.InvalidRequest.Code
	case !h.txnAllowed(r, acl.OpWrite, req.TransactionalID):
		resp.ErrorCode = txnAuthFailed
	case !h.groupAllowed(r, acl.OpRead, req.Group):
		resp.ErrorCode = groupAuthFailed
	case h.cfg.Txns == nil:
		resp.ErrorCode = noCoordinator
	default:
		h.cfg.Txns.AddOffsets(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, func(code int16) {
			resp.ErrorCode = fencedCode(code, r.version, 2)
			r.respond(resp)
		})
		return
	}
	r.respond(resp)
}
