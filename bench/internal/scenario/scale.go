package scenario

import (
	"context"
	"errors"
	"fmt"

	"github.com/klite/klite/bench/internal/report"
)

// The records all producer clients of a sweep step buffer together, and the
// least one client buffers.
const (
	sweepBufferedTotal = 40000
	sweepBufferedMin   = 500
)

// scaleSweep: acks=all produce throughput and latency across partition or
// producer counts, one broker and one topic per step. name is the swept
// dimension ("partitions" or "producers"); metric keys carry the count.
type scaleSweep struct {
	name   string
	counts []int
}

func (s *scaleSweep) Name() string { return s.name }

func (s *scaleSweep) Describe(cfg Config) string {
	other := fmt.Sprintf("%d producer clients", cfg.Producers)
	if s.name == "producers" {
		other = fmt.Sprintf("%d partitions", cfg.Partitions)
	}
	return fmt.Sprintf("Produce acks=all, %d-byte records, as fast as the clients go, with %s swept over %v (%s): "+
		"one fresh broker per step. Latency is at saturation, as in produce-acks-all. Records are spread over the "+
		"partitions by franz-go's default (sticky) partitioner; the producers together buffer at most %d records "+
		"(at least %d each).", cfg.RecordSize, s.name, s.counts, other, sweepBufferedTotal, sweepBufferedMin)
}

func (s *scaleSweep) Close() error { return nil }

func (s *scaleSweep) Settings(cfg Config) []report.KV {
	return []report.KV{{Key: s.name, Value: fmt.Sprint(s.counts)}, {Key: "record size", Value: fmt.Sprintf("%d B", cfg.RecordSize)}}
}

func (s *scaleSweep) Run(ctx context.Context, env *Env) (Result, error) {
	var res Result
	for _, n := range s.counts {
		spec := loadSpec{partitions: env.Cfg.Partitions, producers: env.Cfg.Producers}
		if s.name == "partitions" {
			spec.partitions = n
		} else {
			spec.producers = n
		}
		if err := s.step(ctx, env, spec, n, &res); err != nil {
			return res, fmt.Errorf("%s %d: %w", s.name, n, err)
		}
	}
	return res, nil
}

func (s *scaleSweep) step(ctx context.Context, env *Env, spec loadSpec, n int, res *Result) (err error) {
	b, err := env.Brokers.Broker(ctx, fmt.Sprintf("%s-%d", s.name, n))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	spec.label = progressLabel(fmt.Sprintf("%s %d", s.name, n), env)
	spec.addr, spec.topic, spec.acks = b.Addr, topicName(fmt.Sprintf("%s-%d", s.name, n), env), "all"
	spec.warmup, spec.duration, spec.brokerPID = env.Cfg.Warmup, env.Cfg.Duration, b.PID
	// Every client buffering franz-go's default 50,000 records would make
	// 64 producers queue 3,200,000 records: the sweep would measure the
	// client's memory, not the broker. Keep the total about constant.
	spec.maxBuffered = min(sweepBufferedTotal, max(sweepBufferedMin, sweepBufferedTotal/spec.producers))
	st, err := runLoad(ctx, env, spec)
	if err != nil {
		return err
	}
	secs, sfx, lbl := st.window.Seconds(), fmt.Sprintf("-%d", n), fmt.Sprintf(", %d %s", n, s.name)
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "throughput" + sfx, Label: "throughput" + lbl, Unit: report.BytesPerSec, Value: float64(st.prodBytes) / secs,
			Limits: []report.Limit{diskSeqWrite(env.Limits)}},
		report.Metric{Key: "p99" + sfx, Label: "latency p99 (saturated)" + lbl, Unit: report.Seconds, Value: st.lat.Quantile(99).Seconds()},
	)
	if b.PID > 0 {
		res.Metrics = append(res.Metrics,
			report.Metric{Key: "broker-cpu" + sfx, Label: "broker CPU" + lbl, Unit: report.Cores, Value: st.brokerCPU.Seconds() / secs},
			report.Metric{Key: "broker-rss" + sfx, Label: "broker RSS peak" + lbl, Unit: report.Bytes, Value: float64(st.brokerRSS)})
	}
	res.Metrics = append(res.Metrics, report.Metric{Key: "client-cpu" + sfx, Label: "bench client CPU" + lbl, Unit: report.Cores,
		Value: st.clientCPU.Seconds() / secs})
	res.Notes = append(res.Notes, errorNotes(st)...)
	return nil
}
