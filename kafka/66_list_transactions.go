package kafka

// ListTransactions (key 66), versions 0-2 (KIP-664, KIP-994, KIP-1152).
//
// Behaviour: every transactional id the coordinator knows, with its producer
// id and state, filtered by state names (unknown names are returned in
// UnknownStateFilters, as Kafka does), by producer ids, (v1+) by duration:
// only transactions open longer than DurationFilterMillis, and (v2+) by
// TransactionalIDPattern, an RE2 regex (Kafka's re2j) that must match the
// whole id, as Java's Matcher.matches(); null or empty matches every id. A
// pattern that does not compile, or is longer than MaxTxnPatternBytes
// (-list-transactions-max-pattern-bytes), answers
// INVALID_REGULAR_EXPRESSION. Without a coordinator,
// COORDINATOR_NOT_AVAILABLE. A pattern is matched against every id, off the
// event loop.
//
// ACLs (-authorizer): ids the principal may not DESCRIBE are left out.

import (
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/txn"
)

const listTransactionsKey = 66

func init() { register(listTransactionsKey, 0, 2, (*Handler).listTransactions) }

// DefaultMaxTxnPatternBytes bounds ListTransactions' TransactionalIDPattern:
// it is compiled per request and matched against every transactional id,
// in time up to its size times each id's. Real patterns are a prefix
// ("orders-.*") or a few names.
const DefaultMaxTxnPatternBytes = 4096

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
	pat := req.TransactionalIDPattern
	if r.version < 2 || pat == nil || *pat == "" {
		r.respond(h.listTransactionsResponse(r, req, resp, nil))
		return
	}
	if len(*pat) > h.cfg.MaxTxnPatternBytes {
		resp.ErrorCode = kerr.InvalidRegularExpression.Code
		r.respond(resp)
		return
	}
	// Compiling (up to ~2 ms at the bound) and matching every id: off the
	// event loop.
	h.asyncRead(r, func() {
		re, err := regexp.Compile("^(?:" + *pat + ")$")
		if err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			r.respond(resp)
			return
		}
		r.respond(h.listTransactionsResponse(r, req, resp, re))
	})
}

// listTransactionsResponse fills resp with the transactions that pass
// req's filters and re (nil: every id).
func (h *Handler) listTransactionsResponse(r *request, req *kmsg.ListTransactionsRequest, resp *kmsg.ListTransactionsResponse, re *regexp.Regexp) *kmsg.ListTransactionsResponse {
	// The filters as sets: a request may carry very many producer ids, and
	// each transaction is checked against them (a list made this
	// quadratic: 67 s of CPU for 100,000 ids against as many filters).
	var states uint64 // bit per txn.State
	for _, name := range req.StateFilters {
		if s, ok := txn.ParseState(name); ok {
			states |= 1 << uint(s)
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	var pids map[int64]struct{}
	if len(req.ProducerIDFilters) > 0 {
		pids = make(map[int64]struct{}, len(req.ProducerIDFilters))
		for _, p := range req.ProducerIDFilters {
			pids[p] = struct{}{}
		}
	}
	nowMs := time.Now().UnixMilli()
	for _, d := range h.cfg.Txns.List() {
		switch {
		case d.Epoch < 0: // created by an InitProducerId not yet durable
		case len(req.StateFilters) > 0 && states&(1<<uint(d.State)) == 0:
		case pids != nil && !hasPID(pids, d.PID):
		case r.version >= 1 && req.DurationFilterMillis >= 0 && (d.StartMs < 0 || nowMs-d.StartMs <= req.DurationFilterMillis):
		case re != nil && !re.MatchString(d.ID):
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
	return resp
}

func hasPID(set map[int64]struct{}, pid int64) bool {
	_, ok := set[pid]
	return ok
}
