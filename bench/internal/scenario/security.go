package scenario

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/internal/testcerts"
)

// The security group (-scenario security): what TLS, SASL and ACLs cost,
// each against the same thing without them, measured in the same run on
// fresh brokers (the two sides alternate order by round, so order effects
// do not always land on one side).

const (
	// secFetchBytes is the backlog security-tls reads back (quick: half).
	secFetchBytes = 500e6
	// secUser and secPassword are the SASL user the group's brokers know.
	secUser     = "bench"
	secPassword = "bench-secret-password"
)

// secFiles are the certificates and users file the group's brokers use,
// generated once per scratch directory (nothing secret is committed).
type secFiles struct {
	caFile, certFile, keyFile, usersFile string
	pool                                 *x509.CertPool
}

var (
	secMu    sync.Mutex
	secByDir = map[string]*secFiles{}
)

// securityFiles returns the group's files in dir, making them on first use.
// Against an external broker it returns ErrNeedsManaged: the group starts
// its brokers with flags of its own.
func securityFiles(env *Env) (*secFiles, error) {
	if env.Brokers.Managed() == nil {
		return nil, ErrNeedsManaged
	}
	dir := env.ScratchDir
	secMu.Lock()
	defer secMu.Unlock()
	if f, ok := secByDir[dir]; ok {
		return f, nil
	}
	ca, err := testcerts.MakeCA("klite-bench CA")
	if err != nil {
		return nil, err
	}
	srv, err := ca.MakeServer("klite-bench")
	if err != nil {
		return nil, err
	}
	// Files, not a directory: the scratch directory's subdirectories are WALs.
	p := filepath.Join(dir, "security-")
	f := &secFiles{caFile: p + "ca.crt", certFile: p + "server.crt", keyFile: p + "server.key", usersFile: p + "users", pool: ca.Pool()}
	for _, w := range []struct {
		path string
		b    []byte
	}{{f.caFile, ca.PEM}, {f.certFile, srv.CertPEM}, {f.keyFile, srv.KeyPEM}, {f.usersFile, []byte(secUser + ":" + secPassword + "\n")}} {
		if err := os.WriteFile(w.path, w.b, 0o600); err != nil {
			return nil, err
		}
	}
	secByDir[dir] = f
	return f, nil
}

// secBroker starts a fresh klite with the scenario's flags, or tells why it
// cannot: an external broker (ErrNeedsManaged), a klite without the flags.
func secBroker(ctx context.Context, env *Env, name string, args []string, needFlags ...string) (*Broker, error) {
	m := env.Brokers.Managed()
	if m == nil {
		return nil, ErrNeedsManaged
	}
	if len(needFlags) > 0 {
		missing, err := m.MissingFlags(ctx, needFlags...)
		if err != nil {
			return nil, err
		}
		if len(missing) > 0 {
			return nil, &SkipError{Reason: fmt.Sprintf("klite -h does not list %v (issue 11)", missing)}
		}
	}
	return m.BrokerWith(ctx, name, args, nil)
}

// saslBroker starts a fresh klite whose one listener is SASL_PLAINTEXT,
// with the group's users file.
func saslBroker(ctx context.Context, env *Env, name string) (*Broker, error) {
	f, err := securityFiles(env)
	if err != nil {
		return nil, err
	}
	return secBroker(ctx, env, name, []string{"-listen", "SASL_PLAINTEXT://127.0.0.1:0", "-sasl-users-file", f.usersFile}, "sasl-users-file")
}

// tlsArgs are the flags of a broker whose one listener is SSL.
func tlsArgs(f *secFiles) []string {
	return []string{"-listen", "SSL://127.0.0.1:0", "-tls-cert", f.certFile, "-tls-key", f.keyFile}
}

// sides orders the two sides of a comparison: a then b in odd rounds, b
// then a in even ones.
func sides(env *Env, a, b string) []string {
	if env.Round%2 == 0 {
		return []string{b, a}
	}
	return []string{a, b}
}

// secTLS: produce and fetch throughput over TLS against plaintext.
type secTLS struct{}

func (s *secTLS) Name() string { return "security-tls" }

func fetchBacklog(cfg Config) int64 {
	if cfg.Quick {
		return secFetchBytes / 2
	}
	return secFetchBytes
}

func (s *secTLS) Describe(cfg Config) string {
	return fmt.Sprintf("TLS against plaintext, on two fresh brokers per round (one PLAINTEXT listener; one SSL listener, TLS 1.3 "+
		"with Go's default ciphers and key exchange, ECDSA P-256 certificate made by the benchmark), the order alternating by round. "+
		"On each: %d producer clients send %d-byte records with acks=1 as fast as they go (acks=1, so the disk does not hide "+
		"what encryption costs); then %d consumer clients read the first %s of that topic back from offset 0 (plaintext "+
		"fetches use sendfile, TLS ones read the segments and encrypt). The ratios are TLS / plaintext of the same round.",
		cfg.Producers, cfg.RecordSize, cfg.Consumers, report.Format(report.Bytes, float64(fetchBacklog(cfg))))
}

func (s *secTLS) Settings(cfg Config) []report.KV {
	return append(loadSettings(cfg, "1"),
		report.KV{Key: "consumers", Value: fmt.Sprint(cfg.Consumers)},
		report.KV{Key: "fetch backlog", Value: report.Format(report.Bytes, float64(fetchBacklog(cfg)))})
}

func (s *secTLS) Close() error { return nil }

func (s *secTLS) Run(ctx context.Context, env *Env) (res Result, err error) {
	f, err := securityFiles(env)
	if err != nil {
		return res, err
	}
	type figures struct{ produce, fetch, produceCPU, fetchCPU float64 }
	got := map[string]figures{}
	for _, mode := range sides(env, "plaintext", "tls") {
		var args []string
		var opts []kgo.Opt
		if mode == "tls" {
			args = tlsArgs(f)
			opts = []kgo.Opt{kgo.DialTLSConfig(&tls.Config{RootCAs: f.pool})}
		}
		fig, err := func() (fig figures, err error) {
			b, err := secBroker(ctx, env, s.Name()+"-"+mode, args, "tls-cert")
			if err != nil {
				return fig, err
			}
			defer func() { err = errors.Join(err, b.Stop()) }()
			topic := topicName(s.Name(), env)
			st, err := runLoad(ctx, env, loadSpec{
				label: progressLabel(s.Name()+" produce "+mode, env), addr: b.Addr, topic: topic, partitions: env.Cfg.Partitions,
				acks: "1", producers: env.Cfg.Producers, warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID,
				clientOpts: opts,
			})
			if err != nil {
				return fig, err
			}
			res.Notes = append(res.Notes, errorNotes(st)...)
			fig.produce = float64(st.prodBytes) / st.window.Seconds()
			fig.produceCPU = st.brokerCPU.Seconds() / (float64(st.prodBytes) / 1e9)
			target := min(st.totalRecords, fetchBacklog(env.Cfg)/int64(env.Cfg.RecordSize))
			ft, err := runLoad(ctx, env, loadSpec{
				label: progressLabel(s.Name()+" fetch "+mode, env), addr: b.Addr, topic: topic, partitions: env.Cfg.Partitions,
				existingTopic: true, consumers: env.Cfg.Consumers, fetchTarget: target, duration: catchupTimeout, brokerPID: b.PID,
				clientOpts: opts,
			})
			if err != nil {
				return fig, err
			}
			res.Notes = append(res.Notes, errorNotes(ft)...)
			if ft.fetchRecords < target {
				res.Notes = append(res.Notes, fmt.Sprintf("round %d, %s: consumers read %d of %d records within %s", env.Round, mode, ft.fetchRecords, target, catchupTimeout))
			}
			fig.fetch = float64(ft.fetchBytes) / ft.window.Seconds()
			fig.fetchCPU = ft.brokerCPU.Seconds() / (float64(ft.fetchBytes) / 1e9)
			return fig, nil
		}()
		if err != nil {
			return res, fmt.Errorf("%s: %w", mode, err)
		}
		got[mode] = fig
	}
	p, t := got["plaintext"], got["tls"]
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "produce-ratio", Label: "produce throughput, TLS / plaintext", Unit: report.Fraction, Value: t.produce / p.produce},
		report.Metric{Key: "fetch-ratio", Label: "fetch throughput, TLS / plaintext", Unit: report.Fraction, Value: t.fetch / p.fetch},
		report.Metric{Key: "produce-plain", Label: "produce throughput (acks=1), plaintext", Unit: report.BytesPerSec, Value: p.produce,
			Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "produce-tls", Label: "produce throughput (acks=1), TLS", Unit: report.BytesPerSec, Value: t.produce,
			Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "fetch-plain", Label: "fetch throughput, plaintext", Unit: report.BytesPerSec, Value: p.fetch,
			Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "fetch-tls", Label: "fetch throughput, TLS", Unit: report.BytesPerSec, Value: t.fetch,
			Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "produce-cpu-plain", Label: "broker CPU per GB produced, plaintext", Unit: report.CPUPerGB, Value: p.produceCPU},
		report.Metric{Key: "produce-cpu-tls", Label: "broker CPU per GB produced, TLS", Unit: report.CPUPerGB, Value: t.produceCPU},
		report.Metric{Key: "fetch-cpu-plain", Label: "broker CPU per GB fetched, plaintext", Unit: report.CPUPerGB, Value: p.fetchCPU},
		report.Metric{Key: "fetch-cpu-tls", Label: "broker CPU per GB fetched, TLS", Unit: report.CPUPerGB, Value: t.fetchCPU},
	)
	return res, nil
}

// secTLSIdle: broker memory per idle TLS connection against plaintext.
type secTLSIdle struct{}

func (s *secTLSIdle) Name() string { return "security-tls-idle" }

func (s *secTLSIdle) Describe(cfg Config) string {
	return fmt.Sprintf("Memory per idle TLS connection: %d idle connections held by child processes of the benchmark (as in "+
		"connections, at most %d each), each sending one ApiVersions request and then staying silent, on a fresh broker "+
		"with a PLAINTEXT listener and on one with an SSL listener (TLS 1.3, the handshake done before the request), the "+
		"order alternating by round. Memory per connection is (RSS with the connections - RSS before) / connections, RSS "+
		"read %s after the last holder is ready; the ratio is TLS / plaintext of the same round. RSS includes the Go "+
		"heap's headroom (with GOGC=100 the heap may grow to twice what is live before a collection), so the broker's "+
		"live heap plus goroutine stacks after a forced collection (from its -pprof-addr: /debug/pprof/heap?gc=1) is "+
		"given per connection too.",
		cfg.TLSConns, cfg.ConnsPerProc, connSettle)
}

func (s *secTLSIdle) Settings(cfg Config) []report.KV {
	return []report.KV{
		{Key: "idle connections", Value: fmt.Sprint(cfg.TLSConns)},
		{Key: "per holder process", Value: fmt.Sprint(cfg.ConnsPerProc)},
	}
}

func (s *secTLSIdle) Close() error { return nil }

func (s *secTLSIdle) Run(ctx context.Context, env *Env) (res Result, err error) {
	if env.Cfg.TLSConns <= 0 {
		return res, errors.New("scenario: security-tls-idle needs -tls-conns > 0")
	}
	f, err := securityFiles(env)
	if err != nil {
		return res, err
	}
	rss, live := map[string]float64{}, map[string]float64{}
	for _, mode := range sides(env, "plaintext", "tls") {
		var args []string
		ca := ""
		if mode == "tls" {
			args, ca = tlsArgs(f), f.caFile
		}
		r, l, err := s.hold(ctx, env, mode, args, ca)
		if err != nil {
			return res, fmt.Errorf("%s: %w", mode, err)
		}
		rss[mode], live[mode] = r, l
	}
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "bytes-per-conn-plain", Label: "broker memory per idle connection, plaintext (RSS delta / connections)", Unit: report.Count, Value: rss["plaintext"]},
		report.Metric{Key: "bytes-per-conn-tls", Label: "broker memory per idle connection, TLS (RSS delta / connections)", Unit: report.Count, Value: rss["tls"]},
		report.Metric{Key: "tls-ratio", Label: "memory per idle connection, TLS / plaintext", Unit: report.Count, Value: rss["tls"] / rss["plaintext"]},
	)
	if live["plaintext"] > 0 && live["tls"] > 0 {
		res.Metrics = append(res.Metrics,
			report.Metric{Key: "live-per-conn-plain", Label: "live heap + stacks per idle connection, plaintext", Unit: report.Count, Value: live["plaintext"]},
			report.Metric{Key: "live-per-conn-tls", Label: "live heap + stacks per idle connection, TLS", Unit: report.Count, Value: live["tls"]},
			report.Metric{Key: "live-ratio", Label: "live heap + stacks per idle connection, TLS / plaintext", Unit: report.Count, Value: live["tls"] / live["plaintext"]},
		)
	}
	return res, nil
}

// liveHeap is the broker's heap in use after a forced collection plus its
// goroutine stacks, read from its pprof endpoint at addr.
func liveHeap(ctx context.Context, addr string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/heap?gc=1&debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var heap, stack int64 = -1, -1
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "# HeapAlloc = "); ok {
			heap, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
		if v, ok := strings.CutPrefix(l, "# Stack = "); ok { // "inuse / sys"
			inuse, _, _ := strings.Cut(v, " / ")
			stack, _ = strconv.ParseInt(strings.TrimSpace(inuse), 10, 64)
		}
	}
	if heap < 0 || stack < 0 {
		return 0, fmt.Errorf("scenario: no HeapAlloc or Stack line in %s's heap profile", addr)
	}
	return heap + stack, nil
}

// freePort returns a loopback address no one listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// hold opens the idle connections on a fresh broker and returns its RSS
// growth per connection and, when the broker has -pprof-addr, its live
// heap's (0 otherwise).
func (s *secTLSIdle) hold(ctx context.Context, env *Env, mode string, args []string, caFile string) (perConn, livePer float64, err error) {
	pprof := ""
	if missing, err := env.Brokers.Managed().MissingFlags(ctx, "pprof-addr"); err == nil && len(missing) == 0 {
		if pprof, err = freePort(); err != nil {
			return 0, 0, err
		}
		args = append(slices.Clone(args), "-pprof-addr", pprof)
	}
	b, err := secBroker(ctx, env, s.Name()+"-"+mode, args, "tls-cert")
	if err != nil {
		return 0, 0, err
	}
	var holders []*holder
	defer func() {
		for _, h := range holders {
			h.stop()
		}
		err = errors.Join(err, b.Stop())
	}()
	if err := sleepCtx(ctx, connSettle); err != nil {
		return 0, 0, err
	}
	rss0, err := proc.RSS(b.PID)
	if err != nil {
		return 0, 0, err
	}
	var live0, live int64
	if pprof != "" {
		if live0, err = liveHeap(ctx, pprof); err != nil {
			return 0, 0, err
		}
	}
	start, held := time.Now(), 0
	for i, n := range crowdSteps(env.Cfg.TLSConns, env.Cfg.ConnsPerProc) {
		h, err := startHolder(ctx, b.Addr, n, i, caFile)
		if err != nil {
			return 0, 0, fmt.Errorf("after %d connections: %w", held, err)
		}
		holders = append(holders, h)
		held += n
	}
	if err := sleepCtx(ctx, connSettle); err != nil {
		return 0, 0, err
	}
	rss, err := proc.RSS(b.PID)
	if err != nil {
		return 0, 0, err
	}
	if pprof != "" { // after RSS: the forced collection would lower it
		if live, err = liveHeap(ctx, pprof); err != nil {
			return 0, 0, err
		}
		livePer = float64(live-live0) / float64(held)
	}
	env.Progress.Logf("%s %d idle %s connections in %s: broker RSS %s -> %s, live heap + stacks %s -> %s", progressLabel(s.Name(), env), held, mode,
		time.Since(start).Round(time.Millisecond), report.Format(report.Bytes, float64(rss0)), report.Format(report.Bytes, float64(rss)),
		report.Format(report.Bytes, float64(live0)), report.Format(report.Bytes, float64(live)))
	return float64(rss-rss0) / float64(held), livePer, nil
}
