package kafka

// EndTxn (key 26), versions 0-5.
//
// Behaviour: commits or aborts the producer's transaction
// (txn.Coordinator.EndTxn): PrepareCommit or PrepareAbort is made durable,
// a marker is written to every partition of the transaction, and the
// answer goes out once the transaction is recorded complete. Kafka answers
// at the durable Prepare and writes markers after; here they are local
// fsyncs, and answering after them spares the client's next transaction a
// CONCURRENT_TRANSACTIONS backoff. Meanwhile the transaction's other
// requests answer CONCURRENT_TRANSACTIONS (clients retry). A retried EndTxn of a
// completed transaction succeeds; one of the other outcome answers
// INVALID_TXN_STATE, as does a commit with no transaction open.
// v5 is KIP-890 part 2's transaction version 2: every end bumps the
// producer epoch, the markers carry the new epoch, and the response
// returns the producer id and epoch to go on with; an abort with nothing
// open bumps the epoch too. PRODUCER_FENCED is INVALID_PRODUCER_EPOCH
// before v2 (KIP-588).
//
// ACLs (-authorizer): WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const endTxnKey = 26

func init() { register(endTxnKey, 0, 5, (*Handler).endTxn) }

func (h *Handler) endTxn(r *request) {
	req := kmsg.NewPtrEndTxnRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrEndTxnResponse()
	resp.Version = r.version
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	switch {
	case req.TransactionalID == "":
		resp.ErrorCode = kerr.InvalidRequest.Code
	case !h.txnAllowed(r, acl.OpWrite, req.TransactionalID):
		resp.ErrorCode = txnAuthFailed
	case h.cfg.Txns == nil:
		resp.ErrorCode = noCoordinator
	default:
		h.async(r, func() {
			h.cfg.Txns.EndTxn(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, r.version >= 5,
				func(pid int64, epoch int16, code int16) {
					resp.ErrorCode = fencedCode(code, r.version, 2)
					if code == 0 {
						resp.ProducerID, resp.ProducerEpoch = pid, epoch
					}
					r.respond(resp)
				})
		})
		return
	}
	r.respond(resp)
}
