package scenario

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/klite/klite/bench/internal/report"
)

// sweepKeptUp is the fraction of its target rate a sweep step must achieve
// to count as keeping up (the window may end with records in flight).
const sweepKeptUp = 0.95

// SweepRate is the target rate of sweep step i (0-based) and whether there
// is such a step: the listed rates, then, with SweepOn, on in steps of the
// last difference (of the only rate, when one is listed), never above
// SweepMax.
func (c Config) SweepRate(i int) (float64, bool) {
	rs := c.SweepRates
	var r float64
	switch {
	case i < len(rs):
		r = rs[i]
	case !c.SweepOn || len(rs) == 0:
		return 0, false
	default:
		step := rs[len(rs)-1]
		if len(rs) > 1 {
			step -= rs[len(rs)-2]
		}
		if step <= 0 {
			return 0, false
		}
		r = rs[len(rs)-1] + float64(i-len(rs)+1)*step
	}
	return r, r <= c.SweepMax
}

// rateKey names a rate in metric keys: 100k, 1500k, 750.
func rateKey(r float64) string {
	if r >= 1000 {
		return strconv.FormatFloat(r/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// produceSweep: acks=all at fixed rates, open loop, rising until a step
// cannot keep up, on the long-lived broker.
type produceSweep struct{}

func (s *produceSweep) Name() string { return "produce-sweep" }

func (s *produceSweep) Describe(cfg Config) string {
	var listed []string
	for _, r := range cfg.SweepRates {
		listed = append(listed, rateKey(r))
	}
	steps := strings.Join(listed, ", ") + " records/s"
	if cfg.SweepOn {
		steps += " and on in the same steps"
	}
	return fmt.Sprintf("Fixed-rate produce sweep on a broker that has been running for a while (%s): acks=all, %d-byte records, "+
		"%d producer clients, %d partitions, at %s (at most %s), each step on a fresh topic (deleted after it) "+
		"with %s of warmup and %s measured. Open loop: each record has a due time and latency runs from it to the "+
		"acknowledgement, so a stall is counted, not hidden. The sweep stops after the first step that cannot keep up "+
		"(achieved under %.0f%% of its target, or p99 over %s). The sustainable rate is the highest step up to which "+
		"every step kept up with p99 within %s; 0 when the first step did not. Its MB/s is compared with the disk's "+
		"sequential write measured in the same run. Rows are suffixed with each step's target rate.",
		longLivedSetting(cfg), cfg.RecordSize, cfg.Producers, cfg.Partitions, steps,
		report.Format(report.RecordsPerSec, cfg.SweepMax), cfg.Warmup, cfg.SweepStepTime, 100*sweepKeptUp,
		report.Format(report.Seconds, cfg.SweepFailP99.Seconds()), report.Format(report.Seconds, cfg.SweepP99.Seconds()))
}

func (s *produceSweep) Settings(cfg Config) []report.KV {
	return append(loadSettings(cfg, "all"),
		report.KV{Key: "step", Value: fmt.Sprintf("%s warmup + %s measured", cfg.Warmup, cfg.SweepStepTime)},
		report.KV{Key: "sustainable p99", Value: "<= " + report.Format(report.Seconds, cfg.SweepP99.Seconds())},
		report.KV{Key: "broker", Value: longLivedSetting(cfg)})
}

func (s *produceSweep) Close() error { return nil }

func (s *produceSweep) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := agedBroker(ctx, env, s.Name(), &res)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	cfg := env.Cfg
	var sustainable, bestWithin float64
	var over []string         // steps that missed: none so far means every step kept up within SweepP99
	var steps []report.Metric // after the summary rows, which lead the table
	stopped := false
	var stepErr error // a step that failed outright: the steps below it still count
	for i := 0; ; i++ {
		rate, ok := cfg.SweepRate(i)
		if !ok {
			break
		}
		key := rateKey(rate)
		if err := checkSpace(env.ScratchDir, rate*float64(cfg.RecordSize)*(cfg.Warmup+cfg.SweepStepTime).Seconds()); err != nil {
			stepErr = fmt.Errorf("%s/s step: %w", key, err)
			break
		}
		unix.Sync() // the previous step's writeback is not this step's latency
		topic := topicName("sweep-"+key, env)
		st, err := runLoad(ctx, env, loadSpec{
			label: progressLabel(fmt.Sprintf("%s %s/s", s.Name(), key), env), addr: b.Addr, topic: topic,
			partitions: cfg.Partitions, acks: "all", rate: rate, producers: cfg.Producers,
			warmup: cfg.Warmup, duration: cfg.SweepStepTime, brokerPID: b.PID,
		})
		dropTopic(ctx, b.Addr, topic, &res)
		if err != nil {
			stepErr = fmt.Errorf("%s/s step: %w", key, err)
			over = append(over, key+" (failed)")
			break
		}
		secs := st.window.Seconds()
		achieved := float64(st.prodRecords) / secs
		p99 := st.lat.Quantile(99)
		sfx, lbl := "-"+key, fmt.Sprintf(" at %s/s", key)
		steps = append(steps,
			report.Metric{Key: "achieved" + sfx, Label: "achieved rate" + lbl, Unit: report.RecordsPerSec, Value: achieved},
			report.Metric{Key: "p50" + sfx, Label: "produce p50" + lbl, Unit: report.Seconds, Value: st.lat.Quantile(50).Seconds()},
			report.Metric{Key: "p99" + sfx, Label: "produce p99" + lbl, Unit: report.Seconds, Value: p99.Seconds()},
			report.Metric{Key: "p999" + sfx, Label: "produce p99.9" + lbl, Unit: report.Seconds, Value: st.lat.Quantile(99.9).Seconds()},
			report.Metric{Key: "max" + sfx, Label: "produce max" + lbl, Unit: report.Seconds, Value: st.lat.Max().Seconds()},
		)
		if b.PID > 0 && st.prodBytes > 0 {
			steps = append(steps,
				report.Metric{Key: "broker-cpu" + sfx, Label: "broker CPU" + lbl, Unit: report.Cores, Value: st.brokerCPU.Seconds() / secs},
				report.Metric{Key: "broker-cpu-per-gb" + sfx, Label: "broker CPU per GB" + lbl, Unit: report.CPUPerGB,
					Value: st.brokerCPU.Seconds() / (float64(st.prodBytes) / 1e9)})
		}
		steps = append(steps, report.Metric{Key: "client-cpu" + sfx, Label: "bench client CPU" + lbl, Unit: report.Cores,
			Value: st.clientCPU.Seconds() / secs})
		steps = append(steps, batchingMetrics(st, sfx, lbl)...)
		res.Notes = append(res.Notes, errorNotes(st)...)

		keptUp := achieved >= sweepKeptUp*rate && p99 <= cfg.SweepFailP99
		within := keptUp && p99 <= cfg.SweepP99
		if within {
			bestWithin = rate
			if len(over) == 0 {
				sustainable = rate
			}
		} else {
			over = append(over, key)
		}
		if !keptUp {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d: the %s/s step could not keep up (achieved %s, p99 %s): the sweep stopped there",
				env.Round, key, report.Format(report.RecordsPerSec, achieved), report.Format(report.Seconds, p99.Seconds())))
			stopped = true
			break
		}
	}
	switch {
	case stepErr != nil:
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: the sweep stopped at a step that failed: %v", env.Round, stepErr))
	case !stopped:
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: every step kept up; the sweep ended at its last rate (-sweep-rates, -sweep-max)", env.Round))
	}
	if len(over) > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: steps over the %s p99 bound or not keeping up: %s (records/s)", env.Round,
			report.Format(report.Seconds, cfg.SweepP99.Seconds()), strings.Join(over, ", ")))
	}
	if bestWithin > sustainable {
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: %s/s was within the bound again after a step that was not; the sustainable rate counts only steps below the first miss",
			env.Round, rateKey(bestWithin)))
	}
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "sustainable", Label: "sustainable rate (p99 <= " + report.Format(report.Seconds, cfg.SweepP99.Seconds()) + " up to it)",
			Unit: report.RecordsPerSec, Value: sustainable},
		report.Metric{Key: "sustainable-bytes", Label: "sustainable rate, record value bytes", Unit: report.BytesPerSec,
			Value: sustainable * float64(cfg.RecordSize), Limits: []report.Limit{diskSeqWrite(env.Limits)}},
	)
	res.Metrics = append(res.Metrics, steps...)
	env.Sustainable, env.SweepRan = sustainable, true
	return res, stepErr
}
