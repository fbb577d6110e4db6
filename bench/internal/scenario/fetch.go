package scenario

import (
	"context"
	"errors"
	"fmt"
	"runtime"
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
		"acknowledged but not yet fetched when the window closed. CPU per GB counts bytes produced plus bytes fetched. "+
		"The \"for 1M records/s\" rows scale this run's CPU per GB (broker, and bench clients) to the bytes the target moves "+
		"(1M records/s in and out) and compare with the machine's cores: whether CPU binds.",
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
	keptUp := float64(st.lag) <= produced*keptUpLag.Seconds()
	res.Notes = append(res.Notes, fmt.Sprintf("round %d: consumers kept up: %s (lag at window end %d records, %s of production; "+
		"yes when under %s)", env.Round, map[bool]string{true: "yes", false: "no"}[keptUp], st.lag,
		report.Format(report.Seconds, float64(st.lag)/max(produced, 1)), keptUpLag))
	if b.PID > 0 {
		bind := tailBindingOf(st, env.Cfg.RecordSize, runtime.NumCPU())
		res.Metrics = append(res.Metrics, bind.metrics()...)
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: %s", env.Round, bind))
	}
	if fetched < 0.9*produced {
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: consumers fell behind (%s fetched vs %s produced)", env.Round,
			report.Format(report.RecordsPerSec, fetched), report.Format(report.RecordsPerSec, produced)))
	}
	res.Notes = append(res.Notes, errorNotes(st)...)
	return res, nil
}

// keptUpLag: consumers kept up when the lag at the window's end is less
// than this much production.
const keptUpLag = time.Second

// tailTargetRecords is the brief's tail fetch goal, records/s.
const tailTargetRecords = 1e6

// tailBinding is what 1M records/s at the tail would cost in CPU, from the
// costs measured in this run: whether CPU binds on this machine.
type tailBinding struct {
	recordSize   int
	needBs       float64 // bytes/s the broker moves for the target: produced in plus fetched out
	brokerCPUGB  float64 // broker CPU-seconds per GB moved, measured
	clientCPUGB  float64 // bench clients' CPU-seconds per GB moved, measured
	brokerCores  float64 // needBs x brokerCPUGB
	clientCores  float64
	machineCores int
}

func tailBindingOf(st loadStats, recordSize, cores int) tailBinding {
	moved := float64(st.prodBytes+st.fetchBytes) / 1e9
	t := tailBinding{recordSize: recordSize, needBs: 2 * tailTargetRecords * float64(recordSize), machineCores: cores}
	if moved > 0 {
		t.brokerCPUGB, t.clientCPUGB = st.brokerCPU.Seconds()/moved, st.clientCPU.Seconds()/moved
	}
	t.brokerCores = t.needBs / 1e9 * t.brokerCPUGB
	t.clientCores = t.needBs / 1e9 * t.clientCPUGB
	return t
}

func (t tailBinding) String() string {
	verdict := "CPU does not bind"
	switch total := t.brokerCores + t.clientCores; {
	case t.brokerCores > float64(t.machineCores):
		verdict = "CPU binds: the broker alone would need more cores than the machine has"
	case total > float64(t.machineCores):
		verdict = "CPU binds: broker and bench clients together would need more cores than the machine has"
	}
	return fmt.Sprintf("what binds at 1M %d-byte records/s: the broker moves %s (in + out); at the %.2f CPU-s/GB measured here "+
		"that is %.2f cores for the broker, plus %.2f for the bench clients (%.2f CPU-s/GB), %.2f in all, vs %d cores: %s",
		t.recordSize, report.Format(report.BytesPerSec, t.needBs), t.brokerCPUGB, t.brokerCores, t.clientCores, t.clientCPUGB,
		t.brokerCores+t.clientCores, t.machineCores, verdict)
}

func (t tailBinding) metrics() []report.Metric {
	return []report.Metric{
		{Key: "need-1m", Label: "bytes moved for 1M records/s (in + out)", Unit: report.BytesPerSec, Value: t.needBs},
		{Key: "broker-cores-1m", Label: "broker cores for 1M records/s at this run's CPU per GB", Unit: report.Cores, Value: t.brokerCores},
		{Key: "client-cores-1m", Label: "bench client cores for 1M records/s at this run's CPU per GB", Unit: report.Cores, Value: t.clientCores},
		{Key: "machine-cores", Label: "machine cores", Unit: report.Cores, Value: float64(t.machineCores)},
	}
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
	fill, err := fillTopic(ctx, env, loadSpec{
		label: progressLabel(s.Name()+" fill", env), addr: b.Addr, topic: topic, partitions: env.Cfg.Partitions,
		stopAfterBytes: env.Cfg.Backlog,
	})
	if err != nil {
		return res, fmt.Errorf("fill: %w", err)
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
