package broker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseReady(t *testing.T) {
	cases := []struct {
		line string
		addr string
		ok   bool
	}{
		{`{"level":"info","addr":"127.0.0.1:40123","message":"ready"}`, "127.0.0.1:40123", true},
		{`{"level":"info","message":"ready","addr":"127.0.0.1:1","time":"x"}` + "\n", "127.0.0.1:1", true},
		{`{"level":"info","addr":"127.0.0.1:40123","message":"listening"}`, "", false},
		{`{"level":"info","message":"ready"}`, "", false},
		{`{"message":"ready","addr":`, "", false},
		{`10:00AM INF ready addr=127.0.0.1:9092 component=main`, "127.0.0.1:9092", true},
		{`10:00AM INF starting addr=127.0.0.1:9092`, "", false},
		{``, "", false},
	}
	for _, c := range cases {
		addr, ok := ParseReady([]byte(c.line))
		if addr != c.addr || ok != c.ok {
			t.Errorf("ParseReady(%q) = %q, %v; want %q, %v", c.line, addr, ok, c.addr, c.ok)
		}
	}
}

// fakeBroker writes a shell script that behaves like klite's startup: it
// logs a line, then the ready line, then waits for a signal.
func fakeBroker(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake-klite")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartStop(t *testing.T) {
	bin := fakeBroker(t, `trap 'echo bye; exit 0' TERM
echo '{"level":"info","message":"opening"}' >&2
echo '{"level":"info","addr":"127.0.0.1:5555","message":"ready"}'
while :; do sleep 0.05; done
`)
	dir := t.TempDir()
	p, err := Start(context.Background(), Options{Binary: bin, WALDir: filepath.Join(dir, "wal")})
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr != "127.0.0.1:5555" || p.PID <= 0 || p.StartToReady <= 0 {
		t.Fatalf("addr %q pid %d ready after %v", p.Addr, p.PID, p.StartToReady)
	}
	if _, err := p.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.LogTail())
	}
	log, err := os.ReadFile(filepath.Join(dir, "wal.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"opening", "ready", "bye"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("broker log lacks %q:\n%s", want, log)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "wal")); err != nil {
		t.Errorf("WAL dir not created: %v", err)
	}
}

func TestStartExitsEarly(t *testing.T) {
	bin := fakeBroker(t, "echo 'fatal: bad flag' >&2\nexit 3\n")
	_, err := Start(context.Background(), Options{Binary: bin, WALDir: filepath.Join(t.TempDir(), "wal")})
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "bad flag") {
		t.Fatalf("err = %v, want ErrExited with the log tail", err)
	}
}

func TestStartNoReadyLine(t *testing.T) {
	bin := fakeBroker(t, "while :; do sleep 0.05; done\n")
	_, err := Start(context.Background(), Options{Binary: bin, WALDir: filepath.Join(t.TempDir(), "wal"), ReadyTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no ready line") {
		t.Fatalf("err = %v, want a ready timeout", err)
	}
}

func TestStopEscalates(t *testing.T) {
	bin := fakeBroker(t, `trap '' TERM
echo '{"addr":"127.0.0.1:1","message":"ready"}'
while :; do sleep 0.05; done
`)
	p, err := Start(context.Background(), Options{Binary: bin, WALDir: filepath.Join(t.TempDir(), "wal"), StopTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Stop(syscall.SIGTERM); err == nil {
		t.Fatal("a broker ignoring SIGTERM: want an error from Stop")
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("process still running after Stop")
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
}

// Flags reads Go's flag usage listing, whatever the exit status of -h.
func TestFlags(t *testing.T) {
	bin := fakeBroker(t, `cat >&2 <<'X'
Usage: klite [flags]

Flags:
  -listen host:port
    	host:port to listen on
  -s3-bucket string
    	bucket for cold data
  -wal-hot-bytes int
    	keep this much locally
X
exit 2
`)
	flags, err := Flags(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"listen", "s3-bucket", "wal-hot-bytes"} {
		if !flags[want] {
			t.Errorf("flag %s not found in %v", want, flags)
		}
	}
	if flags["Usage"] || flags["host"] || len(flags) != 3 {
		t.Errorf("flags %v: want exactly the three listed", flags)
	}
	if _, err := Flags(context.Background(), fakeBroker(t, "echo nothing here\n")); err == nil {
		t.Error("a binary listing no flags: want an error")
	}
}

// Options.Env reaches the broker on top of the benchmark's environment.
func TestStartEnv(t *testing.T) {
	bin := fakeBroker(t, `trap 'exit 0' TERM
echo "{\"level\":\"info\",\"addr\":\"127.0.0.1:$KLITE_BENCH_PORT\",\"message\":\"ready\",\"home\":\"$HOME\"}"
while :; do sleep 0.05; done
`)
	dir := t.TempDir()
	p, err := Start(context.Background(), Options{Binary: bin, WALDir: filepath.Join(dir, "wal"), Env: []string{"KLITE_BENCH_PORT=4242"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(syscall.SIGTERM)
	if p.Addr != "127.0.0.1:4242" {
		t.Errorf("addr %q: the broker did not see KLITE_BENCH_PORT", p.Addr)
	}
	if home := os.Getenv("HOME"); home != "" && !strings.Contains(p.LogTail(), `"home":"`+home+`"`) {
		t.Errorf("log %q: the broker lost the inherited environment", p.LogTail())
	}
}
