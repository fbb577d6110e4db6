package kafka

// GetTelemetrySubscriptions (key 71) and PushTelemetry (key 72), version 0
// (KIP-714), answered as a Kafka 4.x broker without a client telemetry
// receiver answers them: neither is listed in ApiVersions (so clients do
// not start pushing metrics), and a client that sends one anyway gets
// UNSUPPORTED_VERSION in a normal response rather than a closed connection.
// klite exports no client metrics.
//
// ACLs: none (Kafka checks none for these).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	getTelemetrySubscriptionsKey = 71
	pushTelemetryKey             = 72
)

func init() {
	registerUnadvertised(getTelemetrySubscriptionsKey, 0, 0, (*Handler).getTelemetrySubscriptions)
	registerUnadvertised(pushTelemetryKey, 0, 0, (*Handler).pushTelemetry)
}

func (h *Handler) getTelemetrySubscriptions(r *request) {
	req := kmsg.NewPtrGetTelemetrySubscriptionsRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrGetTelemetrySubscriptionsResponse()
	resp.Version = r.version
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	r.respond(resp)
}

func (h *Handler) pushTelemetry(r *request) {
	req := kmsg.NewPtrPushTelemetryRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrPushTelemetryResponse()
	resp.Version = r.version
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	r.respond(resp)
}
