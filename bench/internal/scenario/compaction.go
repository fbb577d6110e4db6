package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"

	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/bench/internal/stats"
)

// compaction (issue 13): how fast log compaction cleans, and what a
// cleaning running in the background costs acks=all produce latency.

const (
	// compactionRate is the broker's -compaction-max-bytes-per-sec here
	// (klite's default).
	compactionRate = 64 << 20
	// compactionKeys is how many distinct keys the fill cycles through.
	compactionKeys = 20_000
	// compactionSegment is the broker's -segment-bytes: only sealed
	// segments are compacted, so smaller ones make more of the fill
	// cleanable.
	compactionSegment = 64 << 20
	// compactionMaxFill bounds the fill of one run.
	compactionMaxFill = 1 << 30
)

type compactionBench struct{}

func (s *compactionBench) Name() string { return "compaction" }

func (s *compactionBench) fillBytes(cfg Config) int64 {
	return compactionFillBytes(cfg, compactionMaxFill)
}

// compactionFillBytes sizes a fill to last the load's window at the
// compaction rate cap, up to max.
func compactionFillBytes(cfg Config, max int64) int64 {
	return min(int64(float64(compactionRate)*(cfg.Warmup+cfg.Duration).Seconds()), max)
}

func (s *compactionBench) Describe(cfg Config) string {
	return fmt.Sprintf("Log compaction while producing, on one fresh broker per round (-segment-bytes %d MiB, "+
		"-compaction-interval 500ms, -compaction-max-bytes-per-sec %d MiB/s, -http-addr). Four runs in the order A B B A "+
		"(A idle in odd rounds, compacting in even ones): each first fills a one-partition topic (cleanup.policy=delete) "+
		"with %s of 1 KiB records over %d keys (acks=all, one client), syncs the file systems (sync(2), so the fill's "+
		"writeback stays out of the window), then runs acks=all produce paced at -rate, else "+
		"half the round's acks=all peak, else %s, on another topic for the p99; in the compacting runs the fill topic is "+
		"switched to cleanup.policy=compact just before the load, so cleanings run through it (the fill is sized to "+
		"last the window at the rate cap). Compaction's read rate is klite_compaction_read_bytes_total's growth (dirty bytes count twice: read to "+
		"map keys, read to copy) over the load's time; the ratios are compacting / idle, same broker, same round.",
		compactionSegment>>20, compactionRate>>20, report.Format(report.Bytes, float64(s.fillBytes(cfg))), compactionKeys,
		report.Format(report.RecordsPerSec, pacedRateDefault))
}

func (s *compactionBench) Settings(cfg Config) []report.KV {
	return append(loadSettings(cfg, "all (paced)"),
		report.KV{Key: "fill", Value: report.Format(report.Bytes, float64(s.fillBytes(cfg)))},
		report.KV{Key: "compaction rate cap", Value: fmt.Sprintf("%d MiB/s", compactionRate>>20)})
}

func (s *compactionBench) Close() error { return nil }

func (s *compactionBench) Run(ctx context.Context, env *Env) (res Result, err error) {
	m := env.Brokers.Managed()
	if m == nil {
		return res, ErrNeedsManaged
	}
	if missing, err := m.MissingFlags(ctx, "compaction-interval", "http-addr"); err != nil {
		return res, err
	} else if len(missing) > 0 {
		return res, &SkipError{Reason: fmt.Sprintf("klite -h does not list %v (issue 13)", missing)}
	}
	httpAddr, err := freePort()
	if err != nil {
		return res, err
	}
	b, err := m.BrokerWith(ctx, s.Name(), []string{"-http-addr", httpAddr, "-segment-bytes", fmt.Sprint(compactionSegment),
		"-compaction-interval", "500ms", "-compaction-max-bytes-per-sec", fmt.Sprint(compactionRate)}, nil)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ClientID("klite-bench-compaction"),
		kgo.ProducerBatchMaxBytes(256<<10), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return res, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rate := pacedRate(env.Cfg, env)
	lat := map[string]*stats.Hist{"idle": stats.NewHist(), "compacting": stats.NewHist()}
	var cleaned, cleanSecs float64
	for i, mode := range abba(env.Round, "idle", "compacting") {
		label := progressLabel(fmt.Sprintf("%s %d/4, %s", s.Name(), i+1, mode), env)
		fill := topicName(s.Name()+"-fill", env)
		env.Progress.Logf("%s filling %s", label, report.Format(report.Bytes, float64(s.fillBytes(env.Cfg))))
		if err := compactionFill(ctx, cl, adm, fill, s.fillBytes(env.Cfg)); err != nil {
			return res, err
		}
		// The fill's page cache writeback otherwise lands in the window
		// of whichever side comes next (p99s of 15 to 400 ms both ways).
		unix.Sync()
		read0, err := compactionCounters(ctx, httpAddr)
		if err != nil {
			return res, err
		}
		t0 := time.Now()
		if mode == "compacting" {
			if err := setCompact(ctx, adm, fill); err != nil {
				return res, err
			}
		}
		st, err := runLoad(ctx, env, loadSpec{label: label, addr: b.Addr, topic: topicName(s.Name(), env),
			partitions: env.Cfg.Partitions, acks: "all", rate: rate, producers: env.Cfg.Producers,
			warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID})
		if err != nil {
			return res, fmt.Errorf("%s: %w", mode, err)
		}
		took := time.Since(t0).Seconds()
		read1, err := compactionCounters(ctx, httpAddr)
		if err != nil {
			return res, err
		}
		res.Notes = append(res.Notes, errorNotes(st)...)
		lat[mode].Merge(st.lat)
		if mode == "compacting" {
			cleaned += read1 - read0
			cleanSecs += took
		} else if read1 != read0 {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d: compaction read %.0f bytes in an idle run", env.Round, read1-read0))
		}
		if _, err := adm.DeleteTopics(ctx, fill); err != nil {
			return res, err
		}
	}
	if cleaned == 0 {
		return res, errors.New("compaction read nothing in the compacting runs")
	}
	p := func(mode string, q float64) float64 { return lat[mode].Quantile(q).Seconds() }
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "cleaned", Label: "compaction read rate while producing", Unit: report.BytesPerSec, Value: cleaned / cleanSecs,
			Limits: []report.Limit{{Key: "rate-cap", Label: "-compaction-max-bytes-per-sec", Value: compactionRate}, diskSeqWrite(env.Limits)}},
		report.Metric{Key: "p99-ratio", Label: "paced produce p99 (acks=all), compacting / idle", Unit: report.Count, Value: ratio(p("compacting", 99), p("idle", 99))},
		report.Metric{Key: "p99-idle", Label: "paced produce p99, idle", Unit: report.Seconds, Value: p("idle", 99), Limits: []report.Limit{twiceFsyncP99(env.Limits)}},
		report.Metric{Key: "p99-compacting", Label: "paced produce p99, compacting", Unit: report.Seconds, Value: p("compacting", 99), Limits: []report.Limit{twiceFsyncP99(env.Limits)}},
		report.Metric{Key: "p50-idle", Label: "paced produce p50, idle", Unit: report.Seconds, Value: p("idle", 50)},
		report.Metric{Key: "p50-compacting", Label: "paced produce p50, compacting", Unit: report.Seconds, Value: p("compacting", 50)},
		report.Metric{Key: "rate", Label: "paced rate (acks=all)", Unit: report.RecordsPerSec, Value: rate},
	)
	return res, nil
}

// setCompact switches topic to cleanup.policy=compact.
func setCompact(ctx context.Context, adm *kadm.Client, topic string) error {
	r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, topic)
	if err == nil {
		_, err = r.On(topic, nil)
	}
	if err != nil {
		return fmt.Errorf("cleanup.policy=compact: %w", err)
	}
	return nil
}

// compactionFill creates topic (one partition, cleanup.policy=delete) and
// produces n bytes of 1 KiB keyed records to it with acks=all.
func compactionFill(ctx context.Context, cl *kgo.Client, adm *kadm.Client, topic string, n int64) error {
	r, err := adm.CreateTopic(ctx, 1, 1, nil, topic)
	if err == nil {
		err = r.Err
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", topic, err)
	}
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	var mu sync.Mutex
	var firstErr error
	errs := 0
	for sent := int64(0); sent < n; sent += 1024 {
		v := make([]byte, 1000)
		for j := 0; j < len(v); j += 8 {
			u := rng.Uint64()
			for k := 0; k < 8 && j+k < len(v); k++ {
				v[j+k] = byte(u >> (8 * k))
			}
		}
		rec := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "key-%06d", rng.IntN(compactionKeys)), Value: v}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if errs++; firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if errs > 0 {
		return fmt.Errorf("%d produce errors while filling, first: %w", errs, firstErr)
	}
	return nil
}

// compactionCounters scrapes klite_compaction_read_bytes_total.
func compactionCounters(ctx context.Context, httpAddr string) (float64, error) {
	body, _, err := scrape(ctx, httpAddr)
	if err != nil {
		return 0, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	const name = "klite_compaction_read_bytes_total"
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) == 0 {
		return 0, fmt.Errorf("scenario: /metrics has no %s", name)
	}
	return f.GetMetric()[0].GetCounter().GetValue(), nil
}
