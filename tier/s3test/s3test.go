// Package s3test runs versitygw (a real S3 server, posix backend, static
// keys) on loopback for klite's tests and benchmarks. scripts/versitygw.sh
// builds it into the user's cache the first time (minutes; make s3-server).
// It imports no testing package, so the benchmark can use it too.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The static keys versitygw is started with.
const (
	Access = "klite"
	Secret = "klite-secret-key"
)

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary installs versitygw with scripts/versitygw.sh (found above the
// working directory) if needed, and returns its path. It runs the script
// once per process; note, if not nil, is called just before.
func Binary(ctx context.Context, note func(string)) (string, error) {
	binOnce.Do(func() {
		script, err := findScript()
		if err != nil {
			binErr = err
			return
		}
		if note != nil {
			note("scripts/versitygw.sh install (builds it the first time, minutes)")
		}
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "bash", script, "install")
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			binErr = fmt.Errorf("s3test: %s install: %v: %s", script, err, strings.TrimSpace(stderr.String()))
			return
		}
		binPath = strings.TrimSpace(string(out))
	})
	return binPath, binErr
}

// findScript walks up from the working directory to the module root.
func findScript() (string, error) {
	dir, err := filepath.Abs(".")
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scripts", "versitygw.sh"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("s3test: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Server is one versitygw process.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	exited   chan struct{}
}

// Start installs versitygw if needed, starts it on a free loopback port
// serving root (bucket is created in it) with the static keys, and waits
// until it answers. Its output goes to log. It dies with this process
// (Pdeathsig); Stop stops it sooner.
func Start(ctx context.Context, root, bucket string, log io.Writer) (*Server, error) {
	bin, err := Binary(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, bucket), 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Endpoint: "http://" + addr, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "--access", Access, "--secret", Secret, "--port", addr, "posix", root)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("s3test: start versitygw: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, errors.New("s3test: versitygw exited")
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("s3test: versitygw not answering on %s: %v", s.Endpoint, err)
		}
	}
}

// Stop sends SIGTERM, kills after stopTimeout, and waits for the exit.
func (s *Server) Stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// TB is the part of testing.TB that StartT uses (this package does not
// import testing, see above).
type TB interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	TempDir() string
	Cleanup(func())
	Failed() bool
}

// StartT runs a fresh versitygw for test t with an empty bucket and
// returns its endpoint. It skips t when KLITE_S3_TESTS=0, and stops the
// server at cleanup, printing its log if t failed.
func StartT(t TB, bucket string) string {
	t.Helper()
	if os.Getenv("KLITE_S3_TESTS") == "0" {
		t.Skip("KLITE_S3_TESTS=0: S3 integration tests against versitygw skipped")
	}
	var log syncBuffer
	srv, err := Start(context.Background(), t.TempDir(), bucket, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			t.Logf("versitygw log:\n%s", log.String())
		}
	})
	return srv.Endpoint
}

// syncBuffer is a log sink the server's output goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
