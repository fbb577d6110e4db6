package scenario

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/bench/internal/stats"
)

const (
	// saslClients authenticate at once in security-sasl, each on a new
	// connection per authentication.
	saslClients = 64
	saslIOTO    = 10 * time.Second
	// aclUnrelated is how many ACLs security-acl adds that do not match
	// the benchmark's principal or resources.
	aclUnrelated = 1000
	// pacedRateDefault is the paced rate of security-acl and
	// metrics-produce without -rate or a peak from produce-acks-all in the
	// same round.
	pacedRateDefault = 50000
)

// saslMechs are the mechanisms security-sasl measures, in order.
var saslMechs = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// secSASL: SASL authentications per second.
type secSASL struct{}

func (s *secSASL) Name() string { return "security-sasl" }

func (s *secSASL) Describe(cfg Config) string {
	return fmt.Sprintf("SASL authentications per second on a SASL_PLAINTEXT listener (one user, from -sasl-users-file; SCRAM "+
		"with the broker's iteration count): %d clients at once, each in a loop opening a TCP connection, sending "+
		"SaslHandshake v1 and SaslAuthenticate v1 until the mechanism completes, and closing it (with a reset, so no "+
		"TIME_WAIT piles up). One mechanism at a time (%s), each for the warmup and then the measured window, on one "+
		"fresh broker per round. The benchmark's SCRAM client caches the salted password (PBKDF2) per salt and iteration "+
		"count, as a client reconnecting does, so its CPU is small beside the broker's; PLAIN makes the broker derive the "+
		"salted password from the one sent on every authentication. Latency runs from the connect to the last answer.",
		saslClients, strings.Join(saslMechs, ", "))
}

func (s *secSASL) Settings(Config) []report.KV {
	return []report.KV{{Key: "clients", Value: fmt.Sprint(saslClients)}, {Key: "mechanisms", Value: strings.Join(saslMechs, ", ")}}
}

func (s *secSASL) Close() error { return nil }

func (s *secSASL) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := saslBroker(ctx, env, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	for _, mech := range saslMechs {
		st, err := saslLoad(ctx, env, progressLabel(s.Name()+" "+mech, env), b, mech)
		if err != nil {
			return res, fmt.Errorf("%s: %w", mech, err)
		}
		key := strings.ToLower(mech)
		secs := st.window.Seconds()
		per := float64(st.n) / secs
		res.Metrics = append(res.Metrics,
			report.Metric{Key: "auths-" + key, Label: mech + " authentications", Unit: report.RecordsPerSec, Value: per},
			report.Metric{Key: "p50-" + key, Label: mech + " connect-to-authenticated p50", Unit: report.Seconds, Value: st.lat.Quantile(50).Seconds()},
			report.Metric{Key: "p99-" + key, Label: mech + " connect-to-authenticated p99", Unit: report.Seconds, Value: st.lat.Quantile(99).Seconds()},
			report.Metric{Key: "cpu-per-auth-" + key, Label: mech + " broker CPU per authentication", Unit: report.Seconds, Value: st.brokerCPU.Seconds() / float64(st.n)},
			report.Metric{Key: "broker-cpu-" + key, Label: mech + " broker CPU", Unit: report.Cores, Value: st.brokerCPU.Seconds() / secs},
			report.Metric{Key: "client-cpu-" + key, Label: mech + " bench client CPU", Unit: report.Cores, Value: st.clientCPU.Seconds() / secs},
		)
		if st.errs > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d, %s: %d failed authentications, first: %v", env.Round, mech, st.errs, st.firstErr))
		}
	}
	return res, nil
}

type saslStats struct {
	n, errs              int64
	firstErr             error
	window               time.Duration
	lat                  *stats.Hist
	brokerCPU, clientCPU time.Duration
}

// saslLoad runs saslClients authentication loops for warmup+duration and
// returns the measured window's figures.
func saslLoad(ctx context.Context, env *Env, label string, b *Broker, mech string) (saslStats, error) {
	st := saslStats{lat: stats.NewHist()}
	var (
		measuring atomic.Bool
		n, errs   atomic.Int64
		errOnce   sync.Once
		latMu     sync.Mutex
	)
	cl := &saslClient{mech: mech, user: secUser, pass: secPassword}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for i := range saslClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: saslIOTO, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(holderFirstOctet+50+i%16))}}
			for runCtx.Err() == nil {
				start := time.Now()
				err := cl.authenticate(runCtx, &d, b.Addr)
				if runCtx.Err() != nil {
					return
				}
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					errOnce.Do(func() { st.firstErr = err })
					continue
				}
				n.Add(1)
				latMu.Lock()
				st.lat.Record(time.Since(start))
				latMu.Unlock()
			}
		}()
	}
	if err := sleepCtx(ctx, env.Cfg.Warmup); err != nil {
		return st, err
	}
	cpu0, err := proc.CPU(b.PID)
	if err != nil {
		return st, err
	}
	own0, _ := proc.CPU(os.Getpid())
	t0 := time.Now()
	measuring.Store(true)
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	end := time.NewTimer(env.Cfg.Duration)
	defer end.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-tick.C:
			env.Progress.Update("%s %4.0fs  %s authentications, %d failed", label, time.Since(t0).Seconds(),
				report.Format(report.RecordsPerSec, float64(n.Load())/time.Since(t0).Seconds()), errs.Load())
		case <-end.C:
			break loop
		}
	}
	measuring.Store(false)
	st.window = time.Since(t0)
	cpu1, err := proc.CPU(b.PID)
	own1, _ := proc.CPU(os.Getpid())
	env.Progress.Done()
	stop()
	wg.Wait()
	st.n, st.errs, st.brokerCPU, st.clientCPU = n.Load(), errs.Load(), cpu1-cpu0, own1-own0
	if err != nil {
		return st, err
	}
	if st.n == 0 {
		return st, fmt.Errorf("no authentication succeeded (%d failed, first: %v)", st.errs, st.firstErr)
	}
	return st, nil
}

// saslClient authenticates one connection at a time with mech. SCRAM's
// salted password is derived once per salt and iteration count.
type saslClient struct {
	mech, user, pass string

	mu     sync.Mutex
	salted map[string][]byte // by salt and iterations
}

// authenticate connects, authenticates and closes with a reset.
func (s *saslClient) authenticate(ctx context.Context, d *net.Dialer, addr string) error {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer func() {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}()
	c.SetDeadline(time.Now().Add(saslIOTO))
	k := &kconn{c: c}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, s.mech
	hsr, err := k.do(hs)
	if err != nil {
		return err
	}
	if code := hsr.(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
		return fmt.Errorf("SaslHandshake: error %d", code)
	}
	step := func(b []byte) ([]byte, error) {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version, req.SASLAuthBytes = 1, b
		r, err := k.do(req)
		if err != nil {
			return nil, err
		}
		resp := r.(*kmsg.SASLAuthenticateResponse)
		if resp.ErrorCode != 0 {
			return nil, fmt.Errorf("SaslAuthenticate: error %d: %v", resp.ErrorCode, resp.ErrorMessage)
		}
		return resp.SASLAuthBytes, nil
	}
	if s.mech == "PLAIN" {
		_, err := step([]byte("\x00" + s.user + "\x00" + s.pass))
		return err
	}
	return s.scram(step)
}

// scram runs an RFC 5802 client exchange (no channel binding).
func (s *saslClient) scram(step func([]byte) ([]byte, error)) error {
	h := sha256.New
	if s.mech == "SCRAM-SHA-512" {
		h = sha512.New
	}
	var nb [18]byte
	rand.Read(nb[:])
	nonce := base64.StdEncoding.EncodeToString(nb[:])
	first := "n=" + s.user + ",r=" + nonce
	out, err := step([]byte("n,," + first))
	if err != nil {
		return err
	}
	serverFirst := string(out)
	var srvNonce, salt64, iters string
	for _, kv := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(kv, "r="):
			srvNonce = kv[2:]
		case strings.HasPrefix(kv, "s="):
			salt64 = kv[2:]
		case strings.HasPrefix(kv, "i="):
			iters = kv[2:]
		}
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	iter, ierr := strconv.Atoi(iters)
	if err != nil || ierr != nil || !strings.HasPrefix(srvNonce, nonce) {
		return fmt.Errorf("bad server-first-message %q", serverFirst)
	}
	salted, err := s.saltedPassword(h, salt, iter)
	if err != nil {
		return err
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(h, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	sum := h()
	sum.Write(clientKey)
	storedKey := sum.Sum(nil)
	finalBare := "c=biws,r=" + srvNonce
	authMsg := first + "," + serverFirst + "," + finalBare
	proof := mac(storedKey, authMsg)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	out, err = step([]byte(finalBare + ",p=" + base64.StdEncoding.EncodeToString(proof)))
	if err != nil {
		return err
	}
	want := "v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), authMsg))
	if !bytes.Equal(out, []byte(want)) {
		return fmt.Errorf("server signature %q does not verify", out)
	}
	return nil
}

func (s *saslClient) saltedPassword(h func() hash.Hash, salt []byte, iter int) ([]byte, error) {
	key := string(salt) + "/" + strconv.Itoa(iter)
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.salted[key]; ok {
		return b, nil
	}
	b, err := pbkdf2.Key(h, s.pass, salt, iter, h().Size())
	if err != nil {
		return nil, err
	}
	if s.salted == nil {
		s.salted = map[string][]byte{}
	}
	s.salted[key] = b
	return b, nil
}

// kconn sends one request at a time on a raw connection.
type kconn struct {
	c    net.Conn
	corr int32
	buf  []byte
}

var saslFormatter = kmsg.NewRequestFormatter(kmsg.FormatterClientID("klite-bench-sasl"))

func (k *kconn) do(req kmsg.Request) (kmsg.Response, error) {
	k.corr++
	k.buf = saslFormatter.AppendRequest(k.buf[:0], req, k.corr)
	if _, err := k.c.Write(k.buf); err != nil {
		return nil, err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(k.c, hdr[:]); err != nil {
		return nil, fmt.Errorf("%s answer: %w", kmsg.NameForKey(req.Key()), err)
	}
	size := int(binary.BigEndian.Uint32(hdr[:4]))
	if size < 4 || size > 1<<20 || int32(binary.BigEndian.Uint32(hdr[4:])) != k.corr {
		return nil, fmt.Errorf("%s answer: size %d, correlation id %d", kmsg.NameForKey(req.Key()), size, int32(binary.BigEndian.Uint32(hdr[4:])))
	}
	body := make([]byte, size-4)
	if _, err := io.ReadFull(k.c, body); err != nil {
		return nil, err
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && len(body) > 0 {
		body = body[1:] // the response header's empty tag buffer
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, err
	}
	return resp, nil
}

// secACL: produce with the authorizer on against off.
type secACL struct{}

func (s *secACL) Name() string { return "security-acl" }

func pacedRate(cfg Config, env *Env) float64 {
	switch {
	case cfg.Rate > 0:
		return cfg.Rate
	case env != nil && env.PeakRecords > 0:
		return env.PeakRecords / 2
	}
	return pacedRateDefault
}

func (s *secACL) Describe(cfg Config) string {
	return fmt.Sprintf("Produce with -authorizer on against off, on two fresh brokers per round, the order alternating by round. "+
		"The authorizer's broker (-authorizer -allow-everyone-if-no-acl) gets, in one CreateAcls request before the load, the "+
		"ACLs the benchmark's principal (User:ANONYMOUS on a PLAINTEXT listener) needs: ALL on topics prefixed bench-, "+
		"CREATE, DESCRIBE and IDEMPOTENT_WRITE on the cluster; and %d unrelated ones (other users, literal topics, prefixed "+
		"topics and groups), so every check goes through a populated ACL set. On each broker: %d producer clients as fast as "+
		"they go with acks=1 (peak), then acks=all paced at -rate, else half the round's acks=all peak, else %s, for the p99 "+
		"(latency from each record's due time). The ratios are on / off of the same round.",
		aclUnrelated, cfg.Producers, report.Format(report.RecordsPerSec, pacedRateDefault))
}

func (s *secACL) Settings(cfg Config) []report.KV {
	return append(loadSettings(cfg, "1 (peak), all (paced)"),
		report.KV{Key: "unrelated ACLs", Value: fmt.Sprint(aclUnrelated)})
}

func (s *secACL) Close() error { return nil }

func (s *secACL) Run(ctx context.Context, env *Env) (res Result, err error) {
	if env.Brokers.Managed() == nil {
		return res, ErrNeedsManaged
	}
	rate := pacedRate(env.Cfg, env)
	type figures struct{ peak, p50, p99, achieved, cpuGB float64 }
	got := map[string]figures{}
	for _, mode := range sides(env, "off", "on") {
		var args []string
		if mode == "on" {
			args = []string{"-authorizer", "-allow-everyone-if-no-acl"}
		}
		fig, err := func() (fig figures, err error) {
			b, err := secBroker(ctx, env, s.Name()+"-"+mode, args, "authorizer")
			if err != nil {
				return fig, err
			}
			defer func() { err = errors.Join(err, b.Stop()) }()
			if mode == "on" {
				if err := createBenchACLs(ctx, b.Addr); err != nil {
					return fig, err
				}
			}
			st, err := runLoad(ctx, env, loadSpec{
				label: progressLabel(s.Name()+" peak, authorizer "+mode, env), addr: b.Addr, topic: topicName(s.Name()+"-peak", env),
				partitions: env.Cfg.Partitions, acks: "1", producers: env.Cfg.Producers, warmup: env.Cfg.Warmup, duration: env.Cfg.Duration,
				brokerPID: b.PID,
			})
			if err != nil {
				return fig, err
			}
			res.Notes = append(res.Notes, errorNotes(st)...)
			fig.peak = float64(st.prodBytes) / st.window.Seconds()
			fig.cpuGB = st.brokerCPU.Seconds() / (float64(st.prodBytes) / 1e9)
			pt, err := runLoad(ctx, env, loadSpec{
				label: progressLabel(s.Name()+" paced, authorizer "+mode, env), addr: b.Addr, topic: topicName(s.Name()+"-paced", env),
				partitions: env.Cfg.Partitions, acks: "all", rate: rate, producers: env.Cfg.Producers, warmup: env.Cfg.Warmup,
				duration: env.Cfg.Duration, brokerPID: b.PID,
			})
			if err != nil {
				return fig, err
			}
			res.Notes = append(res.Notes, errorNotes(pt)...)
			fig.p50, fig.p99 = pt.lat.Quantile(50).Seconds(), pt.lat.Quantile(99).Seconds()
			fig.achieved = float64(pt.prodRecords) / pt.window.Seconds()
			return fig, nil
		}()
		if err != nil {
			return res, fmt.Errorf("authorizer %s: %w", mode, err)
		}
		got[mode] = fig
	}
	off, on := got["off"], got["on"]
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "p99-ratio", Label: "paced produce p99, authorizer on / off", Unit: report.Count, Value: on.p99 / off.p99},
		report.Metric{Key: "peak-ratio", Label: "peak produce throughput, authorizer on / off", Unit: report.Fraction, Value: on.peak / off.peak},
		report.Metric{Key: "rate", Label: "paced rate (acks=all)", Unit: report.RecordsPerSec, Value: rate},
		report.Metric{Key: "p99-off", Label: "paced produce p99, authorizer off", Unit: report.Seconds, Value: off.p99, Limits: []report.Limit{twiceFsyncP99(env.Limits)}},
		report.Metric{Key: "p99-on", Label: "paced produce p99, authorizer on", Unit: report.Seconds, Value: on.p99, Limits: []report.Limit{twiceFsyncP99(env.Limits)}},
		report.Metric{Key: "p50-off", Label: "paced produce p50, authorizer off", Unit: report.Seconds, Value: off.p50},
		report.Metric{Key: "p50-on", Label: "paced produce p50, authorizer on", Unit: report.Seconds, Value: on.p50},
		report.Metric{Key: "achieved-off", Label: "paced achieved rate, authorizer off", Unit: report.RecordsPerSec, Value: off.achieved},
		report.Metric{Key: "achieved-on", Label: "paced achieved rate, authorizer on", Unit: report.RecordsPerSec, Value: on.achieved},
		report.Metric{Key: "peak-off", Label: "peak produce throughput (acks=1), authorizer off", Unit: report.BytesPerSec, Value: off.peak},
		report.Metric{Key: "peak-on", Label: "peak produce throughput (acks=1), authorizer on", Unit: report.BytesPerSec, Value: on.peak},
		report.Metric{Key: "cpu-per-gb-off", Label: "broker CPU per GB at peak, authorizer off", Unit: report.CPUPerGB, Value: off.cpuGB},
		report.Metric{Key: "cpu-per-gb-on", Label: "broker CPU per GB at peak, authorizer on", Unit: report.CPUPerGB, Value: on.cpuGB},
	)
	return res, nil
}

// createBenchACLs gives User:ANONYMOUS what the load needs and adds
// aclUnrelated ACLs that match neither it nor its topics, in one request.
func createBenchACLs(ctx context.Context, addr string) error {
	const me = "User:ANONYMOUS"
	acl := func(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal string, op kmsg.ACLOperation) kmsg.CreateACLsRequestCreation {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = rt, name, pt
		c.Principal, c.Host, c.Operation, c.PermissionType = principal, "*", op, kmsg.ACLPermissionTypeAllow
		return c
	}
	req := kmsg.NewPtrCreateACLsRequest()
	req.Version = 2
	req.Creations = append(req.Creations,
		acl(kmsg.ACLResourceTypeTopic, "bench-", kmsg.ACLResourcePatternTypePrefixed, me, kmsg.ACLOperationAll),
		acl(kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLResourcePatternTypeLiteral, me, kmsg.ACLOperationCreate),
		acl(kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLResourcePatternTypeLiteral, me, kmsg.ACLOperationDescribe),
		acl(kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLResourcePatternTypeLiteral, me, kmsg.ACLOperationIdempotentWrite),
	)
	for i := range aclUnrelated {
		user := fmt.Sprintf("User:svc-%d", i)
		switch i % 4 {
		case 0, 1:
			req.Creations = append(req.Creations, acl(kmsg.ACLResourceTypeTopic, fmt.Sprintf("app-%d", i), kmsg.ACLResourcePatternTypeLiteral, user, kmsg.ACLOperationWrite))
		case 2:
			req.Creations = append(req.Creations, acl(kmsg.ACLResourceTypeTopic, fmt.Sprintf("team-%d-", i), kmsg.ACLResourcePatternTypePrefixed, user, kmsg.ACLOperationRead))
		default:
			req.Creations = append(req.Creations, acl(kmsg.ACLResourceTypeGroup, fmt.Sprintf("grp-%d", i), kmsg.ACLResourcePatternTypeLiteral, user, kmsg.ACLOperationRead))
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("klite-bench-admin"))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("CreateAcls: %w", err)
	}
	for i, r := range resp.Results {
		if r.ErrorCode != 0 {
			return fmt.Errorf("CreateAcls: creation %d: error %d: %v", i, r.ErrorCode, r.ErrorMessage)
		}
	}
	if len(resp.Results) != len(req.Creations) {
		return fmt.Errorf("CreateAcls: %d results for %d creations", len(resp.Results), len(req.Creations))
	}
	return nil
}
