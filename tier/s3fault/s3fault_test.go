package s3fault

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// backend is a plain HTTP server that echoes the request's method, path,
// Host and body, so a test sees what reached it.
func backend(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hits := new(atomic.Int64)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+r.Host+" "+string(body))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), hits
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func do(t *testing.T, c *http.Client, method, url, body string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// TestModes: one proxy goes through every mode and back; the backend sees
// exactly the requests passed, with the client's Host kept (S3 signatures
// cover it).
func TestModes(t *testing.T) {
	target, hits := backend(t)
	p := newProxy(t, target)
	c := &http.Client{Transport: &http.Transport{}}

	resp, body, err := do(t, c, "PUT", p.URL()+"/bucket/key", "hello")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pass: %v %v", resp, err)
	}
	host := strings.TrimPrefix(p.URL(), "http://")
	if want := "PUT /bucket/key " + host + " hello"; body != want {
		t.Fatalf("backend saw %q, want %q", body, want)
	}

	p.SetMode(SlowDown)
	c.CloseIdleConnections() // the proxy dropped them; a reused one would fail the write
	resp, body, err = do(t, c, "PUT", p.URL()+"/bucket/key", strings.Repeat("x", 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || !strings.Contains(body, "<Code>SlowDown</Code>") {
		t.Fatalf("slowdown: %d %q", resp.StatusCode, body)
	}

	p.SetMode(Reset)
	c.CloseIdleConnections() // the proxy dropped them; a reused one would fail the write
	_, _, err = do(t, c, "GET", p.URL()+"/bucket/key", "")
	if err == nil {
		t.Fatal("reset: request succeeded")
	}
	var op *net.OpError
	if !errors.As(err, &op) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reset: %v; want a connection error", err)
	}

	p.SetMode(Pass)
	c.CloseIdleConnections() // the proxy dropped them; a reused one would fail the write
	resp, body, err = do(t, c, "GET", p.URL()+"/bucket/other", "")
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(body, "GET /bucket/other ") {
		t.Fatalf("pass again: %v %q %v", resp, body, err)
	}
	if hits.Load() != 2 || p.Requests() != 4 || p.Faults() != 2 {
		t.Fatalf("backend hits %d, proxy requests %d faults %d; want 2, 4, 2", hits.Load(), p.Requests(), p.Faults())
	}
}

// TestDelay: a delayed request still arrives; one whose client gives up
// during the delay never reaches the backend.
func TestDelay(t *testing.T) {
	target, hits := backend(t)
	p := newProxy(t, target)
	c := &http.Client{Transport: &http.Transport{}}
	p.SetDelay(20 * time.Millisecond)
	resp, body, err := do(t, c, "GET", p.URL()+"/a", "")
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(body, "GET /a ") {
		t.Fatalf("delayed: %v %q %v", resp, body, err)
	}

	p.SetDelay(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL()+"/b", bytes.NewReader(nil))
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for p.Requests() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("second request never reached the proxy")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("backend hits %d, want 1", hits.Load())
	}
}

func TestNewRejectsBadTarget(t *testing.T) {
	for _, target := range []string{"", "https://example.com", "ftp://x", "http://"} {
		if p, err := New(target); err == nil {
			p.Close()
			t.Errorf("New(%q) accepted", target)
		}
	}
}
