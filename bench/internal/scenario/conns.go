package scenario

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
)

// The connection-scale scenario holds idle connections in child processes:
// the benchmark re-executes its own binary with holderEnv set, and the child
// (Hold) opens the connections, answers "ready <n>" on stdout and keeps them
// until its stdin closes. One process can hold fewer than its open-file
// limit, so the crowd is spread over several.
const (
	holderEnv        = "KLITE_BENCH_HOLD" // addr,count,source IP[,CA file: TLS]
	holderDialers    = 32                 // concurrent dials per holder: accept bursts stay under somaxconn
	holderReady      = 2 * time.Minute
	holderDialTO     = 10 * time.Second
	connSettle       = 500 * time.Millisecond // after a step, before reading RSS
	connActiveRate   = 10000                  // records/s of the active clients when no peak is known
	connActiveFrac   = 0.25                   // of the acks=all peak, for the active clients
	holderFirstOctet = 10                     // holders bind 127.0.0.10, .11, ...
)

// MaybeHold runs the connection holder and exits when this process was
// started as one; otherwise it returns at once. Call it first in main (and
// in TestMain of tests that run the connections scenario).
func MaybeHold() {
	spec := os.Getenv(holderEnv)
	if spec == "" {
		return
	}
	if err := hold(spec, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "holder:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// hold opens the connections spec names, each sending one ApiVersions
// request and reading its answer, reports ready, then waits for stdin EOF.
// With a fourth field, the CA file of the broker's certificate, each
// connection completes a TLS handshake first.
func hold(spec string, stdin io.Reader, stdout io.Writer) error {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 && len(parts) != 4 {
		return fmt.Errorf("bad %s %q", holderEnv, spec)
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: holderDialTO, LocalAddr: &net.TCPAddr{IP: net.ParseIP(parts[2])}}
	var tlsCfg *tls.Config
	if len(parts) == 4 {
		pem, err := os.ReadFile(parts[3])
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("no certificate in %s", parts[3])
		}
		tlsCfg = &tls.Config{RootCAs: pool}
	}
	req := kmsg.NewRequestFormatter(kmsg.FormatterClientID("klite-bench-idle")).
		AppendRequest(nil, &kmsg.ApiVersionsRequest{Version: 0}, 1)
	conns := make([]net.Conn, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan int)
	for w := 0; w < holderDialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := openIdle(&d, parts[0], req, tlsCfg)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	fmt.Fprintf(stdout, "ready %d\n", n)
	io.Copy(io.Discard, stdin) // until the parent closes it
	for _, c := range conns {
		c.Close()
	}
	return nil
}

func openIdle(d *net.Dialer, addr string, req []byte, tlsCfg *tls.Config) (net.Conn, error) {
	var c net.Conn
	var err error
	if tlsCfg != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: tlsCfg}).Dial("tcp", addr)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(holderDialTO))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("ApiVersions answer: %w", err)
	}
	if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(size[:]))); err != nil {
		c.Close()
		return nil, fmt.Errorf("ApiVersions answer: %w", err)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// holder is one child process holding connections.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startHolder starts a holder of n connections to addr from 127.0.0.(10+idx);
// with caFile, over TLS trusting that CA.
func startHolder(ctx context.Context, addr string, n, idx int, caFile string) (*holder, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	spec := fmt.Sprintf("%s,%d,127.0.0.%d", addr, n, holderFirstOctet+idx)
	if caFile != "" {
		spec += "," + caFile
	}
	cmd.Env = append(os.Environ(), holderEnv+"="+spec)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &holder{cmd: cmd, stdin: stdin}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
	}()
	t := time.NewTimer(holderReady)
	defer t.Stop()
	select {
	case s := <-line:
		if strings.HasPrefix(s, "ready ") {
			return h, nil
		}
		h.stop()
		return nil, fmt.Errorf("holder %d: %s", idx, strings.TrimSpace(stderr.String()))
	case <-t.C:
	case <-ctx.Done():
	}
	h.stop()
	return nil, fmt.Errorf("holder %d: not ready within %s: %s", idx, holderReady, strings.TrimSpace(stderr.String()))
}

func (h *holder) stop() {
	h.stdin.Close()
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}

// connScale: broker memory per idle connection and the active clients'
// latency with and without an idle crowd.
type connScale struct{}

func (s *connScale) Name() string { return "connections" }

func (s *connScale) Describe(cfg Config) string {
	return fmt.Sprintf("Connection scale: %d idle client connections held by child processes of the benchmark (at most %d "+
		"each, bound to 127.0.0.10, .11, ...), each sending one ApiVersions request and then staying silent, opened in "+
		"steps of one process. Broker memory per connection is (RSS with the crowd - RSS before it) / connections, RSS "+
		"read %s after each step. Then %d producer and %d consumer clients run acks=all at a fixed rate (a quarter of the "+
		"acks=all peak, or %d records/s without one) with the crowd connected; the same load runs on a fresh broker "+
		"without the crowd (after it in odd rounds, before it in even ones), and the p99 ratio compares the two.",
		cfg.Conns, cfg.ConnsPerProc, connSettle, cfg.Producers, cfg.Consumers, connActiveRate)
}

func (s *connScale) Close() error { return nil }

func (s *connScale) Settings(cfg Config) []report.KV {
	return []report.KV{
		{Key: "idle connections", Value: fmt.Sprint(cfg.Conns)},
		{Key: "per holder process", Value: fmt.Sprint(cfg.ConnsPerProc)},
		{Key: "active producers / consumers", Value: fmt.Sprintf("%d / %d", cfg.Producers, cfg.Consumers)},
	}
}

// crowdSteps splits n connections into process-sized steps.
func crowdSteps(n, perProc int) []int {
	var steps []int
	for n > 0 {
		k := min(n, perProc)
		steps = append(steps, k)
		n -= k
	}
	return steps
}

func (s *connScale) Run(ctx context.Context, env *Env) (res Result, err error) {
	if env.Cfg.Conns <= 0 {
		return res, errors.New("scenario: connections needs -conns > 0")
	}
	rate := float64(connActiveRate)
	if env.PeakRecords > 0 {
		rate = env.PeakRecords * connActiveFrac
	}
	active := func(b *Broker, label string) (loadStats, error) {
		return runLoad(ctx, env, loadSpec{
			label: progressLabel(s.Name()+" "+label, env), addr: b.Addr, topic: topicName(s.Name(), env),
			partitions: env.Cfg.Partitions, acks: "all", rate: rate, producers: env.Cfg.Producers, consumers: env.Cfg.Consumers,
			e2e: true, warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID,
		})
	}

	// Without the crowd, on a broker of its own. Odd rounds run it after
	// the crowd, even rounds before, so order effects (page cache, a busy
	// neighbour) do not always land on the same side.
	var alone loadStats
	runAlone := func() error {
		b2, err := env.Brokers.Broker(ctx, s.Name()+"-alone")
		if err != nil {
			return err
		}
		alone, err = active(b2, "active, alone")
		return errors.Join(err, b2.Stop())
	}
	if env.Round%2 == 0 {
		if err := runAlone(); err != nil {
			return res, err
		}
	}

	crowd, err := s.withCrowd(ctx, env, active, &res)
	if err != nil {
		return res, err
	}
	if env.Round%2 == 1 {
		if err := runAlone(); err != nil {
			return res, err
		}
	}
	p99c, p99a := crowd.lat.Quantile(99).Seconds(), alone.lat.Quantile(99).Seconds()
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "active-rate", Label: "active clients' rate", Unit: report.RecordsPerSec, Value: rate},
		report.Metric{Key: "p99-crowd", Label: "active produce p99, with the crowd", Unit: report.Seconds, Value: p99c},
		report.Metric{Key: "p99-alone", Label: "active produce p99, alone", Unit: report.Seconds, Value: p99a},
		report.Metric{Key: "p99-ratio", Label: "p99 with the crowd / p99 alone", Unit: report.Count, Value: p99c / p99a},
		report.Metric{Key: "e2e-p99-crowd", Label: "active end-to-end p99, with the crowd", Unit: report.Seconds, Value: crowd.e2e.Quantile(99).Seconds()},
		report.Metric{Key: "e2e-p99-alone", Label: "active end-to-end p99, alone", Unit: report.Seconds, Value: alone.e2e.Quantile(99).Seconds()},
		report.Metric{Key: "broker-rss-crowd", Label: "broker RSS peak under load, with the crowd", Unit: report.Bytes, Value: float64(crowd.brokerRSS)},
	)
	res.Notes = append(res.Notes, errorNotes(crowd)...)
	res.Notes = append(res.Notes, errorNotes(alone)...)
	return res, nil
}

// withCrowd opens the idle connections in steps on a fresh broker, recording
// its RSS after each, then runs the active load among them. The crowd and
// the broker are gone when it returns.
func (s *connScale) withCrowd(ctx context.Context, env *Env, active func(*Broker, string) (loadStats, error), res *Result) (crowd loadStats, err error) {
	b, err := env.Brokers.Broker(ctx, s.Name())
	if err != nil {
		return crowd, err
	}
	if b.PID <= 0 {
		b.Stop()
		return crowd, ErrNeedsManaged
	}
	var holders []*holder
	defer func() {
		for _, h := range holders {
			h.stop()
		}
		err = errors.Join(err, b.Stop())
	}()
	if err := sleepCtx(ctx, connSettle); err != nil {
		return crowd, err
	}
	rss0, err := proc.RSS(b.PID)
	if err != nil {
		return crowd, err
	}
	res.Metrics = append(res.Metrics, report.Metric{Key: "rss-0", Label: "broker RSS, no connections", Unit: report.Bytes, Value: float64(rss0)})
	held, rss := 0, rss0
	for i, n := range crowdSteps(env.Cfg.Conns, env.Cfg.ConnsPerProc) {
		start := time.Now()
		h, err := startHolder(ctx, b.Addr, n, i, "")
		if err != nil {
			return crowd, fmt.Errorf("after %d connections: %w", held, err)
		}
		holders = append(holders, h)
		held += n
		if err := sleepCtx(ctx, connSettle); err != nil {
			return crowd, err
		}
		if rss, err = proc.RSS(b.PID); err != nil {
			return crowd, err
		}
		env.Progress.Logf("%s %d idle connections (+%d in %s): broker RSS %s", progressLabel(s.Name(), env), held, n,
			time.Since(start).Round(time.Millisecond), report.Format(report.Bytes, float64(rss)))
		res.Metrics = append(res.Metrics,
			report.Metric{Key: fmt.Sprintf("conns-%d", i+1), Label: fmt.Sprintf("step %d: idle connections", i+1), Unit: report.Count, Value: float64(held)},
			report.Metric{Key: fmt.Sprintf("rss-%d", i+1), Label: fmt.Sprintf("step %d: broker RSS", i+1), Unit: report.Bytes, Value: float64(rss)})
	}
	res.Metrics = append(res.Metrics, report.Metric{Key: "bytes-per-conn", Label: "broker memory per idle connection (RSS delta / connections)",
		Unit: report.Count, Value: float64(rss-rss0) / float64(held)})
	crowd, err = active(b, "active, with crowd")
	return crowd, err
}
