package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/bench/internal/stats"
)

// The txn group (-scenario txn): what transactions cost (issue 12), against
// the idempotent producer and read_uncommitted of the same run.

// txnSizes are txn-produce's records per transaction, in order.
var txnSizes = []int{10, 100, 1000}

const (
	// txnFetchPerTxn and txnFetchAbortEvery shape txn-fetch's log: every
	// txnFetchAbortEvery-th transaction of each producer is aborted.
	txnFetchPerTxn     = 100
	txnFetchAbortEvery = 4
	// txnFillProducers times -producers transactional clients write
	// txn-fetch's log: one client waits for each commit, more of them
	// share the syncs.
	txnFillProducers = 4
	// txnAbortedHeader marks the records of transactions the fill aborts,
	// so the readers can count the aborted records they were given.
	txnAbortedHeader = "klite-bench-aborted"
	// txnEndTimeout bounds one EndTransaction; the broker answers after
	// its markers are durable.
	txnEndTimeout = 30 * time.Second
)

// ratio is a/b, NaN when b is not positive (no baseline: no ratio).
func ratio(a, b float64) float64 {
	if b <= 0 || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// abortsTxn says whether transaction i (0-based, per producer) is aborted
// when every abortEvery-th one is (0: none).
func abortsTxn(i, abortEvery int) bool {
	return abortEvery > 0 && i%abortEvery == abortEvery-1
}

// txnSpec shapes one transactional load.
type txnSpec struct {
	label      string
	addr       string
	topic      string
	producers  int
	perTxn     int // records per transaction
	abortEvery int // see abortsTxn
	warmup     time.Duration
	duration   time.Duration
	// fillBytes, when > 0, ends the load once this many value bytes are in
	// ended transactions (committed or aborted), without a warmup.
	fillBytes int64
	brokerPID int
}

// txnStats are a transactional load's figures.
type txnStats struct {
	window         time.Duration
	committedTxns  int64 // ended in the window
	committedRecs  int64
	committedBytes int64
	endTxn         *stats.Hist // EndTransaction(commit) calls ended in the window
	txn            *stats.Hist // BeginTransaction to commit answered, in the window
	brokerCPU      time.Duration
	// Whole run, fill included.
	totalCommittedRecs, totalAbortedRecs int64
	totalCommittedTxns, totalAbortedTxns int64
	errs                                 int64
	firstErr                             error
}

// txnRun is the shared state of a transactional load's producers.
type txnRun struct {
	spec                     txnSpec
	cfg                      Config
	committedTxns, abortedTx atomic.Int64
	committedRecs, abortedRc atomic.Int64
	endedBytes               atomic.Int64 // value bytes in ended transactions
	committedBytes           atomic.Int64
	measuring, stop          atomic.Bool
	stopped                  atomic.Int64 // producer loops that have returned
	endTxn, txn              *stats.Hist
	errs                     atomic.Int64
	errOnce                  sync.Once
	firstErr                 error
}

func (r *txnRun) fail(err error) {
	r.errs.Add(1)
	r.errOnce.Do(func() { r.firstErr = err })
}

// runTxnLoad runs spec.producers transactional clients, each looping
// begin, perTxn records, flush, end, until the window ends (or fillBytes).
func runTxnLoad(ctx context.Context, env *Env, spec txnSpec) (txnStats, error) {
	cfg := env.Cfg
	r := &txnRun{spec: spec, cfg: cfg, endTxn: stats.NewHist(), txn: stats.NewHist()}
	popts, err := producerOpts(cfg, "all", 0)
	if err != nil {
		return txnStats{}, err
	}
	// The topic name carries round and time: ids differ between runs, so
	// no run waits on a previous run's transactional id.
	var clients []*kgo.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range spec.producers {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(spec.addr), kgo.ClientID(fmt.Sprintf("klite-bench-t%d", i)),
			kgo.TransactionalID(fmt.Sprintf("%s-%d", spec.topic, i)), kgo.DefaultProduceTopic(spec.topic)}, popts...)...)
		if err != nil {
			return txnStats{}, err
		}
		clients = append(clients, cl)
	}
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Go(func() {
			r.loop(ctx, cl)
			r.stopped.Add(1)
		})
	}
	st, werr := r.window(ctx, env)
	r.stop.Store(true)
	wg.Wait()
	st.totalCommittedRecs, st.totalAbortedRecs = r.committedRecs.Load(), r.abortedRc.Load()
	st.totalCommittedTxns, st.totalAbortedTxns = r.committedTxns.Load(), r.abortedTx.Load()
	st.errs, st.firstErr = r.errs.Load(), r.firstErr
	if werr != nil {
		return st, werr
	}
	if st.totalCommittedTxns == 0 {
		return st, fmt.Errorf("scenario: no transaction committed (%d errors, first: %v)", st.errs, st.firstErr)
	}
	return st, nil
}

// loop is one transactional producer. A failed transaction ends its loop:
// what follows a fenced or broken producer would measure the error path.
func (r *txnRun) loop(ctx context.Context, cl *kgo.Client) {
	pl := payload{size: r.cfg.RecordSize}
	var headers []kgo.RecordHeader
	for i := 0; !r.stop.Load() && ctx.Err() == nil; i++ {
		abort := abortsTxn(i, r.spec.abortEvery)
		headers = nil
		if abort {
			headers = []kgo.RecordHeader{{Key: txnAbortedHeader}}
		}
		t0 := time.Now()
		if err := cl.BeginTransaction(); err != nil {
			r.fail(fmt.Errorf("begin: %w", err))
			return
		}
		var failed atomic.Int64
		var bytes int64
		for range r.spec.perTxn {
			v := pl.next()
			bytes += int64(len(v))
			cl.Produce(ctx, &kgo.Record{Value: v, Headers: headers}, func(_ *kgo.Record, err error) {
				if err != nil && failed.Add(1) == 1 {
					r.fail(fmt.Errorf("produce: %w", err))
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			r.fail(fmt.Errorf("flush: %w", err))
			return
		}
		if failed.Load() > 0 {
			return
		}
		t1 := time.Now()
		ectx, cancel := context.WithTimeout(ctx, txnEndTimeout)
		err := cl.EndTransaction(ectx, kgo.TransactionEndTry(!abort))
		cancel()
		if err != nil {
			r.fail(fmt.Errorf("end (commit %v): %w", !abort, err))
			return
		}
		t2 := time.Now()
		r.endedBytes.Add(bytes)
		if abort {
			r.abortedTx.Add(1)
			r.abortedRc.Add(int64(r.spec.perTxn))
			continue
		}
		r.committedTxns.Add(1)
		r.committedRecs.Add(int64(r.spec.perTxn))
		r.committedBytes.Add(bytes)
		if r.measuring.Load() {
			r.endTxn.Record(t2.Sub(t1))
			r.txn.Record(t2.Sub(t0))
		}
	}
}

// window waits out the warmup and measures for the duration, or until
// fillBytes are in ended transactions, printing progress each second.
func (r *txnRun) window(ctx context.Context, env *Env) (txnStats, error) {
	spec := r.spec
	if spec.fillBytes <= 0 {
		if err := sleepCtx(ctx, spec.warmup); err != nil {
			return txnStats{}, err
		}
	}
	type snap struct {
		t                time.Time
		txns, recs, byts int64
		cpu              time.Duration
		cpuErr           error
	}
	take := func() snap {
		s := snap{t: time.Now(), txns: r.committedTxns.Load(), recs: r.committedRecs.Load(), byts: r.committedBytes.Load()}
		if spec.brokerPID > 0 {
			s.cpu, s.cpuErr = proc.CPU(spec.brokerPID)
		}
		return s
	}
	a := take()
	r.measuring.Store(true)
	prev := a
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	var end <-chan time.Time
	if spec.fillBytes <= 0 {
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
		case <-tick.C:
			now := take()
			dt := now.t.Sub(prev.t).Seconds()
			line := fmt.Sprintf("%4.0fs  %s committed, %s", now.t.Sub(a.t).Seconds(),
				report.Format(report.RecordsPerSec, float64(now.txns-prev.txns)/dt)+" txn",
				report.Format(report.RecordsPerSec, float64(now.recs-prev.recs)/dt)+" records")
			if spec.fillBytes > 0 {
				line += fmt.Sprintf(" | %s of %s", report.Format(report.Bytes, float64(r.endedBytes.Load())), report.Format(report.Bytes, float64(spec.fillBytes)))
			}
			if n := r.errs.Load(); n > 0 {
				line += fmt.Sprintf(" | %d errors", n)
			}
			env.Progress.Update("%s %s", spec.label, line)
			prev = now
			if spec.fillBytes > 0 && r.endedBytes.Load() >= spec.fillBytes {
				break loop
			}
			if r.stopped.Load() == int64(spec.producers) { // each failed
				break loop
			}
		}
	}
	r.measuring.Store(false)
	b := take()
	env.Progress.Done()
	if err == nil {
		err = errors.Join(a.cpuErr, b.cpuErr)
	}
	return txnStats{window: b.t.Sub(a.t), committedTxns: b.txns - a.txns, committedRecs: b.recs - a.recs, committedBytes: b.byts - a.byts,
		endTxn: r.endTxn, txn: r.txn, brokerCPU: b.cpu - a.cpu}, err
}

func txnErrorNotes(round int, st txnStats) []string {
	if st.errs == 0 {
		return nil
	}
	return []string{fmt.Sprintf("round %d: %d transaction errors, first: %v", round, st.errs, st.firstErr)}
}

// txnProduce: transactional produce against the idempotent producer.
type txnProduce struct{}

func (s *txnProduce) Name() string { return "txn-produce" }

func (s *txnProduce) Describe(cfg Config) string {
	return fmt.Sprintf("Transactional produce against the idempotent producer, on one fresh broker per round, each step on a "+
		"fresh topic: %d producer clients send %d-byte records with acks=all as fast as they go, idempotent (franz-go's default), "+
		"then with a transactional id each (kgo.TransactionalID), each client looping BeginTransaction, %s records, Flush, "+
		"EndTransaction(commit), one transaction at a time. The idempotent step runs first in odd rounds and last in even ones. "+
		"Records/s count committed records (transactions whose commit was answered in the window); the ratios are over the "+
		"idempotent step's records/s of the same round. klite answers EndTxn once the commit markers are durable (fdatasync), "+
		"so a transaction costs at least one sync after its records' own: the commit latency rows show it.",
		cfg.Producers, cfg.RecordSize, joinInts(txnSizes, ", ", " or "))
}

func (s *txnProduce) Settings(cfg Config) []report.KV {
	return append(loadSettings(cfg, "all"), report.KV{Key: "records per transaction", Value: joinInts(txnSizes, ", ", ", ")})
}

func (s *txnProduce) Close() error { return nil }

// txnSteps orders txn-produce's steps: 0 is the idempotent one, n > 0 a
// transactional one with n records per transaction. The idempotent step
// goes first in odd rounds and last in even ones.
func txnSteps(round int) []int {
	steps := append([]int{0}, txnSizes...)
	if round%2 == 0 {
		steps = append(txnSizes[:len(txnSizes):len(txnSizes)], 0)
	}
	return steps
}

func (s *txnProduce) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := env.Brokers.Broker(ctx, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	var idem float64
	got := map[int]txnStats{}
	for _, n := range txnSteps(env.Round) {
		if n == 0 {
			st, err := runLoad(ctx, env, loadSpec{
				label: progressLabel(s.Name()+" idempotent", env), addr: b.Addr, topic: topicName(s.Name()+"-idem", env),
				partitions: env.Cfg.Partitions, acks: "all", producers: env.Cfg.Producers, warmup: env.Cfg.Warmup,
				duration: env.Cfg.Duration, brokerPID: b.PID,
			})
			if err != nil {
				return res, fmt.Errorf("idempotent: %w", err)
			}
			res.Notes = append(res.Notes, errorNotes(st)...)
			idem = float64(st.prodRecords) / st.window.Seconds()
			res.Metrics = append(res.Metrics,
				report.Metric{Key: "idempotent-records", Label: "idempotent producer records", Unit: report.RecordsPerSec, Value: idem},
				report.Metric{Key: "idempotent-throughput", Label: "idempotent producer throughput", Unit: report.BytesPerSec,
					Value: float64(st.prodBytes) / st.window.Seconds(), Limits: []report.Limit{diskSeqWrite(env.Limits)}},
				report.Metric{Key: "idempotent-p99", Label: "idempotent producer latency p99 (saturated)", Unit: report.Seconds, Value: st.lat.Quantile(99).Seconds()},
			)
			continue
		}
		topic := topicName(fmt.Sprintf("%s-%d", s.Name(), n), env)
		if err := createTopic(ctx, b.Addr, topic, env.Cfg.Partitions); err != nil {
			return res, err
		}
		st, err := runTxnLoad(ctx, env, txnSpec{
			label: progressLabel(fmt.Sprintf("%s %d/txn", s.Name(), n), env), addr: b.Addr, topic: topic,
			producers: env.Cfg.Producers, perTxn: n, warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID,
		})
		if err != nil {
			return res, fmt.Errorf("%d records per transaction: %w", n, err)
		}
		res.Notes = append(res.Notes, txnErrorNotes(env.Round, st)...)
		got[n] = st
	}
	for _, n := range txnSizes {
		st := got[n]
		secs := st.window.Seconds()
		recs := float64(st.committedRecs) / secs
		res.Metrics = append(res.Metrics,
			report.Metric{Key: fmt.Sprintf("ratio-%d", n), Label: fmt.Sprintf("records/s, %d per transaction / idempotent", n), Unit: report.Fraction, Value: ratio(recs, idem)},
			report.Metric{Key: fmt.Sprintf("txns-%d", n), Label: fmt.Sprintf("transactions/s, %d records each", n), Unit: report.RecordsPerSec, Value: float64(st.committedTxns) / secs},
			report.Metric{Key: fmt.Sprintf("records-%d", n), Label: fmt.Sprintf("records, %d per transaction", n), Unit: report.RecordsPerSec, Value: recs},
			report.Metric{Key: fmt.Sprintf("throughput-%d", n), Label: fmt.Sprintf("throughput, %d per transaction", n), Unit: report.BytesPerSec,
				Value: float64(st.committedBytes) / secs, Limits: []report.Limit{diskSeqWrite(env.Limits)}},
			report.Metric{Key: fmt.Sprintf("commit-p50-%d", n), Label: fmt.Sprintf("EndTransaction(commit) p50, %d per transaction", n), Unit: report.Seconds, Value: st.endTxn.Quantile(50).Seconds()},
			report.Metric{Key: fmt.Sprintf("commit-p99-%d", n), Label: fmt.Sprintf("EndTransaction(commit) p99, %d per transaction", n), Unit: report.Seconds,
				Value: st.endTxn.Quantile(99).Seconds(), Limits: []report.Limit{twiceFsyncP99(env.Limits)}},
			report.Metric{Key: fmt.Sprintf("txn-p99-%d", n), Label: fmt.Sprintf("transaction p99 (begin to commit answered), %d per transaction", n), Unit: report.Seconds, Value: st.txn.Quantile(99).Seconds()},
		)
		if b.PID > 0 && st.committedBytes > 0 {
			res.Metrics = append(res.Metrics, report.Metric{Key: fmt.Sprintf("cpu-per-gb-%d", n), Label: fmt.Sprintf("broker CPU per GB committed, %d per transaction", n),
				Unit: report.CPUPerGB, Value: st.brokerCPU.Seconds() / (float64(st.committedBytes) / 1e9)})
		}
	}
	return res, nil
}

// txnFetch: read_committed against read_uncommitted over a log with
// aborted transactions in it.
type txnFetch struct{}

func (s *txnFetch) Name() string { return "txn-fetch" }

// txnBacklog is the record bytes txn-fetch writes and reads back: half of
// catchup-fetch's -backlog (500 MB by default, quick 128 MB), as a
// transactional fill is slower than catchup-fetch's acks=1 one.
func txnBacklog(cfg Config) int64 { return cfg.Backlog / 2 }

func (s *txnFetch) Describe(cfg Config) string {
	return fmt.Sprintf("read_committed against read_uncommitted fetch over one log with aborted transactions, on one fresh broker "+
		"per round: %d transactional producer clients fill a topic with %s of %d-byte records in transactions of %d records, "+
		"every %dth transaction of each producer aborted (1 in %d of the transactions and of the records: %.0f%%; not measured). "+
		"Then %d consumer clients read the topic from offset 0 until they have every record the isolation level returns: "+
		"read_uncommitted all of them, read_committed the committed ones (franz-go drops the aborted batches the broker names in "+
		"AbortedTransactions). Each level reads the log twice, in the order A B B A (A read_uncommitted in odd rounds, "+
		"read_committed in even ones), each pass with new consumers; a level's rates are over its two passes together. Both "+
		"levels read the same log to its end, so the main ratio is of the log's bytes (aborted and committed) per second, "+
		"read_committed / read_uncommitted; the returned ratio counts only the values each level returned. Aborted records "+
		"carry a header, which checks that read_committed returned none of them and read_uncommitted all.",
		txnFillProducers*cfg.Producers, report.Format(report.Bytes, float64(txnBacklog(cfg))), cfg.RecordSize, txnFetchPerTxn,
		txnFetchAbortEvery, txnFetchAbortEvery, 100.0/txnFetchAbortEvery, cfg.Consumers)
}

func (s *txnFetch) Settings(cfg Config) []report.KV {
	return []report.KV{
		{Key: "backlog", Value: report.Format(report.Bytes, float64(txnBacklog(cfg)))},
		{Key: "record size", Value: fmt.Sprintf("%d B", cfg.RecordSize)},
		{Key: "partitions", Value: fmt.Sprint(cfg.Partitions)},
		{Key: "records per transaction", Value: fmt.Sprint(txnFetchPerTxn)},
		{Key: "aborted", Value: fmt.Sprintf("1 transaction in %d", txnFetchAbortEvery)},
		{Key: "producers (fill)", Value: fmt.Sprint(txnFillProducers * cfg.Producers)},
		{Key: "consumers", Value: fmt.Sprint(cfg.Consumers)},
	}
}

func (s *txnFetch) Close() error { return nil }

func (s *txnFetch) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := env.Brokers.Broker(ctx, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	topic := topicName(s.Name(), env)
	if err := createTopic(ctx, b.Addr, topic, env.Cfg.Partitions); err != nil {
		return res, err
	}
	fill, err := runTxnLoad(ctx, env, txnSpec{
		label: progressLabel(s.Name()+" fill", env), addr: b.Addr, topic: topic, producers: txnFillProducers * env.Cfg.Producers,
		perTxn: txnFetchPerTxn, abortEvery: txnFetchAbortEvery, fillBytes: txnBacklog(env.Cfg),
	})
	if err != nil {
		return res, fmt.Errorf("fill: %w", err)
	}
	if fill.errs > 0 {
		return res, fmt.Errorf("fill: %d transaction errors, first: %w", fill.errs, fill.firstErr)
	}
	committed, aborted := fill.totalCommittedRecs, fill.totalAbortedRecs
	all := committed + aborted
	logBytes := float64(all) * float64(env.Cfg.RecordSize)
	type figures struct{ secs, delivered float64 } // summed over the passes
	got := map[string]figures{}
	for i, level := range txnFetchPasses(env.Round) {
		target, opts := all, []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadUncommitted())}
		if level == "read_committed" {
			target, opts = committed, []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted())}
		}
		st, err := runLoad(ctx, env, loadSpec{
			label: progressLabel(fmt.Sprintf("%s %s (pass %d)", s.Name(), level, i+1), env), addr: b.Addr, topic: topic,
			partitions: env.Cfg.Partitions, existingTopic: true, consumers: env.Cfg.Consumers, fetchTarget: target,
			duration: catchupTimeout, brokerPID: b.PID, clientOpts: opts, markHeader: txnAbortedHeader,
		})
		if err != nil {
			return res, fmt.Errorf("%s: %w", level, err)
		}
		res.Notes = append(res.Notes, errorNotes(st)...)
		if st.fetchRecords < target {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d, %s: consumers read %d of %d records within %s", env.Round, level, st.fetchRecords, target, catchupTimeout))
		}
		if note := abortedCheck(level, st.fetchMarked, aborted); note != "" {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d: %s", env.Round, note))
		}
		f := got[level]
		f.secs += st.window.Seconds()
		f.delivered += float64(st.fetchBytes)
		got[level] = f
	}
	for level, f := range got {
		f.delivered /= f.secs
		got[level] = f
	}
	logBytes *= 2 // each level read the log twice
	u, c := got["read_uncommitted"], got["read_committed"]
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "log-ratio", Label: "log read per second (aborted records included), read_committed / read_uncommitted", Unit: report.Fraction, Value: ratio(u.secs, c.secs)},
		report.Metric{Key: "delivered-ratio", Label: "records returned per second, read_committed / read_uncommitted", Unit: report.Fraction, Value: ratio(c.delivered, u.delivered)},
		report.Metric{Key: "log-uncommitted", Label: "log read, read_uncommitted", Unit: report.BytesPerSec, Value: logBytes / u.secs, Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "log-committed", Label: "log read, read_committed", Unit: report.BytesPerSec, Value: logBytes / c.secs, Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "delivered-committed", Label: "values returned, read_committed", Unit: report.BytesPerSec, Value: c.delivered},
		report.Metric{Key: "aborted-share", Label: "aborted share of the log's records", Unit: report.Fraction, Value: ratio(float64(aborted), float64(all))},
		report.Metric{Key: "aborted-txns", Label: "aborted transactions in the log", Unit: report.Count, Value: float64(fill.totalAbortedTxns)},
		report.Metric{Key: "committed-txns", Label: "committed transactions in the log", Unit: report.Count, Value: float64(fill.totalCommittedTxns)},
	)
	return res, nil
}

// txnFetchPasses orders txn-fetch's reads of the log: each isolation level
// twice, as ABBA, A read_uncommitted in odd rounds and read_committed in
// even ones, so neither level always reads first or last.
func txnFetchPasses(round int) []string {
	a, b := "read_uncommitted", "read_committed"
	if round%2 == 0 {
		a, b = b, a
	}
	return []string{a, b, b, a}
}

// abortedCheck returns a note when a reader at level was given the wrong
// number of aborted records (of aborted in the log): read_committed none,
// read_uncommitted all; "" when right.
func abortedCheck(level string, marked, aborted int64) string {
	switch {
	case level == "read_committed" && marked != 0:
		return fmt.Sprintf("DATA CHECK FAILED: read_committed returned %d records of aborted transactions", marked)
	case level == "read_uncommitted" && marked < aborted:
		return fmt.Sprintf("DATA CHECK FAILED: read_uncommitted returned %d of the %d records of aborted transactions", marked, aborted)
	}
	return ""
}

// joinInts formats ns as "a, b or c" (sep, then last before the final one).
func joinInts(ns []int, sep, last string) string {
	var b strings.Builder
	for i, n := range ns {
		switch {
		case i == 0:
		case i == len(ns)-1:
			b.WriteString(last)
		default:
			b.WriteString(sep)
		}
		fmt.Fprint(&b, n)
	}
	return b.String()
}
