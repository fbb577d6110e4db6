package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestProtocolEdges checks, over raw TCP with kmsg-encoded requests, corners
// of Apache Kafka's behaviour that clients rely on but the client libraries
// above rarely exercise, against the real binary and its real storage.

// rawConn sends kmsg requests and reads their responses, one at a time.
type rawConn struct {
	t    testing.TB
	c    net.Conn
	corr int32
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

// send writes req with a v1 or v2 header, as its version requires.
func (r *rawConn) send(req kmsg.Request) int32 {
	r.corr++
	body := req.AppendTo(nil)
	if _, err := r.c.Write(reqFrame(req.Key(), req.GetVersion(), r.corr, req.IsFlexible(), body)); err != nil {
		r.t.Fatalf("write %T: %v", req, err)
	}
	return r.corr
}

// do sends req and decodes its response.
func (r *rawConn) do(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	corr := r.send(req)
	f, err := readFrame(r.c)
	if err != nil {
		r.t.Fatalf("%T v%d: no response: %v", req, req.GetVersion(), err)
	}
	if got := int32(binary.BigEndian.Uint32(f)); got != corr {
		r.t.Fatalf("%T: correlation id %d, want %d", req, got, corr)
	}
	f = f[4:]
	if req.IsFlexible() && req.Key() != 18 { // ApiVersions answers with header v0
		f = f[1:] // empty tagged fields
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(f); err != nil {
		r.t.Fatalf("%T v%d: response does not parse: %v", req, req.GetVersion(), err)
	}
	return resp
}

func TestProtocolEdges(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	createTopic(t, adm, "edge", 2)
	createTopic(t, adm, "edge-other", 1)
	rc := dialRaw(t, b.addr)

	metadataTopics := func(version int16, topics []string, null bool) []string {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = version
		if !null {
			req.Topics = []kmsg.MetadataRequestTopic{}
			for _, tp := range topics {
				mt := kmsg.NewMetadataRequestTopic()
				mt.Topic = kmsg.StringPtr(tp)
				req.Topics = append(req.Topics, mt)
			}
		}
		resp := rc.do(req).(*kmsg.MetadataResponse)
		var names []string
		for _, tp := range resp.Topics {
			if tp.ErrorCode == 0 && tp.Topic != nil && !strings.HasPrefix(*tp.Topic, "__") { // internal: always listed
				names = append(names, *tp.Topic)
			}
		}
		return names
	}

	t.Run("metadata topic list semantics", func(t *testing.T) {
		// v0: an empty list means all topics. v1+: null means all, empty none.
		if got := metadataTopics(0, nil, false); len(got) != 2 {
			t.Errorf("Metadata v0 with an empty list: %v, want all 2 topics", got)
		}
		if got := metadataTopics(1, nil, false); len(got) != 0 {
			t.Errorf("Metadata v1 with an empty list: %v, want none", got)
		}
		for _, v := range []int16{1, 4, 9, 12} {
			if got := metadataTopics(v, nil, true); len(got) != 2 {
				t.Errorf("Metadata v%d with a null list: %v, want all 2 topics", v, got)
			}
		}
		if got := metadataTopics(12, []string{"edge-other"}, false); len(got) != 1 || got[0] != "edge-other" {
			t.Errorf("Metadata v12 for edge-other: %v", got)
		}
	})

	produce := func(topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
		req := kmsg.NewPtrProduceRequest()
		req.Version = 9
		req.Acks = -1
		req.TimeoutMillis = 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = partition
		rp.Records = batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := rc.do(req).(*kmsg.ProduceResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("produce response shape: %+v", resp)
		}
		return resp.Topics[0].Partitions[0]
	}

	t.Run("produce errors", func(t *testing.T) {
		if p := produce("edge", 2, recordBatch([]byte("x"), false)); p.ErrorCode != 3 {
			t.Errorf("produce to partition 2 of 2: error %d, want UNKNOWN_TOPIC_OR_PARTITION (3)", p.ErrorCode)
		}
		if p := produce("no-such-topic", 0, recordBatch([]byte("x"), false)); p.ErrorCode != 3 {
			t.Errorf("produce to a missing topic: error %d, want 3", p.ErrorCode)
		}
		if p := produce("edge", -1, recordBatch([]byte("x"), false)); p.ErrorCode != 3 {
			t.Errorf("produce to partition -1: error %d, want 3", p.ErrorCode)
		}
		if p := produce("edge", 0, nil); p.ErrorCode == 0 {
			t.Errorf("produce with null records: accepted, want an error")
		}
	})

	t.Run("idempotent sequences", func(t *testing.T) {
		ipReq := kmsg.NewPtrInitProducerIDRequest()
		ipReq.Version = 4
		ip := rc.do(ipReq).(*kmsg.InitProducerIDResponse)
		if ip.ErrorCode != 0 || ip.ProducerID < 0 {
			t.Fatalf("InitProducerID: error %d id %d", ip.ErrorCode, ip.ProducerID)
		}
		batch := func(seq int32, n int) []byte {
			return idempotentBatch(ip.ProducerID, ip.ProducerEpoch, seq, n)
		}
		first := produce("edge", 1, batch(0, 3))
		if first.ErrorCode != 0 {
			t.Fatalf("seq 0: error %d", first.ErrorCode)
		}
		second := produce("edge", 1, batch(3, 2))
		if second.ErrorCode != 0 || second.BaseOffset != first.BaseOffset+3 {
			t.Fatalf("seq 3: error %d base %d, want base %d", second.ErrorCode, second.BaseOffset, first.BaseOffset+3)
		}
		// A retry of the last batch is answered with its original offset and not stored again.
		dup := produce("edge", 1, batch(3, 2))
		if dup.ErrorCode != 0 || dup.BaseOffset != second.BaseOffset {
			t.Errorf("duplicate of seq 3: error %d base %d, want 0 and %d", dup.ErrorCode, dup.BaseOffset, second.BaseOffset)
		}
		// A retry of an older batch among the last five, too.
		if old := produce("edge", 1, batch(0, 3)); old.ErrorCode != 0 || old.BaseOffset != first.BaseOffset {
			t.Errorf("duplicate of seq 0: error %d base %d, want 0 and %d", old.ErrorCode, old.BaseOffset, first.BaseOffset)
		}
		// A gap is OUT_OF_ORDER_SEQUENCE_NUMBER.
		if gap := produce("edge", 1, batch(10, 1)); gap.ErrorCode != 45 {
			t.Errorf("seq 10 after 4: error %d, want OUT_OF_ORDER_SEQUENCE_NUMBER (45)", gap.ErrorCode)
		}
		// An older epoch is fenced.
		if ip.ProducerEpoch > 0 {
			stale := produce("edge", 1, idempotentBatch(ip.ProducerID, ip.ProducerEpoch-1, 5, 1))
			if stale.ErrorCode != 47 {
				t.Errorf("older epoch: error %d, want INVALID_PRODUCER_EPOCH (47)", stale.ErrorCode)
			}
		}
		ends, err := adm.ListEndOffsets(testContext(t, 30*time.Second), "edge")
		if err != nil {
			t.Fatal(err)
		}
		if e, _ := ends.Lookup("edge", 1); e.Offset != first.BaseOffset+5 {
			t.Errorf("end offset %d after 5 records and duplicates, want %d", e.Offset, first.BaseOffset+5)
		}
	})

	fetch := func(version int16, topic string, partition int32, offset int64, maxWait int32) kmsg.FetchResponseTopicPartition {
		req := kmsg.NewPtrFetchRequest()
		req.Version = version
		req.ReplicaID = -1
		req.MaxWaitMillis = maxWait
		req.MinBytes = 1
		req.MaxBytes = 1 << 20
		req.SessionEpoch = -1 // no session
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		if ti, ok := mustTopicID(t, adm, topic); ok {
			ft.TopicID = ti
		}
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition = partition
		fp.FetchOffset = offset
		fp.PartitionMaxBytes = 1 << 20
		fp.CurrentLeaderEpoch = -1
		fp.LogStartOffset = -1
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		resp := rc.do(req).(*kmsg.FetchResponse)
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch v%d response: error %d, %d topics", version, resp.ErrorCode, len(resp.Topics))
		}
		return resp.Topics[0].Partitions[0]
	}

	t.Run("fetch offsets", func(t *testing.T) {
		if p := produce("edge", 0, recordBatch([]byte("fetch-me"), false)); p.ErrorCode != 0 {
			t.Fatalf("produce: %d", p.ErrorCode)
		}
		for _, v := range []int16{4, 11, 12, 13} {
			p := fetch(v, "edge", 0, 0, 100)
			if p.ErrorCode != 0 || p.HighWatermark != 1 || len(p.RecordBatches) == 0 {
				t.Errorf("fetch v%d at 0: error %d hwm %d %d bytes", v, p.ErrorCode, p.HighWatermark, len(p.RecordBatches))
			}
			// At the high watermark: no data, no error, after MaxWaitMs.
			if p := fetch(v, "edge", 0, 1, 100); p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
				t.Errorf("fetch v%d at the high watermark: error %d, %d bytes", v, p.ErrorCode, len(p.RecordBatches))
			}
			if p := fetch(v, "edge", 0, 2, 100); p.ErrorCode != 1 {
				t.Errorf("fetch v%d past the high watermark: error %d, want OFFSET_OUT_OF_RANGE (1)", v, p.ErrorCode)
			}
			if p := fetch(v, "edge", 0, -5, 100); p.ErrorCode != 1 {
				t.Errorf("fetch v%d at offset -5: error %d, want OFFSET_OUT_OF_RANGE (1)", v, p.ErrorCode)
			}
		}
		if p := fetch(12, "edge", 7, 0, 100); p.ErrorCode != 3 {
			t.Errorf("fetch of partition 7 of 2: error %d, want UNKNOWN_TOPIC_OR_PARTITION (3)", p.ErrorCode)
		}
	})

	t.Run("list offsets special timestamps", func(t *testing.T) {
		list := func(version int16, partition int32, ts int64) kmsg.ListOffsetsResponseTopicPartition {
			req := kmsg.NewPtrListOffsetsRequest()
			req.Version = version
			req.ReplicaID = -1
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = "edge"
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = partition
			rp.Timestamp = ts
			rp.CurrentLeaderEpoch = -1
			rp.MaxNumOffsets = 1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			resp := rc.do(req).(*kmsg.ListOffsetsResponse)
			return resp.Topics[0].Partitions[0]
		}
		for _, v := range []int16{1, 4, 7, 8} {
			if p := list(v, 0, -2); p.ErrorCode != 0 || p.Offset != 0 {
				t.Errorf("v%d earliest: error %d offset %d", v, p.ErrorCode, p.Offset)
			}
			if p := list(v, 0, -1); p.ErrorCode != 0 || p.Offset != 1 {
				t.Errorf("v%d latest: error %d offset %d, want 1", v, p.ErrorCode, p.Offset)
			}
			if p := list(v, 9, -1); p.ErrorCode != 3 {
				t.Errorf("v%d unknown partition: error %d, want 3", v, p.ErrorCode)
			}
		}
		if p := list(7, 0, -3); p.ErrorCode != 0 || p.Offset != 0 {
			t.Errorf("v7 max timestamp: error %d offset %d, want 0", p.ErrorCode, p.Offset)
		}
		if p := list(8, 0, -4); p.ErrorCode != 0 || p.Offset != 0 {
			t.Errorf("v8 earliest local: error %d offset %d, want 0", p.ErrorCode, p.Offset)
		}
	})

	t.Run("create topics validate only", func(t *testing.T) {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Version = 5
		req.ValidateOnly = true
		req.TimeoutMillis = 10000
		ct := kmsg.NewCreateTopicsRequestTopic()
		ct.Topic = "edge-validate"
		ct.NumPartitions = 3
		ct.ReplicationFactor = 1
		req.Topics = append(req.Topics, ct)
		resp := rc.do(req).(*kmsg.CreateTopicsResponse)
		if resp.Topics[0].ErrorCode != 0 {
			t.Errorf("validate only: error %d", resp.Topics[0].ErrorCode)
		}
		if got := metadataTopics(12, nil, true); len(got) != 2 {
			t.Errorf("validateOnly created a topic: %v", got)
		}
		ct.Topic = "edge-rf"
		ct.ReplicationFactor = 3
		req.Topics[0] = ct
		req.ValidateOnly = false
		resp = rc.do(req).(*kmsg.CreateTopicsResponse)
		if resp.Topics[0].ErrorCode != 38 {
			t.Errorf("replication factor 3 on one broker: error %d, want INVALID_REPLICATION_FACTOR (38)", resp.Topics[0].ErrorCode)
		}
	})

	b.stop()
}

// mustTopicID returns the topic's ID from Metadata (for Fetch v13).
func mustTopicID(t testing.TB, adm *kadm.Client, topic string) ([16]byte, bool) {
	td, err := adm.ListTopics(testContext(t, 30*time.Second), topic)
	if err != nil || !td.Has(topic) {
		return [16]byte{}, false
	}
	return td[topic].ID, true
}

// idempotentBatch is a v2 batch of n records from producer id/epoch starting at seq.
func idempotentBatch(id int64, epoch int16, seq int32, n int) []byte {
	var recs []byte
	for i := 0; i < n; i++ {
		rec := kmsg.Record{OffsetDelta: int32(i), Value: []byte(fmt.Sprintf("idem %d", int(seq)+i))}
		enc := rec.AppendTo(nil)
		rec.Length = int32(len(enc) - 1)
		recs = append(recs, rec.AppendTo(nil)...)
	}
	now := time.Now().UnixMilli()
	batch := kmsg.RecordBatch{
		Magic:           2,
		LastOffsetDelta: int32(n - 1),
		FirstTimestamp:  now,
		MaxTimestamp:    now,
		ProducerID:      id,
		ProducerEpoch:   epoch,
		FirstSequence:   seq,
		NumRecords:      int32(n),
		Records:         recs,
	}
	return fixBatch(batch.AppendTo(nil))
}
