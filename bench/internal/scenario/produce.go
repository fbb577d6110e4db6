package scenario

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klite/klite/bench/internal/limits"
	"github.com/klite/klite/bench/internal/report"
)

// peakProbeMin is the shortest peak probe produce-latency runs when it has no
// peak from produce-acks-all this round and no -rate.
const peakProbeMin = 2 * time.Second

// produceThroughput: producers as fast as they can go with fixed acks.
type produceThroughput struct {
	name       string
	acks       string
	recordSize int // 0: Config.RecordSize
	// compression, when set, overrides -compression and sends compressible
	// text values: the broker then pays for decompressing each batch to
	// validate its records, which CPU-s/GB shows.
	compression string
}

func (s *produceThroughput) size(cfg Config) int {
	if s.recordSize > 0 {
		return s.recordSize
	}
	return cfg.RecordSize
}

func (s *produceThroughput) Name() string { return s.name }

func (s *produceThroughput) Describe(cfg Config) string {
	d := fmt.Sprintf("Peak produce throughput with acks=%s: %d producer clients send %d-byte records to one topic "+
		"as fast as their buffers allow; MB/s counts record value bytes acknowledged in the measured window. "+
		"Latency here is at saturation and includes time waiting for client buffer space.", s.acks, cfg.Producers, s.size(cfg))
	if s.compression != "" {
		d += fmt.Sprintf(" Batches are %s-compressed log-like text (about 3-5x), which the broker decompresses "+
			"to validate every record: CPU per GB (of uncompressed values) shows what that costs.", s.compression)
	}
	return d
}

func (s *produceThroughput) Close() error { return nil }

func (s *produceThroughput) Settings(cfg Config) []report.KV {
	cfg.RecordSize = s.size(cfg)
	if s.compression != "" {
		cfg.Compression = s.compression + " (text values)"
	}
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
		recordSize: s.recordSize, compression: s.compression,
	})
	if err != nil {
		return res, err
	}
	secs := st.window.Seconds()
	recs := float64(st.prodRecords) / secs
	if s.acks == "all" && s.recordSize == 0 && s.compression == "" {
		env.PeakRecords = recs
	}
	if s.recordSize == 0 && s.compression == "" && b.PID > 0 && st.prodBytes > 0 {
		// produce-aged-cpu compares the long-lived broker with this.
		if env.FreshCPUPerGB == nil {
			env.FreshCPUPerGB = map[string]float64{}
		}
		env.FreshCPUPerGB[s.acks] = st.brokerCPU.Seconds() / (float64(st.prodBytes) / 1e9)
	}
	tp := float64(st.prodBytes) / secs
	lims := []report.Limit{diskSeqWrite(env.Limits), loopback(env.Limits)}
	if s.acks != "all" {
		lims = append(lims, bindingLimit(env.Limits, tp, st, b.PID))
	}
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "throughput", Label: "throughput", Unit: report.BytesPerSec, Value: tp, Limits: lims},
		report.Metric{Key: "records", Label: "records", Unit: report.RecordsPerSec, Value: recs},
		report.Metric{Key: "p50", Label: "latency p50 (saturated)", Unit: report.Seconds, Value: st.lat.Quantile(50).Seconds()},
		report.Metric{Key: "p99", Label: "latency p99 (saturated)", Unit: report.Seconds, Value: st.lat.Quantile(99).Seconds()},
	)
	res.Metrics = append(res.Metrics, costMetrics(st, st.prodBytes, b.PID)...)
	res.Notes = errorNotes(st)
	return res, nil
}

// e2eFraction is the fraction of the peak the end-to-end step runs at. It
// runs apart from the produce-only steps: on a 2-core machine the consumers
// take CPU the producers and broker would otherwise have, and the produce
// figures judged against the target should not pay for them.
const e2eFraction = 0.25

// latencyStep is one paced load of produce-latency.
type latencyStep struct {
	frac float64 // of the acks=all peak
	e2e  bool    // with consumers, measuring end-to-end latency
}

// latencySteps are the paced loads of produce-latency, in order. The 50%
// step's metrics carry the plain keys (p99, ...) the targets read; the
// others are suffixed with their percentage, the end-to-end one with -e2e.
var latencySteps = []latencyStep{{frac: 0.25}, {frac: 0.5}, {frac: 0.75}, {frac: e2eFraction, e2e: true}}

// produceLatency: acks=all at fixed rates below the peak, with consumers at
// the tail measuring end-to-end latency.
type produceLatency struct{}

func (s *produceLatency) Name() string { return "produce-latency" }

func (s *produceLatency) Describe(cfg Config) string {
	peak := "the acks=all peak measured by produce-acks-all in the same round"
	if cfg.Rate > 0 {
		peak = fmt.Sprintf("twice -rate (%s), so the 50%% step runs at -rate", report.Format(report.RecordsPerSec, cfg.Rate))
	}
	return fmt.Sprintf("Produce latency with acks=all at 25%%, 50%% and 75%% of %s, spread over %d producer clients, "+
		"one broker, one fresh topic per step. Records are sent on an open-loop schedule and latency runs from each record's "+
		"due time to its acknowledgement, so a stall is counted, not hidden (no coordinated omission). A last step at %.0f%% "+
		"adds %d consumer clients reading at the tail; end-to-end latency runs from the due time (carried in a record header) "+
		"to the consumer's poll returning the record. Percentiles from an HDR histogram (3 significant digits). Produce rows "+
		"without a suffix are the 50%% step. Before the steps, a loaded fdatasync probe writes the 50%% step's byte rate "+
		"into preallocated files in 256 KiB writes, each group of due writes followed by one fdatasync, and times each group: "+
		"the disk's sync latency under that write load, a second denominator for the p99 (a context row in the targets).", peak, cfg.Producers, 100*e2eFraction, cfg.Consumers)
}

func (s *produceLatency) Close() error { return nil }

func (s *produceLatency) Settings(cfg Config) []report.KV {
	return append(loadSettings(cfg, "all"), report.KV{Key: "consumers", Value: fmt.Sprint(cfg.Consumers)})
}

func (s *produceLatency) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := env.Brokers.Broker(ctx, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	peak := 2 * env.Cfg.Rate
	switch {
	case peak > 0:
	case env.PeakRecords > 0:
		peak = env.PeakRecords
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
		peak = float64(st.prodRecords) / st.window.Seconds()
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: peak from a probe on the same broker", env.Round))
	}
	loaded, err := loadedFsync(ctx, env, s.Name(), peak*0.5) // the 50% step's write rate
	if err != nil {
		return res, err
	}
	for _, step := range latencySteps {
		e2e := step.e2e
		pct := int(step.frac*100 + 0.5)
		suffix, label, progress := fmt.Sprintf("-%d", pct), fmt.Sprintf(" at %d%%", pct), fmt.Sprintf("%s %d%%", s.Name(), pct)
		if pct == 50 {
			suffix = ""
		}
		consumers := 0
		if e2e {
			suffix, label, progress, consumers = "-e2e", label+", with consumers", progress+" e2e", env.Cfg.Consumers
		}
		rate := peak * step.frac
		unix.Sync() // the previous step's writeback is not this step's latency
		st, err := runLoad(ctx, env, loadSpec{
			label: progressLabel(progress, env), addr: b.Addr,
			topic: topicName(fmt.Sprintf("latency-%d", pct), env), partitions: env.Cfg.Partitions, acks: "all", rate: rate,
			producers: env.Cfg.Producers, consumers: consumers, e2e: e2e, warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID,
		})
		if err != nil {
			return res, err
		}
		achieved := float64(st.prodRecords) / st.window.Seconds()
		lim := []report.Limit{twiceFsyncP99(env.Limits)}
		p99Lim := lim
		if pct == 50 && !e2e {
			p99Lim = append(slices.Clone(lim), report.Limit{Key: report.Limit2xLoadedFsyncP99,
				Label: "2x p99 fdatasync under the same write rate", Value: 2 * loaded.P99.Seconds()})
		}
		res.Metrics = append(res.Metrics,
			report.Metric{Key: "rate" + suffix, Label: "target rate" + label, Unit: report.RecordsPerSec, Value: rate},
			report.Metric{Key: "achieved" + suffix, Label: "achieved rate" + label, Unit: report.RecordsPerSec, Value: achieved},
			report.Metric{Key: "p50" + suffix, Label: "produce p50" + label, Unit: report.Seconds, Value: st.lat.Quantile(50).Seconds(), Limits: lim},
			report.Metric{Key: "p99" + suffix, Label: "produce p99" + label, Unit: report.Seconds, Value: st.lat.Quantile(99).Seconds(), Limits: p99Lim},
			report.Metric{Key: "p999" + suffix, Label: "produce p99.9" + label, Unit: report.Seconds, Value: st.lat.Quantile(99.9).Seconds(), Limits: lim},
			report.Metric{Key: "max" + suffix, Label: "produce max" + label, Unit: report.Seconds, Value: st.lat.Max().Seconds()},
		)
		if e2e {
			res.Metrics = append(res.Metrics,
				report.Metric{Key: "e2e-p50", Label: "end-to-end p50" + label, Unit: report.Seconds, Value: st.e2e.Quantile(50).Seconds()},
				report.Metric{Key: "e2e-p99", Label: "end-to-end p99" + label, Unit: report.Seconds, Value: st.e2e.Quantile(99).Seconds()},
				report.Metric{Key: "e2e-p999", Label: "end-to-end p99.9" + label, Unit: report.Seconds, Value: st.e2e.Quantile(99.9).Seconds()},
			)
		}
		if pct == 50 {
			res.Metrics = append(res.Metrics, costMetrics(st, st.prodBytes+st.fetchBytes, b.PID)...)
		}
		// The window may end with records in flight, so allow a little slack.
		if achieved < 0.95*rate {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d: %d%% step achieved %s of the %s target: the broker did not keep up",
				env.Round, pct, report.Format(report.RecordsPerSec, achieved), report.Format(report.RecordsPerSec, rate)))
		}
		res.Notes = append(res.Notes, errorNotes(st)...)
	}
	res.Metrics = append(res.Metrics, loadedMetrics(loaded, "fdatasync under load (50% step's MB/s, 256 KiB writes, one sync per group)")...)
	return res, nil
}

// loadedFsyncTime is how long the loaded fdatasync probe runs (quick: the
// short one).
const (
	loadedFsyncTime      = 5 * time.Second
	loadedFsyncTimeQuick = 2 * time.Second
)

// loadedFsync runs the loaded fdatasync probe at recs records/s of
// Cfg.RecordSize (half the seq write median when recs is 0).
func loadedFsync(ctx context.Context, env *Env, name string, recs float64) (limits.Loaded, error) {
	d := loadedFsyncTime
	if env.Cfg.Quick {
		d = loadedFsyncTimeQuick
	}
	rate := limits.LoadedRate(recs, env.Cfg.RecordSize, env.Limits.SeqWriteBs)
	env.Progress.Logf("%s fdatasync under load: %s in %d KiB writes for %s", progressLabel(name, env),
		report.Format(report.BytesPerSec, rate), limits.LoadedWriteBytes>>10, d)
	unix.Sync()
	l, err := limits.FsyncLoaded(ctx, env.ScratchDir, rate, d)
	if err != nil {
		return l, fmt.Errorf("loaded fdatasync probe: %w", err)
	}
	env.Progress.Logf("   %s", l)
	return l, nil
}

// loadedMetrics are the loaded fdatasync probe's figures.
func loadedMetrics(l limits.Loaded, what string) []report.Metric {
	return []report.Metric{
		{Key: "loaded-fsync-rate", Label: "fdatasync under load: write rate achieved", Unit: report.BytesPerSec, Value: l.AchievedBs},
		{Key: "loaded-fsync-p50", Label: what + ", p50", Unit: report.Seconds, Value: l.P50.Seconds()},
		{Key: "loaded-fsync-p99", Label: what + ", p99", Unit: report.Seconds, Value: l.P99.Seconds()},
		{Key: "loaded-fsync-p999", Label: what + ", p99.9", Unit: report.Seconds, Value: l.P999.Seconds()},
		{Key: "loaded-fsync-max", Label: what + ", max", Unit: report.Seconds, Value: l.Max.Seconds()},
	}
}

// bindingLimit is the lower of loopback TCP and the CPU limit: the
// throughput at which broker and benchmark client together would use every
// core, extrapolated from the CPU they used for tp. Without the broker's CPU
// (an external broker without -broker-pid) it is loopback alone.
func bindingLimit(l limits.Result, tp float64, st loadStats, pid int) report.Limit {
	lim := report.Limit{Key: report.LimitBinding, Label: "loopback TCP or CPU limit, whichever binds", Value: l.TCPBs}
	used := (st.clientCPU + st.brokerCPU).Seconds() / st.window.Seconds() // cores
	if pid > 0 && used > 0 {
		if cpu := tp * float64(runtime.NumCPU()) / used; cpu < lim.Value {
			lim.Value = cpu
		}
	}
	return lim
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
