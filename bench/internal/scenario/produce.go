package scenario

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/klite/klite/bench/internal/report"
)

// peakProbeMin is the shortest peak probe produce-latency runs when it has no
// peak from produce-acks-all this round and no -rate.
const peakProbeMin = 2 * time.Second

// produceThroughput: producers as fast as they can go with fixed acks.
type produceThroughput struct {
	name string
	acks string
}

func (s *produceThroughput) Name() string { return s.name }

func (s *produceThroughput) Describe(cfg Config) string {
	return fmt.Sprintf("Peak produce throughput with acks=%s: %d producer clients send %d-byte records to one topic "+
		"as fast as their buffers allow; MB/s counts record value bytes acknowledged in the measured window. "+
		"Latency here is at saturation and includes time waiting for client buffer space.", s.acks, cfg.Producers, cfg.RecordSize)
}

func (s *produceThroughput) Close() error { return nil }

func (s *produceThroughput) Settings(cfg Config) []report.KV {
	return loadSettings(cfg, s.acks)
}

func (s *produceThroughput) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := env.Brokers.Broker(ctx, s.name)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	st, err := runLoad(ctx, env, loadSpec{
		label: progressLabel(s.name, env), addr: b.Addr, topic: topicName(s.name, env), partitions: env.Cfg.Partitions,
		acks: s.acks, producers: env.Cfg.Producers, warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID,
	})
	if err != nil {
		return res, err
	}
	secs := st.window.Seconds()
	recs := float64(st.prodRecords) / secs
	if s.acks == "all" {
		env.PeakRecords = recs
	}
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "throughput", Label: "throughput", Unit: report.BytesPerSec, Value: float64(st.prodBytes) / secs,
			Limits: []report.Limit{diskSeqWrite(env.Limits), loopback(env.Limits)}},
		report.Metric{Key: "records", Label: "records", Unit: report.RecordsPerSec, Value: recs},
		report.Metric{Key: "p50", Label: "latency p50 (saturated)", Unit: report.Seconds, Value: st.lat.Quantile(50).Seconds()},
		report.Metric{Key: "p99", Label: "latency p99 (saturated)", Unit: report.Seconds, Value: st.lat.Quantile(99).Seconds()},
	)
	res.Metrics = append(res.Metrics, costMetrics(st, st.prodBytes, b.PID)...)
	res.Notes = errorNotes(st)
	return res, nil
}

// produceLatency: acks=all at a fixed rate, half the peak unless -rate says.
type produceLatency struct{}

func (s *produceLatency) Name() string { return "produce-latency" }

func (s *produceLatency) Describe(cfg Config) string {
	rate := "half the acks=all peak measured by produce-acks-all in the same round"
	if cfg.Rate > 0 {
		rate = fmt.Sprintf("%s (-rate)", report.Format(report.RecordsPerSec, cfg.Rate))
	}
	return fmt.Sprintf("Produce latency with acks=all at a fixed rate of %s, spread over %d producer clients. "+
		"Records are sent on an open-loop schedule and latency runs from each record's due time to its acknowledgement, "+
		"so a stall is counted, not hidden (no coordinated omission). Percentiles from an HDR histogram (3 significant digits).", rate, cfg.Producers)
}

func (s *produceLatency) Close() error { return nil }

func (s *produceLatency) Settings(cfg Config) []report.KV { return loadSettings(cfg, "all") }

func (s *produceLatency) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := env.Brokers.Broker(ctx, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	rate := env.Cfg.Rate
	switch {
	case rate > 0:
	case env.PeakRecords > 0:
		rate = env.PeakRecords / 2
	default:
		// No peak this round: measure one on this broker first.
		st, err := runLoad(ctx, env, loadSpec{
			label: progressLabel(s.Name()+" peak probe", env), addr: b.Addr, topic: topicName("latency-peak", env),
			partitions: env.Cfg.Partitions, acks: "all", producers: env.Cfg.Producers,
			warmup: env.Cfg.Warmup, duration: max(env.Cfg.Duration/2, peakProbeMin), brokerPID: b.PID,
		})
		if err != nil {
			return res, fmt.Errorf("peak probe: %w", err)
		}
		rate = float64(st.prodRecords) / st.window.Seconds() / 2
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: rate from a peak probe on the same broker", env.Round))
	}
	st, err := runLoad(ctx, env, loadSpec{
		label: progressLabel(s.Name(), env), addr: b.Addr, topic: topicName(s.Name(), env), partitions: env.Cfg.Partitions,
		acks: "all", rate: rate, producers: env.Cfg.Producers, warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID,
	})
	if err != nil {
		return res, err
	}
	achieved := float64(st.prodRecords) / st.window.Seconds()
	lim := []report.Limit{twiceFsyncP99(env.Limits)}
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "rate", Label: "target rate", Unit: report.RecordsPerSec, Value: rate},
		report.Metric{Key: "achieved", Label: "achieved rate", Unit: report.RecordsPerSec, Value: achieved},
		report.Metric{Key: "p50", Label: "latency p50", Unit: report.Seconds, Value: st.lat.Quantile(50).Seconds(), Limits: lim},
		report.Metric{Key: "p99", Label: "latency p99", Unit: report.Seconds, Value: st.lat.Quantile(99).Seconds(), Limits: lim},
		report.Metric{Key: "p999", Label: "latency p99.9", Unit: report.Seconds, Value: st.lat.Quantile(99.9).Seconds(), Limits: lim},
		report.Metric{Key: "max", Label: "latency max", Unit: report.Seconds, Value: st.lat.Max().Seconds()},
	)
	res.Metrics = append(res.Metrics, costMetrics(st, st.prodBytes, b.PID)...)
	// The window may end with records in flight, so allow a little slack.
	if achieved < 0.95*rate {
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: achieved %s of the %s target: the broker did not keep up",
			env.Round, report.Format(report.RecordsPerSec, achieved), report.Format(report.RecordsPerSec, rate)))
	}
	res.Notes = append(res.Notes, errorNotes(st)...)
	return res, nil
}

// costMetrics are the broker's CPU and memory over the window, and the
// benchmark client's own CPU (on a small machine the two compete).
func costMetrics(st loadStats, movedBytes int64, pid int) []report.Metric {
	secs := st.window.Seconds()
	var ms []report.Metric
	if pid > 0 {
		ms = append(ms,
			report.Metric{Key: "broker-cpu-per-gb", Label: "broker CPU per GB moved", Unit: report.CPUPerGB,
				Value: st.brokerCPU.Seconds() / (float64(movedBytes) / 1e9)},
			report.Metric{Key: "broker-cpu", Label: "broker CPU", Unit: report.Cores, Value: st.brokerCPU.Seconds() / secs},
			report.Metric{Key: "broker-rss", Label: "broker RSS peak", Unit: report.Bytes, Value: float64(st.brokerRSS)},
			report.Metric{Key: "other-cpu", Label: "other processes' CPU (shared machine)", Unit: report.Cores, Value: st.otherCPU.Seconds() / secs},
		)
	}
	ms = append(ms, report.Metric{Key: "client-cpu", Label: "bench client CPU", Unit: report.Cores, Value: st.clientCPU.Seconds() / secs})
	return ms
}

func errorNotes(st loadStats) []string {
	if st.errs == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%d client errors, first: %v", st.errs, st.firstErr)}
}

func loadSettings(cfg Config, acks string) []report.KV {
	batch := "client default"
	if cfg.BatchBytes > 0 {
		batch = fmt.Sprint(cfg.BatchBytes)
	}
	kv := []report.KV{
		{Key: "acks", Value: acks},
		{Key: "record size", Value: fmt.Sprintf("%d B", cfg.RecordSize)},
		{Key: "partitions", Value: fmt.Sprint(cfg.Partitions)},
		{Key: "producers", Value: fmt.Sprint(cfg.Producers)},
		{Key: "linger", Value: cfg.Linger.String()},
		{Key: "batch bytes", Value: batch},
		{Key: "compression", Value: cfg.Compression},
	}
	if acks != "all" {
		kv = append(kv, report.KV{Key: "in flight per broker", Value: fmt.Sprint(cfg.Inflight)})
	}
	return kv
}

func progressLabel(name string, env *Env) string {
	return fmt.Sprintf("[%s %d/%d]", name, env.Round, env.Rounds)
}

func topicName(name string, env *Env) string {
	return fmt.Sprintf("bench-%s-r%d-%d", name, env.Round, time.Now().UnixNano()%1e9)
}
