package main

// Hostile clients of the SASL listeners, against the real binary: what an
// unauthenticated (or re-authenticating) client can make the broker hold.

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// bigMetadata is a Metadata request naming enough topics to pass size
// bytes: a large request any authenticated client may send.
func bigMetadata(size int) *kmsg.MetadataRequest {
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 4 // not flexible; AllowAutoTopicCreation false
	for n := 0; n < size; {
		name := "no-such-topic-" + strings.Repeat("x", 40) + "-" + strconv.Itoa(len(md.Topics))
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = &name
		md.Topics = append(md.Topics, t)
		n += len(name) + 2
	}
	return md
}

// TestHostileSASLOversizePrefix: a frame larger than
// -sasl-max-receive-bytes, from a client that has not authenticated (or is
// re-authenticating, KIP-368), is refused at its size prefix and the
// connection closed, as Kafka's sasl.server.max.receive.size does: the
// broker never reads (nor buffers) its body. Before the fix the limit was
// checked only once the whole frame had arrived, so each unauthenticated
// connection could make the broker buffer up to -max-request-bytes (100
// MiB), and one announcing a large frame and sending it slowly was only
// closed at the authentication deadline. An authenticated client still
// sends frames above the SASL limit.
func TestHostileSASLOversizePrefix(t *testing.T) {
	const limit = 64 << 10
	// A long authentication deadline: the close must come from the size
	// prefix, not from the deadline.
	b := startSASLBroker(t, "-sasl-max-receive-bytes", strconv.Itoa(limit),
		"-sasl-auth-timeout", "10m", "-sasl-max-reauth", "1h")

	// announce writes a size prefix of 64 MiB and the start of a body:
	// the rest never comes.
	announce := func(t *testing.T, c saslConn) {
		t.Helper()
		var f [4 + 1024]byte
		binary.BigEndian.PutUint32(f[:], 64<<20)
		binary.BigEndian.PutUint16(f[4:], 36) // SaslAuthenticate
		if _, err := c.c.Write(f[:]); err != nil {
			t.Fatal(err)
		}
	}
	plain := []byte("\x00" + alice.name + "\x00" + alice.pass)

	t.Run("before-handshake", func(t *testing.T) {
		c := dialSASL(t, b.addr)
		announce(t, c)
		c.expectClosed(t, "64 MiB frame announced before a handshake")
	})
	t.Run("after-handshake", func(t *testing.T) {
		c := dialSASL(t, b.addr)
		c.handshake("PLAIN")
		announce(t, c)
		c.expectClosed(t, "64 MiB frame announced after a handshake")
	})
	t.Run("reauthentication", func(t *testing.T) {
		c := dialSASL(t, b.addr)
		c.handshake("PLAIN")
		if resp := c.authenticate(plain); resp.ErrorCode != 0 {
			t.Fatalf("PLAIN alice: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		// Authenticated: a request above the SASL limit is served.
		if resp := c.do(bigMetadata(2 * limit)).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
			t.Fatalf("large Metadata after authentication: %d brokers", len(resp.Brokers))
		}
		// A re-authentication starts: the SASL limit applies again.
		if hs := c.handshake("PLAIN"); hs.ErrorCode != 0 {
			t.Fatalf("re-authentication handshake: %v", kerr.ErrorForCode(hs.ErrorCode))
		}
		announce(t, c)
		c.expectClosed(t, "64 MiB frame announced during a re-authentication")
	})
	t.Run("after-reauthentication", func(t *testing.T) {
		c := dialSASL(t, b.addr)
		c.handshake("PLAIN")
		c.authenticate(plain)
		c.handshake("PLAIN")
		if resp := c.authenticate(plain); resp.ErrorCode != 0 {
			t.Fatalf("re-authentication: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		if resp := c.do(bigMetadata(2 * limit)).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
			t.Fatalf("large Metadata after re-authentication: %d brokers", len(resp.Brokers))
		}
	})
}

// TestHostilePLAINFloodHoldsNoBudget: unauthenticated clients that send
// PLAIN tokens with long passwords must not hold the broker-wide request
// budget (-max-queued-request-bytes) while their passwords wait for a key
// derivation (PBKDF2, milliseconds of CPU each, a few at a time). Before
// the fix each token's frame stayed held until its check ended: a crowd
// of them filled the budget, and an authenticated producer's request
// waited behind the whole crowd. Now a token is reduced to what the check
// needs and its frame released before the check is queued, so the
// producer is answered while most of the crowd is still waiting.
func TestHostilePLAINFloodHoldsNoBudget(t *testing.T) {
	const (
		floods    = 600
		tokenSize = 60 << 10
	)
	b := startSASLBroker(t, "-max-queued-request-bytes", strconv.Itoa(1<<20),
		"-sasl-max-receive-bytes", strconv.Itoa(64<<10), "-sasl-auth-timeout", "10m")
	cl := newFranzSASL(t, b.addr, "SCRAM-SHA-512", alice)
	createTopic(t, kadm.NewClient(cl), "plain-flood", 1)
	ctx := testContext(t, 2*time.Minute)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "plain-flood", Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	conns := make([]saslConn, floods)
	for i := range conns {
		conns[i] = plainConn(t, dialSASL(t, b.addr))
	}
	_, answered, wait := floodPLAIN(conns, plainToken("mallory", strings.Repeat("p", tokenSize)))
	// Every flood token is on its way before the producer sends: wait
	// until the broker has answered a few (so the crowd is being checked).
	waitFor(t, time.Minute, "the first PLAIN failures", func() bool { return answered.Load() >= 4 })
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "plain-flood", Value: []byte("during")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := answered.Load()
	wait()
	if got > floods/2 {
		t.Fatalf("an authenticated produce was answered only after %d of %d unauthenticated PLAIN attempts: it waited behind them for request memory", got, floods)
	}
	t.Logf("produce answered after %d of %d PLAIN failures", got, floods)
}

// TestHostileSCRAMFirstHoldsLittle: an unauthenticated client may send a
// SCRAM client-first message as large as -sasl-max-receive-bytes (a long
// nonce or user name) and then wait until the authentication deadline.
// The exchange must not keep that message: before the fix it kept three
// copies of it (the message, the nonce, the server-first message that
// repeats the nonce), 1.5 MiB per connection for 500 KiB sent, so 200
// such connections grew the broker by 313 MiB (and tens of thousands, the
// connection cap, by tens of GiB). Now it keeps digests and running
// HMACs: the growth is a small part of one copy per connection.
func TestHostileSCRAMFirstHoldsLittle(t *testing.T) {
	const (
		conns     = 200
		nonceSize = 500 << 10
	)
	b := startSASLBroker(t, "-sasl-auth-timeout", "10m")
	before := memStatus(t, b.cmd.Process.Pid)
	first := []byte("n,,n=mallory,r=" + strings.Repeat("a", nonceSize))
	for range conns {
		c := dialSASL(t, b.addr)
		c.handshake("SCRAM-SHA-256")
		if r := c.authenticate(first); r.ErrorCode != 0 {
			t.Fatalf("client-first: %v", kerr.ErrorForCode(r.ErrorCode))
		}
	}
	after := memStatus(t, b.cmd.Process.Pid)
	grew := after.rss - before.rss
	t.Logf("RSS grew %d MiB with %d exchanges after a %d KiB client-first", grew>>20, conns, nonceSize>>10)
	if grew > conns*nonceSize/2 {
		t.Fatalf("RSS grew %d MiB with %d unauthenticated SCRAM exchanges of %d KiB: the exchanges keep what the clients sent", grew>>20, conns, nonceSize>>10)
	}
}

// dialSASLFrom is dialSASL from the local address ip (127.0.0.0/8 holds
// many), so tests can be several clients to the broker's per-address
// fairness.
func dialSASLFrom(t testing.TB, ip, addr string) saslConn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return saslConn{&rawConn{t: t, c: c}}
}

// plainToken is a SaslAuthenticate v2 frame carrying a PLAIN token.
func plainToken(user, pass string) []byte {
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version = 2
	req.SASLAuthBytes = []byte("\x00" + user + "\x00" + pass)
	return reqFrame(req.Key(), req.Version, 2, req.IsFlexible(), req.AppendTo(nil))
}

// plainConn is c after a PLAIN handshake.
func plainConn(t testing.TB, c saslConn) saslConn {
	t.Helper()
	if hs := c.handshake("PLAIN"); hs.ErrorCode != 0 {
		t.Fatalf("handshake: %v", kerr.ErrorForCode(hs.ErrorCode))
	}
	return c
}

// floodPLAIN sends frame (a PLAIN token) on every conn, each from a
// goroutine of its own, and counts the tokens written and the connections
// answered (the failure's answer, or the close); wait waits for them all.
func floodPLAIN(conns []saslConn, frame []byte) (written, answered *atomic.Int64, wait func()) {
	written, answered = new(atomic.Int64), new(atomic.Int64)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			if _, err := c.c.Write(frame); err != nil {
				return
			}
			written.Add(1)
			c.c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			var one [1]byte
			io.ReadFull(c.c, one[:])
			answered.Add(1)
		})
	}
	return written, answered, wg.Wait
}

// TestHostilePLAINFloodFair: one address sending wrong PLAIN passwords on
// hundreds of connections must not make another address's login wait
// behind all of them. Password checks are few at once
// (-sasl-max-concurrent-verifications) and queued per client address,
// served round-robin, so the other address's check waits about one turn.
// Before, checks ran in arrival order: the login was answered after
// (nearly) the whole flood.
func TestHostilePLAINFloodFair(t *testing.T) {
	const floods = 300
	b := startSASLBroker(t, "-sasl-max-concurrent-verifications", "1", "-sasl-failed-auth-delay", "0", "-sasl-auth-timeout", "10m")
	conns := make([]saslConn, floods)
	for i := range conns {
		conns[i] = plainConn(t, dialSASLFrom(t, "127.0.0.2", b.addr))
	}
	legit := plainConn(t, dialSASLFrom(t, "127.0.0.3", b.addr))
	written, answered, wait := floodPLAIN(conns, plainToken("mallory", "wrong"))
	waitFor(t, time.Minute, "the flood written and its first failures answered", func() bool {
		return written.Load() == floods && answered.Load() >= 4
	})
	if resp := legit.authenticate([]byte("\x00" + alice.name + "\x00" + alice.pass)); resp.ErrorCode != 0 {
		t.Fatalf("PLAIN alice during the flood: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	got := answered.Load()
	wait()
	if got > floods/2 {
		t.Fatalf("a login from another address was answered only after %d of %d wrong passwords from one address", got, floods)
	}
	t.Logf("login answered after %d of %d flood failures", got, floods)
}

// TestHostileSASLFailedAuthDelay: a failed authentication is answered
// -sasl-failed-auth-delay late (KIP-306), then the connection closes; a
// request sent behind the failing token is never answered. A client retrying
// passwords then gets one answer per delay per connection.
func TestHostileSASLFailedAuthDelay(t *testing.T) {
	const delay = time.Second
	b := startSASLBroker(t, "-sasl-failed-auth-delay", delay.String())
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256"} {
		t.Run(mech, func(t *testing.T) {
			start := time.Now()
			failedAuth(t, b.addr, mech, saslUser{alice.name, "wrong"})
			if took := time.Since(start); took < delay {
				t.Fatalf("failure answered after %v, before the %v delay", took, delay)
			}
		})
	}
	t.Run("frame-during-delay", func(t *testing.T) {
		c := dialSASL(t, b.addr)
		c.handshake("PLAIN")
		if _, err := c.c.Write(plainToken(alice.name, "wrong")); err != nil {
			t.Fatal(err)
		}
		av := kmsg.NewPtrApiVersionsRequest()
		if _, err := c.c.Write(reqFrame(av.Key(), av.Version, 3, av.IsFlexible(), av.AppendTo(nil))); err != nil {
			t.Fatal(err)
		}
		// Responses keep request order: the failure's answer, then the close.
		f, err := readFrame(c.c)
		if err != nil {
			t.Fatalf("no answer to the failing token: %v", err)
		}
		if corr := int32(binary.BigEndian.Uint32(f)); corr != 2 {
			t.Fatalf("first answer has correlation id %d, want 2 (the token's)", corr)
		}
		c.expectClosed(t, "a request pipelined behind a failing PLAIN token")
	})
	// The right password is answered at once (no lower bound to check):
	// it must still work.
	if !canLogin(t, b.addr, "PLAIN", alice) {
		t.Fatal("PLAIN alice refused")
	}
}

// TestHostilePLAINClosedDropped: password checks queued for connections
// that have closed (clients that sent a token and hung up, or hit the
// authentication deadline) are dropped without the key derivation, and
// counted: klite_sasl_verifications_dropped_total{reason="closed"}.
func TestHostilePLAINClosedDropped(t *testing.T) {
	const floods = 200
	b := startSASLBroker(t, "-sasl-max-concurrent-verifications", "1", "-sasl-failed-auth-delay", "0", "-http-addr", "127.0.0.1:0")
	frame := plainToken("mallory", "wrong")
	for range floods {
		c := dialSASL(t, b.addr)
		c.handshake("PLAIN")
		if _, err := c.c.Write(frame); err != nil {
			t.Fatal(err)
		}
		c.c.(*net.TCPConn).SetLinger(0)
		c.c.Close()
	}
	var failed, dropped float64
	waitFor(t, time.Minute, "every PLAIN attempt counted", func() bool {
		fams := scrape(t, b.httpAddr())
		failed, _ = metricValue(fams, "klite_sasl_checks_total", "mechanism", "PLAIN", "result", "failed")
		dropped, _ = metricValue(fams, "klite_sasl_verifications_dropped_total", "reason", "closed")
		return failed == floods
	})
	if dropped == 0 {
		t.Fatalf("all %d checks of closed connections were done", floods)
	}
	t.Logf("%v of %d checks dropped unchecked", dropped, floods)
}

// serverFirst sends a SCRAM-SHA-256 client-first message for user and
// returns the server-first message's salt (base64) and iteration count,
// after checking its shape: r=<our nonce><32 letters or digits>,s=...,i=...
func serverFirst(t *testing.T, addr, user string) (salt string, iters int) {
	t.Helper()
	c := dialSASL(t, addr)
	if hs := c.handshake("SCRAM-SHA-256"); hs.ErrorCode != 0 {
		t.Fatalf("handshake: %v", kerr.ErrorForCode(hs.ErrorCode))
	}
	const cnonce = "fyko+d2lbbFgONRv9qkxdawL"
	r := c.authenticate([]byte("n,,n=" + user + ",r=" + cnonce))
	if r.ErrorCode != 0 {
		t.Fatalf("client-first for %q: %v", user, kerr.ErrorForCode(r.ErrorCode))
	}
	m := regexp.MustCompile(`^r=` + regexp.QuoteMeta(cnonce) + `[A-Za-z0-9]{32},s=([A-Za-z0-9+/=]+),i=([0-9]+)$`).FindStringSubmatch(string(r.SASLAuthBytes))
	if m == nil {
		t.Fatalf("server-first for %q has another shape: %q", user, r.SASLAuthBytes)
	}
	iters, _ = strconv.Atoi(m[2])
	return m[1], iters
}

// TestSCRAMUnknownUserIndistinguishable: the answer to a SCRAM
// client-first message must not tell whether the user exists. An unknown
// name gets a made-up credential whose iteration count and salt length are
// those of the real users (spread as the real users' are), with a salt
// that is the same on every try and after a restart, as a real user's is:
// it is derived from a secret kept in <wal>/sasl.secret (0600). Before,
// every unknown name got 4096 iterations and a 32-byte salt whatever the
// real users had, and a new salt after each restart (the secret lived in
// memory only), so a client could enumerate users.
func TestSCRAMUnknownUserIndistinguishable(t *testing.T) {
	b := startSASLBroker(t)
	// carol's credential has another shape than the users file's (4096
	// iterations, 32-byte salts): 8192 iterations, a 16-byte salt.
	carolSalt := []byte("0123456789abcdef")
	salted, err := pbkdf2.Key(sha256.New, "carol-secret", carolSalt, 8192, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(newFranzSASL(t, b.addr, "SCRAM-SHA-512", alice))
	res, err := adm.AlterUserSCRAMs(testContext(t, time.Minute), nil, []kadm.UpsertSCRAM{{
		User: "carol", Mechanism: kadm.ScramSha256, Iterations: 8192, Salt: carolSalt, SaltedPassword: salted,
	}})
	if err != nil || res["carol"].Err != nil {
		t.Fatalf("add carol: %v %v", err, res["carol"].Err)
	}

	type shape struct{ iters, saltLen int }
	shapeOf := func(user string) (string, shape) {
		s, i := serverFirst(t, b.addr, user)
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("salt %q: %v", s, err)
		}
		return s, shape{i, len(raw)}
	}
	known := map[shape]bool{}
	for _, u := range []string{alice.name, bob.name, "carol"} {
		_, sh := shapeOf(u)
		known[sh] = true
	}
	if len(known) != 2 {
		t.Fatalf("real users' shapes %v, want two", known)
	}
	const unknowns = 120
	seen := map[shape]int{}
	salts := map[string]string{}
	for i := range unknowns {
		name := "nobody-" + strconv.Itoa(i)
		s, sh := shapeOf(name)
		if !known[sh] {
			t.Fatalf("unknown user %q: %d iterations, %d-byte salt; no real user's credential looks like that (%v)", name, sh.iters, sh.saltLen, known)
		}
		seen[sh]++
		salts[name] = s
	}
	if len(seen) != len(known) {
		t.Fatalf("unknown users' shapes %v: not spread over the real users' %v", seen, known)
	}
	again := func(when string) {
		for _, name := range []string{"nobody-0", "nobody-1", "nobody-2"} {
			if s, _ := shapeOf(name); s != salts[name] {
				t.Fatalf("%s: unknown user %q got salt %s, before %s: a real user's salt does not change", when, name, s, salts[name])
			}
		}
	}
	again("second try")
	fi, err := os.Stat(filepath.Join(b.dir, "sasl.secret"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("sasl.secret mode %v, want 0600", fi.Mode().Perm())
	}
	b.stop()
	b.restart()
	again("after a restart")
	t.Logf("unknown users' shapes over %d names: %v", unknowns, seen)
}
