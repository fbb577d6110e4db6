package kafka

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/xdg-go/scram"

	"github.com/klite/klite/netloop"
)

// saslHarness is a handler whose one listener is SASL_PLAINTEXT, with the
// user alice.
func saslHarness(t testing.TB) *harness {
	users := NewUsers()
	if err := users.AddPassword("alice", "alice-secret", MinScramIterations); err != nil {
		t.Fatal(err)
	}
	return newHarness(t, func(c *Config) {
		c.Listeners = []Listener{{Protocol: SASLPlaintext, Host: "broker.test", Port: 9092}}
		c.Users = users
	})
}

// serveOn serves frame as if it came on connection id.
func (hs *harness) serveOn(id uint64, frame []byte) *pending {
	p := &pending{ch: make(chan struct{})}
	nr := netloop.NewRequestContext(context.Background(), frame, netloop.ConnInfo{ID: id}, func(r netloop.Response) {
		p.mu.Lock()
		p.resps = append(p.resps, r)
		n := len(p.resps)
		p.mu.Unlock()
		if n == 1 {
			close(p.ch)
		}
	})
	hs.h.Serve(nr)
	return p
}

// decode reads resp as the answer to req; closed reports Close.
func decode(t testing.TB, req kmsg.Request, resp netloop.Response) (kmsg.Response, bool) {
	t.Helper()
	b := assemble(t, resp)
	if len(b) == 0 {
		return nil, resp.Close
	}
	b = b[4:] // correlation id
	if req.IsFlexible() {
		b = b[1:]
	}
	out := req.ResponseKind()
	out.SetVersion(req.GetVersion())
	if err := out.ReadFrom(b); err != nil {
		t.Fatalf("%T: %v", out, err)
	}
	return out, resp.Close
}

func saslAuth(t testing.TB, hs *harness, id uint64, token []byte) (*kmsg.SASLAuthenticateResponse, bool) {
	t.Helper()
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = 2, token
	resp, closed := decode(t, req, hs.serveOn(id, encodeRequest(req, testCorr)).wait(t))
	return resp.(*kmsg.SASLAuthenticateResponse), closed
}

func saslHandshake(t testing.TB, hs *harness, id uint64, version int16, mech string) (*kmsg.SASLHandshakeResponse, bool) {
	t.Helper()
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version, req.Mechanism = version, mech
	resp, closed := decode(t, req, hs.serveOn(id, encodeRequest(req, testCorr)).wait(t))
	return resp.(*kmsg.SASLHandshakeResponse), closed
}

func fakeRequest(hs *harness, ci netloop.ConnInfo) *request {
	return &request{nr: netloop.NewRequest(nil, ci, func(netloop.Response) {})}
}

func TestSASLPrincipal(t *testing.T) {
	hs := saslHarness(t)
	if got := hs.h.principal(fakeRequest(hs, netloop.ConnInfo{ID: 1})); got != "User:ANONYMOUS" {
		t.Errorf("before authentication: %q", got)
	}
	if resp, closed := saslHandshake(t, hs, 1, 1, MechPlain); resp.ErrorCode != 0 || closed {
		t.Fatalf("handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp, closed := saslAuth(t, hs, 1, []byte("\x00alice\x00alice-secret")); resp.ErrorCode != 0 || closed {
		t.Fatalf("PLAIN: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if got := hs.h.principal(fakeRequest(hs, netloop.ConnInfo{ID: 1})); got != "User:alice" {
		t.Errorf("after PLAIN: %q", got)
	}

	plain := newHarness(t)
	if got := plain.h.principal(fakeRequest(plain, netloop.ConnInfo{ID: 2})); got != "User:ANONYMOUS" {
		t.Errorf("PLAINTEXT: %q", got)
	}
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "gateway-7", Organization: []string{"edge"}}}
	ci := netloop.ConnInfo{ID: 3, TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}}
	if got := plain.h.principal(fakeRequest(plain, ci)); got != "User:gateway-7" {
		t.Errorf("TLS client certificate: %q", got)
	}
}

// scramClient runs the client side with xdg-go/scram, an RFC 5802 client
// written apart from this server.
func scramExchange(t testing.TB, m ScramMechanism, users *Users, user, pass string, mangle func(final, serverNonce, clientNonce string) string) error {
	t.Helper()
	h := scram.SHA256
	if m == ScramSHA512 {
		h = scram.SHA512
	}
	cl, err := h.NewClientUnprepped(user, pass, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := cl.NewConversation()
	first, _ := conv.Step("")
	srv := newScramConv(m, users)
	s1, _, err := srv.step(first)
	if err != nil {
		return err
	}
	final, err := conv.Step(s1)
	if err != nil {
		t.Fatalf("client on server-first %q: %v", s1, err)
	}
	if mangle != nil {
		_, cnonce, _ := strings.Cut(first, ",r=")
		final = mangle(final, serverNonce(t, s1), cnonce)
	}
	s2, done, err := srv.step(final)
	if err != nil {
		return err
	}
	if !done {
		t.Fatal("not done after the final message")
	}
	if mangle == nil {
		if _, err := conv.Step(s2); err != nil || !conv.Valid() {
			t.Fatalf("client rejects server-final %q: %v", s2, err)
		}
	}
	return nil
}

func TestScramConv(t *testing.T) {
	users := NewUsers()
	if err := users.AddPassword("alice", "pa:ss word", MinScramIterations); err != nil {
		t.Fatal(err)
	}
	users.Set("we,ird=name", mustCred(t, ScramSHA256, "x"))
	for _, m := range scramMechanisms {
		if err := scramExchange(t, m, users, "alice", "pa:ss word", nil); err != nil {
			t.Errorf("%s: %v", m.Name(), err)
		}
		if err := scramExchange(t, m, users, "alice", "wrong", nil); err != errScramProof {
			t.Errorf("%s wrong password: %v, want %v", m.Name(), err, errScramProof)
		}
		// An unknown user fails where a wrong password does.
		if err := scramExchange(t, m, users, "mallory", "pa:ss word", nil); err != errScramProof {
			t.Errorf("%s unknown user: %v, want %v", m.Name(), err, errScramProof)
		}
	}
	if err := scramExchange(t, ScramSHA256, users, "we,ird=name", "x", nil); err != nil {
		t.Errorf("escaped user name: %v", err)
	}
	// A nonce that is not the server's fails. The last character changes
	// to one it cannot already be (the nonce is letters and digits).
	err := scramExchange(t, ScramSHA256, users, "alice", "pa:ss word", func(final, snonce, _ string) string {
		return strings.Replace(final, snonce, snonce[:len(snonce)-1]+"~", 1)
	})
	if err != errScramMessage {
		t.Errorf("foreign nonce: %v, want %v", err, errScramMessage)
	}
}

// TestScramLibrdkafkaNonce: librdkafka puts its nonce in front of the
// server's full nonce in the final message; Kafka accepts that, and so
// must klite (the proof covers the message as sent).
func TestScramLibrdkafkaNonce(t *testing.T) {
	users := NewUsers()
	if err := users.AddPassword("alice", "secret", MinScramIterations); err != nil {
		t.Fatal(err)
	}
	for _, m := range scramMechanisms {
		c := users.credential("alice", m)
		srv := newScramConv(m, users)
		cnonce := "\\R\\rurR|JYN.gT[R2=~k/i<9"
		s1, _, err := srv.step("n,,n=alice,r=" + cnonce)
		if err != nil {
			t.Fatal(err)
		}
		withoutProof := "c=biws,r=" + cnonce + serverNonce(t, s1)
		final := withoutProof + ",p=" + clientProof(m, c, "secret", "n=alice,r="+cnonce+","+s1+","+withoutProof)
		if _, done, err := srv.step(final); err != nil || !done {
			t.Errorf("%s: librdkafka's final message: %v", m.Name(), err)
		}
	}
}

func mustCred(t testing.TB, m ScramMechanism, pass string) ScramCredential {
	c, err := NewScramCredential(m, pass, MinScramIterations)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSASLAuthenticateFlow(t *testing.T) {
	hs := saslHarness(t)
	// Anything but ApiVersions and the SASL APIs closes an unauthenticated connection.
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	if resp := hs.serveOn(10, encodeRequest(md, testCorr)).wait(t); !resp.Close || len(resp.Parts) != 0 {
		t.Fatalf("Metadata before SASL: %+v, want a close", resp)
	}
	// A frame over the receive limit closes too.
	big := make([]byte, DefaultSASLMaxReceiveBytes+1)
	copy(big, encodeRequest(kmsg.NewPtrApiVersionsRequest(), testCorr))
	if resp := hs.serveOn(11, big).wait(t); !resp.Close {
		t.Fatal("oversized frame before SASL answered")
	}
	// v0: the token comes bare and the answer is bare.
	if resp, closed := saslHandshake(t, hs, 12, 0, MechPlain); resp.ErrorCode != 0 || closed {
		t.Fatalf("v0 handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	resp := hs.serveOn(12, []byte("\x00alice\x00alice-secret")).wait(t)
	if b := assemble(t, resp); len(resp.Parts) != 1 || len(b) != 0 || resp.Close {
		t.Fatalf("v0 PLAIN: %d parts, %q, close %v; want one empty frame", len(resp.Parts), b, resp.Close)
	}
	if resp := hs.serveOn(12, encodeRequest(md, testCorr)).wait(t); resp.Close {
		t.Fatal("Metadata after v0 PLAIN closed the connection")
	}
	// v0 with a wrong password: closed without an answer.
	saslHandshake(t, hs, 13, 0, MechPlain)
	if resp := hs.serveOn(13, []byte("\x00alice\x00nope")).wait(t); !resp.Close || len(resp.Parts) != 0 {
		t.Fatal("v0 PLAIN with a wrong password not closed")
	}
}

// FuzzSASLAuthenticate feeds arbitrary tokens to every mechanism, framed
// (v1 handshake) and bare (v0). Invariants: no panic; every token gets an
// answer or a close; a token that is not alice's exact PLAIN credentials
// never authenticates in one step.
func FuzzSASLAuthenticate(f *testing.F) {
	for _, seed := range []string{
		"\x00alice\x00alice-secret", "\x00alice\x00", "a\x00b\x00c\x00d", "",
		"n,,n=alice,r=abc", "y,a=alice,n=alice,r=x", "p=tls,,n=a,r=b", "n,,m=ext,n=a,r=b",
		"n,,n=a=2Cb=3D,r=x,tokenauth=true", "n,,n==,r=x", "c=biws,r=x,p=AAAA", "n,a=,n=,r=",
	} {
		for mech := range uint8(3) {
			f.Add(mech, false, []byte(seed), []byte(seed))
			f.Add(mech, true, []byte(seed), []byte(seed))
		}
	}
	hs := saslHarness(f)
	var id uint64
	f.Fuzz(func(t *testing.T, mech uint8, bare bool, tok1, tok2 []byte) {
		id++
		m := saslMechanisms[int(mech)%len(saslMechanisms)]
		version := int16(1)
		if bare {
			version = 0
		}
		if resp, closed := saslHandshake(t, hs, id, version, m); resp.ErrorCode != 0 || closed {
			t.Fatalf("handshake %s: %v", m, kerr.ErrorForCode(resp.ErrorCode))
		}
		for i, tok := range [][]byte{tok1, tok2} {
			var closed bool
			if bare {
				resp := hs.serveOn(id, tok).wait(t)
				assemble(t, resp)
				closed = resp.Close
			} else {
				var resp *kmsg.SASLAuthenticateResponse
				resp, closed = saslAuth(t, hs, id, tok)
				if resp.ErrorCode == 0 && m == MechPlain && string(tok) != "\x00alice\x00alice-secret" && string(tok) != "alice\x00alice\x00alice-secret" {
					t.Fatalf("PLAIN token %q authenticated", tok)
				}
				if resp.ErrorCode == 0 && i == 0 && m != MechPlain && closed {
					t.Fatal("closed after a successful step")
				}
			}
			if closed {
				return
			}
			sc := hs.h.saslConnByID(id)
			sc.mu.Lock()
			done := sc.stage == saslDone
			sc.mu.Unlock()
			if done {
				if m != MechPlain {
					t.Fatalf("%s authenticated by fuzzed tokens %q %q", m, tok1, tok2)
				}
				return
			}
		}
	})
}

// clientProof computes a SCRAM client proof the way RFC 5802 section 3
// defines it, for messages the xdg-go client would not send.
func clientProof(m ScramMechanism, c ScramCredential, pass, authMsg string) string {
	h := m.hash()
	salted, _ := pbkdf2.Key(h, pass, c.Salt, int(c.Iterations), h().Size())
	mac := hmac.New(h, salted)
	mac.Write([]byte("Client Key"))
	clientKey := mac.Sum(nil)
	sum := h()
	sum.Write(clientKey)
	mac = hmac.New(h, sum.Sum(nil))
	mac.Write([]byte(authMsg))
	proof := make([]byte, len(clientKey))
	subtle.XORBytes(proof, clientKey, mac.Sum(nil))
	return base64.StdEncoding.EncodeToString(proof)
}

// TestSASLReauthentication (KIP-368): the lifetime is announced; an
// expired session may only re-authenticate, as the same user, and is
// closed at any other request.
func TestSASLReauthentication(t *testing.T) {
	users := NewUsers()
	for _, u := range []string{"alice", "bob"} {
		if err := users.AddPassword(u, u+"-secret", MinScramIterations); err != nil {
			t.Fatal(err)
		}
	}
	hs := newHarness(t, func(c *Config) {
		c.Listeners = []Listener{{Protocol: SASLPlaintext, Host: "broker.test", Port: 9092}}
		c.Users, c.SASLMaxReauth = users, time.Hour
	})
	login := func(id uint64, user string) (*kmsg.SASLAuthenticateResponse, bool) {
		t.Helper()
		if resp, closed := saslHandshake(t, hs, id, 1, MechPlain); resp.ErrorCode != 0 || closed {
			t.Fatalf("handshake: %v closed %v", kerr.ErrorForCode(resp.ErrorCode), closed)
		}
		return saslAuth(t, hs, id, []byte("\x00"+user+"\x00"+user+"-secret"))
	}
	expire := func(id uint64) {
		sc := hs.h.saslConnByID(id)
		sc.mu.Lock()
		sc.expires = time.Now().Add(-time.Second)
		sc.mu.Unlock()
	}
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12

	resp, closed := login(1, "alice")
	if resp.ErrorCode != 0 || closed || resp.SessionLifetimeMillis != time.Hour.Milliseconds() {
		t.Fatalf("login: %v, lifetime %d ms", kerr.ErrorForCode(resp.ErrorCode), resp.SessionLifetimeMillis)
	}
	// Re-authentication before expiry, and after it.
	if resp, closed := login(1, "alice"); resp.ErrorCode != 0 || closed {
		t.Fatalf("re-authentication: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	expire(1)
	if resp, closed := login(1, "alice"); resp.ErrorCode != 0 || closed {
		t.Fatalf("re-authentication after expiry: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp := hs.serveOn(1, encodeRequest(md, testCorr)).wait(t); resp.Close {
		t.Fatal("Metadata after re-authentication closed the connection")
	}
	// An expired session that does not re-authenticate is closed.
	expire(1)
	if resp := hs.serveOn(1, encodeRequest(md, testCorr)).wait(t); !resp.Close {
		t.Fatal("Metadata after expiry answered")
	}
	// Another user may not take over the session.
	login(2, "alice")
	if resp, closed := login(2, "bob"); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || !closed {
		t.Fatalf("re-authentication as bob: %v closed %v", kerr.ErrorForCode(resp.ErrorCode), closed)
	}
	if got := hs.h.principal(fakeRequest(hs, netloop.ConnInfo{ID: 2})); got != "User:alice" {
		t.Errorf("principal after a refused re-authentication: %q", got)
	}
	// Nor may the mechanism change.
	login(3, "alice")
	if resp, closed := saslHandshake(t, hs, 3, 1, MechScram256); resp.ErrorCode != kerr.IllegalSaslState.Code || !closed {
		t.Fatalf("re-authentication with another mechanism: %v closed %v", kerr.ErrorForCode(resp.ErrorCode), closed)
	}
}

// saslConnByID is the SASL state of connection id, served by the harness
// (without netloop); nil if it has none.
func (h *Handler) saslConnByID(id uint64) *saslConn {
	v, ok := h.unannounced.Load(id)
	if !ok {
		return nil
	}
	return v.(*connState).sasl
}

// serverNonce is the nonce of a server-first message: the client's and
// the server's parts.
func serverNonce(t testing.TB, s1 string) string {
	r, _, _ := strings.Cut(s1, ",s=")
	r, ok := strings.CutPrefix(r, "r=")
	if !ok {
		t.Fatalf("server-first %q", s1)
	}
	return r
}
