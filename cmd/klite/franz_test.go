package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newFranz(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopic(t testing.TB, adm *kadm.Client, topic string, parts int32) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	if _, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// produceBigFranz produces the big run with franz-go's defaults: idempotent,
// acks=all.
func produceBigFranz(t testing.TB, cl *kgo.Client, topic string, n int) {
	t.Helper()
	ctx := testContext(t, 5*time.Minute)
	var failed atomic.Int64
	var firstErr atomic.Value
	for i := 0; i < n; i++ {
		p := int32(i % bigParts)
		r := &kgo.Record{Topic: topic, Partition: p, Key: key(p), Value: value(p, int64(i/bigParts))}
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil && failed.Add(1) == 1 {
				firstErr.Store(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d records failed, first: %v", n, firstErr.Load())
	}
}

// consumeBigFranz reads partitions from offset 0 until all n records are seen.
func consumeBigFranz(t testing.TB, addr, topic string, n int) {
	t.Helper()
	offsets := map[int32]kgo.Offset{}
	for p := int32(0); p < bigParts; p++ {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl := newFranz(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxBytes(16<<20))
	v := newVerifier(t, "franz-go", n)
	ctx := testContext(t, 5*time.Minute)
	for !v.done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %s of %d records: %v", v.progress(), n, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Errorf("fetch %s/%d: %v", topic, p, err) })
		if t.Failed() {
			t.FailNow()
		}
		fs.EachRecord(func(r *kgo.Record) {
			if got := partitionOf(r.Key); got != r.Partition {
				v.fail("record key says partition %d, read from %d", got, r.Partition)
			}
			v.add(r.Partition, r.Offset, r.Value)
		})
	}
}

// checkEndOffsets requires each partition's start offset 0 and end offset
// equal to its share of n.
func checkEndOffsets(t testing.TB, adm *kadm.Client, topic string, parts int32, n int) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < parts; p++ {
		s, _ := starts.Lookup(topic, p)
		e, _ := ends.Lookup(topic, p)
		want := int64(n / int(parts))
		if int(p) < n%int(parts) {
			want++
		}
		if s.Err != nil || e.Err != nil || s.Offset != 0 || e.Offset != want {
			t.Errorf("%s/%d: start %d (%v) end %d (%v), want 0 and %d", topic, p, s.Offset, s.Err, e.Offset, e.Err, want)
		}
	}
}

func TestFranzGo(t *testing.T) {
	b := startBroker(t)
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)

	t.Run("advertised", func(t *testing.T) {
		md, err := adm.BrokerMetadata(testContext(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(b.addr)
		if len(md.Brokers) != 1 || md.Brokers[0].Host != host || strconv.Itoa(int(md.Brokers[0].Port)) != port {
			t.Fatalf("metadata brokers %+v, want one at %s", md.Brokers, b.addr)
		}
	})

	t.Run("big", func(t *testing.T) {
		const topic = "franz-big"
		createTopic(t, adm, topic, bigParts)
		start := time.Now()
		produceBigFranz(t, cl, topic, *records)
		t.Logf("produced %d records in %v", *records, time.Since(start))
		checkEndOffsets(t, adm, topic, bigParts, *records)
		start = time.Now()
		consumeBigFranz(t, b.addr, topic, *records)
		t.Logf("consumed %d records in %v", *records, time.Since(start))
	})

	t.Run("auto-create", func(t *testing.T) {
		const topic = "franz-auto"
		acl := newFranz(t, b.addr, kgo.AllowAutoTopicCreation())
		ctx := testContext(t, 30*time.Second)
		if err := acl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("hello")}).FirstErr(); err != nil {
			t.Fatalf("produce to missing topic: %v", err)
		}
		td, err := adm.ListTopics(ctx, topic)
		if err != nil || td[topic].Err != nil {
			t.Fatalf("list auto-created topic: %v %v", err, td[topic].Err)
		}
		if got := len(td[topic].Partitions); got != 1 {
			t.Errorf("auto-created topic has %d partitions, want the default 1", got)
		}
		got := consumeN(t, b.addr, topic, map[int32]kgo.Offset{0: kgo.NewOffset().AtStart()}, 1)
		if string(got[0].Value) != "hello" || got[0].Offset != 0 {
			t.Errorf("got %q at %d", got[0].Value, got[0].Offset)
		}
	})

	t.Run("acks", func(t *testing.T) {
		for _, c := range []struct {
			name string
			opts []kgo.Opt
		}{
			{"0", []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}},
			{"1", []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}},
			{"all", []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}},
		} {
			t.Run(c.name, func(t *testing.T) {
				topic := "franz-acks-" + c.name
				createTopic(t, adm, topic, 1)
				pcl := newFranz(t, b.addr, c.opts...)
				ctx := testContext(t, time.Minute)
				const n = 5000
				produceValues(t, pcl, topic, 0, n, time.Time{})
				// acks=0 gets no answer, so wait for the data to land; the
				// same connection must still answer later requests in order.
				waitFor(t, time.Minute, "end offset "+strconv.Itoa(n), func() bool {
					ends, err := kadm.NewClient(pcl).ListEndOffsets(ctx, topic)
					e, _ := ends.Lookup(topic, 0)
					return err == nil && e.Offset == n
				})
				checkSeq0(t, b.addr, topic, n)
			})
		}
	})

	t.Run("list-offsets-and-time", func(t *testing.T) {
		const topic = "franz-time"
		createTopic(t, adm, topic, 1)
		ctx := testContext(t, time.Minute)
		base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		const n = 100
		for i := 0; i < n; i++ { // one batch per record: one timestamp per batch
			r := &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i)), Timestamp: base.Add(time.Duration(i) * time.Second)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			milli      int64
			wantOffset int64
		}{
			{base.UnixMilli() - 1, 0},
			{base.UnixMilli(), 0},
			{base.Add(50 * time.Second).UnixMilli(), 50},
			{base.Add(50*time.Second).UnixMilli() - 1, 50},
			{base.Add(99 * time.Second).UnixMilli(), 99},
			{base.Add(100 * time.Second).UnixMilli(), n}, // none at or after: kadm falls back to the end offset
		} {
			lo, err := adm.ListOffsetsAfterMilli(ctx, c.milli, topic)
			if err != nil {
				t.Fatal(err)
			}
			o, _ := lo.Lookup(topic, 0)
			if o.Err != nil || o.Offset != c.wantOffset {
				t.Errorf("offset after %d: %d (%v), want %d", c.milli-base.UnixMilli(), o.Offset, o.Err, c.wantOffset)
			}
		}
		maxTS, err := adm.ListMaxTimestampOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := maxTS.Lookup(topic, 0); o.Err != nil || o.Offset != n-1 {
			t.Errorf("max timestamp offset %d (%v), want %d", o.Offset, o.Err, n-1)
		}
		checkEndOffsets(t, adm, topic, 1, n)

		// A consumer reset to a time starts at the first record at or after it.
		got := consumeN(t, b.addr, topic, map[int32]kgo.Offset{0: kgo.NewOffset().AfterMilli(base.Add(50 * time.Second).UnixMilli())}, 1)
		if got[0].Offset != 50 || !got[0].Timestamp.Equal(base.Add(50*time.Second)) {
			t.Errorf("consume from time: first record at %d with timestamp %v", got[0].Offset, got[0].Timestamp)
		}
	})

	t.Run("consume-from-end", func(t *testing.T) {
		const topic = "franz-end"
		createTopic(t, adm, topic, 1)
		ctx := testContext(t, time.Minute)
		for i := 0; i < 10; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("old")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		ccl := newFranz(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtEnd()}}))
		// Produce new records until the consumer, which starts at the end,
		// sees one; it must never see the old ones.
		var first *kgo.Record
		for i := 0; first == nil; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("new")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := ccl.PollFetches(pctx)
			cancel()
			if ctx.Err() != nil {
				t.Fatal("consumer from the end saw nothing")
			}
			fs.EachRecord(func(r *kgo.Record) {
				if first == nil {
					first = r
				}
				if string(r.Value) != "new" || r.Offset < 10 {
					t.Errorf("consumer from the end got %q at %d", r.Value, r.Offset)
				}
			})
		}
	})

	t.Run("delete-topics", func(t *testing.T) {
		const topic = "franz-delete"
		createTopic(t, adm, topic, 2)
		ctx := testContext(t, time.Minute)
		for i := 0; i < 10; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := adm.DeleteTopic(ctx, topic)
		if err != nil || resp.Err != nil {
			t.Fatalf("delete: %v %v", err, resp.Err)
		}
		td, err := adm.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if td.Has(topic) {
			t.Fatalf("deleted topic still listed")
		}
		if resp, err := adm.DeleteTopic(ctx, topic); err == nil && !errors.Is(resp.Err, kerr.UnknownTopicOrPartition) {
			t.Errorf("second delete: %v, want UNKNOWN_TOPIC_OR_PARTITION", resp.Err)
		}
		// A topic created again under the same name starts empty.
		createTopic(t, adm, topic, 3)
		checkEndOffsets(t, adm, topic, 3, 0)
	})

	t.Run("create-errors", func(t *testing.T) {
		ctx := testContext(t, 30*time.Second)
		createTopic(t, adm, "franz-exists", 1)
		for _, c := range []struct {
			topic string
			parts int32
			want  error
		}{
			{"franz-exists", 1, kerr.TopicAlreadyExists},
			{"bad/name", 1, kerr.InvalidTopicException},
			{"..", 1, kerr.InvalidTopicException},
			{"franz-zero", 0, kerr.InvalidPartitions},
		} {
			resp, err := adm.CreateTopic(ctx, c.parts, 1, nil, c.topic)
			if !errors.Is(err, c.want) && !errors.Is(resp.Err, c.want) {
				t.Errorf("create %q with %d partitions: %v, want %v", c.topic, c.parts, err, c.want)
			}
		}
	})

	t.Run("compression", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			codec kgo.CompressionCodec
		}{{"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()}, {"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()}} {
			t.Run(c.name, func(t *testing.T) {
				topic := "franz-codec-" + c.name
				createTopic(t, adm, topic, 1)
				pcl := newFranz(t, b.addr, kgo.ProducerBatchCompression(c.codec))
				const n = 3000
				produceValues(t, pcl, topic, 0, n, time.Time{})
				checkSeq0(t, b.addr, topic, n)
			})
		}
	})

	t.Run("max-message-bytes", func(t *testing.T) {
		const topic = "franz-large"
		createTopic(t, adm, topic, 1)
		// Uncompressed: franz-go compresses with snappy by default, and the
		// limit applies to the batch as sent.
		pcl := newFranz(t, b.addr, kgo.ProducerBatchMaxBytes(4<<20), kgo.RecordRetries(1), kgo.ProducerBatchCompression(kgo.NoCompression()))
		ctx := testContext(t, time.Minute)
		big := bytes.Repeat([]byte("x"), 1100_000) // over the default 1048588
		err := pcl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: big}).FirstErr()
		if !errors.Is(err, kerr.MessageTooLarge) {
			t.Errorf("1.1 MB record: %v, want MESSAGE_TOO_LARGE", err)
		}
		// Just under the limit is stored, and a consumer whose fetch limits are
		// smaller still gets it whole (KIP-74).
		ok := bytes.Repeat([]byte("y"), 1000_000)
		if err := pcl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: ok}).FirstErr(); err != nil {
			t.Fatalf("1 MB record: %v", err)
		}
		ccl := newFranz(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
			kgo.FetchMaxBytes(64<<10), kgo.FetchMaxPartitionBytes(64<<10))
		fs := ccl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		if recs := fs.Records(); len(recs) != 1 || !bytes.Equal(recs[0].Value, ok) || recs[0].Offset != 0 {
			t.Fatalf("got %d records, want the 1 MB one at offset 0", len(recs))
		}
		// A topic's own max.message.bytes overrides the broker's.
		const small = "franz-small-max"
		if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("2000")}, small); err != nil {
			t.Fatal(err)
		}
		err = pcl.ProduceSync(ctx, &kgo.Record{Topic: small, Value: bytes.Repeat([]byte("z"), 5000)}).FirstErr()
		if !errors.Is(err, kerr.MessageTooLarge) {
			t.Errorf("5 KB record to a topic with max.message.bytes=2000: %v, want MESSAGE_TOO_LARGE", err)
		}
	})

	t.Run("log-append-time", func(t *testing.T) {
		const topic = "franz-append-time"
		ctx := testContext(t, time.Minute)
		if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"message.timestamp.type": kadm.StringPtr("LogAppendTime")}, topic); err != nil {
			t.Fatal(err)
		}
		before := time.Now().Add(-time.Second).Truncate(time.Millisecond) // slack for clock granularity
		old := time.Now().Add(-24 * time.Hour)
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("a"), Timestamp: old}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		got := consumeN(t, b.addr, topic, map[int32]kgo.Offset{0: kgo.NewOffset().AtStart()}, 1)
		if got[0].Timestamp.Before(before) || got[0].Attrs.TimestampType() != 1 {
			t.Errorf("record timestamp %v (type %d), want the broker's append time (>= %v, type 1)", got[0].Timestamp, got[0].Attrs.TimestampType(), before)
		}
	})

	t.Run("offset-out-of-range-resets", func(t *testing.T) {
		const topic = "franz-oor"
		createTopic(t, adm, topic, 1)
		ctx := testContext(t, time.Minute)
		for i := 0; i < 5; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		// Starting past the end gets OFFSET_OUT_OF_RANGE; the client then
		// resets to its reset offset (the start).
		got := consumeNReset(t, b.addr, topic, kgo.NewOffset().At(1000), kgo.NewOffset().AtStart(), 5)
		if got[0].Offset != 0 {
			t.Errorf("after reset the first record is at %d, want 0", got[0].Offset)
		}
	})

	t.Run("many-partitions", func(t *testing.T) {
		const topic, parts = "franz-many", 1000
		createTopic(t, adm, topic, parts)
		ctx := testContext(t, 2*time.Minute)
		var recs []*kgo.Record
		for p := int32(0); p < parts; p++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(strconv.Itoa(int(p)))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		checkEndOffsets(t, adm, topic, parts, parts)
		offsets := map[int32]kgo.Offset{}
		for p := int32(0); p < parts; p++ {
			offsets[p] = kgo.NewOffset().AtStart()
		}
		got := consumeN(t, b.addr, topic, offsets, parts)
		for _, r := range got {
			if string(r.Value) != strconv.Itoa(int(r.Partition)) || r.Offset != 0 {
				t.Fatalf("partition %d offset %d: %q", r.Partition, r.Offset, r.Value)
			}
		}
	})

	// Everything written so far survives a clean restart: the big topic is
	// read again from the recovered log.
	t.Run("restart-and-reread", func(t *testing.T) {
		b.stop()
		b.restart()
		start := time.Now()
		checkEndOffsets(t, adm, "franz-big", bigParts, *records)
		consumeBigFranz(t, b.addr, "franz-big", *records)
		t.Logf("re-read %d records after restart in %v", *records, time.Since(start))
		td, err := adm.ListTopics(testContext(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, topic := range []string{"franz-auto", "franz-time", "franz-many", "franz-delete"} {
			if !td.Has(topic) {
				t.Errorf("topic %s lost in the restart", topic)
			}
		}
	})

	b.stop()
}

// checkSeq0 reads partition 0 of topic from the start and checks that
// offset i holds value(0, i) for i in [0, n).
func checkSeq0(t testing.TB, addr, topic string, n int) {
	t.Helper()
	for i, r := range consumeN(t, addr, topic, map[int32]kgo.Offset{0: kgo.NewOffset().AtStart()}, n) {
		if r.Offset != int64(i) || string(r.Value) != string(value(0, int64(i))) {
			t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
		}
	}
}

// consumeNReset reads n records of partition 0 starting at start, with
// reset as the client's reset offset.
func consumeNReset(t testing.TB, addr, topic string, start, reset kgo.Offset, n int) []*kgo.Record {
	t.Helper()
	cl := newFranz(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: start}}), kgo.ConsumeResetOffset(reset))
	ctx := testContext(t, time.Minute)
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records from %s: %v", len(got), n, topic, ctx.Err())
		}
		got = append(got, fs.Records()...)
	}
	return got
}

// consumeN reads n records from the given partitions of topic.
func consumeN(t testing.TB, addr, topic string, offsets map[int32]kgo.Offset, n int) []*kgo.Record {
	t.Helper()
	cl := newFranz(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	ctx := testContext(t, time.Minute)
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records from %s: %v", len(got), n, topic, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		got = append(got, fs.Records()...)
	}
	return got
}

// TestSmallSegments runs the big produce/consume cycle with 2 MiB WAL
// segments, so reads, fetches and recovery cross many segment
// boundaries, then checks it all again after a kill -9 and a clean restart.
func TestSmallSegments(t *testing.T) {
	n := min(*records, 200_000)
	b := startBroker(t, "-segment-bytes", "2097152")
	// Uncompressed, so the data really spans many segments.
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kadm.NewClient(cl)
	const topic = "small-segments"
	createTopic(t, adm, topic, bigParts)
	produceBigFranz(t, cl, topic, n)
	consumeBigFranz(t, b.addr, topic, n)

	b.kill9()
	b.restart()
	checkEndOffsets(t, adm, topic, bigParts, n)
	consumeBigFranz(t, b.addr, topic, n)

	b.stop()
	b.restart()
	checkEndOffsets(t, adm, topic, bigParts, n)
	consumeBigFranz(t, b.addr, topic, n)
	b.stop()
}
