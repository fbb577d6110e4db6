package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/klite/klite/bench/internal/broker"
	"github.com/klite/klite/bench/internal/report"
)

// tierPacedFraction is where tier-produce paces its latency comparison: a
// fraction of the peak without S3 measured in the same round.
const tierPacedFraction = 0.5

// tierFillBuffered bounds each fill producer's buffer (franz-go's default
// is 50,000 records): a fill stops once its size is acknowledged, and what
// is buffered then is stored on top.
const tierFillBuffered = 10000

func sideName(s3 bool) string {
	if s3 {
		return "s3"
	}
	return "local"
}

// pick keeps the metrics with the given keys, in their order.
func pick(ms []report.Metric, keys ...string) []report.Metric {
	var out []report.Metric
	for _, m := range ms {
		if slices.Contains(keys, m.Key) {
			out = append(out, m)
		}
	}
	return out
}

// tierCatchup (issue 5 a and c): the same backlog read from offset 0 once
// from a broker that offloaded it to S3 and once from a local-only broker.
type tierCatchup struct{ kit tierKit }

func (s *tierCatchup) Name() string { return "tier-catchup" }

func (s *tierCatchup) Describe(cfg Config) string {
	return fmt.Sprintf("Cold catch-up read from S3 against the same read from the local WAL. Each round starts two brokers "+
		"(the order alternates by round): one with S3 tiering, -s3-flush-interval %s and a small hot WAL (-wal-hot-bytes %s: "+
		"uploaded data kept locally as a read cache), one local only; both with -segment-bytes %s. %d producers fill a topic "+
		"with %s of %d-byte records (acks=1, 1 MiB batches, not measured; the fill stops once that much is acknowledged, so "+
		"a little more is stored); with S3 the benchmark then lists the bucket every %s until its data objects and the local "+
		"WAL have not changed for %s (uploads settled), and %d consumers read the topic from offset 0 until they have every "+
		"record. The S3 read is also given as a fraction of the local one. The WAL size when the read began shows how much of "+
		"the read could still come from local disk. The upload rows come from the fill: data object bytes over the time from "+
		"the first to the last seen in the listing (paced by the producers while they run), and the time and rate after "+
		"producing stopped. Bucket (versitygw's files) and WAL share one disk and mostly sit in the page cache: the S3 figure "+
		"is klite's tier read path against one loopback S3 server, not a remote bucket's latency.",
		tierFlushInterval, report.Format(report.Bytes, float64(cfg.TierHotBytes)), report.Format(report.Bytes, float64(cfg.TierSegmentBytes)),
		cfg.Producers, report.Format(report.Bytes, float64(cfg.TierBacklog)), cfg.RecordSize, tierPollEvery, tierQuiet, cfg.Consumers)
}

func (s *tierCatchup) Settings(cfg Config) []report.KV {
	return append([]report.KV{
		{Key: "backlog", Value: report.Format(report.Bytes, float64(cfg.TierBacklog))},
		{Key: "partitions", Value: fmt.Sprint(cfg.Partitions)},
		{Key: "consumers", Value: fmt.Sprint(cfg.Consumers)},
	}, tierSettings(cfg)...)
}

func (s *tierCatchup) Close() error { return s.kit.close() }

// catchupSide is one broker's fill and read.
type catchupSide struct {
	st       loadStats
	pid      int
	filled   int64 // record bytes acknowledged while filling
	walBytes int64 // local WAL when the read began
	up       uploadFigures
	notes    []string
}

func (s *tierCatchup) Run(ctx context.Context, env *Env) (res Result, err error) {
	s.kit.name = s.Name()
	if err := s.kit.prepare(ctx, env); err != nil {
		return res, err
	}
	var local, cold catchupSide
	for _, s3 := range order(env.Round) {
		side, err := s.side(ctx, env, s3)
		res.Notes = append(res.Notes, side.notes...)
		if err != nil {
			return res, fmt.Errorf("%s: %w", sideName(s3), err)
		}
		if s3 {
			cold = side
		} else {
			local = side
		}
	}
	lsec, csec := local.st.window.Seconds(), cold.st.window.Seconds()
	ltp, ctp := float64(local.st.fetchBytes)/lsec, float64(cold.st.fetchBytes)/csec
	localLim := report.Limit{Key: "local-read", Label: "the same read from the local WAL", Value: ltp}
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "read-s3", Label: "catch-up read, offloaded to S3", Unit: report.BytesPerSec, Value: ctp,
			Limits: []report.Limit{localLim, loopback(env.Limits)}},
		report.Metric{Key: "read-local", Label: "catch-up read, local WAL", Unit: report.BytesPerSec, Value: ltp,
			Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "records-s3", Label: "fetched records, offloaded to S3", Unit: report.RecordsPerSec, Value: float64(cold.st.fetchRecords) / csec},
		report.Metric{Key: "records-local", Label: "fetched records, local WAL", Unit: report.RecordsPerSec, Value: float64(local.st.fetchRecords) / lsec},
		report.Metric{Key: "time-s3", Label: "time to read the backlog, offloaded to S3", Unit: report.Seconds, Value: csec},
		report.Metric{Key: "time-local", Label: "time to read the backlog, local WAL", Unit: report.Seconds, Value: lsec},
		report.Metric{Key: "backlog-s3", Label: "record bytes acknowledged while filling, with S3", Unit: report.Bytes, Value: float64(cold.filled)},
		report.Metric{Key: "wal-s3", Label: "local WAL when the read began, with S3", Unit: report.Bytes, Value: float64(cold.walBytes)},
		report.Metric{Key: "wal-local", Label: "local WAL when the read began, local only", Unit: report.Bytes, Value: float64(local.walBytes)},
	)
	res.Metrics = append(res.Metrics, cold.up.metrics("", "")...)
	keys := []string{"broker-cpu-per-gb", "broker-cpu", "broker-rss"}
	res.Metrics = append(res.Metrics, withSuffix(pick(costMetrics(cold.st, cold.st.fetchBytes, cold.pid), keys...), "-s3", ", S3 read")...)
	res.Metrics = append(res.Metrics, withSuffix(pick(costMetrics(local.st, local.st.fetchBytes, local.pid), keys...), "-local", ", local read")...)
	return res, nil
}

func (s *tierCatchup) side(ctx context.Context, env *Env, s3 bool) (side catchupSide, err error) {
	what := sideName(s3)
	label := progressLabel(s.Name()+" "+what, env)
	r, err := s.kit.open(ctx, env.Cfg, s.Name()+"-"+what, s3)
	if err != nil {
		return side, err
	}
	defer func() { err = errors.Join(err, s.kit.finish(r)) }()
	p, dir, w := r.p, r.dir, r.w
	topic := topicName(s.Name(), env)
	fill, err := fillTopic(ctx, env, loadSpec{
		label: progressLabel(s.Name()+" fill "+what, env), addr: p.Addr, topic: topic, partitions: env.Cfg.Partitions,
		stopAfterBytes: env.Cfg.TierBacklog, maxBuffered: tierFillBuffered,
	})
	if err != nil {
		return side, fmt.Errorf("fill: %w", err)
	}
	if s3 {
		fillEnd := time.Now()
		env.Progress.Logf("%s filled %s; waiting for uploads to settle", label, report.Format(report.Bytes, float64(fill.totalBytes)))
		last, settled, err := w.settle(ctx)
		if err != nil && ctx.Err() != nil {
			return side, err
		}
		side.up = uploadFiguresOf(w.stop(), fillEnd)
		if last.bytes == 0 {
			return side, fmt.Errorf("no data object reached the bucket (listing error: %v); broker log tail:\n%s", err, p.LogTail())
		}
		if !settled {
			side.notes = append(side.notes, fmt.Sprintf("round %d: uploads still changing after %s; read started anyway", env.Round, tierSettleTimeout))
		}
		env.Progress.Logf("%s bucket holds %s in %d objects, local WAL %s", label, report.Format(report.Bytes, float64(last.bytes)),
			last.objects, report.Format(report.Bytes, float64(last.walBytes)))
	}
	if side.walBytes, err = dirBytes(dir); err != nil {
		return side, err
	}
	total, err := endOffsetSum(ctx, p.Addr, topic)
	if err != nil {
		return side, err
	}
	st, err := runLoad(ctx, env, loadSpec{
		label: label, addr: p.Addr, topic: topic, partitions: env.Cfg.Partitions, existingTopic: true,
		consumers: env.Cfg.Consumers, fetchTarget: total, duration: catchupTimeout, brokerPID: p.PID,
	})
	if err != nil {
		return side, err
	}
	side.st, side.pid, side.filled = st, p.PID, fill.totalBytes
	if st.fetchRecords < total {
		side.notes = append(side.notes, fmt.Sprintf("round %d: %s: consumers read %d of %d records within %s", env.Round, what,
			st.fetchRecords, total, catchupTimeout))
	}
	for _, n := range errorNotes(st) {
		side.notes = append(side.notes, fmt.Sprintf("round %d: %s read: %s", env.Round, what, n))
	}
	return side, nil
}

// tierProduce (issue 5 b): produce throughput at saturation and latency at
// a fixed rate, on a broker uploading to S3 as it goes and on a local-only
// one.
type tierProduce struct{ kit tierKit }

func (s *tierProduce) Name() string { return "tier-produce" }

func (s *tierProduce) Describe(cfg Config) string {
	return fmt.Sprintf("Produce while uploads run, against produce without S3: acks=all, %d producers, %d-byte records, "+
		"%d partitions, on a fresh broker per load, with S3 (-wal-hot-bytes %s, -s3-flush-interval %s) and without; both with "+
		"-segment-bytes %s, so at full speed data goes up continuously. First the peak (as fast as the "+
		"clients go; latency includes waiting for buffer space), then an open-loop paced load at %.0f%% of the peak without "+
		"S3 of the same round (latency from each record's due time). Order alternates by round. The upload rows are the "+
		"bucket's data bytes gained during each measured window, listed every %s: zero would mean no upload ran while "+
		"producing and the comparison says nothing.",
		cfg.Producers, cfg.RecordSize, cfg.Partitions, report.Format(report.Bytes, float64(cfg.TierHotBytes)), tierFlushInterval,
		report.Format(report.Bytes, float64(cfg.TierSegmentBytes)), tierPacedFraction*100, tierPollEvery)
}

func (s *tierProduce) Settings(cfg Config) []report.KV {
	return append(loadSettings(cfg, "all"), tierSettings(cfg)...)
}

func (s *tierProduce) Close() error { return s.kit.close() }

// produceSide is one load on one broker.
type produceSide struct {
	st     loadStats
	pid    int
	upload float64 // bucket bytes/s gained during the window; NaN without S3
}

func (s *tierProduce) Run(ctx context.Context, env *Env) (res Result, err error) {
	s.kit.name = s.Name()
	if err := s.kit.prepare(ctx, env); err != nil {
		return res, err
	}
	var peak, paced [2]produceSide // [0] local, [1] S3
	idx := func(s3 bool) int {
		if s3 {
			return 1
		}
		return 0
	}
	for _, s3 := range order(env.Round) {
		if peak[idx(s3)], err = s.load(ctx, env, s3, 0); err != nil {
			return res, fmt.Errorf("peak, %s: %w", sideName(s3), err)
		}
	}
	secs := func(ps produceSide) float64 { return ps.st.window.Seconds() }
	rate := tierPacedFraction * float64(peak[0].st.prodRecords) / secs(peak[0])
	for _, s3 := range order(env.Round) {
		if paced[idx(s3)], err = s.load(ctx, env, s3, rate); err != nil {
			return res, fmt.Errorf("paced, %s: %w", sideName(s3), err)
		}
	}
	tp := func(ps produceSide) float64 { return float64(ps.st.prodBytes) / secs(ps) }
	q := func(ps produceSide, p float64) float64 { return ps.st.lat.Quantile(p).Seconds() }
	pct := fmt.Sprintf("%.0f%%", tierPacedFraction*100)
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "throughput-s3", Label: "peak throughput, uploading to S3", Unit: report.BytesPerSec, Value: tp(peak[1]),
			Limits: []report.Limit{{Key: "no-s3", Label: "the same without S3", Value: tp(peak[0])}, diskSeqWrite(env.Limits)}},
		report.Metric{Key: "throughput-local", Label: "peak throughput, without S3", Unit: report.BytesPerSec, Value: tp(peak[0]),
			Limits: []report.Limit{diskSeqWrite(env.Limits)}},
		report.Metric{Key: "p99-peak-s3", Label: "latency p99 at peak (saturated), uploading to S3", Unit: report.Seconds, Value: q(peak[1], 99)},
		report.Metric{Key: "p99-peak-local", Label: "latency p99 at peak (saturated), without S3", Unit: report.Seconds, Value: q(peak[0], 99)},
		report.Metric{Key: "upload-peak", Label: "uploaded during the peak window", Unit: report.BytesPerSec, Value: peak[1].upload},
		report.Metric{Key: "rate", Label: "paced rate (" + pct + " of the peak without S3)", Unit: report.RecordsPerSec, Value: rate},
		report.Metric{Key: "achieved-s3", Label: "achieved rate, uploading to S3", Unit: report.RecordsPerSec, Value: float64(paced[1].st.prodRecords) / secs(paced[1])},
		report.Metric{Key: "achieved-local", Label: "achieved rate, without S3", Unit: report.RecordsPerSec, Value: float64(paced[0].st.prodRecords) / secs(paced[0])},
		report.Metric{Key: "p50-s3", Label: "produce p50 at " + pct + ", uploading to S3", Unit: report.Seconds, Value: q(paced[1], 50),
			Limits: []report.Limit{{Key: "no-s3", Label: "the same without S3", Value: q(paced[0], 50)}}},
		report.Metric{Key: "p50-local", Label: "produce p50 at " + pct + ", without S3", Unit: report.Seconds, Value: q(paced[0], 50)},
		report.Metric{Key: "p99-s3", Label: "produce p99 at " + pct + ", uploading to S3", Unit: report.Seconds, Value: q(paced[1], 99),
			Limits: []report.Limit{{Key: "no-s3", Label: "the same without S3", Value: q(paced[0], 99)}, twiceFsyncP99(env.Limits)}},
		report.Metric{Key: "p99-local", Label: "produce p99 at " + pct + ", without S3", Unit: report.Seconds, Value: q(paced[0], 99),
			Limits: []report.Limit{twiceFsyncP99(env.Limits)}},
		report.Metric{Key: "p999-s3", Label: "produce p99.9 at " + pct + ", uploading to S3", Unit: report.Seconds, Value: q(paced[1], 99.9)},
		report.Metric{Key: "p999-local", Label: "produce p99.9 at " + pct + ", without S3", Unit: report.Seconds, Value: q(paced[0], 99.9)},
		report.Metric{Key: "upload-paced", Label: "uploaded during the paced window", Unit: report.BytesPerSec, Value: paced[1].upload},
	)
	keys := []string{"broker-cpu", "broker-rss"}
	res.Metrics = append(res.Metrics, withSuffix(pick(costMetrics(paced[1].st, paced[1].st.prodBytes, paced[1].pid), keys...), "-s3", " at "+pct+", uploading to S3")...)
	res.Metrics = append(res.Metrics, withSuffix(pick(costMetrics(paced[0].st, paced[0].st.prodBytes, paced[0].pid), keys...), "-local", " at "+pct+", without S3")...)
	for _, ps := range []struct {
		name string
		side produceSide
	}{{"peak", peak[1]}, {"paced", paced[1]}} {
		if !(ps.side.upload > 0) {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d: nothing was uploaded during the %s window with S3: that figure is not "+
				"produce while uploading", env.Round, ps.name))
		}
	}
	for i, ps := range []produceSide{peak[0], peak[1], paced[0], paced[1]} {
		for _, n := range errorNotes(ps.st) {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d: %s, %s: %s", env.Round, []string{"peak", "peak", "paced", "paced"}[i],
				sideName(i%2 == 1), n))
		}
	}
	if got := float64(paced[1].st.prodRecords) / secs(paced[1]); got < 0.95*rate {
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: with S3 the paced load achieved %s of the %s target: the broker did not keep up",
			env.Round, report.Format(report.RecordsPerSec, got), report.Format(report.RecordsPerSec, rate)))
	}
	return res, nil
}

// load runs one produce load on a fresh broker: as fast as possible when
// rate is 0, else paced.
func (s *tierProduce) load(ctx context.Context, env *Env, s3 bool, rate float64) (ps produceSide, err error) {
	what := sideName(s3)
	kind := "peak"
	if rate > 0 {
		kind = "paced"
	}
	r, err := s.kit.open(ctx, env.Cfg, s.Name()+"-"+what, s3)
	if err != nil {
		return ps, err
	}
	defer func() { err = errors.Join(err, s.kit.finish(r)) }()
	p, w := r.p, r.w
	st, err := runLoad(ctx, env, loadSpec{
		label: progressLabel(fmt.Sprintf("%s %s %s", s.Name(), kind, what), env), addr: p.Addr, topic: topicName(s.Name(), env),
		partitions: env.Cfg.Partitions, acks: "all", rate: rate, producers: env.Cfg.Producers,
		warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: p.PID,
	})
	if err != nil {
		return ps, err
	}
	ps.st, ps.pid, ps.upload = st, p.PID, math.NaN()
	if s3 {
		ps.upload = windowRate(w.stop(), st.start, st.start.Add(st.window))
	}
	return ps, nil
}

// windowRate is the bucket's byte gain per second between the first sample
// at or after from and the last at or before to.
func windowRate(ss []bucketSample, from, to time.Time) float64 {
	a, b := -1, -1
	for i, s := range ss {
		if a < 0 && !s.t.Before(from) {
			a = i
		}
		if !s.t.After(to) {
			b = i
		}
	}
	if a < 0 || b <= a {
		return math.NaN()
	}
	return float64(ss[b].bytes-ss[a].bytes) / ss[b].t.Sub(ss[a].t).Seconds()
}

// tierRecover (issue 5 d): disaster recovery from the bucket alone. The
// first round fills one bucket prefix per size through a broker with S3 and
// waits for its uploads; every round then starts klite on an empty WAL
// directory with that prefix and times it until ready, until its first
// ListOffsets answer and until a consumer has read every partition's last
// record.
type tierRecover struct {
	kit     tierKit
	buckets []*recoverBucket // filled in the first round
}

type recoverBucket struct {
	size   int64
	prefix string
	topic  string
	acked  int64 // records acknowledged while filling
}

func (s *tierRecover) Name() string { return "tier-recover" }

func (s *tierRecover) sizes(cfg Config) string {
	var parts []string
	for _, b := range cfg.TierRecover {
		parts = append(parts, report.Format(report.Bytes, float64(b)))
	}
	return fmt.Sprint(parts)
}

func (s *tierRecover) Describe(cfg Config) string {
	return fmt.Sprintf("Recovery from the bucket alone, for buckets of %s of records: the first round fills each through its own "+
		"broker with S3 (acks=1, %d producers, %d-byte records, %d partitions, -segment-bytes %s), waits until the bucket and "+
		"the WAL have not changed for %s, and stops that broker with SIGTERM; its WAL is deleted. Every round then starts "+
		"klite on an empty WAL directory with the same bucket and prefix and times exec to ready line, exec to the first "+
		"ListOffsets answer for the topic, and exec to a consumer having read the last record of every partition (fetched "+
		"from S3). Records recovered are the end offsets the recovered broker reports, against the records acknowledged while "+
		"filling (more is possible: the acks=1 fill is not idempotent, so a retried batch may be stored twice; fewer means "+
		"acknowledged data never reached the bucket). The fill stops once the size is acknowledged, so a little more is "+
		"stored. Fill and upload rows come from the first round only. "+
		"Recovery point (every round): a broker with -s3-flush-interval %s takes %d acks=all records/s of %d B, is killed with "+
		"SIGKILL at a random moment between 2 and 3 flush intervals in, and its WAL directory is deleted (the disk is lost); "+
		"a fresh broker on an empty directory with the same bucket reports end offsets. Lost is acknowledged minus recovered "+
		"records, and lost seconds are lost / the acknowledged rate, to compare with the flush interval.",
		s.sizes(cfg), cfg.Producers, cfg.RecordSize, cfg.Partitions, report.Format(report.Bytes, float64(cfg.TierSegmentBytes)), tierQuiet,
		rpoFlushOf(cfg), rpoRate, rpoRecordSize)
}

func (s *tierRecover) Settings(cfg Config) []report.KV {
	return append([]report.KV{{Key: "bucket sizes", Value: s.sizes(cfg)}, {Key: "partitions", Value: fmt.Sprint(cfg.Partitions)},
		{Key: "recovery point flush interval", Value: rpoFlushOf(cfg).String()}}, tierSettings(cfg)...)
}

func (s *tierRecover) Close() error { return s.kit.close() }

func sizeKey(b int64) string { return fmt.Sprintf("-%dmb", b/1e6) }

func (s *tierRecover) Run(ctx context.Context, env *Env) (res Result, err error) {
	s.kit.name = s.Name()
	if err := s.kit.prepare(ctx, env); err != nil {
		return res, err
	}
	if s.buckets == nil {
		for _, size := range env.Cfg.TierRecover {
			b, ms, err := s.fill(ctx, env, size)
			res.Metrics = append(res.Metrics, ms...)
			if err != nil {
				return res, fmt.Errorf("fill %s: %w", report.Format(report.Bytes, float64(size)), err)
			}
			s.buckets = append(s.buckets, b)
		}
	}
	for _, b := range s.buckets {
		ms, notes, err := s.recover(ctx, env, b)
		res.Metrics = append(res.Metrics, ms...)
		res.Notes = append(res.Notes, notes...)
		if err != nil {
			return res, fmt.Errorf("recover %s: %w", report.Format(report.Bytes, float64(b.size)), err)
		}
	}
	rpo, notes, err := s.recoveryPoint(ctx, env)
	res.Notes = append(res.Notes, notes...)
	if err != nil {
		return res, fmt.Errorf("recovery point: %w", err)
	}
	res.Metrics = append(res.Metrics, rpo.metrics()...)
	return res, nil
}

func (s *tierRecover) fill(ctx context.Context, env *Env, size int64) (b *recoverBucket, ms []report.Metric, err error) {
	m := s.kit.m
	key, label := sizeKey(size), ", "+report.Format(report.Bytes, float64(size))
	b = &recoverBucket{size: size, prefix: s.kit.prefix(s.Name() + key), topic: topicName(s.Name(), env)}
	dir := m.NewWALDir(s.Name() + "-fill")
	p, err := s.kit.start(ctx, env.Cfg, dir, b.prefix)
	if err != nil {
		m.Cleanup(dir)
		return nil, nil, err
	}
	defer func() { err = errors.Join(err, s.kit.stop(p, dir)) }()
	store, err := s.kit.srv.store(ctx, b.prefix)
	if err != nil {
		return nil, nil, err
	}
	w := watchBucket(ctx, store, dir)
	defer w.stop()
	st, err := fillTopic(ctx, env, loadSpec{
		label: progressLabel(s.Name()+" fill"+key, env), addr: p.Addr, topic: b.topic, partitions: env.Cfg.Partitions,
		stopAfterBytes: size, maxBuffered: tierFillBuffered,
	})
	if err != nil {
		return nil, nil, err
	}
	fillEnd := time.Now()
	env.Progress.Logf("%s filled %s; waiting for uploads to settle", progressLabel(s.Name(), env), report.Format(report.Bytes, float64(st.totalBytes)))
	last, settled, lerr := w.settle(ctx)
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	up := uploadFiguresOf(w.stop(), fillEnd)
	if last.bytes == 0 {
		return nil, nil, fmt.Errorf("no data object reached the bucket (listing error: %v); broker log tail:\n%s", lerr, p.LogTail())
	}
	if !settled {
		return nil, nil, fmt.Errorf("uploads still changing after %s", tierSettleTimeout)
	}
	b.acked = st.totalRecords
	ms = append(ms, report.Metric{Key: "fill-bytes" + key, Label: "record bytes acknowledged while filling" + label,
		Unit: report.Bytes, Value: float64(st.totalBytes)})
	ms = append(ms, report.Metric{Key: "fill" + key, Label: "fill throughput (acks=1, with S3, first round)" + label,
		Unit: report.BytesPerSec, Value: float64(st.prodBytes) / st.window.Seconds(), Limits: []report.Limit{diskSeqWrite(env.Limits)}})
	ms = append(ms, up.metrics(key, " (first round)"+label)...)
	env.Progress.Logf("%s bucket holds %s in %d objects", progressLabel(s.Name(), env), report.Format(report.Bytes, float64(last.bytes)), last.objects)
	return b, ms, nil
}

func (s *tierRecover) recover(ctx context.Context, env *Env, b *recoverBucket) (ms []report.Metric, notes []string, err error) {
	m := s.kit.m
	key, label := sizeKey(b.size), ", "+report.Format(report.Bytes, float64(b.size))
	dir := m.NewWALDir(s.Name() + "-recovered")
	p, err := s.kit.start(ctx, env.Cfg, dir, b.prefix)
	if err != nil {
		m.Cleanup(dir)
		return nil, nil, err
	}
	defer func() { err = errors.Join(err, s.kit.stop(p, dir)) }()
	rctx, cancel := context.WithTimeout(ctx, tierRecoverTimeout)
	defer cancel()
	ends, answer, err := firstEnds(rctx, p, b.topic)
	if err != nil {
		return nil, nil, fmt.Errorf("no ListOffsets answer for %s: %w; log tail:\n%s", b.topic, err, p.LogTail())
	}
	recovered := sumEnds(ends)
	if err := readLast(rctx, p.Addr, b.topic, ends); err != nil {
		return nil, nil, fmt.Errorf("reading the last records: %w; log tail:\n%s", err, p.LogTail())
	}
	last := time.Since(p.Started)
	env.Progress.Logf("%s%s: ready in %s, first answer in %s, last records read in %s, %d of %d acknowledged records",
		progressLabel(s.Name(), env), label, p.StartToReady.Round(time.Millisecond), answer.Round(time.Millisecond),
		last.Round(time.Millisecond), recovered, b.acked)
	ms = []report.Metric{
		{Key: "ready" + key, Label: "exec to ready" + label, Unit: report.Seconds, Value: p.StartToReady.Seconds()},
		{Key: "answer" + key, Label: "exec to first ListOffsets answer" + label, Unit: report.Seconds, Value: answer.Seconds()},
		{Key: "last" + key, Label: "exec to every partition's last record read" + label, Unit: report.Seconds, Value: last.Seconds()},
		{Key: "recovered" + key, Label: "records recovered (end offsets)" + label, Unit: report.Count, Value: float64(recovered)},
		{Key: "acked" + key, Label: "records acknowledged while filling" + label, Unit: report.Count, Value: float64(b.acked)},
	}
	if recovered < b.acked {
		notes = append(notes, fmt.Sprintf("round %d: %s: DATA CHECK FAILED: the recovered broker has %d of the %d acknowledged records "+
			"(%.1f%%)", env.Round, report.Format(report.Bytes, float64(b.size)), recovered, b.acked, 100*float64(recovered)/float64(b.acked)))
	}
	return ms, notes, nil
}

// firstEnds retries ListOffsets until the recovered broker answers for
// topic, and returns the end offsets and the time from exec to the answer.
func firstEnds(ctx context.Context, p *broker.Process, topic string) (map[int32]int64, time.Duration, error) {
	for {
		ends, err := listEnds(ctx, p.Addr, topic)
		if err == nil {
			return ends, time.Since(p.Started), nil
		}
		if serr := sleepCtx(ctx, 20*time.Millisecond); serr != nil {
			return nil, 0, errors.Join(err, serr)
		}
	}
}
