package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/bench/internal/stats"
)

// The metrics group (-scenario metrics): what klite's Prometheus endpoint
// (-http-addr, issue 14) costs the produce path while scraped, and what a
// scrape costs at 1,000 and 100,000 partitions.

const (
	// scrapeEvery is the scrape loop's interval (a common Prometheus
	// scrape_interval is 15-60 s: 1 s is a harsh one).
	scrapeEvery   = time.Second
	scrapeTimeout = 10 * time.Second
	// scrapeScaleTopicParts is the size of metrics-scrape's topics, and
	// scrapeScaleBatch how many one CreateTopics request creates.
	scrapeScaleTopicParts = 100
	scrapeScaleBatch      = 100
	// scrapeScaleSamples is how many scrapes metrics-scrape times at each
	// size, after one untimed, scrapeScalePause apart.
	scrapeScaleSamples = 10
	scrapeScalePause   = 100 * time.Millisecond
	// scrapeScaleGroup commits an offset on every partition, so lag
	// series are as many as the cap allows.
	scrapeScaleGroup = "bench-metrics-lag"
)

// scrapeScaleSizes are metrics-scrape's partition counts, in order.
var scrapeScaleSizes = []int{1000, 100_000}

// scrapeBody is what one scrape returned.
type scrapeBody struct {
	bytes      int     // body size
	families   int     // metric families
	samples    int     // samples (histogram buckets, sums and counts each count)
	partitions float64 // klite_partitions; -1 when absent
}

// parseScrape parses a Prometheus text-format body with Prometheus's own
// parser and counts what it holds.
func parseScrape(body []byte) (scrapeBody, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return scrapeBody{}, fmt.Errorf("scenario: parse /metrics: %w", err)
	}
	out := scrapeBody{bytes: len(body), families: len(fams), partitions: -1}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetHistogram() != nil:
				out.samples += len(m.GetHistogram().GetBucket()) + 2 // the +Inf bucket is among them; sum, count
			case m.GetSummary() != nil:
				out.samples += len(m.GetSummary().GetQuantile()) + 2
			default:
				out.samples++
			}
			if name == "klite_partitions" && m.GetGauge() != nil {
				out.partitions = m.GetGauge().GetValue()
			}
		}
	}
	return out, nil
}

// scrape GETs http://addr/metrics once and returns the body and how long
// the request took, from sending it to the last byte.
func scrape(ctx context.Context, addr string) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, 0, err
	}
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	took := time.Since(t0)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("scenario: /metrics answered %s", resp.Status)
	}
	return b, took, err
}

// scrapeLoop scrapes addr every scrapeEvery until stopped.
type scrapeLoop struct {
	took   *stats.Hist
	mu     sync.Mutex
	n      int
	bytes  int // last body's size
	errs   int
	first  error
	cancel context.CancelFunc
	done   chan struct{}
}

func startScrapeLoop(ctx context.Context, addr string) *scrapeLoop {
	ctx, cancel := context.WithCancel(ctx)
	s := &scrapeLoop{took: stats.NewHist(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(scrapeEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			b, took, err := scrape(ctx, addr)
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			if err != nil {
				s.errs++
				if s.first == nil {
					s.first = err
				}
			} else {
				s.n++
				s.bytes = len(b)
				s.took.Record(took)
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// stop ends the loop and returns its scrape count, last body size and
// first error.
func (s *scrapeLoop) stop() (n, bytes, errs int, first error) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.bytes, s.errs, s.first
}

// metricsBroker starts a fresh klite with -http-addr on a free loopback
// port and returns it with that address.
func metricsBroker(ctx context.Context, env *Env, name string) (*Broker, string, error) {
	m := env.Brokers.Managed()
	if m == nil {
		return nil, "", ErrNeedsManaged
	}
	if missing, err := m.MissingFlags(ctx, "http-addr"); err != nil {
		return nil, "", err
	} else if len(missing) > 0 {
		return nil, "", &SkipError{Reason: fmt.Sprintf("klite -h does not list %v (issue 14)", missing)}
	}
	httpAddr, err := freePort()
	if err != nil {
		return nil, "", err
	}
	b, err := m.BrokerWith(ctx, name, []string{"-http-addr", httpAddr}, nil)
	return b, httpAddr, err
}

// metricsProduce: produce with a 1 s scrape loop against without, on one
// broker.
type metricsProduce struct{}

func (s *metricsProduce) Name() string { return "metrics-produce" }

func (s *metricsProduce) Describe(cfg Config) string {
	return fmt.Sprintf("Produce with a scrape loop against without, on one fresh broker per round started with -http-addr on a "+
		"loopback port. With the loop, a benchmark goroutine GETs /metrics every %s (one request at a time, timed from sending "+
		"to the body's last byte) from before the load's topic is created until its window ends; without, nothing scrapes. "+
		"Two loads, each run four times on a fresh topic in the order A B B A (A without the loop in odd rounds, with it in even "+
		"ones), a side's figures over its two runs together: %d producer clients as fast as they go with acks=1 (peak: acks=1, "+
		"so the disk does not hide CPU the metrics take), and acks=all paced at -rate, else half the round's acks=all peak, else "+
		"%s, for the p99 (latency from each record's due time, both runs' histograms merged). The ratios are with / without "+
		"the loop, same broker, same round. The counters themselves are always on (klite keeps them whether or not -http-addr "+
		"is set), so this is what serving scrapes costs the produce path.",
		scrapeEvery, cfg.Producers, report.Format(report.RecordsPerSec, pacedRateDefault))
}

func (s *metricsProduce) Settings(cfg Config) []report.KV {
	return append(loadSettings(cfg, "1 (peak), all (paced)"), report.KV{Key: "scrape interval", Value: scrapeEvery.String()})
}

func (s *metricsProduce) Close() error { return nil }

// abba orders two sides of a comparison run twice each: a b b a in odd
// rounds, b a a b in even ones.
func abba(round int, a, b string) []string {
	if round%2 == 0 {
		a, b = b, a
	}
	return []string{a, b, b, a}
}

// scrapeSide sums one side's runs of metrics-produce.
type scrapeSide struct {
	peakBytes, peakSecs, peakCPU float64
	pacedRecs, pacedSecs         float64
	lat                          *stats.Hist
}

func (s *metricsProduce) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, httpAddr, err := metricsBroker(ctx, env, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	rate := pacedRate(env.Cfg, env)
	sides := map[string]*scrapeSide{"off": {lat: stats.NewHist()}, "scraped": {lat: stats.NewHist()}}
	scrapeTook := stats.NewHist()
	var scrapes, body, scrapeErrs int
	var firstErr error
	for _, paced := range []bool{false, true} {
		kind := "peak"
		if paced {
			kind = "paced"
		}
		for i, mode := range abba(env.Round, "off", "scraped") {
			spec := loadSpec{
				label: progressLabel(fmt.Sprintf("%s %s %d/4, %s", s.Name(), kind, i+1, mode), env), addr: b.Addr,
				topic: topicName(s.Name()+"-"+kind, env), partitions: env.Cfg.Partitions, acks: "1", producers: env.Cfg.Producers,
				warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID,
			}
			if paced {
				spec.acks, spec.rate = "all", rate
			}
			var loop *scrapeLoop
			if mode == "scraped" {
				loop = startScrapeLoop(ctx, httpAddr)
			}
			st, err := runLoad(ctx, env, spec)
			if loop != nil {
				n, size, errs, first := loop.stop()
				scrapes, scrapeErrs = scrapes+n, scrapeErrs+errs
				if size > 0 {
					body = size
				}
				if firstErr == nil {
					firstErr = first
				}
				scrapeTook.Merge(loop.took)
			}
			if err != nil {
				return res, fmt.Errorf("%s, %s: %w", kind, mode, err)
			}
			res.Notes = append(res.Notes, errorNotes(st)...)
			side := sides[mode]
			if paced {
				side.pacedRecs += float64(st.prodRecords)
				side.pacedSecs += st.window.Seconds()
				side.lat.Merge(st.lat)
			} else {
				side.peakBytes += float64(st.prodBytes)
				side.peakSecs += st.window.Seconds()
				side.peakCPU += st.brokerCPU.Seconds()
			}
		}
	}
	if scrapeErrs > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: %d failed scrapes, first: %v", env.Round, scrapeErrs, firstErr))
	}
	if scrapes == 0 {
		return res, fmt.Errorf("no scrape succeeded (%d failed, first: %v)", scrapeErrs, firstErr)
	}
	off, on := sides["off"], sides["scraped"]
	peak := func(s *scrapeSide) float64 { return s.peakBytes / s.peakSecs }
	cpuGB := func(s *scrapeSide) float64 { return s.peakCPU / (s.peakBytes / 1e9) }
	p := func(s *scrapeSide, q float64) float64 { return s.lat.Quantile(q).Seconds() }
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "peak-ratio", Label: "peak produce throughput (acks=1), with the scrape loop / without", Unit: report.Fraction, Value: ratio(peak(on), peak(off))},
		report.Metric{Key: "p99-ratio", Label: "paced produce p99 (acks=all), with / without", Unit: report.Count, Value: ratio(p(on, 99), p(off, 99))},
		report.Metric{Key: "cpu-ratio", Label: "broker CPU per GB at peak, with / without", Unit: report.Count, Value: ratio(cpuGB(on), cpuGB(off))},
		report.Metric{Key: "rate", Label: "paced rate (acks=all)", Unit: report.RecordsPerSec, Value: rate},
		report.Metric{Key: "peak-off", Label: "peak produce throughput (acks=1), without", Unit: report.BytesPerSec, Value: peak(off), Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "peak-on", Label: "peak produce throughput (acks=1), with the scrape loop", Unit: report.BytesPerSec, Value: peak(on), Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "p99-off", Label: "paced produce p99, without", Unit: report.Seconds, Value: p(off, 99), Limits: []report.Limit{twiceFsyncP99(env.Limits)}},
		report.Metric{Key: "p99-on", Label: "paced produce p99, with the scrape loop", Unit: report.Seconds, Value: p(on, 99), Limits: []report.Limit{twiceFsyncP99(env.Limits)}},
		report.Metric{Key: "p50-off", Label: "paced produce p50, without", Unit: report.Seconds, Value: p(off, 50)},
		report.Metric{Key: "p50-on", Label: "paced produce p50, with the scrape loop", Unit: report.Seconds, Value: p(on, 50)},
		report.Metric{Key: "achieved-off", Label: "paced achieved rate, without", Unit: report.RecordsPerSec, Value: off.pacedRecs / off.pacedSecs},
		report.Metric{Key: "achieved-on", Label: "paced achieved rate, with the scrape loop", Unit: report.RecordsPerSec, Value: on.pacedRecs / on.pacedSecs},
		report.Metric{Key: "cpu-per-gb-off", Label: "broker CPU per GB at peak, without", Unit: report.CPUPerGB, Value: cpuGB(off)},
		report.Metric{Key: "cpu-per-gb-on", Label: "broker CPU per GB at peak, with the scrape loop", Unit: report.CPUPerGB, Value: cpuGB(on)},
		report.Metric{Key: "scrapes", Label: "scrapes during the loads with the loop", Unit: report.Count, Value: float64(scrapes)},
		report.Metric{Key: "scrape-p50", Label: "scrape time under load, p50", Unit: report.Seconds, Value: scrapeTook.Quantile(50).Seconds()},
		report.Metric{Key: "scrape-max", Label: "scrape time under load, max", Unit: report.Seconds, Value: scrapeTook.Max().Seconds()},
		report.Metric{Key: "scrape-bytes", Label: "scrape body under load", Unit: report.Bytes, Value: float64(body)},
	)
	return res, nil
}

// metricsScrape: scrape time and size at 1,000 and 100,000 partitions.
type metricsScrape struct {
	sizes []int // partition counts, ascending; nil: scrapeScaleSizes
}

func (s *metricsScrape) partitionCounts() []int {
	if s.sizes != nil {
		return s.sizes
	}
	return scrapeScaleSizes
}

func (s *metricsScrape) Name() string { return "metrics-scrape" }

func (s *metricsScrape) Describe(Config) string {
	sizes := s.partitionCounts()
	return fmt.Sprintf("Scrape time and body size of /metrics at %s partitions, on one fresh broker per round with -http-addr: "+
		"topics of %d partitions (created %d per CreateTopics request), and one consumer group (%s) with an offset committed on "+
		"every partition, so klite_group_lag holds as many series as -metrics-max-lag-series allows (10,000 by default; the "+
		"rest is in klite_group_topic_lag). No records: the series are there without them. At each size, after one untimed "+
		"scrape, %d scrapes %s apart, each timed from sending the request to the body's last byte and parsed with Prometheus's "+
		"text parser (prometheus/common expfmt), which also checks klite_partitions. Broker CPU per scrape is its CPU time over "+
		"the scrapes / scrapes; at a 1 s scrape interval that is also the cores scraping takes. The broker grows from the "+
		"first size to the second, so the second scrapes a broker that held the first.",
		joinInts(sizes, ", ", " and "), scrapeScaleTopicParts, scrapeScaleBatch, scrapeScaleGroup, scrapeScaleSamples, scrapeScalePause)
}

func (s *metricsScrape) Settings(Config) []report.KV {
	return []report.KV{
		{Key: "partitions", Value: joinInts(s.partitionCounts(), ", ", ", ")},
		{Key: "partitions per topic", Value: fmt.Sprint(scrapeScaleTopicParts)},
		{Key: "timed scrapes per size", Value: fmt.Sprint(scrapeScaleSamples)},
	}
}

func (s *metricsScrape) Close() error { return nil }

// scrapeFigures are one size's figures.
type scrapeFigures struct {
	p50, max, cpu float64 // seconds; broker CPU-s per scrape
	body          scrapeBody
	grow          time.Duration // creating the topics and committing
}

func (s *metricsScrape) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, httpAddr, err := metricsBroker(ctx, env, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ClientID("klite-bench-metrics"), kgo.RequestTimeoutOverhead(5*time.Minute))
	if err != nil {
		return res, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	have := 0 // topics created so far
	got := map[int]scrapeFigures{}
	sizes := s.partitionCounts()
	for _, size := range sizes {
		t0 := time.Now()
		want := size / scrapeScaleTopicParts
		if err := growTopics(ctx, adm, have, want); err != nil {
			return res, err
		}
		if err := commitAll(ctx, adm, have, want); err != nil {
			return res, err
		}
		have = want
		fig := scrapeFigures{grow: time.Since(t0)}
		env.Progress.Logf("%s %d partitions in %s", progressLabel(s.Name(), env), size, fig.grow.Round(time.Millisecond))
		if fig, err = s.measure(ctx, env, b, httpAddr, size, fig); err != nil {
			return res, fmt.Errorf("%d partitions: %w", size, err)
		}
		got[size] = fig
	}
	small, large := sizes[0], sizes[len(sizes)-1]
	for _, size := range sizes {
		f := got[size]
		res.Metrics = append(res.Metrics,
			report.Metric{Key: fmt.Sprintf("time-p50-%d", size), Label: fmt.Sprintf("scrape time p50, %d partitions", size), Unit: report.Seconds, Value: f.p50},
			report.Metric{Key: fmt.Sprintf("time-max-%d", size), Label: fmt.Sprintf("scrape time max, %d partitions", size), Unit: report.Seconds, Value: f.max},
			report.Metric{Key: fmt.Sprintf("bytes-%d", size), Label: fmt.Sprintf("body size, %d partitions", size), Unit: report.Bytes, Value: float64(f.body.bytes)},
			report.Metric{Key: fmt.Sprintf("samples-%d", size), Label: fmt.Sprintf("samples in the body, %d partitions", size), Unit: report.Count, Value: float64(f.body.samples)},
			report.Metric{Key: fmt.Sprintf("cpu-%d", size), Label: fmt.Sprintf("broker CPU per scrape, %d partitions", size), Unit: report.Seconds, Value: f.cpu},
			report.Metric{Key: fmt.Sprintf("setup-%d", size), Label: fmt.Sprintf("creating the topics and committing, up to %d partitions", size), Unit: report.Seconds, Value: f.grow.Seconds()},
		)
	}
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "time-ratio", Label: fmt.Sprintf("scrape time p50, %d / %d partitions", large, small), Unit: report.Count, Value: ratio(got[large].p50, got[small].p50)},
		report.Metric{Key: "bytes-ratio", Label: fmt.Sprintf("body size, %d / %d partitions", large, small), Unit: report.Count, Value: ratio(float64(got[large].body.bytes), float64(got[small].body.bytes))},
		report.Metric{Key: "interval-share", Label: fmt.Sprintf("scrape time p50 at %d partitions / the %s scrape interval", large, scrapeEvery), Unit: report.Fraction, Value: got[large].p50 / scrapeEvery.Seconds()},
	)
	return res, nil
}

// measure times scrapeScaleSamples scrapes of a broker holding size
// partitions.
func (s *metricsScrape) measure(ctx context.Context, env *Env, b *Broker, httpAddr string, size int, fig scrapeFigures) (scrapeFigures, error) {
	body, _, err := scrape(ctx, httpAddr) // untimed: the first builds what later ones reuse
	if err != nil {
		return fig, err
	}
	if fig.body, err = parseScrape(body); err != nil {
		return fig, err
	}
	if fig.body.partitions != float64(size) {
		return fig, fmt.Errorf("klite_partitions is %v, want %d", fig.body.partitions, size)
	}
	h := stats.NewHist()
	var cpu0, cpu1 time.Duration
	if b.PID > 0 {
		if cpu0, err = proc.CPU(b.PID); err != nil {
			return fig, err
		}
	}
	for i := range scrapeScaleSamples {
		if i > 0 {
			if err := sleepCtx(ctx, scrapeScalePause); err != nil {
				return fig, err
			}
		}
		_, took, err := scrape(ctx, httpAddr)
		if err != nil {
			return fig, err
		}
		h.Record(took)
		env.Progress.Update("%s %d partitions: scrape %d/%d %s", progressLabel(s.Name(), env), size, i+1, scrapeScaleSamples,
			report.Format(report.Seconds, took.Seconds()))
	}
	env.Progress.Done()
	if b.PID > 0 {
		if cpu1, err = proc.CPU(b.PID); err != nil {
			return fig, err
		}
		fig.cpu = (cpu1 - cpu0).Seconds() / scrapeScaleSamples
	}
	fig.p50, fig.max = h.Quantile(50).Seconds(), h.Max().Seconds()
	return fig, nil
}

// growTopics creates topics from..to-1 (scrapeScaleTopicParts partitions
// each), scrapeScaleBatch per request.
func growTopics(ctx context.Context, adm *kadm.Client, from, to int) error {
	for i := from; i < to; i += scrapeScaleBatch {
		var names []string
		for j := i; j < min(to, i+scrapeScaleBatch); j++ {
			names = append(names, scrapeTopic(j))
		}
		resp, err := adm.CreateTopics(ctx, scrapeScaleTopicParts, 1, nil, names...)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("create topics %d-%d: %w", i, i+len(names)-1, err)
		}
	}
	return nil
}

// commitAll commits offset 0 on every partition of topics from..to-1 for
// scrapeScaleGroup.
func commitAll(ctx context.Context, adm *kadm.Client, from, to int) error {
	for i := from; i < to; i += scrapeScaleBatch {
		os := kadm.Offsets{}
		for j := i; j < min(to, i+scrapeScaleBatch); j++ {
			for p := range int32(scrapeScaleTopicParts) {
				os.Add(kadm.Offset{Topic: scrapeTopic(j), Partition: p, At: 0, LeaderEpoch: -1})
			}
		}
		resp, err := adm.CommitOffsets(ctx, scrapeScaleGroup, os)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("commit offsets of topics %d-%d: %w", i, min(to, i+scrapeScaleBatch)-1, err)
		}
	}
	return nil
}

func scrapeTopic(i int) string { return fmt.Sprintf("bench-metrics-%d", i) }
