package scenario

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/klite/klite/bench/internal/report"
)

// tailFetch: consumers reading at the tail while producers write.
type tailFetch struct{}

func (s *tailFetch) Name() string { return "tail-fetch" }

func (s *tailFetch) Describe(cfg Config) string {
	return fmt.Sprintf("Tail fetch: %d consumer clients read a topic from its start while %d producer clients write to it "+
		"as fast as they can (acks=%s), so consumers sit at the tail. Partitions are split between consumers "+
		"(direct assignment, no group). Records/s counts records fetched in the measured window; the lag is what was "+
		"acknowledged but not yet fetched when the window closed. CPU per GB counts bytes produced plus bytes fetched.",
		cfg.Consumers, cfg.Producers, cfg.Acks)
}

func (s *tailFetch) Close() error { return nil }

func (s *tailFetch) Settings(cfg Config) []report.KV {
	return append(loadSettings(cfg, cfg.Acks), report.KV{Key: "consumers", Value: fmt.Sprint(cfg.Consumers)})
}

func (s *tailFetch) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := env.Brokers.Broker(ctx, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	st, err := runLoad(ctx, env, loadSpec{
		label: progressLabel(s.Name(), env), addr: b.Addr, topic: topicName(s.Name(), env), partitions: env.Cfg.Partitions,
		acks: env.Cfg.Acks, producers: env.Cfg.Producers, consumers: env.Cfg.Consumers,
		warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID,
	})
	if err != nil {
		return res, err
	}
	secs := st.window.Seconds()
	fetched, produced := float64(st.fetchRecords)/secs, float64(st.prodRecords)/secs
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "fetch-records", Label: "fetched records", Unit: report.RecordsPerSec, Value: fetched},
		report.Metric{Key: "fetch-throughput", Label: "fetch throughput", Unit: report.BytesPerSec, Value: float64(st.fetchBytes) / secs,
			Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "produce-records", Label: "produced records", Unit: report.RecordsPerSec, Value: produced},
		report.Metric{Key: "lag", Label: "lag at window end (records)", Unit: report.Count, Value: float64(st.lag)},
	)
	res.Metrics = append(res.Metrics, costMetrics(st, st.prodBytes+st.fetchBytes, b.PID)...)
	if fetched < 0.9*produced {
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: consumers fell behind (%s fetched vs %s produced)", env.Round,
			report.Format(report.RecordsPerSec, fetched), report.Format(report.RecordsPerSec, produced)))
	}
	res.Notes = append(res.Notes, errorNotes(st)...)
	return res, nil
}

// catchupTimeout caps how long catch-up consumers get to read the backlog.
const catchupTimeout = 2 * time.Minute

// catchupFetch: consumers read a large backlog from its start, no producers.
type catchupFetch struct{}

func (s *catchupFetch) Name() string { return "catchup-fetch" }

func (s *catchupFetch) Describe(cfg Config) string {
	return fmt.Sprintf("Catch-up fetch: %d producer clients first fill a topic with %s of %d-byte records (acks=1, "+
		"1 MiB batches, not measured); then %d consumer clients read it from offset 0 with no producers until they "+
		"have every record. The window runs from the consumers' start to the last record; the backlog is larger than "+
		"anything the broker caches in its own memory, so reads come from the WAL segments (and the page cache).",
		cfg.Producers, report.Format(report.Bytes, float64(cfg.Backlog)), cfg.RecordSize, cfg.Consumers)
}

func (s *catchupFetch) Close() error { return nil }

func (s *catchupFetch) Settings(cfg Config) []report.KV {
	return []report.KV{
		{Key: "backlog", Value: report.Format(report.Bytes, float64(cfg.Backlog))},
		{Key: "record size", Value: fmt.Sprintf("%d B", cfg.RecordSize)},
		{Key: "partitions", Value: fmt.Sprint(cfg.Partitions)},
		{Key: "consumers", Value: fmt.Sprint(cfg.Consumers)},
	}
}

func (s *catchupFetch) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := env.Brokers.Broker(ctx, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	topic := topicName(s.Name(), env)
	fill, err := runLoad(ctx, env, loadSpec{
		label: progressLabel(s.Name()+" fill", env), addr: b.Addr, topic: topic, partitions: env.Cfg.Partitions,
		acks: "1", producers: env.Cfg.Producers, stopAfterBytes: env.Cfg.Backlog, batchBytes: fillBatchBytes,
	})
	if err != nil {
		return res, fmt.Errorf("fill: %w", err)
	}
	if fill.errs > 0 {
		return res, fmt.Errorf("%d produce errors while filling, first: %w", fill.errs, fill.firstErr)
	}
	st, err := runLoad(ctx, env, loadSpec{
		label: progressLabel(s.Name(), env), addr: b.Addr, topic: topic, partitions: env.Cfg.Partitions, existingTopic: true,
		consumers: env.Cfg.Consumers, fetchTarget: fill.totalRecords, duration: catchupTimeout, brokerPID: b.PID,
	})
	if err != nil {
		return res, err
	}
	secs := st.window.Seconds()
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "fetch-records", Label: "fetched records", Unit: report.RecordsPerSec, Value: float64(st.fetchRecords) / secs},
		report.Metric{Key: "fetch-throughput", Label: "fetch throughput", Unit: report.BytesPerSec, Value: float64(st.fetchBytes) / secs,
			Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "catchup-time", Label: "time to read the backlog", Unit: report.Seconds, Value: secs},
	)
	res.Metrics = append(res.Metrics, costMetrics(st, st.fetchBytes, b.PID)...)
	if got := st.fetchRecords; got < fill.totalRecords {
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: consumers read %d of %d records within %s", env.Round, got, fill.totalRecords, catchupTimeout))
	}
	res.Notes = append(res.Notes, errorNotes(st)...)
	return res, nil
}
