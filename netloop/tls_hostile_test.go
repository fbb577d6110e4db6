package netloop

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klite/klite/internal/testcerts"
)

// tls13Writer encrypts TLS 1.3 records the way a client holding its
// application traffic secret would, so a test can send what crypto/tls
// clients never do (KeyUpdate requests, one at a time).
type tls13Writer struct {
	t       testing.TB
	newHash func() hash.Hash
	keyLen  int
	secret  []byte
	aead    cipher.AEAD
	iv      []byte
	seq     uint64
}

func expandLabel(t testing.TB, h func() hash.Hash, secret []byte, label string, n int) []byte {
	full := "tls13 " + label
	info := []byte{byte(n >> 8), byte(n), byte(len(full))}
	info = append(info, full...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(h, secret, string(info), n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (w *tls13Writer) setSecret(secret []byte) {
	w.secret = secret
	key := expandLabel(w.t, w.newHash, secret, "key", w.keyLen)
	w.iv = expandLabel(w.t, w.newHash, secret, "iv", 12)
	b, err := aes.NewCipher(key)
	if err != nil {
		w.t.Fatal(err)
	}
	if w.aead, err = cipher.NewGCM(b); err != nil {
		w.t.Fatal(err)
	}
	w.seq = 0
}

// record appends one protected record carrying content of type typ.
func (w *tls13Writer) record(dst []byte, typ byte, content []byte) []byte {
	inner := append(append([]byte{}, content...), typ)
	n := len(inner) + w.aead.Overhead()
	hdr := []byte{23, 3, 3, byte(n >> 8), byte(n)}
	nonce := append([]byte{}, w.iv...)
	for i := 0; i < 8; i++ {
		nonce[4+i] ^= byte(w.seq >> (56 - 8*i))
	}
	w.seq++
	dst = append(dst, hdr...)
	return w.aead.Seal(dst, nonce, inner, hdr)
}

// keyUpdate appends a KeyUpdate asking the peer to update too, then moves
// to the next traffic secret (RFC 8446 4.6.3, 7.2).
func (w *tls13Writer) keyUpdate(dst []byte) []byte {
	dst = w.record(dst, 22, []byte{24, 0, 0, 1, 1})
	w.setSecret(expandLabel(w.t, w.newHash, w.secret, "traffic upd", len(w.secret)))
	return dst
}

// keyLog keeps the client's application traffic secret.
type keyLog struct{ secret []byte }

func (k *keyLog) Write(b []byte) (int, error) {
	f := strings.Fields(string(b))
	if len(f) == 3 && f[0] == "CLIENT_TRAFFIC_SECRET_0" {
		k.secret, _ = hex.DecodeString(f[2])
	}
	return len(b), nil
}

// dialKeyUpdater completes a TLS 1.3 handshake on a socket with a small
// receive buffer and returns the socket, the tls.Conn (for reading) and a
// writer for the client's records.
func dialKeyUpdater(t *testing.T, s *Server, ca *testcerts.CA) (net.Conn, *tls.Conn, *tls13Writer) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	raw, err := d.Dial("tcp", s.Addrs()[1].String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	kl := &keyLog{}
	tc := tls.Client(raw, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", KeyLogWriter: kl})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	w := &tls13Writer{t: t}
	switch cs := tc.ConnectionState().CipherSuite; cs {
	case tls.TLS_AES_128_GCM_SHA256:
		w.newHash, w.keyLen = sha256.New, 16
	case tls.TLS_AES_256_GCM_SHA384:
		w.newHash, w.keyLen = sha512.New384, 32
	default:
		t.Fatalf("cipher suite %s: the test speaks AES-GCM only", tls.CipherSuiteName(cs))
	}
	if kl.secret == nil {
		t.Fatal("no client traffic secret logged")
	}
	w.setSecret(kl.secret)

	return raw, tc, w
}

// TestTLSKeyUpdateFlood: a TLS 1.3 client that asks for a KeyUpdate again
// and again (keeping crypto/tls's limit of non-advancing records at bay with
// one byte of a frame now and then) and never reads makes the server write
// a KeyUpdate of its own for each. That ciphertext is no response, so the
// outbound cap must still hold it: the server stops decrypting while it is
// past MaxOutboundBytes, and the client that keeps sending is closed at the
// inbound cap, as a plaintext one that never reads.
func TestTLSKeyUpdateFlood(t *testing.T) {
	cfg, ca := tlsListeners(t, &tls.Config{MinVersion: tls.VersionTLS13})
	cfg.MaxFrameBytes = 64 << 20
	cfg.MaxOutboundBytes = 64 << 10
	cfg.MaxInboundBufferedBytes = 1 << 20
	s := startServer(t, cfg, echo)

	raw, _, w := dialKeyUpdater(t, s, ca)

	// One frame that never ends: its size, then a byte per 15 KeyUpdates.
	var size [4]byte
	binary.BigEndian.PutUint32(size[:], uint32(cfg.MaxFrameBytes))
	if _, err := raw.Write(w.record(nil, 23, size[:])); err != nil {
		t.Fatal(err)
	}
	var buf []byte
	sent := 0
	for sent < 16<<20 {
		buf = buf[:0]
		for range 64 {
			for range 15 {
				buf = w.keyUpdate(buf)
			}
			buf = w.record(buf, 23, []byte{0})
		}
		if _, err := raw.Write(buf); err != nil {
			break // closed, as it should be
		}
		sent += len(buf)
	}
	waitFor(t, "inbound overflow close", func() bool { return s.Stats().Closes[CloseInboundOverflow] == 1 })
	if sent >= 16<<20 {
		t.Fatalf("sent %d bytes of KeyUpdates unread and the server still reads them", sent)
	}
}

// TestTLSFailedHandshakesLeaveNothing: handshakes that fail every way a
// hostile client makes them fail (hang up mid-ClientHello, send garbage,
// stay silent past the deadline, hang up while queued for a slot, finish
// and hang up at once), more of them than MaxHandshakes, leave no
// goroutine, no connection and no slot behind: a good client still
// gets its handshake and its answer.
func TestTLSFailedHandshakesLeaveNothing(t *testing.T) {
	cfg, ca := tlsListeners(t, nil)
	cfg.MaxHandshakes = 4
	cfg.HandshakeTimeout = 300 * time.Millisecond
	s := startServer(t, cfg, echo)
	addr := s.Addrs()[1].String()
	hello := clientHello(t)

	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			switch i % 5 {
			case 0: // half a ClientHello, then gone
				_, _ = c.Write(hello[:len(hello)/2])
			case 1: // garbage
				_, _ = c.Write(bytes.Repeat([]byte{0x16, 0x03, 0x01, 0xff, 0xff}, 100))
				_, _ = io.Copy(io.Discard, c)
			case 2: // silent until the deadline closes it
				_, _ = io.Copy(io.Discard, c)
			case 3: // gone at once, likely while queued
			case 4: // a whole handshake, then gone
				tc := tls.Client(c, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
				_ = tc.Handshake()
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every conn closed", func() bool { return s.Stats().ConnsOpen == 0 })
	waitFor(t, "no handshake running", func() bool { return s.Stats().TLSHandshaking == 0 })
	var stacks []byte
	waitFor(t, "no goroutine of a connection", func() bool {
		stacks = make([]byte, 1<<20)
		stacks = stacks[:runtime.Stack(stacks, true)]
		return !bytes.Contains(stacks, []byte("netloop.(*conn)"))
	})

	c := dialTLS(t, s, ca, nil)
	c.send([]byte("still here"))
	if got := c.read(); string(got) != "still here" {
		t.Fatalf("echo %q", got)
	}
}

// TestTLSLargeClientFlight: a client flight larger than what the loop
// feeds a handshake at a time (here an mTLS chain padded past 64 KiB, as a
// long intermediate chain would be) arrives at once, and the handshake
// still finishes: the pipe asks the loop for the rest of gnet's buffer
// whenever it runs dry, rather than waiting for traffic that will not come
// (the client waits for the server) until the handshake deadline.
func TestTLSLargeClientFlight(t *testing.T) {
	ca := testcerts.NewCA(t, "client CA")
	cfg, serverCA := tlsListeners(t, &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()})
	cfg.HandshakeTimeout = time.Minute
	s := startServer(t, cfg, echo)

	cert := ca.Client(t, "alice").TLS
	caDER := ca.Cert.Raw
	for n := 0; n < 3*maxHandshakeInBytes; n += len(caDER) {
		cert.Certificate = append(cert.Certificate, caDER)
	}
	for i := range 5 {
		done := make(chan error, 1)
		go func() {
			c := dialTLS(t, s, serverCA, &tls.Config{Certificates: []tls.Certificate{cert}})
			c.send([]byte("hi"))
			_, err := c.tryRead()
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("conn %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("conn %d: handshake stalled with %d bytes of client flight", i, 3*maxHandshakeInBytes)
		}
	}
}

// TestTLSKeyUpdateBacklogThenRead: a client asks for KeyUpdates, more
// than the socket buffers and the cap hold, inside one echo request, and
// reads nothing until all of it is sent. Reading stops at the cap with the
// end of the request still in gnet's buffer; once the client reads and
// the ciphertext drains, that rest is read and answered without any more
// traffic from the client.
func TestTLSKeyUpdateBacklogThenRead(t *testing.T) {
	cfg, ca := tlsListeners(t, &tls.Config{MinVersion: tls.VersionTLS13})
	cfg.MaxOutboundBytes = 1 // the floor: a response chunk's ciphertext
	s := startServer(t, cfg, echo)
	raw, _, w := dialKeyUpdater(t, s, ca)

	const groups = 12 << 10 // 15 KeyUpdates and a byte of payload each: ~5 MB
	var size [4]byte
	binary.BigEndian.PutUint32(size[:], groups)
	buf := w.record(nil, 23, size[:])
	for i := range groups {
		for range 15 {
			buf = w.keyUpdate(buf)
		}
		buf = w.record(buf, 23, []byte{byte(i)})
	}
	if _, err := raw.Write(buf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reading held at the cap", func() bool { return s.Stats().HeldConns == 1 })
	// The client reads now (and sees only raw bytes: crypto/tls would
	// refuse a run of more than 16 KeyUpdates from the server too).
	go func() { _, _ = io.Copy(io.Discard, raw) }()
	waitFor(t, "the request read and answered", func() bool {
		st := s.Stats()
		return st.Frames == 1 && st.BytesOut == 4+groups
	})
}

// TestTLSGarbageAfterHandshake: after a good TLS 1.3 handshake, records
// crypto/tls must refuse (a length past the largest record, a forged tag,
// a plaintext ClientHello as a renegotiation attempt would start, a
// handshake message a server never takes) close that connection as a bad
// TLS record, with no frame handed to the handler and no panic.
func TestTLSGarbageAfterHandshake(t *testing.T) {
	cfg, ca := tlsListeners(t, &tls.Config{MinVersion: tls.VersionTLS13})
	h := &connInfos{next: echo}
	s := startServer(t, cfg, h)
	cases := map[string]func(w *tls13Writer) []byte{
		"oversized record": func(*tls13Writer) []byte { return append([]byte{23, 3, 3, 0xff, 0xff}, make([]byte, 1024)...) },
		"forged tag": func(w *tls13Writer) []byte {
			b := w.record(nil, 23, frameBytes([]byte("hi")))
			b[len(b)-1] ^= 1
			return b
		},
		"plaintext ClientHello": func(*tls13Writer) []byte { return []byte{22, 3, 1, 0, 4, 1, 0, 0, 0} },
		"ClientHello inside":    func(w *tls13Writer) []byte { return w.record(nil, 22, clientHello(t)[5:]) },
		"unknown record type":   func(w *tls13Writer) []byte { return w.record(nil, 99, []byte{1}) },
	}
	want := int64(0)
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			raw, _, w := dialKeyUpdater(t, s, ca)
			if _, err := raw.Write(bad(w)); err != nil {
				t.Fatal(err)
			}
			_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, raw); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("want the server to close, got %v", err)
			}
			want++
			waitFor(t, "a TLS close", func() bool { return s.Stats().Closes[CloseTLS] == want })
		})
	}
	if n := h.count(); n != 0 {
		t.Fatalf("handler saw %d requests", n)
	}
}

// clientHello is the first flight of a crypto/tls client: one record
// holding a ClientHello.
func clientHello(t *testing.T) []byte {
	cc, sc := net.Pipe()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 16<<10)
		n, _ := sc.Read(b)
		got <- b[:n]
		sc.Close()
	}()
	_ = tls.Client(cc, &tls.Config{ServerName: "x"}).Handshake()
	cc.Close()
	hello := <-got
	if len(hello) < 9 || hello[0] != 22 || hello[5] != 1 {
		t.Fatalf("ClientHello of %d bytes: % x", len(hello), hello[:min(len(hello), 9)])
	}
	return hello
}
