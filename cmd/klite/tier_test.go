package main

// Retention, DeleteRecords and tiered storage against the real binary. The
// S3 tests run against versitygw (a real S3 server) on loopback, installed
// by scripts/versitygw.sh the first time (`make s3-server`);
// KLITE_S3_TESTS=0 skips them, saying so.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/tier/s3fault"
	"github.com/klite/klite/tier/s3store"
	"github.com/klite/klite/tier/s3test"
	"github.com/klite/klite/vfs"
)

const (
	s3Access = s3test.Access
	s3Secret = s3test.Secret
	s3Bucket = "klite-test"
	s3Prefix = "klite/"
)

// startS3 runs a fresh versitygw with an empty bucket and returns its
// endpoint. The broker finds the credentials where the AWS default chain
// looks: the environment, set here for the test (and inherited by klite).
func startS3(t *testing.T) string {
	t.Helper()
	if os.Getenv("KLITE_S3_TESTS") == "0" {
		t.Skip("KLITE_S3_TESTS=0: S3 integration tests against versitygw skipped")
	}
	log := &logBuffer{}
	srv, err := s3test.Start(context.Background(), t.TempDir(), s3Bucket, log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.tail(100))
	}
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			t.Logf("versitygw log:\n%s", log.tail(100))
		}
	})
	t.Setenv("AWS_ACCESS_KEY_ID", s3Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3Secret)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return srv.Endpoint
}

// tierFlags run klite tiered to endpoint with everything small: 1 MiB
// segments and objects, a 1 s flush, and no uploaded data kept locally, so
// most of a partition's log soon lives only in the bucket.
func tierFlags(endpoint string, extra ...string) []string {
	return append([]string{
		"-s3-bucket", s3Bucket, "-s3-endpoint", endpoint, "-s3-prefix", s3Prefix,
		"-s3-flush-interval", "1s", "-s3-object-bytes", "1048576", "-wal-hot-bytes", "1",
		"-segment-bytes", "1048576", "-max-message-bytes", "1000000",
		"-retention-check-interval", "1s", "-shards", "2",
	}, extra...)
}

// bucket is a test's own client of the bucket klite writes to.
func bucket(t *testing.T, endpoint string) *s3store.Store {
	t.Helper()
	s, err := s3store.New(context.Background(), s3store.Config{
		Bucket: s3Bucket, Prefix: s3Prefix, Endpoint: endpoint, AccessKey: s3Access, SecretKey: s3Secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tieredEnds returns the end of each partition's published manifest.
func tieredEnds(t *testing.T, s *s3store.Store, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ctx := testContext(t, time.Minute)
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	d := td[topic]
	ends := map[int32]int64{}
	for p := range d.Partitions {
		m, err := tier.LoadManifest(ctx, s, tier.Partition{Topic: topic, TopicID: d.ID, Partition: p})
		if err != nil {
			t.Fatalf("manifest of %s/%d: %v", topic, p, err)
		}
		ends[p] = m.NextOffset()
	}
	return ends
}

// waitUploaded waits until the bucket holds every partition of topic up to
// its current end offset.
func waitUploaded(t *testing.T, s *s3store.Store, adm *kadm.Client, topic string, d time.Duration) {
	t.Helper()
	ends, err := adm.ListEndOffsets(testContext(t, time.Minute), topic)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, d, "the bucket to hold "+topic, func() bool {
		tiered := tieredEnds(t, s, adm, topic)
		ok := true
		ends.Each(func(o kadm.ListedOffset) {
			if tiered[o.Partition] < o.Offset {
				ok = false
			}
		})
		return ok
	})
}

// walBytes is the size of the WAL segment files under dir.
func walBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while walking
			}
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(path, ".wal") {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func startOffset(t *testing.T, adm *kadm.Client, topic string, p int32) int64 {
	t.Helper()
	return listedOffset(t, adm.ListStartOffsets, "start", topic, p)
}

func endOffset(t *testing.T, adm *kadm.Client, topic string, p int32) int64 {
	t.Helper()
	return listedOffset(t, adm.ListEndOffsets, "end", topic, p)
}

func listedOffset(t *testing.T, list func(context.Context, ...string) (kadm.ListedOffsets, error), what, topic string, p int32) int64 {
	t.Helper()
	offs, err := list(testContext(t, 30*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := offs.Lookup(topic, p)
	if !ok || o.Err != nil {
		t.Fatalf("%s offset of %s/%d: %v", what, topic, p, o.Err)
	}
	return o.Offset
}

// produceValues produces n records value(0, i) to partition 0 of topic,
// all with timestamp ts (zero: now), and fails on any error.
func produceValues(t *testing.T, cl *kgo.Client, topic string, from, n int, ts time.Time) {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	for i := from; i < from+n; i++ {
		r := &kgo.Record{Topic: topic, Partition: 0, Value: value(0, int64(i)), Timestamp: ts}
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestDeleteRecords: kadm's DeleteRecords moves the log start (and it stays
// after a restart); a consumer below it gets OFFSET_OUT_OF_RANGE, or is
// reset to the new start.
func TestDeleteRecords(t *testing.T) {
	b := startBroker(t)
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	const topic = "delete-records"
	createTopic(t, adm, topic, 2)
	produceValues(t, cl, topic, 0, 100, time.Time{})
	ctx := testContext(t, time.Minute)

	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 40})
	offs.Add(kadm.Offset{Topic: topic, Partition: 1, At: 5}) // past partition 1's end (0)
	resp, err := adm.DeleteRecords(ctx, offs)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resp.On(topic, 0, nil); r.Err != nil || r.LowWatermark != 40 {
		t.Fatalf("partition 0: low watermark %d, %v", r.LowWatermark, r.Err)
	}
	if r, _ := resp.On(topic, 1, nil); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("partition 1 past its end: %v", r.Err)
	}
	offs = nil
	offs.Add(kadm.Offset{Topic: "no-such-topic", Partition: 0, At: 1})
	if resp, err := adm.DeleteRecords(ctx, offs); err == nil {
		if r, _ := resp.On("no-such-topic", 0, nil); !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("unknown topic: %v", r.Err)
		}
	}

	check := func(when string) {
		t.Helper()
		if got := startOffset(t, adm, topic, 0); got != 40 {
			t.Fatalf("%s: start offset %d, want 40", when, got)
		}
		// Below the log start, without a reset policy: the error surfaces.
		strict := newFranz(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(10)}}),
			kgo.ConsumeResetOffset(kgo.NoResetOffset()))
		var fetchErr error
		for fetchErr == nil {
			fs := strict.PollFetches(testContext(t, time.Minute))
			if err := fs.Err(); err != nil {
				fetchErr = err
			} else if n := len(fs.Records()); n > 0 {
				t.Fatalf("%s: %d records below the log start", when, n)
			}
		}
		if !errors.Is(fetchErr, kerr.OffsetOutOfRange) {
			t.Fatalf("%s: fetch below the log start: %v, want OFFSET_OUT_OF_RANGE", when, fetchErr)
		}
		// With reset to earliest: the consumer lands on the new log start.
		got := consumeNReset(t, b.addr, topic, kgo.NewOffset().At(10), kgo.NewOffset().AtStart(), 60)
		for i, r := range got[:60] {
			if want := int64(40 + i); r.Offset != want || !bytes.Equal(r.Value, value(0, want)) {
				t.Fatalf("%s: record %d at offset %d (%q), want offset %d", when, i, r.Offset, r.Value, want)
			}
		}
	}
	check("after DeleteRecords")
	b.stop()
	b.restart()
	check("after a restart")

	// -1 deletes up to the high watermark.
	offs = nil
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: -1})
	resp, err = adm.DeleteRecords(testContext(t, time.Minute), offs)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resp.On(topic, 0, nil); r.Err != nil || r.LowWatermark != 100 {
		t.Fatalf("delete to the high watermark: low watermark %d, %v", r.LowWatermark, r.Err)
	}
	b.stop()
}

// TestRetentionLocal: with a 1 s retention check and 1 MiB segments, the
// broker-wide -retention-ms expires old records and a topic's
// retention.bytes caps its size; the log start moves and what remains
// reads back.
func TestRetentionLocal(t *testing.T) {
	b := startBroker(t, "-retention-ms", "3600000", "-retention-check-interval", "1s",
		"-segment-bytes", "1048576", "-max-message-bytes", "1000000")
	// Uncompressed, so a record's stored size is known: its 100-byte value
	// plus at most 12 bytes of framing (the 61-byte batch header is spread
	// over hundreds of records).
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(64<<10),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kadm.NewClient(cl)

	t.Run("time", func(t *testing.T) {
		const topic = "retention-time"
		createTopic(t, adm, topic, 1)
		// Two hours old: past the broker's one-hour retention at once. Then
		// fresh records, which must stay.
		const old, fresh = 40000, 1000
		produceValues(t, cl, topic, 0, old, time.Now().Add(-2*time.Hour))
		produceValues(t, cl, topic, old, fresh, time.Time{})
		waitFor(t, time.Minute, "expired records to go", func() bool {
			return startOffset(t, adm, topic, 0) >= old/2
		})
		start := startOffset(t, adm, topic, 0)
		t.Logf("log start %d: %d expired records, %d fresh", start, old, fresh)
		if start > old {
			t.Fatalf("log start %d is past the fresh records (from %d)", start, old)
		}
		got := consumeN(t, b.addr, topic, map[int32]kgo.Offset{0: kgo.NewOffset().AtStart()}, int(old+fresh-start))
		for i, r := range got[:old+fresh-start] {
			if want := start + int64(i); r.Offset != want || !bytes.Equal(r.Value, value(0, want)) {
				t.Fatalf("record %d: offset %d, want %d", i, r.Offset, want)
			}
		}
	})

	t.Run("size", func(t *testing.T) {
		const topic = "retention-size"
		const limit = 1 << 20
		if _, err := adm.CreateTopic(testContext(t, 30*time.Second), 1, 1,
			map[string]*string{"retention.bytes": kadm.StringPtr(fmt.Sprint(limit))}, topic); err != nil {
			t.Fatal(err)
		}
		const n = 60000 // about 6 MiB of values
		produceValues(t, cl, topic, 0, n, time.Time{})
		waitFor(t, time.Minute, "the log to shrink to retention.bytes", func() bool {
			return (n-startOffset(t, adm, topic, 0))*valueSize < 3*limit
		})
		start := startOffset(t, adm, topic, 0)
		kept := storedBytes(t, cl, topic, start)
		t.Logf("log start %d of %d records: %d bytes kept", start, n, kept)
		// Kafka deletes only while what remains is at least retention.bytes.
		if kept < limit {
			t.Errorf("kept %d bytes, below retention.bytes %d", kept, limit)
		}
		if end := endOffset(t, adm, topic, 0); end != n {
			t.Fatalf("end offset %d, want %d", end, n)
		}
	})
	b.stop()
}

// storedBytes is the size of partition 0's record batches from offset
// from to its end, read with raw fetches.
func storedBytes(t *testing.T, cl *kgo.Client, topic string, from int64) int64 {
	t.Helper()
	ctx := testContext(t, time.Minute)
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for {
		req := kmsg.NewPtrFetchRequest() // the client picks the version
		req.MaxBytes, req.ReplicaID = 1<<20, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, td[topic].ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset, rp.PartitionMaxBytes = from, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			t.Fatalf("fetch %s at %d: %v", topic, from, err)
		}
		if len(p.RecordBatches) == 0 {
			return n
		}
		n += int64(len(p.RecordBatches))
		// Continue after the last batch: base offset + last offset delta + 1.
		for b := p.RecordBatches; len(b) >= 61; {
			size := 12 + int(binary.BigEndian.Uint32(b[8:]))
			from = int64(binary.BigEndian.Uint64(b)) + int64(binary.BigEndian.Uint32(b[23:])) + 1
			b = b[min(size, len(b)):]
		}
	}
}

// tierRecords is the size of the tiered big run: about 20 MB, twenty-odd
// 1 MiB segments.
const tierRecords = 200_000

// TestTieredReads: once most of a topic lives only in the bucket, franz-go
// and librdkafka read it all from offset 0, every record as produced.
func TestTieredReads(t *testing.T) {
	endpoint := startS3(t)
	b := startBroker(t, tierFlags(endpoint)...)
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	const topic = "tiered"
	createTopic(t, adm, topic, bigParts)
	produceBigFranz(t, cl, topic, tierRecords)
	produced := int64(tierRecords * valueSize)

	waitUploaded(t, bucket(t, endpoint), adm, topic, 2*time.Minute)
	waitFor(t, 2*time.Minute, "uploaded segments to leave the WAL", func() bool {
		return walBytes(t, b.dir) < produced/3
	})
	t.Logf("WAL holds %d bytes of %d produced", walBytes(t, b.dir), produced)

	checkEndOffsets(t, adm, topic, bigParts, tierRecords)
	consumeBigFranz(t, b.addr, topic, tierRecords)
	consumeBigConfluent(t, b.addr, topic, tierRecords)

	// The log start reads from the bucket too after a restart.
	b.stop()
	b.restart()
	consumeBigFranz(t, b.addr, topic, tierRecords)
	b.stop()
}

// TestDisasterRecovery: after a clean stop, the WAL dir is deleted; klite
// started on the empty dir with the same bucket has every topic (with its
// ID and configs), record, committed offset and its cluster id back; the
// clean stop released the bucket prefix, so the new instance claims it
// without -s3-take-over.
func TestDisasterRecovery(t *testing.T) {
	endpoint := startS3(t)
	b := startBroker(t, tierFlags(endpoint)...)
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	ctx := testContext(t, 5*time.Minute)

	const topic, small, group = "dr-big", "dr-small", "dr-group"
	createTopic(t, adm, topic, bigParts)
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": kadm.StringPtr("-1")}, small); err != nil {
		t.Fatal(err)
	}
	produceBigFranz(t, cl, topic, tierRecords/4)
	for i := 0; i < 30; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: small, Partition: int32(i % 3), Value: []byte(fmt.Sprint("small ", i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var commits kadm.Offsets
	for p := int32(0); p < bigParts; p++ {
		commits.Add(kadm.Offset{Topic: topic, Partition: p, At: int64(100 + p)})
	}
	commits.Add(kadm.Offset{Topic: small, Partition: 2, At: 7, Metadata: "meta"})
	if resp, err := adm.CommitOffsets(ctx, group, commits); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}

	before, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mdBefore, err := adm.BrokerMetadata(ctx)
	if err != nil || mdBefore.Cluster == "" {
		t.Fatalf("cluster id before: %q %v", mdBefore.Cluster, err)
	}
	endsBefore, err := adm.ListEndOffsets(ctx, topic, small)
	if err != nil {
		t.Fatal(err)
	}
	b.stop() // the final upload and snapshot

	if err := os.RemoveAll(b.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b.restart()
	if !b.log.contains("restored from the bucket") {
		t.Fatal("no restore logged")
	}

	cl = newFranz(t, b.addr)
	adm = kadm.NewClient(cl)
	after, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if md, err := adm.BrokerMetadata(ctx); err != nil || md.Cluster != mdBefore.Cluster {
		t.Errorf("cluster id after the restore %q (%v), before %q", md.Cluster, err, mdBefore.Cluster)
	}
	for _, name := range []string{topic, small} {
		bd, ad := before[name], after[name]
		if ad.ID != bd.ID || len(ad.Partitions) != len(bd.Partitions) {
			t.Errorf("%s: id %v with %d partitions after, %v with %d before", name, ad.ID, len(ad.Partitions), bd.ID, len(bd.Partitions))
		}
	}
	endsAfter, err := adm.ListEndOffsets(ctx, topic, small)
	if err != nil {
		t.Fatal(err)
	}
	endsBefore.Each(func(o kadm.ListedOffset) {
		a, _ := endsAfter.Lookup(o.Topic, o.Partition)
		if a.Err != nil || a.Offset != o.Offset {
			t.Errorf("%s/%d: end offset %d (%v) after, %d before", o.Topic, o.Partition, a.Offset, a.Err, o.Offset)
		}
	})
	rc, err := adm.DescribeTopicConfigs(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := rc.On(small, nil); err != nil || !hasConfig(c.Configs, "retention.ms", "-1") {
		t.Errorf("%s: retention.ms not restored: %v %+v", small, err, c.Configs)
	}
	fetched, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	commits.Each(func(o kadm.Offset) {
		got, ok := fetched.Lookup(o.Topic, o.Partition)
		if !ok || got.Err != nil || got.At != o.At || got.Metadata != o.Metadata {
			t.Errorf("committed %s/%d: %+v, want %d %q", o.Topic, o.Partition, got, o.At, o.Metadata)
		}
	})
	consumeBigFranz(t, b.addr, topic, tierRecords/4)
	got := consumeN(t, b.addr, small, map[int32]kgo.Offset{0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart()}, 30)
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Value)] = true
	}
	if len(seen) != 30 {
		t.Errorf("%s: %d distinct records back, want 30", small, len(seen))
	}

	// The restored broker appends after the restored offsets.
	pcl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	r, err := pcl.ProduceSync(ctx, &kgo.Record{Topic: small, Partition: 1, Value: []byte("after")}).First()
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := endsBefore.Lookup(small, 1); r.Offset != o.Offset {
		t.Errorf("%s/1: first record after the restore at offset %d, want %d", small, r.Offset, o.Offset)
	}
	b.stop()
}

func hasConfig(cs []kadm.Config, name, value string) bool {
	for _, c := range cs {
		if c.Key == name && c.Value != nil && *c.Value == value {
			return true
		}
	}
	return false
}

// TestTieredCrashKill9: kill -9 at random moments while producers write
// and the uploader uploads; after each restart every acknowledged record is
// there exactly once, most of them read back from the bucket.
func TestTieredCrashKill9(t *testing.T) {
	endpoint := startS3(t)
	crashRounds(t, envInt("KLITE_CRASH_ROUNDS", 4), tierFlags(endpoint)...)
	objects := 0
	err := bucket(t, endpoint).List(testContext(t, time.Minute), "topics/crash-", "", func(o tier.ObjectInfo) error {
		if strings.HasSuffix(o.Key, ".klo") {
			objects++
		}
		return nil
	})
	if err != nil || objects == 0 {
		t.Fatalf("the bucket holds %d data objects of the crashed topic (%v)", objects, err)
	}
	t.Logf("the bucket holds %d data objects of the crashed topic", objects)
}

// TestTieredS3Down: the bucket becomes unreachable (503s, then reset
// connections) while producers write; nothing acknowledged is lost, and
// once S3 is back the backlog goes up.
func TestTieredS3Down(t *testing.T) {
	endpoint := startS3(t)
	proxy, err := s3fault.New(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	b := startBroker(t, tierFlags(proxy.URL())...)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, producers = "s3-down", 2
	createTopic(t, adm, topic, durParts)

	tr, stop := startProducers(t, b.addr, topic, producers)
	defer stop()

	s := bucket(t, endpoint)
	tr.waitAcked(t, 5000)
	for _, mode := range []s3fault.Mode{s3fault.SlowDown, s3fault.Reset} {
		proxy.SetMode(mode)
		faults := proxy.Faults()
		tr.waitAcked(t, 20000) // acks go on while S3 is down
		waitFor(t, time.Minute, "uploads to hit the fault", func() bool { return proxy.Faults() > faults })
		proxy.SetMode(s3fault.Pass)
		tr.waitAcked(t, 2000)
	}
	proxy.SetMode(s3fault.SlowDown)
	tr.waitAcked(t, 20000)
	proxy.SetMode(s3fault.Pass)
	stop()

	waitUploaded(t, s, adm, topic, 3*time.Minute)
	verifyDurable(t, b.addr, topic, tr)
	b.stop()
}

// TestWALMaxBytes: at -wal-max-bytes with nothing expired, produce fails
// with KAFKA_STORAGE_ERROR and nothing is lost; DeleteRecords to the high
// watermark lets retention free segments, and produce works again.
func TestWALMaxBytes(t *testing.T) {
	const capBytes = 4 << 20
	b := startBroker(t, "-wal-max-bytes", fmt.Sprint(capBytes), "-segment-bytes", "1048576", "-max-message-bytes", "1000000",
		"-retention-check-interval", "1s", "-retention-ms", "-1", "-shards", "1")
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DisableIdempotentWrite(),
		kgo.RecordRetries(1), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kadm.NewClient(cl)
	const topic = "wal-cap"
	createTopic(t, adm, topic, 1)
	ctx := testContext(t, 2*time.Minute)
	big := bytes.Repeat([]byte("x"), 64<<10)

	var acked int64
	var full error
	for i := 0; full == nil; i++ {
		if i > 4*capBytes/len(big) {
			t.Fatalf("%d bytes produced under a %d byte cap without an error (WAL holds %d bytes, log start %d)", acked*int64(len(big)), capBytes, walBytes(t, b.dir), startOffset(t, adm, topic, 0))
		}
		r, err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: big}).First()
		if err != nil {
			full = err
			break
		}
		if r.Offset != acked {
			t.Fatalf("record %d at offset %d", acked, r.Offset)
		}
		acked++
	}
	if !errors.Is(full, kerr.KafkaStorageError) {
		t.Fatalf("produce at the cap: %v, want KAFKA_STORAGE_ERROR", full)
	}
	if walBytes(t, b.dir) > capBytes {
		t.Fatalf("WAL holds %d bytes, cap %d", walBytes(t, b.dir), capBytes)
	}
	t.Logf("cap reached after %d records", acked)
	if end := endOffset(t, adm, topic, 0); end != acked {
		t.Fatalf("end offset %d, want the %d acknowledged", end, acked)
	}

	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: -1})
	if resp, err := adm.DeleteRecords(ctx, offs); err != nil || resp.Error() != nil {
		t.Fatalf("delete records: %v %v", err, resp.Error())
	}
	waitFor(t, time.Minute, "produce to work again", func() bool {
		_, err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: big}).First()
		return err == nil
	})
	b.stop()
}

// freshDir: no meta.json is fresh; a restore marker (an interrupted
// restore) is an error until the directory is emptied.
func TestFreshDir(t *testing.T) {
	dir := t.TempDir()
	if fresh, err := freshDir(dir); !fresh || err != nil {
		t.Fatalf("empty dir: fresh %v, %v", fresh, err)
	}
	if err := markRestore(vfs.OSFS{}, dir, true); err != nil {
		t.Fatal(err)
	}
	if _, err := freshDir(dir); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("restore marker: %v", err)
	}
	if err := markRestore(vfs.OSFS{}, dir, false); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fresh, err := freshDir(dir); fresh || err != nil {
		t.Fatalf("dir with %s: fresh %v, %v", "meta.json", fresh, err)
	}
}

// TestRestoreMarkerSurvivesCrash: once markRestore(on) returns, a crash
// finds the marker (so an interrupted restore is never mistaken for the
// broker's state); once markRestore(off) returns, a crash does not.
func TestRestoreMarkerSurvivesCrash(t *testing.T) {
	mem := vfs.NewMemFS()
	if _, err := openWALDir(mem, "/wal", "id"); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join("/wal", restoreMarker)
	if err := markRestore(mem, "/wal", true); err != nil {
		t.Fatal(err)
	}
	if _, err := vfs.ReadFile(mem.CrashClone(vfs.CrashDropUnsynced, 1), marker); err != nil {
		t.Fatalf("marker lost in a crash after markRestore(on): %v", err)
	}
	if err := markRestore(mem, "/wal", false); err != nil {
		t.Fatal(err)
	}
	if _, err := vfs.ReadFile(mem.CrashClone(vfs.CrashDropUnsynced, 1), marker); err == nil {
		t.Fatal("marker back after a crash after markRestore(off)")
	}
}

// tierPartition names partition p of topic in the bucket.
func tierPartition(t testing.TB, adm *kadm.Client, topic string, p int32) tier.Partition {
	t.Helper()
	td, err := adm.ListTopics(testContext(t, 30*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		t.Fatalf("topic %s: %v", topic, d.Err)
	}
	return tier.Partition{Topic: topic, TopicID: d.ID, Partition: p}
}

// dataObjects lists the offset ranges [base, last] of p's data objects in
// the bucket, as their keys name them (tier/doc.go).
func dataObjects(t testing.TB, s *s3store.Store, p tier.Partition) [][2]int64 {
	t.Helper()
	dir := p.Dir() + "data/"
	var out [][2]int64
	err := s.List(testContext(t, time.Minute), dir, "", func(o tier.ObjectInfo) error {
		name, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, dir), ".klo")
		b, l, ok2 := strings.Cut(name, "-")
		base, err1 := strconv.ParseInt(b, 10, 64)
		last, err2 := strconv.ParseInt(l, 10, 64)
		if !ok || !ok2 || err1 != nil || err2 != nil || last < base {
			return fmt.Errorf("unexpected data object key %q", o.Key)
		}
		out = append(out, [2]int64{base, last})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// countBelow counts the objects wholly below offset.
func countBelow(objs [][2]int64, offset int64) int {
	n := 0
	for _, o := range objs {
		if o[1] < offset {
			n++
		}
	}
	return n
}

// localStartOffset asks ListOffsets (v8+) for partition p's earliest local
// offset (-4): the first offset the broker's WAL still holds.
func localStartOffset(t testing.TB, cl *kgo.Client, topic string, p int32) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = p, -4
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testContext(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Version < 8 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("ListOffsets -4: v%d, %+v", resp.Version, resp.Topics)
	}
	got := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(got.ErrorCode); err != nil {
		t.Fatalf("ListOffsets -4 of %s/%d: %v", topic, p, err)
	}
	return got.Offset
}

// setTopicConfig sets one config of topic with IncrementalAlterConfigs.
func setTopicConfig(t testing.TB, adm *kadm.Client, topic, name, value string) {
	t.Helper()
	resp, err := adm.AlterTopicConfigs(testContext(t, 30*time.Second),
		[]kadm.AlterConfig{{Op: kadm.SetConfig, Name: name, Value: kadm.StringPtr(value)}}, topic)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := resp.On(topic, nil); err != nil || r.Err != nil {
		t.Fatalf("set %s=%s on %s: %v %v", name, value, topic, err, r.Err)
	}
}

// consumeFromZero consumes partition 0 of topic from offset 0, reset to
// earliest (the log start is past 0), and requires exactly the records
// [start, end), each as produceValues wrote it.
func consumeFromZero(t *testing.T, addr, topic string, start, end int64) {
	t.Helper()
	got := consumeNReset(t, addr, topic, kgo.NewOffset().At(0), kgo.NewOffset().AtStart(), int(end-start))
	if int64(len(got)) != end-start {
		t.Fatalf("consumed %d records, want the %d in [%d, %d)", len(got), end-start, start, end)
	}
	for i, r := range got {
		if want := start + int64(i); r.Offset != want || !bytes.Equal(r.Value, value(0, want)) {
			t.Fatalf("record %d: offset %d value %q, want offset %d value %q", i, r.Offset, r.Value, want, value(0, want))
		}
	}
}

// TestRetentionTiered: retention covers the whole log, local and tiered.
// Once a partition's older data lives only in the bucket, retention.bytes
// and retention.ms move its log start, the bucket's objects below it are
// deleted (and the manifest starts there), and a consumer from offset 0 is
// reset to the log start and reads everything from there, from the
// bucket, byte for byte.
func TestRetentionTiered(t *testing.T) {
	endpoint := startS3(t)
	b := startBroker(t, tierFlags(endpoint)...)
	// Uncompressed and in small batches, so sizes follow record counts
	// (a 100-byte value plus at most 12 bytes of framing) and retention
	// has fine-grained units.
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(64<<10),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kadm.NewClient(cl)
	s := bucket(t, endpoint)

	// tierOnly waits until the bucket holds topic's partition 0 to its end
	// and the WAL no longer holds it below offset below.
	tierOnly := func(t *testing.T, topic string, below int64) {
		t.Helper()
		waitUploaded(t, s, adm, topic, 2*time.Minute)
		waitFor(t, 2*time.Minute, fmt.Sprintf("the WAL to free %s/0 below offset %d", topic, below), func() bool {
			return localStartOffset(t, cl, topic, 0) >= below
		})
	}
	manifestStart := func(t *testing.T, p tier.Partition) int64 {
		t.Helper()
		m, err := tier.LoadManifest(testContext(t, time.Minute), s, p)
		if err != nil {
			t.Fatal(err)
		}
		return m.LogStartOffset
	}

	t.Run("bytes", func(t *testing.T) {
		const topic = "tier-retention-bytes"
		const limit = 8 << 20
		const n = 200_000 // about 22 MiB stored
		createTopic(t, adm, topic, 1)
		produceValues(t, cl, topic, 0, n, time.Time{})
		// The WAL keeps the newest sealed segment and the active one
		// (2 MiB, under 19k records), so it frees well past n*3/4; the
		// log start retention.bytes leaves is below that (8 MiB is over
		// 70k records), and the records from there are read from the
		// bucket.
		tierOnly(t, topic, n*3/4)
		p := tierPartition(t, adm, topic, 0)
		before := dataObjects(t, s, p)

		setTopicConfig(t, adm, topic, "retention.bytes", fmt.Sprint(limit))
		var start int64
		waitFor(t, 2*time.Minute, "retention.bytes to move the log start and delete the objects below it", func() bool {
			start = startOffset(t, adm, topic, 0)
			return start > 0 && countBelow(dataObjects(t, s, p), start) == 0 && manifestStart(t, p) == start
		})
		deleted := countBelow(before, start)
		t.Logf("log start %d of %d records; %d of %d objects deleted", start, n, deleted, len(before))
		if deleted == 0 {
			t.Fatalf("log start %d is below every object's end: nothing tiered was dropped", start)
		}
		// Less than one more object (1 MiB) than the limit remains.
		if (n-start)*valueSize >= 2*limit {
			t.Fatalf("%d records kept under retention.bytes %d", n-start, limit)
		}
		// As Kafka: what remains still holds at least retention.bytes.
		// Retention counts whole objects, index footers included; add
		// those to the batch bytes the log still serves.
		m, err := tier.LoadManifest(testContext(t, time.Minute), s, p)
		if err != nil {
			t.Fatal(err)
		}
		kept := storedBytes(t, cl, topic, start)
		for _, o := range m.Objects {
			kept += o.Size - o.DataBytes
		}
		if kept < limit {
			t.Errorf("kept %d bytes, below retention.bytes %d", kept, limit)
		}
		if ls := localStartOffset(t, cl, topic, 0); ls <= start {
			t.Fatalf("the WAL holds the log start (local start %d, log start %d): the read below tests no cold read", ls, start)
		}
		consumeFromZero(t, b.addr, topic, start, n)
		if end := endOffset(t, adm, topic, 0); end != n {
			t.Fatalf("end offset %d, want %d", end, n)
		}
	})

	t.Run("time", func(t *testing.T) {
		const topic = "tier-retention-time"
		const old, fresh = 30_000, 40_000 // about 3.4 and 4.5 MB
		if _, err := adm.CreateTopic(testContext(t, 30*time.Second), 1, 1,
			map[string]*string{"retention.ms": kadm.StringPtr("-1")}, topic); err != nil {
			t.Fatal(err)
		}
		// Two hours old, then uploaded before the fresh records exist:
		// an upload round's objects end at the tiered end, so no object
		// mixes old and fresh records and retention can drop exactly the
		// old ones.
		produceValues(t, cl, topic, 0, old, time.Now().Add(-2*time.Hour))
		waitUploaded(t, s, adm, topic, 2*time.Minute)
		produceValues(t, cl, topic, old, fresh, time.Time{})
		// The WAL frees every old record and the first fresh ones.
		tierOnly(t, topic, old+1)
		p := tierPartition(t, adm, topic, 0)
		before := dataObjects(t, s, p)
		if countBelow(before, old) == 0 {
			t.Fatalf("the bucket holds no object of the old records: %v", before)
		}

		setTopicConfig(t, adm, topic, "retention.ms", "3600000") // one hour
		waitFor(t, 2*time.Minute, "retention.ms to move the log start and delete the old objects", func() bool {
			return startOffset(t, adm, topic, 0) >= old && countBelow(dataObjects(t, s, p), old) == 0
		})
		if start := startOffset(t, adm, topic, 0); start != old {
			t.Fatalf("log start %d, want %d: the first fresh record", start, old)
		}
		if ms := manifestStart(t, p); ms != old {
			t.Fatalf("manifest log start %d, want %d", ms, old)
		}
		after := dataObjects(t, s, p)
		if len(after) == 0 || after[0][0] != old {
			t.Fatalf("objects after retention %v: want the fresh ones, from %d", after, old)
		}
		if ls := localStartOffset(t, cl, topic, 0); ls <= old {
			t.Fatalf("local start %d: the WAL still holds the first fresh record %d", ls, old)
		}
		consumeFromZero(t, b.addr, topic, old, old+fresh)
	})
	b.stop()
}
