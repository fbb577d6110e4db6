package main

// SASL on a SASL_PLAINTEXT listener, against the real binary: every client
// family with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 producing and
// consuming; failures that must look alike; the pre-authentication gate; the
// authentication deadline.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	kgokafka "github.com/segmentio/kafka-go"
	ksasl "github.com/segmentio/kafka-go/sasl"
	kplain "github.com/segmentio/kafka-go/sasl/plain"
	kscram "github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	xscram "github.com/xdg-go/scram"

	"github.com/klite/klite/internal/testcerts"
)

const saslRecords = 25 // per client and mechanism

var saslMechs = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

type saslUser struct{ name, pass string }

var (
	alice = saslUser{"alice", "alice-secret"}
	bob   = saslUser{"bob", "pa:ss word"} // a colon and a space: only the first colon splits
)

// writeUsersFile writes a -sasl-users-file with alice and bob.
func writeUsersFile(t testing.TB) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "users")
	body := "# SASL users\n" + alice.name + ":" + alice.pass + "\n\n" + bob.name + ":" + bob.pass + "\r\n"
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func startSASLBroker(t testing.TB, extra ...string) *broker {
	t.Helper()
	return startBrokerProto(t, "SASL_PLAINTEXT", append([]string{"-sasl-users-file", writeUsersFile(t)}, extra...)...)
}

func franzMech(mech string, u saslUser) sasl.Mechanism {
	switch mech {
	case "PLAIN":
		return plain.Auth{User: u.name, Pass: u.pass}.AsMechanism()
	case "SCRAM-SHA-256":
		return scram.Auth{User: u.name, Pass: u.pass}.AsSha256Mechanism()
	}
	return scram.Auth{User: u.name, Pass: u.pass}.AsSha512Mechanism()
}

func newFranzSASL(t testing.TB, addr, mech string, u saslUser, opts ...kgo.Opt) *kgo.Client {
	return newFranz(t, addr, append([]kgo.Opt{kgo.SASL(franzMech(mech, u))}, opts...)...)
}

func saslValue(i int) []byte { return []byte("sasl-record-" + strconv.Itoa(i)) }

// checkValues fails unless got is saslValue(0..n-1) in order.
func checkValues(t testing.TB, got [][]byte, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}
	for i, v := range got {
		if !bytes.Equal(v, saslValue(i)) {
			t.Fatalf("record %d is %q, want %q", i, v, saslValue(i))
		}
	}
}

func TestSASLClients(t *testing.T) {
	b := startSASLBroker(t)
	adm := kadm.NewClient(newFranzSASL(t, b.addr, "SCRAM-SHA-512", alice))
	topicFor := func(client, mech string) string {
		topic := "sasl-" + client + "-" + strings.ToLower(mech)
		createTopic(t, adm, topic, 1)
		return topic
	}
	for _, mech := range saslMechs {
		t.Run("franz/"+mech, func(t *testing.T) {
			topic := topicFor("franz", mech)
			cl := newFranzSASL(t, b.addr, mech, alice, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			franzRoundTrip(t, cl, topic)
		})
		t.Run("confluent/"+mech, func(t *testing.T) {
			topic := topicFor("confluent", mech)
			auth := ckafka.ConfigMap{
				"security.protocol": "SASL_PLAINTEXT",
				"sasl.mechanisms":   mech,
				"sasl.username":     alice.name,
				"sasl.password":     alice.pass,
			}
			p := ckProducer(t, b.addr, auth)
			ckProduce(t, p, func(yield func(*ckafka.Message) bool) {
				for i := range saslRecords {
					if !yield(&ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: 0}, Value: saslValue(i)}) {
						return
					}
				}
			}, saslRecords)
			cfg := ckafka.ConfigMap{"bootstrap.servers": b.addr, "group.id": "sasl-test", "enable.auto.commit": false}
			for k, v := range auth {
				cfg[k] = v
			}
			c, err := ckafka.NewConsumer(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Assign([]ckafka.TopicPartition{{Topic: &topic, Partition: 0, Offset: ckafka.OffsetBeginning}}); err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			deadline := time.Now().Add(time.Minute)
			for len(got) < saslRecords && time.Now().Before(deadline) {
				m, err := c.ReadMessage(time.Second)
				if err != nil {
					if ke, ok := err.(ckafka.Error); ok && ke.IsTimeout() {
						continue
					}
					t.Fatalf("consume: %v", err)
				}
				got = append(got, m.Value)
			}
			checkValues(t, got, saslRecords)
		})
		for _, v := range []int16{sarama.SASLHandshakeV1, sarama.SASLHandshakeV0} {
			t.Run(fmt.Sprintf("sarama-handshake-v%d/%s", v, mech), func(t *testing.T) {
				topic := topicFor(fmt.Sprintf("sarama-v%d", v), mech)
				cfg := saramaSASLConfig(mech, bob, v)
				prod, err := sarama.NewSyncProducer([]string{b.addr}, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer prod.Close()
				for i := range saslRecords {
					if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.ByteEncoder(saslValue(i))}); err != nil {
						t.Fatalf("produce: %v", err)
					}
				}
				cons, err := sarama.NewConsumer([]string{b.addr}, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer cons.Close()
				pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				var got [][]byte
				timeout := time.After(time.Minute)
				for len(got) < saslRecords {
					select {
					case m := <-pc.Messages():
						got = append(got, m.Value)
					case err := <-pc.Errors():
						t.Fatalf("consume: %v", err)
					case <-timeout:
						t.Fatalf("consumed %d of %d records in a minute", len(got), saslRecords)
					}
				}
				checkValues(t, got, saslRecords)
			})
		}
		t.Run("kafka-go/"+mech, func(t *testing.T) {
			topic := topicFor("kafkago", mech)
			var m ksasl.Mechanism = kplain.Mechanism{Username: alice.name, Password: alice.pass}
			if mech != "PLAIN" {
				algo := kscram.SHA256
				if mech == "SCRAM-SHA-512" {
					algo = kscram.SHA512
				}
				var err error
				if m, err = kscram.Mechanism(algo, alice.name, alice.pass); err != nil {
					t.Fatal(err)
				}
			}
			ctx := testContext(t, time.Minute)
			w := &kgokafka.Writer{Addr: kgokafka.TCP(b.addr), Topic: topic, RequiredAcks: kgokafka.RequireAll,
				Transport: &kgokafka.Transport{SASL: m}, BatchTimeout: time.Millisecond}
			defer w.Close()
			var msgs []kgokafka.Message
			for i := range saslRecords {
				msgs = append(msgs, kgokafka.Message{Value: saslValue(i)})
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				t.Fatalf("produce: %v", err)
			}
			r := kgokafka.NewReader(kgokafka.ReaderConfig{Brokers: []string{b.addr}, Topic: topic, Partition: 0, MaxWait: 200 * time.Millisecond,
				Dialer: &kgokafka.Dialer{Timeout: 10 * time.Second, SASLMechanism: m}})
			defer r.Close()
			var got [][]byte
			for len(got) < saslRecords {
				msg, err := r.ReadMessage(ctx)
				if err != nil {
					t.Fatalf("consume: %v", err)
				}
				got = append(got, msg.Value)
			}
			checkValues(t, got, saslRecords)
		})
		t.Run("kcat/"+mech, func(t *testing.T) {
			kcat := debianTool(t, "kcat")
			topic := topicFor("kcat", mech)
			args := []string{"-b", b.addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=" + mech,
				"-X", "sasl.username=" + bob.name, "-X", "sasl.password=" + bob.pass, "-t", topic, "-p", "0"}
			var in bytes.Buffer
			for i := range saslRecords {
				in.Write(saslValue(i))
				in.WriteByte('\n')
			}
			ctx := testContext(t, time.Minute)
			prod := exec.CommandContext(ctx, kcat, append(args, "-P")...)
			prod.Stdin = &in
			if out, err := prod.CombinedOutput(); err != nil {
				t.Fatalf("kcat -P: %v\n%s", err, out)
			}
			cons := exec.CommandContext(ctx, kcat, append(args, "-C", "-o", "beginning", "-c", strconv.Itoa(saslRecords), "-e", "-q")...)
			out, err := cons.Output()
			if err != nil {
				t.Fatalf("kcat -C: %v\n%s", err, out)
			}
			checkValues(t, bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")), saslRecords)
		})
	}
}

func saramaSASLConfig(mech string, u saslUser, handshake int16) *sarama.Config {
	cfg := saramaConfig()
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Handshake = true
	cfg.Net.SASL.Version = handshake
	// Sarama refuses a v0 handshake after ApiVersions: the legacy flow
	// predates it.
	cfg.ApiVersionsRequest = handshake != sarama.SASLHandshakeV0
	cfg.Net.SASL.User, cfg.Net.SASL.Password = u.name, u.pass
	cfg.Net.SASL.Mechanism = sarama.SASLMechanism(mech)
	switch mech {
	case "SCRAM-SHA-256":
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{hash: xscram.SHA256} }
	case "SCRAM-SHA-512":
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{hash: xscram.SHA512} }
	}
	return cfg
}

// saramaSCRAM is the SCRAM client sarama asks its users to supply.
type saramaSCRAM struct {
	hash xscram.HashGeneratorFcn
	conv *xscram.ClientConversation
}

func (s *saramaSCRAM) Begin(user, pass, authzID string) error {
	c, err := s.hash.NewClient(user, pass, authzID)
	if err != nil {
		return err
	}
	s.conv = c.NewConversation()
	return nil
}

func (s *saramaSCRAM) Step(challenge string) (string, error) { return s.conv.Step(challenge) }
func (s *saramaSCRAM) Done() bool                            { return s.conv.Done() }

// saslConn is a raw connection speaking SASL by hand.
type saslConn struct{ *rawConn }

func dialSASL(t testing.TB, addr string) saslConn { return saslConn{dialRaw(t, addr)} }

func (c saslConn) handshake(mech string) *kmsg.SASLHandshakeResponse {
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version, req.Mechanism = 1, mech
	return c.do(req).(*kmsg.SASLHandshakeResponse)
}

func (c saslConn) authenticate(token []byte) *kmsg.SASLAuthenticateResponse {
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = 2, token
	return c.do(req).(*kmsg.SASLAuthenticateResponse)
}

// expectClosed fails unless the broker closes the connection (without
// answering) within badInputWait.
func (c saslConn) expectClosed(t testing.TB, what string) {
	t.Helper()
	f, err := readFrame(c.c)
	if err == nil {
		t.Fatalf("%s: answered with a %d-byte frame, want the connection closed", what, len(f))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: connection still open after %v", what, badInputWait)
	}
}

// failedAuth runs one authentication that must fail and returns the error
// message; the connection must be closed after the answer.
func failedAuth(t *testing.T, addr, mech string, u saslUser) string {
	t.Helper()
	c := dialSASL(t, addr)
	if hs := c.handshake(mech); hs.ErrorCode != 0 {
		t.Fatalf("handshake %s: %v", mech, kerr.ErrorForCode(hs.ErrorCode))
	}
	var resp *kmsg.SASLAuthenticateResponse
	if mech == "PLAIN" {
		resp = c.authenticate([]byte("\x00" + u.name + "\x00" + u.pass))
	} else {
		h := xscram.SHA256
		if mech == "SCRAM-SHA-512" {
			h = xscram.SHA512
		}
		cl, err := h.NewClient(u.name, u.pass, "")
		if err != nil {
			t.Fatal(err)
		}
		conv := cl.NewConversation()
		first, _ := conv.Step("")
		r1 := c.authenticate([]byte(first))
		if r1.ErrorCode != 0 {
			// An unknown user must get as far as a wrong password.
			t.Fatalf("%s user %q: client-first refused (%v): the answer tells unknown users apart", mech, u.name, kerr.ErrorForCode(r1.ErrorCode))
		}
		final, err := conv.Step(string(r1.SASLAuthBytes))
		if err != nil {
			t.Fatalf("server-first %q: %v", r1.SASLAuthBytes, err)
		}
		resp = c.authenticate([]byte(final))
	}
	if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("%s user %q: error %v, want SASL_AUTHENTICATION_FAILED", mech, u.name, kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp.ErrorMessage == nil || *resp.ErrorMessage == "" {
		t.Fatalf("%s: no error message", mech)
	}
	c.expectClosed(t, "after a failed authentication")
	return *resp.ErrorMessage
}

func TestSASLFailures(t *testing.T) {
	b := startSASLBroker(t)

	t.Run("wrong-password-and-unknown-user-alike", func(t *testing.T) {
		for _, mech := range saslMechs {
			wrong := failedAuth(t, b.addr, mech, saslUser{alice.name, "not-" + alice.pass})
			unknown := failedAuth(t, b.addr, mech, saslUser{"mallory", alice.pass})
			if wrong != unknown {
				t.Errorf("%s: wrong password answers %q, unknown user %q", mech, wrong, unknown)
			}
			for _, msg := range []string{wrong, unknown} {
				if strings.Contains(msg, "mallory") || strings.Contains(msg, alice.name) {
					t.Errorf("%s: message %q names the user", mech, msg)
				}
			}
		}
		waitFor(t, 10*time.Second, "failed authentications in the log", func() bool {
			return b.log.contains("SASL authentication failed") && b.log.contains(`"remote":"127.0.0.1:`)
		})
	})

	t.Run("real-clients-see-the-same-error", func(t *testing.T) {
		for _, mech := range saslMechs {
			var errs []string
			for _, u := range []saslUser{{alice.name, "wrong"}, {"mallory", "wrong"}} {
				cl := newFranzSASL(t, b.addr, mech, u, kgo.RequestRetries(0))
				err := cl.Ping(testContext(t, 30*time.Second))
				if !errors.Is(err, kerr.SaslAuthenticationFailed) {
					t.Fatalf("%s %s: ping: %v, want SASL_AUTHENTICATION_FAILED", mech, u.name, err)
				}
				errs = append(errs, err.Error())
			}
			if errs[0] != errs[1] {
				t.Errorf("%s: wrong password %q, unknown user %q", mech, errs[0], errs[1])
			}
		}
	})

	t.Run("metadata-before-auth-closes", func(t *testing.T) {
		c := dialSASL(t, b.addr)
		c.send(kmsg.NewPtrMetadataRequest())
		c.expectClosed(t, "Metadata before SASL")

		// ApiVersions is allowed first; Metadata after it still is not.
		c = dialSASL(t, b.addr)
		av := kmsg.NewPtrApiVersionsRequest()
		if resp := c.do(av).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
			t.Fatalf("ApiVersions: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		c.handshake("PLAIN")
		c.send(kmsg.NewPtrMetadataRequest())
		c.expectClosed(t, "Metadata between handshake and authenticate")
	})

	t.Run("out-of-turn", func(t *testing.T) {
		c := dialSASL(t, b.addr)
		if resp := c.authenticate([]byte("\x00alice\x00alice-secret")); resp.ErrorCode != kerr.IllegalSaslState.Code {
			t.Fatalf("SaslAuthenticate before handshake: %v, want ILLEGAL_SASL_STATE", kerr.ErrorForCode(resp.ErrorCode))
		}
		c.expectClosed(t, "SaslAuthenticate before handshake")

		c = dialSASL(t, b.addr)
		hs := c.handshake("GSSAPI")
		if hs.ErrorCode != kerr.UnsupportedSaslMechanism.Code || strings.Join(hs.SupportedMechanisms, ",") != "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512" {
			t.Fatalf("GSSAPI handshake: %v %v", kerr.ErrorForCode(hs.ErrorCode), hs.SupportedMechanisms)
		}
		c.expectClosed(t, "unsupported mechanism")
	})

	t.Run("authenticated-raw-connection", func(t *testing.T) {
		c := dialSASL(t, b.addr)
		c.handshake("PLAIN")
		if resp := c.authenticate([]byte("\x00" + bob.name + "\x00" + bob.pass)); resp.ErrorCode != 0 {
			t.Fatalf("PLAIN bob: %v %v", kerr.ErrorForCode(resp.ErrorCode), resp.ErrorMessage)
		}
		md := kmsg.NewPtrMetadataRequest()
		md.Version = 12
		if resp := c.do(md).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
			t.Fatalf("Metadata after SASL: %d brokers", len(resp.Brokers))
		}
		// A second handshake is out of turn, and answered without a close.
		if hs := c.handshake("PLAIN"); hs.ErrorCode != kerr.IllegalSaslState.Code {
			t.Fatalf("second handshake: %v, want ILLEGAL_SASL_STATE", kerr.ErrorForCode(hs.ErrorCode))
		}
		if resp := c.do(md).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
			t.Fatalf("Metadata after a second handshake: %d brokers", len(resp.Brokers))
		}
	})
}

// TestSASLAuthDeadline: a connection that never finishes authenticating is
// closed at -sasl-auth-timeout; one that did is not.
func TestSASLAuthDeadline(t *testing.T) {
	b := startSASLBroker(t, "-sasl-auth-timeout", "1s")

	authed := dialSASL(t, b.addr)
	authed.handshake("SCRAM-SHA-256")
	cl, _ := xscram.SHA256.NewClient(alice.name, alice.pass, "")
	conv := cl.NewConversation()
	first, _ := conv.Step("")
	r1 := authed.authenticate([]byte(first))
	final, err := conv.Step(string(r1.SASLAuthBytes))
	if err != nil {
		t.Fatal(err)
	}
	r2 := authed.authenticate([]byte(final))
	if r2.ErrorCode != 0 {
		t.Fatalf("SCRAM alice: %v", kerr.ErrorForCode(r2.ErrorCode))
	}
	if _, err := conv.Step(string(r2.SASLAuthBytes)); err != nil || !conv.Valid() {
		t.Fatalf("server-final %q does not prove the server knows the credential: %v", r2.SASLAuthBytes, err)
	}

	silent := dialSASL(t, b.addr)
	halfway := dialSASL(t, b.addr)
	halfway.do(kmsg.NewPtrApiVersionsRequest())
	halfway.handshake("PLAIN")
	for _, c := range []saslConn{silent, halfway} {
		c.c.SetReadDeadline(time.Now().Add(time.Minute))
		var one [1]byte
		if n, err := c.c.Read(one[:]); err == nil || n > 0 {
			t.Fatalf("unauthenticated connection: read %d bytes, %v; want it closed", n, err)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("unauthenticated connection still open after a minute")
		}
	}
	// Both were opened after authed, so its deadline has passed too.
	md := kmsg.NewPtrMetadataRequest()
	if resp := authed.do(md).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
		t.Fatalf("authenticated connection after the deadline: %d brokers", len(resp.Brokers))
	}
	if !b.log.contains("SASL authentication not finished in time") {
		t.Error("no log line for the deadline")
	}
}

// TestSASLOnPlaintextListener: SASL requests on a PLAINTEXT listener get
// ILLEGAL_SASL_STATE and the connection stays usable, as in Kafka.
func TestSASLOnPlaintextListener(t *testing.T) {
	b := startBroker(t)
	c := dialSASL(t, b.addr)
	if hs := c.handshake("PLAIN"); hs.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("handshake: %v, want ILLEGAL_SASL_STATE", kerr.ErrorForCode(hs.ErrorCode))
	}
	if resp := c.authenticate([]byte("\x00a\x00b")); resp.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("authenticate: %v, want ILLEGAL_SASL_STATE", kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp := c.do(kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
		t.Fatalf("Metadata: %d brokers", len(resp.Brokers))
	}
}

// canLogin reports whether u can authenticate with mech (PLAIN or SCRAM).
func canLogin(t testing.TB, addr, mech string, u saslUser) bool {
	t.Helper()
	cl := newFranzSASL(t, addr, mech, u, kgo.RequestRetries(0))
	defer cl.Close()
	err := cl.Ping(testContext(t, 30*time.Second))
	if err != nil && !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("%s %s: %v, want success or SASL_AUTHENTICATION_FAILED", mech, u.name, err)
	}
	return err == nil
}

// TestSASLUsersDurable: a SCRAM user created at run time with kadm
// authenticates, survives kill -9, is gone after its deletion (also after
// a restart), and Describe shows mechanisms and iterations only.
func TestSASLUsersDurable(t *testing.T) {
	b := startSASLBroker(t)
	cl := newFranzSASL(t, b.addr, "SCRAM-SHA-256", alice)
	adm := kadm.NewClient(cl)
	carol := saslUser{"carol", "carol-secret"}
	ctx := testContext(t, time.Minute)

	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: carol.name, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: carol.pass},
		{User: carol.name, Mechanism: kadm.ScramSha512, Iterations: 8192, Password: carol.pass},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := altered[carol.name].Err; err != nil {
		t.Fatalf("upsert carol: %v", err)
	}
	// kadm refuses these itself; the broker must too.
	bad := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	for _, u := range []struct {
		name  string
		mech  int8
		iters int32
	}{{"dave", 1, 100}, {"erin", 1, 1 << 20}, {"frank", 3, 4096}, {"gina", 1, 4096}, {"gina", 1, 4096}} {
		up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = u.name, u.mech, u.iters, []byte("salt"), []byte("salted-password-of-32-bytes-long")
		bad.Upsertions = append(bad.Upsertions, up)
	}
	del := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
	del.Name, del.Mechanism = "nobody", 1
	bad.Deletions = append(bad.Deletions, del)
	badResp, err := bad.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int16{"dave": kerr.UnacceptableCredential.Code, "erin": kerr.UnacceptableCredential.Code,
		"frank": kerr.UnsupportedSaslMechanism.Code, "gina": kerr.DuplicateResource.Code, "nobody": kerr.ResourceNotFound.Code}
	if len(badResp.Results) != len(want) {
		t.Fatalf("%d results for %d users", len(badResp.Results), len(want))
	}
	for _, res := range badResp.Results {
		if res.ErrorCode != want[res.User] {
			t.Errorf("user %s: %v, want %v", res.User, kerr.ErrorForCode(res.ErrorCode), kerr.ErrorForCode(want[res.User]))
		}
	}
	for _, mech := range saslMechs {
		if !canLogin(t, b.addr, mech, carol) {
			t.Fatalf("carol cannot log in with %s", mech)
		}
	}
	if canLogin(t, b.addr, "SCRAM-SHA-256", saslUser{"dave", "x"}) {
		t.Fatal("dave logged in although his credential was refused")
	}

	described, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(described.Sorted())
	for _, want := range []string{"alice", "bob", "carol", "SCRAM-SHA-512=iterations=8192", "SCRAM-SHA-256=iterations=4096"} {
		if !strings.Contains(got, want) {
			t.Errorf("described users %s lack %q", got, want)
		}
	}
	if d, err := adm.DescribeUserSCRAMs(ctx, "nobody"); err != nil || !errors.Is(d["nobody"].Err, kerr.ResourceNotFound) {
		t.Errorf("describe nobody: %v %v", d, err)
	}

	b.kill9()
	b.restart()
	adm = kadm.NewClient(newFranzSASL(t, b.addr, "SCRAM-SHA-512", carol))
	for _, mech := range saslMechs {
		if !canLogin(t, b.addr, mech, carol) {
			t.Fatalf("after kill -9: carol cannot log in with %s", mech)
		}
	}
	altered, err = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{
		{User: carol.name, Mechanism: kadm.ScramSha256}, {User: carol.name, Mechanism: kadm.ScramSha512},
	}, nil)
	if err != nil || altered[carol.name].Err != nil {
		t.Fatalf("delete carol: %v %v", err, altered)
	}
	for _, mech := range saslMechs {
		if canLogin(t, b.addr, mech, carol) {
			t.Fatalf("deleted carol still logs in with %s", mech)
		}
	}
	b.kill9()
	b.restart()
	if canLogin(t, b.addr, "SCRAM-SHA-512", carol) {
		t.Fatal("deleted carol logs in after a restart")
	}
	if !canLogin(t, b.addr, "SCRAM-SHA-512", alice) {
		t.Fatal("alice, from the users file, cannot log in after restarts")
	}
	if !b.log.contains(`"users":2`) {
		t.Error("no users-loaded log line")
	}
}

// TestSASLUsersDisasterRecovery: users, from the file and created at run
// time, are in the bucket's metadata snapshot and come back on an empty
// data directory, even without the users file.
func TestSASLUsersDisasterRecovery(t *testing.T) {
	endpoint := startS3(t)
	b := startSASLBroker(t, tierFlags(endpoint)...)
	cl := newFranzSASL(t, b.addr, "SCRAM-SHA-256", alice)
	adm := kadm.NewClient(cl)
	ctx := testContext(t, time.Minute)
	carol := saslUser{"carol", "carol-secret"}
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: carol.name, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: carol.pass}})
	if err != nil || altered[carol.name].Err != nil {
		t.Fatalf("upsert carol: %v %v", err, altered)
	}
	createTopic(t, adm, "dr-sasl", 1)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "dr-sasl", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	b.stop() // the final upload and snapshot

	if err := os.RemoveAll(b.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b.args = slices.DeleteFunc(slices.Clone(b.args), func(a string) bool { return a == "-sasl-users-file" || strings.HasSuffix(a, "/users") })
	b.restart()
	if !b.log.contains("restored from the bucket") {
		t.Fatal("no restore logged")
	}
	if !canLogin(t, b.addr, "SCRAM-SHA-512", carol) {
		t.Fatal("carol cannot log in after recovery from the bucket")
	}
	if !canLogin(t, b.addr, "PLAIN", alice) {
		t.Fatal("alice cannot log in after recovery from the bucket")
	}
	if canLogin(t, b.addr, "PLAIN", saslUser{carol.name, "wrong"}) {
		t.Fatal("a wrong password logs in after recovery")
	}
}

// connectCounter counts franz-go's new broker connections.
type connectCounter struct{ n atomic.Int64 }

func (c *connectCounter) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		c.n.Add(1)
	}
}

// TestSASLReauth (KIP-368): with -sasl-max-reauth, franz-go re-authenticates
// its connections in place as their sessions run out; the broker accepts
// that and never has to close them (a closed one would show as a new
// connection). Each mechanism, producing across several lifetimes.
func TestSASLReauth(t *testing.T) {
	const lifetime = 1500 * time.Millisecond
	b := startSASLBroker(t, "-sasl-max-reauth", lifetime.String())
	adm := kadm.NewClient(newFranzSASL(t, b.addr, "PLAIN", alice))
	for _, mech := range saslMechs {
		t.Run(mech, func(t *testing.T) {
			topic := "reauth-" + strings.ToLower(mech)
			createTopic(t, adm, topic, 1)
			var conns connectCounter
			cl := newFranzSASL(t, b.addr, mech, alice, kgo.WithHooks(&conns))
			ctx := testContext(t, time.Minute)
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("first")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			before := conns.n.Load()
			// Keep producing over three lifetimes: every request after
			// the first expiry needs a re-authenticated session.
			for end := time.Now().Add(3 * lifetime); time.Now().Before(end); {
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
					t.Fatalf("produce across re-authentications: %v", err)
				}
				time.Sleep(50 * time.Millisecond) // pacing, not waiting for state
			}
			if after := conns.n.Load(); after != before {
				t.Fatalf("%d new connections while producing: the broker closed sessions instead of re-authenticating them", after-before)
			}
		})
	}
	t.Run("confluent", func(t *testing.T) {
		// librdkafka re-authenticates too (since 2.2).
		topic := "reauth-confluent"
		createTopic(t, adm, topic, 1)
		p := ckProducer(t, b.addr, ckafka.ConfigMap{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
			"sasl.username": alice.name, "sasl.password": alice.pass, "linger.ms": 0})
		for end := time.Now().Add(3 * lifetime); time.Now().Before(end); {
			ckProduce(t, p, func(yield func(*ckafka.Message) bool) {
				yield(&ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: 0}, Value: []byte("v")})
			}, 1)
			time.Sleep(50 * time.Millisecond) // pacing, not waiting for state
		}
	})
	for _, bad := range []string{"SASL session expired", "SASL authentication failed"} {
		if b.log.contains(bad) {
			t.Errorf("broker log: %q: a client did not re-authenticate in time, or was refused", bad)
		}
	}
}

// TestSASLPrincipalACLs: with -authorizer, ACLs apply to the SASL user a
// connection authenticated as: bob is refused until alice (a super user)
// grants him WRITE.
func TestSASLPrincipalACLs(t *testing.T) {
	b := startSASLBroker(t, "-authorizer", "-super-users", "User:alice")
	ctx := testContext(t, time.Minute)
	adm := kadm.NewClient(newFranzSASL(t, b.addr, "SCRAM-SHA-256", alice))
	createTopic(t, adm, "acl-sasl", 1)
	bobCl := newFranzSASL(t, b.addr, "SCRAM-SHA-512", bob, kgo.RequestRetries(0))
	err := bobCl.ProduceSync(ctx, &kgo.Record{Topic: "acl-sasl", Partition: 0, Value: []byte("v")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob produces without an ACL: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	res, err := adm.CreateACLs(ctx, kadm.NewACLs().Topics("acl-sasl").Allow("User:bob").Operations(kadm.OpWrite))
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("grant bob WRITE: %v %+v", err, res)
	}
	bobCl2 := newFranzSASL(t, b.addr, "PLAIN", bob)
	if err := bobCl2.ProduceSync(ctx, &kgo.Record{Topic: "acl-sasl", Partition: 0, Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("bob produces with WRITE: %v", err)
	}
	// An unknown user is refused before any ACL is consulted.
	carolCl := newFranzSASL(t, b.addr, "PLAIN", saslUser{"carol", "x"}, kgo.RequestRetries(0))
	if err := carolCl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("unknown carol: %v", err)
	}
}

// TestSASLSSL: SASL over TLS (SASL_SSL) with franz-go, confluent-kafka-go
// and kcat, each mechanism; the listener advertises localhost, which the
// test certificate names.
func TestSASLSSL(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "klite test CA")
	caFile := ca.Write(t, dir, "ca")
	certFile, keyFile := ca.Server(t, "klite").Write(t, dir, "server")
	b := startSASLBroker(t, "-listen", "SASL_SSL://127.0.0.1:0", "-advertise", "localhost",
		"-tls-cert", certFile, "-tls-key", keyFile)
	_, port, _ := net.SplitHostPort(b.addr)
	addr := "localhost:" + port
	tlsCfg := &tls.Config{RootCAs: ca.Pool()}
	adm := kadm.NewClient(newFranzSASL(t, addr, "SCRAM-SHA-512", alice, kgo.DialTLSConfig(tlsCfg)))
	for _, mech := range saslMechs {
		topic := "sasl-ssl-" + strings.ToLower(mech)
		createTopic(t, adm, topic, 1)
		t.Run("franz/"+mech, func(t *testing.T) {
			cl := newFranzSASL(t, addr, mech, bob, kgo.DialTLSConfig(tlsCfg), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			franzRoundTrip(t, cl, topic)
		})
		t.Run("confluent/"+mech, func(t *testing.T) {
			p := ckProducer(t, addr, ckafka.ConfigMap{"security.protocol": "SASL_SSL", "ssl.ca.location": caFile,
				"sasl.mechanisms": mech, "sasl.username": alice.name, "sasl.password": alice.pass})
			ckProduce(t, p, func(yield func(*ckafka.Message) bool) {
				for i := range saslRecords {
					if !yield(&ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: 0}, Value: saslValue(i)}) {
						return
					}
				}
			}, saslRecords)
		})
		t.Run("kcat/"+mech, func(t *testing.T) {
			kcat := debianTool(t, "kcat")
			ctx := testContext(t, time.Minute)
			out, err := exec.CommandContext(ctx, kcat, "-b", addr, "-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location="+caFile,
				"-X", "sasl.mechanisms="+mech, "-X", "sasl.username="+bob.name, "-X", "sasl.password="+bob.pass,
				"-t", topic, "-p", "0", "-C", "-o", "beginning", "-c", strconv.Itoa(saslRecords), "-e", "-q").Output()
			if err != nil {
				t.Fatalf("kcat -C: %v\n%s", err, out)
			}
			checkValues(t, bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")), saslRecords)
		})
	}
}

// franzRoundTrip produces saslRecords records to topic through cl and reads
// every one back (cl consumes topic from the start).
func franzRoundTrip(t *testing.T, cl *kgo.Client, topic string) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	for i := range saslRecords {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: saslValue(i)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	var got [][]byte
	for len(got) < saslRecords {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r.Value) })
	}
	checkValues(t, got, saslRecords)
}
