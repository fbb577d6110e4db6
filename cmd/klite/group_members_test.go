package main

// Consumer groups against the real binary with real clients: several
// members consume every record, no partition is given to two members of one
// generation, commits resume after member and broker restarts (kill -9),
// and a churn test where members join, leave and crash while records flow.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	cgParts   = 6
	cgRecords = 3000
	cgWait    = 90 * time.Second
)

// cgFlags keep rebalances quick: a short initial delay and session
// timeouts clients can set low.
var cgFlags = []string{"-group-initial-rebalance-delay", "200ms", "-group-min-session-timeout", "1s"}

// produceCGRecords writes n records round-robin over cgParts
// partitions; the value names the record.
func produceCGRecords(t testing.TB, addr, topic string, from, n int) {
	t.Helper()
	cl := newFranz(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := testContext(t, time.Minute)
	for i := from; i < from+n; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i % cgParts), Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// cgSeen records consumed records by value and checks generation ownership.
type cgSeen struct {
	mu     sync.Mutex
	seen   map[string]int
	owners map[[2]int64]string // (generation, partition) -> member
	errs   []string
}

func newCGSeen() *cgSeen {
	return &cgSeen{seen: map[string]int{}, owners: map[[2]int64]string{}}
}

func (s *cgSeen) add(v []byte) {
	s.mu.Lock()
	s.seen[string(v)]++
	s.mu.Unlock()
}

func (s *cgSeen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// own records that member got partition p in generation gen.
func (s *cgSeen) own(gen int32, p int32, member string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]int64{int64(gen), int64(p)}
	if prev, ok := s.owners[k]; ok && prev != member {
		s.errs = append(s.errs, fmt.Sprintf("partition %d given to %s and %s in generation %d", p, prev, member, gen))
	}
	s.owners[k] = member
}

func (s *cgSeen) check(t testing.TB, n int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.errs {
		t.Error(e)
	}
	for i := 0; i < n; i++ {
		if s.seen[strconv.Itoa(i)] == 0 {
			t.Fatalf("record %d never consumed (%d of %d seen)", i, len(s.seen), n)
		}
	}
}

func waitCGSeen(t testing.TB, s *cgSeen, n int) {
	t.Helper()
	waitFor(t, cgWait, fmt.Sprintf("%d records consumed", n), func() bool { return s.count() >= n })
}

// waitCGCommitted waits until the group's committed offsets, summed over
// all partitions, reach want.
func waitCGCommitted(t testing.TB, adm *kadm.Client, group string, want int64) {
	t.Helper()
	waitFor(t, cgWait, "commits at the end offsets", func() bool {
		offs, err := adm.FetchOffsets(testContext(t, 10*time.Second), group)
		if err != nil {
			return false
		}
		total := int64(0)
		offs.Each(func(o kadm.OffsetResponse) { total += o.At })
		return total == want
	})
}

// cgFranzMember runs a franz-go group consumer until stop is called.
func cgFranzMember(t testing.TB, addr, group, topic string, s *cgSeen, opts ...kgo.Opt) (cl *kgo.Client, stop func()) {
	t.Helper()
	var c *kgo.Client
	base := []kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(300 * time.Millisecond),
		kgo.RebalanceTimeout(20 * time.Second), kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			id, gen := cl.GroupMetadata()
			for _, p := range m[topic] {
				s.own(gen, p, id)
			}
		}),
	}
	c, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(addr)}, base...), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := c.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) { s.add(r.Value) })
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer ccancel()
			if err := c.CommitUncommittedOffsets(cctx); err != nil {
				t.Errorf("final commit: %v", err)
			}
			c.Close()
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// checkCGCommitted requires the group's committed offsets to be the topic's
// end offsets.
func checkCGCommitted(t testing.TB, adm *kadm.Client, group, topic string) kadm.OffsetResponses {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < cgParts; p++ {
		o, ok := offs.Lookup(topic, p)
		e, _ := ends.Lookup(topic, p)
		if !ok || o.Err != nil || o.At != e.Offset {
			t.Errorf("%s/%d: committed %d (%v, found %v), end %d", topic, p, o.At, o.Err, ok, e.Offset)
		}
	}
	return offs
}

func TestGroupFranz(t *testing.T) {
	for _, tc := range []struct {
		name string
		bal  kgo.GroupBalancer
	}{
		{"eager-range", kgo.RangeBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, cgFlags...)
			adm := kadm.NewClient(newFranz(t, b.addr))
			topic, group := "gf-"+tc.name, "group-"+tc.name
			createTopic(t, adm, topic, cgParts)
			produceCGRecords(t, b.addr, topic, 0, cgRecords)
			s := newCGSeen()
			var stops []func()
			for i := 0; i < 3; i++ {
				_, stop := cgFranzMember(t, b.addr, group, topic, s, kgo.Balancers(tc.bal))
				stops = append(stops, stop)
				// Later members join a group that is already consuming.
				waitFor(t, cgWait, "progress", func() bool { return s.count() > 0 })
			}
			waitCGSeen(t, s, cgRecords)

			// The described group is Stable with three members.
			ctx := testContext(t, 30*time.Second)
			waitFor(t, cgWait, "three stable members", func() bool {
				d, err := adm.DescribeGroups(ctx, group)
				return err == nil && d[group].State == "Stable" && len(d[group].Members) == 3
			})
			for _, stop := range stops {
				stop()
			}
			s.check(t, cgRecords)
			checkCGCommitted(t, adm, group, topic)

			// A member restart resumes from the commits: only new records.
			produceCGRecords(t, b.addr, topic, cgRecords, 600)
			s2 := newCGSeen()
			_, stop := cgFranzMember(t, b.addr, group, topic, s2, kgo.Balancers(tc.bal))
			waitCGSeen(t, s2, 600)
			stop()
			for v := range s2.seen {
				if i, _ := strconv.Atoi(v); i < cgRecords {
					t.Errorf("record %d consumed again after the restart", i)
				}
			}
			b.stop()
		})
	}
}

// Commits acknowledged before a kill -9 are there after the restart, and a
// new member resumes from them.
func TestGroupCommitsSurviveKill9(t *testing.T) {
	b := startBroker(t, cgFlags...)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, group = "gk", "gk-group"
	createTopic(t, adm, topic, cgParts)
	produceCGRecords(t, b.addr, topic, 0, cgRecords)
	s := newCGSeen()
	_, stop := cgFranzMember(t, b.addr, group, topic, s)
	waitCGSeen(t, s, cgRecords)
	stop() // commits synchronously: acknowledged means durable
	before := checkCGCommitted(t, adm, group, topic)
	b.kill9()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	after := checkCGCommitted(t, adm, group, topic)
	for p := int32(0); p < cgParts; p++ {
		x, _ := before.Lookup(topic, p)
		y, _ := after.Lookup(topic, p)
		if x.At != y.At {
			t.Errorf("partition %d: committed %d before kill -9, %d after", p, x.At, y.At)
		}
	}
	produceCGRecords(t, b.addr, topic, cgRecords, 300)
	s2 := newCGSeen()
	_, stop = cgFranzMember(t, b.addr, group, topic, s2)
	waitCGSeen(t, s2, 300)
	stop()
	for v := range s2.seen {
		if i, _ := strconv.Atoi(v); i < cgRecords {
			t.Errorf("record %d consumed again after the broker restart", i)
		}
	}
	// kadm: list, describe, delete offsets and groups.
	ctx := testContext(t, 30*time.Second)
	listed, err := adm.ListGroups(ctx)
	if err != nil || len(listed) == 0 || listed.Sorted()[0].Group != group || listed.Sorted()[0].State != "Empty" {
		t.Fatalf("list groups: %+v %v", listed, err)
	}
	del := make(kadm.TopicsSet)
	del.Add(topic, 0)
	dr, err := adm.DeleteOffsets(ctx, group, del)
	if err != nil || dr.Error() != nil {
		t.Fatalf("delete offsets: %v %v", err, dr.Error())
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	if _, ok := offs.Lookup(topic, 0); ok {
		t.Fatal("deleted offset still fetched")
	}
	dg, err := adm.DeleteGroups(ctx, group)
	if err != nil || dg[group].Err != nil {
		t.Fatalf("delete group: %v %v", err, dg[group].Err)
	}
	if listed, err = adm.ListGroups(ctx); err != nil || len(listed) != 0 {
		t.Fatalf("groups after delete: %v %v", listed.Groups(), err)
	}
	b.stop()
}

type cgSaramaHandler struct{ s *cgSeen }

func (cgSaramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (cgSaramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h cgSaramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.s.own(sess.GenerationID(), m.Partition, sess.MemberID())
		h.s.add(m.Value)
		sess.MarkMessage(m, "")
	}
	return nil
}

func TestGroupSarama(t *testing.T) {
	b := startBroker(t, cgFlags...)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, group = "gs", "gs-group"
	createTopic(t, adm, topic, cgParts)
	produceCGRecords(t, b.addr, topic, 0, cgRecords)
	s := newCGSeen()
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	var groups []sarama.ConsumerGroup
	for i := 0; i < 2; i++ {
		cfg := saramaConfig()
		cfg.Version = sarama.V2_8_0_0
		cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		cfg.Consumer.Group.Session.Timeout = 6 * time.Second
		cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
		cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
		cg, err := sarama.NewConsumerGroup([]string{b.addr}, group, cfg)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, cg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, cgSaramaHandler{s}); err != nil && ctx.Err() == nil {
					t.Errorf("sarama consume: %v", err)
					return
				}
			}
		}()
	}
	waitCGSeen(t, s, cgRecords)
	cancel()
	wg.Wait()
	for _, cg := range groups {
		if err := cg.Close(); err != nil { // commits marked offsets
			t.Error(err)
		}
	}
	s.check(t, cgRecords)
	checkCGCommitted(t, adm, group, topic)
	b.stop()
}

func TestGroupKafkaGo(t *testing.T) {
	b := startBroker(t, cgFlags...)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, group = "gkg", "gkg-group"
	createTopic(t, adm, topic, cgParts)
	produceCGRecords(t, b.addr, topic, 0, cgRecords)
	s := newCGSeen()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var readers []*kafkago.Reader
	for i := 0; i < 2; i++ {
		r := kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: []string{b.addr}, GroupID: group, Topic: topic,
			MaxWait: 200 * time.Millisecond, StartOffset: kafkago.FirstOffset,
			SessionTimeout: 6 * time.Second, HeartbeatInterval: 300 * time.Millisecond,
			CommitInterval: 0, // synchronous commits
		})
		readers = append(readers, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					return
				}
				s.add(m.Value)
				if err := r.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
					t.Errorf("kafka-go commit: %v", err)
				}
			}
		}()
	}
	waitCGSeen(t, s, cgRecords)
	waitCGCommitted(t, adm, group, cgRecords)
	cancel()
	wg.Wait()
	for _, r := range readers {
		r.Close()
	}
	s.check(t, cgRecords)
	b.stop()
}

func TestGroupConfluent(t *testing.T) {
	b := startBroker(t, cgFlags...)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, group = "gck", "gck-group"
	createTopic(t, adm, topic, cgParts)
	produceCGRecords(t, b.addr, topic, 0, cgRecords)
	s := newCGSeen()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		ckGroupMember(t, ctx, &wg, ckafka.ConfigMap{
			"bootstrap.servers":             b.addr,
			"group.id":                      group,
			"auto.offset.reset":             "earliest",
			"session.timeout.ms":            6000,
			"heartbeat.interval.ms":         300,
			"enable.auto.commit":            false,
			"partition.assignment.strategy": "range",
		}, topic, s)
	}
	waitCGSeen(t, s, cgRecords)
	waitCGCommitted(t, adm, group, cgRecords)
	cancel()
	wg.Wait()
	s.check(t, cgRecords)
	b.stop()
}

// ckGroupMember runs a librdkafka group consumer with conf, subscribed to
// topic: it adds each record to s and commits it, until ctx ends.
func ckGroupMember(t testing.TB, ctx context.Context, wg *sync.WaitGroup, conf ckafka.ConfigMap, topic string, s *cgSeen) {
	t.Helper()
	c, err := ckafka.NewConsumer(&conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(topic, nil); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer c.Close()
		for ctx.Err() == nil {
			switch ev := c.Poll(100).(type) {
			case *ckafka.Message:
				if ev.TopicPartition.Error != nil {
					continue
				}
				s.add(ev.Value)
				if _, err := c.CommitMessage(ev); err != nil {
					t.Errorf("confluent commit: %v", err)
				}
			case ckafka.Error:
				if ev.IsFatal() {
					t.Errorf("confluent fatal error: %v", ev)
					return
				}
			}
		}
	}()
}

// cgCrashMember joins the group by hand (two-step v5 join), syncs, and then
// goes silent without a LeaveGroup: a crashed consumer. The session timeout
// must expel it and its partitions must move on.
func cgCrashMember(t testing.TB, addr, group, topic string) {
	t.Helper()
	cl := newFranz(t, addr)
	ctx := testContext(t, cgWait)
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{topic}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version, join.Group, join.ProtocolType = 5, group, "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 1500, 20000
	for _, name := range []string{"cooperative-sticky"} {
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = name, meta.AppendTo(nil)
		join.Protocols = append(join.Protocols, p)
	}
	resp, err := join.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	join.MemberID = resp.MemberID
	// The rejoin parks until the live members rejoin; do not wait for it
	// here beyond the test's deadline.
	go func() {
		resp, err := join.RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 {
			return
		}
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Version, sync.Group, sync.MemberID, sync.Generation = 3, group, resp.MemberID, resp.Generation
		sync.RequestWith(ctx, cl)
		// ...and never heartbeats again.
	}()
}

func TestGroupChurn(t *testing.T) {
	b := startBroker(t, cgFlags...)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, group = "gchurn", "gchurn-group"
	const total = 6000
	createTopic(t, adm, topic, cgParts)
	s := newCGSeen()
	bal := kgo.Balancers(kgo.CooperativeStickyBalancer())
	var stops []func()
	for i := 0; i < 2; i++ {
		_, stop := cgFranzMember(t, b.addr, group, topic, s, bal)
		stops = append(stops, stop)
	}

	// Committed offsets only move forward.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		last := map[int32]int64{}
		for watchCtx.Err() == nil {
			offs, err := adm.FetchOffsets(watchCtx, group)
			if err == nil {
				offs.Each(func(o kadm.OffsetResponse) {
					if o.At < last[o.Partition] {
						t.Errorf("partition %d: committed offset went back from %d to %d", o.Partition, last[o.Partition], o.At)
					}
					last[o.Partition] = o.At
				})
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	const rounds = 6
	for r := 0; r < rounds; r++ {
		produceCGRecords(t, b.addr, topic, r*total/rounds, total/rounds)
		switch r % 3 {
		case 0: // a member joins and leaves cleanly
			_, stop := cgFranzMember(t, b.addr, group, topic, s, bal)
			waitFor(t, cgWait, "progress", func() bool { return s.count() >= r*total/rounds })
			stop()
		case 1: // a member crashes: joins by hand and goes silent
			cgCrashMember(t, b.addr, group, topic)
		case 2: // a static member closes without LeaveGroup (KIP-345)
			_, stop := cgFranzMember(t, b.addr, group, topic, s, bal,
				kgo.InstanceID(fmt.Sprintf("static-%d", rng.IntN(1000))), kgo.SessionTimeout(1500*time.Millisecond))
			stop()
		}
	}
	waitCGSeen(t, s, total)
	s.check(t, total)
	// The group settles: the two long-lived members, Stable.
	ctx := testContext(t, cgWait)
	waitFor(t, cgWait, "group settles with two members", func() bool {
		d, err := adm.DescribeGroups(ctx, group)
		return err == nil && d[group].State == "Stable" && len(d[group].Members) == 2
	})
	for _, stop := range stops {
		stop()
	}
	stopWatch()
	<-watched
	checkCGCommitted(t, adm, group, topic)
	b.stop()
}
