package kafka

// ConsumerGroupHeartbeat (key 68), versions 0-1 (KIP-848, the consumer
// group protocol).
//
// Behaviour (group/consumer.go has the state machine): the broker assigns
// partitions with the "uniform" (default) or "range" assignor
// (ServerAssignor) and members reconcile incrementally: a partition moves
// to a member only after its previous owner reported in a heartbeat that it
// no longer owns it. Joins use epoch 0 (v1: the client names the member;
// v0: the broker does), leaves -1, static leaves -2 (the instance keeps its
// assignment until its session expires). Subscriptions are topic names or
// a regular expression (v1) over whole topic names, internal topics
// included as in Kafka (internal_topics.go). Errors as Kafka:
// INVALID_REQUEST for malformed requests, FENCED_MEMBER_EPOCH,
// UNKNOWN_MEMBER_ID, UNRELEASED_INSTANCE_ID, FENCED_INSTANCE_ID,
// UNSUPPORTED_ASSIGNOR, INVALID_REGULAR_EXPRESSION (also for a regex over
// -group-consumer-max-regex-bytes), GROUP_ID_NOT_FOUND (a
// leave for an unknown group, or a non-empty classic group),
// GROUP_MAX_SIZE_REACHED. The session timeout
// (group.consumer.session.timeout.ms) and heartbeat interval
// (group.consumer.heartbeat.interval.ms) are the broker's.
//
// Differences from Apache Kafka: group and member state are not persisted
// (members rejoin after a restart; offsets are durable); regexes are Go's
// RE2, not RE2/J; no online migration between classic and consumer groups.
// group/consumer.go lists the details.
//
// ACLs (-authorizer): READ on the group (GROUP_AUTHORIZATION_FAILED) and
// DESCRIBE on every subscribed topic name (TOPIC_AUTHORIZATION_FAILED);
// topics a regex subscription matches are not filtered by ACLs.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const consumerGroupHeartbeatKey = 68

func init() { register(consumerGroupHeartbeatKey, 0, 1, (*Handler).consumerGroupHeartbeat) }

func (h *Handler) consumerGroupHeartbeat(r *request) {
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	if !h.parse(r, req) {
		return
	}
	if h.cfg.Groups == nil {
		resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
		resp.Version, resp.ErrorCode = r.version, noCoordinator
		r.respond(resp)
		return
	}
	if !h.groupAllowed(r, acl.OpRead, req.Group) {
		resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
		resp.Version, resp.ErrorCode = r.version, groupAuthFailed
		r.respond(resp)
		return
	}
	for _, topic := range req.SubscribedTopicNames {
		// Kafka refuses a subscription naming a topic the principal may
		// not describe, rather than reveal it.
		if !h.authorized(r, acl.OpDescribe, acl.ResourceTopic, topic) {
			resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
			resp.Version, resp.ErrorCode = r.version, kerr.TopicAuthorizationFailed.Code
			r.respond(resp)
			return
		}
	}
	h.cfg.Groups.ConsumerGroupHeartbeat(string(r.clientID), clientHost(r.nr.Conn.Remote), req, groupRespond[*kmsg.ConsumerGroupHeartbeatResponse](r))
}
