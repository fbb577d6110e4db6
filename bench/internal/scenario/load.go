package scenario

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/bench/internal/stats"
)

// Timeouts around a load run; generous because the machine is shared.
const (
	topicReadyTimeout = 30 * time.Second
	flushTimeout      = time.Minute
	rssSampleEvery    = 250 * time.Millisecond
	progressEvery     = time.Second
	payloadPoolBytes  = 1 << 20
	payloadStride     = 4099 // prime: successive records start at different offsets
)

// payloadPool holds random bytes record values are sliced from. Random, so
// values are incompressible: compression costs CPU and saves nothing, and no
// layer can flatter the figures by deduplicating.
var payloadPool = func() []byte {
	b := make([]byte, payloadPoolBytes+64<<10)
	rand.Read(b)
	return b
}()

// textPool holds log-line-like text (JSON objects with random numbers)
// for scenarios that measure compression: it compresses about 3-5x with
// lz4 and zstd, as real payloads do.
var textPool = func() []byte {
	b := make([]byte, 0, payloadPoolBytes+64<<10+100)
	var r [8]byte
	for len(b) < payloadPoolBytes+64<<10 {
		rand.Read(r[:])
		u := binary.LittleEndian.Uint64(r[:])
		b = fmt.Appendf(b, `{"ts":%d,"user":"u%d","op":"get","path":"/v1/items/%d","ok":true} `, 1700000000000+u%1e9, u>>40%977, u>>20%100000)
	}
	return b
}()

// payload hands out record values of a fixed size. One per goroutine.
type payload struct {
	size int
	off  int
	pool []byte // payloadPool, or a private one for records larger than its slack
	text bool   // from textPool (compressible) instead of random bytes
}

func (p *payload) next() []byte {
	if p.pool == nil && p.text && p.size <= len(textPool)-payloadPoolBytes {
		p.pool = textPool
	}
	if p.pool == nil {
		p.pool = payloadPool
		if p.size > len(payloadPool)-payloadPoolBytes {
			p.pool = make([]byte, payloadPoolBytes+p.size)
			rand.Read(p.pool)
		}
	}
	p.off = (p.off + payloadStride) % payloadPoolBytes
	return p.pool[p.off : p.off+p.size]
}

// loadSpec shapes one load run.
type loadSpec struct {
	label      string // shown in the progress line
	addr       string
	topic      string
	partitions int
	acks       string
	rate       float64 // records/s over all producers; 0 = as fast as possible
	producers  int
	consumers  int
	warmup     time.Duration
	duration   time.Duration
	brokerPID  int // 0: do not read the broker's CPU and RSS
	// stopAfterBytes, when > 0, ends production once this many value bytes
	// have been acknowledged, instead of after warmup+duration (WAL fill).
	stopAfterBytes int64
	batchBytes     int // 0: Config.BatchBytes
	recordSize     int // 0: Config.RecordSize
	// compression overrides Config.Compression; its values are then
	// compressible text (textPool), so the codec has work to do.
	compression string
	maxBuffered int // records a producer client buffers; 0: franz-go's default (50,000)
	// e2e stamps each record with its due time in a header and has the
	// consumers record producer-to-consumer latency from it.
	e2e bool
	// existingTopic skips creating the topic (catch-up reads a backlog).
	existingTopic bool
	// fetchTarget, when > 0, ends the window once consumers have fetched
	// this many records (catch-up), checked every fetchPollEvery.
	fetchTarget int64
	// perSecond also keeps a latency histogram per second of the window,
	// by acknowledgement time (produce-steady's per-second p99).
	perSecond bool
	// clientOpts go to every client of the run, the topic's admin
	// included: TLS and SASL for the security scenarios.
	clientOpts []kgo.Opt
	// markHeader, when set, has the consumers count the records that
	// carry a header with this key (txn-fetch: records of aborted
	// transactions).
	markHeader string
}

// e2eHeader carries a record's due time, UnixNano big-endian, for
// end-to-end latency.
const e2eHeader = "klite-bench-t"

// fetchPollEvery is how often a catch-up window checks whether it is done.
const fetchPollEvery = 20 * time.Millisecond

// loadStats are the figures of the measured window (after warmup).
type loadStats struct {
	start        time.Time // when the measured window began
	window       time.Duration
	prodRecords  int64
	prodBytes    int64
	fetchRecords int64
	fetchBytes   int64
	fetchMarked  int64 // records with loadSpec.markHeader, whole run
	lag          int64 // records produced but not yet fetched at the end of the window
	lat          *stats.Hist
	e2e          *stats.Hist   // producer-to-consumer latency, with loadSpec.e2e
	perSecond    []*stats.Hist // with loadSpec.perSecond: second i of the window; the last may be partial
	brokerCPU    time.Duration
	clientCPU    time.Duration
	otherCPU     time.Duration // the rest of the machine's busy CPU: other work on a shared machine
	brokerRSS    int64         // peak during the window
	errs         int64
	firstErr     error
	totalRecords int64 // acknowledged over the whole run, warmup and drain included
	totalBytes   int64
	// The producers' view of the window (kgo hooks): Produce requests
	// written, and record batches with the records in them. How much a
	// client batches depends on how fast the broker answers.
	produceRequests int64
	batches         int64
	batchRecords    int64
}

// loadRun is the shared state of producers and consumers.
type loadRun struct {
	spec loadSpec
	cfg  Config

	prodRecords, prodBytes   atomic.Int64 // acknowledged, whole run
	fetchRecords, fetchBytes atomic.Int64 // consumed, whole run
	fetchMarked              atomic.Int64 // consumed with spec.markHeader, whole run
	errs                     atomic.Int64
	measuring                atomic.Bool // latencies recorded only while set
	stopping                 atomic.Bool // errors after this are the shutdown's
	lat                      *stats.Hist
	e2e                      *stats.Hist
	// With spec.perSecond: one histogram per second since measureStart
	// (UnixNano, set before measuring), allocated up front so the
	// callbacks index it without a lock.
	secs         []*stats.Hist
	measureStart atomic.Int64
	// Counted by produceHook while measuring.
	produceRequests, batches, batchRecords atomic.Int64

	errOnce  sync.Once
	firstErr error // set once by errOnce
}

func (l *loadRun) fail(err error) {
	if l.stopping.Load() {
		return
	}
	l.errs.Add(1)
	l.errOnce.Do(func() { l.firstErr = err })
}

// acked is the produce callback's body; start is when the record was due.
func (l *loadRun) acked(start time.Time, n int, err error) {
	if err != nil {
		l.fail(err)
		return
	}
	l.prodRecords.Add(1)
	l.prodBytes.Add(int64(n))
	if l.measuring.Load() {
		now := time.Now()
		d := now.Sub(start)
		l.lat.Record(d)
		if l.secs != nil {
			if i := (now.UnixNano() - l.measureStart.Load()) / int64(time.Second); i >= 0 && i < int64(len(l.secs)) {
				l.secs[i].Record(d)
			}
		}
	}
}

// produceHook counts the producers' Produce requests and batches while the
// window is measured.
type produceHook struct{ l *loadRun }

func (h produceHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 0 && err == nil && h.l.measuring.Load() { // 0: Produce
		h.l.produceRequests.Add(1)
	}
}

func (h produceHook) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	if h.l.measuring.Load() {
		h.l.batches.Add(1)
		h.l.batchRecords.Add(int64(m.NumRecords))
	}
}

// producerOpts are the kgo options for producing with acks.
func producerOpts(cfg Config, acks string, batchBytes int) ([]kgo.Opt, error) {
	codec, err := parseCompression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	if batchBytes <= 0 {
		batchBytes = cfg.BatchBytes
	}
	opts := []kgo.Opt{kgo.ProducerLinger(cfg.Linger), kgo.ProducerBatchCompression(codec)}
	if batchBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(batchBytes)))
	}
	switch acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(cfg.Inflight))
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(cfg.Inflight))
	default:
		return nil, fmt.Errorf("scenario: acks %q: want all, 1 or 0", acks)
	}
	return opts, nil
}

func parseCompression(s string) (kgo.CompressionCodec, error) {
	switch s {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.NoCompression(), fmt.Errorf("scenario: compression %q: want none, gzip, snappy, lz4 or zstd", s)
}

// createTopic creates topic and waits until every partition has a leader.
func createTopic(ctx context.Context, addr, topic string, partitions int, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ClientID("klite-bench-admin")}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, int32(partitions), 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("scenario: create topic %s: %w", topic, err)
	}
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if td, ok := md.Topics[topic]; ok && td.Err == nil && len(td.Partitions) == partitions && allLed(td) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("scenario: topic %s not ready: %w", topic, errors.Join(ctx.Err(), err))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func allLed(td kadm.TopicDetail) bool {
	for _, p := range td.Partitions {
		if p.Leader < 0 || p.Err != nil {
			return false
		}
	}
	return true
}

// runLoad produces (and consumes, with consumers > 0) for warmup+duration
// and returns the figures of the measured window.
func runLoad(ctx context.Context, env *Env, spec loadSpec) (loadStats, error) {
	cfg := env.Cfg
	if spec.recordSize > 0 {
		cfg.RecordSize = spec.recordSize
	}
	if spec.compression != "" {
		cfg.Compression = spec.compression
	}
	l := &loadRun{spec: spec, cfg: cfg, lat: stats.NewHist(), e2e: stats.NewHist()}
	if spec.perSecond {
		// One spare: the window ends a little after its timer fires.
		l.secs = make([]*stats.Hist, int(spec.duration/time.Second)+2)
		for i := range l.secs {
			l.secs[i] = stats.NewHist()
		}
	}
	if !spec.existingTopic {
		if err := createTopic(ctx, spec.addr, spec.topic, spec.partitions, spec.clientOpts...); err != nil {
			return loadStats{}, err
		}
	}
	var popts []kgo.Opt
	if spec.producers > 0 {
		var err error
		if popts, err = producerOpts(cfg, spec.acks, spec.batchBytes); err != nil {
			return loadStats{}, err
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var clients []*kgo.Client
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}

	// Consumers first, from offset 0 of an empty topic: they sit at the tail.
	for i := 0; i < spec.consumers; i++ {
		parts := map[int32]kgo.Offset{}
		for p := i; p < spec.partitions; p += spec.consumers {
			parts[int32(p)] = kgo.NewOffset().At(0)
		}
		if len(parts) == 0 {
			continue
		}
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(spec.addr), kgo.ClientID(fmt.Sprintf("klite-bench-c%d", i)),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{spec.topic: parts}),
			kgo.FetchMaxWait(500 * time.Millisecond), kgo.FetchMaxPartitionBytes(8 << 20)}, spec.clientOpts...)...)
		if err != nil {
			closeAll()
			return loadStats{}, err
		}
		clients = append(clients, cl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.consume(runCtx, cl)
		}()
	}

	var producers []*kgo.Client
	var pwg sync.WaitGroup // producer goroutines
	for i := 0; i < spec.producers; i++ {
		opts := append([]kgo.Opt{kgo.SeedBrokers(spec.addr), kgo.ClientID(fmt.Sprintf("klite-bench-p%d", i)), kgo.WithHooks(produceHook{l})}, popts...)
		if spec.maxBuffered > 0 {
			opts = append(opts, kgo.MaxBufferedRecords(spec.maxBuffered))
		}
		opts = append(opts, spec.clientOpts...)
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			stop()
			wg.Wait()
			pwg.Wait()
			closeAll()
			return loadStats{}, err
		}
		clients = append(clients, cl)
		producers = append(producers, cl)
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			if spec.rate > 0 {
				l.producePaced(runCtx, cl, spec.rate/float64(spec.producers))
			} else {
				l.produce(runCtx, cl)
			}
		}()
	}

	st, werr := l.window(ctx, env)
	// Let in-flight records finish so the broker is quiet for the next run.
	// A fill (stopAfterBytes) stops producing by itself; its records are
	// flushed before the context ends so none fails as canceled after the
	// broker has stored it, and the acknowledged count is exact.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	if spec.stopAfterBytes > 0 && werr == nil {
		pwg.Wait()
		for _, p := range producers {
			p.Flush(fctx)
		}
	}
	l.stopping.Store(true)
	stop()
	for _, p := range producers {
		p.Flush(fctx)
	}
	fcancel()
	pwg.Wait()
	wg.Wait()
	closeAll()
	st.totalRecords, st.totalBytes = l.prodRecords.Load(), l.prodBytes.Load()
	if werr != nil {
		return st, werr
	}
	if spec.producers > 0 && st.prodRecords == 0 {
		return st, fmt.Errorf("scenario: nothing acknowledged in the window (%d errors, first: %v)", st.errs, st.firstErr)
	}
	return st, nil
}

// window waits out the warmup, then measures for the duration (or until
// stopAfterBytes), printing progress each second.
func (l *loadRun) window(ctx context.Context, env *Env) (loadStats, error) {
	spec := l.spec
	if spec.stopAfterBytes <= 0 && spec.fetchTarget <= 0 {
		if err := sleepCtx(ctx, spec.warmup); err != nil {
			return loadStats{}, err
		}
	}
	take := func() snapshot {
		s := snapshot{t: time.Now(), pr: l.prodRecords.Load(), pb: l.prodBytes.Load(), fr: l.fetchRecords.Load(), fb: l.fetchBytes.Load()}
		if spec.brokerPID > 0 {
			s.brokerCPU, s.brokerErr = proc.CPU(spec.brokerPID)
		}
		s.clientCPU, _ = proc.CPU(os.Getpid())
		s.systemBusy, _ = proc.SystemBusy()
		return s
	}
	var sampler *proc.Sampler
	if spec.brokerPID > 0 {
		sampler = proc.StartSampler(spec.brokerPID, rssSampleEvery)
	}
	a := take()
	l.measureStart.Store(a.t.UnixNano())
	l.measuring.Store(true)
	prev := a
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	var end, poll <-chan time.Time
	if spec.fetchTarget > 0 {
		t := time.NewTicker(fetchPollEvery)
		defer t.Stop()
		poll = t.C
	}
	if spec.stopAfterBytes <= 0 && spec.duration > 0 {
		t := time.NewTimer(spec.duration)
		defer t.Stop()
		end = t.C
	}
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		case <-end:
			break loop
		case <-poll:
			if l.fetchRecords.Load() >= spec.fetchTarget {
				break loop
			}
		case <-tick.C:
			now := take()
			env.Progress.Update("%s %s", spec.label, l.progressLine(a, prev, now))
			prev = now
			if spec.stopAfterBytes > 0 && now.pb >= spec.stopAfterBytes {
				break loop
			}
		}
	}
	l.measuring.Store(false)
	b := take()
	env.Progress.Done()
	st := loadStats{
		start:        a.t,
		window:       b.t.Sub(a.t),
		prodRecords:  b.pr - a.pr,
		prodBytes:    b.pb - a.pb,
		fetchRecords: b.fr - a.fr,
		fetchBytes:   b.fb - a.fb,
		fetchMarked:  l.fetchMarked.Load(),
		lag:          b.pr - b.fr,
		lat:          l.lat,
		e2e:          l.e2e,
		clientCPU:    b.clientCPU - a.clientCPU,
		errs:         l.errs.Load(),
		firstErr:     l.firstErr,

		produceRequests: l.produceRequests.Load(),
		batches:         l.batches.Load(),
		batchRecords:    l.batchRecords.Load(),
	}
	if spec.brokerPID > 0 {
		st.brokerCPU = b.brokerCPU - a.brokerCPU
		st.otherCPU = max(0, (b.systemBusy-a.systemBusy)-st.brokerCPU-st.clientCPU)
		peak, serr := sampler.Stop()
		st.brokerRSS = peak
		if err == nil {
			err = errors.Join(a.brokerErr, b.brokerErr, serr)
		}
	}
	if spec.consumers == 0 {
		st.lag = 0
	}
	if l.secs != nil {
		// Whole seconds, the last one counted when at least half of it was measured.
		n := min(len(l.secs), int((st.window+time.Second/2)/time.Second))
		st.perSecond = l.secs[:n]
	}
	return st, err
}

// snapshot is the counters and CPU times at one instant.
type snapshot struct {
	t                    time.Time
	pr, pb, fr, fb       int64 // produced and fetched records and bytes
	brokerCPU, clientCPU time.Duration
	systemBusy           time.Duration
	brokerErr            error
}

// progressLine formats the rates since prev and the p99 so far.
func (l *loadRun) progressLine(start, prev, now snapshot) string {
	pr, pb, fr, fb := now.pr, now.pb, now.fr, now.fb
	dt := now.t.Sub(prev.t).Seconds()
	line := fmt.Sprintf("%4.0fs  produce %s %s p99 %s", now.t.Sub(start.t).Seconds(),
		report.Format(report.RecordsPerSec, float64(pr-prev.pr)/dt),
		report.Format(report.BytesPerSec, float64(pb-prev.pb)/dt),
		report.Format(report.Seconds, l.lat.Quantile(99).Seconds()))
	if l.spec.consumers > 0 {
		line += fmt.Sprintf(" | fetch %s %s lag %d", report.Format(report.RecordsPerSec, float64(fr-prev.fr)/dt),
			report.Format(report.BytesPerSec, float64(fb-prev.fb)/dt), pr-fr)
	}
	if l.spec.stopAfterBytes > 0 {
		line += fmt.Sprintf(" | %s of %s", report.Format(report.Bytes, float64(pb)), report.Format(report.Bytes, float64(l.spec.stopAfterBytes)))
	}
	if n := l.errs.Load(); n > 0 {
		line += fmt.Sprintf(" | %d errors", n)
	}
	return line
}

// produce sends as fast as the client's buffer allows. Latency is measured
// from the Produce call, so it includes time spent waiting for buffer space.
func (l *loadRun) produce(ctx context.Context, cl *kgo.Client) {
	pl := payload{size: l.cfg.RecordSize, text: l.spec.compression != ""}
	for ctx.Err() == nil {
		if l.spec.stopAfterBytes > 0 && l.prodBytes.Load() >= l.spec.stopAfterBytes {
			return
		}
		v := pl.next()
		start := time.Now()
		cl.Produce(ctx, &kgo.Record{Topic: l.spec.topic, Value: v}, func(_ *kgo.Record, err error) {
			l.acked(start, len(v), err)
		})
	}
}

// producePaced sends at a fixed rate on an open-loop schedule: each record
// has a due time, latency is measured from it, so a stalled broker shows up
// in the figures instead of silently slowing the sender (coordinated
// omission).
func (l *loadRun) producePaced(ctx context.Context, cl *kgo.Client, rate float64) {
	pl := payload{size: l.cfg.RecordSize, text: l.spec.compression != ""}
	interval := time.Duration(float64(time.Second) / rate)
	due := time.Now()
	for ctx.Err() == nil {
		now := time.Now()
		for !due.After(now) && ctx.Err() == nil {
			v := pl.next()
			start := due
			r := &kgo.Record{Topic: l.spec.topic, Value: v}
			if l.spec.e2e {
				r.Headers = []kgo.RecordHeader{{Key: e2eHeader, Value: binary.BigEndian.AppendUint64(nil, uint64(due.UnixNano()))}}
			}
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
				l.acked(start, len(v), err)
			})
			due = due.Add(interval)
		}
		if wait := time.Until(due); wait > 0 {
			sleepCtx(ctx, wait)
		}
	}
}

// consume polls until ctx ends, counting records and value bytes.
func (l *loadRun) consume(ctx context.Context, cl *kgo.Client) {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(_ string, _ int32, err error) { l.fail(err) })
		var n, b, marked int64
		measuring := l.spec.e2e && l.measuring.Load()
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			n++
			b += int64(len(r.Value))
			if l.spec.markHeader != "" {
				for _, h := range r.Headers {
					if h.Key == l.spec.markHeader {
						marked++
						break
					}
				}
			}
			if measuring {
				for _, h := range r.Headers {
					if h.Key == e2eHeader && len(h.Value) == 8 {
						l.e2e.Record(now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(h.Value)))))
					}
				}
			}
		})
		l.fetchMarked.Add(marked)
		l.fetchRecords.Add(n)
		l.fetchBytes.Add(b)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
