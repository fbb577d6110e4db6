package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"math/rand"
	"net"
	"strings"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/klauspost/compress/gzip"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestBadInput sends malformed frames to the real binary over raw TCP. Each
// must get a clear Kafka error or a closed connection, never a hang; and
// after each the broker still serves a well-behaved client.

const badInputWait = 10 * time.Second // a broken connection must be answered or closed by then

// reqFrame builds a size-prefixed request: header v1 (v2 when flexible) and body.
func reqFrame(key, version int16, corr int32, flexible bool, body []byte) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 0) // size, set below
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 3)
	b = append(b, "bad"...)
	if flexible {
		b = append(b, 0) // no tagged fields
	}
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func sizePrefix(size uint32, rest ...byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, size), rest...)
}

// readFrame reads one response frame.
func readFrame(c net.Conn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(badInputWait))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 64<<20 {
		return nil, errors.New("response frame too large")
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return b, err
}

// expectClosedOrAnswered waits for the broker to answer (a Kafka error is a
// fine answer; a request that turns out valid gets a normal one and the
// connection stays open) or to close the connection. A hang is a failure.
func expectClosedOrAnswered(t *testing.T, c net.Conn) {
	t.Helper()
	f, err := readFrame(c)
	if err == nil {
		t.Logf("answered with a %d-byte frame", len(f))
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection neither answered nor closed within %v", badInputWait)
	}
	// EOF or reset: closed.
}

// recordBatch returns a v2 batch of one record, with a correct CRC unless badCRC.
func recordBatch(val []byte, badCRC bool) []byte {
	rec := kmsg.Record{Value: val, Key: nil}
	enc := rec.AppendTo(nil)
	rec.Length = int32(len(enc) - 1) // the zero length varint took one byte
	enc = rec.AppendTo(nil)
	now := time.Now().UnixMilli()
	batch := kmsg.RecordBatch{
		Magic:          2,
		FirstTimestamp: now,
		MaxTimestamp:   now,
		ProducerID:     -1,
		ProducerEpoch:  -1,
		FirstSequence:  -1,
		NumRecords:     1,
		Records:        enc,
	}
	b := fixBatch(batch.AppendTo(nil))
	if badCRC {
		b[20] ^= 0xff
	}
	return b
}

// fixBatch sets an encoded v2 batch's length and CRC-32C.
func fixBatch(b []byte) []byte {
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12)) // length after the length field
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func produceBody(topic string, acks int16, batch []byte) []byte {
	req := kmsg.NewProduceRequest()
	req.Version = 7
	req.Acks = acks
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req.AppendTo(nil)
}

func TestBadInput(t *testing.T) {
	b := startBroker(t)
	const topic = "health"
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), topic, 1)
	healthy := func(t *testing.T) {
		t.Helper()
		cl := newFranz(t, b.addr, kgo.RequestRetries(2))
		if err := cl.ProduceSync(testContext(t, 30*time.Second), &kgo.Record{Topic: topic, Value: []byte("ok")}).FirstErr(); err != nil {
			t.Fatalf("broker no longer serves a client: %v", err)
		}
		cl.Close()
	}
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", b.addr, 10*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	rng := rand.New(rand.NewSource(1))
	garbage := func(n int) []byte { g := make([]byte, n); rng.Read(g); return g }

	// Frames after which the broker must answer or close, promptly.
	closing := []struct {
		name string
		data []byte
	}{
		{"size -1", sizePrefix(0xFFFFFFFF, 1, 2, 3)},
		{"size -2^31", sizePrefix(0x80000000)},
		{"size 2^31-1", sizePrefix(0x7FFFFFFF, garbage(1000)...)},
		{"size over max-request-bytes", sizePrefix(200<<20, garbage(1000)...)},
		{"size 0", sizePrefix(0)},
		{"size 3 (short header)", sizePrefix(3, 0, 18, 0)},
		{"header with client id longer than frame", sizePrefix(12, 0, 18, 0, 0, 0, 0, 0, 1, 0x7f, 0xff, 'a', 'b')},
		{"client id length -2", sizePrefix(10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xfe)},
		{"unknown api key 1000", reqFrame(1000, 0, 1, false, nil)},
		{"negative api key", reqFrame(-5, 0, 1, false, nil)},
		{"produce v999", reqFrame(0, 999, 1, false, garbage(50))},
		{"fetch v-1", reqFrame(1, -1, 1, false, garbage(50))},
		{"metadata v12 garbage body", reqFrame(3, 12, 1, true, garbage(200))},
		{"metadata v1 topic count 2^31-1", reqFrame(3, 1, 1, false, []byte{0x7f, 0xff, 0xff, 0xff})},
		{"produce v9 garbage body", reqFrame(0, 9, 1, true, garbage(300))},
		{"produce v7 garbage body", reqFrame(0, 7, 1, false, garbage(300))},
		{"fetch v12 garbage body", reqFrame(1, 12, 1, true, garbage(300))},
		{"create topics v5 garbage body", reqFrame(19, 5, 1, true, garbage(64))},
		{"list offsets v1 garbage", reqFrame(2, 1, 1, false, garbage(64))},
		{"random bytes", garbage(4096)},
	}
	for _, c := range closing {
		t.Run(c.name, func(t *testing.T) {
			conn := dial(t)
			if _, err := conn.Write(c.data); err != nil {
				t.Fatalf("write: %v", err)
			}
			expectClosedOrAnswered(t, conn)
			healthy(t)
		})
	}

	// Frames cut short: the broker waits for the rest (until -idle-timeout),
	// and must be fine when the client goes away.
	truncated := []struct {
		name string
		data []byte
	}{
		{"size only", sizePrefix(100)},
		{"half a size", []byte{0, 0}},
		{"header cut", reqFrame(18, 0, 1, false, nil)[:7]},
		{"produce cut mid-batch", func() []byte {
			f := reqFrame(0, 7, 1, false, produceBody(topic, -1, recordBatch([]byte("x"), false)))
			return f[:len(f)-10]
		}()},
	}
	for _, c := range truncated {
		t.Run("truncated "+c.name, func(t *testing.T) {
			conn := dial(t)
			if _, err := conn.Write(c.data); err != nil {
				t.Fatalf("write: %v", err)
			}
			conn.(*net.TCPConn).CloseWrite()
			expectClosedOrAnswered(t, conn) // our half-close: the broker sees EOF
			healthy(t)
		})
	}

	t.Run("api versions v999 gets UNSUPPORTED_VERSION in v0 layout", func(t *testing.T) {
		conn := dial(t)
		conn.Write(reqFrame(18, 999, 42, true, []byte{0, 0, 0}))
		f, err := readFrame(conn)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		if len(f) < 10 || binary.BigEndian.Uint32(f) != 42 {
			t.Fatalf("response %x: want correlation id 42", f)
		}
		resp := kmsg.NewApiVersionsResponse()
		resp.Version = 0
		if err := resp.ReadFrom(f[4:]); err != nil {
			t.Fatalf("v0 body does not parse: %v", err)
		}
		if resp.ErrorCode != 35 || len(resp.ApiKeys) == 0 {
			t.Fatalf("error code %d with %d api keys, want 35 and the list", resp.ErrorCode, len(resp.ApiKeys))
		}
		healthy(t)
	})

	t.Run("bad CRC gets CORRUPT_MESSAGE, good CRC is stored", func(t *testing.T) {
		conn := dial(t)
		for i, c := range []struct {
			badCRC bool
			want   int16
		}{{true, 2}, {false, 0}} {
			corr := int32(100 + i)
			conn.Write(reqFrame(0, 7, corr, false, produceBody(topic, -1, recordBatch([]byte("raw"), c.badCRC))))
			f, err := readFrame(conn)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			resp := kmsg.NewProduceResponse()
			resp.Version = 7
			if binary.BigEndian.Uint32(f) != uint32(corr) {
				t.Fatalf("correlation id %d, want %d", binary.BigEndian.Uint32(f), corr)
			}
			if err := resp.ReadFrom(f[4:]); err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
				t.Fatalf("produce response does not parse: %v %+v", err, resp)
			}
			if got := resp.Topics[0].Partitions[0].ErrorCode; got != c.want {
				t.Errorf("bad CRC %v: error code %d, want %d", c.badCRC, got, c.want)
			}
		}
		healthy(t)
	})

	t.Run("pipelined requests answered in order, acks=0 skipped", func(t *testing.T) {
		conn := dial(t)
		var buf bytes.Buffer
		var want []int32
		for i := int32(0); i < 500; i++ {
			if i%50 == 25 {
				buf.Write(reqFrame(0, 7, i, false, produceBody(topic, 0, recordBatch([]byte("acks0"), false))))
				continue // no response for acks=0
			}
			buf.Write(reqFrame(18, 0, i, false, nil))
			want = append(want, i)
		}
		if _, err := conn.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		for _, corr := range want {
			f, err := readFrame(conn)
			if err != nil {
				t.Fatalf("waiting for correlation id %d: %v", corr, err)
			}
			if got := int32(binary.BigEndian.Uint32(f)); got != corr {
				t.Fatalf("got correlation id %d, want %d", got, corr)
			}
		}
		healthy(t)
	})

	b.stop()
}

// encRecords encodes records with the given values and offset deltas.
func encRecords(deltas []int32, vals ...[]byte) []byte {
	var out []byte
	for i, v := range vals {
		rec := kmsg.Record{Value: v, OffsetDelta: deltas[i]}
		enc := rec.AppendTo(nil)
		rec.Length = int32(len(enc) - 1) // the zero length varint took one byte
		out = rec.AppendTo(out)
	}
	return out
}

// craftBatch wraps records (compressed as attrs says) in a v2 batch that
// declares count records, with a valid CRC.
func craftBatch(attrs int16, count int32, records []byte) []byte {
	now := time.Now().UnixMilli()
	batch := kmsg.RecordBatch{
		Magic:           2,
		Attributes:      attrs,
		LastOffsetDelta: count - 1,
		FirstTimestamp:  now,
		MaxTimestamp:    now,
		ProducerID:      -1,
		ProducerEpoch:   -1,
		FirstSequence:   -1,
		NumRecords:      count,
		Records:         records,
	}
	return fixBatch(batch.AppendTo(nil))
}

// TestBadRecords sends batches with valid CRCs whose records are malformed
// through the real binary. Each gets Kafka's error code (v9: with the
// record at fault); nothing of them is stored, and consumers (franz-go and
// librdkafka) then read the log from the start: exactly the good records,
// at offsets without gaps.
func TestBadRecords(t *testing.T) {
	b := startBroker(t, "-max-decompressed-batch-bytes", "1048576")
	const topic = "records"
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), topic, 1)

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(encRecords([]int32{0}, bytes.Repeat([]byte("bomb"), 1<<20))) // 4 MiB value
	zw.Close()
	three := encRecords([]int32{0, 1, 2}, []byte("a"), []byte("b"), []byte("c"))

	cases := []struct {
		name   string
		batch  []byte
		want   int16
		record int32 // index named in the v9 record errors; -1 none
	}{
		{"good 1", craftBatch(0, 1, encRecords([]int32{0}, []byte("good-0"))), 0, -1},
		{"garbage records under a valid CRC", craftBatch(0, 1, []byte("garbage, not records at all")), 87, 0},
		{"count 1 with 3 records", craftBatch(0, 1, three), 87, -1},
		{"count 2^31-1 with 1 record", craftBatch(0, math.MaxInt32, encRecords([]int32{0}, []byte("x"))), 87, -1},
		{"offset deltas 0, 0", craftBatch(0, 2, encRecords([]int32{0, 0}, []byte("x"), []byte("y"))), 87, 1},
		{"undecodable gzip", craftBatch(1, 1, []byte("this is not gzip")), 2, -1},
		{"undecodable zstd", craftBatch(4, 1, []byte{0x28, 0xb5, 0x2f, 0xfd, 9, 9, 9, 9}), 2, -1},
		{"gzip bomb past the limit", craftBatch(1, 1, gz.Bytes()), 10, -1},
		{"good 2", craftBatch(0, 2, encRecords([]int32{0, 1}, []byte("good-1"), []byte("good-2"))), 0, -1},
	}
	conn, err := net.DialTimeout("tcp", b.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, c := range cases {
		req := kmsg.NewProduceRequest()
		req.Version = 9
		req.Acks = -1
		req.TimeoutMillis = 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = c.batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		corr := int32(200 + i)
		if _, err := conn.Write(reqFrame(0, 9, corr, true, req.AppendTo(nil))); err != nil {
			t.Fatal(err)
		}
		f, err := readFrame(conn)
		if err != nil {
			t.Fatalf("%s: no answer: %v", c.name, err)
		}
		if binary.BigEndian.Uint32(f) != uint32(corr) {
			t.Fatalf("%s: correlation id %d", c.name, binary.BigEndian.Uint32(f))
		}
		resp := kmsg.NewProduceResponse()
		resp.Version = 9
		if err := resp.ReadFrom(f[5:]); err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("%s: response does not parse: %v", c.name, err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != c.want {
			t.Errorf("%s: error code %d, want %d", c.name, p.ErrorCode, c.want)
			continue
		}
		if c.want == 0 {
			continue
		}
		if p.ErrorMessage == nil {
			t.Errorf("%s: no error message", c.name)
		}
		if c.record >= 0 && (len(p.ErrorRecords) != 1 || p.ErrorRecords[0].RelativeOffset != c.record) {
			t.Errorf("%s: record errors %+v, want record %d", c.name, p.ErrorRecords, c.record)
		}
	}
	want := []string{"good-0", "good-1", "good-2"}

	// franz-go reads exactly the good records, and the log ends there.
	cl := newFranz(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	ctx := testContext(t, 30*time.Second)
	var got []string
	for len(got) < len(want) && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("franz-go fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != int64(len(got)) {
				t.Fatalf("franz-go: record %q at offset %d, want %d", r.Value, r.Offset, len(got))
			}
			got = append(got, string(r.Value))
		})
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("franz-go read %q, want %q", got, want)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if end, _ := ends.Lookup(topic, 0); end.Offset != int64(len(want)) {
		t.Fatalf("log end offset %d, want %d", end.Offset, len(want))
	}

	// librdkafka the same.
	ck := ckConsumer(t, b.addr)
	tp := topic
	if err := ck.Assign([]ckafka.TopicPartition{{Topic: &tp, Partition: 0, Offset: ckafka.OffsetBeginning}}); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		switch e := ck.Poll(100).(type) {
		case *ckafka.Message:
			if int64(e.TopicPartition.Offset) != int64(len(got)) {
				t.Fatalf("librdkafka: record %q at offset %d, want %d", e.Value, e.TopicPartition.Offset, len(got))
			}
			got = append(got, string(e.Value))
		case ckafka.Error:
			t.Fatalf("librdkafka: %v", e)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("librdkafka read %q, want %q", got, want)
	}
	// The operator hears of refused batches (sampled).
	if !b.log.contains("records do not validate") {
		t.Errorf("no Warn for the refused batches in the broker log")
	}
	b.stop()
}
