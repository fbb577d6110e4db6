// Package broker builds and runs the klite binary for the benchmark: it starts
// the broker on 127.0.0.1:0 with a WAL directory, waits for the ready log line
// that names the bound address, keeps the broker's output in a log file, and
// stops it with a signal.
package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for waiting on the broker; every one can be overridden in Options.
const (
	defaultReadyTimeout = 2 * time.Minute // a 5 GB WAL recovering slowly still gets its figure
	defaultStopTimeout  = time.Minute     // after this a SIGTERM becomes SIGKILL
	logTailBytes        = 8 << 10
	drainTimeout        = 2 * time.Second
)

// ErrExited means the broker exited before it printed its ready line.
var ErrExited = errors.New("broker: exited before ready")

// Build compiles ./cmd/klite of the module rooted at root into out.
func Build(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/klite")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as `make build`: static, no libc mapped
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("broker: go build ./cmd/klite: %w\n%s", err, b)
	}
	return nil
}

// ModuleRoot walks up from dir to the directory holding go.mod.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("broker: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Options say how to start the broker.
type Options struct {
	Binary       string
	WALDir       string
	LogPath      string   // the broker's stdout+stderr go here
	ExtraArgs    []string // appended after the standard flags
	Env          []string // added to the benchmark's environment (KEY=value)
	ReadyTimeout time.Duration
	StopTimeout  time.Duration
}

// Flags returns the flag names the binary's -h lists ("-s3-bucket" as
// "s3-bucket"), so a scenario can tell whether the broker has a feature.
func Flags(ctx context.Context, binary string) (map[string]bool, error) {
	// flag's usage exits non-zero; the listing is what matters.
	out, _ := exec.CommandContext(ctx, binary, "-h").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range usageFlag.FindAllSubmatch(out, -1) {
		flags[string(m[1])] = true
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("broker: %s -h lists no flags:\n%s", binary, out)
	}
	return flags, nil
}

// usageFlag matches a flag line of Go's flag.PrintDefaults ("  -name type").
var usageFlag = regexp.MustCompile(`(?m)^\s+-([a-zA-Z0-9][a-zA-Z0-9._-]*)`)

// Process is a running broker.
type Process struct {
	Addr string // host:port from the ready line
	PID  int
	// Started is when the process was exec'd; StartToReady is the time from
	// then to reading the ready line.
	Started      time.Time
	StartToReady time.Duration

	opts    Options
	cmd     *exec.Cmd
	logFile *os.File
	exited  chan struct{} // closed when the process has been waited for
	waitErr error         // set before exited closes
	drained chan struct{} // closed when all output has been read

	mu   sync.Mutex
	tail []byte // last logTailBytes of output; guarded by mu
}

// Start execs the broker and waits for its ready line.
func Start(ctx context.Context, o Options) (*Process, error) {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = defaultReadyTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = defaultStopTimeout
	}
	if err := os.MkdirAll(o.WALDir, 0o755); err != nil {
		return nil, err
	}
	logPath := o.LogPath
	if logPath == "" {
		logPath = filepath.Join(filepath.Dir(o.WALDir), filepath.Base(o.WALDir)+".log")
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	args := append([]string{"-listen", "127.0.0.1:0", "-wal", o.WALDir, "-log-format", "json"}, o.ExtraArgs...)
	cmd := exec.Command(o.Binary, args...)
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &Process{opts: o, cmd: cmd, logFile: lf, exited: make(chan struct{}), drained: make(chan struct{})}

	ready := make(chan string, 1)
	start := time.Now()
	p.Started = start
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		lf.Close()
		return nil, fmt.Errorf("broker: start %s: %w", o.Binary, err)
	}
	pw.Close() // the child holds its own copy; EOF on pr once it exits
	p.PID = cmd.Process.Pid
	go p.readOutput(pr, ready, start)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()

	timer := time.NewTimer(o.ReadyTimeout)
	defer timer.Stop()
	select {
	case addr := <-ready:
		p.Addr = addr
		return p, nil
	case <-p.exited:
		p.waitDrained()
		return nil, fmt.Errorf("%w (%v); log tail:\n%s", ErrExited, p.waitErr, p.LogTail())
	case <-timer.C:
		p.kill()
		return nil, fmt.Errorf("broker: no ready line within %s; log tail:\n%s", o.ReadyTimeout, p.LogTail())
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
}

// readOutput copies the broker's output to the log file and the tail buffer,
// and reports the first ready line. It drains until EOF so the broker never
// blocks on a full pipe.
func (p *Process) readOutput(r io.ReadCloser, ready chan<- string, start time.Time) {
	defer close(p.drained)
	defer r.Close()
	defer p.logFile.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	found := false
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			// The tail holds the ready line before Start returns.
			p.logFile.Write(line)
			p.appendTail(line)
			if !found {
				if addr, ok := ParseReady(line); ok {
					found = true
					p.StartToReady = time.Since(start)
					ready <- addr
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Process) appendTail(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tail = append(p.tail, b...)
	if over := len(p.tail) - logTailBytes; over > 0 {
		p.tail = append(p.tail[:0], p.tail[over:]...)
	}
}

// waitDrained waits briefly for the output reader to reach EOF after the
// process exited, so the log tail holds its last words. A child process the
// broker left behind could hold the pipe open, hence the bound.
func (p *Process) waitDrained() {
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-p.drained:
	case <-t.C:
	}
}

// LogTail returns the last few KiB of the broker's output.
func (p *Process) LogTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.tail)
}

var consoleReady = regexp.MustCompile(`\baddr=("?)([^\s"]+)`)

// ParseReady recognises the broker's ready line and returns the address it
// names. JSON (`{"addr":"127.0.0.1:40123","message":"ready"}`) is what the
// benchmark asks for; zerolog's console form (`... ready addr=...`) is
// accepted too.
func ParseReady(line []byte) (string, bool) {
	line = bytes.TrimSpace(line)
	if len(line) > 0 && line[0] == '{' {
		var v struct {
			Message string `json:"message"`
			Addr    string `json:"addr"`
		}
		if json.Unmarshal(line, &v) == nil && v.Message == "ready" && v.Addr != "" {
			return v.Addr, true
		}
		return "", false
	}
	s := string(line)
	if !strings.Contains(s, "ready") {
		return "", false
	}
	if m := consoleReady.FindStringSubmatch(s); m != nil {
		return m[2], true
	}
	return "", false
}

// Stop sends sig (SIGTERM for a graceful stop, SIGKILL for a crash) and waits
// for the process to exit; a SIGTERM that is not obeyed within StopTimeout
// becomes SIGKILL and an error. It returns how long the exit took.
func (p *Process) Stop(sig syscall.Signal) (time.Duration, error) {
	start := time.Now()
	select {
	case <-p.exited:
		return 0, fmt.Errorf("broker: already exited: %v", p.waitErr)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return 0, err
	}
	timer := time.NewTimer(p.opts.StopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		el := time.Since(start)
		p.waitDrained()
		if sig == syscall.SIGTERM && p.waitErr != nil {
			return el, fmt.Errorf("broker: exit after SIGTERM: %v", p.waitErr)
		}
		return el, nil
	case <-timer.C:
		p.kill()
		return time.Since(start), fmt.Errorf("broker: still running %s after %v; killed", p.opts.StopTimeout, sig)
	}
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

func (p *Process) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}
