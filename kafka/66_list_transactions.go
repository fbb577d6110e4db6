package kafka

// ListTransactions (key 66), versions 0-1 (KIP-664, KIP-994).
//
// Behaviour: every transactional id the coordinator knows, with its producer
// id and state, filtered by state names (unknown names are returned in
// UnknownStateFilters, as Kafka does), by producer ids, and (v1+) by
// duration: only transactions open longer than DurationFilterMillis.
// v2's transactional id pattern is not offered. Without a coordinator,
// COORDINATOR_NOT_AVAILABLE.
//
// ACLs (-authorizer): ids the principal may not DESCRIBE are left out.

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/txn"
)

const listTransactionsKey = 66

func init() { register(listTransactionsKey, 0, 1, (*Handler).listTransactions) }

func (h *Handler) listTransactions(r *request) {
	req := kmsg.NewPtrListTransactionsRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrListTransactionsResponse()
	resp.Version = r.version
	if h.cfg.Txns == nil {
		resp.ErrorCode = noCoordinator
		r.respond(resp)
		return
	}
	var states []txn.State
	for _, name := range req.StateFilters {
		if s, ok := txn.ParseState(name); ok {
			states = append(states, s)
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	nowMs := time.Now().UnixMilli()
	for _, d := range h.cfg.Txns.List() {
		switch {
		case d.Epoch < 0: // created by an InitProducerId not yet durable
		case len(req.StateFilters) > 0 && !slices.Contains(states, d.State):
		case len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, d.PID):
		case r.version >= 1 && req.DurationFilterMillis >= 0 && (d.StartMs < 0 || nowMs-d.StartMs <= req.DurationFilterMillis):
		case !h.txnAllowed(r, acl.OpDescribe, d.ID):
		default:
			s := kmsg.NewListTransactionsResponseTransactionState()
			s.TransactionalID, s.ProducerID, s.TransactionState = d.ID, d.PID, d.State.String()
			resp.TransactionStates = append(resp.TransactionStates, s)
		}
	}
	slices.SortFunc(resp.TransactionStates, func(a, b kmsg.ListTransactionsResponseTransactionState) int {
		if a.TransactionalID < b.TransactionalID {
			return -1
		}
		if a.TransactionalID > b.TransactionalID {
			return 1
		}
		return 0
	})
	r.respond(resp)
}
