package kafka

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/group"
	"github.com/klite/klite/storage"
	"github.com/klite/klite/vfs"
)

// withGroups wires a real coordinator on an in-memory FS into the harness.
// *st is the harness's store, set once the harness exists.
func withGroups(t *testing.T, st **fakeStore) func(*Config) {
	return func(cfg *Config) {
		c, err := group.Open(group.Config{
			Dir: "/groups", FS: vfs.NewMemFS(),
			Topics: func(topic string) (int32, bool) {
				if *st == nil {
					return 0, false
				}
				info, ok := (*st).Topic(topic)
				return info.Partitions, ok
			},
			TopicList: func() []storage.TopicInfo {
				if *st == nil {
					return nil
				}
				return (*st).Topics()
			},
			MinSessionTimeout: time.Millisecond,
			NoInitialDelay:    true,
			Logger:            zerolog.Nop(),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cfg.Groups = c
	}
}

func newGroupHarness(t *testing.T) *harness {
	var st *fakeStore
	hs := newHarness(t, withGroups(t, &st))
	st = hs.st
	hs.createTopic("t", 3, nil)
	return hs
}

func TestFindCoordinator(t *testing.T) {
	hs := newGroupHarness(t)
	for v := int16(0); v <= 5; v++ {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version = v
		req.CoordinatorKey = "g"
		req.CoordinatorKeys = []string{"g1", "g2"}
		resp := roundTrip[*kmsg.FindCoordinatorResponse](hs, req)
		if v < 4 {
			if resp.ErrorCode != 0 || resp.NodeID != 1 || resp.Host != "broker.test" || resp.Port != 9092 {
				t.Fatalf("v%d: %+v", v, resp)
			}
			continue
		}
		if len(resp.Coordinators) != 2 || resp.Coordinators[1].Key != "g2" || resp.Coordinators[1].Host != "broker.test" || resp.Coordinators[0].ErrorCode != 0 {
			t.Fatalf("v%d: %+v", v, resp.Coordinators)
		}
	}
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.Version, req.CoordinatorType, req.CoordinatorKey = 3, 1, "txn"
	if resp := roundTrip[*kmsg.FindCoordinatorResponse](hs, req); resp.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("transaction key without a transaction coordinator: %d", resp.ErrorCode)
	}
	// No coordinator configured: retriable COORDINATOR_NOT_AVAILABLE.
	plain := newHarness(t)
	req = kmsg.NewPtrFindCoordinatorRequest()
	req.Version, req.CoordinatorKey = 3, "g"
	if resp := roundTrip[*kmsg.FindCoordinatorResponse](plain, req); resp.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("no coordinator: %d", resp.ErrorCode)
	}
}

func joinGroupReq(v int16, g, member string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version, req.Group, req.MemberID = v, g, member
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30000, 30000
	req.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", []byte{0, 1, 0, 0, 0, 0}
	req.Protocols = append(req.Protocols, p)
	return req
}

// Every version of the group lifecycle encodes and decodes, one member.
func TestGroupLifecycleAllVersions(t *testing.T) {
	hs := newGroupHarness(t)
	for v := int16(0); v <= 9; v++ {
		g := "g" + string(rune('0'+v))
		join := roundTrip[*kmsg.JoinGroupResponse](hs, joinGroupReq(v, g, ""))
		if v >= 4 {
			if join.ErrorCode != kerr.MemberIDRequired.Code || join.MemberID == "" {
				t.Fatalf("join v%d: %+v", v, join)
			}
			join = roundTrip[*kmsg.JoinGroupResponse](hs, joinGroupReq(v, g, join.MemberID))
		}
		if join.ErrorCode != 0 || join.Generation != 1 || join.LeaderID != join.MemberID || len(join.Members) != 1 {
			t.Fatalf("join v%d: %+v", v, join)
		}
		sv := min(v, 5)
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Version, sync.Group, sync.Generation, sync.MemberID = sv, g, 1, join.MemberID
		a := kmsg.NewSyncGroupRequestGroupAssignment()
		a.MemberID, a.MemberAssignment = join.MemberID, []byte("assignment")
		sync.GroupAssignment = append(sync.GroupAssignment, a)
		sr := roundTrip[*kmsg.SyncGroupResponse](hs, sync)
		if sr.ErrorCode != 0 || string(sr.MemberAssignment) != "assignment" {
			t.Fatalf("sync v%d: %+v", sv, sr)
		}
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Version, hb.Group, hb.Generation, hb.MemberID = min(v, 4), g, 1, join.MemberID
		if r := roundTrip[*kmsg.HeartbeatResponse](hs, hb); r.ErrorCode != 0 {
			t.Fatalf("heartbeat: %d", r.ErrorCode)
		}
		hb.Generation = 2
		if r := roundTrip[*kmsg.HeartbeatResponse](hs, hb); r.ErrorCode != kerr.IllegalGeneration.Code {
			t.Fatalf("heartbeat stale generation: %d", r.ErrorCode)
		}
		commit := kmsg.NewPtrOffsetCommitRequest()
		commit.Version, commit.Group, commit.Generation, commit.MemberID = v, g, 1, join.MemberID
		ct := kmsg.NewOffsetCommitRequestTopic()
		ct.Topic = "t"
		for p := int32(0); p < 4; p++ { // partition 3 does not exist
			cp := kmsg.NewOffsetCommitRequestTopicPartition()
			cp.Partition, cp.Offset, cp.Metadata = p, int64(10+p), strPtr("meta")
			ct.Partitions = append(ct.Partitions, cp)
		}
		commit.Topics = append(commit.Topics, ct)
		cg := g
		if v == 0 {
			cg = "standalone" // v0 has no generation: a standalone commit
			commit.Group = cg
		}
		cr := roundTrip[*kmsg.OffsetCommitResponse](hs, commit)
		for _, p := range cr.Topics[0].Partitions {
			want := int16(0)
			if p.Partition == 3 {
				want = kerr.UnknownTopicOrPartition.Code
			}
			if p.ErrorCode != want {
				t.Fatalf("commit v%d partition %d: %d", v, p.Partition, p.ErrorCode)
			}
		}
		fetch := kmsg.NewPtrOffsetFetchRequest()
		fetch.Version = v
		if v < 8 {
			fetch.Group = cg
			ft := kmsg.NewOffsetFetchRequestTopic()
			ft.Topic, ft.Partitions = "t", []int32{0, 2, 3}
			fetch.Topics = append(fetch.Topics, ft)
			fr := roundTrip[*kmsg.OffsetFetchResponse](hs, fetch)
			ps := fr.Topics[0].Partitions
			if ps[0].Offset != 10 || ps[1].Offset != 12 || ps[2].Offset != -1 || *ps[0].Metadata != "meta" {
				t.Fatalf("fetch v%d: %+v", v, ps)
			}
		} else {
			fg := kmsg.NewOffsetFetchRequestGroup()
			fg.Group = g // null topics: everything committed
			fetch.Groups = append(fetch.Groups, fg)
			fr := roundTrip[*kmsg.OffsetFetchResponse](hs, fetch)
			if len(fr.Groups) != 1 || len(fr.Groups[0].Topics) != 1 || len(fr.Groups[0].Topics[0].Partitions) != 3 {
				t.Fatalf("fetch v%d: %+v", v, fr.Groups)
			}
		}
		leave := kmsg.NewPtrLeaveGroupRequest()
		leave.Version, leave.Group = min(v, 5), g
		if leave.Version < 3 {
			leave.MemberID = join.MemberID
		} else {
			m := kmsg.NewLeaveGroupRequestMember()
			m.MemberID = join.MemberID
			leave.Members = append(leave.Members, m)
		}
		if r := roundTrip[*kmsg.LeaveGroupResponse](hs, leave); r.ErrorCode != 0 || (leave.Version >= 3 && r.Members[0].ErrorCode != 0) {
			t.Fatalf("leave v%d: %+v", leave.Version, r)
		}
	}
	for v := int16(0); v <= 5; v++ {
		req := kmsg.NewPtrListGroupsRequest()
		req.Version = v
		if v >= 4 {
			req.StatesFilter = []string{"empty"}
		}
		resp := roundTrip[*kmsg.ListGroupsResponse](hs, req)
		if resp.ErrorCode != 0 || len(resp.Groups) != 11 || resp.Groups[0].ProtocolType != "consumer" {
			t.Fatalf("list v%d: %+v", v, resp.Groups)
		}
	}
	for v := int16(0); v <= 6; v++ {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Version, req.Groups = v, []string{"g0", "missing"}
		resp := roundTrip[*kmsg.DescribeGroupsResponse](hs, req)
		if resp.Groups[0].State != "Empty" || resp.Groups[1].State != "Dead" {
			t.Fatalf("describe v%d: %+v", v, resp.Groups)
		}
		if (v >= 6) != (resp.Groups[1].ErrorCode == kerr.GroupIDNotFound.Code) {
			t.Fatalf("describe v%d missing group: %d", v, resp.Groups[1].ErrorCode)
		}
	}
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "g1"
	odt := kmsg.NewOffsetDeleteRequestTopic()
	odt.Topic = "t"
	odt.Partitions = append(odt.Partitions, kmsg.NewOffsetDeleteRequestTopicPartition())
	od.Topics = append(od.Topics, odt)
	if r := roundTrip[*kmsg.OffsetDeleteResponse](hs, od); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset delete: %+v", r)
	}
	for v := int16(0); v <= 2; v++ {
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Version, req.Groups = v, []string{"g" + string(rune('0'+v)), "missing"}
		resp := roundTrip[*kmsg.DeleteGroupsResponse](hs, req)
		if resp.Groups[0].ErrorCode != 0 || resp.Groups[1].ErrorCode != kerr.GroupIDNotFound.Code {
			t.Fatalf("delete v%d: %+v", v, resp.Groups)
		}
	}
}

// A join parks until the rebalance completes; the second member's arrival
// is seen by the first as REBALANCE_IN_PROGRESS on heartbeat.
func TestJoinGroupParksOffLoop(t *testing.T) {
	hs := newGroupHarness(t)
	a := roundTrip[*kmsg.JoinGroupResponse](hs, joinGroupReq(3, "g", ""))
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version, sync.Group, sync.Generation, sync.MemberID = 3, "g", 1, a.MemberID
	roundTrip[*kmsg.SyncGroupResponse](hs, sync)
	// b's join parks: it is not answered until a rejoins.
	pb := hs.serveFrame(encodeRequest(joinGroupReq(3, "g", ""), testCorr))
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.Generation, hb.MemberID = 3, "g", 1, a.MemberID
	eventually(t, "rebalance seen by heartbeat", func() bool {
		return roundTrip[*kmsg.HeartbeatResponse](hs, hb).ErrorCode == kerr.RebalanceInProgress.Code
	})
	if pb.answered() {
		t.Fatal("join answered before the group rebalanced")
	}
	ra := roundTrip[*kmsg.JoinGroupResponse](hs, joinGroupReq(3, "g", a.MemberID))
	rb := decodeBody[*kmsg.JoinGroupResponse](t, joinGroupReq(3, "g", ""), assemble(t, pb.wait(t)))
	if ra.Generation != 2 || rb.Generation != 2 || len(ra.Members) != 2 || rb.LeaderID != a.MemberID {
		t.Fatalf("a %+v b %+v", ra, rb)
	}
}
