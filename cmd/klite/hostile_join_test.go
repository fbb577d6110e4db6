package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A JoinGroup listing a million protocols (13 MB, inside the request
// limit) is served in time linear in its size, and the coordinator loop
// that owns every group stays free for other groups' work meanwhile. The
// protocol choice compared every protocol with every other (a million
// squared), so one such request stopped every group on the broker.
func TestJoinGroupManyProtocols(t *testing.T) {
	const n = 1_000_000
	b := startBroker(t)
	cl := newFranz(t, b.addr)
	other := newFranz(t, b.addr)
	ctx := testContext(t, time.Minute)
	createTopic(t, kadm.NewClient(cl), "jp", 1)

	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType = "many-protocols", "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 30000, 30000
	join.Protocols = make([]kmsg.JoinGroupRequestProtocol, n)
	for i := range join.Protocols {
		join.Protocols[i].Name = "p" + strconv.Itoa(n-1-i) // the preferred one last in name order
		join.Protocols[i].Metadata = []byte{byte(i)}
	}
	resp, err := join.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode == kerr.MemberIDRequired.Code {
		join.MemberID = resp.MemberID
		joined := make(chan struct{})
		go func() {
			defer close(joined)
			resp, err = join.RequestWith(ctx, cl)
		}()
		// Other groups are served while the big one rebalances.
		adm := kadm.NewClient(other)
		for at := int64(0); ; at++ {
			select {
			case <-joined:
			default:
				var offs kadm.Offsets
				offs.Add(kadm.Offset{Topic: "jp", Partition: 0, At: at, LeaderEpoch: -1})
				cr, cerr := adm.CommitOffsets(ctx, "bystander", offs)
				if cerr == nil {
					cerr = cr.Error()
				}
				if cerr != nil {
					t.Fatalf("another group's commit while a JoinGroup of %d protocols is served: %v", n, cerr)
				}
				continue
			}
			break
		}
		<-joined
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("JoinGroup of %d protocols: %v", n, err)
	}
	if resp.Protocol == nil || *resp.Protocol != "p"+strconv.Itoa(n-1) {
		t.Fatalf("JoinGroup of %d protocols chose %v, want the member's first, p%d", n, resp.Protocol, n-1)
	}
}

// A ConsumerGroupHeartbeat whose SubscribedTopicRegex is 50,000 '.*x.*'
// alternatives (700 KB) answers INVALID_REGULAR_EXPRESSION at once, and
// other groups are served. It used to be matched against every topic on
// the coordinator loop, which owns every group: about 70 ms per topic name
// for this one (Go's regexp simulates every alternative at every byte), so
// with 1000 topics every group on the broker stopped for over a minute,
// again at every subscription refresh. A regex of the same shape at the
// size bound (-group-consumer-max-regex-bytes) is accepted and resolved.
func TestConsumerHeartbeatHugeRegex(t *testing.T) {
	b := startBroker(t)
	cl := newFranz(t, b.addr)
	ctx := testContext(t, time.Minute)
	cr := kmsg.NewPtrCreateTopicsRequest()
	for i := range 1000 {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = fmt.Sprintf("rx-topic-%06d", i), 1, 1
		cr.Topics = append(cr.Topics, rt)
	}
	if _, err := cr.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	regex := func(n int) string {
		alts := make([]string, n)
		for i := range alts {
			alts[i] = fmt.Sprintf(".*zz%07d.*", i*7919%10000000)
		}
		return "(?:" + strings.Join(alts, "|") + ")|rx-topic-0000.."
	}
	heartbeat := func(rx string, epoch int32) *kmsg.ConsumerGroupHeartbeatResponse {
		t.Helper()
		hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		hb.Group, hb.MemberID, hb.MemberEpoch, hb.RebalanceTimeoutMillis = "regex-group", "member-1-abcdefghijklmnopqrstu", epoch, 30000
		if rx != "" {
			hb.SubscribedTopicRegex = &rx
		}
		hb.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		resp, err := hb.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("heartbeat with a %d-byte regex: %v", len(rx), err)
		}
		return resp
	}
	huge := regex(50000)
	resp := heartbeat(huge, 0)
	if resp.ErrorCode != kerr.InvalidRegularExpression.Code || resp.ErrorMessage == nil {
		t.Fatalf("heartbeat with a %d-byte regex: %v (%v), want INVALID_REGULAR_EXPRESSION with a message",
			len(huge), kerr.ErrorForCode(resp.ErrorCode), resp.ErrorMessage)
	}
	adm := kadm.NewClient(newFranz(t, b.addr))
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "rx-topic-000001", Partition: 0, At: 1, LeaderEpoch: -1})
	c, err := adm.CommitOffsets(ctx, "bystander", offs)
	if err == nil {
		err = c.Error()
	}
	if err != nil {
		t.Fatalf("another group's commit beside a %d-byte regex: %v", len(huge), err)
	}

	n := 0 // alternatives that fit the default bound
	for len(regex(n+1)) <= 4096 {
		n++
	}
	rx := regex(n)
	resp = heartbeat(rx, 0)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("heartbeat with a %d-byte regex: %v", len(rx), err)
	}
	for epoch := resp.MemberEpoch; ; {
		if a := resp.Assignment; a != nil && len(a.Topics) == 100 {
			break // rx-topic-000000 to rx-topic-000099
		}
		if ctx.Err() != nil {
			t.Fatalf("a %d-byte regex never resolved to its 100 topics", len(rx))
		}
		resp = heartbeat("", epoch)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		epoch = resp.MemberEpoch
	}
}
