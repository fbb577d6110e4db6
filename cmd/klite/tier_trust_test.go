package main

// The S3 tier does not trust what it reads back, nor share a bucket
// prefix: tests that edit the bucket as a faulty disk, a bad operator or a
// second broker would, against the real binary and versitygw.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os/exec"
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
)

// fetchAt sends one Fetch of partition 0 of topic at offset and returns
// the partition's error code and record bytes.
func fetchAt(t *testing.T, cl *kgo.Client, p tier.Partition, offset int64) (int16, []byte) {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 100
	req.MaxBytes = 4 << 20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = p.Topic, p.TopicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p.Partition, offset, 1<<20
	rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testContext(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch at %d: %v, %+v", offset, err, resp.Topics)
	}
	rp2 := resp.Topics[0].Partitions[0]
	return rp2.ErrorCode, rp2.RecordBatches
}

// objectBatches returns the object position and base offset of each batch
// in object i of m.
func objectBatches(t *testing.T, s *s3store.Store, m *tier.Manifest, i int) (data []byte, pos, base []int64) {
	t.Helper()
	data = make([]byte, m.Objects[i].DataBytes)
	if err := s.GetRange(testContext(t, time.Minute), m.ObjectKey(i), 0, data); err != nil {
		t.Fatal(err)
	}
	for at := 0; at < len(data); at += 12 + int(binary.BigEndian.Uint32(data[at+8:])) {
		pos = append(pos, int64(at))
		base = append(base, int64(binary.BigEndian.Uint64(data[at:])))
	}
	return data, pos, base
}

// editObject rewrites object i of m with edit applied to its bytes.
func editObject(t *testing.T, s *s3store.Store, m *tier.Manifest, i int, edit func([]byte)) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	b, err := tier.Get(ctx, s, m.ObjectKey(i), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	edit(b)
	if err := s.Put(ctx, m.ObjectKey(i), bytes.NewReader(b), int64(len(b)), tier.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestTierEditedBucket: objects edited in the bucket after upload, as the
// issue found them served: one batch's base offset raised by 3, one byte
// flipped inside a batch, an object deleted. The broker answers
// KAFKA_STORAGE_ERROR for each (never records at wrong offsets, never
// OFFSET_OUT_OF_RANGE above the log start) and logs each at Error with the
// object's key; a franz-go consumer from 0 receives only records at their
// true offsets and stalls, retrying, before the edited batch.
func TestTierEditedBucket(t *testing.T) {
	endpoint := startS3(t)
	b := startBroker(t, tierFlags(endpoint)...)
	// Uncompressed, small batches: many batches per chunk and object.
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(16<<10),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kadm.NewClient(cl)
	s := bucket(t, endpoint)
	const topic, n = "tier-edited", 60_000
	createTopic(t, adm, topic, 1)
	produceValues(t, cl, topic, 0, n, time.Time{})
	waitUploaded(t, s, adm, topic, 2*time.Minute)
	p := tierPartition(t, adm, topic, 0)
	m, err := tier.LoadManifest(testContext(t, time.Minute), s, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Objects) < 3 {
		t.Fatalf("%d objects in the bucket, want at least 3", len(m.Objects))
	}
	waitFor(t, 2*time.Minute, "the WAL to free the first three objects' records", func() bool {
		return localStartOffset(t, cl, topic, 0) > m.Objects[2].LastOffset
	})

	// Object 0: the middle batch's base offset +3.
	_, pos, base := objectBatches(t, s, m, 0)
	mid := len(pos) / 2
	shifted := base[mid]
	editObject(t, s, m, 0, func(b []byte) {
		binary.BigEndian.PutUint64(b[pos[mid]:], uint64(shifted+3))
	})
	// Object 1: one byte flipped inside the middle batch's records.
	_, pos1, base1 := objectBatches(t, s, m, 1)
	mid1 := len(pos1) / 2
	flipped := base1[mid1]
	editObject(t, s, m, 1, func(b []byte) { b[pos1[mid1+1]-1] ^= 0x20 })
	// Object 2: gone.
	if err := s.Delete(testContext(t, time.Minute), m.ObjectKey(2)); err != nil {
		t.Fatal(err)
	}

	// A consumer from 0 gets only true records and stalls before the
	// edited batch, retrying (the broker logs each failed read).
	const corrupt = "failed its checks; not served"
	cons := newFranz(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}))
	next := int64(0)
	deadline := time.Now().Add(time.Minute)
	for strings.Count(b.log.tail(1<<20), corrupt) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the consumer did not retry the edited object within a minute (at offset %d)", next)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second) // poll granularity
		fs := cons.PollFetches(ctx)
		cancel()
		for _, r := range fs.Records() {
			if r.Offset != next || !bytes.Equal(r.Value, value(0, next)) {
				t.Fatalf("record at offset %d with value %q, want offset %d value %q", r.Offset, r.Value, next, value(0, next))
			}
			next++
		}
	}
	if next > shifted {
		t.Fatalf("consumer got to offset %d, past the edited batch at %d", next, shifted)
	}
	t.Logf("consumer stalled at offset %d; the edited batch starts at %d", next, shifted)

	for _, c := range []struct {
		what   string
		offset int64
		key    string
	}{
		{"base offset +3", shifted, m.ObjectKey(0)},
		{"flipped byte", flipped, m.ObjectKey(1)},
		{"deleted object", m.Objects[2].BaseOffset, m.ObjectKey(2)},
	} {
		code, recs := fetchAt(t, cl, p, c.offset)
		if code != kerr.KafkaStorageError.Code {
			t.Errorf("%s: fetch at %d answered %v with %d bytes, want KAFKA_STORAGE_ERROR", c.what, c.offset, kerr.ErrorForCode(code), len(recs))
		}
		waitFor(t, time.Minute, "the broker to log the failed read of "+c.key, func() bool {
			return b.log.contains(`"object":"` + c.key + `"`)
		})
	}
	waitFor(t, time.Minute, "the broker to log the deleted object as missing", func() bool {
		return b.log.contains(`"level":"error"`) && b.log.contains("missing from the bucket")
	})
	if start := startOffset(t, adm, topic, 0); start != 0 {
		t.Fatalf("log start %d, want 0", start)
	}
	// Untouched objects still read.
	if code, recs := fetchAt(t, cl, p, m.Objects[3].BaseOffset); code != 0 || len(recs) == 0 {
		t.Fatalf("fetch of an intact object: %v, %d bytes", kerr.ErrorForCode(code), len(recs))
	}
	b.stop()
}

// startFails runs klite on dir with args and requires it to exit with an
// error before it is ready; it returns the output.
func startFails(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(kliteBin, append([]string{"-listen", "127.0.0.1:0", "-wal", dir, "-log-format", "json"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		out.Write(sc.Bytes())
		out.WriteByte('\n')
		if _, ok := readyAddr(sc.Bytes()); ok {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("klite started, want a refusal:\n%s", out.String())
		}
	}
	var exit *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exit) {
		t.Fatalf("klite exit: %v, want an error exit:\n%s", err, out.String())
	}
	return out.String()
}

// TestTierTwoBrokers: a second broker on the same bucket and prefix
// refuses to start and says whose the prefix is and what to do; started
// with -s3-take-over it takes the prefix, and the first broker, still
// running, stops uploading and says so at Error; restarted, the first
// broker refuses to start.
func TestTierTwoBrokers(t *testing.T) {
	endpoint := startS3(t)
	a := startBroker(t, tierFlags(endpoint)...)
	cl := newFranz(t, a.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	s := bucket(t, endpoint)
	const topic = "two-brokers"
	createTopic(t, adm, topic, 1)
	produceValues(t, cl, topic, 0, 2000, time.Time{})
	waitUploaded(t, s, adm, topic, time.Minute)

	out := startFails(t, t.TempDir(), tierFlags(endpoint)...)
	for _, want := range []string{"owned by", "-s3-prefix", "-s3-take-over"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	owner, err := tier.ReadOwner(testContext(t, time.Minute), s)
	if err != nil {
		t.Fatal(err)
	}

	// The operator insists: B takes over while A still runs.
	bb := startBroker(t, tierFlags(endpoint, "-s3-take-over")...)
	if now, err := tier.ReadOwner(testContext(t, time.Minute), s); err != nil || now.Instance == owner.Instance {
		t.Fatalf("owner after the take over: %v %v (was %v)", now, err, owner)
	}
	ends := tieredEnds(t, s, adm, topic)
	produceValues(t, cl, topic, 2000, 2000, time.Time{}) // acknowledged by A, which may no longer upload
	waitFor(t, time.Minute, "A to notice it lost the prefix", func() bool {
		return a.log.contains("no longer owns its bucket prefix")
	})
	if got := tieredEnds(t, s, adm, topic); got[0] != ends[0] {
		t.Fatalf("A uploaded after losing the prefix: tiered end %d, was %d", got[0], ends[0])
	}
	a.stop()
	if a.log.contains("bucket prefix released") {
		t.Fatal("A released a prefix it no longer owns")
	}
	out = startFails(t, a.dir, tierFlags(endpoint)...)
	if !strings.Contains(out, "owned by") {
		t.Fatalf("A restarted on its dir does not say the prefix is owned by another broker:\n%s", out)
	}
	bb.stop()
}

// TestTierStartWhileS3Down: a broker with local data restarts (after a
// crash, so its prefix is still held) while the bucket answers only 503s:
// it starts and takes produce, and once the bucket is back it claims the
// prefix as the same instance and uploads what it acknowledged.
func TestTierStartWhileS3Down(t *testing.T) {
	endpoint := startS3(t)
	proxy, err := s3fault.New(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	b := startBroker(t, tierFlags(proxy.URL())...)
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	s := bucket(t, endpoint)
	const topic = "start-s3-down"
	createTopic(t, adm, topic, 1)
	produceValues(t, cl, topic, 0, 1000, time.Time{})
	waitUploaded(t, s, adm, topic, time.Minute)
	owner, err := tier.ReadOwner(testContext(t, time.Minute), s)
	if err != nil {
		t.Fatal(err)
	}

	b.kill9()
	proxy.SetMode(s3fault.SlowDown)
	b.restart()
	produceValues(t, cl, topic, 1000, 1000, time.Time{})
	proxy.SetMode(s3fault.Pass)
	waitUploaded(t, s, adm, topic, 2*time.Minute)
	if now, err := tier.ReadOwner(testContext(t, time.Minute), s); err != nil || now.Instance != owner.Instance || now.Released {
		t.Fatalf("owner after the restart %v (%v), before %v", now, err, owner)
	}
	consumeFromZero(t, b.addr, topic, 0, 2000)
	b.stop()
}
