package scenario

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
)

// fetchSessionSavings: what fetch sessions (KIP-227) save for a consumer of
// many partitions idling at the tail. One franz-go consumer with sessions
// (its default) and one with kgo.DisableFetchSessions take turns on the same
// broker in the same run (the order alternates by round), each alone, so
// the broker's CPU over its window is its own. Without a session every
// fetch lists every partition; with one, an idle consumer's fetch lists
// none, and the broker still reads and watches every partition of the
// session.
type fetchSessionSavings struct {
	partitions int // 0: fetchSessionsParts
}

const (
	fetchSessionsParts = 1000
	// fetchSessionsWait is the consumers' FetchMaxWait, franz-go's least:
	// idle fetches come as often as they can, so the broker's CPU per
	// fetch rests on many fetches.
	fetchSessionsWait = 10 * time.Millisecond
)

func (s *fetchSessionSavings) parts() int {
	if s.partitions > 0 {
		return s.partitions
	}
	return fetchSessionsParts
}

func (s *fetchSessionSavings) Name() string { return "fetch-sessions" }

func (s *fetchSessionSavings) Describe(cfg Config) string {
	return fmt.Sprintf("Fetch sessions (KIP-227): one franz-go consumer of a topic of %d empty partitions, idle at the tail "+
		"(FetchMaxWait %s, no group), with fetch sessions and then without (kgo.DisableFetchSessions), or the other way "+
		"round in even rounds, each alone on the broker for %s after %s of warmup. Bytes are the Fetch requests and "+
		"responses as written and read by the client (kgo hooks), per fetch; broker CPU per fetch is the broker's "+
		"utime+stime over the window divided by the fetches in it (it includes the broker's idle CPU, measured alone "+
		"first over the same time).", s.parts(), fetchSessionsWait, cfg.Duration, cfg.Warmup)
}

func (s *fetchSessionSavings) Settings(cfg Config) []report.KV {
	return []report.KV{
		{Key: "partitions", Value: fmt.Sprint(s.parts())},
		{Key: "fetch max wait", Value: fetchSessionsWait.String()},
	}
}

func (s *fetchSessionSavings) Close() error { return nil }

// fetchCounter counts Fetch requests and their bytes from kgo's hooks.
type fetchCounter struct {
	reqs, reqBytes, respBytes atomic.Int64
}

func (h *fetchCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		h.reqs.Add(1)
		h.reqBytes.Add(int64(n))
	}
}

func (h *fetchCounter) OnBrokerRead(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		h.respBytes.Add(int64(n))
	}
}

// idleFetches is one consumer's window.
type idleFetches struct {
	fetches             int64
	reqBytes, respBytes float64       // per fetch
	cpu                 time.Duration // broker CPU per fetch; 0 without a pid
	perSec              float64
}

func (s *fetchSessionSavings) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := env.Brokers.Broker(ctx, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	topic := topicName(s.Name(), env)
	if err := createTopic(ctx, b.Addr, topic, s.parts()); err != nil {
		return res, err
	}
	var idleCPU float64 // broker cores with no clients
	if b.PID > 0 {
		c0, err := proc.CPU(b.PID)
		if err != nil {
			return res, err
		}
		t0 := time.Now()
		if err := sleepCtx(ctx, env.Cfg.Duration); err != nil {
			return res, err
		}
		c1, err := proc.CPU(b.PID)
		if err != nil {
			return res, err
		}
		idleCPU = (c1 - c0).Seconds() / time.Since(t0).Seconds()
	}
	order := []bool{true, false}
	if env.Round%2 == 0 {
		order = []bool{false, true}
	}
	got := map[bool]idleFetches{}
	for _, sessions := range order {
		st, err := s.idle(ctx, env, b, topic, sessions)
		if err != nil {
			return res, err
		}
		got[sessions] = st
	}
	with, without := got[true], got[false]
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "req-bytes-session", Label: "request bytes per idle fetch, with a session", Unit: report.Count, Value: with.reqBytes},
		report.Metric{Key: "req-bytes-sessionless", Label: "request bytes per idle fetch, without", Unit: report.Count, Value: without.reqBytes},
		report.Metric{Key: "req-bytes-ratio", Label: "request bytes without / with a session", Unit: report.Count, Value: without.reqBytes / with.reqBytes},
		report.Metric{Key: "resp-bytes-session", Label: "response bytes per idle fetch, with a session", Unit: report.Count, Value: with.respBytes},
		report.Metric{Key: "resp-bytes-sessionless", Label: "response bytes per idle fetch, without", Unit: report.Count, Value: without.respBytes},
		report.Metric{Key: "fetches-session", Label: "idle fetches per second, with a session", Unit: report.Count, Value: with.perSec},
		report.Metric{Key: "fetches-sessionless", Label: "idle fetches per second, without", Unit: report.Count, Value: without.perSec},
	)
	if b.PID > 0 {
		res.Metrics = append(res.Metrics,
			report.Metric{Key: "cpu-per-fetch-session", Label: "broker CPU per idle fetch, with a session", Unit: report.Seconds, Value: with.cpu.Seconds()},
			report.Metric{Key: "cpu-per-fetch-sessionless", Label: "broker CPU per idle fetch, without", Unit: report.Seconds, Value: without.cpu.Seconds()},
			report.Metric{Key: "cpu-ratio", Label: "broker CPU per idle fetch, without / with a session", Unit: report.Count, Value: without.cpu.Seconds() / with.cpu.Seconds()},
			report.Metric{Key: "broker-idle-cpu", Label: "broker CPU with no clients", Unit: report.Cores, Value: idleCPU},
		)
	}
	if with.reqBytes > without.reqBytes/2 {
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: the consumer with sessions sent %.0f bytes per fetch: the broker declined sessions",
			env.Round, with.reqBytes))
	}
	return res, nil
}

// idle runs one consumer at the tail of topic, with or without fetch
// sessions, and measures its fetches over the window after warmup.
func (s *fetchSessionSavings) idle(ctx context.Context, env *Env, b *Broker, topic string, sessions bool) (idleFetches, error) {
	var out idleFetches
	h := &fetchCounter{}
	opts := []kgo.Opt{
		kgo.SeedBrokers(b.Addr), kgo.ClientID("klite-bench-sessions"), kgo.WithHooks(h),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(fetchSessionsWait),
	}
	if !sessions {
		opts = append(opts, kgo.DisableFetchSessions())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return out, err
	}
	defer cl.Close()
	pctx, cancel := context.WithCancel(ctx)
	var records atomic.Int64
	var firstErr atomic.Value
	done := make(chan struct{})
	go func() {
		defer close(done)
		for pctx.Err() == nil {
			fs := cl.PollFetches(pctx)
			records.Add(int64(fs.NumRecords()))
			fs.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, context.Canceled) {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s/%d: %w", t, p, err))
				}
			})
		}
	}()
	defer func() { cancel(); <-done }()

	// Warm up: past the session's full fetch (and its first incremental).
	if err := sleepCtx(ctx, env.Cfg.Warmup); err != nil {
		return out, err
	}
	for deadline := time.Now().Add(topicReadyTimeout); h.reqs.Load() < 3; {
		if time.Now().After(deadline) {
			return out, fmt.Errorf("scenario: %s: %d fetches in %s of warmup", s.Name(), h.reqs.Load(), topicReadyTimeout)
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return out, err
		}
	}
	var c0, c1 time.Duration
	if b.PID > 0 {
		if c0, err = proc.CPU(b.PID); err != nil {
			return out, err
		}
	}
	r0, q0, p0, t0 := h.reqs.Load(), h.reqBytes.Load(), h.respBytes.Load(), time.Now()
	if err := sleepCtx(ctx, env.Cfg.Duration); err != nil {
		return out, err
	}
	if b.PID > 0 {
		if c1, err = proc.CPU(b.PID); err != nil {
			return out, err
		}
	}
	r1, q1, p1, took := h.reqs.Load(), h.reqBytes.Load(), h.respBytes.Load(), time.Since(t0)
	if e, _ := firstErr.Load().(error); e != nil {
		return out, fmt.Errorf("scenario: %s: %w", s.Name(), e)
	}
	if n := records.Load(); n > 0 {
		return out, fmt.Errorf("scenario: %s: %d records on a topic nobody writes to", s.Name(), n)
	}
	out.fetches = r1 - r0
	if out.fetches <= 0 {
		return out, fmt.Errorf("scenario: %s: no fetches in %s", s.Name(), took)
	}
	n := float64(out.fetches)
	out.reqBytes, out.respBytes = float64(q1-q0)/n, float64(p1-p0)/n
	out.cpu = (c1 - c0) / time.Duration(out.fetches)
	out.perSec = n / took.Seconds()
	return out, nil
}
