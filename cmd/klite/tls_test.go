package main

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/internal/testcerts"
)

// tlsBroker is a broker with a PLAINTEXT listener and an SSL one, and the
// CA that signed its certificate (made in the test, for 127.0.0.1 and
// localhost).
type tlsBroker struct {
	*broker
	ca               *testcerts.CA
	caFile           string
	certFile         string
	keyFile          string
	plain, ssl       string // bound addresses
	plainAdv, sslAdv string // advertised addresses
}

// startTLSBroker starts klite with -listen PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0;
// the SSL listener advertises localhost:<its port>, so Metadata tells the
// listeners apart.
func startTLSBroker(t *testing.T, extra ...string) *tlsBroker {
	t.Helper()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "klite test CA")
	tb := &tlsBroker{ca: ca, caFile: ca.Write(t, dir, "ca")}
	tb.certFile, tb.keyFile = ca.Server(t, "klite").Write(t, dir, "server")
	args := append([]string{
		"-listen", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", "-advertise", ",localhost",
		"-tls-cert", tb.certFile, "-tls-key", tb.keyFile,
	}, extra...)
	tb.broker = startBroker(t, args...)
	bound, adv := readyListeners(t, tb.broker)
	if len(bound) != 2 || len(adv) != 2 {
		t.Fatalf("ready line listeners %v advertised %v", bound, adv)
	}
	tb.plain = strings.TrimPrefix(bound[0], "PLAINTEXT://")
	tb.ssl = strings.TrimPrefix(bound[1], "SSL://")
	tb.plainAdv = strings.TrimPrefix(adv[0], "PLAINTEXT://")
	tb.sslAdv = strings.TrimPrefix(adv[1], "SSL://")
	if _, port, _ := net.SplitHostPort(tb.ssl); tb.sslAdv != "localhost:"+port || tb.plainAdv != tb.plain {
		t.Fatalf("advertised %v for bound %v", adv, bound)
	}
	return tb
}

func logText(b *broker) string {
	b.log.mu.Lock()
	defer b.log.mu.Unlock()
	return b.log.buf.String()
}

// readyListeners reads the bound and advertised listeners from the ready line.
func readyListeners(t *testing.T, b *broker) (bound, adv []string) {
	t.Helper()
	lines := strings.Split(logText(b), "\n")
	for _, l := range lines {
		var m struct {
			Message   string   `json:"message"`
			Listeners []string `json:"listeners"`
			Adv       []string `json:"advertised_listeners"`
		}
		if json.Unmarshal([]byte(l), &m) == nil && m.Message == "ready" {
			bound, adv = m.Listeners, m.Adv
		}
	}
	return bound, adv
}

func (tb *tlsBroker) clientTLS() *tls.Config { return &tls.Config{RootCAs: tb.ca.Pool()} }

// metadataBroker asks for Metadata through addr and returns the broker address it answers.
func metadataBroker(t *testing.T, cl *kgo.Client) string {
	t.Helper()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(testContext(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Brokers) != 1 {
		t.Fatalf("brokers %+v", resp.Brokers)
	}
	return net.JoinHostPort(resp.Brokers[0].Host, strconv.Itoa(int(resp.Brokers[0].Port)))
}

// TestTLSFranz produces and consumes over SSL with franz-go: values large
// enough that fetches span many TLS records (file ranges read and encrypted,
// not sendfile), and a fetch that long-polls until a later produce. Each
// listener's Metadata answers its own advertised address.
func TestTLSFranz(t *testing.T) {
	tb := startTLSBroker(t)
	sslCl := newFranz(t, tb.ssl, kgo.DialTLSConfig(tb.clientTLS()), kgo.FetchMaxWait(20*time.Second))
	plainCl := newFranz(t, tb.plain)
	if got := metadataBroker(t, sslCl); got != tb.sslAdv {
		t.Fatalf("SSL listener's Metadata gave %s, want %s", got, tb.sslAdv)
	}
	if got := metadataBroker(t, plainCl); got != tb.plainAdv {
		t.Fatalf("PLAINTEXT listener's Metadata gave %s, want %s", got, tb.plainAdv)
	}

	// DescribeConfigs lists every listener, bound and advertised.
	bcs, err := kadm.NewClient(sslCl).DescribeBrokerConfigs(testContext(t, 30*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcs.On("1", nil)
	if err != nil || bc.Err != nil {
		t.Fatalf("describe broker 1: %v %v", err, bc.Err)
	}
	got := map[string]string{}
	for _, c := range bc.Configs {
		got[c.Key] = c.MaybeValue()
	}
	if want := "PLAINTEXT://" + tb.plain + ",SSL://" + tb.ssl; got["listeners"] != want {
		t.Errorf("listeners %q, want %q", got["listeners"], want)
	}
	if want := "PLAINTEXT://" + tb.plainAdv + ",SSL://" + tb.sslAdv; got["advertised.listeners"] != want {
		t.Errorf("advertised.listeners %q, want %q", got["advertised.listeners"], want)
	}

	const topic, n = "tls-franz", 3000
	createTopic(t, kadm.NewClient(sslCl), topic, 2)
	ctx := testContext(t, 2*time.Minute)
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000+i%3000) }
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 2), Key: []byte(strconv.Itoa(i)), Value: val(i)})
	}
	if err := sslCl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cons := newFranz(t, tb.ssl, kgo.DialTLSConfig(tb.clientTLS()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(20*time.Second))
	seen := 0
	for seen < n {
		fs := cons.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			i, _ := strconv.Atoi(string(r.Key))
			if !bytes.Equal(r.Value, val(i)) {
				t.Fatalf("record %d: %d bytes differ", i, len(r.Value))
			}
			seen++
		})
	}
	// Both partitions are read to their end; the next fetch parks on the
	// broker (MaxWait 20s) until this produce arrives.
	// The consumer sent that fetch as soon as it had the last records, so
	// it is usually parked already when this produce lands.
	go func() {
		_ = plainCl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 1, Key: []byte("late"), Value: []byte("late value")})
	}()
	fs := cons.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "late value" {
		t.Fatalf("long poll got %v", recs)
	}
	tb.checkLog()
}

// TestTLSConfluent: librdkafka with security.protocol=ssl and the test CA.
func TestTLSConfluent(t *testing.T) {
	tb := startTLSBroker(t)
	const topic, n = "tls-confluent", 2000
	ssl := ckafka.ConfigMap{"security.protocol": "ssl", "ssl.ca.location": tb.caFile}
	// Bootstrap by name: librdkafka checks the name against the
	// certificate's DNS names (the certificate has localhost).
	_, port, _ := net.SplitHostPort(tb.ssl)
	boot := "localhost:" + port
	p := ckProducer(t, boot, ssl)
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 2000) }
	tp := topic
	reports := make(chan ckafka.Event, n)
	for i := range n {
		err := p.Produce(&ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &tp, Partition: 0}, Key: []byte(strconv.Itoa(i)), Value: val(i)}, reports)
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case e := <-reports:
			if m, ok := e.(*ckafka.Message); !ok || m.TopicPartition.Error != nil {
				t.Fatalf("delivery report %d: %v", i, e)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%d of %d delivery reports", i, n)
		}
	}
	cfg := ckafka.ConfigMap{"bootstrap.servers": boot, "group.id": "tls", "enable.auto.commit": false}
	for k, v := range ssl {
		cfg[k] = v
	}
	c, err := ckafka.NewConsumer(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Assign([]ckafka.TopicPartition{{Topic: &tp, Partition: 0, Offset: ckafka.OffsetBeginning}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for next := 0; next < n; {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of %d", next, n)
		}
		switch e := c.Poll(100).(type) {
		case *ckafka.Message:
			if int(e.TopicPartition.Offset) != next || !bytes.Equal(e.Value, val(next)) {
				t.Fatalf("offset %d: want %d and its value", e.TopicPartition.Offset, next)
			}
			next++
		case ckafka.Error:
			if e.IsFatal() {
				t.Fatal(e)
			}
			t.Logf("consumer event: %v", e)
		}
	}
	tb.checkLog()
}

// TestTLSSarama: sarama with Net.TLS.
func TestTLSSarama(t *testing.T) {
	tb := startTLSBroker(t)
	cfg := saramaConfig()
	cfg.Net.TLS.Enable = true
	cfg.Net.TLS.Config = tb.clientTLS()
	client, err := sarama.NewClient([]string{tb.ssl}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	const topic, n = "tls-sarama", 1000
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	prod, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	val := func(i int) []byte { return bytes.Repeat([]byte(strconv.Itoa(i)), 500) }
	var msgs []*sarama.ProducerMessage
	for i := range n {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.ByteEncoder(val(i))})
	}
	if err := prod.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := range n {
		select {
		case m := <-pc.Messages():
			if m.Offset != int64(i) || !bytes.Equal(m.Value, val(i)) {
				t.Fatalf("offset %d: want %d and its value", m.Offset, i)
			}
		case err := <-pc.Errors():
			t.Fatal(err)
		case <-time.After(time.Minute):
			t.Fatalf("consumed %d of %d", i, n)
		}
	}
	tb.checkLog()
}

// TestTLSWrongProtocol: a plaintext Kafka client on the SSL listener and a
// TLS client on the PLAINTEXT one are closed without a Kafka answer, and a
// client that connects to the SSL listener and says nothing is closed at
// the handshake deadline. Every case is logged with the client's address.
func TestTLSWrongProtocol(t *testing.T) {
	tb := startTLSBroker(t, "-tls-handshake-timeout", "500ms")

	// An ApiVersions request in clear to the SSL port: closed, nothing back
	// (not even a TLS alert: the first bytes are no TLS record).
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
	frame := binary.BigEndian.AppendUint32(nil, 0)
	frame = binary.BigEndian.AppendUint16(frame, uint16(req.Key()))
	frame = binary.BigEndian.AppendUint16(frame, 0)
	frame = binary.BigEndian.AppendUint32(frame, 1)                // correlation id
	frame = binary.BigEndian.AppendUint16(frame, uint16(len("x"))) // client id
	frame = append(frame, 'x')
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	if got := rawUntilClose(t, tb.ssl, frame); len(got) != 0 {
		t.Fatalf("plaintext request on the SSL port got %q", got)
	}
	// The same request on the PLAINTEXT port is answered (the frame is good).
	if got := rawAnswer(t, tb.plain, frame); len(got) < 8 {
		t.Fatalf("plaintext request on the PLAINTEXT port got %q", got)
	}

	// A TLS client on the PLAINTEXT port: the handshake fails, no bytes back.
	conn, err := net.Dial("tcp", tb.plain)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tls.Client(conn, &tls.Config{RootCAs: tb.ca.Pool(), ServerName: "127.0.0.1"}).Handshake(); err == nil {
		t.Fatal("TLS handshake with the PLAINTEXT listener succeeded")
	}
	conn.Close()

	// Real clients fail too.
	ctx := testContext(t, 5*time.Second)
	cl := newFranz(t, tb.ssl, kgo.RequestRetries(0))
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl); err == nil {
		t.Fatal("plaintext franz-go client got Metadata from the SSL listener")
	}
	cl = newFranz(t, tb.plain, kgo.DialTLSConfig(tb.clientTLS()), kgo.RequestRetries(0))
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl); err == nil {
		t.Fatal("TLS franz-go client got Metadata from the PLAINTEXT listener")
	}

	// Silent: closed at the handshake deadline.
	if got := rawUntilClose(t, tb.ssl, nil); len(got) != 0 {
		t.Fatalf("silent client got %q", got)
	}
	for _, msg := range []string{"TLS handshake failed", "TLS client on a plaintext listener", "TLS handshake timed out"} {
		waitFor(t, 10*time.Second, "log line "+msg, func() bool { return tb.log.contains(msg) })
	}
	if !tb.log.contains(`"remote":"127.0.0.1:`) {
		t.Fatal("TLS failures logged without the client address")
	}
	tb.checkLog()
}

// rawUntilClose sends b (if any) on a new TCP connection and returns what
// comes back until the broker closes it; it fails when the broker keeps
// the connection open.
func rawUntilClose(t *testing.T, addr string, b []byte) []byte {
	t.Helper()
	conn := rawDial(t, addr, b)
	got, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read from %s: %v (want the broker to close)", addr, err)
	}
	return got
}

// rawAnswer sends b on a new TCP connection and reads one answer frame.
func rawAnswer(t *testing.T, addr string, b []byte) []byte {
	t.Helper()
	conn := rawDial(t, addr, b)
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatalf("short answer: %v", err)
	}
	return body
}

func rawDial(t *testing.T, addr string, b []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if b != nil {
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// TestTLSClientCerts: with -tls-client-ca, a client with a certificate from
// that CA is served; one without a certificate, with one from another CA
// or with an expired one is refused.
func TestTLSClientCerts(t *testing.T) {
	dir := t.TempDir()
	clientCA := testcerts.NewCA(t, "client CA")
	tb := startTLSBroker(t, "-tls-client-ca", clientCA.Write(t, dir, "client-ca"))
	withCert := func(p *testcerts.Pair) *tls.Config {
		c := tb.clientTLS()
		if p != nil {
			c.Certificates = []tls.Certificate{p.TLS}
		}
		return c
	}
	cl := newFranz(t, tb.ssl, kgo.DialTLSConfig(withCert(clientCA.Client(t, "alice"))))
	if got := metadataBroker(t, cl); got != tb.sslAdv {
		t.Fatalf("Metadata gave %s, want %s", got, tb.sslAdv)
	}
	for name, p := range map[string]*testcerts.Pair{
		"no certificate": nil,
		"other CA":       testcerts.NewCA(t, "other CA").Client(t, "mallory"),
		"expired":        clientCA.ClientExpired(t, "bob"),
	} {
		t.Run(name, func(t *testing.T) {
			cl := newFranz(t, tb.ssl, kgo.DialTLSConfig(withCert(p)), kgo.RequestRetries(0))
			if _, err := kmsg.NewPtrMetadataRequest().RequestWith(testContext(t, 10*time.Second), cl); err == nil {
				t.Fatal("served without a valid client certificate")
			}
		})
	}
	waitFor(t, 10*time.Second, "refusals logged", func() bool {
		return strings.Count(logText(tb.broker), "TLS handshake failed") >= 3
	})
	tb.checkLog()
}

// TestTLSCertReload: the broker serves a new certificate, once its files
// are replaced, to new connections, without a restart.
func TestTLSCertReload(t *testing.T) {
	tb := startTLSBroker(t)
	served := func() string {
		conn, err := tls.Dial("tcp", tb.ssl, tb.clientTLS())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "klite" {
		t.Fatalf("served %q", cn)
	}
	rotated := tb.ca.Server(t, "klite-rotated")
	for _, f := range []struct {
		name string
		b    []byte
	}{{tb.certFile, rotated.CertPEM}, {tb.keyFile, rotated.KeyPEM}} {
		if err := os.WriteFile(f.name+".new", f.b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.name+".new", f.name); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the rotated certificate", func() bool { return served() == "klite-rotated" })
	tb.checkLog()
}
