package main

// The consumer group protocol (KIP-848) against the real binary: franz-go
// (kgo.ServerSideBalancer) and librdkafka (group.protocol=consumer) members
// consume every record while the broker assigns and members reconcile
// incrementally; no partition is owned by two live members at once; commits
// made with member epochs resume after a member restart.

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kip848Flags make reconciliation steps quick: members heartbeat often.
var kip848Flags = []string{"-group-consumer-heartbeat-interval", "250ms"}

// liveOwners checks that a partition is never assigned to a member while
// another still owns it (assigned and not yet revoked or lost).
type liveOwners struct {
	mu     sync.Mutex
	owner  map[string]string // "topic/partition" -> member
	errs   []string
	assign int
}

func (o *liveOwners) assigned(member string, m map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			k := t + "/" + strconv.Itoa(int(p))
			if prev, ok := o.owner[k]; ok && prev != member {
				o.errs = append(o.errs, fmt.Sprintf("%s given to %s while %s owns it", k, member, prev))
			}
			o.owner[k] = member
			o.assign++
		}
	}
}

func (o *liveOwners) released(member string, m map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			k := t + "/" + strconv.Itoa(int(p))
			if o.owner[k] == member {
				delete(o.owner, k)
			}
		}
	}
}

func (o *liveOwners) check(t testing.TB) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.errs {
		t.Error(e)
	}
}

// kip848Opts makes a franz-go member use the consumer protocol and report
// its partitions to o under the name name.
func kip848Opts(o *liveOwners, name string, bal kgo.GroupBalancer) []kgo.Opt {
	return []kgo.Opt{
		kgo.ServerSideBalancer(), kgo.Balancers(bal),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { o.assigned(name, m) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { o.released(name, m) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { o.released(name, m) }),
	}
}

func describeConsumerGroup(t testing.TB, cl *kgo.Client, group string) kmsg.ConsumerGroupDescribeResponseGroup {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(testContext(t, 10*time.Second), cl)
	if err != nil || len(resp.Groups) != 1 {
		t.Fatalf("ConsumerGroupDescribe: %v %+v", err, resp)
	}
	return resp.Groups[0]
}

func TestKIP848Franz(t *testing.T) {
	for _, tc := range []struct {
		name     string
		bal      kgo.GroupBalancer
		assignor string
	}{
		{"uniform", kgo.CooperativeStickyBalancer(), "uniform"},
		{"range", kgo.RangeBalancer(), "range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, append(kip848Flags, cgFlags...)...)
			cl := newFranz(t, b.addr)
			adm := kadm.NewClient(cl)
			topic, group := "k848-"+tc.name, "k848-group-"+tc.name
			createTopic(t, adm, topic, cgParts)
			produceCGRecords(t, b.addr, topic, 0, cgRecords)
			s, o := newCGSeen(), &liveOwners{owner: map[string]string{}}
			var stops []func()
			for i := 0; i < 3; i++ {
				name := fmt.Sprintf("member-%d", i)
				_, stop := cgFranzMember(t, b.addr, group, topic, s, kip848Opts(o, name, tc.bal)...)
				stops = append(stops, stop)
				waitFor(t, cgWait, "progress", func() bool { return s.count() > 0 })
			}
			waitCGSeen(t, s, cgRecords)
			waitFor(t, cgWait, "three members reconciled", func() bool {
				d := describeConsumerGroup(t, cl, group)
				if d.ErrorCode != 0 || d.State != "Stable" || len(d.Members) != 3 || d.AssignorName != tc.assignor {
					return false
				}
				for _, m := range d.Members {
					n := 0
					for _, tp := range m.Assignment.TopicPartitions {
						n += len(tp.Partitions)
					}
					if n != cgParts/3 || m.MemberEpoch != d.Epoch {
						return false
					}
				}
				return true
			})
			// Records for every partition's final owner: a partition moved
			// before anyone committed it gets its first commit from the
			// owner that consumes these (franz-go does not commit a revoked
			// partition's progress; which partitions move first depends on
			// timing, so without this the check below raced with it).
			const more = cgParts * 50
			produceCGRecords(t, b.addr, topic, cgRecords, more)
			waitCGSeen(t, s, cgRecords+more)
			lg, err := adm.ListGroups(testContext(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if g, ok := lg[group]; !ok || g.ProtocolType != "consumer" {
				t.Fatalf("ListGroups: %+v", lg)
			}
			for _, stop := range stops {
				stop()
			}
			o.check(t)
			s.check(t, cgRecords+more)
			checkCGCommitted(t, adm, group, topic)
			waitFor(t, cgWait, "empty group", func() bool { return describeConsumerGroup(t, cl, group).State == "Empty" })

			// A restarted member resumes from the commits: only new records.
			produceCGRecords(t, b.addr, topic, cgRecords+more, 600)
			s2 := newCGSeen()
			_, stop := cgFranzMember(t, b.addr, group, topic, s2, kip848Opts(o, "restarted", tc.bal)...)
			waitCGSeen(t, s2, 600)
			stop()
			for v := range s2.seen {
				if i, _ := strconv.Atoi(v); i < cgRecords+more {
					t.Errorf("record %d consumed again after the restart", i)
				}
			}
			o.check(t)
			b.stop()
		})
	}
}

// A regex subscription picks up topics created after the members joined.
func TestKIP848FranzRegex(t *testing.T) {
	b := startBroker(t, append(kip848Flags, cgFlags...)...)
	adm := kadm.NewClient(newFranz(t, b.addr))
	createTopic(t, adm, "rx-a", cgParts)
	produceCGRecords(t, b.addr, "rx-a", 0, 300)
	s, o := newCGSeen(), &liveOwners{owner: map[string]string{}}
	opts := append(kip848Opts(o, "rx", kgo.CooperativeStickyBalancer()), kgo.ConsumeRegex(), kgo.ConsumeTopics("rx-.*"))
	cgFranzMember(t, b.addr, "rx-group", "rx-a", s, opts...)
	waitCGSeen(t, s, 300)
	createTopic(t, adm, "rx-b", cgParts)
	produceCGRecords(t, b.addr, "rx-b", 300, 300)
	waitCGSeen(t, s, 600)
	s.check(t, 600)
	o.check(t)
}

func TestKIP848Confluent(t *testing.T) {
	b := startBroker(t, append(kip848Flags, cgFlags...)...)
	cl := newFranz(t, b.addr)
	adm := kadm.NewClient(cl)
	const topic, group = "k848-ck", "k848-ck-group"
	createTopic(t, adm, topic, cgParts)
	produceCGRecords(t, b.addr, topic, 0, cgRecords)

	conf := ckafka.ConfigMap{
		"bootstrap.servers":  b.addr,
		"group.id":           group,
		"group.protocol":     "consumer",
		"auto.offset.reset":  "earliest",
		"enable.auto.commit": false,
	}

	s := newCGSeen()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		ckGroupMember(t, ctx, &wg, conf, topic, s)
	}
	waitCGSeen(t, s, cgRecords)
	waitFor(t, cgWait, "three members reconciled", func() bool {
		d := describeConsumerGroup(t, cl, group)
		return d.State == "Stable" && len(d.Members) == 3
	})
	waitCGCommitted(t, adm, group, cgRecords)
	cancel()
	wg.Wait()
	s.check(t, cgRecords)

	// A restarted member resumes from the commits.
	produceCGRecords(t, b.addr, topic, cgRecords, 600)
	s2 := newCGSeen()
	ctx2, cancel2 := context.WithCancel(context.Background())
	var wg2 sync.WaitGroup
	ckGroupMember(t, ctx2, &wg2, conf, topic, s2)
	waitCGSeen(t, s2, 600)
	cancel2()
	wg2.Wait()
	for v := range s2.seen {
		if i, _ := strconv.Atoi(v); i < cgRecords {
			t.Errorf("record %d consumed again after the restart", i)
		}
	}
	b.stop()
}

// Group state is in memory: after a kill -9 the members' heartbeats get
// UNKNOWN_MEMBER_ID, they rejoin with epoch 0 and resume from the durable
// commits.
func TestKIP848BrokerRestart(t *testing.T) {
	b := startBroker(t, append(kip848Flags, cgFlags...)...)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, group = "k848-restart", "k848-restart-group"
	createTopic(t, adm, topic, cgParts)
	produceCGRecords(t, b.addr, topic, 0, cgRecords)
	s, o := newCGSeen(), &liveOwners{owner: map[string]string{}}
	for i := 0; i < 2; i++ {
		cgFranzMember(t, b.addr, group, topic, s, append(kip848Opts(o, fmt.Sprintf("m%d", i), kgo.CooperativeStickyBalancer()),
			kgo.AutoCommitInterval(100*time.Millisecond))...)
	}
	waitCGSeen(t, s, cgRecords)
	waitCGCommitted(t, adm, group, cgRecords)
	b.kill9()
	b.restart()
	produceCGRecords(t, b.addr, topic, cgRecords, 600)
	waitCGSeen(t, s, cgRecords+600)
	s.check(t, cgRecords+600)
	cl := newFranz(t, b.addr)
	waitFor(t, cgWait, "both members back", func() bool {
		d := describeConsumerGroup(t, cl, group)
		return d.State == "Stable" && len(d.Members) == 2
	})
	o.check(t)
}
