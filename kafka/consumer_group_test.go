package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func cgHeartbeat(v int16, group, member string, epoch int32) *kmsg.ConsumerGroupHeartbeatRequest {
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Version, req.Group, req.MemberID, req.MemberEpoch = v, group, member, epoch
	return req
}

// Both versions of the consumer group protocol encode and decode: join,
// assignment by topic id, describe, commit with the member epoch, leave.
func TestConsumerGroupHeartbeatAllVersions(t *testing.T) {
	hs := newGroupHarness(t)
	info, _ := hs.st.Topic("t")
	for v := int16(0); v <= 1; v++ {
		g := "cg" + string(rune('0'+v))
		member := ""
		if v >= 1 {
			member = "client-made-id"
		}
		join := cgHeartbeat(v, g, member, 0)
		join.RebalanceTimeoutMillis = 30000
		join.SubscribedTopicNames = []string{"t"}
		join.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		resp := roundTrip[*kmsg.ConsumerGroupHeartbeatResponse](hs, join)
		if resp.ErrorCode != 0 || resp.MemberID == nil || resp.MemberEpoch < 1 || resp.HeartbeatIntervalMillis != 5000 || resp.Assignment == nil {
			t.Fatalf("v%d join: %+v", v, resp)
		}
		if v >= 1 && *resp.MemberID != member {
			t.Fatalf("v%d: member id %q", v, *resp.MemberID)
		}
		member = *resp.MemberID
		a := resp.Assignment.Topics
		if len(a) != 1 || a[0].TopicID != info.ID || len(a[0].Partitions) != 3 {
			t.Fatalf("v%d assignment: %+v", v, a)
		}
		epoch := resp.MemberEpoch

		// A keepalive: no assignment when nothing changed.
		keep := cgHeartbeat(v, g, member, epoch)
		keep.RebalanceTimeoutMillis = -1
		if resp := roundTrip[*kmsg.ConsumerGroupHeartbeatResponse](hs, keep); resp.ErrorCode != 0 || resp.Assignment != nil || resp.MemberEpoch != epoch {
			t.Fatalf("v%d keepalive: %+v", v, resp)
		}

		for dv := int16(0); dv <= 1; dv++ {
			d := kmsg.NewPtrConsumerGroupDescribeRequest()
			d.Version, d.Groups = dv, []string{g, "missing"}
			dr := roundTrip[*kmsg.ConsumerGroupDescribeResponse](hs, d)
			if len(dr.Groups) != 2 || dr.Groups[0].State != "Stable" || dr.Groups[0].Epoch != epoch || len(dr.Groups[0].Members) != 1 {
				t.Fatalf("describe v%d: %+v", dv, dr.Groups)
			}
			m := dr.Groups[0].Members[0]
			if m.MemberID != member || len(m.Assignment.TopicPartitions) != 1 || m.Assignment.TopicPartitions[0].Topic != "t" || m.Assignment.TopicPartitions[0].TopicID != info.ID {
				t.Fatalf("describe v%d member: %+v", dv, m)
			}
			if dv >= 1 && m.MemberType != 1 {
				t.Fatalf("member type %d", m.MemberType)
			}
			if dr.Groups[1].ErrorCode != kerr.GroupIDNotFound.Code {
				t.Fatalf("describe missing: %+v", dr.Groups[1])
			}
		}

		commit := kmsg.NewPtrOffsetCommitRequest()
		commit.Version, commit.Group, commit.MemberID, commit.Generation = 9, g, member, epoch
		ct := kmsg.NewOffsetCommitRequestTopic()
		ct.Topic = "t"
		cp := kmsg.NewOffsetCommitRequestTopicPartition()
		cp.Partition, cp.Offset = 0, 42
		ct.Partitions = append(ct.Partitions, cp)
		commit.Topics = append(commit.Topics, ct)
		if cr := roundTrip[*kmsg.OffsetCommitResponse](hs, commit); cr.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("commit: %+v", cr)
		}
		commit.Generation = epoch + 1
		if cr := roundTrip[*kmsg.OffsetCommitResponse](hs, commit); cr.Topics[0].Partitions[0].ErrorCode != kerr.StaleMemberEpoch.Code {
			t.Fatalf("stale commit: %+v", cr)
		}

		lg := kmsg.NewPtrListGroupsRequest()
		lg.Version, lg.TypesFilter = 5, []string{"consumer"}
		lr := roundTrip[*kmsg.ListGroupsResponse](hs, lg)
		found := false
		for _, x := range lr.Groups {
			found = found || (x.Group == g && x.GroupType == "consumer" && x.GroupState == "Stable")
		}
		if !found {
			t.Fatalf("list: %+v", lr.Groups)
		}

		// A classic member cannot join the live consumer group.
		if jr := roundTrip[*kmsg.JoinGroupResponse](hs, joinGroupReq(9, g, "")); jr.ErrorCode != kerr.InconsistentGroupProtocol.Code {
			t.Fatalf("classic join: %+v", jr)
		}

		leave := cgHeartbeat(v, g, member, -1)
		if resp := roundTrip[*kmsg.ConsumerGroupHeartbeatResponse](hs, leave); resp.ErrorCode != 0 || resp.MemberEpoch != -1 {
			t.Fatalf("leave: %+v", resp)
		}
		if resp := roundTrip[*kmsg.ConsumerGroupHeartbeatResponse](hs, keep); resp.ErrorCode != kerr.UnknownMemberID.Code {
			t.Fatalf("after leave: %+v", resp)
		}
	}
}

func TestConsumerGroupHeartbeatErrors(t *testing.T) {
	hs := newGroupHarness(t)
	regex := "t("
	for _, tc := range []struct {
		name string
		req  *kmsg.ConsumerGroupHeartbeatRequest
		want *kerr.Error
	}{
		{"empty group", cgHeartbeat(1, "", "m", 1), kerr.InvalidRequest},
		{"empty member v1", cgHeartbeat(1, "g", "", 1), kerr.InvalidRequest},
		{"join without subscription", func() *kmsg.ConsumerGroupHeartbeatRequest {
			r := cgHeartbeat(1, "g", "m", 0)
			r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
			r.RebalanceTimeoutMillis = 1000
			return r
		}(), kerr.InvalidRequest},
		{"bad regex", func() *kmsg.ConsumerGroupHeartbeatRequest {
			r := cgHeartbeat(1, "g", "m", 0)
			r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
			r.RebalanceTimeoutMillis = 1000
			r.SubscribedTopicRegex = &regex
			return r
		}(), kerr.InvalidRegularExpression},
		{"leave unknown group", cgHeartbeat(1, "g", "m", -1), kerr.GroupIDNotFound},
		{"unknown member", cgHeartbeat(1, "g", "m", 5), kerr.UnknownMemberID},
	} {
		if resp := roundTrip[*kmsg.ConsumerGroupHeartbeatResponse](hs, tc.req); resp.ErrorCode != tc.want.Code || (tc.want == kerr.InvalidRequest && resp.ErrorMessage == nil) {
			t.Errorf("%s: %+v, want %v", tc.name, resp, tc.want)
		}
	}
	// No coordinator configured.
	plain := newHarness(t)
	if resp := roundTrip[*kmsg.ConsumerGroupHeartbeatResponse](plain, cgHeartbeat(1, "g", "m", 1)); resp.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("no coordinator: %+v", resp)
	}
	d := kmsg.NewPtrConsumerGroupDescribeRequest()
	d.Groups = []string{"g"}
	if resp := roundTrip[*kmsg.ConsumerGroupDescribeResponse](plain, d); resp.Groups[0].ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("no coordinator describe: %+v", resp)
	}
}
