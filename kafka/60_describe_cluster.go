package kafka

// DescribeCluster (key 60), versions 0-2 (KIP-700, KIP-919, KIP-1073), as
// Kafka 4.x.
//
// Behaviour: the cluster is this one broker (NodeID at the address of the
// listener the request came in on, rack null, never fenced), ClusterID, and
// ControllerID NodeID, as in Metadata. EndpointType (v1+) 1 (broker) is
// answered; 2 (controller) gets MISMATCHED_ENDPOINT_TYPE, as a Kafka broker
// answers it, and any other value UNSUPPORTED_ENDPOINT_TYPE.
// IncludeFencedBrokers (v2) changes nothing: klite's broker is never fenced.
// ClusterAuthorizedOperations (KIP-430): the operations the principal may
// perform on the cluster when asked, else -2147483648.
//
// ACLs (-authorizer): DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const describeClusterKey = 60

func init() { register(describeClusterKey, 0, 2, (*Handler).describeCluster) }

// Endpoint types of DescribeCluster v1+.
const (
	endpointBroker     = 1
	endpointController = 2
)

func (h *Handler) describeCluster(r *request) {
	req := kmsg.NewPtrDescribeClusterRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrDescribeClusterResponse()
	resp.Version = r.version
	resp.EndpointType = endpointBroker
	switch {
	case r.version >= 1 && req.EndpointType == endpointController:
		resp.ErrorCode = kerr.MismatchedEndpointType.Code
		resp.ErrorMessage = strp("The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER")
	case r.version >= 1 && req.EndpointType != endpointBroker:
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		resp.ErrorMessage = strp(kerr.UnsupportedEndpointType.Message)
	case !h.authorizedCluster(r, acl.OpDescribe):
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
	default:
		ln := h.listenerOf(r.nr.Conn)
		resp.ClusterID = h.cfg.ClusterID
		resp.ControllerID = h.cfg.NodeID
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.Host, b.Port = h.cfg.NodeID, ln.Host, ln.Port
		resp.Brokers = []kmsg.DescribeClusterResponseBroker{b}
		if req.IncludeClusterAuthorizedOperations {
			resp.ClusterAuthorizedOperations = h.authorizedOps(r, acl.ResourceCluster, acl.ClusterName, clusterAuthOps)
		}
	}
	r.respond(resp)
}
