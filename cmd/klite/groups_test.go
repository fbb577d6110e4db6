package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestConsumerGroups consumes a topic through each client's consumer group
// API (the classic protocol: FindCoordinator, JoinGroup, SyncGroup,
// Heartbeat, OffsetCommit, OffsetFetch, LeaveGroup). Each group must see
// every record, and leave committed offsets at the end of every partition
// that survive a broker restart. Two franz-go members share one group.
// The broker must advertise every group API: a registration that goes
// missing fails here rather than skipping the test.

const (
	groupParts   = 4
	groupRecords = 20000
)

// seenSet records which (partition, offset) a group consumed.
type seenSet struct {
	mu   sync.Mutex
	seen map[[2]int64]bool
}

func (s *seenSet) add(p int32, o int64) {
	s.mu.Lock()
	s.seen[[2]int64{int64(p), o}] = true
	s.mu.Unlock()
}

func (s *seenSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func TestConsumerGroups(t *testing.T) {
	b := startBroker(t)
	cl := newFranz(t, b.addr)
	adm := kadm.NewClient(cl)
	ctx := testContext(t, 5*time.Minute)
	vers, err := adm.ApiVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, bv := range vers {
		for _, key := range []int16{8, 9, 10, 11, 12, 13, 14} { // commit, fetch, find, join, heartbeat, leave, sync
			if _, _, ok := bv.KeyVersions(key); !ok {
				t.Fatalf("broker does not advertise api key %d: a group API lost its registration", key)
			}
		}
	}

	produce := func(t *testing.T, topic string) {
		createTopic(t, adm, topic, groupParts)
		for i := 0; i < groupRecords; i++ {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Errorf("produce: %v", err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	checkCommitted := func(t *testing.T, group, topic string) {
		t.Helper()
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		var committed kadm.OffsetResponses
		waitFor(t, time.Minute, "committed offsets at the end", func() bool {
			committed, err = adm.FetchOffsets(ctx, group)
			if err != nil {
				return false
			}
			for p := int32(0); p < groupParts; p++ {
				c, _ := committed.Lookup(topic, p)
				e, _ := ends.Lookup(topic, p)
				if c.Err != nil || c.At != e.Offset {
					return false
				}
			}
			return true
		})
	}
	waitSeen := func(t *testing.T, s *seenSet) {
		t.Helper()
		waitFor(t, 2*time.Minute, fmt.Sprintf("%d records", groupRecords), func() bool { return s.count() == groupRecords })
	}

	t.Run("franz-go two members", func(t *testing.T) {
		const topic, group = "group-franz", "g-franz"
		produce(t, topic)
		s := &seenSet{seen: map[[2]int64]bool{}}
		var wg sync.WaitGroup
		cctx, cancel := context.WithCancel(ctx)
		var members []*kgo.Client
		for m := 0; m < 2; m++ {
			mc := newFranz(t, b.addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitInterval(200*time.Millisecond))
			members = append(members, mc)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for cctx.Err() == nil {
					fs := mc.PollFetches(cctx)
					fs.EachRecord(func(r *kgo.Record) { s.add(r.Partition, r.Offset) })
				}
			}()
		}
		waitSeen(t, s)
		cancel()
		wg.Wait()
		for _, mc := range members {
			if err := mc.CommitUncommittedOffsets(ctx); err != nil {
				t.Errorf("commit: %v", err)
			}
			mc.LeaveGroup()
		}
		checkCommitted(t, group, topic)
		groups, err := adm.DescribeGroups(ctx, group)
		if err != nil || groups[group].Err != nil {
			t.Errorf("describe group: %v %v", err, groups[group].Err)
		}
	})

	t.Run("sarama", func(t *testing.T) {
		const topic, group = "group-sarama", "g-sarama"
		produce(t, topic)
		cfg := saramaConfig()
		cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		cfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
		cg, err := sarama.NewConsumerGroup([]string{b.addr}, group, cfg)
		if err != nil {
			t.Fatal(err)
		}
		s := &seenSet{seen: map[[2]int64]bool{}}
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			for cctx.Err() == nil {
				if err := cg.Consume(cctx, []string{topic}, saramaHandler{s}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		waitSeen(t, s)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume: %v", err)
		}
		if err := cg.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		checkCommitted(t, group, topic)
	})

	t.Run("kafka-go", func(t *testing.T) {
		const topic, group = "group-kafkago", "g-kafkago"
		produce(t, topic)
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: []string{b.addr}, GroupID: group, Topic: topic,
			StartOffset: kafka.FirstOffset, CommitInterval: 200 * time.Millisecond, MaxWait: 200 * time.Millisecond,
		})
		s := &seenSet{seen: map[[2]int64]bool{}}
		for s.count() < groupRecords {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("read: %v (after %d records)", err, s.count())
			}
			s.add(int32(m.Partition), m.Offset)
		}
		if err := r.Close(); err != nil { // commits what was read
			t.Errorf("close: %v", err)
		}
		checkCommitted(t, group, topic)
	})

	t.Run("confluent", func(t *testing.T) {
		const topic, group = "group-confluent", "g-confluent"
		produce(t, topic)
		c, err := ckafka.NewConsumer(&ckafka.ConfigMap{
			"bootstrap.servers": b.addr, "group.id": group, "auto.offset.reset": "earliest",
			"auto.commit.interval.ms": 200,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Subscribe(topic, nil); err != nil {
			t.Fatal(err)
		}
		s := &seenSet{seen: map[[2]int64]bool{}}
		deadline := time.Now().Add(2 * time.Minute)
		for s.count() < groupRecords {
			if time.Now().After(deadline) {
				t.Fatalf("consumed %d of %d", s.count(), groupRecords)
			}
			switch e := c.Poll(100).(type) {
			case *ckafka.Message:
				s.add(e.TopicPartition.Partition, int64(e.TopicPartition.Offset))
			case ckafka.Error:
				if e.IsFatal() {
					t.Fatalf("consumer: %v", e)
				}
			}
		}
		if _, err := c.Commit(); err != nil {
			t.Errorf("commit: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		checkCommitted(t, group, topic)
	})

	// Committed offsets are durable.
	t.Run("restart keeps commits", func(t *testing.T) {
		b.stop()
		b.restart()
		for _, g := range [][2]string{{"g-franz", "group-franz"}, {"g-sarama", "group-sarama"}, {"g-kafkago", "group-kafkago"}, {"g-confluent", "group-confluent"}} {
			checkCommitted(t, g[0], g[1])
		}
	})
	b.stop()
}

type saramaHandler struct{ s *seenSet }

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.s.add(m.Partition, m.Offset)
		sess.MarkMessage(m, "")
	}
	return nil
}
