package kafka

// DescribeConfigs (key 32), versions 0-4.
//
// Behaviour per resource, as Apache Kafka answers (ConfigHelper):
//   - TOPIC: every topic config in configs.go but the ones Kafka 4.0
//     removed. Set ones have source DYNAMIC_TOPIC_CONFIG; the rest take
//     their broker synonym's value and source (DYNAMIC_BROKER_CONFIG,
//     DYNAMIC_DEFAULT_BROKER_CONFIG, STATIC_BROKER_CONFIG or
//     DEFAULT_CONFIG, brokerconfigs.go), else Kafka's default as
//     DEFAULT_CONFIG. Not read-only, not sensitive. An illegal name
//     answers INVALID_TOPIC_EXCEPTION, a missing topic
//     UNKNOWN_TOPIC_OR_PARTITION.
//   - BROKER named by NodeID in decimal: the broker configs in configs.go
//     (klite's flags, and the broker synonyms of topic configs) with their
//     values in force; the ones that change at run time are not
//     read-only. Named "": the cluster-wide dynamic defaults that are set.
//     A name that is not an integer, or another broker id:
//     INVALID_REQUEST.
//   - BROKER_LOGGER: Kafka's broker id checks (empty, not an integer, other
//     id: INVALID_REQUEST), then INVALID_REQUEST: klite has no loggers to
//     describe.
//   - CLIENT_METRICS, GROUP and unknown types: INVALID_REQUEST (unsupported).
//
// ConfigNames filters (null or empty: all; unknown names are skipped).
// IncludeSynonyms (v1+) lists synonyms in Kafka's order of precedence
// (topic, dynamic broker, dynamic default, static broker, default; the ""
// resource leaves out the dynamic broker one). IsDefault (v0) is true for
// DEFAULT_CONFIG and STATIC_BROKER_CONFIG. ConfigType (v3+) is always set;
// Documentation only with IncludeDocumentation (v3+), else null.
//
// Differences from Apache Kafka: fewer broker configs change at run time
// (brokerconfigs.go), and Kafka lists several hundred where klite lists
// the ones it has. A resource named twice in one request answers
// INVALID_REQUEST after its first appearance (Kafka describes it again);
// this keeps the response to one copy of each resource whatever the request
// holds. An unknown resource type fails its own resource, where Kafka fails
// the whole request.
//
// Small requests are answered inline; ones naming many resources (sarama's
// ListTopics names every topic) are built off the event loop.
//
// ACLs (-authorizer): DESCRIBE_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED) or, for
// brokers and broker loggers, the cluster (CLUSTER_AUTHORIZATION_FAILED).

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const describeConfigsKey = 32

// describeConfigsInline is the most resources answered on the event loop.
const describeConfigsInline = 8

func init() { register(describeConfigsKey, 0, 4, (*Handler).describeConfigs) }

func (h *Handler) describeConfigs(r *request) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	if !h.parse(r, req) {
		return
	}
	denied := func(typ kmsg.ConfigResourceType, name string) int16 {
		return h.configDenied(r, acl.OpDescribeConfigs, typ, name)
	}
	if len(req.Resources) > describeConfigsInline {
		h.asyncRead(r, func() { r.respond(h.describeConfigsResponse(r.version, req, denied)) })
		return
	}
	r.respond(h.describeConfigsResponse(r.version, req, denied))
}

type configResourceKey struct {
	typ  kmsg.ConfigResourceType
	name string
}

func (h *Handler) describeConfigsResponse(version int16, req *kmsg.DescribeConfigsRequest, denied func(kmsg.ConfigResourceType, string) int16) *kmsg.DescribeConfigsResponse {
	resp := kmsg.NewPtrDescribeConfigsResponse()
	resp.Version = version
	resp.Resources = make([]kmsg.DescribeConfigsResponseResource, len(req.Resources))
	seen := make(map[configResourceKey]struct{}, len(req.Resources))
	for i := range req.Resources {
		rr := &req.Resources[i]
		res := &resp.Resources[i]
		res.Default()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		res.Configs = []kmsg.DescribeConfigsResponseResourceConfig{}
		k := configResourceKey{rr.ResourceType, rr.ResourceName}
		if _, dup := seen[k]; dup {
			describeError(res, kerr.InvalidRequest.Code, "Resource "+rr.ResourceName+" appears more than once in the request.")
			continue
		}
		seen[k] = struct{}{}
		if code := denied(rr.ResourceType, rr.ResourceName); code != 0 {
			describeError(res, code, kerr.ErrorForCode(code).Error())
			continue
		}

		var entries []configEntry
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			name := rr.ResourceName
			if !validTopicName(name) {
				describeError(res, kerr.InvalidTopicException.Code, "Topic name \""+name+"\" is illegal: it must be 1 to 249 characters of [a-zA-Z0-9._-] and not '.' or '..'")
				continue
			}
			info, ok := h.topic(name) // internal topics too
			if !ok {
				describeError(res, kerr.UnknownTopicOrPartition.Code, "Topic '"+name+"' does not exist.")
				continue
			}
			for _, n := range topicConfigNames {
				if wanted(rr.ConfigNames, n) {
					entries = append(entries, h.topicConfigEntry(n, info.Configs))
				}
			}
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName == "" {
				entries = h.clusterDefaultEntries(rr.ConfigNames)
				break
			}
			if msg := h.checkBrokerID(rr.ResourceName, " or empty string"); msg != "" {
				describeError(res, kerr.InvalidRequest.Code, msg)
				continue
			}
			for _, n := range brokerConfigNames {
				if wanted(rr.ConfigNames, n) {
					entries = append(entries, h.brokerConfigEntry(n))
				}
			}
		case kmsg.ConfigResourceTypeBrokerLogger:
			msg := "Broker id must not be empty"
			if rr.ResourceName != "" {
				msg = h.checkBrokerID(rr.ResourceName, "")
			}
			if msg == "" {
				msg = "klite does not support BROKER_LOGGER configs: it has no runtime loggers to describe."
			}
			describeError(res, kerr.InvalidRequest.Code, msg)
			continue
		default:
			describeError(res, kerr.InvalidRequest.Code, "Unsupported resource type: "+rr.ResourceType.String())
			continue
		}
		res.Configs = make([]kmsg.DescribeConfigsResponseResourceConfig, len(entries))
		for j := range entries {
			fillDescribed(&res.Configs[j], &entries[j], req)
		}
	}
	return resp
}

func describeError(res *kmsg.DescribeConfigsResponseResource, code int16, msg string) {
	res.ErrorCode = code
	res.ErrorMessage = &msg
}

// checkBrokerID checks a broker resource name against NodeID, with Kafka's
// messages; "" when it matches. orEmpty completes "expected N".
func (h *Handler) checkBrokerID(name, orEmpty string) string {
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil {
		return "Broker id must be an integer, but it is: " + name
	}
	if int32(id) != h.cfg.NodeID {
		return "Unexpected broker id, expected " + strconv.Itoa(int(h.cfg.NodeID)) + orEmpty + ", but received " + name
	}
	return ""
}

// wanted reports whether name passes a ConfigNames filter (null or empty:
// everything).
func wanted(filter []string, name string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if f == name {
			return true
		}
	}
	return false
}

func fillDescribed(c *kmsg.DescribeConfigsResponseResourceConfig, e *configEntry, req *kmsg.DescribeConfigsRequest) {
	c.Default()
	c.Name, c.Value, c.ReadOnly, c.Source = e.name, e.value, e.readOnly, e.source
	c.IsDefault = e.isDefault()
	c.ConfigType = e.typ
	if req.IncludeDocumentation && e.doc != "" {
		c.Documentation = &e.doc
	}
	if req.IncludeSynonyms && len(e.synonyms) > 0 {
		c.ConfigSynonyms = make([]kmsg.DescribeConfigsResponseResourceConfigConfigSynonym, len(e.synonyms))
		for i, s := range e.synonyms {
			cs := &c.ConfigSynonyms[i]
			cs.Default()
			cs.Name, cs.Value, cs.Source = s.name, s.value, s.source
		}
	}
}
