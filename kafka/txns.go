package kafka

// The transaction APIs (keys 22 with a transactional id, 24, 25, 26, 28)
// parse and check ACLs here and are decided by the transaction coordinator
// (package txn), which answers from its own goroutines.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/txn"
)

// Txns is the transaction coordinator as the protocol layer sees it.
// *txn.Coordinator implements it. Each method with a done calls it exactly
// once, from any goroutine.
type Txns interface {
	// InitProducerID and EndTxn may wait for a producer id block: they are
	// called off the event loop.
	InitProducerID(id string, timeoutMs int32, pid int64, epoch int16, done func(pid int64, epoch int16, code int16))
	EndTxn(id string, pid int64, epoch int16, commit, bump bool, done func(pid int64, epoch int16, code int16))
	AddPartitions(id string, pid int64, epoch int16, tps []txn.TP, done func(code int16))
	AddOffsets(id string, pid int64, epoch int16, group string, done func(code int16))
	VerifyPartitions(id string, pid int64, epoch int16, tps []txn.TP) (code int16, parts []int16)
	TxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest, done func(*kmsg.TxnOffsetCommitResponse))
	Describe(id string) (txn.Description, bool)
	List() []txn.Description
}

// txnAuthFailed is what a principal without WRITE (or DESCRIBE) on a
// transactional id gets.
var txnAuthFailed = kerr.TransactionalIDAuthorizationFailed.Code

// txnAllowed: op on transactional id id.
func (h *Handler) txnAllowed(r *request, op acl.Operation, id string) bool {
	return h.authorized(r, op, acl.ResourceTransactionalID, id)
}

// fencedCode maps PRODUCER_FENCED to INVALID_PRODUCER_EPOCH for request
// versions older than since, which predate PRODUCER_FENCED (KIP-588), as
// Kafka does.
func fencedCode(code int16, version, since int16) int16 {
	if code == kerr.ProducerFenced.Code && version < since {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}
