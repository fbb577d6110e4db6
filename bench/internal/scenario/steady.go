package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/bench/internal/stats"
)

// produceSteady: a long fixed-rate run at half the sustainable rate on the
// long-lived broker, with p99 and max per second, so a periodic stall
// (segment rolls, background I/O, GC) shows on a time line.
type produceSteady struct{}

func (s *produceSteady) Name() string { return "produce-steady" }

func (s *produceSteady) Describe(cfg Config) string {
	rate := "half the sustainable rate produce-sweep found in the same round (or -rate when the sweep did not run)"
	if cfg.SteadyRate > 0 {
		rate = report.Format(report.RecordsPerSec, cfg.SteadyRate) + " (-steady-rate)"
	}
	return fmt.Sprintf("Steady produce on the long-lived broker (%s): acks=all, %d-byte records, %d producer clients, "+
		"%d partitions, open loop at %s, %s of warmup then %s measured, on a fresh topic (deleted after). Latency runs from "+
		"each record's due time. Besides the whole window's percentiles it keeps a histogram per second (by acknowledgement "+
		"time): the worst second's p99 and how many seconds were over %s, and the chart of p99 and max per second, show a "+
		"stall that recurs. Before the run, the loaded fdatasync probe (as in produce-latency) writes the same byte rate "+
		"into preallocated files, group-commit style, on the idle broker's disk: its p99 is the denominator of the target.",
		longLivedSetting(cfg), cfg.RecordSize, cfg.Producers, cfg.Partitions, rate, cfg.Warmup, cfg.SteadyTime,
		report.Format(report.Seconds, cfg.SweepP99.Seconds()))
}

func (s *produceSteady) Settings(cfg Config) []report.KV {
	return append(loadSettings(cfg, "all"),
		report.KV{Key: "run", Value: fmt.Sprintf("%s warmup + %s measured", cfg.Warmup, cfg.SteadyTime)},
		report.KV{Key: "broker", Value: longLivedSetting(cfg)})
}

func (s *produceSteady) Close() error { return nil }

// steadyRate is the rate produce-steady runs at, and how it was chosen.
func steadyRate(env *Env) (float64, string, error) {
	cfg := env.Cfg
	switch {
	case cfg.SteadyRate > 0:
		return cfg.SteadyRate, "-steady-rate: " + report.SteadyNotHalf, nil
	case env.SweepRan && env.Sustainable > 0:
		return env.Sustainable / 2, "half the sustainable rate of this round's produce-sweep", nil
	case env.SweepRan:
		first, ok := cfg.SweepRate(0)
		if !ok {
			return 0, "", fmt.Errorf("scenario: produce-sweep found no sustainable rate and has no first step")
		}
		return first / 2, "half the sweep's first step, " + report.SteadyNotHalf + ": no step of this round's produce-sweep held its p99 bound", nil
	case cfg.Rate > 0:
		return cfg.Rate, "-rate, " + report.SteadyNotHalf + ": produce-sweep did not run this round", nil
	}
	return 0, "", fmt.Errorf("scenario: no rate: produce-sweep did not run (or failed) this round; give -steady-rate or -rate")
}

func (s *produceSteady) Run(ctx context.Context, env *Env) (res Result, err error) {
	rate, why, err := steadyRate(env)
	if err != nil {
		return res, err
	}
	if err := checkSpace(env.ScratchDir, rate*float64(env.Cfg.RecordSize)*(env.Cfg.Warmup+env.Cfg.SteadyTime).Seconds()); err != nil {
		return res, err
	}
	b, err := agedBroker(ctx, env, s.Name(), &res)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	res.Notes = append(res.Notes, fmt.Sprintf("round %d: %s at %s (%s)", env.Round, s.Name(), report.Format(report.RecordsPerSec, rate), why))
	loaded, err := loadedFsync(ctx, env, s.Name(), rate)
	if err != nil {
		return res, err
	}
	unix.Sync()
	topic := topicName("steady", env)
	st, err := runLoad(ctx, env, loadSpec{
		label: progressLabel(s.Name(), env), addr: b.Addr, topic: topic, partitions: env.Cfg.Partitions, acks: "all",
		rate: rate, producers: env.Cfg.Producers, warmup: env.Cfg.Warmup, duration: env.Cfg.SteadyTime, brokerPID: b.PID,
		perSecond: true,
	})
	dropTopic(ctx, b.Addr, topic, &res) // also after a failed run: the broker is shared
	if err != nil {
		return res, err
	}
	achieved := float64(st.prodRecords) / st.window.Seconds()
	lim := []report.Limit{twiceFsyncP99(env.Limits)}
	p99Lim := append([]report.Limit{}, lim...)
	p99Lim = append(p99Lim, report.Limit{Key: report.Limit2xLoadedFsyncP99,
		Label: "2x p99 fdatasync under the same write rate", Value: 2 * loaded.P99.Seconds()})
	sec := perSecond(st.perSecond)
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "rate", Label: "target rate", Unit: report.RecordsPerSec, Value: rate},
		report.Metric{Key: "achieved", Label: "achieved rate", Unit: report.RecordsPerSec, Value: achieved},
		report.Metric{Key: "p50", Label: "produce p50", Unit: report.Seconds, Value: st.lat.Quantile(50).Seconds(), Limits: lim},
		report.Metric{Key: "p99", Label: "produce p99", Unit: report.Seconds, Value: st.lat.Quantile(99).Seconds(), Limits: p99Lim},
		report.Metric{Key: "p999", Label: "produce p99.9", Unit: report.Seconds, Value: st.lat.Quantile(99.9).Seconds(), Limits: lim},
		report.Metric{Key: "max", Label: "produce max", Unit: report.Seconds, Value: st.lat.Max().Seconds()},
		report.Metric{Key: "worst-second-p99", Label: "worst second's p99", Unit: report.Seconds, Value: sec.worstP99},
		report.Metric{Key: "seconds-over", Label: "seconds with p99 over " + report.Format(report.Seconds, env.Cfg.SweepP99.Seconds()),
			Unit: report.Count, Value: float64(sec.over(env.Cfg.SweepP99))},
		report.Metric{Key: "seconds", Label: "seconds measured", Unit: report.Count, Value: float64(len(sec.p99))},
	)
	res.Metrics = append(res.Metrics, batchingMetrics(st, "", "")...)
	res.Metrics = append(res.Metrics, costMetrics(st, st.prodBytes, b.PID)...)
	res.Metrics = append(res.Metrics, loadedMetrics(loaded, "fdatasync under load (this run's MB/s, 256 KiB writes, one sync per group)")...)
	res.Series = append(res.Series,
		report.Series{Key: "p99-per-second", Label: "p99", Unit: report.Seconds, Round: env.Round, Interval: time.Second, Values: sec.p99},
		report.Series{Key: "max-per-second", Label: "max", Unit: report.Seconds, Round: env.Round, Interval: time.Second, Values: sec.max},
	)
	if sec.worstAt >= 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: worst second %d of %d: p99 %s, max %s", env.Round, sec.worstAt+1, len(sec.p99),
			report.Format(report.Seconds, sec.p99[sec.worstAt]), report.Format(report.Seconds, sec.max[sec.worstAt])))
	}
	if achieved < sweepKeptUp*rate {
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: achieved %s of the %s target: the broker did not keep up", env.Round,
			report.Format(report.RecordsPerSec, achieved), report.Format(report.RecordsPerSec, rate)))
	}
	res.Notes = append(res.Notes, errorNotes(st)...)
	return res, nil
}

// seconds are per-second latency figures in seconds; NaN for a second
// without acknowledgements.
type seconds struct {
	p99, max []float64
	worstP99 float64 // NaN when no second has a figure
	worstAt  int     // index of the worst p99, -1 when none
}

func perSecond(hs []*stats.Hist) seconds {
	s := seconds{worstP99: math.NaN(), worstAt: -1}
	for i, h := range hs {
		p99, mx := math.NaN(), math.NaN()
		if h.Count() > 0 {
			p99, mx = h.Quantile(99).Seconds(), h.Max().Seconds()
			if s.worstAt < 0 || p99 > s.worstP99 {
				s.worstP99, s.worstAt = p99, i
			}
		}
		s.p99, s.max = append(s.p99, p99), append(s.max, mx)
	}
	return s
}

// over counts the seconds whose p99 is over bound. A second without any
// acknowledgement during a run that sends all the time counts as over:
// nothing came back in it.
func (s seconds) over(bound time.Duration) int {
	n := 0
	for _, v := range s.p99 {
		if math.IsNaN(v) || v > bound.Seconds() {
			n++
		}
	}
	return n
}

// batchingMetrics are the producers' records per Produce request and per
// batch in the window: a client batches more when the broker answers later,
// so a slower broker does fewer, larger writes for the same records.
func batchingMetrics(st loadStats, sfx, lbl string) []report.Metric {
	if st.produceRequests == 0 || st.batches == 0 {
		return nil
	}
	return []report.Metric{
		{Key: "records-per-request" + sfx, Label: "records per Produce request" + lbl, Unit: report.Count,
			Value: float64(st.batchRecords) / float64(st.produceRequests)},
		{Key: "records-per-batch" + sfx, Label: "records per batch" + lbl, Unit: report.Count,
			Value: float64(st.batchRecords) / float64(st.batches)},
	}
}
