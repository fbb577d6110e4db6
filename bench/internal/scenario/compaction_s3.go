package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"

	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/bench/internal/stats"
	"github.com/klite/klite/tier"
	"github.com/klite/klite/tier/s3store"
)

// compaction-s3 (issue 13): compaction of data in the bucket. As
// `compaction`, but the broker tiers to versitygw and the fill is in the
// bucket before the topic turns compacted, so cleanings read their input
// from S3 and write compacted objects back.

const (
	// compactionS3MaxFill bounds the fill of one run: it goes up to the
	// bucket before the load, which takes longer than writing the WAL.
	compactionS3MaxFill = 512 << 20
	// compactionSampleEvery is how often the compaction counters are
	// read during the load, to find when cleanings were running.
	compactionSampleEvery = 200 * time.Millisecond
)

type compactionS3 struct{ kit tierKit }

func (s *compactionS3) Name() string { return "compaction-s3" }

func (s *compactionS3) fillBytes(cfg Config) int64 {
	return compactionFillBytes(cfg, compactionS3MaxFill)
}

func (s *compactionS3) Describe(cfg Config) string {
	return fmt.Sprintf("Log compaction of data in S3 while producing, on one fresh broker per round tiering to versitygw "+
		"(-segment-bytes %s, -wal-hot-bytes %s, -s3-flush-interval %s, -compaction-interval 500ms, -compaction-max-bytes-per-sec %d MiB/s). "+
		"Four runs in the order A B B A (A idle in odd rounds, compacting in even ones): each fills a one-partition topic "+
		"(cleanup.policy=delete) with %s of 1 KiB records over %d keys, waits until the bucket and the WAL have been still for %s "+
		"(uploaded), syncs the file systems, then runs acks=all produce paced at -rate, else half the round's acks=all peak, else %s, "+
		"on another topic; in the compacting runs the fill topic turns cleanup.policy=compact just before the load, so cleanings "+
		"read it from the bucket. Read rates are klite_compaction_read_bytes_total's growth: over the load's time, and over the "+
		"time cleanings were reading (sampled every %s: from the last sample before the counter moved to the last that moved it). "+
		"After the load, a compacting run waits (up to %s) until the fill topic's data object bytes in the bucket have halved "+
		"and then not changed for %s: the fill's bytes over the time from the compact switch to their last change are the "+
		"end-to-end cleaning rate, and the bytes then over before are the bucket ratio. Latency ratios are compacting / idle, "+
		"same broker, same round.",
		report.Format(report.Bytes, float64(cfg.TierSegmentBytes)), report.Format(report.Bytes, float64(cfg.TierHotBytes)), tierFlushInterval,
		compactionRate>>20, report.Format(report.Bytes, float64(s.fillBytes(cfg))), compactionKeys, tierQuiet,
		report.Format(report.RecordsPerSec, pacedRateDefault), compactionSampleEvery, tierSettleTimeout, tierQuiet)
}

func (s *compactionS3) Settings(cfg Config) []report.KV {
	return append(append(loadSettings(cfg, "all (paced)"), tierSettings(cfg)...),
		report.KV{Key: "fill", Value: report.Format(report.Bytes, float64(s.fillBytes(cfg)))},
		report.KV{Key: "compaction rate cap", Value: fmt.Sprintf("%d MiB/s", compactionRate>>20)})
}

func (s *compactionS3) Close() error { return s.kit.close() }

func (s *compactionS3) Run(ctx context.Context, env *Env) (res Result, err error) {
	s.kit.name = s.Name()
	if err := s.kit.prepare(ctx, env); err != nil {
		return res, err
	}
	if missing, err := s.kit.m.MissingFlags(ctx, "compaction-interval", "http-addr"); err != nil {
		return res, err
	} else if len(missing) > 0 {
		return res, &SkipError{Reason: fmt.Sprintf("klite -h does not list %v (issue 13)", missing)}
	}
	httpAddr, err := freePort()
	if err != nil {
		return res, err
	}
	r := &tierRun{dir: s.kit.m.NewWALDir(s.Name()), prefix: s.kit.prefix(s.Name())}
	r.p, err = s.kit.startFlush(ctx, env.Cfg, r.dir, r.prefix, tierFlushInterval, "-http-addr", httpAddr,
		"-compaction-interval", "500ms", "-compaction-max-bytes-per-sec", fmt.Sprint(compactionRate))
	if err != nil {
		s.kit.m.Cleanup(r.dir)
		return res, err
	}
	store, err := s.kit.srv.store(ctx, r.prefix)
	if err == nil {
		r.w = watchBucket(ctx, store, r.dir)
	}
	defer func() { err = errors.Join(err, s.kit.finish(r)) }()
	if err != nil {
		return res, err
	}
	b := r.p
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ClientID("klite-bench-compaction-s3"),
		kgo.ProducerBatchMaxBytes(256<<10), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return res, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rate := pacedRate(env.Cfg, env)
	lat := map[string]*stats.Hist{"idle": stats.NewHist(), "compacting": stats.NewHist()}
	var readWindow, secsWindow, readActive, secsActive, cleanedBytes, cleanedSecs float64
	var bucketBefore, bucketAfter int64
	for i, mode := range abba(env.Round, "idle", "compacting") {
		label := progressLabel(fmt.Sprintf("%s %d/4, %s", s.Name(), i+1, mode), env)
		fill := topicName(s.Name()+"-fill", env)
		env.Progress.Logf("%s filling %s and waiting for its upload", label, report.Format(report.Bytes, float64(s.fillBytes(env.Cfg))))
		if err := compactionFill(ctx, cl, adm, fill, s.fillBytes(env.Cfg)); err != nil {
			return res, err
		}
		if _, settled, err := r.w.settle(ctx); err != nil {
			return res, err
		} else if !settled {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d: uploads had not settled %s after the fill", env.Round, tierSettleTimeout))
		}
		unix.Sync()
		before, err := topicBucketBytes(ctx, store, fill)
		if err != nil {
			return res, err
		}
		smp := sampleCompaction(ctx, httpAddr)
		t0 := time.Now()
		if mode == "compacting" {
			if err := setCompact(ctx, adm, fill); err != nil {
				smp.stop()
				return res, err
			}
		}
		st, err := runLoad(ctx, env, loadSpec{label: label, addr: b.Addr, topic: topicName(s.Name(), env),
			partitions: env.Cfg.Partitions, acks: "all", rate: rate, producers: env.Cfg.Producers,
			warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID})
		took := time.Since(t0).Seconds() // with the topic switch before the load
		ss, serr := smp.stop()
		if err = errors.Join(err, serr); err != nil {
			return res, fmt.Errorf("%s: %w", mode, err)
		}
		res.Notes = append(res.Notes, errorNotes(st)...)
		lat[mode].Merge(st.lat)
		read := ss[len(ss)-1].read - ss[0].read
		if mode == "compacting" {
			// The fill is cleaned once its rewrites are published and the
			// replaced objects deleted: wait for the fill topic's bytes
			// in the bucket to halve (20,000 keys survive of the fill) and
			// then stay still.
			after, changed, done, err := waitBucketShrink(ctx, store, fill, before)
			if err != nil {
				return res, err
			}
			if done {
				cleanedBytes += float64(before)
				cleanedSecs += changed.Sub(t0).Seconds()
			} else {
				res.Notes = append(res.Notes, fmt.Sprintf("round %d: the fill topic's bucket bytes had not halved and settled %s "+
					"after the load (%d of %d)", env.Round, tierSettleTimeout, after, before))
			}
			bucketBefore += before
			bucketAfter += after
			readWindow += read
			secsWindow += took
			if n, d := activeSpan(ss); d > 0 {
				readActive += n
				secsActive += d
			}
			if last := ss[len(ss)-1]; len(ss) > 2 && last.read > ss[len(ss)-2].read {
				res.Notes = append(res.Notes, fmt.Sprintf("round %d: compaction was still reading when the load ended: the fill "+
					"outlasted the window", env.Round))
			}
		} else if read != 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d: compaction read %.0f bytes in an idle run", env.Round, read))
		}
		if _, err := adm.DeleteTopics(ctx, fill); err != nil {
			return res, err
		}
	}
	if readWindow == 0 || secsActive == 0 {
		return res, errors.New("compaction read nothing from the bucket in the compacting runs")
	}
	p := func(mode string, q float64) float64 { return lat[mode].Quantile(q).Seconds() }
	capLimit := report.Limit{Key: "rate-cap", Label: "-compaction-max-bytes-per-sec", Value: compactionRate}
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "cleaned", Label: "compaction read rate from S3 while cleanings ran", Unit: report.BytesPerSec, Value: readActive / secsActive,
			Limits: []report.Limit{capLimit}},
		report.Metric{Key: "cleaned-e2e", Label: "fill bytes in the bucket cleaned per second, compact switch to the bucket's last shrink", Unit: report.BytesPerSec,
			Value: ratio(cleanedBytes, cleanedSecs), Limits: []report.Limit{capLimit}},
		report.Metric{Key: "cleaned-window", Label: "compaction read rate from S3 over the load", Unit: report.BytesPerSec, Value: readWindow / secsWindow,
			Limits: []report.Limit{capLimit}},
		report.Metric{Key: "bucket-ratio", Label: "fill topic's bucket bytes after / before compaction", Unit: report.Count,
			Value: ratio(float64(bucketAfter), float64(bucketBefore))},
		report.Metric{Key: "p99-ratio", Label: "paced produce p99 (acks=all), compacting / idle", Unit: report.Count, Value: ratio(p("compacting", 99), p("idle", 99))},
		report.Metric{Key: "p99-idle", Label: "paced produce p99, idle", Unit: report.Seconds, Value: p("idle", 99), Limits: []report.Limit{twiceFsyncP99(env.Limits)}},
		report.Metric{Key: "p99-compacting", Label: "paced produce p99, compacting from S3", Unit: report.Seconds, Value: p("compacting", 99), Limits: []report.Limit{twiceFsyncP99(env.Limits)}},
		report.Metric{Key: "p50-idle", Label: "paced produce p50, idle", Unit: report.Seconds, Value: p("idle", 50)},
		report.Metric{Key: "p50-compacting", Label: "paced produce p50, compacting from S3", Unit: report.Seconds, Value: p("compacting", 50)},
		report.Metric{Key: "rate", Label: "paced rate (acks=all)", Unit: report.RecordsPerSec, Value: rate},
	)
	return res, nil
}

// topicBucketBytes sums the data object bytes of every partition of topic
// in the bucket (tier/doc.go: topics/<topic>-<id>/<partition>/data/).
func topicBucketBytes(ctx context.Context, store *s3store.Store, topic string) (int64, error) {
	var n int64
	err := store.List(ctx, "topics/"+topic+"-", "", func(o tier.ObjectInfo) error {
		if strings.Contains(o.Key, "/data/") && strings.HasSuffix(o.Key, ".klo") {
			n += o.Size
		}
		return nil
	})
	return n, err
}

// waitBucketShrink waits, up to tierSettleTimeout, until topic's data in
// the bucket is below half of before and has then not changed for
// tierQuiet (the cleanings of the fill are over); it returns the bytes
// last seen and when they last changed.
func waitBucketShrink(ctx context.Context, store *s3store.Store, topic string, before int64) (after int64, changed time.Time, done bool, err error) {
	deadline := time.Now().Add(tierSettleTimeout)
	last := int64(-1)
	for {
		if after, err = topicBucketBytes(ctx, store, topic); err != nil {
			return after, changed, false, err
		}
		now := time.Now()
		if after != last {
			last, changed = after, now
		}
		if after < before/2 && now.Sub(changed) >= tierQuiet {
			return after, changed, true, nil
		}
		if now.After(deadline) {
			return after, changed, false, nil
		}
		if err := sleepCtx(ctx, tierPollEvery); err != nil {
			return after, changed, false, err
		}
	}
}

// compSample is klite_compaction_read_bytes_total at one time.
type compSample struct {
	t    time.Time
	read float64
}

// compSampler reads the compaction counter every compactionSampleEvery
// until stopped.
type compSampler struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	ss     []compSample // guarded by mu
	err    error        // guarded by mu
}

func sampleCompaction(ctx context.Context, httpAddr string) *compSampler {
	ctx, cancel := context.WithCancel(ctx)
	c := &compSampler{cancel: cancel, done: make(chan struct{})}
	take := func() {
		v, err := compactionCounters(ctx, httpAddr)
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				c.err = err
			}
			return
		}
		c.ss = append(c.ss, compSample{t: time.Now(), read: v})
	}
	take() // the first sample before the load starts
	go func() {
		defer close(c.done)
		t := time.NewTicker(compactionSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				take()
			}
		}
	}()
	return c
}

// stop ends the sampling with one last sample and returns them all.
func (c *compSampler) stop() ([]compSample, error) {
	c.cancel()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	if len(c.ss) == 0 {
		return nil, errors.New("scenario: no compaction counter sample")
	}
	return c.ss, nil
}

// activeSpan is the bytes read and the seconds from the last sample before
// the counter first moved to the last sample that moved it.
func activeSpan(ss []compSample) (read, secs float64) {
	first, last := -1, -1
	for i := 1; i < len(ss); i++ {
		if ss[i].read > ss[i-1].read {
			if first < 0 {
				first = i - 1
			}
			last = i
		}
	}
	if first < 0 {
		return 0, 0
	}
	return ss[last].read - ss[first].read, ss[last].t.Sub(ss[first].t).Seconds()
}
