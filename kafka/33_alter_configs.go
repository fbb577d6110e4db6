package kafka

// AlterConfigs (key 33), versions 0-2.
//
// Behaviour: each resource's configs replace all of its explicitly set ones
// (configs it does not name revert to their defaults), as Apache Kafka's
// deprecated non-incremental API does; IncrementalAlterConfigs (key 44) is
// the one clients should use. Checks, with Kafka's codes (configs.go):
//   - a resource named twice: INVALID_REQUEST for every appearance;
//   - a config named twice, or a null value: INVALID_REQUEST;
//   - TOPIC: "" INVALID_REQUEST, an illegal name INVALID_TOPIC_EXCEPTION, a
//     missing topic UNKNOWN_TOPIC_OR_PARTITION, an unknown config or a bad
//     value INVALID_CONFIG; otherwise the configs are stored durably;
//   - BROKER ("" or NodeID): the resource's dynamic broker configs are
//     replaced (brokerconfigs.go); a config that cannot change at run
//     time, or a bad value, INVALID_REQUEST as Kafka answers;
//   - BROKER_LOGGER and unknown types: INVALID_REQUEST ("Unknown resource
//     type", as Kafka answers); CLIENT_METRICS and GROUP: INVALID_REQUEST
//     (klite does not support them).
//
// ValidateOnly runs every check and changes nothing. Storing fsyncs
// metadata, so the request is served off the event loop.
//
// ACLs (-authorizer): ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED) or, for
// brokers, the cluster (CLUSTER_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const alterConfigsKey = 33

func init() { register(alterConfigsKey, 0, 2, (*Handler).alterConfigsLegacy) }

func (h *Handler) alterConfigsLegacy(r *request) {
	req := kmsg.NewPtrAlterConfigsRequest()
	if !h.parse(r, req) {
		return
	}
	h.async(r, func() {
		rs := make([]alterResource, len(req.Resources))
		for i, res := range req.Resources {
			ar := alterResource{typ: res.ResourceType, name: res.ResourceName, replace: true}
			for _, c := range res.Configs {
				ar.ops = append(ar.ops, configOp{name: c.Name, op: kmsg.IncrementalAlterConfigOpSet, value: c.Value})
			}
			ar.denied = h.configDenied(r, acl.OpAlterConfigs, res.ResourceType, res.ResourceName)
			rs[i] = ar
		}
		results := h.alterConfigs(rs, req.ValidateOnly)
		resp := kmsg.NewPtrAlterConfigsResponse()
		resp.Version = r.version
		resp.Resources = make([]kmsg.AlterConfigsResponseResource, len(results))
		for i, res := range results {
			rr := &resp.Resources[i]
			rr.Default()
			rr.ResourceType, rr.ResourceName = req.Resources[i].ResourceType, req.Resources[i].ResourceName
			rr.ErrorCode, rr.ErrorMessage = res.code, res.msg
		}
		r.respond(resp)
	})
}
