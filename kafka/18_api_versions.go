package kafka

// ApiVersions (key 18), versions 0-4.
//
// Behaviour: lists every registered API with its version range (the registry
// in handler.go is the only source, so the list cannot drift from what the
// dispatcher serves). The response header is always v0, even for flexible
// versions (KIP-482/KIP-511).
//
// KIP-511: a request at a version newer than ours gets UNSUPPORTED_VERSION in
// the v0 body layout with our ApiKeys, and the client retries. Apache Kafka
// lists only the ApiVersions entry in that fallback; we list every key (a
// superset clients accept). v3+ validates ClientSoftwareName/Version against
// Kafka's pattern and answers INVALID_REQUEST when they do not match.
//
// Differences: no SupportedFeatures/FinalizedFeatures (klite has no feature
// levels; FinalizedFeaturesEpoch is -1). v5 (KIP-1242, cluster/node id
// check) is not advertised yet.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiVersionsKey = 18

func init() { register(apiVersionsKey, 0, 4, (*Handler).apiVersions) }

func (h *Handler) apiVersions(r *request) {
	req := kmsg.NewPtrApiVersionsRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = r.version
	if r.version >= 3 && (!validSoftwareID(req.ClientSoftwareName) || !validSoftwareID(req.ClientSoftwareVersion)) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		r.respond(resp)
		return
	}
	resp.ApiKeys = h.apiKeys
	r.respond(resp)
}

// apiVersionsUnsupported answers an ApiVersions request newer than we know:
// UNSUPPORTED_VERSION with our ApiKeys, in the v0 layout and v0 header.
func (h *Handler) apiVersionsUnsupported(r *request) {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = h.apiKeys
	r.flexible = false
	r.respond(resp)
}

// validSoftwareID matches [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?
func validSoftwareID(s string) bool {
	if s == "" {
		return false
	}
	alnum := func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	if !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
