package kafka

// The group APIs (keys 8-16, 42, 47, 68, 69) parse here and are decided by the group
// coordinator (package group), which answers from its own goroutine; the
// event loop never waits for group work.

import (
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Groups is the group coordinator as the protocol layer sees it.
// *group.Coordinator implements it. Each method calls done exactly once,
// from any goroutine, with a response of the request's version.
type Groups interface {
	JoinGroup(clientID, clientHost string, req *kmsg.JoinGroupRequest, done func(*kmsg.JoinGroupResponse))
	SyncGroup(req *kmsg.SyncGroupRequest, done func(*kmsg.SyncGroupResponse))
	Heartbeat(req *kmsg.HeartbeatRequest, done func(*kmsg.HeartbeatResponse))
	LeaveGroup(req *kmsg.LeaveGroupRequest, done func(*kmsg.LeaveGroupResponse))
	OffsetCommit(req *kmsg.OffsetCommitRequest, done func(*kmsg.OffsetCommitResponse))
	OffsetFetch(req *kmsg.OffsetFetchRequest, done func(*kmsg.OffsetFetchResponse))
	DescribeGroups(req *kmsg.DescribeGroupsRequest, done func(*kmsg.DescribeGroupsResponse))
	ListGroups(req *kmsg.ListGroupsRequest, done func(*kmsg.ListGroupsResponse))
	DeleteGroups(req *kmsg.DeleteGroupsRequest, done func(*kmsg.DeleteGroupsResponse))
	OffsetDelete(req *kmsg.OffsetDeleteRequest, done func(*kmsg.OffsetDeleteResponse))
	ConsumerGroupHeartbeat(clientID, clientHost string, req *kmsg.ConsumerGroupHeartbeatRequest, done func(*kmsg.ConsumerGroupHeartbeatResponse))
	ConsumerGroupDescribe(req *kmsg.ConsumerGroupDescribeRequest, done func(*kmsg.ConsumerGroupDescribeResponse))
	// DeleteTopicOffsets removes every group's committed offsets of a
	// deleted topic, durably, then calls done (20_delete_topics.go).
	DeleteTopicOffsets(topic string, done func(error))
}

// noCoordinator is the error group APIs answer when no coordinator is
// configured (handler tests of other APIs): clients retry it.
var noCoordinator = kerr.CoordinatorNotAvailable.Code

// clientHost is the peer as Kafka prints it in DescribeGroups: "/1.2.3.4".
func clientHost(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return "/" + ta.IP.String()
	}
	if a == nil {
		return ""
	}
	return "/" + a.String()
}

// groupRespond returns the callback that answers r with a coordinator response.
func groupRespond[R kmsg.Response](r *request) func(R) {
	return func(resp R) { r.respond(resp) }
}
