package netloop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, 10*time.Second, what, cond)
}

// waitForWithin is waitFor with its own deadline, for a wait that does a
// lot of work (megabytes of TLS records under the race detector).
func waitForWithin(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func startServer(t testing.TB, cfg Config, h Handler) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	s, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, s *Server) *client {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *client) send(payload []byte) {
	c.t.Helper()
	if _, err := c.c.Write(frameBytes(payload)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() []byte {
	c.t.Helper()
	b, err := c.tryRead()
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

func (c *client) tryRead() ([]byte, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	_, err := io.ReadFull(c.br, b)
	return b, err
}

// expectClosed reads until the server closes the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c.br)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("want the server to close the connection, got %v", err)
	}
}

type handlerFunc func(*Request)

func (f handlerFunc) Serve(r *Request) { f(r) }

var echo = handlerFunc(func(r *Request) {
	r.Respond(Response{Parts: []Part{BytesPart(r.Frame)}})
})

func TestEcho(t *testing.T) {
	s := startServer(t, Config{}, echo)
	c := dial(t, s)
	for i := range 100 {
		c.send([]byte(fmt.Sprint("msg ", i)))
	}
	c.send(nil)
	for i := range 100 {
		if got, want := string(c.read()), fmt.Sprint("msg ", i); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
	if got := c.read(); len(got) != 0 {
		t.Fatalf("empty frame echoed as %q", got)
	}
	// The client can read a response before the loop has counted it.
	waitFor(t, "counters", func() bool {
		st := s.Stats()
		return st.Frames == 101 && st.ConnsOpen == 1 && st.BytesIn == st.BytesOut && st.InflightRequests == 0
	})
}

// shuffler collects requests and answers them in random order from many
// goroutines. Requests whose payload ends in 'E' get an empty response.
type shuffler struct {
	mu       sync.Mutex
	pending  []*Request
	batch    int
	released atomic.Int64
}

func (h *shuffler) Serve(r *Request) {
	h.mu.Lock()
	h.pending = append(h.pending, r)
	var batch []*Request
	if len(h.pending) >= h.batch {
		batch, h.pending = h.pending, nil
	}
	h.mu.Unlock()
	if batch == nil {
		return
	}
	rand.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(batch); i += 4 {
				r := batch[i]
				resp := Response{Release: func() { h.released.Add(1) }}
				if !bytes.HasSuffix(r.Frame, []byte("E")) {
					resp.Parts = []Part{BytesPart([]byte("re:")), BytesPart(r.Frame)}
				}
				r.Respond(resp)
			}
		}()
	}
	// Serve must not block the loop: let the goroutines answer on their own.
}

func TestOrderRandomResponders(t *testing.T) {
	h := &shuffler{batch: 16}
	s := startServer(t, Config{MaxInflightRequests: 32}, h)
	const conns, perConn = 8, 800 // perConn is a multiple of the batch
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		c := dial(t, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			go func() {
				w := bufio.NewWriter(c.c)
				for i := range perConn {
					p := fmt.Sprint(i)
					if i%5 == 0 {
						p += "E"
					}
					w.Write(frameBytes([]byte(p)))
				}
				w.Flush()
			}()
			for i := range perConn {
				if i%5 == 0 {
					continue
				}
				b, err := c.tryRead()
				if err != nil {
					errs <- err
					return
				}
				if want := "re:" + fmt.Sprint(i); string(b) != want {
					errs <- fmt.Errorf("got %q want %q", b, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "all responses released", func() bool { return h.released.Load() == conns*perConn })
	st := s.Stats()
	if st.InflightRequests != 0 || st.QueuedBytes != 0 || st.DoubleResponds != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// fileHandler answers "off len" with a byte header, the file range and a
// byte trailer.
type fileHandler struct {
	f        SendFile
	released atomic.Int64
}

func (h *fileHandler) Serve(r *Request) {
	if bytes.HasPrefix(r.Frame, []byte("echo ")) {
		r.Respond(Response{Parts: []Part{BytesPart(r.Frame)}, Release: func() { h.released.Add(1) }})
		return
	}
	var off, n int64
	if _, err := fmt.Sscan(string(r.Frame), &off, &n); err != nil {
		r.Respond(Response{Close: true})
		return
	}
	r.Respond(Response{
		Parts: []Part{
			BytesPart([]byte("head")),
			{File: h.f, Off: off, Len: n},
			BytesPart([]byte("tail")),
		},
		Release: func() { h.released.Add(1) },
	})
}

func tempFile(t testing.TB, n int) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	f, err := os.CreateTemp(t.TempDir(), "seg")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, data
}

// dialSlow dials with a small receive buffer so the server's socket fills.
func dialSlow(t testing.TB, s *Server) *client {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
	}}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReaderSize(&slowReader{r: c}, 4<<10)}
}

// slowReader reads in small pieces with pauses (pacing, not waiting on state).
type slowReader struct {
	r io.Reader
	n int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.n++; s.n%8 == 0 {
		time.Sleep(200 * time.Microsecond)
	}
	return s.r.Read(p[:min(len(p), 4<<10)])
}

// checkFileResponses pipelines file requests for ranges, with an echo request
// between each two when mixed, and checks every response.
func checkFileResponses(t *testing.T, c *client, data []byte, ranges [][2]int, mixed bool) {
	t.Helper()
	for i, r := range ranges {
		c.send([]byte(fmt.Sprint(r[0], " ", r[1])))
		if mixed {
			c.send([]byte(fmt.Sprint("echo ", i)))
		}
	}
	for i, r := range ranges {
		got := c.read()
		want := append(append([]byte("head"), data[r[0]:r[0]+r[1]]...), "tail"...)
		if !bytes.Equal(got, want) {
			t.Fatalf("range %v: got %d bytes, want %d (equal prefix %d)", r, len(got), len(want), commonPrefix(got, want))
		}
		if mixed {
			if got, want := string(c.read()), fmt.Sprint("echo ", i); got != want {
				t.Fatalf("got %q want %q", got, want)
			}
		}
	}
}

func commonPrefix(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

var fileRanges = [][2]int{{0, 8 << 20}, {12345, 3 << 20}, {0, 0}, {7, 1}, {1 << 20, 5<<20 + 3}}

func TestSendfile(t *testing.T) {
	f, data := tempFile(t, 8<<20)
	h := &fileHandler{f: f}
	s := startServer(t, Config{}, h)
	t.Run("fast reader", func(t *testing.T) {
		checkFileResponses(t, dial(t, s), data, fileRanges, false)
	})
	t.Run("slow reader", func(t *testing.T) {
		before := s.Stats().WriteParks
		checkFileResponses(t, dialSlow(t, s), data, fileRanges, true)
		if s.Stats().WriteParks == before {
			t.Fatal("slow reader never made a write wait for the socket")
		}
	})
	t.Run("mixed with byte responses", func(t *testing.T) {
		checkFileResponses(t, dial(t, s), data, fileRanges, true)
	})
	want := int64(5 * len(fileRanges))
	waitFor(t, "releases", func() bool { return h.released.Load() == want })
	st := s.Stats()
	if st.SendfileBytes == 0 || st.FileCopyBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// memFile is a SendFile without a kernel descriptor.
type memFile struct{ b []byte }

func (m memFile) Fd() uintptr { return ^uintptr(0) }
func (m memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// dirFile reads from memory but offers a directory's descriptor, from which
// sendfile refuses to read (EINVAL): netloop must fall back to copying.
type dirFile struct {
	memFile
	d *os.File
}

func (p dirFile) Fd() uintptr { return p.d.Fd() }

func TestFileCopyFallback(t *testing.T) {
	_, data := tempFile(t, 8<<20)
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	for name, f := range map[string]SendFile{"no fd": memFile{data}, "sendfile EINVAL": dirFile{memFile{data}, dir}} {
		t.Run(name, func(t *testing.T) {
			h := &fileHandler{f: f}
			s := startServer(t, Config{}, h)
			checkFileResponses(t, dial(t, s), data, fileRanges, true)
			checkFileResponses(t, dialSlow(t, s), data, fileRanges, true)
			st := s.Stats()
			if st.SendfileBytes != 0 || st.FileCopyBytes == 0 || st.WriteParks == 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestShortFileCloses(t *testing.T) {
	f, _ := tempFile(t, 1000)
	for name, sf := range map[string]SendFile{"sendfile": f, "copy": memFile{make([]byte, 1000)}} {
		t.Run(name, func(t *testing.T) {
			h := &fileHandler{f: sf}
			s := startServer(t, Config{}, h)
			c := dial(t, s)
			c.send([]byte("900 200")) // 100 bytes past the end
			c.expectClosed()
			waitFor(t, "release and close", func() bool {
				return h.released.Load() == 1 && s.Stats().Closes[CloseWriteError] == 1
			})
		})
	}
}

func TestManyParts(t *testing.T) {
	// More parts than writev takes in one call (IOV_MAX 1024).
	s := startServer(t, Config{}, handlerFunc(func(r *Request) {
		parts := make([]Part, 3000)
		for i := range parts {
			parts[i] = BytesPart([]byte{byte(i), byte(i >> 8)})
		}
		parts[1500] = Part{} // an empty part among them
		r.Respond(Response{Parts: parts})
	}))
	c := dialSlow(t, s)
	for range 3 {
		c.send([]byte("x"))
	}
	for range 3 {
		got := c.read()
		if len(got) != 2*2999 {
			t.Fatalf("got %d bytes", len(got))
		}
		for i, j := 0, 0; i < 3000; i++ {
			if i == 1500 {
				continue
			}
			if got[j] != byte(i) || got[j+1] != byte(i>>8) {
				t.Fatalf("part %d differs", i)
			}
			j += 2
		}
	}
}

func TestStartErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := New(Config{Addr: ln.Addr().String()}, echo)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil {
		t.Fatal("Addr before Start")
	}
	if err := s.Start(); err == nil {
		t.Fatal("Start on a port in use succeeded")
	}
	if err := s.Start(); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v", err)
	}
}
