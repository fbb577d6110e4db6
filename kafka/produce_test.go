package kafka

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

func produceReq(version, acks int16, topic string, id [16]byte, partition int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = version
	req.Acks = acks
	t := kmsg.NewProduceRequestTopic()
	t.Topic, t.TopicID = topic, id
	p := kmsg.NewProduceRequestTopicPartition()
	p.Partition = partition
	p.Records = records
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return req
}

func TestProduceVersions(t *testing.T) {
	for _, v := range []int16{3, 7, 8, 9, 12, 13} {
		hs := newHarness(t)
		hs.createTopic("t", 2, nil)
		info, _ := hs.st.Topic("t")
		for i, acks := range []int16{-1, 1, -1} {
			req := produceReq(v, acks, "t", info.ID, 1, makeBatch(batchOpts{records: 3, payload: 20}))
			resp := roundTrip[*kmsg.ProduceResponse](hs, req)
			if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
				t.Fatalf("v%d: shape %+v", v, resp)
			}
			rt := resp.Topics[0]
			if v >= 13 && rt.TopicID != info.ID || v < 13 && rt.Topic != "t" {
				t.Fatalf("v%d: topic not echoed: %+v", v, rt)
			}
			p := rt.Partitions[0]
			if p.ErrorCode != 0 || p.Partition != 1 || p.BaseOffset != int64(3*i) || p.LogAppendTime != -1 {
				t.Fatalf("v%d acks %d: %+v", v, acks, p)
			}
			if v >= 5 && p.LogStartOffset != 0 {
				t.Fatalf("v%d: log start %d", v, p.LogStartOffset)
			}
		}
	}
}

func TestProduceAcksZero(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	resp := hs.send(produceReq(9, 0, "t", [16]byte{}, 0, makeBatch(batchOpts{records: 2})))
	if resp.Close || len(resp.Parts) != 0 {
		t.Fatalf("acks=0 success: want no response, got %+v", resp)
	}
	if _, hwm, _ := hs.st.Offsets("t", 0); hwm != 2 {
		t.Fatalf("hwm %d after acks=0 append", hwm)
	}
	// Any partition error closes the connection, as in Kafka.
	resp = hs.send(produceReq(9, 0, "missing", [16]byte{}, 0, makeBatch(batchOpts{})))
	if !resp.Close {
		t.Fatalf("acks=0 failure: want close, got %+v", resp)
	}
}

func TestProduceErrors(t *testing.T) {
	good := makeBatch(batchOpts{records: 2, payload: 8})
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0xff
	badCount := makeBatch(batchOpts{records: 2})
	badCount[24] = 9 // lastOffsetDelta no longer matches the count (and CRC is recomputed below)
	fixCRC(badCount)
	magic1 := makeBatch(batchOpts{magic: 1})
	shortLen := good[:40]
	badLen := append([]byte(nil), good...)
	badLen[11] = 200 // length beyond the buffer

	cases := []struct {
		name    string
		version int16
		acks    int16
		topic   string
		part    int32
		records []byte
		want    int16
		setup   func(*harness)
	}{
		{"invalid acks", 9, 2, "t", 0, good, kerr.InvalidRequiredAcks.Code, nil},
		{"unknown topic", 9, 1, "missing", 0, good, kerr.UnknownTopicOrPartition.Code, nil},
		{"unknown partition", 9, 1, "t", 5, good, kerr.UnknownTopicOrPartition.Code, nil},
		{"negative partition", 9, 1, "t", -1, good, kerr.UnknownTopicOrPartition.Code, nil},
		{"bad crc", 9, 1, "t", 0, badCRC, kerr.CorruptMessage.Code, nil},
		{"bad count", 9, 1, "t", 0, badCount, kerr.InvalidRecord.Code, nil},
		{"magic 1", 9, 1, "t", 0, magic1, kerr.InvalidRecord.Code, nil},
		{"short", 9, 1, "t", 0, shortLen, kerr.CorruptMessage.Code, nil},
		{"length past end", 9, 1, "t", 0, badLen, kerr.CorruptMessage.Code, nil},
		{"empty records", 9, 1, "t", 0, []byte{}, kerr.InvalidRecord.Code, nil},
		{"null records", 9, 1, "t", 0, nil, kerr.InvalidRecord.Code, nil},
		{"two batches", 9, 1, "t", 0, append(append([]byte(nil), good...), good...), kerr.InvalidRecord.Code, nil},
		{"transactional", 9, 1, "t", 0, makeBatch(batchOpts{attrs: 0x10, producerID: 5}), kerr.TransactionalIDAuthorizationFailed.Code, nil},
		{"control", 9, 1, "t", 0, makeBatch(batchOpts{attrs: 0x20}), kerr.InvalidRecord.Code, nil},
		{"log append time from producer", 9, 1, "t", 0, makeBatch(batchOpts{attrs: 0x08}), kerr.InvalidTimestamp.Code, nil},
		{"unknown codec", 9, 1, "t", 0, makeBatch(batchOpts{attrs: 5}), kerr.CorruptMessage.Code, nil},
		{"zstd before v7", 6, 1, "t", 0, makeBatch(batchOpts{attrs: 4}), kerr.UnsupportedCompressionType.Code, nil},
		{"too large for broker", 9, 1, "t", 0, makeBatch(batchOpts{payload: 2 << 20}), kerr.MessageTooLarge.Code, nil},
		{"too large for topic", 9, 1, "small", 0, makeBatch(batchOpts{payload: 200}), kerr.MessageTooLarge.Code, nil},
		{"out of order", 9, 1, "t", 0, good, kerr.OutOfOrderSequenceNumber.Code, func(hs *harness) { hs.st.appendErr = storage.ErrOutOfOrderSequence }},
		{"bad epoch", 9, 1, "t", 0, good, kerr.InvalidProducerEpoch.Code, func(hs *harness) { hs.st.appendErr = storage.ErrInvalidProducerEpoch }},
		{"unknown producer", 9, 1, "t", 0, good, kerr.UnknownProducerID.Code, func(hs *harness) { hs.st.appendErr = storage.ErrUnknownProducerID }},
		{"disk failure", 9, 1, "t", 0, good, kerr.KafkaStorageError.Code, func(hs *harness) { hs.st.appendErr = storage.ErrStorage }},
		{"closing", 9, 1, "t", 0, good, kerr.KafkaStorageError.Code, func(hs *harness) { hs.st.appendErr = storage.ErrClosed }},
		{"segment too small", 9, 1, "t", 0, good, kerr.MessageTooLarge.Code, func(hs *harness) { hs.st.appendErr = storage.ErrTooLarge }},
		{"unknown storage error", 9, 1, "t", 0, good, kerr.UnknownServerError.Code, func(hs *harness) { hs.st.appendErr = errUnmapped }},
		{"unknown topic id", 13, 1, "", 0, good, kerr.UnknownTopicID.Code, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hs := newHarness(t)
			hs.createTopic("t", 1, nil)
			hs.createTopic("small", 1, map[string]string{"max.message.bytes": "100"})
			if c.setup != nil {
				c.setup(hs)
			}
			resp := roundTrip[*kmsg.ProduceResponse](hs, produceReq(c.version, c.acks, c.topic, [16]byte{1}, c.part, c.records))
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != c.want {
				t.Fatalf("error %d (%v), want %d", p.ErrorCode, kerr.ErrorForCode(p.ErrorCode), c.want)
			}
			if p.BaseOffset != -1 {
				t.Fatalf("failed partition base offset %d, want -1", p.BaseOffset)
			}
			if _, hwm, err := hs.st.Offsets(c.topic, c.part); err == nil && hwm != 0 {
				t.Fatalf("rejected batch was stored (hwm %d)", hwm)
			}
		})
	}
}

// Several topics and partitions, some failing: each partition gets its own
// answer, in request order.
func TestProduceMixed(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("a", 3, nil)
	req := kmsg.NewPtrProduceRequest()
	req.Version = 11
	req.Acks = -1
	for _, name := range []string{"a", "missing", "a"} {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = name
		for p := int32(0); p < 3; p++ {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = p
			rp.Records = makeBatch(batchOpts{records: int(p) + 1})
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp := roundTrip[*kmsg.ProduceResponse](hs, req)
	if len(resp.Topics) != 3 {
		t.Fatalf("%d topics answered, want 3", len(resp.Topics))
	}
	for ti, rt := range resp.Topics {
		if len(rt.Partitions) != 3 {
			t.Fatalf("topic %d: %d partitions answered, want 3", ti, len(rt.Partitions))
		}
		for pi, p := range rt.Partitions {
			if p.Partition != int32(pi) {
				t.Fatalf("topic %d slot %d: partition %d", ti, pi, p.Partition)
			}
			switch ti {
			case 1:
				if p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
					t.Fatalf("missing topic partition %d: %d", pi, p.ErrorCode)
				}
			case 0:
				if p.ErrorCode != 0 || p.BaseOffset != 0 {
					t.Fatalf("a/%d first: %+v", pi, p)
				}
			case 2:
				if p.ErrorCode != 0 || p.BaseOffset != int64(pi)+1 {
					t.Fatalf("a/%d second: %+v", pi, p)
				}
			}
		}
	}
}

func fixCRC(b []byte) {
	c := makeBatchCRC(b)
	b[17], b[18], b[19], b[20] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
}

func BenchmarkProduce(b *testing.B) {
	hs := newHarness(b)
	hs.st.appendSync = true
	hs.createTopic("t", 1, nil)
	frame := encodeRequest(produceReq(9, 1, "t", [16]byte{}, 0, makeBatch(batchOpts{records: 100, payload: 10000})), testCorr)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for range b.N {
		p := hs.serveFrame(frame)
		r := p.wait(b)
		if r.Release != nil {
			r.Release()
		}
	}
}

// gzipped compresses b with gzip, as a producer would.
func gzipped(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// Records are validated as Kafka's log validator does: each malformed
// batch under a valid CRC gets its code, v8+ the record at fault and a
// message, and nothing is stored.
func TestProduceRecordValidation(t *testing.T) {
	three := makeRecords(3, 60)
	badDelta := append(appendRecord(nil, 0, 4), appendRecord(nil, 5, 4)...) // record 1 claims delta 5
	// A value of 8 MiB of a repeating pattern: a few KiB compressed.
	bomb := gzipped(t, appendRecord(nil, 0, 8<<20))
	cases := []struct {
		name    string
		records []byte
		want    int16
		index   int32 // record named in ErrorRecords; -1: none
	}{
		{"garbage records", wrapBatch(batchOpts{records: 1}, []byte("not a record, not at all")), kerr.InvalidRecord.Code, 0},
		{"count 1 holding 3", wrapBatch(batchOpts{records: 1}, three), kerr.InvalidRecord.Code, -1},
		{"count 2^31-1 holding 1", wrapBatch(batchOpts{records: math.MaxInt32}, makeRecords(1, 10)), kerr.InvalidRecord.Code, -1},
		{"offset delta out of order", wrapBatch(batchOpts{records: 2}, badDelta), kerr.InvalidRecord.Code, 1},
		{"truncated varint", wrapBatch(batchOpts{records: 1}, []byte{0x80}), kerr.InvalidRecord.Code, 0},
		{"trailing bytes", wrapBatch(batchOpts{records: 1}, append(makeRecords(1, 10), 0)), kerr.InvalidRecord.Code, -1},
		{"null header key", wrapBatch(batchOpts{records: 1}, []byte{16, 0, 0, 0, 1, 1, 2, 1, 1}), kerr.InvalidRecord.Code, 0},
		{"undecodable gzip", wrapBatch(batchOpts{records: 3, attrs: 1}, []byte("not gzip at all, not at all")), kerr.CorruptMessage.Code, -1},
		{"undecodable zstd", wrapBatch(batchOpts{records: 3, attrs: 4}, []byte{0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5}), kerr.CorruptMessage.Code, -1},
		{"gzip of garbage records", wrapBatch(batchOpts{records: 1, attrs: 1}, gzipped(t, []byte("garbage garbage"))), kerr.InvalidRecord.Code, 0},
		{"decompression bomb", wrapBatch(batchOpts{records: 1, attrs: 1}, bomb), kerr.MessageTooLarge.Code, -1},
		{"no key on a compacted topic", wrapBatch(batchOpts{records: 2}, append(appendRecordKey(nil, 0, []byte("k"), 1), appendRecord(nil, 1, 1)...)), kerr.InvalidRecord.Code, 1},
	}
	for _, c := range cases {
		for _, v := range []int16{7, 9} {
			t.Run(fmt.Sprintf("%s v%d", c.name, v), func(t *testing.T) {
				hs := newHarness(t, func(c *Config) { c.MaxDecompressedBatchBytes = 1 << 20 })
				hs.createTopic("t", 1, nil)
				hs.createTopic("compacted", 1, map[string]string{"cleanup.policy": "delete,compact"})
				topic := "t"
				if strings.Contains(c.name, "compacted") {
					topic = "compacted"
				}
				resp := roundTrip[*kmsg.ProduceResponse](hs, produceReq(v, -1, topic, [16]byte{}, 0, c.records))
				p := resp.Topics[0].Partitions[0]
				if p.ErrorCode != c.want || p.BaseOffset != -1 {
					t.Fatalf("error %v, base offset %d; want %v", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset, kerr.ErrorForCode(c.want))
				}
				if v >= 8 {
					if p.ErrorMessage == nil || *p.ErrorMessage == "" {
						t.Fatalf("no error message")
					}
					switch {
					case c.index < 0 && len(p.ErrorRecords) != 0:
						t.Fatalf("record errors %+v for a batch-level fault", p.ErrorRecords)
					case c.index >= 0 && (len(p.ErrorRecords) != 1 || p.ErrorRecords[0].RelativeOffset != c.index || p.ErrorRecords[0].ErrorMessage == nil):
						t.Fatalf("record errors %+v, want record %d", p.ErrorRecords, c.index)
					}
					t.Logf("%s", *p.ErrorMessage)
				}
				if _, hwm, _ := hs.st.Offsets(topic, 0); hwm != 0 {
					t.Fatalf("rejected batch stored (hwm %d)", hwm)
				}
			})
		}
	}
	// And the valid batches: compressed, many records (both validated off
	// the event loop), a few records (on it).
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	hs.createTopic("c", 1, map[string]string{"cleanup.policy": "compact"})
	if resp := roundTrip[*kmsg.ProduceResponse](hs, produceReq(9, -1, "c", [16]byte{}, 0, makeBatch(batchOpts{records: 3, keyed: true}))); resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("keyed batch to a compacted topic: %v", kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode))
	}
	for i, b := range [][]byte{
		wrapBatch(batchOpts{records: 3, attrs: 1}, gzipped(t, three)),
		makeBatch(batchOpts{records: 2000, payload: 20000}),
		makeBatch(batchOpts{records: 3, payload: 60}),
	} {
		resp := roundTrip[*kmsg.ProduceResponse](hs, produceReq(9, -1, "t", [16]byte{}, 0, b))
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 {
			t.Fatalf("valid batch %d: %v", i, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	if _, hwm, _ := hs.st.Offsets("t", 0); hwm != 2006 {
		t.Fatalf("hwm %d after the valid batches, want 2006", hwm)
	}
}

// A produce validated off the event loop (compressed, slow to check) and a
// cheap one sent right behind it on the same connection reach storage in
// request order.
func TestProduceOrderWithOffLoopValidation(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	var slow []byte
	for i := range 2000 {
		slow = appendRecord(slow, i, 4000)
	}
	slowBatch := wrapBatch(batchOpts{records: 2000, attrs: 1}, gzipped(t, slow))
	reqs := []*kmsg.ProduceRequest{
		produceReq(9, -1, "t", [16]byte{}, 0, slowBatch),
		produceReq(9, -1, "t", [16]byte{}, 0, makeBatch(batchOpts{records: 1})),
	}
	first := hs.serveFrame(encodeRequest(reqs[0], testCorr))
	second := hs.serveFrame(encodeRequest(reqs[1], testCorr)) // same connection, not waiting
	for i, p := range []*pending{first, second} {
		resp := decodeBody[*kmsg.ProduceResponse](t, reqs[i], assemble(t, p.wait(t)))
		want := []int64{0, 2000}[i]
		if rp := resp.Topics[0].Partitions[0]; rp.ErrorCode != 0 || rp.BaseOffset != want {
			t.Fatalf("request %d: error %d base offset %d, want offset %d", i, rp.ErrorCode, rp.BaseOffset, want)
		}
	}
}

// Produce v0-2 is advertised (KAFKA-18659) but refused per partition with
// UNSUPPORTED_VERSION in a proper response; nothing is appended.
func TestProduceOldVersionsRefused(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 2, nil)
	for _, v := range []int16{0, 1, 2} {
		req := produceReq(v, -1, "t", [16]byte{}, 1, []byte("a v0 message set"))
		resp := roundTrip[*kmsg.ProduceResponse](hs, req)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.UnsupportedVersion.Code || p.Partition != 1 {
			t.Fatalf("v%d: %+v, want UNSUPPORTED_VERSION", v, p)
		}
	}
	if _, hw, _ := hs.st.Offsets("t", 1); hw != 0 {
		t.Fatalf("high watermark %d after refused produces", hw)
	}
}
