package kafka

// SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners: the state of
// each connection's exchange, the gate every request passes before dispatch,
// the authentication deadline, and the principal a connection acts as.
//
// A connection on a SASL listener starts unauthenticated. It may send
// ApiVersions, SaslHandshake (17_sasl_handshake.go) and SaslAuthenticate
// (36_sasl_authenticate.go); anything else closes it, as Kafka's
// SaslServerAuthenticator does. After a v0 SaslHandshake the client sends the
// SASL tokens as bare frames, without a request header (the flow before
// KIP-152); the gate hands those to the mechanism directly.
//
// State lives in the connection's connState (conn_state.go), made when
// netloop opens the connection (ConnOpened). Connections on other
// listeners have none.

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/netloop"
)

// DefaultSASLAuthTimeout is how long a connection on a SASL listener has to
// finish authenticating. Kafka itself leaves a silent client to
// connections.max.idle.ms; a short deadline keeps unauthenticated clients
// from holding connections (and their memory) for minutes.
const DefaultSASLAuthTimeout = 10 * time.Second

// DefaultSASLMaxReceiveBytes is Kafka's sasl.server.max.receive.size: an
// unauthenticated client cannot make the broker hold large frames.
const DefaultSASLMaxReceiveBytes = 512 << 10

// saslMechanisms are the mechanisms offered, in the order SaslHandshake
// lists them.
var saslMechanisms = []string{MechPlain, MechScram256, MechScram512}

// Principals, in Kafka's "type:name" form.
const (
	principalAnonymous = "User:ANONYMOUS"
	principalUserType  = "User:"
)

// saslStage is where a connection is in its SASL exchange.
type saslStage uint8

const (
	saslWantHandshake saslStage = iota // ApiVersions and SaslHandshake only
	saslWantAuth                       // after a v1 handshake: SaslAuthenticate
	saslWantRaw                        // after a v0 handshake: bare token frames
	saslDone                           // authenticated
)

// saslConn is one connection's SASL state.
type saslConn struct {
	mu    sync.Mutex
	stage saslStage   // guarded by mu
	busy  bool        // a token is being checked off the event loop; guarded by mu
	mech  string      // chosen in the handshake; guarded by mu
	conv  *scramConv  // SCRAM exchange in progress; guarded by mu
	user  string      // the authenticated user; guarded by mu
	timer *time.Timer // the authentication deadline; nil without one
	// conn is netloop's handle, whose frame limit is the SASL receive
	// limit while the connection is not authenticated (zero without
	// netloop: the gate's check alone then applies).
	conn netloop.Conn

	// KIP-368 re-authentication, guarded by mu.
	authVersion int16     // version of the SaslAuthenticate in progress (-1: bare tokens)
	lifetimes   bool      // the client authenticated with SaslAuthenticate v1+, so it knows session lifetimes
	expires     time.Time // the session's end; zero: never (-sasl-max-reauth 0)
	reauth      bool      // a re-authentication is in progress: the user may not change
}

// newSASLConn is the state of a connection on a SASL listener, until ctx
// (the connection's) ends. onDeadline, when set, runs if the connection has
// not authenticated within the deadline. Until it authenticates, c may
// not start a frame larger than Config.SASLMaxReceiveBytes: netloop
// closes it at the size prefix, before buffering any of the body.
func (h *Handler) newSASLConn(ctx context.Context, c netloop.Conn, onDeadline func()) *saslConn {
	sc := &saslConn{conn: c}
	c.SetMaxFrameBytes(int32(h.cfg.SASLMaxReceiveBytes))
	if onDeadline != nil {
		sc.timer = time.AfterFunc(h.cfg.SASLAuthTimeout, func() {
			sc.mu.Lock()
			done := sc.stage == saslDone
			sc.mu.Unlock()
			if !done {
				onDeadline()
			}
		})
		context.AfterFunc(ctx, func() { sc.timer.Stop() })
	}
	return sc
}

// saslConnOf returns r's SASL state, nil on a listener without SASL.
func (h *Handler) saslConnOf(r *request) *saslConn { return h.connOf(r).sasl }

// saslGate runs before dispatch for every frame on a SASL listener. It
// reports whether it has dealt with the frame: a bare token after a v0
// handshake, or a request an unauthenticated connection may not send (the
// connection is closed).
func (h *Handler) saslGate(r *request) bool {
	sc := h.saslConnOf(r)
	sc.mu.Lock()
	stage, busy, expires := sc.stage, sc.busy, sc.expires
	sc.mu.Unlock()
	f := r.nr.Frame
	switch {
	case stage == saslDone:
		return h.saslExpired(r, expires)
	case busy:
		h.protocolError(r, "request while a SASL token is being checked")
		return true
	case len(f) > h.cfg.SASLMaxReceiveBytes:
		h.protocolError(r, "frame before SASL authentication larger than the SASL receive limit")
		return true
	case stage == saslWantRaw:
		h.saslRawToken(r, sc, f)
		return true
	}
	if len(f) >= 2 {
		r.key = int16(binary.BigEndian.Uint16(f))
		switch r.key {
		case apiVersionsKey, saslHandshakeKey, saslAuthenticateKey:
			r.exempt = true // Kafka's authenticator serves these, outside request quotas
			return false
		}
	}
	h.protocolError(r, "request before SASL authentication")
	return true
}

// saslExpired enforces KIP-368 on an authenticated connection: once its
// session has expired, the next request must be a SaslHandshake that
// starts a re-authentication; anything else closes the connection, as
// Kafka does. Reports whether it dealt with the frame.
func (h *Handler) saslExpired(r *request, expires time.Time) bool {
	if expires.IsZero() || time.Now().Before(expires) {
		return false
	}
	if f := r.nr.Frame; len(f) >= 2 {
		r.key = int16(binary.BigEndian.Uint16(f))
		if r.key == saslHandshakeKey {
			return false
		}
	}
	h.protocolError(r, "request after the SASL session expired without re-authentication (KIP-368)")
	return true
}

// saslRawToken serves a bare token frame after a v0 handshake: the answer is
// a bare token frame too, and a failure closes the connection (the legacy
// flow has no way to carry an error).
func (h *Handler) saslRawToken(r *request, sc *saslConn, token []byte) {
	sc.mu.Lock()
	sc.busy = true
	sc.authVersion = -1
	sc.mu.Unlock()
	h.saslStep(r, sc, token, func(challenge []byte, ok, _ bool) {
		if !ok {
			r.close()
			return
		}
		r.complete(netloop.Response{Parts: []netloop.Part{{Bytes: challenge}}})
	})
}

// saslStep runs one client token through the connection's mechanism and
// calls answer with the server's next token, or ok false when
// authentication failed (logged and counted here, answered
// Config.SASLFailedAuthDelay late). PLAIN derives a key from the password
// (PBKDF2, 4096 rounds or more: milliseconds of CPU), so it waits its turn
// in the verifier (sasl_verify.go); SCRAM steps are a few HMACs (the
// whole exchange about 20 µs) and run inline. sc.busy is set by the
// caller and cleared before answer runs, unless authentication failed:
// then the connection is done, and a frame it sends before the delayed
// answer is never served (the failure is answered, then the connection
// closes).
func (h *Handler) saslStep(r *request, sc *saslConn, token []byte, answer func(challenge []byte, ok, done bool)) {
	sc.mu.Lock()
	mech, conv := sc.mech, sc.conv
	sc.mu.Unlock()

	finish := func(user string, challenge []byte, ok, done bool) {
		sc.mu.Lock()
		if ok && done && sc.reauth && user != sc.user {
			ok = false // KIP-368: a session keeps its principal
		}
		if ok {
			sc.busy = false
		}
		if ok && done {
			sc.stage, sc.user, sc.conv, sc.reauth = saslDone, user, nil, false
			sc.conn.SetMaxFrameBytes(0) // before the answer: the client's next frame may be large
			// A fresh identity, its decision cache empty, before the
			// stage is seen done: requests after this authentication
			// never use decisions made before it.
			h.connOf(r).ident.Store(newIdentity(principalUserType+user, r.nr.Conn))
			sc.lifetimes = sc.authVersion >= 1
			if h.cfg.SASLMaxReauth > 0 {
				sc.expires = time.Now().Add(h.cfg.SASLMaxReauth)
			}
		}
		sc.mu.Unlock()
		if ok && done && sc.timer != nil {
			sc.timer.Stop()
		}
		if done || !ok {
			h.countSASL(mech, ok)
		}
		if ok {
			answer(challenge, true, done)
			return
		}
		h.authWarn.Warn().Uint64("conn", r.nr.Conn.ID).Stringer("remote", r.nr.Conn.Remote).
			Str("mechanism", mech).Msg("kafka: SASL authentication failed")
		h.answerFailed(r, func() { answer(nil, false, true) })
	}

	if mech == MechPlain {
		authzid, user, pass, parsed := parsePlain(token)
		if !parsed || (len(authzid) != 0 && !bytes.Equal(authzid, user)) {
			finish("", nil, false, true)
			return
		}
		name := string(user)
		check := h.cfg.Users.preparePlain(name, pass)
		if !check.found {
			name = "" // the check fails: keep nothing of what the client sent
		}
		// The check keeps nothing of the frame: give it back now, so
		// tokens waiting for their key derivation do not hold the
		// broker-wide request budget other clients need.
		r.nr.ReleaseFrame()
		r.clientID, r.body = nil, nil
		key, _ := netloop.ClientKey(r.nr.Conn.Remote) // not TCP: one shared queue
		h.verifier.submit(key, verifyTask{
			ctx: r.nr.Context(),
			run: func() {
				defer h.recoverTo(r)
				finish(name, nil, check.verify(), true)
			},
			fail: func() { finish("", nil, false, true) },
		})
		return
	}
	out, done, err := conv.step(string(token))
	if err != nil {
		h.log.Debug().Uint64("conn", r.nr.Conn.ID).Str("mechanism", mech).Err(err).Msg("kafka: SCRAM exchange failed")
		finish("", nil, false, true)
		return
	}
	if done && !conv.authzOK {
		finish("", nil, false, true)
		return
	}
	finish(conv.user, []byte(out), true, done)
}

// parsePlain splits a PLAIN message, [authzid] NUL authcid NUL passwd
// (RFC 4616). The parts alias b.
func parsePlain(b []byte) (authzid, user, pass []byte, ok bool) {
	parts := bytes.SplitN(b, []byte{0}, 4)
	if len(parts) != 3 || len(parts[1]) == 0 {
		return nil, nil, nil, false
	}
	return parts[0], parts[1], parts[2], true
}

// saslFailedMessage is the one message every failed authentication gets,
// whatever failed: it must not tell a wrong password from an unknown user.
func saslFailedMessage(mech string) string {
	return "Authentication failed: invalid credentials with SASL mechanism " + mech
}

// principal is the identity r's connection acts as, in Kafka's form:
// "User:<name>" after SASL, "User:<subject CN>" for a TLS client
// certificate, else "User:ANONYMOUS". It is made once per authentication
// (conn_state.go); during a KIP-368 re-authentication the connection keeps
// the principal it had.
func (h *Handler) principal(r *request) string {
	if id := h.identityOf(r); id != nil {
		return id.principal
	}
	return principalAnonymous
}

// respondSASLState answers a SASL request that came in the wrong stage: an
// authenticated connection keeps going, any other is closed (as Kafka does).
func (r *request) respondSASLState(msg kmsg.Response, stage saslStage) {
	if stage == saslDone {
		r.respond(msg)
	} else {
		r.respondClose(msg)
	}
}

// respondClose is respond, then close the connection once the answer is
// written (Kafka closes after a failed authentication).
func (r *request) respondClose(msg kmsg.Response) {
	b := r.appendHeader(nil)
	b = msg.AppendTo(b)
	r.complete(netloop.Response{Parts: []netloop.Part{{Bytes: b}}, Close: true})
}

// authWarnSampler limits failed-authentication logs: a client retrying a
// wrong password, or many of them, must not flood the log.
func authWarnSampler(l zerolog.Logger) zerolog.Logger {
	return l.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute})
}
