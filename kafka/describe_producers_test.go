package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func describeProducersReq(topic string, parts ...int32) *kmsg.DescribeProducersRequest {
	r := kmsg.NewPtrDescribeProducersRequest()
	t := kmsg.NewDescribeProducersRequestTopic()
	t.Topic, t.Partitions = topic, parts
	r.Topics = append(r.Topics, t)
	return r
}

// TestDescribeProducers: the producers of txnLog's partition with their
// last sequences and pid 3's open transaction; Kafka's errors for an
// invalid name, an unknown topic and partition; the internal topics
// answer no producers; a partition listed twice is answered once.
func TestDescribeProducers(t *testing.T) {
	hs := newTxnHarness(t)
	txnLog(hs)
	req := describeProducersReq("t", 0, 1, 0)
	for _, name := range []string{"nope", "bad/name", "__consumer_offsets", "__transaction_state", "t"} {
		tr := kmsg.NewDescribeProducersRequestTopic()
		tr.Topic, tr.Partitions = name, []int32{0}
		req.Topics = append(req.Topics, tr)
	}
	resp := roundTrip[*kmsg.DescribeProducersResponse](hs, req)
	if len(resp.Topics) != 6 {
		t.Fatalf("%d topics answered, want 6", len(resp.Topics))
	}
	got := func(p kmsg.DescribeProducersResponseTopicPartition) string {
		s := fmt.Sprintf("p%d err %d:", p.Partition, p.ErrorCode)
		for _, a := range p.ActiveProducers {
			s += fmt.Sprintf(" {pid %d epoch %d seq %d coord %d txn %d}", a.ProducerID, a.ProducerEpoch, a.LastSequence, a.CoordinatorEpoch, a.CurrentTxnStartOffset)
		}
		return s
	}
	t0 := resp.Topics[0]
	wantP0 := "p0 err 0: {pid 1 epoch 0 seq 1 coord -1 txn -1} {pid 2 epoch 0 seq 0 coord -1 txn -1} {pid 3 epoch 0 seq 0 coord -1 txn 7}"
	if t0.Topic != "t" || len(t0.Partitions) != 2 || got(t0.Partitions[0]) != wantP0 {
		t.Fatalf("t: %+v, want partitions 0 (once, as %s) and 1", t0, wantP0)
	}
	// t/0 again, in a second entry for t: answered once, above.
	if last := resp.Topics[5]; last.Topic != "t" || len(last.Partitions) != 0 {
		t.Fatalf("t listed again: %+v", last)
	}
	if got(t0.Partitions[1]) != fmt.Sprintf("p1 err %d:", kerr.UnknownTopicOrPartition.Code) {
		t.Fatalf("t/1: %s", got(t0.Partitions[1]))
	}
	for i, want := range []int16{kerr.UnknownTopicOrPartition.Code, kerr.InvalidTopicException.Code, 0, 0} {
		rt := resp.Topics[i+1]
		if len(rt.Partitions) != 1 || rt.Partitions[0].ErrorCode != want || len(rt.Partitions[0].ActiveProducers) != 0 {
			t.Fatalf("%s: %+v, want error %d and no producers", rt.Topic, rt, want)
		}
	}
}
