package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
