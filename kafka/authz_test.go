package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

// authzAPICase is one API's required operation: served with no ACL it
// answers want; with grant it answers anything else.
type authzAPICase struct {
	name  string
	key   int16
	req   func() kmsg.Request
	grant []acl.Binding
	// pre are ACLs present in both runs (the check before the one tested).
	pre []acl.Binding
	// code extracts the error the check is about from the response.
	code func(kmsg.Response) int16
	want int16
}

func allowACL(rt acl.ResourceType, name string, op acl.Operation) acl.Binding {
	return acl.Binding{ResourceType: rt, Name: name, Pattern: acl.PatternLiteral, Principal: anonymous, Host: "*", Operation: op, Permission: acl.PermissionAllow}
}

var (
	topicAuthFailed   = kerr.TopicAuthorizationFailed.Code
	clusterAuthFailed = kerr.ClusterAuthorizationFailed.Code
)

func authzAPICases() []authzAPICase {
	topicT := func(op acl.Operation) []acl.Binding { return []acl.Binding{allowACL(acl.ResourceTopic, "t", op)} }
	groupG := func(op acl.Operation) []acl.Binding { return []acl.Binding{allowACL(acl.ResourceGroup, "g", op)} }
	cluster := func(op acl.Operation) []acl.Binding {
		return []acl.Binding{allowACL(acl.ResourceCluster, acl.ClusterName, op)}
	}
	return []authzAPICase{
		{name: "Produce WRITE topic", key: 0, want: topicAuthFailed, grant: topicT(acl.OpWrite),
			req: func() kmsg.Request {
				r := kmsg.NewPtrProduceRequest()
				r.Version, r.Acks, r.TimeoutMillis = 9, -1, 5000
				t := kmsg.NewProduceRequestTopic()
				t.Topic = "t"
				p := kmsg.NewProduceRequestTopicPartition()
				p.Records = makeBatch(batchOpts{records: 1})
				t.Partitions = append(t.Partitions, p)
				r.Topics = append(r.Topics, t)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode }},
		{name: "Fetch READ topic", key: 1, want: topicAuthFailed, grant: topicT(acl.OpRead),
			req: func() kmsg.Request {
				r := kmsg.NewPtrFetchRequest()
				r.Version, r.MaxBytes = 12, 1<<20
				t := kmsg.NewFetchRequestTopic()
				t.Topic = "t"
				p := kmsg.NewFetchRequestTopicPartition()
				p.PartitionMaxBytes = 1 << 20
				t.Partitions = append(t.Partitions, p)
				r.Topics = append(r.Topics, t)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode }},
		{name: "ListOffsets DESCRIBE topic", key: 2, want: topicAuthFailed, grant: topicT(acl.OpDescribe),
			req: func() kmsg.Request {
				r := kmsg.NewPtrListOffsetsRequest()
				r.Version = 8
				t := kmsg.NewListOffsetsRequestTopic()
				t.Topic = "t"
				p := kmsg.NewListOffsetsRequestTopicPartition()
				p.Timestamp = -1
				t.Partitions = append(t.Partitions, p)
				r.Topics = append(r.Topics, t)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode }},
		{name: "Metadata DESCRIBE topic", key: 3, want: topicAuthFailed, grant: topicT(acl.OpRead),
			req: func() kmsg.Request {
				r := kmsg.NewPtrMetadataRequest()
				r.Version = 12
				t := kmsg.NewMetadataRequestTopic()
				t.Topic = strPtr("t")
				r.Topics = append(r.Topics, t)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.MetadataResponse).Topics[0].ErrorCode }},
		{name: "Metadata auto-create CREATE", key: 3, want: topicAuthFailed, grant: cluster(acl.OpCreate),
			pre: []acl.Binding{allowACL(acl.ResourceTopic, "new", acl.OpDescribe)},
			req: func() kmsg.Request {
				r := kmsg.NewPtrMetadataRequest()
				r.Version, r.AllowAutoTopicCreation = 12, true
				t := kmsg.NewMetadataRequestTopic()
				t.Topic = strPtr("new")
				r.Topics = append(r.Topics, t)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.MetadataResponse).Topics[0].ErrorCode }},
		{name: "OffsetCommit READ group", key: 8, want: groupAuthFailed, grant: groupG(acl.OpRead), pre: topicT(acl.OpRead),
			req:  func() kmsg.Request { return offsetCommitReq() },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode }},
		{name: "OffsetCommit READ topic", key: 8, want: topicAuthFailed, grant: topicT(acl.OpRead), pre: groupG(acl.OpRead),
			req:  func() kmsg.Request { return offsetCommitReq() },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode }},
		{name: "OffsetFetch DESCRIBE group", key: 9, want: groupAuthFailed, grant: groupG(acl.OpDescribe),
			req: func() kmsg.Request {
				r := kmsg.NewPtrOffsetFetchRequest()
				r.Version, r.Group = 7, "g"
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.OffsetFetchResponse).ErrorCode }},
		{name: "OffsetFetch DESCRIBE topic", key: 9, want: topicAuthFailed, grant: topicT(acl.OpDescribe), pre: groupG(acl.OpDescribe),
			req: func() kmsg.Request {
				r := kmsg.NewPtrOffsetFetchRequest()
				r.Version, r.Group = 7, "g"
				t := kmsg.NewOffsetFetchRequestTopic()
				t.Topic, t.Partitions = "t", []int32{0}
				r.Topics = append(r.Topics, t)
				return r
			},
			code: func(r kmsg.Response) int16 {
				resp := r.(*kmsg.OffsetFetchResponse)
				if resp.ErrorCode != 0 {
					return resp.ErrorCode
				}
				return resp.Topics[0].Partitions[0].ErrorCode
			}},
		{name: "FindCoordinator DESCRIBE group", key: 10, want: groupAuthFailed, grant: groupG(acl.OpDescribe),
			req: func() kmsg.Request {
				r := kmsg.NewPtrFindCoordinatorRequest()
				r.Version, r.CoordinatorKey = 3, "g"
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.FindCoordinatorResponse).ErrorCode }},
		{name: "JoinGroup READ group", key: 11, want: groupAuthFailed, grant: groupG(acl.OpRead),
			req: func() kmsg.Request {
				r := kmsg.NewPtrJoinGroupRequest()
				r.Version, r.Group, r.ProtocolType, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 5, "g", "consumer", 10000, 10000
				p := kmsg.NewJoinGroupRequestProtocol()
				p.Name = "range"
				r.Protocols = append(r.Protocols, p)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.JoinGroupResponse).ErrorCode }},
		{name: "Heartbeat READ group", key: 12, want: groupAuthFailed, grant: groupG(acl.OpRead),
			req: func() kmsg.Request {
				r := kmsg.NewPtrHeartbeatRequest()
				r.Version, r.Group, r.MemberID = 4, "g", "m"
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.HeartbeatResponse).ErrorCode }},
		{name: "LeaveGroup READ group", key: 13, want: groupAuthFailed, grant: groupG(acl.OpRead),
			req: func() kmsg.Request {
				r := kmsg.NewPtrLeaveGroupRequest()
				r.Version, r.Group, r.MemberID = 0, "g", "m"
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.LeaveGroupResponse).ErrorCode }},
		{name: "SyncGroup READ group", key: 14, want: groupAuthFailed, grant: groupG(acl.OpRead),
			req: func() kmsg.Request {
				r := kmsg.NewPtrSyncGroupRequest()
				r.Version, r.Group, r.MemberID = 5, "g", "m"
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.SyncGroupResponse).ErrorCode }},
		{name: "DescribeGroups DESCRIBE group", key: 15, want: groupAuthFailed, grant: groupG(acl.OpDescribe),
			req: func() kmsg.Request {
				r := kmsg.NewPtrDescribeGroupsRequest()
				r.Version, r.Groups = 5, []string{"g"}
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeGroupsResponse).Groups[0].ErrorCode }},
		{name: "ListGroups DESCRIBE group or cluster", key: 16, want: groupAuthFailed, grant: groupG(acl.OpDescribe),
			req: func() kmsg.Request {
				r := kmsg.NewPtrListGroupsRequest()
				r.Version = 4
				return r
			},
			// The group committed to in setup is listed only when allowed.
			code: func(r kmsg.Response) int16 {
				if len(r.(*kmsg.ListGroupsResponse).Groups) == 0 {
					return groupAuthFailed
				}
				return 0
			}},
		{name: "ListGroups DESCRIBE cluster", key: 16, want: groupAuthFailed, grant: cluster(acl.OpDescribe),
			req: func() kmsg.Request {
				r := kmsg.NewPtrListGroupsRequest()
				r.Version = 4
				return r
			},
			code: func(r kmsg.Response) int16 {
				if len(r.(*kmsg.ListGroupsResponse).Groups) == 0 {
					return groupAuthFailed
				}
				return 0
			}},
		{name: "CreateTopics CREATE topic", key: 19, want: topicAuthFailed, grant: []acl.Binding{allowACL(acl.ResourceTopic, "new", acl.OpCreate)},
			req:  func() kmsg.Request { return createTopicsReq() },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode }},
		{name: "CreateTopics CREATE cluster", key: 19, want: topicAuthFailed, grant: cluster(acl.OpCreate),
			req:  func() kmsg.Request { return createTopicsReq() },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode }},
		{name: "DeleteTopics DELETE topic", key: 20, want: topicAuthFailed, grant: topicT(acl.OpDelete),
			req: func() kmsg.Request {
				r := kmsg.NewPtrDeleteTopicsRequest()
				r.Version, r.TopicNames = 5, []string{"t"}
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode }},
		{name: "DeleteRecords DELETE topic", key: 21, want: topicAuthFailed, grant: topicT(acl.OpDelete),
			req: func() kmsg.Request {
				r := kmsg.NewPtrDeleteRecordsRequest()
				r.Version = 2
				t := kmsg.NewDeleteRecordsRequestTopic()
				t.Topic = "t"
				p := kmsg.NewDeleteRecordsRequestTopicPartition()
				t.Partitions = append(t.Partitions, p)
				r.Topics = append(r.Topics, t)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0].ErrorCode }},
		{name: "InitProducerId WRITE on any topic", key: 22, want: clusterAuthFailed, grant: topicT(acl.OpWrite),
			req:  func() kmsg.Request { r := kmsg.NewPtrInitProducerIDRequest(); r.Version = 4; return r },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode }},
		{name: "InitProducerId IDEMPOTENT_WRITE cluster", key: 22, want: clusterAuthFailed, grant: cluster(acl.OpIdempotentWrite),
			req:  func() kmsg.Request { r := kmsg.NewPtrInitProducerIDRequest(); r.Version = 4; return r },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode }},
		{name: "DescribeAcls DESCRIBE cluster", key: 29, want: clusterAuthFailed, grant: cluster(acl.OpDescribe),
			req:  func() kmsg.Request { return describeAnyReq(3) },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeACLsResponse).ErrorCode }},
		{name: "CreateAcls ALTER cluster", key: 30, want: clusterAuthFailed, grant: cluster(acl.OpAlter),
			req: func() kmsg.Request {
				return createACLsReq(3, creation(kmsg.ACLResourceTypeTopic, "x", kmsg.ACLResourcePatternTypeLiteral, "User:a", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow))
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.CreateACLsResponse).Results[0].ErrorCode }},
		{name: "DeleteAcls ALTER cluster", key: 31, want: clusterAuthFailed, grant: cluster(acl.OpAlter),
			req: func() kmsg.Request {
				r := kmsg.NewPtrDeleteACLsRequest()
				r.Version = 3
				f := kmsg.NewDeleteACLsRequestFilter()
				f.ResourceType, f.ResourcePatternType, f.Operation, f.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny, kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAny
				r.Filters = append(r.Filters, f)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DeleteACLsResponse).Results[0].ErrorCode }},
		{name: "DescribeConfigs DESCRIBE_CONFIGS topic", key: 32, want: topicAuthFailed, grant: topicT(acl.OpAlterConfigs),
			req:  func() kmsg.Request { return describeConfigsReq(kmsg.ConfigResourceTypeTopic, "t") },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeConfigsResponse).Resources[0].ErrorCode }},
		{name: "DescribeConfigs DESCRIBE_CONFIGS cluster", key: 32, want: clusterAuthFailed, grant: cluster(acl.OpDescribeConfigs),
			req:  func() kmsg.Request { return describeConfigsReq(kmsg.ConfigResourceTypeBroker, "1") },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeConfigsResponse).Resources[0].ErrorCode }},
		{name: "AlterConfigs ALTER_CONFIGS topic", key: 33, want: topicAuthFailed, grant: topicT(acl.OpAlterConfigs),
			req: func() kmsg.Request {
				r := kmsg.NewPtrAlterConfigsRequest()
				r.Version = 2
				res := kmsg.NewAlterConfigsRequestResource()
				res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "t"
				c := kmsg.NewAlterConfigsRequestResourceConfig()
				c.Name, c.Value = "retention.ms", strPtr("1000")
				res.Configs = append(res.Configs, c)
				r.Resources = append(r.Resources, res)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.AlterConfigsResponse).Resources[0].ErrorCode }},
		{name: "CreatePartitions ALTER topic", key: 37, want: topicAuthFailed, grant: topicT(acl.OpAlter),
			req: func() kmsg.Request {
				r := kmsg.NewPtrCreatePartitionsRequest()
				r.Version, r.TimeoutMillis = 3, 5000
				t := kmsg.NewCreatePartitionsRequestTopic()
				t.Topic, t.Count = "t", 4
				r.Topics = append(r.Topics, t)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.CreatePartitionsResponse).Topics[0].ErrorCode }},
		{name: "DeleteGroups DELETE group", key: 42, want: groupAuthFailed, grant: groupG(acl.OpDelete),
			req: func() kmsg.Request {
				r := kmsg.NewPtrDeleteGroupsRequest()
				r.Version, r.Groups = 2, []string{"g"}
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode }},
		{name: "IncrementalAlterConfigs ALTER_CONFIGS topic", key: 44, want: topicAuthFailed, grant: topicT(acl.OpAlterConfigs),
			req: func() kmsg.Request {
				r := kmsg.NewPtrIncrementalAlterConfigsRequest()
				r.Version = 1
				res := kmsg.NewIncrementalAlterConfigsRequestResource()
				res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "t"
				c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
				c.Name, c.Value = "retention.ms", strPtr("1000")
				res.Configs = append(res.Configs, c)
				r.Resources = append(r.Resources, res)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode }},
		{name: "IncrementalAlterConfigs ALTER_CONFIGS cluster", key: 44, want: clusterAuthFailed, grant: cluster(acl.OpAlterConfigs),
			req: func() kmsg.Request {
				return incAlterReq(1, false, alterSpec{typ: kmsg.ConfigResourceTypeBroker, ops: []opSpec{set("message.max.bytes", "1000")}})
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode }},
		{name: "OffsetDelete DELETE group", key: 47, want: groupAuthFailed, grant: groupG(acl.OpDelete),
			req:  func() kmsg.Request { return offsetDeleteReq() },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.OffsetDeleteResponse).ErrorCode }},
		{name: "OffsetDelete READ topic", key: 47, want: topicAuthFailed, grant: topicT(acl.OpRead), pre: groupG(acl.OpDelete),
			req: func() kmsg.Request { return offsetDeleteReq() },
			code: func(r kmsg.Response) int16 {
				resp := r.(*kmsg.OffsetDeleteResponse)
				if resp.ErrorCode != 0 || len(resp.Topics) == 0 {
					return resp.ErrorCode
				}
				return resp.Topics[0].Partitions[0].ErrorCode
			}},
		{name: "DescribeClientQuotas DESCRIBE_CONFIGS cluster", key: 48, want: clusterAuthFailed, grant: cluster(acl.OpAlterConfigs),
			req: func() kmsg.Request {
				r := kmsg.NewPtrDescribeClientQuotasRequest()
				r.Version = 1
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeClientQuotasResponse).ErrorCode }},
		{name: "AlterClientQuotas ALTER_CONFIGS cluster", key: 49, want: clusterAuthFailed, grant: cluster(acl.OpAlterConfigs),
			req: func() kmsg.Request {
				r := kmsg.NewPtrAlterClientQuotasRequest()
				r.Version = 1
				r.Entries = append(r.Entries, alterEntry([]qc{named("user", "alice")}, setOp("producer_byte_rate", 1024)))
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.AlterClientQuotasResponse).Entries[0].ErrorCode }},
		{name: "DescribeUserScramCredentials DESCRIBE cluster", key: 50, want: clusterAuthFailed, grant: cluster(acl.OpDescribe),
			req:  func() kmsg.Request { return kmsg.NewPtrDescribeUserSCRAMCredentialsRequest() },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeUserSCRAMCredentialsResponse).ErrorCode }},
		{name: "AlterUserScramCredentials ALTER cluster", key: 51, want: clusterAuthFailed, grant: cluster(acl.OpAlter),
			req: func() kmsg.Request {
				r := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
				u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
				u.Name, u.Mechanism, u.Iterations, u.Salt, u.SaltedPassword = "carol", 1, 4096, []byte("salt"), make([]byte, 32)
				r.Upsertions = append(r.Upsertions, u)
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.AlterUserSCRAMCredentialsResponse).Results[0].ErrorCode }},
		{name: "ConsumerGroupHeartbeat READ group", key: 68, want: groupAuthFailed, grant: groupG(acl.OpRead),
			req: func() kmsg.Request {
				r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
				r.Version, r.Group, r.MemberID, r.MemberEpoch = 0, "g", "m", -1
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode }},
		{name: "ConsumerGroupHeartbeat DESCRIBE subscribed topic", key: 68, want: topicAuthFailed, grant: topicT(acl.OpDescribe), pre: groupG(acl.OpRead),
			req: func() kmsg.Request {
				r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
				r.Version, r.Group, r.MemberID, r.MemberEpoch = 0, "g", "m", 0
				r.SubscribedTopicNames = []string{"t"}
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode }},
		{name: "ConsumerGroupDescribe DESCRIBE group", key: 69, want: groupAuthFailed, grant: groupG(acl.OpDescribe),
			req: func() kmsg.Request {
				r := kmsg.NewPtrConsumerGroupDescribeRequest()
				r.Version, r.Groups = 0, []string{"g"}
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.ConsumerGroupDescribeResponse).Groups[0].ErrorCode }},
	}
}

func offsetCommitReq() *kmsg.OffsetCommitRequest {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version, r.Group, r.Generation = 8, "g", -1
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = "t"
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	p.Offset = 1
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	return r
}

func offsetDeleteReq() *kmsg.OffsetDeleteRequest {
	r := kmsg.NewPtrOffsetDeleteRequest()
	r.Group = "g"
	t := kmsg.NewOffsetDeleteRequestTopic()
	t.Topic = "t"
	p := kmsg.NewOffsetDeleteRequestTopicPartition()
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	return r
}

func createTopicsReq() *kmsg.CreateTopicsRequest {
	r := kmsg.NewPtrCreateTopicsRequest()
	r.Version, r.TimeoutMillis = 5, 5000
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = "new", 1, 1
	r.Topics = append(r.Topics, t)
	return r
}

func describeConfigsReq(typ kmsg.ConfigResourceType, name string) *kmsg.DescribeConfigsRequest {
	r := kmsg.NewPtrDescribeConfigsRequest()
	r.Version = 4
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName = typ, name
	r.Resources = append(r.Resources, res)
	return r
}

// TestAuthzEveryAPI runs each registered API with -authorizer: refused
// with no ACL (the API's authorization error), then allowed once the
// operation Kafka requires is granted. Every registered API has a case,
// except ApiVersions and the SASL exchange, which need none.
func TestAuthzEveryAPI(t *testing.T) {
	cases := append(authzAPICases(), wireAuthzCases()...)
	covered := map[int16]bool{apiVersionsKey: true, saslHandshakeKey: true, saslAuthenticateKey: true,
		getTelemetrySubscriptionsKey: true, pushTelemetryKey: true} // telemetry: no ACL in Kafka either
	for _, c := range cases {
		covered[c.key] = true
	}
	for k, a := range apis {
		if a != nil && !covered[int16(k)] {
			t.Errorf("api key %d has no authorization case", k)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, granted := range []bool{false, true} {
				var st *fakeStore
				store := &memACLStore{set: map[storage.ACL]bool{}}
				hs := newHarness(t, withGroups(t, &st), func(cfg *Config) {
					cfg.Authorizer = acl.New(acl.Config{})
					cfg.ACLStore = store
				})
				st = hs.st
				hs.createTopic("t", 3, nil)
				// A group with a committed offset, written past the checks.
				done := make(chan struct{})
				hs.h.cfg.Groups.OffsetCommit(offsetCommitReq(), func(*kmsg.OffsetCommitResponse) { close(done) })
				<-done
				hs.h.cfg.Authorizer.Add(c.pre...)
				if granted {
					hs.h.cfg.Authorizer.Add(c.grant...)
				}
				req := c.req()
				resp := roundTrip[kmsg.Response](hs, req)
				got := c.code(resp)
				if !granted && got != c.want {
					t.Fatalf("without the ACL: error %d (%v), want %d (%v)", got, kerr.ErrorForCode(got), c.want, kerr.ErrorForCode(c.want))
				}
				if granted && (got == c.want || got == topicAuthFailed || got == groupAuthFailed || got == clusterAuthFailed) {
					t.Fatalf("with %+v: error %d (%v)", c.grant, got, kerr.ErrorForCode(got))
				}
			}
		})
	}
}

// Metadata of all topics leaves out the ones the principal may not
// describe; the KIP-430 fields carry the operations it may perform.
func TestAuthzMetadata(t *testing.T) {
	hs, _ := aclHarness(t, acl.Config{})
	hs.createTopic("seen", 1, nil)
	hs.createTopic("hidden", 1, nil)
	hs.h.cfg.Authorizer.Add(allowACL(acl.ResourceTopic, "seen", acl.OpRead),
		allowACL(acl.ResourceCluster, acl.ClusterName, acl.OpDescribe))
	req := kmsg.NewPtrMetadataRequest()
	req.Version, req.IncludeTopicAuthorizedOperations, req.IncludeClusterAuthorizedOperations = 10, true, true
	resp := roundTrip[*kmsg.MetadataResponse](hs, req)
	if len(resp.Topics) != 1 || *resp.Topics[0].Topic != "seen" {
		t.Fatalf("all topics: %d topics, want only seen", len(resp.Topics))
	}
	if got, want := resp.Topics[0].AuthorizedOperations, int32(1<<acl.OpRead|1<<acl.OpDescribe); got != want {
		t.Fatalf("topic authorized operations %b, want %b", got, want)
	}
	if got, want := resp.AuthorizedOperations, int32(1<<acl.OpDescribe); got != want {
		t.Fatalf("cluster authorized operations %b, want %b", got, want)
	}
	// Listed: the hidden one is refused, not revealed as existing or not.
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: strPtr("hidden")}, {Topic: strPtr("absent")}, {Topic: strPtr("seen")}}
	resp = roundTrip[*kmsg.MetadataResponse](hs, req)
	for i, want := range []int16{topicAuthFailed, topicAuthFailed, 0} {
		if resp.Topics[i].ErrorCode != want || len(resp.Topics[i].Partitions) != map[bool]int{true: 1, false: 0}[want == 0] {
			t.Fatalf("topic %d: error %d with %d partitions, want %d", i, resp.Topics[i].ErrorCode, len(resp.Topics[i].Partitions), want)
		}
	}
	if _, ok := hs.st.Topic("absent"); ok {
		t.Fatal("a topic the principal may not create was auto-created")
	}
}

// OffsetFetch v8 (many groups): a refused group answers
// GROUP_AUTHORIZATION_FAILED beside an allowed one, and a fetch of all
// topics leaves out those the principal may not describe.
func TestAuthzOffsetFetchGroups(t *testing.T) {
	var st *fakeStore
	hs := newHarness(t, withGroups(t, &st), func(cfg *Config) {
		cfg.Authorizer = acl.New(acl.Config{})
		cfg.ACLStore = &memACLStore{set: map[storage.ACL]bool{}}
	})
	st = hs.st
	hs.createTopic("t", 3, nil)
	hs.createTopic("u", 1, nil)
	for _, g := range []string{"g", "h"} {
		for _, topic := range []string{"t", "u"} {
			req := offsetCommitReq()
			req.Group, req.Topics[0].Topic = g, topic
			done := make(chan struct{})
			hs.h.cfg.Groups.OffsetCommit(req, func(*kmsg.OffsetCommitResponse) { close(done) })
			<-done
		}
	}
	hs.h.cfg.Authorizer.Add(allowACL(acl.ResourceGroup, "g", acl.OpDescribe), allowACL(acl.ResourceTopic, "t", acl.OpDescribe))
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g"}, {Group: "h"}} // null topics: all
	resp := roundTrip[*kmsg.OffsetFetchResponse](hs, req)
	if len(resp.Groups) != 2 || resp.Groups[0].ErrorCode != 0 || resp.Groups[1].ErrorCode != groupAuthFailed {
		t.Fatalf("groups: %+v", resp.Groups)
	}
	if ts := resp.Groups[0].Topics; len(ts) != 1 || ts[0].Topic != "t" || ts[0].Partitions[0].Offset != 1 {
		t.Fatalf("topics of g: %+v, want only t at offset 1", ts)
	}
	if len(resp.Groups[1].Topics) != 0 {
		t.Fatalf("refused group h shows topics %+v", resp.Groups[1].Topics)
	}
}

// FuzzServeAuthz is FuzzServe with the authorizer on and a mix of ACLs
// (some allowing, some denying), so every API's authorization path sees
// every version and arbitrary input: answered once, never a panic.
func FuzzServeAuthz(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var st *fakeStore
		hs := newHarness(t, withGroups(t, &st), func(cfg *Config) {
			cfg.Authorizer = acl.New(acl.Config{})
			cfg.ACLStore = &memACLStore{set: map[storage.ACL]bool{}}
		})
		st = hs.st
		hs.createTopic("t", 2, nil)
		hs.createTopic("u", 1, nil)
		hs.h.cfg.Authorizer.Add(
			allowACL(acl.ResourceTopic, "t", acl.OpAll),
			allowACL(acl.ResourceGroup, "g", acl.OpRead),
			allowACL(acl.ResourceCluster, acl.ClusterName, acl.OpDescribe),
			acl.Binding{ResourceType: acl.ResourceTopic, Name: "u", Pattern: acl.PatternPrefixed, Principal: acl.WildcardPrincipal,
				Host: "*", Operation: acl.OpWrite, Permission: acl.PermissionDeny},
		)
		hs.st.appendSync = true
		hs.produceTo("t", 0, makeBatch(batchOpts{records: 2, payload: 10}))
		p := hs.serveFrame(frame)
		hs.h.Close()
		resp := p.wait(t)
		if resp.Release != nil {
			resp.Release()
		}
	})
}
