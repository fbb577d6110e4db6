package scenario

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/klite/klite/bench/internal/report"
)

// The recovery point (issue 5): with the local disk lost, how much
// acknowledged data the bucket lacks. A broker with -s3-flush-interval F
// takes a steady produce load, is killed with SIGKILL at a random moment at
// least 2F in, its WAL directory is deleted, and a fresh broker on an empty
// directory counts what the bucket holds.
const (
	rpoFlush      = 5 * time.Second
	rpoFlushQuick = 2 * time.Second
	rpoRate       = 20_000 // records/s
	rpoRecordSize = 1024
	rpoTick       = 5 * time.Millisecond // the producer's pacing step
	// rpoDrain bounds the wait for the killed broker's client to give up
	// its buffered records.
	rpoDrain = 10 * time.Second
	// rpoAnswer bounds the wait for the fresh broker to answer for the
	// topic; a broker that never does has recovered nothing of it.
	rpoAnswer = time.Minute
)

// rpoFigures is one recovery point measurement.
type rpoFigures struct {
	flush     time.Duration
	rate      float64       // records/s acknowledged before the kill
	killAfter time.Duration // from the first record to the kill
	acked     int64
	recovered int64 // end offsets summed on the fresh broker
}

// lost is acknowledged records the fresh broker lacks (never below zero:
// records sent before the kill may be stored without their ack arriving).
func (f rpoFigures) lost() int64 { return max(f.acked-f.recovered, 0) }

// lostSecs is the lost records as seconds of production.
func (f rpoFigures) lostSecs() float64 {
	if f.rate <= 0 {
		return 0
	}
	return float64(f.lost()) / f.rate
}

func (f rpoFigures) metrics() []report.Metric {
	return []report.Metric{
		{Key: "rpo-flush", Label: "recovery point: -s3-flush-interval", Unit: report.Seconds, Value: f.flush.Seconds()},
		{Key: "rpo-rate", Label: "recovery point: acknowledged rate before the kill", Unit: report.RecordsPerSec, Value: f.rate},
		{Key: "rpo-kill-after", Label: "recovery point: kill -9 after", Unit: report.Seconds, Value: f.killAfter.Seconds()},
		{Key: "rpo-acked", Label: "recovery point: records acknowledged", Unit: report.Count, Value: float64(f.acked)},
		{Key: "rpo-recovered", Label: "recovery point: records in the bucket (end offsets)", Unit: report.Count, Value: float64(f.recovered)},
		{Key: "rpo-lost", Label: "recovery point: acknowledged records lost with the disk", Unit: report.Count, Value: float64(f.lost())},
		{Key: "rpo-lost-secs", Label: "recovery point: seconds of data lost", Unit: report.Seconds, Value: f.lostSecs()},
		{Key: "rpo-lost-per-flush", Label: "recovery point: seconds lost / flush interval", Unit: report.Count,
			Value: f.lostSecs() / f.flush.Seconds()},
	}
}

func (f rpoFigures) String() string {
	return fmt.Sprintf("recovery point with -s3-flush-interval %s: killed after %s, %d acknowledged, %d in the bucket, "+
		"%d lost = %s of data at %s (%.2f x the flush interval)", f.flush, f.killAfter.Round(time.Millisecond), f.acked,
		f.recovered, f.lost(), report.Format(report.Seconds, f.lostSecs()), report.Format(report.RecordsPerSec, f.rate),
		f.lostSecs()/f.flush.Seconds())
}

func rpoFlushOf(cfg Config) time.Duration {
	if cfg.Quick {
		return rpoFlushQuick
	}
	return rpoFlush
}

// recoveryPoint measures the recovery point once.
func (s *tierRecover) recoveryPoint(ctx context.Context, env *Env) (f rpoFigures, notes []string, err error) {
	m := s.kit.m
	f.flush = rpoFlushOf(env.Cfg)
	prefix := s.kit.prefix(s.Name() + "-rpo")
	defer s.kit.drop(prefix)
	topic := topicName(s.Name()+"-rpo", env)
	dir := m.NewWALDir(s.Name() + "-rpo")
	p, err := s.kit.startFlush(ctx, env.Cfg, dir, prefix, f.flush)
	if err != nil {
		m.Cleanup(dir)
		return f, nil, err
	}
	killed := false
	defer func() {
		if !killed {
			p.Stop(syscall.SIGKILL)
		}
		m.Cleanup(dir)
	}()
	if err := createTopic(ctx, p.Addr, topic, env.Cfg.Partitions); err != nil {
		return f, nil, err
	}
	opts, err := producerOpts(env.Cfg, "all", 0)
	if err != nil {
		return f, nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(p.Addr), kgo.ClientID("klite-bench-rpo"), kgo.DefaultProduceTopic(topic))...)
	if err != nil {
		return f, nil, err
	}
	var acked atomic.Int64
	pctx, stopProducing := context.WithCancel(ctx)
	produced := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(produced)
		pl := payload{size: rpoRecordSize}
		var sent int64
		for pctx.Err() == nil {
			due := int64(time.Since(start).Seconds() * rpoRate)
			for ; sent < due && pctx.Err() == nil; sent++ {
				cl.Produce(pctx, &kgo.Record{Value: pl.next()}, func(_ *kgo.Record, err error) {
					if err == nil {
						acked.Add(1)
					}
				})
			}
			sleepCtx(pctx, rpoTick)
		}
	}()
	killAt := 2*f.flush + rand.N(f.flush)
	env.Progress.Logf("%s recovery point: %d records/s of %d B, -s3-flush-interval %s, kill -9 at %s",
		progressLabel(s.Name(), env), rpoRate, rpoRecordSize, f.flush, killAt.Round(time.Millisecond))
	if err := sleepCtx(ctx, killAt); err != nil {
		stopProducing()
		<-produced
		cl.Close()
		return f, nil, err
	}
	f.killAfter = time.Since(start)
	// An ack read from the socket after the signal was still sent by the
	// broker before it died, so every successful callback counts.
	_, kerr := p.Stop(syscall.SIGKILL)
	killed = true
	stopProducing()
	<-produced
	closed := make(chan struct{})
	go func() { cl.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(rpoDrain):
		notes = append(notes, fmt.Sprintf("round %d: recovery point: the producer client did not close within %s", env.Round, rpoDrain))
	}
	f.acked = acked.Load()
	f.rate = float64(f.acked) / f.killAfter.Seconds()
	if kerr != nil {
		return f, notes, fmt.Errorf("kill -9: %w", kerr)
	}
	m.Cleanup(dir) // the disk is lost

	fresh := m.NewWALDir(s.Name() + "-rpo-recovered")
	// The killed broker still holds the bucket prefix: a replacement after
	// a lost disk takes it over explicitly, as an operator would.
	q, err := s.kit.startFlush(ctx, env.Cfg, fresh, prefix, f.flush, "-s3-take-over")
	if err != nil {
		m.Cleanup(fresh)
		return f, notes, err
	}
	defer func() { err = errors.Join(err, s.kit.stop(q, fresh)) }()
	actx, cancel := context.WithTimeout(ctx, rpoAnswer)
	defer cancel()
	ends, _, lerr := firstEnds(actx, q, topic)
	if lerr != nil {
		if ctx.Err() != nil {
			return f, notes, ctx.Err()
		}
		// The topic itself never reached the bucket: nothing recovered.
		notes = append(notes, fmt.Sprintf("round %d: recovery point: the fresh broker did not answer for the topic within %s (%v): "+
			"counted as 0 recovered", env.Round, rpoAnswer, lerr))
	}
	f.recovered = sumEnds(ends)
	if f.recovered > f.acked {
		notes = append(notes, fmt.Sprintf("round %d: recovery point: the bucket holds %d records more than were acknowledged "+
			"(sent before the kill, their acks never arrived)", env.Round, f.recovered-f.acked))
	}
	notes = append(notes, fmt.Sprintf("round %d: %s", env.Round, f))
	env.Progress.Logf("%s %s", progressLabel(s.Name(), env), f)
	return f, notes, nil
}
