package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

// ---- ListOffsets ----

func listOffsetsReq(version int16, topic string, ts ...int64) *kmsg.ListOffsetsRequest {
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = version
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = topic
	for _, x := range ts {
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Timestamp = x
		t.Partitions = append(t.Partitions, p)
	}
	req.Topics = append(req.Topics, t)
	return req
}

func TestListOffsets(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 2, maxTs: 1000})) // offsets 0-1
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 3, maxTs: 3000})) // 2-4
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 1, maxTs: 2000})) // 5
	hs.st.topics["t"].parts[0].logStart = 0

	type want struct{ off, ts int64 }
	cases := []struct {
		ts      int64
		version int16
		want    want
	}{
		{-1, 1, want{6, -1}},
		{-2, 1, want{0, -1}},
		{-1, 8, want{6, -1}},
		{-2, 8, want{0, -1}},
		{-3, 7, want{4, 3000}},
		{-4, 8, want{0, -1}},
		{0, 1, want{0, 1000}},
		{1000, 4, want{0, 1000}},
		{1001, 4, want{2, 3000}},
		{2500, 8, want{2, 3000}},
		{3001, 8, want{-1, -1}},
	}
	for _, c := range cases {
		resp := roundTrip[*kmsg.ListOffsetsResponse](hs, listOffsetsReq(c.version, "t", c.ts))
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.Offset != c.want.off || p.Timestamp != c.want.ts {
			t.Fatalf("ts %d v%d: offset %d ts %d err %d, want %+v", c.ts, c.version, p.Offset, p.Timestamp, p.ErrorCode, c.want)
		}
		wantEpoch := int32(-1)
		if c.version >= 4 && c.want.off >= 0 {
			wantEpoch = 0
		}
		if p.LeaderEpoch != wantEpoch {
			t.Fatalf("ts %d v%d: leader epoch %d", c.ts, c.version, p.LeaderEpoch)
		}
	}
}

func TestListOffsetsErrors(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	resp := roundTrip[*kmsg.ListOffsetsResponse](hs, listOffsetsReq(5, "nope", -1))
	if c := resp.Topics[0].Partitions[0].ErrorCode; c != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: %d", c)
	}
	req := listOffsetsReq(5, "t", -1)
	req.Topics[0].Partitions[0].Partition = 9
	if c := roundTrip[*kmsg.ListOffsetsResponse](hs, req).Topics[0].Partitions[0].ErrorCode; c != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown partition: %d", c)
	}
	// Same partition twice.
	req = listOffsetsReq(5, "t", -1, -2)
	for _, p := range roundTrip[*kmsg.ListOffsetsResponse](hs, req).Topics[0].Partitions {
		if p.ErrorCode != kerr.InvalidRequest.Code {
			t.Fatalf("duplicate partition: %d", p.ErrorCode)
		}
	}
	req = listOffsetsReq(5, "t", -1)
	req.Topics[0].Partitions[0].CurrentLeaderEpoch = 2
	if c := roundTrip[*kmsg.ListOffsetsResponse](hs, req).Topics[0].Partitions[0].ErrorCode; c != kerr.UnknownLeaderEpoch.Code {
		t.Fatalf("future epoch: %d", c)
	}
}

// ---- Metadata ----

func metadataReq(version int16, allowCreate bool, topics ...string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = version
	req.AllowAutoTopicCreation = allowCreate
	if topics == nil {
		if version == 0 {
			req.Topics = []kmsg.MetadataRequestTopic{}
		}
		return req
	}
	req.Topics = []kmsg.MetadataRequestTopic{}
	for _, n := range topics {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = strPtr(n)
		req.Topics = append(req.Topics, t)
	}
	return req
}

func TestMetadataAllVersions(t *testing.T) {
	for v := int16(0); v <= 13; v++ {
		hs := newHarness(t)
		hs.createTopic("b", 2, nil)
		hs.createTopic("a", 1, nil)
		resp := roundTrip[*kmsg.MetadataResponse](hs, metadataReq(v, false))
		if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 1 || resp.Brokers[0].Host != "broker.test" || resp.Brokers[0].Port != 9092 {
			t.Fatalf("v%d brokers: %+v", v, resp.Brokers)
		}
		if v >= 1 && resp.ControllerID != 1 {
			t.Fatalf("v%d controller %d", v, resp.ControllerID)
		}
		if v >= 2 && (resp.ClusterID == nil || *resp.ClusterID != "klite-test") {
			t.Fatalf("v%d cluster id %v", v, resp.ClusterID)
		}
		if len(resp.Topics) != 4 || *resp.Topics[0].Topic != "a" || *resp.Topics[1].Topic != "b" {
			t.Fatalf("v%d: all topics: %+v", v, resp.Topics)
		}
		// The internal topics are listed too (flagged from v1).
		if co := resp.Topics[2]; *co.Topic != "__consumer_offsets" || v >= 1 && !co.IsInternal || len(co.Partitions) != offsetsTopicPartitions ||
			resp.Topics[0].IsInternal || resp.Topics[1].IsInternal {
			t.Fatalf("v%d: internal topic: %+v", v, co)
		}
		if ts := resp.Topics[3]; *ts.Topic != "__transaction_state" || v >= 1 && !ts.IsInternal || len(ts.Partitions) != txnTopicPartitions {
			t.Fatalf("v%d: internal topic: %+v", v, ts)
		}
		b := resp.Topics[1]
		info, _ := hs.st.Topic("b")
		if v >= 10 && b.TopicID != info.ID {
			t.Fatalf("v%d: topic id missing", v)
		}
		if v >= 8 && b.AuthorizedOperations != -2147483648 {
			t.Fatalf("v%d: authorized ops %d without asking", v, b.AuthorizedOperations)
		}
		if len(b.Partitions) != 2 {
			t.Fatalf("v%d: %d partitions", v, len(b.Partitions))
		}
		for i, p := range b.Partitions {
			if p.Partition != int32(i) || p.Leader != 1 || len(p.Replicas) != 1 || p.Replicas[0] != 1 || len(p.ISR) != 1 || p.ISR[0] != 1 || p.ErrorCode != 0 {
				t.Fatalf("v%d: partition %+v", v, p)
			}
			if v >= 7 && p.LeaderEpoch != 0 {
				t.Fatalf("v%d: leader epoch %d", v, p.LeaderEpoch)
			}
		}
		// v1+: an empty list means no topics.
		if v >= 1 {
			req := metadataReq(v, false)
			req.Topics = []kmsg.MetadataRequestTopic{}
			if resp := roundTrip[*kmsg.MetadataResponse](hs, req); len(resp.Topics) != 0 {
				t.Fatalf("v%d: empty list answered %d topics", v, len(resp.Topics))
			}
		}
	}
}

func TestMetadataAutoCreate(t *testing.T) {
	// v0-v3 create whenever the broker allows it; v4+ only when asked.
	for _, c := range []struct {
		version   int16
		allow     bool
		brokerOn  bool
		wantTopic bool
	}{
		{0, false, true, true},
		{3, false, true, true},
		{3, false, false, false},
		{4, false, true, false},
		{4, true, true, true},
		{9, true, false, false},
		{12, true, true, true},
	} {
		hs := newHarness(t, func(cfg *Config) { cfg.AutoCreateTopics = c.brokerOn; cfg.DefaultPartitions = 3 })
		resp := roundTrip[*kmsg.MetadataResponse](hs, metadataReq(c.version, c.allow, "new.topic"))
		rt := resp.Topics[0]
		_, exists := hs.st.Topic("new.topic")
		if exists != c.wantTopic {
			t.Fatalf("%+v: created %v", c, exists)
		}
		if c.wantTopic && (rt.ErrorCode != 0 || len(rt.Partitions) != 3) {
			t.Fatalf("%+v: created topic answered %d with %d partitions", c, rt.ErrorCode, len(rt.Partitions))
		}
		if !c.wantTopic && rt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("%+v: missing topic answered %d", c, rt.ErrorCode)
		}
	}
	// Invalid names: INVALID_TOPIC_EXCEPTION when creation was asked for.
	hs := newHarness(t)
	resp := roundTrip[*kmsg.MetadataResponse](hs, metadataReq(12, true, "bad/name", "..", "ok"))
	if resp.Topics[0].ErrorCode != kerr.InvalidTopicException.Code || resp.Topics[1].ErrorCode != kerr.InvalidTopicException.Code || resp.Topics[2].ErrorCode != 0 {
		t.Fatalf("invalid names: %d %d %d", resp.Topics[0].ErrorCode, resp.Topics[1].ErrorCode, resp.Topics[2].ErrorCode)
	}
	resp = roundTrip[*kmsg.MetadataResponse](hs, metadataReq(12, false, "bad/name"))
	if resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("invalid name without creation: %d", resp.Topics[0].ErrorCode)
	}
	// A storage failure while creating is reported per topic.
	hs.st.createErr = storage.ErrStorage
	resp = roundTrip[*kmsg.MetadataResponse](hs, metadataReq(12, true, "fails"))
	if resp.Topics[0].ErrorCode != kerr.KafkaStorageError.Code {
		t.Fatalf("create failure: %d", resp.Topics[0].ErrorCode)
	}
}

func TestMetadataByTopicIDAndAuthorizedOps(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	info, _ := hs.st.Topic("t")
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	req.IncludeTopicAuthorizedOperations = true
	for _, id := range [][16]byte{info.ID, {1, 2, 3}} {
		mt := kmsg.NewMetadataRequestTopic()
		mt.TopicID = id
		req.Topics = append(req.Topics, mt)
	}
	resp := roundTrip[*kmsg.MetadataResponse](hs, req)
	if rt := resp.Topics[0]; rt.ErrorCode != 0 || rt.Topic == nil || *rt.Topic != "t" || rt.AuthorizedOperations != topicAllOps {
		t.Fatalf("by id: %+v", rt)
	}
	if rt := resp.Topics[1]; rt.ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("unknown id: %d", rt.ErrorCode)
	}
	req = metadataReq(8, false, "t")
	req.IncludeClusterAuthorizedOperations = true
	if resp := roundTrip[*kmsg.MetadataResponse](hs, req); resp.AuthorizedOperations != clusterAllOps {
		t.Fatalf("cluster ops %d", resp.AuthorizedOperations)
	}
}

// ---- CreateTopics ----

type createSpec struct {
	name       string
	partitions int32
	rf         int16
	assign     map[int32][]int32
	configs    map[string]*string
}

func createReq(version int16, validateOnly bool, specs ...createSpec) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = version
	req.ValidateOnly = validateOnly
	for _, s := range specs {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = s.name, s.partitions, s.rf
		for p, rs := range s.assign {
			a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			a.Partition, a.Replicas = p, rs
			t.ReplicaAssignment = append(t.ReplicaAssignment, a)
		}
		for k, v := range s.configs {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			c.Name, c.Value = k, v
			t.Configs = append(t.Configs, c)
		}
		req.Topics = append(req.Topics, t)
	}
	return req
}

func TestCreateTopics(t *testing.T) {
	long := make([]byte, 250)
	for i := range long {
		long[i] = 'x'
	}
	cases := []struct {
		spec createSpec
		want int16
	}{
		{createSpec{name: "ok", partitions: 3, rf: 1}, 0},
		{createSpec{name: "defaults", partitions: -1, rf: -1}, 0},
		{createSpec{name: "exists", partitions: 1, rf: 1}, kerr.TopicAlreadyExists.Code},
		{createSpec{name: "bad name", partitions: 1, rf: 1}, kerr.InvalidTopicException.Code},
		{createSpec{name: string(long), partitions: 1, rf: 1}, kerr.InvalidTopicException.Code},
		{createSpec{name: ".", partitions: 1, rf: 1}, kerr.InvalidTopicException.Code},
		{createSpec{name: "zero", partitions: 0, rf: 1}, kerr.InvalidPartitions.Code},
		{createSpec{name: "neg", partitions: -5, rf: 1}, kerr.InvalidPartitions.Code},
		{createSpec{name: "huge", partitions: 1 << 30, rf: 1}, kerr.InvalidPartitions.Code},
		{createSpec{name: "rf3", partitions: 1, rf: 3}, kerr.InvalidReplicationFactor.Code},
		{createSpec{name: "rf0", partitions: 1, rf: 0}, kerr.InvalidReplicationFactor.Code},
		{createSpec{name: "assigned", partitions: -1, rf: -1, assign: map[int32][]int32{0: {1}, 1: {1}}}, 0},
		{createSpec{name: "assign-other", partitions: -1, rf: -1, assign: map[int32][]int32{0: {2}}}, kerr.InvalidReplicaAssignment.Code},
		{createSpec{name: "assign-gap", partitions: -1, rf: -1, assign: map[int32][]int32{0: {1}, 2: {1}}}, kerr.InvalidReplicaAssignment.Code},
		{createSpec{name: "assign-both", partitions: 2, rf: -1, assign: map[int32][]int32{0: {1}}}, kerr.InvalidRequest.Code},
		{createSpec{name: "cfg", partitions: 1, rf: 1, configs: map[string]*string{"retention.ms": strPtr("1000"), "cleanup.policy": strPtr("compact,delete")}}, 0},
		{createSpec{name: "cfg-unknown", partitions: 1, rf: 1, configs: map[string]*string{"no.such": strPtr("1")}}, kerr.InvalidConfig.Code},
		{createSpec{name: "cfg-bad-int", partitions: 1, rf: 1, configs: map[string]*string{"max.message.bytes": strPtr("lots")}}, kerr.InvalidConfig.Code},
		{createSpec{name: "cfg-bad-enum", partitions: 1, rf: 1, configs: map[string]*string{"message.timestamp.type": strPtr("Whenever")}}, kerr.InvalidConfig.Code},
		{createSpec{name: "cfg-null", partitions: 1, rf: 1, configs: map[string]*string{"retention.ms": nil}}, kerr.InvalidConfig.Code},
	}
	for _, v := range []int16{0, 1, 4, 5, 7} {
		hs := newHarness(t, func(c *Config) { c.DefaultPartitions = 2 })
		hs.createTopic("exists", 1, nil)
		for _, c := range cases {
			if v < 4 && c.spec.partitions == -1 && c.spec.assign == nil {
				continue // KIP-464 defaults are v4+
			}
			resp := roundTrip[*kmsg.CreateTopicsResponse](hs, createReq(v, false, c.spec))
			rt := resp.Topics[0]
			if rt.Topic != c.spec.name || rt.ErrorCode != c.want {
				t.Fatalf("v%d %q: error %d, want %d", v, c.spec.name, rt.ErrorCode, c.want)
			}
			if v >= 1 && c.want != 0 && (rt.ErrorMessage == nil || *rt.ErrorMessage == "") {
				t.Fatalf("v%d %q: no error message", v, c.spec.name)
			}
			info, created := hs.st.Topic(c.spec.name)
			if created != (c.want == 0 || c.spec.name == "exists") {
				t.Fatalf("v%d %q: created=%v", v, c.spec.name, created)
			}
			if c.want != 0 {
				continue
			}
			if v >= 5 {
				if rt.NumPartitions != info.Partitions || rt.ReplicationFactor != 1 || len(rt.Configs) != len(topicConfigNames) {
					t.Fatalf("v%d %q: %+v", v, c.spec.name, rt)
				}
			}
			if v >= 7 && rt.TopicID != info.ID {
				t.Fatalf("v%d %q: topic id", v, c.spec.name)
			}
		}
		if info, _ := hs.st.Topic("defaults"); v >= 4 && info.Partitions != 2 {
			t.Fatalf("v%d: default partitions %d", v, info.Partitions)
		}
		if info, _ := hs.st.Topic("cfg"); info.Configs["retention.ms"] != "1000" {
			t.Fatalf("v%d: configs not stored: %v", v, info.Configs)
		}
	}
}

func TestCreateTopicsValidateOnlyAndDuplicates(t *testing.T) {
	hs := newHarness(t)
	resp := roundTrip[*kmsg.CreateTopicsResponse](hs, createReq(5, true,
		createSpec{name: "v", partitions: 4, rf: 1, configs: map[string]*string{"segment.ms": strPtr("1000")}}))
	rt := resp.Topics[0]
	if rt.ErrorCode != 0 || rt.NumPartitions != 4 {
		t.Fatalf("validate only: %+v", rt)
	}
	var seg *kmsg.CreateTopicsResponseTopicConfig
	for i := range rt.Configs {
		if rt.Configs[i].Name == "segment.ms" {
			seg = &rt.Configs[i]
		}
	}
	if seg == nil || *seg.Value != "1000" || seg.Source != int8(kmsg.ConfigSourceDynamicTopicConfig) {
		t.Fatalf("explicit config: %+v", seg)
	}
	if _, ok := hs.st.Topic("v"); ok {
		t.Fatal("validateOnly created the topic")
	}
	resp = roundTrip[*kmsg.CreateTopicsResponse](hs, createReq(5, false,
		createSpec{name: "d", partitions: 1, rf: 1}, createSpec{name: "d", partitions: 1, rf: 1}, createSpec{name: "e", partitions: 1, rf: 1}))
	if resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code || resp.Topics[1].ErrorCode != kerr.InvalidRequest.Code || resp.Topics[2].ErrorCode != 0 {
		t.Fatalf("duplicates: %+v", resp.Topics)
	}
}

// ---- DeleteTopics ----

func TestDeleteTopics(t *testing.T) {
	for v := int16(0); v <= 6; v++ {
		hs := newHarness(t)
		hs.createTopic("a", 1, nil)
		hs.createTopic("b", 1, nil)
		info, _ := hs.st.Topic("b")
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.Version = v
		if v < 6 {
			req.TopicNames = []string{"a", "missing"}
		} else {
			for _, n := range []string{"a", "missing"} {
				dt := kmsg.NewDeleteTopicsRequestTopic()
				dt.Topic = strPtr(n)
				req.Topics = append(req.Topics, dt)
			}
			for _, id := range [][16]byte{info.ID, {7}} {
				dt := kmsg.NewDeleteTopicsRequestTopic()
				dt.TopicID = id
				req.Topics = append(req.Topics, dt)
			}
			req.Topics = append(req.Topics, kmsg.NewDeleteTopicsRequestTopic()) // neither
		}
		resp := roundTrip[*kmsg.DeleteTopicsResponse](hs, req)
		codes := []int16{}
		for _, rt := range resp.Topics {
			codes = append(codes, rt.ErrorCode)
		}
		want := []int16{0, kerr.UnknownTopicOrPartition.Code}
		if v >= 6 {
			want = append(want, 0, kerr.UnknownTopicID.Code, kerr.InvalidRequest.Code)
			if resp.Topics[2].Topic == nil || *resp.Topics[2].Topic != "b" {
				t.Fatalf("v6: deleted-by-id name not reported")
			}
		}
		if len(codes) != len(want) {
			t.Fatalf("v%d: codes %v want %v", v, codes, want)
		}
		for i := range want {
			if codes[i] != want[i] {
				t.Fatalf("v%d: codes %v want %v", v, codes, want)
			}
		}
		if _, ok := hs.st.Topic("a"); ok {
			t.Fatalf("v%d: a not deleted", v)
		}
		if _, ok := hs.st.Topic("b"); ok == (v >= 6) {
			t.Fatalf("v%d: b deleted=%v", v, !ok)
		}
	}
}

// ---- InitProducerId ----

func TestInitProducerID(t *testing.T) {
	hs := newHarness(t)
	seen := map[int64]bool{}
	for v := int16(0); v <= 5; v++ {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version = v
		resp := roundTrip[*kmsg.InitProducerIDResponse](hs, req)
		if resp.ErrorCode != 0 || resp.ProducerID < 0 || resp.ProducerEpoch != 0 || seen[resp.ProducerID] {
			t.Fatalf("v%d: %+v", v, resp)
		}
		seen[resp.ProducerID] = true
		if v >= 3 {
			// KIP-360 bump: a fresh id.
			req.ProducerID, req.ProducerEpoch = resp.ProducerID, 0
			again := roundTrip[*kmsg.InitProducerIDResponse](hs, req)
			if again.ErrorCode != 0 || seen[again.ProducerID] {
				t.Fatalf("v%d bump: %+v", v, again)
			}
			seen[again.ProducerID] = true
			req.ProducerID, req.ProducerEpoch = 5, -1
			if bad := roundTrip[*kmsg.InitProducerIDResponse](hs, req); bad.ErrorCode != kerr.InvalidRequest.Code {
				t.Fatalf("v%d half-set id/epoch: %d", v, bad.ErrorCode)
			}
		}
		req = kmsg.NewPtrInitProducerIDRequest()
		req.Version = v
		req.TransactionalID = strPtr("txn")
		if r := roundTrip[*kmsg.InitProducerIDResponse](hs, req); r.ErrorCode != kerr.CoordinatorNotAvailable.Code || r.ProducerID != -1 {
			t.Fatalf("v%d transactional without a coordinator: %+v", v, r)
		}
		req.TransactionalID = strPtr("")
		if r := roundTrip[*kmsg.InitProducerIDResponse](hs, req); r.ErrorCode != kerr.InvalidRequest.Code {
			t.Fatalf("v%d empty transactional id: %d", v, r.ErrorCode)
		}
	}
	hs.st.appendErr = storage.ErrStorage
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	if r := roundTrip[*kmsg.InitProducerIDResponse](hs, req); r.ErrorCode != kerr.KafkaStorageError.Code {
		t.Fatalf("storage failure: %d", r.ErrorCode)
	}
}

// Node id 0 is a valid broker id: it must not be replaced by a default.
func TestMetadataNodeIDZero(t *testing.T) {
	hs := newHarness(t, func(c *Config) { c.NodeID = 0 })
	hs.createTopic("t", 2, nil)
	for v := int16(0); v <= 13; v++ {
		resp := roundTrip[*kmsg.MetadataResponse](hs, metadataReq(v, false))
		if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 0 {
			t.Fatalf("v%d brokers: %+v", v, resp.Brokers)
		}
		if v >= 1 && resp.ControllerID != 0 {
			t.Fatalf("v%d controller %d", v, resp.ControllerID)
		}
		if len(resp.Topics) != 3 || len(resp.Topics[0].Partitions) != 2 { // t and the two internal topics
			t.Fatalf("v%d topics: %+v", v, resp.Topics)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.Leader != 0 || len(p.Replicas) != 1 || p.Replicas[0] != 0 || len(p.ISR) != 1 || p.ISR[0] != 0 {
				t.Fatalf("v%d partition %+v", v, p)
			}
		}
	}
	// Manual assignments name broker 0.
	resp := roundTrip[*kmsg.CreateTopicsResponse](hs, createReq(5, false,
		createSpec{name: "assigned", partitions: -1, rf: -1, assign: map[int32][]int32{0: {0}}}))
	if c := resp.Topics[0].ErrorCode; c != 0 {
		t.Fatalf("assignment to node 0: error %d", c)
	}
}
