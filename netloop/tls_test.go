package netloop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klite/klite/internal/testcerts"
)

// tlsListeners is a plaintext listener and a TLS one, both on 127.0.0.1:0.
func tlsListeners(t testing.TB, cfg *tls.Config) (Config, *testcerts.CA) {
	ca := testcerts.NewCA(t, "netloop test CA")
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.Certificates = []tls.Certificate{ca.Server(t, "netloop").TLS}
	return Config{Listeners: []ListenerConfig{{Addr: "127.0.0.1:0"}, {Addr: "127.0.0.1:0", TLS: cfg}}}, ca
}

func dialTLS(t testing.TB, s *Server, ca *testcerts.CA, cfg *tls.Config) *client {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.RootCAs = ca.Pool()
	c, err := tls.Dial("tcp", s.Addrs()[1].String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// connInfos records the ConnInfo of each request.
type connInfos struct {
	mu    sync.Mutex
	infos []ConnInfo
	next  Handler
}

func (h *connInfos) Serve(r *Request) {
	h.mu.Lock()
	h.infos = append(h.infos, r.Conn)
	h.mu.Unlock()
	h.next.Serve(r)
}

func (h *connInfos) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.infos)
}

// TestTLSListeners serves a plaintext and a TLS listener from the same
// loops: both echo, frames larger than a TLS record and many pipelined
// small ones, and requests say which listener they came from and carry the
// TLS state on the TLS one.
func TestTLSListeners(t *testing.T) {
	cfg, ca := tlsListeners(t, nil)
	h := &connInfos{next: echo}
	s := startServer(t, cfg, h)
	if a := s.Addrs(); len(a) != 2 || a[0].String() == a[1].String() || s.Addr() != a[0] {
		t.Fatalf("addrs %v, addr %v", a, s.Addr())
	}
	for _, tls12 := range []bool{false, true} {
		ccfg := &tls.Config{}
		if tls12 {
			ccfg.MaxVersion = tls.VersionTLS12
		}
		tc := dialTLS(t, s, ca, ccfg)
		pc := dial(t, s)
		big := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // 1.6 MB: ~100 records
		for _, c := range []*client{tc, pc} {
			go func() {
				w := bufio.NewWriter(c.c)
				w.Write(frameBytes(big))
				for i := range 500 {
					w.Write(frameBytes([]byte(fmt.Sprint("msg ", i))))
				}
				w.Flush()
			}()
			if got := c.read(); !bytes.Equal(got, big) {
				t.Fatalf("big frame: got %d bytes, want %d", len(got), len(big))
			}
			for i := range 500 {
				if got, want := string(c.read()), fmt.Sprint("msg ", i); got != want {
					t.Fatalf("got %q want %q", got, want)
				}
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var plain, secure int
	for _, ci := range h.infos {
		switch {
		case ci.Listener == 0 && ci.TLS == nil:
			plain++
		case ci.Listener == 1 && ci.TLS != nil && ci.TLS.HandshakeComplete:
			secure++
		default:
			t.Fatalf("conn info %+v", ci)
		}
	}
	if plain != 1002 || secure != 1002 {
		t.Fatalf("plain %d tls %d requests", plain, secure)
	}
	if st := s.Stats(); st.TLSHandshakes != 2 || st.TLSHandshakeFailures != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTLSFileParts: file ranges go through TLS (read and encrypted, not
// sendfile), bytes parts around them in order, and a response that asks
// to close is delivered before the close.
func TestTLSFileParts(t *testing.T) {
	f, data := tempFile(t, 3<<20)
	cfg, ca := tlsListeners(t, nil)
	h := &fileHandler{f: f}
	s := startServer(t, cfg, handlerFunc(func(r *Request) {
		if string(r.Frame) == "bye" {
			r.Respond(Response{Parts: []Part{BytesPart([]byte("bye"))}, Close: true})
			return
		}
		h.Serve(r)
	}))
	c := dialTLS(t, s, ca, nil)
	for _, rng := range [][2]int{{0, 1}, {5, 3<<20 - 5}, {1 << 20, 300_000}} {
		c.send([]byte(fmt.Sprint(rng[0], " ", rng[1])))
		got := c.read()
		want := append(append([]byte("head"), data[rng[0]:rng[0]+rng[1]]...), "tail"...)
		if !bytes.Equal(got, want) {
			t.Fatalf("range %v: got %d bytes, want %d", rng, len(got), len(want))
		}
	}
	c.send([]byte("bye"))
	if got := string(c.read()); got != "bye" {
		t.Fatalf("got %q", got)
	}
	c.expectClosed()
	st := s.Stats()
	if st.SendfileBytes != 0 || st.FileCopyBytes != 1+3<<20-5+300_000 {
		t.Fatalf("file bytes went by sendfile %d, copy %d", st.SendfileBytes, st.FileCopyBytes)
	}
}

// TestTLSWrongProtocol: a plaintext client on the TLS listener and a TLS
// client on the plaintext one are closed without a frame reaching the handler.
func TestTLSWrongProtocol(t *testing.T) {
	cfg, ca := tlsListeners(t, nil)
	h := &connInfos{next: echo}
	s := startServer(t, cfg, h)

	pc, err := net.Dial("tcp", s.Addrs()[1].String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := &client{t: t, c: pc, br: bufio.NewReader(pc)}
	c.send([]byte("a Kafka request"))
	c.expectClosed()

	_, err = tls.Dial("tcp", s.Addrs()[0].String(), &tls.Config{RootCAs: ca.Pool()})
	if err == nil {
		t.Fatal("TLS handshake with the plaintext listener succeeded")
	}
	waitFor(t, "closes", func() bool { return s.Stats().Closes[CloseTLS] == 2 })
	if n := h.count(); n != 0 {
		t.Fatalf("handler saw %d requests", n)
	}
	if st := s.Stats(); st.TLSHandshakeFailures != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTLSHandshakeTimeout: a client that sends its ClientHello and then
// nothing is closed at the handshake deadline, and a handshake waiting for
// a slot (MaxHandshakes 1) runs once the stalled one is gone; a client
// that says nothing at all is closed at the deadline too.
func TestTLSHandshakeTimeout(t *testing.T) {
	cfg, ca := tlsListeners(t, nil)
	cfg.HandshakeTimeout = 300 * time.Millisecond
	cfg.MaxHandshakes = 1
	s := startServer(t, cfg, echo)
	for i, hello := range [][]byte{clientHello(t), nil} {
		stalled, err := net.Dial("tcp", s.Addrs()[1].String())
		if err != nil {
			t.Fatal(err)
		}
		defer stalled.Close()
		if hello != nil {
			if _, err := stalled.Write(hello); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "stalled handshake running", func() bool { return s.Stats().TLSHandshaking == 1 })
		}
		c := &client{t: t, c: stalled, br: bufio.NewReader(stalled)}
		c.expectClosed()
		if st := s.Stats(); st.Closes[CloseHandshakeTimeout] != int64(i+1) || st.TLSHandshakeFailures != int64(i+1) {
			t.Fatalf("stats %+v", st)
		}
		waitFor(t, "slot free", func() bool { return s.Stats().TLSHandshaking == 0 })
	}
	tc := dialTLS(t, s, ca, nil)
	tc.send([]byte("hi"))
	if got := string(tc.read()); got != "hi" {
		t.Fatalf("got %q", got)
	}
}

// TestTLSSilentClientsHoldNoSlot: clients that connect to a TLS listener
// and send nothing, or a few bytes of a ClientHello, take no handshake
// slot: with MaxHandshakes 1 and a deadline far away, a real client is
// served at once. Before, each silent client held a slot until its
// deadline, and a crowd of them (cheap: no byte sent) kept every real
// client waiting in line until its own deadline closed it.
func TestTLSSilentClientsHoldNoSlot(t *testing.T) {
	cfg, ca := tlsListeners(t, nil)
	cfg.HandshakeTimeout = 10 * time.Minute
	cfg.MaxHandshakes = 1
	s := startServer(t, cfg, echo)
	hello := clientHello(t)
	for i := range 4 {
		c, err := net.Dial("tcp", s.Addrs()[1].String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		switch i {
		case 1:
			_, err = c.Write(hello[:1])
		case 2:
			_, err = c.Write(hello[:len(hello)/2])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "silent clients accepted", func() bool { return s.Stats().ConnsOpen == 4 })
	done := make(chan string, 1)
	go func() {
		conn, err := tls.Dial("tcp", s.Addrs()[1].String(), &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			done <- err.Error()
			return
		}
		defer conn.Close()
		c := &client{t: t, c: conn, br: bufio.NewReader(conn)}
		if _, err := conn.Write(frameBytes([]byte("hi"))); err != nil {
			done <- err.Error()
			return
		}
		b, err := c.tryRead()
		if err != nil {
			done <- err.Error()
			return
		}
		done <- string(b)
	}()
	var got string
	waitFor(t, "the real client served", func() bool {
		select {
		case got = <-done:
			return true
		default:
			return false
		}
	})
	if got != "hi" {
		t.Fatalf("real client: %q", got)
	}
}

// TestTLSClientCerts: with client certificates required, a client with a
// certificate from the CA is served and its certificate is in ConnInfo.TLS;
// one without a certificate, with one from another CA, or with an expired
// one never reaches the handler.
func TestTLSClientCerts(t *testing.T) {
	ca := testcerts.NewCA(t, "client CA")
	cfg, serverCA := tlsListeners(t, &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()})
	h := &connInfos{next: echo}
	s := startServer(t, cfg, h)

	good := ca.Client(t, "alice")
	c := dialTLS(t, s, serverCA, &tls.Config{Certificates: []tls.Certificate{good.TLS}})
	c.send([]byte("hi"))
	if got := string(c.read()); got != "hi" {
		t.Fatalf("got %q", got)
	}
	h.mu.Lock()
	ci := h.infos[0]
	h.mu.Unlock()
	if st := ci.TLS; st == nil || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "alice" || len(st.VerifiedChains) == 0 {
		t.Fatalf("conn TLS state %+v", ci.TLS)
	}

	other := testcerts.NewCA(t, "other CA").Client(t, "mallory")
	for name, certs := range map[string][]tls.Certificate{
		"no certificate": nil,
		"other CA":       {other.TLS},
		"expired":        {ca.ClientExpired(t, "bob").TLS},
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", s.Addrs()[1].String(), &tls.Config{RootCAs: serverCA.Pool(), Certificates: certs})
			if err != nil {
				return // refused in the handshake (TLS 1.2)
			}
			defer conn.Close()
			// TLS 1.3: the client finishes first; the refusal comes as an alert.
			c := &client{t: t, c: conn, br: bufio.NewReader(conn)}
			c.send([]byte("hi"))
			if _, err := c.tryRead(); err == nil {
				t.Fatal("answered without a valid client certificate")
			}
		})
	}
	waitFor(t, "failures", func() bool { return s.Stats().TLSHandshakeFailures == 3 })
	if n := h.count(); n != 1 {
		t.Fatalf("handler saw %d requests", n)
	}
}

// TestTLSHandshakeQueue: past MaxHandshakes a handshake waits for a slot
// and runs when one frees (here: the silent client holding it hangs up).
func TestTLSHandshakeQueue(t *testing.T) {
	cfg, ca := tlsListeners(t, nil)
	cfg.MaxHandshakes = 1
	s := startServer(t, cfg, echo)
	silent, err := net.Dial("tcp", s.Addrs()[1].String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := silent.Write(clientHello(t)); err != nil { // then nothing
		t.Fatal(err)
	}
	waitFor(t, "stalled handshake running", func() bool { return s.Stats().TLSHandshaking == 1 })
	done := make(chan error, 1)
	go func() {
		c, err := tls.Dial("tcp", s.Addrs()[1].String(), &tls.Config{RootCAs: ca.Pool()})
		if err == nil {
			defer c.Close()
			cl := &client{t: t, c: c, br: bufio.NewReader(c)}
			if _, err = c.Write(frameBytes([]byte("hi"))); err == nil {
				_, err = cl.tryRead()
			}
		}
		done <- err
	}()
	waitFor(t, "second conn accepted", func() bool { return s.Stats().ConnsOpen == 2 })
	if st := s.Stats(); st.TLSHandshaking != 1 || st.TLSHandshakes != 0 {
		t.Fatalf("stats with one slot: %+v", st)
	}
	silent.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("queued handshake never ran")
	}
	if st := s.Stats(); st.TLSHandshakes != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// FuzzTLSListenerInput sends arbitrary first bytes to a TLS listener, as a
// client that is not (or not quite) TLS would. Invariants: the server never
// panics, never hands a frame to the handler without a finished handshake,
// and closes the connection (at the latest at the handshake deadline)
// without writing a frame.
func FuzzTLSListenerInput(f *testing.F) {
	cfg, _ := tlsListeners(f, nil)
	cfg.HandshakeTimeout = 100 * time.Millisecond
	h := &connInfos{next: echo}
	cfg.Loops = 2
	s, err := New(cfg, h) // no test logger: the fuzz engine forbids f.Helper from its targets
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Stop(context.Background()) })
	f.Add(frameBytes([]byte("\x00\x12\x00\x00\x00\x00\x00\x01\x00\x01x")))    // a Kafka ApiVersions request
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00}) // a truncated ClientHello
	f.Add([]byte{0x16, 0x03, 0x01, 0xff, 0xff})                               // an oversized record
	f.Add([]byte{0x80, 0x2e, 0x01, 0x03, 0x01})                               // SSLv2
	f.Add([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28})                   // an alert first
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		conn, err := net.Dial("tcp", s.Addrs()[1].String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(in); err != nil {
			return // the server may close before all of it is written
		}
		got, err := io.ReadAll(conn)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("connection not closed: %v", err)
		}
		// Whatever came back is TLS (a ServerHello flight or an alert), never a frame.
		if len(got) > 0 && got[0] != 0x15 && got[0] != 0x16 {
			t.Fatalf("server wrote %x", got)
		}
		if n := h.count(); n != 0 {
			t.Fatalf("handler saw %d requests", n)
		}
	})
}

// TestTLSStalledReader: a TLS client that stops reading fills the socket;
// the connection parks with ciphertext pending and, once the client reads
// again, every byte arrives in order (file parts and byte parts).
func TestTLSStalledReader(t *testing.T) {
	f, data := tempFile(t, 8<<20)
	cfg, ca := tlsListeners(t, nil)
	s := startServer(t, cfg, &fileHandler{f: f})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
	}}
	raw, err := d.Dial("tcp", s.Addrs()[1].String())
	if err != nil {
		t.Fatal(err)
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	defer conn.Close()
	c := &client{t: t, c: conn, br: bufio.NewReader(conn)}
	c.send([]byte(fmt.Sprint(0, " ", len(data))))
	c.send([]byte("echo after"))
	waitFor(t, "a parked write", func() bool { return s.Stats().WriteParks > 0 })
	if got := c.read(); !bytes.Equal(got, append(append([]byte("head"), data...), "tail"...)) {
		t.Fatalf("got %d bytes, want %d", len(got), len(data)+8)
	}
	if got := string(c.read()); got != "echo after" {
		t.Fatalf("got %q", got)
	}
}

// choppyConn writes what it is given in pieces of 1 to 7 bytes and some
// larger ones, so TLS records (and their 5-byte headers) arrive cut
// anywhere, several in one read or one across many.
type choppyConn struct {
	net.Conn
	i int
}

func (c *choppyConn) Write(b []byte) (int, error) {
	sizes := []int{1, 2, 3, 4, 5, 6, 7, 600, 17000}
	n := 0
	for n < len(b) {
		k := min(len(b)-n, sizes[c.i%len(sizes)])
		c.i++
		if _, err := c.Conn.Write(b[n : n+k]); err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// TestTLSRecordsCutAnywhere: records cut at every kind of point, from the
// handshake on, and many small records, echo intact; a request sent right
// behind the client's Finished (fed to the handshake with it) is answered;
// afterwards the connection keeps no record buffer (tlsPipe hands crypto/tls
// whole records only, tls_bufs.go takes its buffers back).
func TestTLSRecordsCutAnywhere(t *testing.T) {
	cfg, ca := tlsListeners(t, nil)
	s := startServer(t, cfg, echo)
	raw, err := net.Dial("tcp", s.Addrs()[1].String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(&choppyConn{Conn: raw}, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	t.Cleanup(func() { tc.Close() })
	c := &client{t: t, c: tc, br: bufio.NewReader(tc)}
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000) // several full records
	c.send(big)                                           // handshakes first, then sends
	if got := c.read(); !bytes.Equal(got, big) {
		t.Fatalf("echo of %d bytes: got %d", len(big), len(got))
	}
	// One record per byte of a frame.
	frame := frameBytes([]byte("tiny records"))
	for i := range frame {
		if _, err := tc.Write(frame[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(c.read()); got != "tiny records" {
		t.Fatalf("echo %q", got)
	}
	c.send(big)
	if got := c.read(); !bytes.Equal(got, big) {
		t.Fatalf("echo of %d bytes: got %d", len(big), len(got))
	}
	if !tlsBufs.ok {
		return // TestTLSBufLayout reports it
	}
	s.mu.Lock()
	var sc *conn
	for _, x := range s.conns {
		sc = x
	}
	s.mu.Unlock()
	onLoop(t, sc, func() {
		raw, hand, input := tlsConnBufs(sc.tls.tc)
		if raw.Cap() != 0 || hand.Cap() != 0 || input.Size() != 0 || sc.tls.lent != nil {
			t.Errorf("buffers kept: rawInput %d hand %d input %d lent %v", raw.Cap(), hand.Cap(), input.Size(), sc.tls.lent != nil)
		}
	})
}
