package main

// Internal topics in consumer groups, against the real binary. Kafka 4.x
// resolves a KIP-848 SubscribedTopicRegex against every topic name, the
// internal ones included, and assigns their partitions (franz-go's
// Test848RegexBrokerResolves expects exactly this). klite assigns them too
// and serves each internal partition as an empty log, so the members
// consume their real topics and wait on the internal partitions without
// errors (kafka/internal_topics.go).

import (
	"context"
	"errors"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

const offsetsTopic = "__consumer_offsets"

// assignedTopics is the set of topic names a KIP-848 group's members are
// assigned, by ConsumerGroupDescribe and the topic IDs Metadata gives.
func assignedTopics(t testing.TB, cl *kgo.Client, group string) map[string]int {
	t.Helper()
	d := describeConsumerGroup(t, cl, group)
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(testContext(t, 10*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	names := map[[16]byte]string{}
	for _, mt := range md.Topics {
		if mt.Topic != nil {
			names[mt.TopicID] = *mt.Topic
		}
	}
	out := map[string]int{}
	for _, m := range d.Members {
		for _, tp := range m.Assignment.TopicPartitions {
			out[names[tp.TopicID]] += len(tp.Partitions)
		}
	}
	return out
}

func TestKIP848RegexInternalTopics(t *testing.T) {
	b := startBroker(t, append(kip848Flags, cgFlags...)...)
	cl := newFranz(t, b.addr)
	adm := kadm.NewClient(cl)
	const topic = "ix-a"
	createTopic(t, adm, topic, cgParts)
	produceCGRecords(t, b.addr, topic, 0, 600)

	t.Run("franz", func(t *testing.T) {
		const group = "ix-franz"
		c := newFranz(t, b.addr,
			kgo.ConsumerGroup(group), kgo.ServerSideBalancer(),
			kgo.ConsumeRegex(), kgo.ConsumeTopics("ix-.*", offsetsTopic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.HeartbeatInterval(300*time.Millisecond), kgo.FetchMaxWait(200*time.Millisecond),
			kgo.DisableAutoCommit())
		s := newCGSeen()
		consuming := func() bool {
			for _, tp := range c.GetConsumeTopics() {
				if tp == offsetsTopic {
					return true
				}
			}
			return false
		}
		ctx := testContext(t, cgWait)
		for ctx.Err() == nil && (s.count() < 600 || !consuming()) {
			fs := c.PollFetches(ctx)
			for _, e := range fs.Errors() {
				if ctx.Err() == nil {
					t.Fatalf("fetch error on %s/%d: %v", e.Topic, e.Partition, e.Err)
				}
			}
			fs.EachRecord(func(r *kgo.Record) {
				if r.Topic != topic {
					t.Fatalf("record from %s", r.Topic)
				}
				s.add(r.Value)
			})
		}
		s.check(t, 600)
		if !consuming() {
			t.Fatalf("%s not consumed by the franz-go member", offsetsTopic)
		}
		if n := assignedTopics(t, cl, group)[offsetsTopic]; n != 50 {
			t.Fatalf("broker assigned %d partitions of %s", n, offsetsTopic)
		}
		if err := c.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}
		c.LeaveGroup()
		// Commits of internal partitions are taken, as Kafka takes
		// commits for any existing topic (here a standalone commit, once
		// the group is empty).
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: offsetsTopic, Partition: 4, At: 0, LeaderEpoch: -1})
		waitFor(t, cgWait, "commit of "+offsetsTopic, func() bool {
			r, err := adm.CommitOffsets(ctx, group, offs)
			if err == nil {
				err = r.Error()
			}
			if errors.Is(err, kerr.UnknownMemberID) {
				return false // the member's leave is not in yet
			}
			if err != nil {
				t.Fatalf("commit of %s/4: %v", offsetsTopic, err)
			}
			return true
		})
		fo, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := fo.Lookup(topic, 0); !ok || o.Err != nil || o.At <= 0 {
			t.Errorf("commit of %s/0: %+v", topic, o)
		}
		if o, ok := fo.Lookup(offsetsTopic, 4); !ok || o.Err != nil || o.At != 0 {
			t.Errorf("commit of %s/4: %+v", offsetsTopic, o)
		}
	})

	t.Run("confluent", func(t *testing.T) {
		const group = "ix-ck"
		conf := ckafka.ConfigMap{
			"bootstrap.servers":  b.addr,
			"group.id":           group,
			"group.protocol":     "consumer",
			"auto.offset.reset":  "earliest",
			"enable.auto.commit": false,
		}
		s := newCGSeen()
		c, err := ckafka.NewConsumer(&conf)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// librdkafka sends a "^" subscription to the broker as a regex.
		if err := c.Subscribe("^(ix-.*|__consumer_offsets)$", nil); err != nil {
			t.Fatal(err)
		}
		internalAssigned := func() bool {
			parts, err := c.Assignment()
			if err != nil {
				return false
			}
			n := 0
			for _, p := range parts {
				if p.Topic != nil && *p.Topic == offsetsTopic {
					n++
				}
			}
			return n == 50
		}
		ctx := testContext(t, cgWait)
		for ctx.Err() == nil && (s.count() < 600 || !internalAssigned()) {
			switch ev := c.Poll(100).(type) {
			case *ckafka.Message:
				if ev.TopicPartition.Error != nil {
					t.Fatalf("confluent message error: %v", ev.TopicPartition)
				}
				if *ev.TopicPartition.Topic != topic {
					t.Fatalf("record from %s", *ev.TopicPartition.Topic)
				}
				s.add(ev.Value)
			case ckafka.Error:
				// Partition-level fetch and offset errors surface here.
				t.Fatalf("confluent error: %v", ev)
			}
		}
		s.check(t, 600)
		if !internalAssigned() {
			t.Fatalf("%s not assigned to the librdkafka member", offsetsTopic)
		}
		if n := assignedTopics(t, cl, group)[offsetsTopic]; n != 50 {
			t.Fatalf("broker assigned %d partitions of %s", n, offsetsTopic)
		}
		// Its position on an internal partition: the empty log's start.
		name := offsetsTopic
		pos, err := c.Committed([]ckafka.TopicPartition{{Topic: &name, Partition: 7}}, 10000)
		if err != nil || len(pos) != 1 || pos[0].Error != nil {
			t.Fatalf("committed of %s/7: %v %v", offsetsTopic, pos, err)
		}
	})

	// What the consumers saw, by hand: an empty log.
	t.Run("empty log", func(t *testing.T) {
		ctx := testContext(t, 30*time.Second)
		for _, at := range []func(context.Context, ...string) (kadm.ListedOffsets, error){adm.ListStartOffsets, adm.ListEndOffsets} {
			lo, err := at(ctx, offsetsTopic)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			lo.Each(func(o kadm.ListedOffset) {
				n++
				if o.Err != nil || o.Offset != 0 {
					t.Errorf("list offsets %s/%d: %d %v", o.Topic, o.Partition, o.Offset, o.Err)
				}
			})
			if n != 50 {
				t.Errorf("list offsets of %d partitions", n)
			}
		}
		// By timestamp: no record, offset -1 (kadm would turn it into
		// the end offset).
		lreq := kmsg.NewPtrListOffsetsRequest()
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = offsetsTopic
		for i, ts := range []int64{0, -3} { // a time, and max timestamp
			lp := kmsg.NewListOffsetsRequestTopicPartition()
			lp.Partition, lp.Timestamp = int32(3+i), ts
			lt.Partitions = append(lt.Partitions, lp)
		}
		lreq.Topics = append(lreq.Topics, lt)
		lresp, err := lreq.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range lresp.Topics[0].Partitions {
			if p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 {
				t.Errorf("list offsets by time: %+v", p)
			}
		}

		byName := newFranz(t, b.addr, kgo.MaxVersions(kversion.V3_0_0())) // Fetch v12
		for _, tc := range []struct {
			version int16
			offset  int64
			code    int16
		}{
			{12, 0, 0}, {12, 1, kerr.OffsetOutOfRange.Code},
			{16, 0, 0}, {16, 5, kerr.OffsetOutOfRange.Code},
		} {
			req := kmsg.NewPtrFetchRequest()
			req.Version = tc.version
			req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 50, 1, 1<<20
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = offsetsTopic
			if tc.version >= 13 {
				tds, err := adm.ListTopicsWithInternal(ctx, offsetsTopic)
				if err != nil {
					t.Fatal(err)
				}
				rt.TopicID = tds[offsetsTopic].ID
			}
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 9, tc.offset, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			by := cl
			if tc.version < 13 {
				by = byName
			}
			resp, err := req.RequestWith(ctx, by)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
				t.Fatalf("fetch v%d: %+v", tc.version, resp)
			}
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != tc.code || len(p.RecordBatches) != 0 {
				t.Errorf("fetch v%d at %d: code %d, %d bytes, want code %d", tc.version, tc.offset, p.ErrorCode, len(p.RecordBatches), tc.code)
			}
			if tc.code == 0 && (p.HighWatermark != 0 || p.LogStartOffset != 0 || p.LastStableOffset != 0) {
				t.Errorf("fetch v%d watermarks: %+v", tc.version, p)
			}
		}
	})
}
