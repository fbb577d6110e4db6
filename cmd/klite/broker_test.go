package main

// The integration tests drive the real klite binary: TestMain builds it once,
// each test starts it on 127.0.0.1:0 with its own -wal dir and waits for the
// "ready" log line that names the bound address. A failing test prints the
// broker's log.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	// records is how many records each client test produces and consumes.
	records = flag.Int("records", envInt("KLITE_TEST_RECORDS", 1_000_000), "records per client integration test (env KLITE_TEST_RECORDS)")
	// kliteBin is the binary under test, built by TestMain.
	kliteBin string
)

const (
	readyTimeout = 2 * time.Minute // recovery of a large WAL on a loaded machine
	stopTimeout  = time.Minute
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "klite-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kliteBin = filepath.Join(dir, "klite")
	args := []string{"build", "-o", kliteBin}
	if os.Getenv("KLITE_TEST_RACE") != "" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	if os.Getenv("KLITE_TEST_RACE") == "" {
		// As `make build` (the race detector needs cgo).
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building klite: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "built %s in %v\n", kliteBin, time.Since(start).Round(time.Millisecond))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// broker is one klite process, restartable on the same dir and address.
type broker struct {
	t    testing.TB
	dir  string
	args []string
	addr string // bound address, fixed after the first start
	// proto, when set, is the listener's security protocol (-listen
	// PROTO://addr); empty is PLAINTEXT.
	proto string

	log     *logBuffer // every run's stderr, in order
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	waitErr error         // set before done is closed
	runs    int
}

// startBroker starts klite with a temp -wal dir and the given extra flags.
func startBroker(t testing.TB, extra ...string) *broker {
	t.Helper()
	return startBrokerProto(t, "", extra...)
}

// startBrokerProto is startBroker with a listener of security protocol
// proto (SASL_PLAINTEXT, ...).
func startBrokerProto(t testing.TB, proto string, extra ...string) *broker {
	t.Helper()
	return startBrokerDir(t, t.TempDir(), proto, extra...)
}

// startBrokerDir is startBrokerProto with the -wal dir given (a mounted
// file system, say).
func startBrokerDir(t testing.TB, dir, proto string, extra ...string) *broker {
	t.Helper()
	b := &broker{t: t, dir: dir, args: extra, log: &logBuffer{}, proto: proto}
	t.Cleanup(func() {
		if b.running() {
			b.signal(syscall.SIGKILL)
			<-b.done
		}
		if t.Failed() || os.Getenv("KLITE_TEST_LOG") != "" {
			t.Logf("broker log (%s):\n%s", b.dir, b.log.tail(400))
		}
	})
	b.start()
	return b
}

func (b *broker) running() bool {
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// start runs the binary and waits for its ready line.
func (b *broker) start() {
	b.t.Helper()
	listen := "127.0.0.1:0"
	if b.addr != "" {
		listen = b.addr // a restart keeps the address clients know
	}
	if b.proto != "" {
		listen = b.proto + "://" + listen
	}
	args := append([]string{"-listen", listen, "-wal", b.dir, "-log-format", "json", "-log-level", "info"}, b.args...)
	b.runs++
	b.log.write([]byte(fmt.Sprintf("---- run %d: klite %s\n", b.runs, strings.Join(args, " "))))
	cmd := exec.Command(kliteBin, args...)
	cmd.Stdout = b.log
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.cmd, b.done = cmd, make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Bytes()
			b.log.write(append(line, '\n'))
			if addr, ok := readyAddr(line); ok {
				select {
				case ready <- addr:
				default:
				}
			}
		}
		io.Copy(b.log, stderr) // a line longer than the scanner buffer
		b.waitErr = cmd.Wait()
		close(b.done)
	}()
	select {
	case addr := <-ready:
		if b.addr == "" {
			b.addr = addr
		} else if addr != b.addr {
			b.t.Fatalf("restarted broker bound %s, want %s", addr, b.addr)
		}
	case <-b.done:
		b.t.Fatalf("klite exited before ready: %v", b.waitErr)
	case <-time.After(readyTimeout):
		b.t.Fatalf("klite not ready after %v", readyTimeout)
	}
}

// readyAddr parses the "ready" log line.
func readyAddr(line []byte) (string, bool) {
	if !bytes.Contains(line, []byte(`"ready"`)) {
		return "", false
	}
	var m struct {
		Component string `json:"component"`
		Message   string `json:"message"`
		Addr      string `json:"addr"`
	}
	if json.Unmarshal(line, &m) != nil || m.Component != "klite" || m.Message != "ready" || m.Addr == "" {
		return "", false
	}
	return m.Addr, true
}

func (b *broker) signal(sig syscall.Signal) {
	if err := b.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		b.t.Errorf("signal %v: %v", sig, err)
	}
}

// stop sends SIGTERM and requires a clean exit (code 0) within stopTimeout.
func (b *broker) stop() {
	b.t.Helper()
	b.signal(syscall.SIGTERM)
	if err := b.wait(stopTimeout); err != nil {
		b.t.Fatalf("klite after SIGTERM: %v", err)
	}
	b.checkLog()
}

// wait waits for the process to exit and returns its exit error.
func (b *broker) wait(d time.Duration) error {
	select {
	case <-b.done:
		return b.waitErr
	case <-time.After(d):
		b.signal(syscall.SIGQUIT) // goroutine dump into the log
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			b.signal(syscall.SIGKILL)
			<-b.done
		}
		return fmt.Errorf("did not exit within %v", d)
	}
}

// kill9 kills the process without warning, as a crash would.
func (b *broker) kill9() {
	b.t.Helper()
	b.signal(syscall.SIGKILL)
	<-b.done
	b.log.write([]byte("---- killed with SIGKILL\n"))
}

// restart starts the broker again on the same dir and address.
func (b *broker) restart() {
	b.t.Helper()
	if b.running() {
		b.t.Fatal("restart of a running broker")
	}
	b.start()
}

// restoreEmpty restarts the stopped broker on an emptied data directory
// (a lost disk) and requires that it restored from the bucket.
func (b *broker) restoreEmpty() {
	b.t.Helper()
	if err := os.RemoveAll(b.dir); err != nil {
		b.t.Fatal(err)
	}
	if err := os.Mkdir(b.dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	b.restart()
	if !b.log.contains("restored from the bucket") {
		b.t.Fatal("no restore logged")
	}
}

// checkLog fails the test on signs of a crash in the log.
func (b *broker) checkLog() {
	b.t.Helper()
	for _, bad := range []string{"panic:", "fatal error:", "WARNING: DATA RACE"} {
		if b.log.contains(bad) {
			b.t.Errorf("broker log contains %q", bad)
		}
	}
}

// logBuffer collects the broker's output; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) { l.write(p); return len(p), nil }

func (l *logBuffer) write(p []byte) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
}

func (l *logBuffer) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Contains(l.buf.Bytes(), []byte(s))
}

// tail returns the last n lines.
func (l *logBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.SplitAfter(l.buf.String(), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... %d lines omitted ...\n", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
