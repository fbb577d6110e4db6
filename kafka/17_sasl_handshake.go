package kafka

// SaslHandshake (key 17), versions 0-1.
//
// Behaviour: on a SASL listener, the first SaslHandshake picks the mechanism
// (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512). v1 (KIP-152) means the tokens
// follow in SaslAuthenticate requests; v0 means they follow as bare frames
// without a request header (sasl.go's gate serves them). The response lists
// the enabled mechanisms. An unknown mechanism gets UNSUPPORTED_SASL_MECHANISM
// and the connection is closed after the answer; a handshake out of turn
// gets ILLEGAL_SASL_STATE (closed too if the connection has not
// authenticated). On a listener without SASL it gets ILLEGAL_SASL_STATE and
// the connection stays open, as Kafka's KafkaApis answers it.
//
// Differences: Kafka 4.0 dropped v0 (KIP-896); klite keeps it so clients of
// Kafka 3.x (Sarama before 1.41, kafka-python 2.0) still authenticate.
// KIP-368: after authentication, a v1 handshake from a client that knows
// session lifetimes (it authenticated with SaslAuthenticate v1+) starts a
// re-authentication when -sasl-max-reauth is set, with the same mechanism
// (another one gets ILLEGAL_SASL_STATE and a close); otherwise it is out
// of turn.

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const saslHandshakeKey = 17

func init() { register(saslHandshakeKey, 0, 1, (*Handler).saslHandshake) }

func (h *Handler) saslHandshake(r *request) {
	req := kmsg.NewPtrSASLHandshakeRequest()
	if !h.parse(r, req) {
		return
	}
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = saslMechanisms
	sc := h.saslConnOf(r)
	if sc == nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		r.respond(resp)
		return
	}
	sc.mu.Lock()
	stage := sc.stage
	if stage == saslDone && sc.lifetimes && h.cfg.SASLMaxReauth > 0 && r.version >= 1 {
		if req.Mechanism != sc.mech {
			sc.mu.Unlock()
			resp.ErrorCode = kerr.IllegalSaslState.Code
			r.respondClose(resp)
			return
		}
		sc.reauth = true
		// The SASL receive limit applies to the re-authentication's
		// frames too, as in Kafka.
		sc.conn.SetMaxFrameBytes(int32(h.cfg.SASLMaxReceiveBytes))
		stage = saslWantHandshake
	}
	if stage != saslWantHandshake {
		sc.mu.Unlock()
		resp.ErrorCode = kerr.IllegalSaslState.Code
		r.respondSASLState(resp, stage)
		return
	}
	if !slices.Contains(saslMechanisms, req.Mechanism) {
		sc.mu.Unlock()
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		r.respondClose(resp)
		return
	}
	sc.mech = req.Mechanism
	switch req.Mechanism {
	case MechScram256:
		sc.conv = newScramConv(ScramSHA256, h.cfg.Users)
	case MechScram512:
		sc.conv = newScramConv(ScramSHA512, h.cfg.Users)
	}
	sc.stage = saslWantAuth
	if r.version == 0 {
		sc.stage = saslWantRaw
	}
	sc.mu.Unlock()
	r.respond(resp)
}
