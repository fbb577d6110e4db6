package main

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// storedBatches fetches a partition of topic from offset 0 with a raw Fetch
// and returns its stored batches as they are on disk.
func storedBatches(t *testing.T, cl *kgo.Client, topic string, partition int32) []kmsg.RecordBatch {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil || td[topic].Err != nil {
		t.Fatalf("metadata of %s: %v %v", topic, err, td[topic].Err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxBytes, req.MaxWaitMillis = 12, 16<<20, 100
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, td[topic].ID // kgo sends v13+, by ID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.PartitionMaxBytes = partition, 16<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch: error %d", p.ErrorCode)
	}
	var batches []kmsg.RecordBatch
	for b := p.RecordBatches; len(b) > 0; {
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(b); err != nil {
			t.Fatalf("stored batch: %v", err)
		}
		batches = append(batches, batch)
		b = b[12+batch.Length:]
	}
	return batches
}

// storedCodecs returns the compression codec of each stored batch of
// partition 0 (the attributes' low three bits) and the records they hold.
func storedCodecs(t *testing.T, cl *kgo.Client, topic string) (codecs []int16, records int) {
	for _, b := range storedBatches(t, cl, topic, 0) {
		codecs = append(codecs, b.Attributes&7)
		records += int(b.NumRecords)
	}
	return codecs, records
}

// Debian's kcat (librdkafka 2.0.2) only compresses when the broker advertises
// Produce v0 (KAFKA-18659): each codec's batches must arrive compressed.
func TestKcatCompresses(t *testing.T) {
	kcat := debianTool(t, "kcat")
	b := startBroker(t)
	cl := newFranz(t, b.addr)
	adm := kadm.NewClient(cl)
	const lines = 200
	var in bytes.Buffer
	for i := range lines {
		in.WriteString(strings.Repeat("compressible ", 8))
		in.WriteByte(byte('a' + i%26))
		in.WriteByte('\n')
	}
	for codec, name := range map[int16]string{1: "gzip", 2: "snappy", 3: "lz4"} {
		t.Run(name, func(t *testing.T) {
			topic := "kcat-" + name
			createTopic(t, adm, topic, 1)
			prod := exec.CommandContext(testContext(t, time.Minute), kcat, "-b", b.addr, "-t", topic, "-p", "0", "-P",
				"-z", name, "-X", "linger.ms=50")
			prod.Stdin = bytes.NewReader(in.Bytes())
			if out, err := prod.CombinedOutput(); err != nil {
				t.Fatalf("kcat -P: %v\n%s", err, out)
			}
			codecs, n := storedCodecs(t, cl, topic)
			if n != lines {
				t.Fatalf("%d records stored, want %d", n, lines)
			}
			for i, c := range codecs {
				if c != codec {
					t.Fatalf("batch %d of %d stored with codec %d, want %d (%s)", i, len(codecs), c, codec, name)
				}
			}
		})
	}
}

// produceN produces n records of 100 bytes to partition p of topic and
// waits for every ack.
func produceN(t *testing.T, cl *kgo.Client, topic string, p int32, n int) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: bytes.Repeat([]byte{byte('a' + i%26)}, 100)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// The admin APIs of a one-node cluster through kadm, sarama's
// ClusterAdmin and confluent-kafka-go's AdminClient against the binary:
// DescribeCluster, DescribeLogDirs, ElectLeaders, the reassignment APIs and
// OffsetForLeaderEpoch, whose epoch must read the same after a restart.
func TestAdminAPIsOneNode(t *testing.T) {
	b := startBroker(t)
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kadm.NewClient(cl)
	const topic = "admin-apis"
	createTopic(t, adm, topic, 2)
	produceN(t, cl, topic, 1, 50)
	ctx := testContext(t, time.Minute)

	scfg := saramaConfig()
	scfg.Version = sarama.V3_6_0_0
	sadm, err := sarama.NewClusterAdmin([]string{b.addr}, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sadm.Close()
	cadm, err := ckafka.NewAdminClient(&ckafka.ConfigMap{"bootstrap.servers": b.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cadm.Close()

	t.Run("DescribeCluster", func(t *testing.T) {
		res, err := cadm.DescribeCluster(ctx, ckafka.SetAdminOptionIncludeAuthorizedOperations(true))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Nodes) != 1 || res.Controller == nil || res.Controller.ID != res.Nodes[0].ID || res.ClusterID == nil || *res.ClusterID == "" {
			t.Fatalf("confluent DescribeCluster: %+v", res)
		}
		if len(res.AuthorizedOperations) == 0 {
			t.Fatal("confluent DescribeCluster: no authorized operations")
		}
		req := kmsg.NewPtrDescribeClusterRequest()
		req.EndpointType = 1
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 || len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != int32(res.Nodes[0].ID) || resp.ClusterID != *res.ClusterID {
			t.Fatalf("franz-go DescribeCluster: %+v %v", resp, err)
		}
	})

	t.Run("DescribeLogDirs", func(t *testing.T) {
		dirs, err := adm.DescribeAllLogDirs(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var sizes [2]int64
		n := 0
		dirs.Each(func(d kadm.DescribedLogDir) {
			n++
			if d.Err != nil || d.TotalBytes <= 0 || d.UsableBytes <= 0 || d.UsableBytes > d.TotalBytes {
				t.Fatalf("kadm dir %+v", d)
			}
			for p := range int32(2) {
				dp, ok := d.Topics.Lookup(topic, p)
				if !ok {
					t.Fatalf("kadm: partition %d missing", p)
				}
				sizes[p] = dp.Size
			}
		})
		if n != 1 || sizes[0] != 0 || sizes[1] < 50*100 {
			t.Fatalf("kadm: %d dirs, sizes %v", n, sizes)
		}
		sdirs, err := sadm.DescribeLogDirs([]int32{1})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ds := range sdirs {
			for _, d := range ds {
				for _, tp := range d.Topics {
					for _, p := range tp.Partitions {
						if tp.Topic == topic && p.PartitionID == 1 {
							found = p.Size == sizes[1]
						}
					}
				}
			}
		}
		if !found {
			t.Fatalf("sarama DescribeLogDirs: %+v, want partition 1 of %d bytes", sdirs, sizes[1])
		}
		produceN(t, cl, topic, 1, 10)
		dirs, err = adm.DescribeAllLogDirs(ctx, kadm.TopicsSet{topic: {1: {}}})
		if err != nil {
			t.Fatal(err)
		}
		dirs.Each(func(d kadm.DescribedLogDir) {
			if dp, _ := d.Topics.Lookup(topic, 1); dp.Size <= sizes[1] {
				t.Fatalf("size %d after producing more, was %d", dp.Size, sizes[1])
			}
		})
	})

	t.Run("ElectLeaders", func(t *testing.T) {
		res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}, 1: {}}})
		if err != nil {
			t.Fatal(err)
		}
		for p := range int32(2) {
			if r := res[topic][p]; !errors.Is(r.Err, kerr.ElectionNotNeeded) {
				t.Fatalf("kadm partition %d: %+v", p, r)
			}
		}
		sres, err := sadm.ElectLeaders(sarama.PreferredElection, map[string][]int32{topic: {0, 7}})
		if err != nil {
			t.Fatal(err)
		}
		if sres[topic][0].ErrorCode != sarama.ErrElectionNotNeeded || sres[topic][7].ErrorCode != sarama.ErrUnknownTopicOrPartition {
			t.Fatalf("sarama: %+v %+v", sres[topic][0], sres[topic][7])
		}
		name := topic
		cres, err := cadm.ElectLeaders(ctx, ckafka.NewElectLeadersRequest(ckafka.ElectionTypePreferred,
			[]ckafka.TopicPartition{{Topic: &name, Partition: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		if len(cres.TopicPartitions) != 1 || cres.TopicPartitions[0].Error == nil ||
			cres.TopicPartitions[0].Error.(ckafka.Error).Code() != ckafka.ErrElectionNotNeeded {
			t.Fatalf("confluent: %+v", cres.TopicPartitions)
		}
	})

	t.Run("Reassignments", func(t *testing.T) {
		node := int32(1) // the binary's default -node-id
		var req kadm.AlterPartitionAssignmentsReq
		req.Assign(topic, 0, []int32{node})
		req.Assign(topic, 1, []int32{node, node + 1})
		res, err := adm.AlterPartitionAssignments(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res[topic][0].Err != nil || !errors.Is(res[topic][1].Err, kerr.InvalidReplicaAssignment) {
			t.Fatalf("kadm: %+v", res)
		}
		if err := sadm.AlterPartitionReassignments(topic, [][]int32{{node}, {node}}); err != nil {
			t.Fatalf("sarama reassign to the only broker: %v", err)
		}
		if err := sadm.AlterPartitionReassignments(topic, [][]int32{{node + 5}}); err == nil {
			t.Fatal("sarama: reassignment to a missing broker accepted")
		}
		lres, err := adm.ListPartitionReassignments(ctx, nil)
		if err != nil || len(lres) != 0 {
			t.Fatalf("kadm list: %+v %v", lres, err)
		}
		sl, err := sadm.ListPartitionReassignments(topic, []int32{0, 1})
		if err != nil || len(sl[topic]) != 0 {
			t.Fatalf("sarama list: %+v %v", sl, err)
		}
	})

	checkEpochs := func(t *testing.T, cl *kgo.Client, end int64) {
		adm := kadm.NewClient(cl)
		var req kadm.OffsetForLeaderEpochRequest
		req.Add(topic, 1, 0)
		req.Add(topic, 0, 3)
		res, err := adm.OffsetForLeaderEpoch(testContext(t, 30*time.Second), req)
		if err != nil {
			t.Fatal(err)
		}
		if r := res[topic][1]; r.Err != nil || r.LeaderEpoch != 0 || r.EndOffset != end {
			t.Fatalf("epoch 0: %+v, want end %d", r, end)
		}
		if r := res[topic][0]; r.Err != nil || r.LeaderEpoch != -1 || r.EndOffset != -1 {
			t.Fatalf("epoch 3 (newer than any): %+v", r)
		}
		// The epoch stamped on every stored batch is the one answered.
		n := 0
		for _, b := range storedBatches(t, cl, topic, 1) {
			if b.PartitionLeaderEpoch != 0 {
				t.Fatalf("batch at %d stored with leader epoch %d", b.FirstOffset, b.PartitionLeaderEpoch)
			}
			n += int(b.NumRecords)
		}
		if int64(n) != end {
			t.Fatalf("fetched %d records, want %d", n, end)
		}
	}
	var epochEnd int64
	t.Run("OffsetForLeaderEpoch", func(t *testing.T) {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		end, _ := ends.Lookup(topic, 1)
		if end.Offset < 50 {
			t.Fatalf("end offset %d", end.Offset)
		}
		checkEpochs(t, cl, end.Offset)
		epochEnd = end.Offset
	})
	// After kill -9 and restart the epoch and every batch's stamp read the same.
	b.kill9()
	b.restart()
	checkEpochs(t, newFranz(t, b.addr), epochEnd)
}

// The internal topics (__consumer_offsets, __transaction_state) are listed
// as Kafka lists them: internal, 50 partitions led by this broker, hidden
// by kadm.ListTopics and listed by ListTopicsWithInternal, sarama and
// librdkafka; clients cannot write to them or delete them. A regex
// subscription matched by the client (classic group) skips them; one
// matched by the broker (KIP-848) is assigned them, as in Kafka, and reads
// them as empty logs (kafka/internal_topics.go).
func TestInternalTopicsListed(t *testing.T) {
	b := startBroker(t, kip848Flags...)
	cl := newFranz(t, b.addr)
	adm := kadm.NewClient(cl)
	ctx := testContext(t, time.Minute)
	internals := []string{"__consumer_offsets", "__transaction_state"}
	createTopic(t, adm, "user-a", 1)
	createTopic(t, adm, "user-b", 1)

	td, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if td.Has(internals[0]) || td.Has(internals[1]) || !td.Has("user-a") {
		t.Fatalf("kadm ListTopics: %v", td.Names())
	}
	td, err = adm.ListTopicsWithInternal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, internal := range internals {
		co, ok := td[internal]
		if !ok || !co.IsInternal || len(co.Partitions) != 50 || co.ID == (kadm.TopicID{}) {
			t.Fatalf("kadm ListTopicsWithInternal %s: %+v", internal, co)
		}
		for _, p := range co.Partitions {
			if p.Leader != 1 || p.Err != nil {
				t.Fatalf("%s: partition %+v", internal, p)
			}
		}
	}

	scfg := saramaConfig()
	scfg.Version = sarama.V3_6_0_0
	sadm, err := sarama.NewClusterAdmin([]string{b.addr}, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sadm.Close()
	// ListTopics is Metadata then DescribeConfigs of every topic listed.
	st, err := sadm.ListTopics()
	if err != nil {
		t.Fatalf("sarama ListTopics: %v", err)
	}
	cadm, err := ckafka.NewAdminClient(&ckafka.ConfigMap{"bootstrap.servers": b.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cadm.Close()
	md, err := cadm.GetMetadata(nil, true, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, internal := range internals {
		if d, ok := st[internal]; !ok || d.NumPartitions != 50 || d.ConfigEntries["cleanup.policy"] == nil || *d.ConfigEntries["cleanup.policy"] != "compact" {
			t.Fatalf("sarama ListTopics %s: %+v", internal, st[internal])
		}
		if err := sadm.DeleteTopic(internal); err == nil {
			t.Fatalf("sarama deleted %s", internal)
		}
		if m, ok := md.Topics[internal]; !ok || len(m.Partitions) != 50 || m.Error.Code() != ckafka.ErrNoError {
			t.Fatalf("librdkafka metadata %s: %+v", internal, m)
		}
		// Not writable (kgo produces by topic ID, v13).
		res := cl.ProduceSync(ctx, &kgo.Record{Topic: internal, Value: []byte("x")})
		if err := res.FirstErr(); !errors.Is(err, kerr.InvalidTopicException) {
			t.Fatalf("produce to %s: %v", internal, err)
		}
	}

	// A regex subscription (kgo's, client side, in a group) reads the user
	// topics and skips the internal one.
	produceN(t, cl, "user-a", 0, 3)
	produceN(t, cl, "user-b", 0, 4)
	cons := newFranz(t, b.addr, kgo.ConsumeRegex(), kgo.ConsumeTopics(".*"), kgo.ConsumerGroup("regex-group"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]int{}
	for n := 0; n < 7; {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %v of 7: %v", got, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("%s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got[r.Topic]++; n++ })
	}
	if got["user-a"] != 3 || got["user-b"] != 4 || len(got) != 2 {
		t.Fatalf("regex consumed %v", got)
	}
	if topics := cons.GetConsumeTopics(); slices.Contains(topics, internals[0]) || slices.Contains(topics, internals[1]) {
		t.Fatalf("regex subscription includes an internal topic: %v", topics)
	}
	// A KIP-848 regex (matched by the broker) includes them, as Kafka's
	// does; they read as empty logs, with no errors.
	cons848 := newFranz(t, b.addr, kgo.ServerSideBalancer(), kgo.ConsumeRegex(), kgo.ConsumeTopics(".*"),
		kgo.ConsumerGroup("regex-848"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got848 := map[string]int{}
	for n := 0; n < 7; {
		fs := cons848.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("KIP-848 regex consumed %v of 7: %v", got848, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("KIP-848 %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got848[r.Topic]++; n++ })
	}
	desc := kmsg.NewPtrConsumerGroupDescribeRequest()
	desc.Groups = []string{"regex-848"}
	dresp, err := desc.RequestWith(ctx, cl)
	if err != nil || len(dresp.Groups) != 1 || len(dresp.Groups[0].Members) != 1 {
		t.Fatalf("ConsumerGroupDescribe: %v %+v", err, dresp)
	}
	waitFor(t, 30*time.Second, "KIP-848 regex assigned the internal topics", func() bool {
		a := assignedTopics(t, cl, "regex-848")
		return a[internals[0]] == 50 && a[internals[1]] == 50
	})
	if got848["user-a"] != 3 || got848["user-b"] != 4 || len(got848) != 2 {
		t.Fatalf("KIP-848 regex consumed %v", got848)
	}
}

// ListOffsets by timestamp and by max timestamp (-3) answer with the exact
// record inside a batch, compressed or not, through kadm and librdkafka.
func TestListOffsetsExactRecord(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, time.Minute)
	cadm, err := ckafka.NewAdminClient(&ckafka.ConfigMap{"bootstrap.servers": b.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cadm.Close()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	// One batch of 5 records at base+0,10,50(max),20,30 ms: the max is in
	// the middle; the first record at or after 5 ms is offset 1, after 11
	// ms offset 2 (50 ms comes before the 20 ms record in offset order).
	deltas := []time.Duration{0, 10, 50, 20, 30}
	for _, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		topic := "exact-" + strconv.Itoa(int(codecID(codec)))
		t.Run(topic, func(t *testing.T) {
			cl := newFranz(t, b.addr, kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(time.Second))
			adm := kadm.NewClient(cl)
			createTopic(t, adm, topic, 1)
			var recs []*kgo.Record
			for _, d := range deltas {
				recs = append(recs, &kgo.Record{Topic: topic, Value: bytes.Repeat([]byte("v"), 500), Timestamp: base.Add(d * time.Millisecond)}) // compressible
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if batches := storedBatches(t, cl, topic, 0); len(batches) != 1 || int8(batches[0].Attributes&7) != codecID(codec) {
				t.Fatalf("%d batches (%+v), want the 5 records in one of codec %d", len(batches), batches, codecID(codec))
			}
			at := func(ms int64) kadm.ListedOffset {
				lo, err := adm.ListOffsetsAfterMilli(ctx, base.UnixMilli()+ms, topic)
				if err != nil {
					t.Fatal(err)
				}
				o, _ := lo.Lookup(topic, 0)
				return o
			}
			for _, c := range []struct{ ms, off int64 }{{0, 0}, {5, 1}, {10, 1}, {11, 2}, {40, 2}, {50, 2}} {
				if o := at(c.ms); o.Err != nil || o.Offset != c.off {
					t.Fatalf("kadm after %d ms: offset %d (%v), want %d", c.ms, o.Offset, o.Err, c.off)
				}
			}
			mx, err := adm.ListMaxTimestampOffsets(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			if o, _ := mx.Lookup(topic, 0); o.Offset != 2 || o.Timestamp != base.UnixMilli()+50 {
				t.Fatalf("kadm max timestamp: %+v, want offset 2", o)
			}
			name := topic
			tp := ckafka.TopicPartition{Topic: &name, Partition: 0}
			for spec, want := range map[ckafka.OffsetSpec]int64{
				ckafka.MaxTimestampOffsetSpec:                          2,
				ckafka.NewOffsetSpecForTimestamp(base.UnixMilli() + 5): 1,
			} {
				res, err := cadm.ListOffsets(ctx, map[ckafka.TopicPartition]ckafka.OffsetSpec{tp: spec})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range res.ResultInfos {
					if r.Error.Code() != ckafka.ErrNoError || int64(r.Offset) != want {
						t.Fatalf("librdkafka spec %d: %+v, want offset %d", spec, r, want)
					}
				}
			}
		})
	}
}

func codecID(c kgo.CompressionCodec) int8 {
	switch c {
	case kgo.GzipCompression():
		return 1
	case kgo.SnappyCompression():
		return 2
	case kgo.Lz4Compression():
		return 3
	case kgo.ZstdCompression():
		return 4
	}
	return 0
}

// Fetches whose byte limits cut a partition's next batch get a partial
// batch (as Kafka sends): franz-go and librdkafka consumers with small
// fetch limits still read every record of every partition once, in order.
func TestFetchPartialBatches(t *testing.T) {
	b := startBroker(t)
	const topic, parts, perPart = "partial", 3, 40
	pcl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(50*time.Millisecond))
	createTopic(t, kadm.NewClient(pcl), topic, parts)
	ctx := testContext(t, time.Minute)
	for round := range 4 { // batches of 10 records of 1000 bytes: ~10 KB each
		var recs []*kgo.Record
		for p := range int32(parts) {
			for i := range 10 {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("%d-%04d-%s", p, round*10+i, strings.Repeat("x", 990)))})
			}
		}
		if err := pcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, who string, got map[int32][]string) {
		for p := range int32(parts) {
			if len(got[p]) != perPart {
				t.Fatalf("%s: partition %d: %d records, want %d", who, p, len(got[p]), perPart)
			}
			for i, v := range got[p] {
				if want := fmt.Sprintf("%d-%04d-", p, i); !strings.HasPrefix(v, want) {
					t.Fatalf("%s: partition %d record %d is %.8s, want %s", who, p, i, v, want)
				}
			}
		}
	}

	t.Run("franz-go", func(t *testing.T) {
		// 15 KB per fetch: one whole batch, then part of the next
		// partition's.
		cl := newFranz(t, b.addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxBytes(15000), kgo.FetchMaxPartitionBytes(15000))
		got := map[int32][]string{}
		for n := 0; n < parts*perPart; {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d: %v", n, ctx.Err())
			}
			fs.EachError(func(topic string, p int32, err error) { t.Fatalf("%s/%d: %v", topic, p, err) })
			fs.EachRecord(func(r *kgo.Record) { got[r.Partition] = append(got[r.Partition], string(r.Value)); n++ })
		}
		check(t, "franz-go", got)
	})

	t.Run("librdkafka", func(t *testing.T) {
		c, err := ckafka.NewConsumer(&ckafka.ConfigMap{
			"bootstrap.servers": b.addr, "group.id": "partial-rdk", "enable.auto.commit": false,
			"auto.offset.reset": "earliest", "fetch.max.bytes": 15000, "max.partition.fetch.bytes": 15000, "message.max.bytes": 12000,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		name := topic
		var tps []ckafka.TopicPartition
		for p := range int32(parts) {
			tps = append(tps, ckafka.TopicPartition{Topic: &name, Partition: p, Offset: ckafka.OffsetBeginning})
		}
		if err := c.Assign(tps); err != nil {
			t.Fatal(err)
		}
		got := map[int32][]string{}
		for n := 0; n < parts*perPart; {
			if ctx.Err() != nil {
				t.Fatalf("consumed %d: %v", n, ctx.Err())
			}
			switch e := c.Poll(100).(type) {
			case *ckafka.Message:
				got[e.TopicPartition.Partition] = append(got[e.TopicPartition.Partition], string(e.Value))
				n++
			case ckafka.Error:
				if e.IsFatal() {
					t.Fatal(e)
				}
			}
		}
		check(t, "librdkafka", got)
	})
}

// Deleting a topic removes every group's committed offsets of it, durably:
// after the topic is created again (and after kill -9 and a restart) kadm
// and sarama see no committed offset for it, while other topics' stay.
func TestDeletedTopicOffsetsRemoved(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, time.Minute)
	adm := kadm.NewClient(newFranz(t, b.addr))
	createTopic(t, adm, "gone", 2)
	createTopic(t, adm, "kept", 1)
	var offs kadm.Offsets
	offs.AddOffset("gone", 0, 11, -1)
	offs.AddOffset("gone", 1, 12, -1)
	offs.AddOffset("kept", 0, 13, -1)
	for _, g := range []string{"g1", "g2"} {
		if err := adm.CommitAllOffsets(ctx, g, offs); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := adm.DeleteTopics(ctx, "gone"); err != nil || res["gone"].Err != nil {
		t.Fatalf("delete: %v %v", err, res)
	}
	createTopic(t, adm, "gone", 2)

	check := func(t *testing.T, adm *kadm.Client) {
		t.Helper()
		for _, g := range []string{"g1", "g2"} {
			fetched, err := adm.FetchOffsets(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			if o, ok := fetched.Lookup("gone", 0); ok && o.At >= 0 {
				t.Fatalf("kadm %s: offset %d of the deleted topic", g, o.At)
			}
			if o, ok := fetched.Lookup("kept", 0); !ok || o.At != 13 {
				t.Fatalf("kadm %s: kept/0 at %+v, want 13", g, o)
			}
		}
		scfg := saramaConfig()
		scfg.Version = sarama.V3_6_0_0
		sadm, err := sarama.NewClusterAdmin([]string{b.addr}, scfg)
		if err != nil {
			t.Fatal(err)
		}
		defer sadm.Close()
		res, err := sadm.ListConsumerGroupOffsets("g1", map[string][]int32{"gone": {0, 1}, "kept": {0}})
		if err != nil {
			t.Fatal(err)
		}
		for p := range int32(2) {
			if blk := res.GetBlock("gone", p); blk == nil || blk.Offset != -1 {
				t.Fatalf("sarama gone/%d: %+v, want -1", p, blk)
			}
		}
		if blk := res.GetBlock("kept", 0); blk == nil || blk.Offset != 13 {
			t.Fatalf("sarama kept/0: %+v", blk)
		}
	}
	check(t, adm)
	b.kill9()
	b.restart()
	check(t, kadm.NewClient(newFranz(t, b.addr)))
}
