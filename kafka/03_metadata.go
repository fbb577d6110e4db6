package kafka

// Metadata (key 3), versions 0-13.
//
// Behaviour: one broker (NodeID at AdvertisedHost:AdvertisedPort, rack
// null); ControllerID is NodeID (v1+); ClusterID (v2+). Every partition is
// led by NodeID with leader epoch 0 (v7+), replicas and ISR [NodeID], no
// offline replicas. Topic IDs from v10. v13's top-level ErrorCode (KIP-1102)
// is always 0.
//
// Topics: null (v1+), or empty in v0, lists every topic; otherwise the listed
// ones, by name, or by topic ID in v10+ (UNKNOWN_TOPIC_ID when unknown).
// A missing topic is created when the broker has AutoCreateTopics and the
// request allows it (always in v0-v3; AllowAutoTopicCreation in v4+), with
// DefaultPartitions; an invalid name, or one colliding with an existing
// topic's once '.' is read as '_', then answers INVALID_TOPIC_EXCEPTION, and
// a create past the broker's -max-partitions POLICY_VIOLATION (as
// CreateTopics). Internal names (__consumer_offsets, __transaction_state) are
// never created by clients. Otherwise a missing topic answers
// UNKNOWN_TOPIC_OR_PARTITION. A topic appears whole or not at all: storage
// publishes a created topic with all its partitions once it is durable.
//
// ACLs (-authorizer): a listed topic needs DESCRIBE (else
// TOPIC_AUTHORIZATION_FAILED), and CREATE on the cluster or the topic to be
// auto-created (else TOPIC_AUTHORIZATION_FAILED); the all-topics list leaves
// out the topics that may not be described.
//
// Authorized operations (KIP-430, v8+): with ACLs, the operations the
// principal may perform; without, every operation the resource type
// supports, as Kafka answers without an authorizer; not asking gets
// -2147483648.
//
// Differences from Apache Kafka: a topic auto-created here is answered in the
// same response, complete, with no error (Kafka answers LEADER_NOT_AVAILABLE
// and lets the client retry until leaders are elected; klite has no election
// to wait for). Creation fsyncs metadata, so those requests are answered off
// the event loop, creating all their missing topics at once (one group
// commit); all others inline.

import (
	"errors"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

const metadataKey = 3

// maxAutoCreateAtOnce bounds the creations one Metadata request runs at once.
const maxAutoCreateAtOnce = 128

func init() { register(metadataKey, 0, 13, (*Handler).metadata) }

// Authorized-operation bitfields without an authorizer (AclOperation codes).
const (
	// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
	topicAllOps int32 = 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<10 | 1<<11
	// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
	clusterAllOps int32 = 1<<5 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12
)

func (h *Handler) metadata(r *request) {
	req := kmsg.NewPtrMetadataRequest()
	if !h.parse(r, req) {
		return
	}
	ln := h.listenerOf(r.nr.Conn)
	all := req.Topics == nil || (r.version == 0 && len(req.Topics) == 0)
	autoCreate := h.cfg.AutoCreateTopics && (r.version < 4 || req.AllowAutoTopicCreation)
	orig, denied := req, h.metadataDenied(r, req, all, autoCreate)
	if denied != nil {
		req = hideDenied(req, denied)
	}
	if !all && autoCreate {
		for i := range req.Topics {
			t := &req.Topics[i]
			if t.Topic == nil {
				continue
			}
			if _, ok := h.st.Topic(*t.Topic); !ok && autoCreatable(*t.Topic) {
				h.asyncRead(r, func() { r.respond(h.metadataAuthz(r, orig, denied, h.metadataResponse(r.version, req, ln, all, true))) })
				return
			}
		}
	}
	r.respond(h.metadataAuthz(r, orig, denied, h.metadataResponse(r.version, req, ln, all, false)))
}

// metadataResponse builds the response; with create, missing topics are
// created first (this may block on an fsync).
func (h *Handler) metadataResponse(version int16, req *kmsg.MetadataRequest, ln Listener, all, create bool) *kmsg.MetadataResponse {
	resp := kmsg.NewPtrMetadataResponse()
	resp.Version = version
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = h.cfg.NodeID, ln.Host, ln.Port
	resp.Brokers = []kmsg.MetadataResponseBroker{b}
	resp.ClusterID = &h.cfg.ClusterID
	resp.ControllerID = h.cfg.NodeID
	if version >= 8 && version <= 10 && req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = clusterAllOps
	}

	if all {
		topics := h.allTopics()
		resp.Topics = make([]kmsg.MetadataResponseTopic, len(topics))
		for i := range topics {
			h.fillTopic(&resp.Topics[i], &topics[i], req)
		}
		return resp
	}
	resp.Topics = make([]kmsg.MetadataResponseTopic, len(req.Topics))
	var created map[string]error
	if create {
		created = h.autoCreate(req)
	}
	for i := range req.Topics {
		t := &req.Topics[i]
		rt := &resp.Topics[i]
		rt.Default()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		if t.Topic == nil {
			// By topic ID (v10+).
			if info, ok := h.topicByID(storage.TopicID(t.TopicID)); ok {
				h.fillTopic(rt, &info, req)
			} else {
				rt.ErrorCode = kerr.UnknownTopicID.Code
			}
			continue
		}
		name := *t.Topic
		info, ok := h.topic(name)
		if err, tried := created[name]; tried && !ok {
			if err != nil && !errors.Is(err, storage.ErrTopicExists) {
				rt.ErrorCode = h.errCode(err)
				continue
			}
			// Lost a race with another creator: use theirs.
			info, ok = h.st.Topic(name)
		}
		if !ok {
			if h.cfg.AutoCreateTopics && (version < 4 || req.AllowAutoTopicCreation) && !validTopicName(name) {
				rt.ErrorCode = kerr.InvalidTopicException.Code
			} else {
				rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			continue
		}
		h.fillTopic(rt, &info, req)
	}
	return resp
}

// autoCreate creates the missing topics req names that may be
// auto-created, all at once so their metadata shares fsyncs, and returns
// each one's error.
func (h *Handler) autoCreate(req *kmsg.MetadataRequest) map[string]error {
	var names []string
	seen := map[string]bool{}
	for i := range req.Topics {
		t := req.Topics[i].Topic
		if t == nil || seen[*t] || !autoCreatable(*t) {
			continue
		}
		seen[*t] = true
		if _, ok := h.st.Topic(*t); !ok {
			names = append(names, *t)
		}
	}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxAutoCreateAtOnce)
	for i, name := range names {
		sem <- struct{}{}
		wg.Go(func() {
			_, errs[i] = h.st.CreateTopic(name, h.cfg.DefaultPartitions, nil)
			<-sem
		})
	}
	wg.Wait()
	out := make(map[string]error, len(names))
	for i, name := range names {
		out[name] = errs[i]
	}
	return out
}

// autoCreatable reports whether Metadata may create a topic of that name.
func autoCreatable(name string) bool { return validTopicName(name) && !internalTopic(name) }

func (h *Handler) fillTopic(rt *kmsg.MetadataResponseTopic, info *storage.TopicInfo, req *kmsg.MetadataRequest) {
	rt.Default()
	name := info.Name
	rt.Topic = &name
	rt.TopicID = info.ID
	rt.IsInternal = internalTopic(name)
	if req.IncludeTopicAuthorizedOperations {
		rt.AuthorizedOperations = topicAllOps
	}
	rt.Partitions = make([]kmsg.MetadataResponseTopicPartition, info.Partitions)
	for p := range rt.Partitions {
		rp := &rt.Partitions[p]
		rp.Default()
		rp.Partition = int32(p)
		rp.Leader = h.cfg.NodeID
		rp.LeaderEpoch = leaderEpoch
		rp.Replicas = h.nodeReplicas
		rp.ISR = h.nodeReplicas
		rp.OfflineReplicas = noReplicas
	}
}

var noReplicas = []int32{}

// metadataDenied returns the indexes of the listed topics the principal may
// not see (nil without an authorizer or for all topics): no DESCRIBE, or a
// missing topic it may not create.
func (h *Handler) metadataDenied(r *request, req *kmsg.MetadataRequest, all, autoCreate bool) map[int]bool {
	if h.cfg.Authorizer == nil || all {
		return nil
	}
	var denied map[int]bool
	createCluster := -1 // unknown yet
	for i := range req.Topics {
		t := &req.Topics[i]
		var name string
		info, exists := storage.TopicInfo{}, false
		if t.Topic == nil {
			if info, exists = h.topicByID(storage.TopicID(t.TopicID)); !exists {
				continue // UNKNOWN_TOPIC_ID
			}
			name = info.Name
		} else {
			name = *t.Topic
			_, exists = h.topic(name)
		}
		ok := h.authorized(r, acl.OpDescribe, acl.ResourceTopic, name)
		if ok && !exists && autoCreate && t.Topic != nil {
			if createCluster < 0 {
				createCluster = 0
				if h.authorizedCluster(r, acl.OpCreate) {
					createCluster = 1
				}
			}
			ok = createCluster == 1 || h.authorized(r, acl.OpCreate, acl.ResourceTopic, name)
		}
		if !ok {
			if denied == nil {
				denied = map[int]bool{}
			}
			denied[i] = true
		}
	}
	return denied
}

// hideDenied returns a copy of req in which the denied topics name nothing
// (so they are neither looked up nor created).
func hideDenied(req *kmsg.MetadataRequest, denied map[int]bool) *kmsg.MetadataRequest {
	c := *req
	c.Topics = slices.Clone(req.Topics)
	for i := range denied {
		c.Topics[i].Topic, c.Topics[i].TopicID = nil, [16]byte{}
	}
	return &c
}

// metadataAuthz applies the authorizer to resp: denied topics answer
// TOPIC_AUTHORIZATION_FAILED, the all-topics list drops what may not be
// described, and the authorized-operations fields are filled.
func (h *Handler) metadataAuthz(r *request, req *kmsg.MetadataRequest, denied map[int]bool, resp *kmsg.MetadataResponse) *kmsg.MetadataResponse {
	if h.cfg.Authorizer == nil {
		return resp
	}
	for i := range denied {
		rt := &resp.Topics[i]
		rt.Default()
		rt.Topic, rt.TopicID = req.Topics[i].Topic, req.Topics[i].TopicID
		rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
	}
	if req.Topics == nil || (r.version == 0 && len(req.Topics) == 0) {
		resp.Topics = slices.DeleteFunc(resp.Topics, func(rt kmsg.MetadataResponseTopic) bool {
			return !h.authorizedUncached(r, acl.OpDescribe, acl.ResourceTopic, *rt.Topic)
		})
	}
	if req.IncludeTopicAuthorizedOperations {
		for i := range resp.Topics {
			if rt := &resp.Topics[i]; rt.ErrorCode == 0 && rt.Topic != nil {
				rt.AuthorizedOperations = h.authorizedOps(r, acl.ResourceTopic, *rt.Topic, topicAuthOps)
			}
		}
	}
	if r.version >= 8 && r.version <= 10 && req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = h.authorizedOps(r, acl.ResourceCluster, acl.ClusterName, clusterAuthOps)
	}
	return resp
}
