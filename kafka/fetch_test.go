package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type fetchPart struct {
	topic     string
	partition int32
	offset    int64
	maxBytes  int32
}

func fetchReq(hs *harness, version int16, maxWait, minBytes, maxBytes int32, parts ...fetchPart) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = version
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWait, minBytes, maxBytes
	for _, fp := range parts {
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != fp.topic {
			t := kmsg.NewFetchRequestTopic()
			t.Topic = fp.topic
			if info, ok := hs.st.Topic(fp.topic); ok {
				t.TopicID = info.ID
			}
			req.Topics = append(req.Topics, t)
		}
		t := &req.Topics[len(req.Topics)-1]
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition, p.FetchOffset, p.PartitionMaxBytes = fp.partition, fp.offset, fp.maxBytes
		t.Partitions = append(t.Partitions, p)
	}
	return req
}

// partitionBytes is what a partition's log holds from byte position pos on.
func (hs *harness) partitionBytes(topic string, partition int32) []byte {
	hs.st.mu.Lock()
	defer hs.st.mu.Unlock()
	p, err := hs.st.part(topic, partition)
	if err != nil {
		hs.t.Fatal(err)
	}
	return append([]byte(nil), p.file.buf...)
}

// The spliced response, read back with its file parts, must decode with kmsg
// at every version, re-encode to the very same bytes (so it is exactly what
// kmsg would produce with the records embedded), and carry the records.
func TestFetchSplicingAllVersions(t *testing.T) {
	for v := int16(4); v <= 18; v++ {
		hs := newHarness(t)
		hs.createTopic("a", 3, nil)
		hs.createTopic("b", 1, nil)
		hs.produceTo("a", 0, makeBatch(batchOpts{records: 3, payload: 10}))
		hs.produceTo("a", 0, makeBatch(batchOpts{records: 1, payload: 200}))   // 2-byte uvarint lengths
		hs.produceTo("a", 2, makeBatch(batchOpts{records: 2, payload: 20000})) // 3-byte uvarint lengths
		hs.produceTo("b", 0, makeBatch(batchOpts{records: 1, payload: 0}))
		hs.produceTo("b", 0, makeBatch(batchOpts{records: 5, payload: 70}))

		req := fetchReq(hs, v, 500, 1, 1<<30,
			fetchPart{"a", 0, 0, 1 << 20},
			fetchPart{"a", 1, 0, 1 << 20}, // empty partition
			fetchPart{"a", 2, 1, 1 << 20}, // offset inside a batch
			fetchPart{"b", 0, 1, 1 << 20},
		)
		resp := roundTrip[*kmsg.FetchResponse](hs, req)
		if resp.ErrorCode != 0 || resp.SessionID != 0 {
			t.Fatalf("v%d: top level %d session %d", v, resp.ErrorCode, resp.SessionID)
		}
		want := map[string][]byte{
			"a/0": hs.partitionBytes("a", 0),
			"a/1": {},
			"a/2": hs.partitionBytes("a", 2),
			"b/0": hs.partitionBytes("b", 0)[61+7:], // skip the first batch (offset 0 only: one 7-byte record)
		}
		hwm := map[string]int64{"a/0": 4, "a/1": 0, "a/2": 2, "b/0": 6}
		seen := 0
		for ti, rt := range resp.Topics {
			name := req.Topics[ti].Topic
			if v >= 13 {
				if rt.TopicID != req.Topics[ti].TopicID {
					t.Fatalf("v%d: topic id not echoed", v)
				}
			} else if rt.Topic != name {
				t.Fatalf("v%d: topic %q, want %q", v, rt.Topic, name)
			}
			for _, p := range rt.Partitions {
				key := name + "/" + string(rune('0'+p.Partition))
				seen++
				if p.ErrorCode != 0 {
					t.Fatalf("v%d %s: error %d", v, key, p.ErrorCode)
				}
				if !bytes.Equal(p.RecordBatches, want[key]) {
					t.Fatalf("v%d %s: %d record bytes, want %d", v, key, len(p.RecordBatches), len(want[key]))
				}
				wantStart := int64(0)
				if v < 5 {
					wantStart = -1 // not in v4: decodes to the default
				}
				if p.HighWatermark != hwm[key] || p.LastStableOffset != hwm[key] || p.LogStartOffset != wantStart {
					t.Fatalf("v%d %s: hwm %d lso %d logStart %d", v, key, p.HighWatermark, p.LastStableOffset, p.LogStartOffset)
				}
				if p.AbortedTransactions == nil && v >= 4 {
					// Empty list, not null: read_committed consumers iterate it.
					t.Fatalf("v%d %s: null aborted transactions", v, key)
				}
			}
		}
		if seen != 4 {
			t.Fatalf("v%d: %d partitions answered", v, seen)
		}
	}
}

// The same response encoded plainly by kmsg (records embedded) equals the
// spliced bytes.
func TestFetchSplicedEqualsPlainEncoding(t *testing.T) {
	for _, v := range []int16{4, 11, 12, 13, 18} {
		hs := newHarness(t)
		hs.createTopic("a", 2, nil)
		hs.produceTo("a", 0, makeBatch(batchOpts{records: 2, payload: 300}))
		hs.produceTo("a", 1, makeBatch(batchOpts{records: 2, payload: 5}))
		req := fetchReq(hs, v, 0, 0, 1<<30, fetchPart{"a", 0, 0, 1 << 20}, fetchPart{"a", 1, 0, 1 << 20})
		raw := assemble(t, hs.send(req))

		plain := kmsg.NewPtrFetchResponse()
		plain.Version = v
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = "a"
		rt.TopicID = req.Topics[0].TopicID
		for p := int32(0); p < 2; p++ {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = 2, 2, 0
			rp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			rp.RecordBatches = hs.partitionBytes("a", p)
			rt.Partitions = append(rt.Partitions, rp)
		}
		plain.Topics = append(plain.Topics, rt)
		r := &request{corr: testCorr, key: fetchKey, flexible: v >= 12}
		want := plain.AppendTo(r.appendHeader(nil))
		if !bytes.Equal(raw, want) {
			t.Fatalf("v%d: spliced %d bytes differ from plain %d bytes", v, len(raw), len(want))
		}
	}
}

func TestFetchErrors(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 3}))
	hs.st.topics["t"].parts[0].logStart = 1

	cases := []struct {
		name    string
		version int16
		part    fetchPart
		epoch   int32
		want    int16
	}{
		{"above hwm", 11, fetchPart{"t", 0, 4, 1000}, -1, kerr.OffsetOutOfRange.Code},
		{"below log start", 11, fetchPart{"t", 0, 0, 1000}, -1, kerr.OffsetOutOfRange.Code},
		{"unknown topic", 11, fetchPart{"nope", 0, 0, 1000}, -1, kerr.UnknownTopicOrPartition.Code},
		{"unknown partition", 11, fetchPart{"t", 3, 0, 1000}, -1, kerr.UnknownTopicOrPartition.Code},
		{"unknown topic id", 13, fetchPart{"nope", 0, 0, 1000}, -1, kerr.UnknownTopicID.Code},
		{"future leader epoch", 12, fetchPart{"t", 0, 1, 1000}, 3, kerr.UnknownLeaderEpoch.Code},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := fetchReq(hs, c.version, 60000, 1, 1<<20, c.part)
			req.Topics[0].Partitions[0].CurrentLeaderEpoch = c.epoch
			if c.version >= 13 && c.part.topic == "nope" {
				req.Topics[0].TopicID = [16]byte{9, 9}
			}
			// An error answers at once despite MaxWait and MinBytes.
			resp := roundTrip[*kmsg.FetchResponse](hs, req)
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != c.want {
				t.Fatalf("error %d, want %d", p.ErrorCode, c.want)
			}
			if p.HighWatermark != -1 || len(p.RecordBatches) != 0 {
				t.Fatalf("error partition carries hwm %d / %d bytes", p.HighWatermark, len(p.RecordBatches))
			}
		})
	}
	// Current leader epoch 0 (ours) and -1 (unset) are served.
	for _, e := range []int32{-1, 0} {
		req := fetchReq(hs, 12, 0, 0, 1<<20, fetchPart{"t", 0, 1, 1000})
		req.Topics[0].Partitions[0].CurrentLeaderEpoch = e
		resp := roundTrip[*kmsg.FetchResponse](hs, req)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
			t.Fatalf("epoch %d: %+v", e, p)
		}
	}
}

// KIP-74: the first partition with data returns one whole batch even over
// MaxBytes and PartitionMaxBytes; later partitions respect what remains.
func TestFetchKIP74(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 3, nil)
	for p := int32(0); p < 3; p++ {
		hs.produceTo("t", p, makeBatch(batchOpts{records: 1, payload: 500}))
		hs.produceTo("t", p, makeBatch(batchOpts{records: 1, payload: 500}))
	}
	batch := int64(561)

	// Tiny MaxBytes: one batch from partition 0, nothing else.
	resp := roundTrip[*kmsg.FetchResponse](hs, fetchReq(hs, 11, 0, 1, 10,
		fetchPart{"t", 0, 0, 1 << 20}, fetchPart{"t", 1, 0, 1 << 20}, fetchPart{"t", 2, 0, 1 << 20}))
	ps := resp.Topics[0].Partitions
	if int64(len(ps[0].RecordBatches)) != batch || len(ps[1].RecordBatches) != 0 || len(ps[2].RecordBatches) != 0 {
		t.Fatalf("MaxBytes 10: got %d/%d/%d bytes", len(ps[0].RecordBatches), len(ps[1].RecordBatches), len(ps[2].RecordBatches))
	}
	if ps[1].HighWatermark != 2 || ps[2].HighWatermark != 2 || ps[1].ErrorCode != 0 {
		t.Fatalf("partitions without budget still carry watermarks: %+v", ps[1])
	}

	// Tiny PartitionMaxBytes: the first partition gets a whole batch by
	// KIP-74, the second the one batch that fits, the third, whose first
	// batch does not fit its 100 bytes, those first 100 bytes of it: a
	// partial batch, as Kafka sends.
	resp = roundTrip[*kmsg.FetchResponse](hs, fetchReq(hs, 11, 0, 1, 1<<20,
		fetchPart{"t", 0, 1, 10}, fetchPart{"t", 1, 0, 600}, fetchPart{"t", 2, 0, 100}))
	ps = resp.Topics[0].Partitions
	if int64(len(ps[0].RecordBatches)) != batch || int64(len(ps[1].RecordBatches)) != batch || len(ps[2].RecordBatches) != 100 {
		t.Fatalf("PartitionMaxBytes: got %d/%d/%d bytes", len(ps[0].RecordBatches), len(ps[1].RecordBatches), len(ps[2].RecordBatches))
	}
	if !bytes.Equal(ps[2].RecordBatches, ps[1].RecordBatches[:100]) {
		t.Fatal("the partial batch is not the start of the batch")
	}
	// MaxBytes cuts the same way: 561+300 leaves 300 for the second.
	resp = roundTrip[*kmsg.FetchResponse](hs, fetchReq(hs, 11, 0, 1, int32(batch)+300,
		fetchPart{"t", 0, 0, 1 << 20}, fetchPart{"t", 1, 0, 1 << 20}))
	ps = resp.Topics[0].Partitions
	if int64(len(ps[0].RecordBatches)) != batch || len(ps[1].RecordBatches) != 300 {
		t.Fatalf("MaxBytes %d: got %d/%d bytes", batch+300, len(ps[0].RecordBatches), len(ps[1].RecordBatches))
	}

	// An empty first partition does not use up the overshoot: the first
	// partition that has data gets it.
	resp = roundTrip[*kmsg.FetchResponse](hs, fetchReq(hs, 11, 0, 1, 10,
		fetchPart{"t", 0, 2, 1 << 20}, fetchPart{"t", 1, 0, 1 << 20}))
	ps = resp.Topics[0].Partitions
	if len(ps[0].RecordBatches) != 0 || int64(len(ps[1].RecordBatches)) != batch {
		t.Fatalf("first non-empty partition: got %d/%d bytes", len(ps[0].RecordBatches), len(ps[1].RecordBatches))
	}
}

func waitWatchers(t *testing.T, hs *harness, n int) {
	t.Helper()
	eventually(t, "long poll watching", func() bool { return hs.st.watcherCount() >= n })
}

func TestFetchLongPollWakesOnData(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 2, nil)
	req := fetchReq(hs, 12, 60000, 1, 1<<20, fetchPart{"t", 0, 0, 1 << 20}, fetchPart{"t", 1, 0, 1 << 20})
	p := hs.serveFrame(encodeRequest(req, testCorr))
	waitWatchers(t, hs, 2)
	if p.answered() {
		t.Fatal("answered before any data")
	}
	hs.produceTo("t", 1, makeBatch(batchOpts{records: 2, payload: 30}))
	resp := decodeBody[*kmsg.FetchResponse](t, req, assemble(t, p.wait(t)))
	ps := resp.Topics[0].Partitions
	if len(ps[0].RecordBatches) != 0 || !bytes.Equal(ps[1].RecordBatches, hs.partitionBytes("t", 1)) {
		t.Fatalf("woken fetch: %d/%d bytes", len(ps[0].RecordBatches), len(ps[1].RecordBatches))
	}
	eventually(t, "watches cancelled", func() bool { return hs.st.watcherCount() == 0 })
}

func TestFetchLongPollMinBytes(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 1, payload: 10}))
	req := fetchReq(hs, 12, 60000, 300, 1<<20, fetchPart{"t", 0, 0, 1 << 20})
	p := hs.serveFrame(encodeRequest(req, testCorr))
	waitWatchers(t, hs, 1)
	if p.answered() {
		t.Fatal("answered below MinBytes")
	}
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 1, payload: 10})) // still below
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 1, payload: 300}))
	resp := decodeBody[*kmsg.FetchResponse](t, req, assemble(t, p.wait(t)))
	if got := resp.Topics[0].Partitions[0].RecordBatches; !bytes.Equal(got, hs.partitionBytes("t", 0)) {
		t.Fatalf("got %d bytes", len(got))
	}
}

func TestFetchLongPollTimeout(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 1}))
	req := fetchReq(hs, 18, 20, 1, 1<<20, fetchPart{"t", 0, 1, 1 << 20})
	resp := roundTrip[*kmsg.FetchResponse](hs, req)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) != 0 || p.HighWatermark != 1 {
		t.Fatalf("timed out fetch: %+v", p)
	}
	eventually(t, "watches cancelled", func() bool { return hs.st.watcherCount() == 0 })
}

func TestFetchLongPollClose(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	req := fetchReq(hs, 12, 600000, 1, 1<<20, fetchPart{"t", 0, 0, 1 << 20})
	p := hs.serveFrame(encodeRequest(req, testCorr))
	waitWatchers(t, hs, 1)
	hs.h.Close()
	resp := decodeBody[*kmsg.FetchResponse](t, req, assemble(t, p.wait(t)))
	if resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("closed fetch: %+v", resp)
	}
	eventually(t, "watches cancelled", func() bool { return hs.st.watcherCount() == 0 })
	// After Close, fetches answer without waiting.
	resp = roundTrip[*kmsg.FetchResponse](hs, req)
	if len(resp.Topics) != 1 {
		t.Fatalf("fetch after close: %+v", resp)
	}
}

func TestFetchLongPollTopicDeleted(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	req := fetchReq(hs, 12, 600000, 1, 1<<20, fetchPart{"t", 0, 0, 1 << 20})
	p := hs.serveFrame(encodeRequest(req, testCorr))
	waitWatchers(t, hs, 1)
	if err := hs.st.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	resp := decodeBody[*kmsg.FetchResponse](t, req, assemble(t, p.wait(t)))
	if c := resp.Topics[0].Partitions[0].ErrorCode; c != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("deleted topic: error %d", c)
	}
}

// Many concurrent long polls and producers: every fetch is answered exactly
// once (pending.wait checks), under the race detector.
func TestFetchLongPollConcurrent(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 4, nil)
	var ps []*pending
	var reqs []*kmsg.FetchRequest
	for i := 0; i < 40; i++ {
		req := fetchReq(hs, 12, 60000, 1, 1<<20, fetchPart{"t", int32(i % 4), 0, 1 << 20})
		reqs = append(reqs, req)
		ps = append(ps, hs.serveFrame(encodeRequest(req, testCorr)))
	}
	for p := int32(0); p < 4; p++ {
		hs.produceTo("t", p, makeBatch(batchOpts{records: 1, payload: 1}))
	}
	for i, p := range ps {
		resp := decodeBody[*kmsg.FetchResponse](t, reqs[i], assemble(t, p.wait(t)))
		if len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
			t.Fatalf("fetch %d woke without data", i)
		}
	}
}

func BenchmarkFetch(b *testing.B) {
	hs := newHarness(b)
	hs.createTopic("t", 4, nil)
	parts := []fetchPart{}
	for p := int32(0); p < 4; p++ {
		hs.produceTo("t", p, makeBatch(batchOpts{records: 100, payload: 16000}))
		parts = append(parts, fetchPart{"t", p, 0, 1 << 20})
	}
	frame := encodeRequest(fetchReq(hs, 12, 0, 1, 1<<20, parts...), testCorr)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r := hs.serveFrame(frame).wait(b)
		if r.Release != nil {
			r.Release()
		}
	}
}

// A long poll whose connection closes is dropped at once: its watchers are
// cancelled and it completes (with a close, which netloop drops) without
// waiting for MaxWaitMs.
func TestFetchLongPollConnClosed(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 2, nil)
	req := fetchReq(hs, 12, 600000, 1, 1<<20, fetchPart{"t", 0, 0, 1 << 20}, fetchPart{"t", 1, 0, 1 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	p := hs.serveFrameContext(ctx, encodeRequest(req, testCorr))
	waitWatchers(t, hs, 2)
	if p.answered() {
		t.Fatal("answered before any data")
	}
	cancel()
	if resp := p.wait(t); !resp.Close || len(resp.Parts) != 0 {
		t.Fatalf("abandoned fetch answered %+v, want a close", resp)
	}
	eventually(t, "watches cancelled", func() bool { return hs.st.watcherCount() == 0 })
	if n := hs.h.pollCount(); n != 0 {
		t.Fatalf("%d long polls still tracked", n)
	}
}

// A partition listed more than once is served once, at the place of its
// first listing with the fields of its last, as Kafka does.
func TestFetchDuplicatePartitions(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("a", 2, nil)
	hs.createTopic("b", 1, nil)
	hs.produceTo("a", 0, makeBatch(batchOpts{records: 3, payload: 10}))
	hs.produceTo("a", 0, makeBatch(batchOpts{records: 2, payload: 10}))
	for _, c := range []struct {
		v     int16
		extra int
	}{{12, 1}, {12, 40}, {13, 1}, {13, 40}} { // by name and by topic ID; few and many listings
		v := c.v
		parts := []fetchPart{{"a", 0, 0, 1 << 20}, {"b", 0, 0, 1 << 20}, {"a", 1, 0, 1 << 20}}
		for range c.extra {
			parts = append(parts, fetchPart{"a", 0, 0, 1 << 20})
		}
		parts = append(parts, fetchPart{"a", 0, 3, 1 << 20}) // the last listing wins
		req := fetchReq(hs, v, 0, 1, 1<<20, parts...)
		resp := roundTrip[*kmsg.FetchResponse](hs, req)
		type tp struct {
			topic string
			part  int32
		}
		var got []tp
		names := map[[16]byte]string{}
		for _, n := range []string{"a", "b"} {
			info, _ := hs.st.Topic(n)
			names[info.ID] = n
		}
		for _, rt := range resp.Topics {
			name := rt.Topic
			if v >= 13 {
				name = names[rt.TopicID]
			}
			for _, rp := range rt.Partitions {
				got = append(got, tp{name, rp.Partition})
				if name == "a" && rp.Partition == 0 {
					first := int64(-1)
					if b := rp.RecordBatches; len(b) >= 8 {
						first = int64(binary.BigEndian.Uint64(b))
					}
					if first != 3 {
						t.Fatalf("v%d: a/0 served from offset %d, want 3 (the last listing)", v, first)
					}
				}
			}
		}
		want := []tp{{"a", 0}, {"b", 0}, {"a", 1}}
		if !slices.Equal(got, want) {
			t.Fatalf("v%d: response partitions %v, want %v", v, got, want)
		}
	}
}
