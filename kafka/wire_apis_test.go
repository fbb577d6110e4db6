package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

// wireAuthzCases are TestAuthzEveryAPI's cases for the admin APIs of
// issue 13 (DescribeCluster, DescribeLogDirs, ...).
func wireAuthzCases() []authzAPICase {
	cluster := func(op acl.Operation) []acl.Binding {
		return []acl.Binding{allowACL(acl.ResourceCluster, acl.ClusterName, op)}
	}
	return []authzAPICase{
		{name: "OffsetForLeaderEpoch DESCRIBE topic", key: offsetForLeaderEpochKey, want: topicAuthFailed,
			grant: []acl.Binding{allowACL(acl.ResourceTopic, "t", acl.OpDescribe)},
			req:   func() kmsg.Request { return offsetForLeaderEpochReq(4, -1, "t", 0, 0) },
			code: func(r kmsg.Response) int16 {
				return r.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0].ErrorCode
			}},
		{name: "OffsetForLeaderEpoch follower CLUSTER_ACTION", key: offsetForLeaderEpochKey, want: clusterAuthFailed,
			grant: cluster(acl.OpClusterAction),
			req:   func() kmsg.Request { return offsetForLeaderEpochReq(4, 7, "t", 0, 0) },
			code: func(r kmsg.Response) int16 {
				return r.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0].ErrorCode
			}},
		{name: "DescribeLogDirs DESCRIBE cluster", key: describeLogDirsKey, want: clusterAuthFailed, grant: cluster(acl.OpDescribe),
			req: func() kmsg.Request {
				r := kmsg.NewPtrDescribeLogDirsRequest()
				r.Version = 4
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeLogDirsResponse).ErrorCode }},
		{name: "DescribeCluster DESCRIBE cluster", key: describeClusterKey, want: clusterAuthFailed, grant: cluster(acl.OpDescribe),
			req: func() kmsg.Request {
				r := kmsg.NewPtrDescribeClusterRequest()
				r.Version, r.EndpointType = 2, endpointBroker
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeClusterResponse).ErrorCode }},
		{name: "DescribeTopicPartitions DESCRIBE topic", key: describeTopicPartitionsKey, want: topicAuthFailed,
			grant: []acl.Binding{allowACL(acl.ResourceTopic, "t", acl.OpDescribe)},
			req: func() kmsg.Request {
				r := kmsg.NewPtrDescribeTopicPartitionsRequest()
				r.Topics = []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: "t"}}
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeTopicPartitionsResponse).Topics[0].ErrorCode }},
		{name: "ElectLeaders ALTER cluster", key: electLeadersKey, want: clusterAuthFailed, grant: cluster(acl.OpAlter),
			req:  func() kmsg.Request { return electLeadersReq(2, "t", 0) },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.ElectLeadersResponse).ErrorCode }},
		{name: "AlterPartitionReassignments ALTER cluster", key: alterPartitionReassignmentsKey, want: clusterAuthFailed,
			grant: cluster(acl.OpAlter),
			req:   func() kmsg.Request { return alterReassignReq("t", 0, []int32{0}) },
			code:  func(r kmsg.Response) int16 { return r.(*kmsg.AlterPartitionAssignmentsResponse).ErrorCode }},
		{name: "ListPartitionReassignments DESCRIBE cluster", key: listPartitionReassignmentsKey, want: clusterAuthFailed,
			grant: cluster(acl.OpDescribe),
			req: func() kmsg.Request {
				return kmsg.NewPtrListPartitionReassignmentsRequest()
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.ListPartitionReassignmentsResponse).ErrorCode }},
	}
}

func offsetForLeaderEpochReq(version int16, replica int32, topic string, partition, epoch int32) *kmsg.OffsetForLeaderEpochRequest {
	r := kmsg.NewPtrOffsetForLeaderEpochRequest()
	r.Version, r.ReplicaID = version, replica
	t := kmsg.NewOffsetForLeaderEpochRequestTopic()
	t.Topic = topic
	p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	p.Partition, p.CurrentLeaderEpoch, p.LeaderEpoch = partition, -1, epoch
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	return r
}

func electLeadersReq(version int16, topic string, partitions ...int32) *kmsg.ElectLeadersRequest {
	r := kmsg.NewPtrElectLeadersRequest()
	r.Version = version
	r.Topics = []kmsg.ElectLeadersRequestTopic{{Topic: topic, Partitions: partitions}}
	return r
}

func alterReassignReq(topic string, partition int32, replicas []int32) *kmsg.AlterPartitionAssignmentsRequest {
	r := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	r.Version = 1
	t := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	t.Topic = topic
	t.Partitions = []kmsg.AlterPartitionAssignmentsRequestTopicPartition{{Partition: partition, Replicas: replicas}}
	r.Topics = append(r.Topics, t)
	return r
}

func TestOffsetForLeaderEpoch(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 2, nil)
	hs.st.appendSync = true
	hs.produceTo("t", 1, makeBatch(batchOpts{records: 5}))
	for _, c := range []struct {
		partition, current, epoch int32
		code                      int16
		wantEpoch                 int32
		wantEnd                   int64
	}{
		{1, -1, 0, 0, 0, 5},
		{0, 0, 0, 0, 0, 0},
		{1, -1, 3, 0, -1, -1},
		{1, -1, -1, 0, -1, -1},
		{1, 1, 0, kerr.UnknownLeaderEpoch.Code, -1, -1},
		{1, -3, 0, kerr.FencedLeaderEpoch.Code, -1, -1},
		{2, -1, 0, kerr.UnknownTopicOrPartition.Code, -1, -1},
	} {
		for v := int16(2); v <= 4; v++ {
			req := offsetForLeaderEpochReq(v, -1, "t", c.partition, c.epoch)
			req.Topics[0].Partitions[0].CurrentLeaderEpoch = c.current
			p := roundTrip[*kmsg.OffsetForLeaderEpochResponse](hs, req).Topics[0].Partitions[0]
			if p.ErrorCode != c.code || p.LeaderEpoch != c.wantEpoch || p.EndOffset != c.wantEnd {
				t.Fatalf("v%d %+v: got error %d epoch %d end %d", v, c, p.ErrorCode, p.LeaderEpoch, p.EndOffset)
			}
		}
	}
}

func TestDescribeTopicPartitionsCursor(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("b", 3, nil)
	hs.createTopic("a", 2, nil)
	hs.createTopic("c", 1, nil)
	type tp struct {
		topic     string
		partition int32
	}
	// Walk everything two partitions at a time.
	var got []tp
	var cursor *kmsg.DescribeTopicPartitionsRequestCursor
	for range 100 {
		req := kmsg.NewPtrDescribeTopicPartitionsRequest()
		req.ResponsePartitionLimit, req.Cursor = 2, cursor
		resp := roundTrip[*kmsg.DescribeTopicPartitionsResponse](hs, req)
		for _, rt := range resp.Topics {
			if internalTopic(*rt.Topic) {
				if !rt.IsInternal {
					t.Fatalf("%s is not flagged internal", *rt.Topic)
				}
				continue
			}
			for _, p := range rt.Partitions {
				got = append(got, tp{*rt.Topic, p.Partition})
				if p.LeaderID != hs.h.cfg.NodeID || p.LeaderEpoch != 0 || len(p.ISR) != 1 {
					t.Fatalf("%s/%d: %+v", *rt.Topic, p.Partition, p)
				}
			}
		}
		if resp.NextCursor == nil {
			break
		}
		cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: resp.NextCursor.Topic, Partition: resp.NextCursor.Partition}
	}
	want := []tp{{"a", 0}, {"a", 1}, {"b", 0}, {"b", 1}, {"b", 2}, {"c", 0}}
	if len(got) != len(want) {
		t.Fatalf("walked %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("walked %v, want %v", got, want)
		}
	}
	// Named topics: unknown ones answer their error; a cursor outside them
	// is INVALID_REQUEST.
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	req.Topics = []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: "c"}, {Topic: "zz"}}
	resp := roundTrip[*kmsg.DescribeTopicPartitionsResponse](hs, req)
	if len(resp.Topics) != 2 || resp.Topics[0].ErrorCode != 0 || resp.Topics[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("named: %+v", resp.Topics)
	}
	req.Cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: "a"}
	resp = roundTrip[*kmsg.DescribeTopicPartitionsResponse](hs, req)
	if len(resp.Topics) != 2 || resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("cursor outside the named topics: %+v", resp.Topics)
	}
}

func TestOneNodeAdminAPIs(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 2, nil)
	node := hs.h.cfg.NodeID

	el := roundTrip[*kmsg.ElectLeadersResponse](hs, electLeadersReq(2, "t", 0, 1, 5))
	for i, want := range []int16{kerr.ElectionNotNeeded.Code, kerr.ElectionNotNeeded.Code, kerr.UnknownTopicOrPartition.Code} {
		if got := el.Topics[0].Partitions[i].ErrorCode; got != want {
			t.Fatalf("ElectLeaders partition %d: %d, want %d", i, got, want)
		}
	}
	all := kmsg.NewPtrElectLeadersRequest()
	all.Version = 2
	if el = roundTrip[*kmsg.ElectLeadersResponse](hs, all); el.ErrorCode != 0 || len(el.Topics) != 0 {
		t.Fatalf("ElectLeaders of all: %+v", el)
	}

	for _, c := range []struct {
		replicas []int32
		want     int16
	}{
		{[]int32{node}, 0},
		{nil, kerr.NoReassignmentInProgress.Code},
		{[]int32{}, kerr.InvalidReplicaAssignment.Code},
		{[]int32{node, node}, kerr.InvalidReplicaAssignment.Code},
		{[]int32{node + 1}, kerr.InvalidReplicaAssignment.Code},
	} {
		resp := roundTrip[*kmsg.AlterPartitionAssignmentsResponse](hs, alterReassignReq("t", 1, c.replicas))
		if got := resp.Topics[0].Partitions[0].ErrorCode; resp.ErrorCode != 0 || got != c.want {
			t.Fatalf("reassign to %v: %d/%d, want %d", c.replicas, resp.ErrorCode, got, c.want)
		}
	}
	lr := roundTrip[*kmsg.ListPartitionReassignmentsResponse](hs, kmsg.NewPtrListPartitionReassignmentsRequest())
	if lr.ErrorCode != 0 || len(lr.Topics) != 0 {
		t.Fatalf("ListPartitionReassignments: %+v", lr)
	}

	dc := kmsg.NewPtrDescribeClusterRequest()
	dc.Version, dc.EndpointType = 2, endpointController
	if r := roundTrip[*kmsg.DescribeClusterResponse](hs, dc); r.ErrorCode != kerr.MismatchedEndpointType.Code {
		t.Fatalf("DescribeCluster of controllers: %d", r.ErrorCode)
	}
	dc.EndpointType = endpointBroker
	if r := roundTrip[*kmsg.DescribeClusterResponse](hs, dc); r.ErrorCode != 0 || len(r.Brokers) != 1 || r.Brokers[0].NodeID != node || r.ControllerID != node {
		t.Fatalf("DescribeCluster: %+v", r)
	}

	gts := kmsg.NewPtrGetTelemetrySubscriptionsRequest()
	if r := roundTrip[*kmsg.GetTelemetrySubscriptionsResponse](hs, gts); r.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("GetTelemetrySubscriptions: %d", r.ErrorCode)
	}
}

func TestDescribeLogDirs(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 2, nil)
	hs.createTopic("u", 1, nil)
	hs.st.appendSync = true
	batch := makeBatch(batchOpts{records: 3, payload: 100})
	hs.produceTo("t", 1, batch)
	hs.produceTo("t", 1, batch)
	for v := int16(1); v <= 4; v++ {
		req := kmsg.NewPtrDescribeLogDirsRequest()
		req.Version = v
		req.Topics = []kmsg.DescribeLogDirsRequestTopic{{Topic: "t", Partitions: []int32{0, 1, 9}}, {Topic: "nope", Partitions: []int32{0}}}
		resp := roundTrip[*kmsg.DescribeLogDirsResponse](hs, req)
		if len(resp.Dirs) != 1 || len(resp.Dirs[0].Topics) != 1 {
			t.Fatalf("v%d: %+v", v, resp)
		}
		d := resp.Dirs[0]
		ps := d.Topics[0].Partitions
		if len(ps) != 2 || ps[0].Size != 0 || ps[1].Size != int64(2*len(batch)) {
			t.Fatalf("v%d: partitions %+v, want sizes 0 and %d", v, ps, 2*len(batch))
		}
		if v >= 4 && (d.TotalBytes != 1<<30 || d.UsableBytes != 256<<20) {
			t.Fatalf("v%d: total %d usable %d", v, d.TotalBytes, d.UsableBytes)
		}
	}
	req := kmsg.NewPtrDescribeLogDirsRequest()
	req.Version = 4
	resp := roundTrip[*kmsg.DescribeLogDirsResponse](hs, req) // all
	n := 0
	for _, tp := range resp.Dirs[0].Topics {
		n += len(tp.Partitions)
	}
	if n != 3 {
		t.Fatalf("all topics: %d partitions, want 3", n)
	}
}

// ListOffsets v9's -5 (latest tiered) answers -1 when nothing is tiered;
// older versions read -5 as a timestamp.
func TestListOffsetsLatestTiered(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	hs.st.appendSync = true
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 3}))
	for _, v := range []int16{9, 10} {
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version = v
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -5
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		p := roundTrip[*kmsg.ListOffsetsResponse](hs, req).Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 {
			t.Fatalf("v%d: %+v", v, p)
		}
	}
}

// The broker's cap (-max-describe-partitions) bounds a response whatever
// the request asks, and a request limit below 1 takes it.
func TestDescribeTopicPartitionsCap(t *testing.T) {
	hs := newHarness(t, func(c *Config) { c.MaxDescribePartitions = 3 })
	hs.createTopic("a", 5, nil)
	for _, asked := range []int32{0, 100} {
		req := kmsg.NewPtrDescribeTopicPartitionsRequest()
		req.Topics = []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: "a"}}
		req.ResponsePartitionLimit = asked
		resp := roundTrip[*kmsg.DescribeTopicPartitionsResponse](hs, req)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 3 || resp.NextCursor == nil ||
			resp.NextCursor.Topic != "a" || resp.NextCursor.Partition != 3 {
			t.Fatalf("limit %d: %+v next %+v", asked, resp.Topics, resp.NextCursor)
		}
	}
}

// OffsetCommit and OffsetFetch v10 name topics by ID: committed by ID, read
// back by ID and by name (v9), unknown IDs answer UNKNOWN_TOPIC_ID.
func TestOffsetsByTopicID(t *testing.T) {
	var st *fakeStore
	hs := newHarness(t, withGroups(t, &st))
	st = hs.st
	hs.createTopic("t", 2, nil)
	info, _ := hs.st.Topic("t")
	bogus := [16]byte{9, 9, 9}

	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version, commit.Group, commit.Generation = 10, "g", -1
	for _, id := range [][16]byte{info.ID, bogus} {
		ct := kmsg.NewOffsetCommitRequestTopic()
		ct.TopicID = id
		cp := kmsg.NewOffsetCommitRequestTopicPartition()
		cp.Partition, cp.Offset = 1, 42
		ct.Partitions = append(ct.Partitions, cp)
		commit.Topics = append(commit.Topics, ct)
	}
	cr := roundTrip[*kmsg.OffsetCommitResponse](hs, commit)
	if len(cr.Topics) != 2 || cr.Topics[0].TopicID != info.ID || cr.Topics[0].Partitions[0].ErrorCode != 0 ||
		cr.Topics[1].TopicID != bogus || cr.Topics[1].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("commit v10: %+v", cr.Topics)
	}

	fetch := func(version int16, topics []kmsg.OffsetFetchRequestGroupTopic) []kmsg.OffsetFetchResponseGroupTopic {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = version
		req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", Topics: topics}}
		resp := roundTrip[*kmsg.OffsetFetchResponse](hs, req)
		if len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 {
			t.Fatalf("fetch v%d: %+v", version, resp)
		}
		return resp.Groups[0].Topics
	}
	byID := fetch(10, []kmsg.OffsetFetchRequestGroupTopic{{TopicID: info.ID, Partitions: []int32{1}}, {TopicID: bogus, Partitions: []int32{0}}})
	if len(byID) != 2 || byID[0].TopicID != info.ID || byID[0].Partitions[0].Offset != 42 ||
		byID[1].TopicID != bogus || byID[1].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("fetch v10 by ID: %+v", byID)
	}
	if all := fetch(10, nil); len(all) != 1 || all[0].TopicID != info.ID || all[0].Partitions[0].Offset != 42 {
		t.Fatalf("fetch v10 of all: %+v", all)
	}
	if byName := fetch(9, []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{1}}}); byName[0].Partitions[0].Offset != 42 {
		t.Fatalf("fetch v9 by name: %+v", byName)
	}
}
