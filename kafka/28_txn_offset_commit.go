package kafka

// TxnOffsetCommit (key 28), versions 0-5.
//
// Behaviour: the transaction coordinator checks the producer id and epoch
// and that AddOffsetsToTxn added the group to the ongoing transaction
// (INVALID_TXN_STATE when not: a late commit cannot join a transaction that
// ended); the group coordinator then checks the member like Kafka's
// transactional validateOffsetCommit (KIP-447: v3+ member id, generation and
// instance id; ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID)
// and stores the offsets pending, durably, before the answer. They become
// the group's committed offsets when the transaction commits and are dropped
// when it aborts; meanwhile OffsetFetch returns the previous offset, or
// UNSTABLE_OFFSET_COMMIT with require_stable. PRODUCER_FENCED is
// INVALID_PRODUCER_EPOCH before v3 (KIP-588). v5 is v4 for a client
// without transaction.version 2 (KIP-890 part 2, whose implicit add of the
// group klite does not do: it does not advertise the feature, so clients
// send AddOffsetsToTxn first). v6 (KIP-1319: topic ids) is not offered: no
// Kafka 4.x release advertises it.
//
// ACLs (-authorizer): WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on the group
// (GROUP_AUTHORIZATION_FAILED) and on each topic (TOPIC_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/txn"
)

const txnOffsetCommitKey = 28

func init() { register(txnOffsetCommitKey, 0, 5, (*Handler).txnOffsetCommit) }

func (h *Handler) txnOffsetCommit(r *request) {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	if !h.parse(r, req) {
		return
	}
	code := int16(0)
	switch {
	case req.TransactionalID == "":
		code = kerr.InvalidRequest.Code
	case !h.txnAllowed(r, acl.OpWrite, req.TransactionalID):
		code = txnAuthFailed
	case !h.groupAllowed(r, acl.OpRead, req.Group):
		code = groupAuthFailed
	case h.cfg.Txns == nil || h.cfg.Groups == nil:
		code = noCoordinator
	}
	if code != 0 {
		r.respond(txn.TxnOffsetCommitError(req, code))
		return
	}
	// Topics the principal may not READ answer TOPIC_AUTHORIZATION_FAILED;
	// the rest go on.
	var refused []kmsg.TxnOffsetCommitRequestTopic
	if h.cfg.Authorizer != nil {
		kept := req.Topics[:0:0]
		for _, t := range req.Topics {
			if h.authorized(r, acl.OpRead, acl.ResourceTopic, t.Topic) {
				kept = append(kept, t)
			} else {
				refused = append(refused, t)
			}
		}
		req.Topics = kept
	}
	finish := func(resp *kmsg.TxnOffsetCommitResponse) {
		if len(refused) > 0 {
			denied := *req
			denied.Topics = refused
			resp.Topics = append(resp.Topics, txn.TxnOffsetCommitError(&denied, kerr.TopicAuthorizationFailed.Code).Topics...)
		}
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				p := &resp.Topics[i].Partitions[j]
				p.ErrorCode = fencedCode(p.ErrorCode, r.version, 3)
			}
		}
		resp.Version = r.version
		r.respond(resp)
	}
	if len(req.Topics) == 0 {
		finish(txn.TxnOffsetCommitError(req, 0))
		return
	}
	h.cfg.Txns.TxnOffsetCommit(req, finish)
}
