package kafka

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/netloop"
)

// waitFor bounds every wait in these tests; nothing asserts on timing.
const waitFor = 10 * time.Second

type harness struct {
	t  testing.TB
	st *fakeStore
	h  *Handler
}

func newHarness(t testing.TB, mod ...func(*Config)) *harness {
	// Every test fails if the handler ever recovered a panic.
	pw := &panicWatch{}
	cfg := Config{
		NodeID:           1,
		AdvertisedHost:   "broker.test",
		AdvertisedPort:   9092,
		ClusterID:        "klite-test",
		AutoCreateTopics: true,
		Logger:           zerolog.New(pw).Level(zerolog.ErrorLevel),
	}
	for _, m := range mod {
		m(&cfg)
	}
	st := newFakeStore()
	hs := &harness{t: t, st: st, h: New(cfg, st)}
	t.Cleanup(func() {
		hs.h.Close()
		pw.mu.Lock()
		defer pw.mu.Unlock()
		if pw.hit != "" {
			t.Errorf("handler panicked: %s", pw.hit)
		}
	})
	return hs
}

// pending is a request served but maybe not answered yet.
type pending struct {
	mu    sync.Mutex
	resps []netloop.Response
	ch    chan struct{}
}

func (p *pending) wait(t testing.TB) netloop.Response {
	t.Helper()
	select {
	case <-p.ch:
	case <-time.After(waitFor):
		t.Fatalf("no response within %v", waitFor)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.resps) != 1 {
		t.Fatalf("%d responses, want exactly 1", len(p.resps))
	}
	return p.resps[0]
}

func (p *pending) answered() bool {
	select {
	case <-p.ch:
		return true
	default:
		return false
	}
}

// serveFrame hands a raw frame to the handler.
func (hs *harness) serveFrame(frame []byte) *pending {
	return hs.serveFrameContext(context.Background(), frame)
}

// serveFrameContext is serveFrame on a connection that closes when ctx ends.
func (hs *harness) serveFrameContext(ctx context.Context, frame []byte) *pending {
	p := &pending{ch: make(chan struct{})}
	nr := netloop.NewRequestContext(ctx, frame, netloop.ConnInfo{ID: 7}, func(r netloop.Response) {
		p.mu.Lock()
		p.resps = append(p.resps, r)
		n := len(p.resps)
		p.mu.Unlock()
		if n == 1 {
			close(p.ch)
		}
	})
	hs.h.Serve(nr)
	return p
}

const testCorr = 0x01020304

// encodeRequest frames req (its version set) with a request header. Flexible
// headers carry one unknown tagged field, which the broker must skip.
func encodeRequest(req kmsg.Request, corr int32) []byte {
	b := kbin.AppendInt16(nil, req.Key())
	b = kbin.AppendInt16(b, req.GetVersion())
	b = kbin.AppendInt32(b, corr)
	b = kbin.AppendNullableString(b, strPtr("klite-test"))
	if req.IsFlexible() {
		b = append(b, 1)          // one tag
		b = append(b, 9, 2, 7, 7) // tag 9, 2 bytes
	}
	return req.AppendTo(b)
}

func strPtr(s string) *string { return &s }

// send serves req at its version and waits for the response frame.
func (hs *harness) send(req kmsg.Request) netloop.Response {
	hs.t.Helper()
	return hs.serveFrame(encodeRequest(req, testCorr)).wait(hs.t)
}

// assemble concatenates a response's parts, reading file parts.
func assemble(t testing.TB, resp netloop.Response) []byte {
	t.Helper()
	var out []byte
	for _, p := range resp.Parts {
		if p.File == nil {
			out = append(out, p.Bytes...)
			continue
		}
		b := make([]byte, p.Len)
		if _, err := p.File.ReadAt(b, p.Off); err != nil && err != io.EOF {
			t.Fatalf("read file part: %v", err)
		}
		out = append(out, b...)
	}
	if resp.Release != nil {
		resp.Release()
	}
	return out
}

// roundTrip sends req and decodes the response body into a kmsg response,
// checking the response header on the way.
func roundTrip[R kmsg.Response](hs *harness, req kmsg.Request) R {
	hs.t.Helper()
	resp := hs.send(req)
	if resp.Close {
		hs.t.Fatalf("connection closed for %T v%d", req, req.GetVersion())
	}
	return decodeBody[R](hs.t, req, assemble(hs.t, resp))
}

func decodeBody[R kmsg.Response](t testing.TB, req kmsg.Request, b []byte) R {
	t.Helper()
	if len(b) < 4 || int32(binary.BigEndian.Uint32(b)) != testCorr {
		t.Fatalf("bad correlation id in % x", b[:min(len(b), 8)])
	}
	b = b[4:]
	if req.IsFlexible() && req.Key() != apiVersionsKey {
		if len(b) == 0 || b[0] != 0 {
			t.Fatalf("flexible response header must carry an empty tag section")
		}
		b = b[1:]
	}
	kr := req.ResponseKind()
	kr.SetVersion(req.GetVersion())
	if err := kr.ReadFrom(b); err != nil {
		t.Fatalf("decode %T v%d: %v", kr, req.GetVersion(), err)
	}
	// Everything must be consumed: re-encoding gives the same bytes.
	if again := kr.AppendTo(nil); string(again) != string(b) {
		t.Fatalf("%T v%d: response does not re-encode to itself (%d vs %d bytes)", kr, req.GetVersion(), len(again), len(b))
	}
	return kr.(R)
}

// ---- record batches ----

type batchOpts struct {
	records    int
	payload    int   // about this many bytes of records in all (at least what the records need)
	attrs      int16 // compression, txn, control bits
	maxTs      int64
	magic      int8
	producerID int64
	keyed      bool // records carry a key (compacted topics need one)
}

// makeBatch builds a v2 record batch with a valid CRC and well-formed
// records (null keys, values of filler bytes sharing payload). With a
// compression bit set in attrs, the records are not compressed: the batch
// only fails record validation, after the header checks that come first.
func makeBatch(o batchOpts) []byte {
	if o.records == 0 {
		o.records = 1
	}
	if o.magic == 0 {
		o.magic = 2
	}
	if o.producerID == 0 {
		o.producerID = -1
	}
	if o.keyed {
		return wrapBatch(o, makeKeyedRecords(o.records, o.payload))
	}
	return wrapBatch(o, makeRecords(o.records, o.payload))
}

// wrapBatch puts recs (the records, compressed as o.attrs says) under a
// batch header built from o, o.records being the declared count.
func wrapBatch(o batchOpts, recs []byte) []byte {
	if o.magic == 0 {
		o.magic = 2
	}
	if o.producerID == 0 {
		o.producerID = -1
	}
	b := make([]byte, 61, 61+len(recs))
	be := binary.BigEndian
	be.PutUint64(b[0:], 0)
	be.PutUint32(b[12:], 0xffffffff)
	b[16] = byte(o.magic)
	be.PutUint16(b[21:], uint16(o.attrs))
	be.PutUint32(b[23:], uint32(o.records-1))
	be.PutUint64(b[27:], uint64(o.maxTs))
	be.PutUint64(b[35:], uint64(o.maxTs))
	be.PutUint64(b[43:], uint64(o.producerID))
	be.PutUint16(b[51:], 0xffff)
	be.PutUint32(b[53:], 0xffffffff)
	if o.producerID >= 0 {
		be.PutUint16(b[51:], 0)
		be.PutUint32(b[53:], 0)
	}
	be.PutUint32(b[57:], uint32(o.records))
	b = append(b, recs...)
	be.PutUint32(b[8:], uint32(len(b)-12))
	be.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// makeRecords encodes n records whose values share payload bytes: the
// records take exactly payload bytes when that is enough for them.
func makeRecords(n, payload int) []byte {
	var out []byte
	for i := 0; i < n; i++ {
		want := (payload - len(out)) / (n - i) // this record's share of what is left
		v := max(want, 0)
		for v > 0 && len(appendRecord(nil, i, v)) > want {
			v--
		}
		out = appendRecord(out, i, v)
	}
	return out
}

// makeKeyedRecords encodes n records with one-byte keys and empty values.
func makeKeyedRecords(n, payload int) []byte {
	var out []byte
	for i := 0; i < n; i++ {
		out = appendRecordKey(out, i, []byte{byte('a' + i%26)}, 0)
	}
	return out
}

// appendRecord appends record i (offset delta i) with a null key and a
// value of size filler bytes.
func appendRecord(out []byte, i, size int) []byte { return appendRecordKey(out, i, nil, size) }

// appendRecordKey appends record i with key (nil: null) and a value of size
// filler bytes.
func appendRecordKey(out []byte, i int, key []byte, size int) []byte {
	var body []byte
	body = append(body, 0)                     // attributes
	body = binary.AppendVarint(body, 0)        // timestamp delta
	body = binary.AppendVarint(body, int64(i)) // offset delta
	if key == nil {
		body = binary.AppendVarint(body, -1) // null key
	} else {
		body = binary.AppendVarint(body, int64(len(key)))
		body = append(body, key...)
	}
	body = binary.AppendVarint(body, int64(size))
	for j := 0; j < size; j++ {
		body = append(body, byte(i+j))
	}
	body = binary.AppendVarint(body, 0) // no headers
	out = binary.AppendVarint(out, int64(len(body)))
	return append(out, body...)
}

// produceTo appends batches to topic/partition through the handler (acks=-1)
// and fails the test on any error.
func (hs *harness) produceTo(topic string, partition int32, batch []byte) int64 {
	hs.t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = -1
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := roundTrip[*kmsg.ProduceResponse](hs, req)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		hs.t.Fatalf("produce to %s/%d: error %d", topic, partition, p.ErrorCode)
	}
	return p.BaseOffset
}

func (hs *harness) createTopic(name string, partitions int32, configs map[string]string) {
	hs.t.Helper()
	if _, err := hs.st.CreateTopic(name, partitions, configs); err != nil {
		hs.t.Fatal(err)
	}
}

// eventually waits on cond with a deadline (no fixed sleeps).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func makeBatchCRC(b []byte) uint32 {
	return crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli))
}
