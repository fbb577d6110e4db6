package scenario

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/bench/internal/stats"
)

const (
	// floodClients send wrong PLAIN passwords at once in
	// security-plain-flood, each on a new connection per attempt, from
	// floodAddrs source addresses.
	floodClients = 200
	floodAddrs   = 8
	// floodRate is the paced producer's rate: low, so its latency shows
	// what the flood costs it, not what the disk does.
	floodRate = 2000
	// loginEvery paces the legitimate login loop (a missed tick is
	// skipped), so its own key derivations cost the broker little.
	loginEvery = 50 * time.Millisecond
)

// secPlainFlood: a flood of wrong PLAIN passwords against a producer and a
// legitimate PLAIN login.
type secPlainFlood struct{}

func (s *secPlainFlood) Name() string { return "security-plain-flood" }

func (s *secPlainFlood) Describe(cfg Config) string {
	return fmt.Sprintf("Hostile clients against authentication (issue 11): on one SASL_PLAINTEXT listener, a paced acks=all "+
		"producer (%d clients, %s in all, SCRAM-SHA-256, authenticated once) and one client logging in with PLAIN and the "+
		"right password every %s or as soon as its last login ended (new connection each time, from its own source address), first alone (quiet), then while "+
		"%d clients from %d other source addresses each loop opening a connection, sending a PLAIN token with a wrong "+
		"password and waiting for the failure (PLAIN makes the broker derive a key from every password sent: milliseconds "+
		"of CPU each). Figures: the producer's p99 and the login's p50 in both phases, the broker's CPU, and the wrong "+
		"passwords the broker answered per second (bounded by design: -sasl-max-concurrent-verifications and "+
		"-sasl-failed-auth-delay, where the broker has them).",
		cfg.Producers, report.Format(report.RecordsPerSec, floodRate), loginEvery, floodClients, floodAddrs)
}

func (s *secPlainFlood) Settings(cfg Config) []report.KV {
	return []report.KV{{Key: "flood clients", Value: fmt.Sprint(floodClients)}, {Key: "flood source addresses", Value: fmt.Sprint(floodAddrs)},
		{Key: "producer rate", Value: report.Format(report.RecordsPerSec, floodRate)}}
}

func (s *secPlainFlood) Close() error { return nil }

type floodPhase struct {
	p50, p99, brokerCPU  float64
	benchCPU, otherCPU   float64 // cores: this process (producer, login, flood), the rest of the machine
	loginP50, loginP99   float64
	logins, bad, badErrs float64
}

func (s *secPlainFlood) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := saslBroker(ctx, env, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	mech := scram.Auth{User: secUser, Pass: secPassword}.AsSha256Mechanism()
	opts := []kgo.Opt{kgo.SASL(mech)}
	got := map[string]floodPhase{}
	for _, phase := range []string{"quiet", "flood"} {
		ph, err := s.phase(ctx, env, b, opts, phase == "flood")
		if err != nil {
			return res, fmt.Errorf("%s: %w", phase, err)
		}
		got[phase] = ph
		if ph.badErrs > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d, %s: %.0f flood attempts ended without an answer (a close or a timeout)", env.Round, phase, ph.badErrs))
		}
	}
	q, fl := got["quiet"], got["flood"]
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "p99-ratio", Label: "producer p99, flood / quiet", Unit: report.Count, Value: fl.p99 / q.p99},
		report.Metric{Key: "login-ratio", Label: "legitimate PLAIN login p50, flood / quiet", Unit: report.Count, Value: fl.loginP50 / q.loginP50},
		report.Metric{Key: "p99-quiet", Label: "producer p99, quiet", Unit: report.Seconds, Value: q.p99},
		report.Metric{Key: "p99-flood", Label: "producer p99, flood", Unit: report.Seconds, Value: fl.p99},
		report.Metric{Key: "p50-flood", Label: "producer p50, flood", Unit: report.Seconds, Value: fl.p50},
		report.Metric{Key: "login-p50-quiet", Label: "legitimate PLAIN login p50, quiet", Unit: report.Seconds, Value: q.loginP50},
		report.Metric{Key: "login-p50-flood", Label: "legitimate PLAIN login p50, flood", Unit: report.Seconds, Value: fl.loginP50},
		report.Metric{Key: "login-p99-flood", Label: "legitimate PLAIN login p99, flood", Unit: report.Seconds, Value: fl.loginP99},
		report.Metric{Key: "logins-flood", Label: "legitimate PLAIN logins, flood", Unit: report.RecordsPerSec, Value: fl.logins},
		report.Metric{Key: "bad-per-sec", Label: "wrong PLAIN passwords answered, flood", Unit: report.RecordsPerSec, Value: fl.bad},
		report.Metric{Key: "broker-cpu-quiet", Label: "broker CPU, quiet", Unit: report.Cores, Value: q.brokerCPU},
		report.Metric{Key: "broker-cpu-flood", Label: "broker CPU, flood", Unit: report.Cores, Value: fl.brokerCPU},
		report.Metric{Key: "bench-cpu-flood", Label: "bench CPU (producer, login, flood clients), flood", Unit: report.Cores, Value: fl.benchCPU},
		report.Metric{Key: "other-cpu-flood", Label: "other CPU on the machine, flood", Unit: report.Cores, Value: fl.otherCPU},
	)
	return res, nil
}

// phase runs the paced producer and the login loop, with the flood when
// flood is set, for warmup+duration.
func (s *secPlainFlood) phase(ctx context.Context, env *Env, b *Broker, opts []kgo.Opt, flood bool) (floodPhase, error) {
	var ph floodPhase
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg                 sync.WaitGroup
		measuring          atomic.Bool
		bad, badErrs, oks  atomic.Int64
		accepted           atomic.Bool // a wrong password authenticated
		latMu              sync.Mutex
		loginLat           = stats.NewHist()
		loginErr           error
		loginErrs          atomic.Int64
		firstLoginErrOnce  sync.Once
		good               = &saslClient{mech: "PLAIN", user: secUser, pass: secPassword}
		wrong              = &saslClient{mech: "PLAIN", user: secUser, pass: "not-the-password"}
		floodOctet         = byte(holderFirstOctet + 80)
		loginAddr          = net.IPv4(127, 0, 0, byte(holderFirstOctet+79))
		windowStart        time.Time
		windowStartNoted   sync.Once
		floodCount0, oks0  int64
		noteWindowFromLoad = func() {
			windowStart = time.Now()
			floodCount0, oks0 = bad.Load(), oks.Load()
			measuring.Store(true)
		}
	)
	if flood {
		for i := range floodClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := net.Dialer{Timeout: saslIOTO, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, floodOctet+byte(i%floodAddrs))}}
				for runCtx.Err() == nil {
					err := wrong.authenticate(runCtx, &d, b.Addr)
					if runCtx.Err() != nil {
						return
					}
					var ne net.Error
					switch {
					case err == nil:
						accepted.Store(true)
						return
					case errors.As(err, &ne) || errors.Is(err, net.ErrClosed):
						badErrs.Add(1)
					default:
						bad.Add(1)
					}
				}
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d := net.Dialer{Timeout: saslIOTO, LocalAddr: &net.TCPAddr{IP: loginAddr}}
		tick := time.NewTicker(loginEvery)
		defer tick.Stop()
		for runCtx.Err() == nil {
			select {
			case <-tick.C:
			case <-runCtx.Done():
				return
			}
			start := time.Now()
			err := good.authenticate(runCtx, &d, b.Addr)
			if runCtx.Err() != nil {
				return
			}
			if err != nil {
				loginErrs.Add(1)
				firstLoginErrOnce.Do(func() { loginErr = err })
				continue
			}
			oks.Add(1)
			if measuring.Load() {
				latMu.Lock()
				loginLat.Record(time.Since(start))
				latMu.Unlock()
			}
		}
	}()
	// The window of the login loop and the flood follows runLoad's: it
	// starts after the warmup.
	go func() {
		select {
		case <-time.After(env.Cfg.Warmup):
			windowStartNoted.Do(noteWindowFromLoad)
		case <-runCtx.Done():
		}
	}()
	name := "quiet"
	if flood {
		name = "flood"
	}
	st, err := runLoad(ctx, env, loadSpec{
		label: progressLabel(s.Name()+" "+name, env), addr: b.Addr, topic: topicName(s.Name()+"-"+name, env),
		partitions: env.Cfg.Partitions, acks: "all", rate: floodRate, producers: env.Cfg.Producers,
		warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID, clientOpts: opts,
	})
	windowStartNoted.Do(noteWindowFromLoad)
	measuring.Store(false)
	win := time.Since(windowStart).Seconds()
	ph.bad = float64(bad.Load()-floodCount0) / win
	ph.logins = float64(oks.Load()-oks0) / win
	stop()
	wg.Wait()
	if err != nil {
		return ph, err
	}
	if accepted.Load() {
		return ph, errors.New("the broker accepted a wrong PLAIN password")
	}
	if loginLat.Count() == 0 {
		return ph, fmt.Errorf("no legitimate PLAIN login succeeded (%d failed, first: %v)", loginErrs.Load(), loginErr)
	}
	ph.p50, ph.p99 = st.lat.Quantile(50).Seconds(), st.lat.Quantile(99).Seconds()
	ph.brokerCPU = st.brokerCPU.Seconds() / st.window.Seconds()
	ph.benchCPU = st.clientCPU.Seconds() / st.window.Seconds()
	ph.otherCPU = st.otherCPU.Seconds() / st.window.Seconds()
	ph.loginP50, ph.loginP99 = loginLat.Quantile(50).Seconds(), loginLat.Quantile(99).Seconds()
	ph.badErrs = float64(badErrs.Load())
	return ph, nil
}
