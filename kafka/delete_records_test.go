package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

func deleteRecordsReq(v int16, topic string, parts map[int32]int64, order ...int32) *kmsg.DeleteRecordsRequest {
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.Version = v
	req.TimeoutMillis = 30000
	t := kmsg.NewDeleteRecordsRequestTopic()
	t.Topic = topic
	for _, p := range order {
		rp := kmsg.NewDeleteRecordsRequestTopicPartition()
		rp.Partition, rp.Offset = p, parts[p]
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = append(req.Topics, t)
	return req
}

// Every version: the low watermark moves and is returned; each bad
// partition gets Kafka's code with LowWatermark -1.
func TestDeleteRecords(t *testing.T) {
	for v := int16(0); v <= 2; v++ {
		hs := newHarness(t)
		hs.createTopic("t", 6, nil)
		for p := int32(0); p < 6; p++ {
			hs.produceTo("t", p, makeBatch(batchOpts{records: 3}))
			hs.produceTo("t", p, makeBatch(batchOpts{records: 2}))
		}
		hs.createTopic("compacted", 1, map[string]string{"cleanup.policy": "compact"})
		hs.createTopic("both", 1, map[string]string{"cleanup.policy": "compact,delete"})
		hs.produceTo("both", 0, makeBatch(batchOpts{records: 2, keyed: true}))

		req := deleteRecordsReq(v, "t", map[int32]int64{
			0: 3,  // batch boundary
			1: 4,  // inside a batch: Kafka moves the log start there too
			2: -1, // the high watermark
			3: 6,  // past the high watermark
			4: -2, // below -1
			5: 0,  // a no-op
			9: 1,  // no such partition
		}, 0, 1, 2, 3, 4, 5, 9)
		more := deleteRecordsReq(v, "missing", map[int32]int64{0: 1}, 0)
		req.Topics = append(req.Topics, more.Topics...)
		more = deleteRecordsReq(v, "compacted", map[int32]int64{0: 0}, 0)
		req.Topics = append(req.Topics, more.Topics...)
		more = deleteRecordsReq(v, "both", map[int32]int64{0: 1}, 0)
		req.Topics = append(req.Topics, more.Topics...)

		resp := roundTrip[*kmsg.DeleteRecordsResponse](hs, req)
		type result struct {
			low  int64
			code int16
		}
		want := [][]result{
			{{3, 0}, {4, 0}, {5, 0}, {-1, kerr.OffsetOutOfRange.Code}, {-1, kerr.OffsetOutOfRange.Code}, {0, 0}, {-1, kerr.UnknownTopicOrPartition.Code}},
			{{-1, kerr.UnknownTopicOrPartition.Code}},
			{{-1, kerr.PolicyViolation.Code}},
			{{1, 0}},
		}
		if len(resp.Topics) != len(want) {
			t.Fatalf("v%d: %d topics answered", v, len(resp.Topics))
		}
		for ti, rt := range resp.Topics {
			if rt.Topic != req.Topics[ti].Topic || len(rt.Partitions) != len(want[ti]) {
				t.Fatalf("v%d: topic %d is %q with %d partitions", v, ti, rt.Topic, len(rt.Partitions))
			}
			for pi, rp := range rt.Partitions {
				got := result{rp.LowWatermark, rp.ErrorCode}
				if rp.Partition != req.Topics[ti].Partitions[pi].Partition || got != want[ti][pi] {
					t.Fatalf("v%d %s/%d: got %+v, want %+v", v, rt.Topic, rp.Partition, got, want[ti][pi])
				}
			}
		}
		for p, start := range map[int32]int64{0: 3, 1: 4, 2: 5, 3: 0, 4: 0, 5: 0} {
			if got, _, _ := hs.st.Offsets("t", p); got != start {
				t.Fatalf("v%d: t/%d log start %d, want %d", v, p, got, start)
			}
		}

		// Never backwards: a lower offset answers the current log start.
		again := roundTrip[*kmsg.DeleteRecordsResponse](hs, deleteRecordsReq(v, "t", map[int32]int64{0: 1}, 0))
		if rp := again.Topics[0].Partitions[0]; rp.ErrorCode != 0 || rp.LowWatermark != 3 {
			t.Fatalf("v%d: delete below the log start: %+v", v, rp)
		}
	}
}

// A storage failure is KAFKA_STORAGE_ERROR, including a WAL at its cap.
func TestDeleteRecordsStorageErrors(t *testing.T) {
	for _, err := range []error{storage.ErrStorage, storage.ErrClosed, storage.ErrLogFull} {
		hs := newHarness(t)
		hs.createTopic("t", 1, nil)
		hs.produceTo("t", 0, makeBatch(batchOpts{records: 2}))
		hs.st.appendErr = err
		resp := roundTrip[*kmsg.DeleteRecordsResponse](hs, deleteRecordsReq(2, "t", map[int32]int64{0: 1}, 0))
		if rp := resp.Topics[0].Partitions[0]; rp.ErrorCode != kerr.KafkaStorageError.Code || rp.LowWatermark != -1 {
			t.Fatalf("%v: %+v", err, rp)
		}
	}
}

// After DeleteRecords: ListOffsets earliest is the new log start, a fetch
// below it is OFFSET_OUT_OF_RANGE (watermarks -1, as Kafka answers any
// fetch error), and one at it is served with LogStartOffset set.
func TestDeleteRecordsThenReads(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 3}))
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 2}))
	resp := roundTrip[*kmsg.DeleteRecordsResponse](hs, deleteRecordsReq(1, "t", map[int32]int64{0: 3}, 0))
	if rp := resp.Topics[0].Partitions[0]; rp.ErrorCode != 0 || rp.LowWatermark != 3 {
		t.Fatalf("delete: %+v", rp)
	}

	for _, ts := range []int64{offsetEarliest, offsetEarliestLocal} {
		lo := kmsg.NewPtrListOffsetsRequest()
		lo.Version = 8
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = "t"
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Timestamp = ts
		lt.Partitions = append(lt.Partitions, lp)
		lo.Topics = append(lo.Topics, lt)
		lr := roundTrip[*kmsg.ListOffsetsResponse](hs, lo)
		if p := lr.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 3 {
			t.Fatalf("ListOffsets %d: %+v", ts, p)
		}
	}

	for _, v := range []int16{4, 5, 11, 12, 13, 18} {
		fr := roundTrip[*kmsg.FetchResponse](hs, fetchReq(hs, v, 0, 0, 1<<20, fetchPart{"t", 0, 2, 1 << 20}))
		p := fr.Topics[0].Partitions[0]
		if p.ErrorCode != kerr.OffsetOutOfRange.Code || len(p.RecordBatches) != 0 || p.HighWatermark != -1 || p.LogStartOffset != -1 {
			t.Fatalf("v%d fetch below log start: code %d hwm %d logStart %d, %d bytes", v, p.ErrorCode, p.HighWatermark, p.LogStartOffset, len(p.RecordBatches))
		}
		fr = roundTrip[*kmsg.FetchResponse](hs, fetchReq(hs, v, 0, 0, 1<<20, fetchPart{"t", 0, 3, 1 << 20}))
		p = fr.Topics[0].Partitions[0]
		wantStart := int64(3)
		if v < 5 {
			wantStart = -1 // not in v4: decodes to the default
		}
		if p.ErrorCode != 0 || p.HighWatermark != 5 || p.LogStartOffset != wantStart || len(p.RecordBatches) == 0 {
			t.Fatalf("v%d fetch at log start: code %d hwm %d logStart %d, %d bytes", v, p.ErrorCode, p.HighWatermark, p.LogStartOffset, len(p.RecordBatches))
		}
	}
}
