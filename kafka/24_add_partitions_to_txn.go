package kafka

// AddPartitionsToTxn (key 24), versions 0-5.
//
// Behaviour: v0-3 (clients) add partitions to the producer's transaction
// (txn.Coordinator.AddPartitions): the transaction becomes Ongoing, durably,
// before the answer. Partitions of unknown topics answer
// UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as in
// Kafka; the coordinator's code (INVALID_PRODUCER_ID_MAPPING,
// PRODUCER_FENCED, CONCURRENT_TRANSACTIONS ...) applies to every partition.
// v4+ (KIP-890 part 1, brokers) batch several transactions; VerifyOnly
// answers, per partition, whether it is already in the producer's ongoing
// transaction (INVALID_TXN_STATE when not) and changes nothing. klite's own
// produce path asks the coordinator directly (TxnVerifier).
// PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v2 (KIP-588).
//
// ACLs (-authorizer): v0-3 WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and on each topic
// (TOPIC_AUTHORIZATION_FAILED; the others OPERATION_NOT_ATTEMPTED); v4+
// CLUSTER_ACTION on the cluster (CLUSTER_AUTHORIZATION_FAILED).

import (
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/txn"
)

const addPartitionsToTxnKey = 24

func init() { register(addPartitionsToTxnKey, 0, 5, (*Handler).addPartitionsToTxn) }

func (h *Handler) addPartitionsToTxn(r *request) {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrAddPartitionsToTxnResponse()
	resp.Version = r.version
	if r.version >= 4 {
		h.addPartitionsBatched(r, req, resp)
		return
	}
	// The topics as one transaction of the v4 shape, answered in the v0-3 one.
	topics := make([]kmsg.AddPartitionsToTxnRequestTransactionTopic, len(req.Topics))
	for i, t := range req.Topics {
		topics[i] = kmsg.AddPartitionsToTxnRequestTransactionTopic{Topic: t.Topic, Partitions: t.Partitions}
	}
	code := int16(0)
	switch {
	case req.TransactionalID == "":
		code = kerr.InvalidRequest.Code
	case !h.txnAllowed(r, acl.OpWrite, req.TransactionalID):
		code = txnAuthFailed
	}
	h.addPartitions(r, req.TransactionalID, req.ProducerID, req.ProducerEpoch, false, topics, code, func(res []kmsg.AddPartitionsToTxnResponseTransactionTopic) {
		for _, t := range res {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, fencedCode(p.ErrorCode, r.version, 2)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		r.respond(resp)
	})
}

// maxBatchedTxnsInFlight bounds the transactions of one v4+ request being
// added at once: enough to share the coordinator's fsyncs, few enough that
// a request of a million transactions does not queue a million state
// writes ahead of every other client's.
const maxBatchedTxnsInFlight = 64

// addPartitionsBatched serves v4+: every transaction issued in turn, off
// the event loop (a request may carry very many), at most
// maxBatchedTxnsInFlight at a time, the response once all have answered.
// A loop and a countdown, not a chain of callbacks: the coordinator often
// answers at once, and a chain a million transactions long overflowed the
// goroutine's stack.
func (h *Handler) addPartitionsBatched(r *request, req *kmsg.AddPartitionsToTxnRequest, resp *kmsg.AddPartitionsToTxnResponse) {
	switch {
	case !h.authorizedCluster(r, acl.OpClusterAction):
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
	case h.cfg.Txns == nil:
		resp.ErrorCode = noCoordinator
	}
	if resp.ErrorCode != 0 || len(req.Transactions) == 0 {
		r.respond(resp)
		return
	}
	h.async(r, func() {
		resp.Transactions = make([]kmsg.AddPartitionsToTxnResponseTransaction, len(req.Transactions))
		var pending atomic.Int64
		pending.Store(int64(len(req.Transactions)) + 1) // +1 held while issuing
		doneOne := func() {
			if pending.Add(-1) == 0 {
				r.respond(resp)
			}
		}
		sem := make(chan struct{}, maxBatchedTxnsInFlight)
		for i := range req.Transactions {
			sem <- struct{}{}
			t := &req.Transactions[i]
			rt := &resp.Transactions[i]
			rt.Default()
			rt.TransactionalID = t.TransactionalID
			code := int16(0)
			if t.TransactionalID == "" {
				code = kerr.InvalidRequest.Code
			}
			h.addPartitions(r, t.TransactionalID, t.ProducerID, t.ProducerEpoch, t.VerifyOnly, t.Topics, code, func(res []kmsg.AddPartitionsToTxnResponseTransactionTopic) {
				rt.Topics = res
				<-sem
				doneOne()
			})
		}
		doneOne()
	})
}

// addPartitions adds (or, verifyOnly, checks) one transaction's topics and
// calls done with the per-partition result. A non-zero code answers every
// partition with it.
func (h *Handler) addPartitions(r *request, id string, pid int64, epoch int16, verifyOnly bool,
	topics []kmsg.AddPartitionsToTxnRequestTransactionTopic, code int16, done func([]kmsg.AddPartitionsToTxnResponseTransactionTopic)) {
	res := make([]kmsg.AddPartitionsToTxnResponseTransactionTopic, len(topics))
	var tps []txn.TP
	var slots []*int16
	failed := code != 0
	for i, t := range topics {
		rt := &res[i]
		rt.Default()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.AddPartitionsToTxnResponseTransactionTopicPartition, len(t.Partitions))
		info, known := h.st.Topic(t.Topic)
		denied := r.version < 4 && code == 0 && !h.authorized(r, acl.OpWrite, acl.ResourceTopic, t.Topic)
		for j, p := range t.Partitions {
			rp := &rt.Partitions[j]
			rp.Default()
			rp.Partition = p
			switch {
			case code != 0:
				rp.ErrorCode = code
			case denied:
				rp.ErrorCode, failed = kerr.TopicAuthorizationFailed.Code, true
			case !known || p < 0 || p >= info.Partitions:
				rp.ErrorCode, failed = kerr.UnknownTopicOrPartition.Code, true
			default:
				tps = append(tps, txn.TP{Topic: t.Topic, Partition: p})
				slots = append(slots, &rp.ErrorCode)
			}
		}
	}
	if failed || len(tps) == 0 {
		// Kafka adds nothing when one partition fails.
		for _, s := range slots {
			*s = kerr.OperationNotAttempted.Code
		}
		done(res)
		return
	}
	if h.cfg.Txns == nil {
		for _, s := range slots {
			*s = noCoordinator
		}
		done(res)
		return
	}
	if verifyOnly {
		code, parts := h.cfg.Txns.VerifyPartitions(id, pid, epoch, tps)
		for i, s := range slots {
			if code != 0 {
				*s = code
			} else {
				*s = parts[i]
			}
		}
		done(res)
		return
	}
	h.cfg.Txns.AddPartitions(id, pid, epoch, tps, func(code int16) {
		for _, s := range slots {
			*s = code
		}
		done(res)
	})
}
