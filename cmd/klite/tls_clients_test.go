package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/klite/klite/internal/testcerts"
)

// sslMode is one way a client reaches the SSL listener: server
// authentication only, or mutual TLS with a client certificate.
type sslMode struct {
	name string
	mtls bool
}

var sslModes = []sslMode{{"ssl", false}, {"mtls", true}}

// sslClientBroker is a TLS broker and, for mTLS, a client certificate (as a
// tls.Certificate and as files) from the CA the broker trusts for clients.
type sslClientBroker struct {
	*tlsBroker
	client                *testcerts.Pair
	clientCert, clientKey string
}

// startSSLClientBroker starts a TLS broker; with m.mtls it requires client
// certificates from a second CA (-tls-client-ca) and issues one for "alice".
func startSSLClientBroker(t *testing.T, m sslMode) *sslClientBroker {
	t.Helper()
	if !m.mtls {
		return &sslClientBroker{tlsBroker: startTLSBroker(t)}
	}
	dir := t.TempDir()
	clientCA := testcerts.NewCA(t, "client CA")
	sb := &sslClientBroker{client: clientCA.Client(t, "alice")}
	sb.clientCert, sb.clientKey = sb.client.Write(t, dir, "alice")
	sb.tlsBroker = startTLSBroker(t, "-tls-client-ca", clientCA.Write(t, dir, "client-ca"))
	return sb
}

// tlsConfig is the Go client's TLS config: the server CA, and the client
// certificate under mTLS.
func (sb *sslClientBroker) tlsConfig() *tls.Config {
	c := sb.clientTLS()
	if sb.client != nil {
		c.Certificates = []tls.Certificate{sb.client.TLS}
	}
	return c
}

// sslValue is record i's value: sizes up to ~40 KB, so a fetch answer spans
// many TLS records and single values span more than one.
func sslValue(i int) []byte {
	prefix := "ssl-" + strconv.Itoa(i) + "-"
	return append([]byte(prefix), bytes.Repeat([]byte{'a' + byte(i%26)}, (i*997)%40000)...)
}

// TestTLSKafkaGo: segmentio/kafka-go produces through a Transport and
// consumes through a Reader's Dialer, both over the SSL listener, every
// record read back in order on both partitions; under mTLS a dialer
// without the client certificate is refused.
func TestTLSKafkaGo(t *testing.T) {
	for _, m := range sslModes {
		t.Run(m.name, func(t *testing.T) {
			sb := startSSLClientBroker(t, m)
			tr := &kafka.Transport{TLS: sb.tlsConfig(), DialTimeout: 10 * time.Second}
			defer tr.CloseIdleConnections()
			client := &kafka.Client{Addr: kafka.TCP(sb.ssl), Timeout: 30 * time.Second, Transport: tr}
			ctx := testContext(t, 2*time.Minute)
			topic := "tls-kafkago-" + m.name
			resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
				Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 2, ReplicationFactor: 1}},
			})
			if err != nil || resp.Errors[topic] != nil {
				t.Fatalf("create %s: %v %v", topic, err, resp)
			}

			const n = 400
			w := &kafka.Writer{Addr: kafka.TCP(sb.ssl), Topic: topic, Transport: tr, Balancer: &kafka.RoundRobin{},
				RequiredAcks: kafka.RequireAll, BatchSize: 100, BatchBytes: 512 << 10, BatchTimeout: time.Millisecond}
			defer w.Close()
			var msgs []kafka.Message
			for i := range n {
				msgs = append(msgs, kafka.Message{Key: []byte(strconv.Itoa(i)), Value: sslValue(i)})
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				t.Fatalf("write: %.500v", err)
			}

			dialer := &kafka.Dialer{Timeout: 10 * time.Second, TLS: sb.tlsConfig()}
			seen := make([]bool, n)
			for p := range 2 {
				r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{sb.ssl}, Topic: topic, Partition: p,
					Dialer: dialer, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
				defer r.Close()
				// RoundRobin puts half the records on each partition.
				for off := int64(0); off < n/2; off++ {
					msg, err := r.ReadMessage(ctx)
					if err != nil {
						t.Fatalf("read partition %d at %d: %v", p, off, err)
					}
					i, err := strconv.Atoi(string(msg.Key))
					if err != nil || i < 0 || i >= n || msg.Offset != off || !bytes.Equal(msg.Value, sslValue(i)) {
						t.Fatalf("partition %d offset %d (want %d): key %q, %d-byte value", p, msg.Offset, off, msg.Key, len(msg.Value))
					}
					if seen[i] {
						t.Fatalf("record %d read twice", i)
					}
					seen[i] = true
				}
			}
			for i, ok := range seen {
				if !ok {
					t.Fatalf("record %d not read", i)
				}
			}

			if m.mtls {
				// Without the client certificate the broker refuses the
				// connection: the handshake or the first request fails.
				noCert := &kafka.Dialer{Timeout: 10 * time.Second, TLS: sb.clientTLS()}
				conn, err := noCert.DialContext(ctx, "tcp", sb.ssl)
				if err == nil {
					_, err = conn.ApiVersions()
					conn.Close()
				}
				if err == nil {
					t.Fatal("kafka-go without a client certificate was served")
				}
			}
			sb.checkLog()
		})
	}
}

// TestTLSKcat: kcat (librdkafka from Debian) with security.protocol=ssl
// produces lines with -P and reads them back with -C -e; under mTLS it
// presents ssl.certificate.location and ssl.key.location, and without them
// it gets no metadata.
func TestTLSKcat(t *testing.T) {
	kcat := debianTool(t, "kcat")
	for _, m := range sslModes {
		t.Run(m.name, func(t *testing.T) {
			sb := startSSLClientBroker(t, m)
			// By name: librdkafka checks it against the certificate.
			_, port, _ := net.SplitHostPort(sb.ssl)
			serverOnly := []string{"-b", "localhost:" + port, "-X", "security.protocol=ssl", "-X", "ssl.ca.location=" + sb.caFile}
			args := append([]string{}, serverOnly...)
			if m.mtls {
				args = append(args, "-X", "ssl.certificate.location="+sb.clientCert, "-X", "ssl.key.location="+sb.clientKey)
			}
			topic := "tls-kcat-" + m.name
			args = append(args, "-t", topic, "-p", "0")
			const n = 300
			var in bytes.Buffer
			for i := range n {
				in.Write(sslValue(i))
				in.WriteByte('\n')
			}
			ctx := testContext(t, time.Minute)
			prod := exec.CommandContext(ctx, kcat, append(args, "-P", "-X", "topic.request.required.acks=-1")...)
			prod.Stdin = &in
			if out, err := prod.CombinedOutput(); err != nil {
				t.Fatalf("kcat -P: %v\n%s", err, out)
			}
			cons := exec.CommandContext(ctx, kcat, append(args, "-C", "-o", "beginning", "-e", "-q")...)
			var stderr bytes.Buffer
			cons.Stderr = &stderr
			out, err := cons.Output()
			if err != nil {
				t.Fatalf("kcat -C: %v\n%s", err, stderr.Bytes())
			}
			got := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
			if len(got) != n {
				t.Fatalf("kcat -C read %d records, want %d", len(got), n)
			}
			for i, v := range got {
				if !bytes.Equal(v, sslValue(i)) {
					t.Fatalf("record %d: %d bytes, want %d", i, len(v), len(sslValue(i)))
				}
			}

			if m.mtls {
				kcatRefused(t, kcat, serverOnly)
			}
			sb.checkLog()
		})
	}
}

// kcatRefused runs kcat -L with args (no client certificate) and fails the
// test if kcat gets metadata.
func kcatRefused(t *testing.T, kcat string, args []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, append(args, "-L", "-m", "1")...).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("kcat -L without a client certificate: %v (context %v)\n%s", err, ctx.Err(), out)
	}
	if s := string(out); !strings.Contains(s, "Failed to acquire metadata") && !strings.Contains(s, "SSL") {
		t.Fatalf("kcat -L failed for another reason: %v\n%s", err, s)
	}
}
