package netloop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// idleHoldEnv makes the test binary a client process that holds idle
// connections (see holdIdle), so their client side stays out of the heap
// the benchmark measures.
const idleHoldEnv = "NETLOOP_IDLE_HOLD" // addr,count,tls|plain

func TestMain(m *testing.M) {
	if spec := os.Getenv(idleHoldEnv); spec != "" {
		if err := holdIdle(spec); err != nil {
			fmt.Fprintln(os.Stderr, "holder:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("NETLOOP_IDLE_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1 // every allocation, for an exact profile
	}
	os.Exit(m.Run())
}

// holdIdle opens the connections spec names, echoes one frame on each,
// prints "ready" and keeps them until stdin closes.
func holdIdle(spec string) error {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		return fmt.Errorf("bad %s %q", idleHoldEnv, spec)
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil {
		return err
	}
	conns := make([]net.Conn, 0, n)
	frame := frameBytes([]byte("hello, idle"))
	for range n {
		var c net.Conn
		if parts[2] == "tls" {
			c, err = tls.Dial("tcp", parts[0], &tls.Config{InsecureSkipVerify: true})
		} else {
			c, err = net.Dial("tcp", parts[0])
		}
		if err != nil {
			return err
		}
		if _, err := c.Write(frame); err != nil {
			return err
		}
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[:]))); err != nil {
			return err
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// liveBytes is the heap in use after a collection plus goroutine stacks.
func liveBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse
}

// BenchmarkIdleConnMemory holds idleConns connections, each of which has
// echoed one frame and then stays silent, in a child process, and reports
// the server's live heap plus goroutine stacks per connection, plaintext
// and TLS (1.3, ECDSA P-256). NETLOOP_IDLE_HEAPPROFILE=file writes a heap
// profile of the TLS case with the connections held
// (go tool pprof -sample_index=inuse_space).
func BenchmarkIdleConnMemory(b *testing.B) {
	const idleConns = 2000
	for _, mode := range []string{"plain", "tls"} {
		b.Run(mode, func(b *testing.B) {
			cfg, _ := tlsListeners(b, nil)
			s := startServer(b, cfg, echo)
			addr := s.Addrs()[0].String()
			if mode == "tls" {
				addr = s.Addrs()[1].String()
			}
			var perConn float64
			for range b.N {
				before := liveBytes()
				exe, err := os.Executable()
				if err != nil {
					b.Fatal(err)
				}
				cmd := exec.Command(exe)
				cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%s", idleHoldEnv, addr, idleConns, mode))
				cmd.Stderr = os.Stderr
				stdin, _ := cmd.StdinPipe()
				stdout, _ := cmd.StdoutPipe()
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				line, _ := bufio.NewReader(stdout).ReadString('\n')
				if strings.TrimSpace(line) != "ready" {
					cmd.Process.Kill()
					cmd.Wait()
					b.Fatalf("holder: %q", line)
				}
				waitFor(b, "connections idle", func() bool {
					st := s.Stats()
					return st.ConnsOpen >= idleConns && st.TLSHandshaking == 0
				})
				after := liveBytes()
				if p := os.Getenv("NETLOOP_IDLE_HEAPPROFILE"); p != "" && mode == "tls" {
					f, err := os.Create(p)
					if err != nil {
						b.Fatal(err)
					}
					pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
				perConn = (float64(after) - float64(before)) / idleConns
				stdin.Close()
				cmd.Wait()
				waitForWithin(b, 30*time.Second, "connections closed", func() bool { return s.Stats().ConnsOpen == 0 })
			}
			b.ReportMetric(perConn, "B/conn")
		})
	}
}

// onLoop runs f on c's event loop and waits for it.
func onLoop(t testing.TB, c *conn, f func()) {
	t.Helper()
	done := make(chan struct{})
	err := c.gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		f()
		close(done)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	<-done
}

// TestTLSBufLayout fails when crypto/tls's unexported record buffers are
// not where tls_bufs.go looks for them (a Go upgrade changed tls.Conn):
// idle TLS connections would then keep about 3.5-17 KiB more each.
func TestTLSBufLayout(t *testing.T) {
	if !tlsBufs.ok {
		t.Fatalf("tls.Conn has no rawInput/hand bytes.Buffer or input bytes.Reader field on %s: "+
			"releasing its buffers is off; update tls_bufs.go", runtime.Version())
	}
}

// TestTLSIdleKeepsNoHandshakeState: once a TLS connection has answered and
// gone quiet, netloop holds nothing for it beyond tlsState itself: no
// handshake state, no pipe channels or buffers, no plaintext buffer, no
// crypto/tls record or handshake buffer (tls_bufs.go), and connections
// with the same TLS state share one ConnInfo.TLS.
func TestTLSIdleKeepsNoHandshakeState(t *testing.T) {
	cfg, ca := tlsListeners(t, nil)
	s := startServer(t, cfg, echo)
	for range 2 {
		c := dialTLS(t, s, ca, nil)
		c.send(bytes.Repeat([]byte("x"), 40_000)) // several records each way
		if got := len(c.read()); got != 40_000 {
			t.Fatalf("echo %d bytes", got)
		}
	}
	s.mu.Lock()
	var conns []*conn
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if len(conns) != 2 {
		t.Fatalf("%d conns", len(conns))
	}
	var states []*tls.ConnectionState
	for _, c := range conns {
		onLoop(t, c, func() {
			tl, p := c.tls, &c.tls.pipe
			p.mu.Lock()
			defer p.mu.Unlock()
			switch {
			case !tl.ready || tl.hs != nil:
				t.Errorf("handshake state kept: ready %v hs %v", tl.ready, tl.hs != nil)
			case p.wake != nil || p.done != nil || p.sched != nil:
				t.Error("pipe keeps its handshake channels")
			case p.in != nil || p.out != nil || tl.plain != nil || tl.lent != nil:
				t.Errorf("buffers kept: in %v out %v plain %v lent %v", p.in != nil, p.out != nil, tl.plain != nil, tl.lent != nil)
			}
			if tlsBufs.ok {
				raw, hand, input := tlsConnBufs(tl.tc)
				if raw.Cap() != 0 || hand.Cap() != 0 || input.Size() != 0 {
					t.Errorf("crypto/tls keeps buffers: rawInput %d hand %d input %d", raw.Cap(), hand.Cap(), input.Size())
				}
			}
			states = append(states, c.info.TLS)
		})
	}
	if states[0] == nil || states[0] != states[1] {
		t.Fatalf("ConnInfo.TLS not shared: %p %p", states[0], states[1])
	}
	if states[0].Version != tls.VersionTLS13 || !states[0].HandshakeComplete {
		t.Fatalf("state %+v", states[0])
	}
}
