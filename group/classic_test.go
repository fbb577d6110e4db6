package group

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/vfs"
)

const waitFor = 10 * time.Second

// waitUntil polls cond until it is true, failing the test after waitFor.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openTestCoordinator(t *testing.T, fs vfs.FS, mod ...func(*Config)) *Coordinator {
	t.Helper()
	cfg := Config{
		Dir: "/groups", FS: fs,
		Topics:            func(topic string) (int32, bool) { return 4, topic == "t" },
		MinSessionTimeout: 10 * time.Millisecond,
		NoInitialDelay:    true,
		Logger:            zerolog.Nop(),
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// call runs one coordinator method and returns its answer.
func call[R any](t *testing.T, f func(done func(R))) R {
	t.Helper()
	return recv(t, async(f))
}

// async starts a call whose answer comes later (a parked join).
func async[R any](f func(done func(R))) chan R {
	ch := make(chan R, 1)
	f(func(r R) { ch <- r })
	return ch
}

func recv[R any](t *testing.T, ch chan R) R {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitFor):
		t.Fatal("no answer")
	}
	var zero R
	return zero
}

func joinReq(v int16, group, member string, instance *string, session time.Duration, protos ...string) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version, r.Group, r.MemberID, r.InstanceID = v, group, member, instance
	r.SessionTimeoutMillis = int32(session.Milliseconds())
	r.RebalanceTimeoutMillis = int32(session.Milliseconds())
	r.ProtocolType = "consumer"
	for _, p := range protos {
		jp := kmsg.NewJoinGroupRequestProtocol()
		jp.Name, jp.Metadata = p, []byte("meta-"+p)
		r.Protocols = append(r.Protocols, jp)
	}
	return r
}

func (c *Coordinator) testJoin(req *kmsg.JoinGroupRequest) func(func(*kmsg.JoinGroupResponse)) {
	return func(done func(*kmsg.JoinGroupResponse)) { c.JoinGroup("client", "/127.0.0.1", req, done) }
}

func syncReq(group, member string, gen int32, assign map[string]string) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version, r.Group, r.MemberID, r.Generation = 5, group, member, gen
	for m, a := range assign {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = m, []byte(a)
		r.GroupAssignment = append(r.GroupAssignment, ga)
	}
	return r
}

func hbReq(group, member string, gen int32) *kmsg.HeartbeatRequest {
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version, r.Group, r.MemberID, r.Generation = 4, group, member, gen
	return r
}

func commitReq(group, member string, gen int32, off int64) *kmsg.OffsetCommitRequest {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version, r.Group, r.MemberID, r.Generation = 8, group, member, gen
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = "t"
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset, p.Metadata = 0, off, strp("md")
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	return r
}

// joinNew does the two-step v4+ join and returns the parked second join.
func joinNew(t *testing.T, c *Coordinator, group string, session time.Duration) (string, chan *kmsg.JoinGroupResponse) {
	t.Helper()
	r := call(t, c.testJoin(joinReq(5, group, "", nil, session, "range", "sticky")))
	if r.ErrorCode != kerr.MemberIDRequired.Code || r.MemberID == "" {
		t.Fatalf("first join: err %d id %q", r.ErrorCode, r.MemberID)
	}
	return r.MemberID, async(c.testJoin(joinReq(5, group, r.MemberID, nil, session, "range", "sticky")))
}

func TestClassicRebalance(t *testing.T) {
	c := openTestCoordinator(t, vfs.NewMemFS())
	const g = "grp"
	a, ja := joinNew(t, c, g, time.Minute)
	ra := recv(t, ja)
	if ra.ErrorCode != 0 || ra.Generation != 1 || ra.LeaderID != a || len(ra.Members) != 1 || *ra.Protocol != "range" {
		t.Fatalf("single join: %+v", ra)
	}
	sa := call(t, func(d func(*kmsg.SyncGroupResponse)) {
		c.SyncGroup(syncReq(g, a, 1, map[string]string{a: "A1"}), d)
	})
	if sa.ErrorCode != 0 || string(sa.MemberAssignment) != "A1" {
		t.Fatalf("sync: %+v", sa)
	}
	hb := func(m string, gen int32) int16 {
		return call(t, func(d func(*kmsg.HeartbeatResponse)) { c.Heartbeat(hbReq(g, m, gen), d) }).ErrorCode
	}
	if code := hb(a, 1); code != 0 {
		t.Fatalf("heartbeat: %d", code)
	}
	if code := hb(a, 7); code != kerr.IllegalGeneration.Code {
		t.Fatalf("heartbeat bad generation: %d", code)
	}
	if code := hb("nobody", 1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat unknown member: %d", code)
	}

	// A second member triggers a rebalance; the first learns it by heartbeat.
	b, jb := joinNew(t, c, g, time.Minute)
	if code := hb(a, 1); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("heartbeat during rebalance: %d", code)
	}
	// Commits with the old generation are still taken while preparing.
	cr := call(t, func(d func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(commitReq(g, a, 1, 10), d) })
	if code := cr.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("commit while preparing: %d", code)
	}
	ja = async(c.testJoin(joinReq(5, g, a, nil, time.Minute, "range", "sticky")))
	ra, rb := recv(t, ja), recv(t, jb)
	if ra.Generation != 2 || rb.Generation != 2 || ra.LeaderID != a || rb.LeaderID != a || len(ra.Members) != 2 || len(rb.Members) != 0 {
		t.Fatalf("rejoin: a %+v b %+v", ra, rb)
	}
	// Commit before sync: REBALANCE_IN_PROGRESS.
	cr = call(t, func(d func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(commitReq(g, b, 2, 11), d) })
	if code := cr.Topics[0].Partitions[0].ErrorCode; code != kerr.RebalanceInProgress.Code {
		t.Fatalf("commit while completing: %d", code)
	}
	sb := async(func(d func(*kmsg.SyncGroupResponse)) { c.SyncGroup(syncReq(g, b, 2, nil), d) })
	sa = call(t, func(d func(*kmsg.SyncGroupResponse)) {
		c.SyncGroup(syncReq(g, a, 2, map[string]string{a: "A2", b: "B2"}), d)
	})
	if got := recv(t, sb); got.ErrorCode != 0 || string(got.MemberAssignment) != "B2" || string(sa.MemberAssignment) != "A2" {
		t.Fatalf("sync 2: a %+v b %+v", sa, got)
	}

	// Describe shows both members with assignments while Stable.
	dr := call(t, func(d func(*kmsg.DescribeGroupsResponse)) {
		r := kmsg.NewPtrDescribeGroupsRequest()
		r.Version, r.Groups = 5, []string{g, "missing"}
		c.DescribeGroups(r, d)
	})
	if dg := dr.Groups[0]; dg.State != "Stable" || dg.Protocol != "range" || len(dg.Members) != 2 || dr.Groups[1].State != "Dead" {
		t.Fatalf("describe: %+v", dr.Groups)
	}

	// Leave of b rebalances; a rejoins alone.
	lr := call(t, func(d func(*kmsg.LeaveGroupResponse)) {
		r := kmsg.NewPtrLeaveGroupRequest()
		r.Version, r.Group = 5, g
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = b
		m2 := kmsg.NewLeaveGroupRequestMember()
		m2.MemberID = "ghost"
		r.Members = append(r.Members, m, m2)
		c.LeaveGroup(r, d)
	})
	if lr.ErrorCode != 0 || lr.Members[0].ErrorCode != 0 || lr.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("leave: %+v", lr)
	}
	ra = call(t, c.testJoin(joinReq(5, g, a, nil, time.Minute, "range", "sticky")))
	if ra.Generation != 3 || len(ra.Members) != 1 {
		t.Fatalf("rejoin alone: %+v", ra)
	}

	// Non-empty group: standalone commits and deletes are refused.
	cr = call(t, func(d func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(commitReq(g, "", -1, 5), d) })
	if code := cr.Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownMemberID.Code {
		t.Fatalf("standalone commit to live group: %d", code)
	}
	del := call(t, func(d func(*kmsg.DeleteGroupsResponse)) {
		r := kmsg.NewPtrDeleteGroupsRequest()
		r.Groups = []string{g, "missing"}
		c.DeleteGroups(r, d)
	})
	if del.Groups[0].ErrorCode != kerr.NonEmptyGroup.Code || del.Groups[1].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("delete groups: %+v", del.Groups)
	}
}

func TestSessionTimeoutExpels(t *testing.T) {
	c := openTestCoordinator(t, vfs.NewMemFS())
	const g = "grp"
	a, ja := joinNew(t, c, g, 50*time.Millisecond)
	recv(t, ja)
	call(t, func(d func(*kmsg.SyncGroupResponse)) { c.SyncGroup(syncReq(g, a, 1, nil), d) })
	// No heartbeats: the member is expelled and the group becomes Empty.
	waitUntil(t, "member expelled", func() bool {
		lr := call(t, func(d func(*kmsg.ListGroupsResponse)) { c.ListGroups(kmsg.NewPtrListGroupsRequest(), d) })
		return len(lr.Groups) == 1 && lr.Groups[0].GroupState == "Empty"
	})
	code := call(t, func(d func(*kmsg.HeartbeatResponse)) { c.Heartbeat(hbReq(g, a, 1), d) }).ErrorCode
	if code != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat of expelled member: %d", code)
	}
}

func TestStaticMembership(t *testing.T) {
	c := openTestCoordinator(t, vfs.NewMemFS())
	const g = "grp"
	inst := strp("i-1")
	r1 := call(t, c.testJoin(joinReq(5, g, "", inst, time.Minute, "range")))
	if r1.ErrorCode != 0 || r1.Generation != 1 {
		t.Fatalf("static join: %+v", r1)
	}
	call(t, func(d func(*kmsg.SyncGroupResponse)) {
		c.SyncGroup(syncReq(g, r1.MemberID, 1, map[string]string{r1.MemberID: "X"}), d)
	})
	// The instance restarts: same generation, new member id, no rebalance.
	r2 := call(t, c.testJoin(joinReq(5, g, "", inst, time.Minute, "range")))
	if r2.ErrorCode != 0 || r2.Generation != 1 || r2.MemberID == r1.MemberID || r2.LeaderID != r1.MemberID {
		t.Fatalf("static rejoin: %+v", r2)
	}
	s := call(t, func(d func(*kmsg.SyncGroupResponse)) { c.SyncGroup(syncReq(g, r2.MemberID, 1, nil), d) })
	if s.ErrorCode != 0 || string(s.MemberAssignment) != "X" {
		t.Fatalf("static sync keeps assignment: %+v", s)
	}
	// The old id of the instance is fenced.
	hr := hbReq(g, r1.MemberID, 1)
	hr.InstanceID = inst
	if code := call(t, func(d func(*kmsg.HeartbeatResponse)) { c.Heartbeat(hr, d) }).ErrorCode; code != kerr.FencedInstanceID.Code {
		t.Fatalf("old static member: %d", code)
	}
}

func TestOffsetsSurviveRestart(t *testing.T) {
	fs := vfs.NewMemFS()
	c := openTestCoordinator(t, fs)
	for _, v := range []int16{0, 2, 5, 8} {
		r := commitReq("standalone", "", -1, int64(100+v))
		r.Version = v
		cr := call(t, func(d func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(r, d) })
		if code := cr.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("v%d standalone commit: %d", v, code)
		}
	}
	bad := commitReq("standalone", "", -1, 1)
	bad.Topics[0].Topic = "nope"
	if code := call(t, func(d func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(bad, d) }).Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: %d", code)
	}
	if code := call(t, func(d func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(commitReq("nogroup", "m", 3, 1), d) }).Topics[0].Partitions[0].ErrorCode; code != kerr.IllegalGeneration.Code {
		t.Fatalf("commit with generation to unknown group: %d", code)
	}
	crashed := fs.CrashClone(vfs.CrashDropUnsynced, 0)
	c2 := openTestCoordinator(t, crashed)
	fr := call(t, func(d func(*kmsg.OffsetFetchResponse)) {
		r := kmsg.NewPtrOffsetFetchRequest()
		r.Version = 8
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group = "standalone"
		tt := kmsg.NewOffsetFetchRequestGroupTopic()
		tt.Topic, tt.Partitions = "t", []int32{0, 1}
		g.Topics = append(g.Topics, tt)
		g2 := kmsg.NewOffsetFetchRequestGroup()
		g2.Group = "other"
		r.Groups = append(r.Groups, g, g2)
		c2.OffsetFetch(r, d)
	})
	ps := fr.Groups[0].Topics[0].Partitions
	if ps[0].Offset != 108 || *ps[0].Metadata != "md" || ps[1].Offset != -1 || len(fr.Groups[1].Topics) != 0 {
		t.Fatalf("fetch after crash: %+v", fr.Groups)
	}
	// Standalone group lists as Empty with no protocol type.
	lr := call(t, func(d func(*kmsg.ListGroupsResponse)) { c2.ListGroups(kmsg.NewPtrListGroupsRequest(), d) })
	if len(lr.Groups) != 1 || lr.Groups[0].Group != "standalone" || lr.Groups[0].GroupState != "Empty" {
		t.Fatalf("list after restart: %+v", lr.Groups)
	}
	od := call(t, func(d func(*kmsg.OffsetDeleteResponse)) {
		r := kmsg.NewPtrOffsetDeleteRequest()
		r.Group = "standalone"
		tt := kmsg.NewOffsetDeleteRequestTopic()
		tt.Topic = "t"
		p := kmsg.NewOffsetDeleteRequestTopicPartition()
		tt.Partitions = append(tt.Partitions, p)
		r.Topics = append(r.Topics, tt)
		c2.OffsetDelete(r, d)
	})
	if od.ErrorCode != 0 || od.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset delete: %+v", od)
	}
	if _, ok := c2.offs.offset("standalone", TP{"t", 0}); ok {
		t.Fatal("deleted offset still there")
	}
}
