package main

// Hostile clients of the SASL listeners, against the real binary: what an
// unauthenticated (or re-authenticating) client can make the broker hold.

import (
	"encoding/binary"
	"io"
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
		conns[i] = dialSASL(t, b.addr)
		if hs := conns[i].handshake("PLAIN"); hs.ErrorCode != 0 {
			t.Fatalf("handshake: %v", kerr.ErrorForCode(hs.ErrorCode))
		}
	}
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version = 2
	req.SASLAuthBytes = []byte("\x00mallory\x00" + strings.Repeat("p", tokenSize))
	var answered atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.c.Write(reqFrame(req.Key(), req.Version, 1, req.IsFlexible(), req.AppendTo(nil))); err != nil {
				return
			}
			c.c.SetReadDeadline(time.Now().Add(time.Minute))
			var one [1]byte
			io.ReadFull(c.c, one[:]) // the failure answer, or the close
			answered.Add(1)
		}()
	}
	// Every flood token is on its way before the producer sends: wait
	// until the broker has answered a few (so the crowd is being checked).
	waitFor(t, time.Minute, "the first PLAIN failures", func() bool { return answered.Load() >= 4 })
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "plain-flood", Value: []byte("during")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := answered.Load()
	wg.Wait()
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
