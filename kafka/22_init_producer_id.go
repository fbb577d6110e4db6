package kafka

// InitProducerId (key 22), versions 0-5.
//
// Behaviour: with a null TransactionalID (idempotent producers: the default
// in franz-go and Java clients 3.x) a new producer id with epoch 0 comes from
// storage, which persists it. A v3+ request carrying its current producer id
// and epoch (KIP-360, recovering from UNKNOWN_PRODUCER_ID or a sequence gap)
// also gets a fresh id, exactly as Kafka answers idempotent producers; one of
// the two set without the other answers INVALID_REQUEST, as in Kafka.
//
// With a TransactionalID (KIP-98) the transaction coordinator (package txn)
// answers: a new producer id with epoch 0 for a new id, else the epoch
// bumped, an ongoing transaction of the id aborted with its producer fenced
// (CONCURRENT_TRANSACTIONS until that is done; the client retries), and
// KIP-360 recovery checked against the producer id and epoch the client
// sends. A TransactionTimeoutMillis of 0 or over -transaction-max-timeout
// answers INVALID_TRANSACTION_TIMEOUT. An empty TransactionalID answers
// INVALID_REQUEST (as Kafka does), as does one longer than 32767 bytes; a
// new id beyond -transaction-max-ids answers POLICY_VIOLATION (Kafka has
// no such bound); without a coordinator,
// COORDINATOR_NOT_AVAILABLE. PRODUCER_FENCED is INVALID_PRODUCER_EPOCH
// before v4 (KIP-588).
//
// Storage reserves ids a block ahead in its metadata log, so this rarely
// waits for an fsync and never for another client's topic change; when it
// must (a burst used up the block), the request is served off the event
// loop, as always.
//
// ACLs (-authorizer): IDEMPOTENT_WRITE on the cluster or WRITE on any topic (KIP-679;
// CLUSTER_AUTHORIZATION_FAILED); with a transactional id, WRITE on it
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) instead.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const initProducerIDKey = 22

func init() { register(initProducerIDKey, 0, 5, (*Handler).initProducerID) }

func (h *Handler) initProducerID(r *request) {
	req := kmsg.NewPtrInitProducerIDRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.Version = r.version
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	switch {
	case req.TransactionalID != nil && *req.TransactionalID == "":
		resp.ErrorCode = kerr.InvalidRequest.Code
	case (req.ProducerID == -1) != (req.ProducerEpoch == -1):
		resp.ErrorCode = kerr.InvalidRequest.Code
	case req.TransactionalID != nil && !h.txnAllowed(r, acl.OpWrite, *req.TransactionalID):
		resp.ErrorCode = txnAuthFailed
	case req.TransactionalID != nil && h.cfg.Txns == nil:
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	case req.TransactionalID != nil:
		h.async(r, func() {
			h.cfg.Txns.InitProducerID(*req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch,
				func(pid int64, epoch int16, code int16) {
					resp.ProducerID, resp.ProducerEpoch, resp.ErrorCode = pid, epoch, fencedCode(code, r.version, 4)
					r.respond(resp)
				})
		})
		return
	case !h.idempotentWriteAllowed(r):
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
	default:
		h.async(r, func() {
			id, epoch, err := h.st.InitProducerID()
			if err != nil {
				resp.ErrorCode = h.errCode(err)
			} else {
				resp.ProducerID, resp.ProducerEpoch = id, epoch
			}
			r.respond(resp)
		})
		return
	}
	r.respond(resp)
}

// idempotentWriteAllowed: an idempotent producer needs IDEMPOTENT_WRITE on
// the cluster or, since Kafka 3.0 (KIP-679), WRITE on any topic.
func (h *Handler) idempotentWriteAllowed(r *request) bool {
	a := h.cfg.Authorizer
	return a == nil || h.authorizedCluster(r, acl.OpIdempotentWrite) ||
		a.AuthorizeAny(h.principal(r), peerHost(r), acl.OpWrite, acl.ResourceTopic)
}
