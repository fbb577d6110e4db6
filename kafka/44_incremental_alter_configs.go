package kafka

// IncrementalAlterConfigs (key 44), versions 0-1 (KIP-339).
//
// Behaviour: each resource's operations apply to its explicitly set
// configs: SET a value, DELETE (revert to the default; deleting a config
// that is not set, or unknown, is a no-op), APPEND to or SUBTRACT from a
// LIST config (starting from the default when it is not set; any other
// config INVALID_CONFIG). Checks, with Kafka's codes (configs.go):
//   - a resource named twice: INVALID_REQUEST for every appearance;
//   - a config named twice, or a null value other than a DELETE's:
//     INVALID_REQUEST; an unknown operation: INVALID_REQUEST;
//   - TOPIC: "" INVALID_REQUEST, an illegal name INVALID_TOPIC_EXCEPTION, a
//     missing topic UNKNOWN_TOPIC_OR_PARTITION, an unknown config or a bad
//     resulting value INVALID_CONFIG; otherwise the result is stored
//     durably. Concurrent requests on one topic are serialized, so none
//     loses another's change;
//   - BROKER ("" or NodeID): the same operations on the resource's
//     dynamic broker configs (brokerconfigs.go); a config that cannot
//     change at run time, or a bad value, INVALID_REQUEST as Kafka
//     answers;
//   - BROKER_LOGGER (NodeID): INVALID_REQUEST, klite has no runtime log
//     levels; CLIENT_METRICS, GROUP and unknown types: INVALID_REQUEST.
//
// ValidateOnly runs every check and changes nothing. Storing fsyncs
// metadata, so the request is served off the event loop.
//
// ACLs (-authorizer): ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED) or, for
// brokers and broker loggers, the cluster (CLUSTER_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const incrementalAlterConfigsKey = 44

func init() { register(incrementalAlterConfigsKey, 0, 1, (*Handler).incrementalAlterConfigs) }

func (h *Handler) incrementalAlterConfigs(r *request) {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	if !h.parse(r, req) {
		return
	}
	h.async(r, func() {
		rs := make([]alterResource, len(req.Resources))
		for i, res := range req.Resources {
			ar := alterResource{typ: res.ResourceType, name: res.ResourceName}
			for _, c := range res.Configs {
				ar.ops = append(ar.ops, configOp{name: c.Name, op: c.Op, value: c.Value})
			}
			ar.denied = h.configDenied(r, acl.OpAlterConfigs, res.ResourceType, res.ResourceName)
			rs[i] = ar
		}
		results := h.alterConfigs(rs, req.ValidateOnly)
		resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
		resp.Version = r.version
		resp.Resources = make([]kmsg.IncrementalAlterConfigsResponseResource, len(results))
		for i, res := range results {
			rr := &resp.Resources[i]
			rr.Default()
			rr.ResourceType, rr.ResourceName = req.Resources[i].ResourceType, req.Resources[i].ResourceName
			rr.ErrorCode, rr.ErrorMessage = res.code, res.msg
		}
		r.respond(resp)
	})
}
