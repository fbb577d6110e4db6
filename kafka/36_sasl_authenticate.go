package kafka

// SaslAuthenticate (key 36), versions 0-2.
//
// Behaviour: carries one SASL token of the mechanism chosen by a v1
// SaslHandshake and answers with the server's next token. PLAIN completes in
// one step; SCRAM (RFC 5802, RFC 7677) in two. A failure of any kind (a
// malformed token, an unknown user, a wrong password) gets
// SASL_AUTHENTICATION_FAILED with one message that does not say which,
// Config.SASLFailedAuthDelay late (KIP-306), and the connection is closed
// after the answer, as Kafka does. PLAIN's password check waits its turn
// in the verifier (sasl_verify.go). Out of turn
// (before a handshake, or after a v0 one) it gets ILLEGAL_SASL_STATE and the
// connection is closed; after authentication, or on a listener without
// SASL, ILLEGAL_SASL_STATE and the connection stays open.
//
// KIP-368: with Config.SASLMaxReauth set, SessionLifetimeMillis (v1+) is
// that lifetime; the client re-authenticates on the same connection
// (SaslHandshake, SaslAuthenticate) before it ends, as the same user, or
// is closed at its first other request after it. A re-authentication as
// another user fails like any other. 0 (the default) means no expiry.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const saslAuthenticateKey = 36

func init() { register(saslAuthenticateKey, 0, 2, (*Handler).saslAuthenticate) }

func (h *Handler) saslAuthenticate(r *request) {
	req := kmsg.NewPtrSASLAuthenticateRequest()
	if !h.parse(r, req) {
		return
	}
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	sc := h.saslConnOf(r)
	if sc == nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		r.respond(resp)
		return
	}
	sc.mu.Lock()
	stage := sc.stage
	if stage != saslWantAuth {
		sc.mu.Unlock()
		resp.ErrorCode = kerr.IllegalSaslState.Code
		r.respondSASLState(resp, stage)
		return
	}
	sc.busy = true
	sc.authVersion = r.version
	mech := sc.mech
	sc.mu.Unlock()
	h.saslStep(r, sc, req.SASLAuthBytes, func(challenge []byte, ok, done bool) {
		if !ok {
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := saslFailedMessage(mech)
			resp.ErrorMessage = &msg
			r.respondClose(resp)
			return
		}
		resp.SASLAuthBytes = challenge
		if done {
			resp.SessionLifetimeMillis = h.cfg.SASLMaxReauth.Milliseconds()
		}
		r.respond(resp)
	})
}
