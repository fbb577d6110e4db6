package kafka

import (
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/txn"
)

// TestAddPartitionsBatchedHuge: an AddPartitionsToTxn v5 of a million
// transactions (unknown ids, so each is answered at once) is answered,
// every transaction with its error. Served as a chain of callbacks, it
// overflowed the goroutine's stack and took the broker down.
func TestAddPartitionsBatchedHuge(t *testing.T) {
	var st *fakeStore
	hs := newHarness(t, withGroups(t, &st), withTxns(t, &st, &markerLog{}))
	hs.createTopic("t", 1, nil)
	const n = 1_000_000
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 5
	req.Transactions = make([]kmsg.AddPartitionsToTxnRequestTransaction, n)
	topics := []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "t", Partitions: []int32{0}}}
	for i := range req.Transactions {
		tx := &req.Transactions[i]
		tx.Default()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.Topics = "x", 1, 0, topics
		if i%2 == 1 {
			tx.TransactionalID = "" // INVALID_REQUEST, answered without the coordinator
		}
	}
	resp := roundTrip[*kmsg.AddPartitionsToTxnResponse](hs, req)
	if len(resp.Transactions) != n {
		t.Fatalf("%d transactions answered, want %d", len(resp.Transactions), n)
	}
	for i, tx := range resp.Transactions {
		want := kerr.InvalidProducerIDMapping.Code
		if i%2 == 1 {
			want = kerr.InvalidRequest.Code
		}
		if got := tx.Topics[0].Partitions[0].ErrorCode; got != want {
			t.Fatalf("transaction %d: %v, want %v", i, kerr.ErrorForCode(got), kerr.ErrorForCode(want))
		}
	}
}

// listOnlyTxns is a coordinator holding n transactions, for ListTransactions.
type listOnlyTxns struct {
	Txns // nil: only List is called
	list []txn.Description
}

func (l *listOnlyTxns) List() []txn.Description { return l.list }

// BenchmarkListTransactionsFilters: n transactions listed with n producer
// id filters and every state filter. With the filters kept as lists the
// cost was n² (67 s of CPU at 100,000); as sets it is linear.
func BenchmarkListTransactionsFilters(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			l := &listOnlyTxns{}
			req := kmsg.NewPtrListTransactionsRequest()
			req.Version = 1
			for i := range n {
				l.list = append(l.list, txn.Description{ID: "tx-" + strconv.Itoa(i), State: txn.Ongoing, PID: int64(i), StartMs: -1})
				req.ProducerIDFilters = append(req.ProducerIDFilters, int64(n-1-i))
			}
			req.StateFilters = []string{"Empty", "Ongoing", "PrepareCommit", "CompleteCommit"}
			hs := newHarness(b, func(cfg *Config) { cfg.Txns = l })
			b.ResetTimer()
			for b.Loop() {
				if resp := roundTrip[*kmsg.ListTransactionsResponse](hs, req); len(resp.TransactionStates) != n {
					b.Fatalf("%d listed, want %d", len(resp.TransactionStates), n)
				}
			}
		})
	}
}

// TestAddPartitionsBatchedMany: a v5 request adding a partition to 300
// real transactions (more than are added at once) adds every one, and a
// verify-only request then finds each partition in its transaction.
func TestAddPartitionsBatchedMany(t *testing.T) {
	var st *fakeStore
	hs := newHarness(t, withGroups(t, &st), withTxns(t, &st, &markerLog{}))
	st = hs.st
	hs.createTopic("t", 2, nil)
	const n = 300
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 5
	for i := range n {
		id := "tx-" + strconv.Itoa(i)
		done := make(chan int64, 1)
		hs.h.cfg.Txns.InitProducerID(id, 60000, -1, -1, func(pid int64, _ int16, code int16) {
			if code != 0 {
				t.Errorf("init %s: %v", id, kerr.ErrorForCode(code))
			}
			done <- pid
		})
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch = id, <-done, 0
		tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "t", Partitions: []int32{int32(i % 2)}}}
		req.Transactions = append(req.Transactions, tx)
	}
	for _, verify := range []bool{false, true} {
		for i := range req.Transactions {
			req.Transactions[i].VerifyOnly = verify
		}
		resp := roundTrip[*kmsg.AddPartitionsToTxnResponse](hs, req)
		if len(resp.Transactions) != n {
			t.Fatalf("verify=%v: %d transactions answered", verify, len(resp.Transactions))
		}
		for i, tx := range resp.Transactions {
			if c := tx.Topics[0].Partitions[0].ErrorCode; c != 0 || tx.TransactionalID != req.Transactions[i].TransactionalID {
				t.Fatalf("verify=%v: %s: %v", verify, tx.TransactionalID, kerr.ErrorForCode(c))
			}
		}
	}
}
