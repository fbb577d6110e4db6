package scenario

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/klite/klite/bench/internal/broker"
	"github.com/klite/klite/bench/internal/report"
)

// fillBatchBytes is the producer batch size while filling the WAL: large,
// since only the amount written matters.
const fillBatchBytes = 1 << 20

// fillTopic writes an unmeasured backlog: spec's stopAfterBytes with acks=1
// from Config.Producers in fillBatchBytes batches. A produce error fails it.
func fillTopic(ctx context.Context, env *Env, spec loadSpec) (loadStats, error) {
	spec.acks, spec.producers, spec.batchBytes = "1", env.Cfg.Producers, fillBatchBytes
	st, err := runLoad(ctx, env, spec)
	if err == nil && st.errs > 0 {
		err = fmt.Errorf("%d produce errors while filling, first: %w", st.errs, st.firstErr)
	}
	return st, err
}

// restart: time from exec to ready with a large WAL, after a clean stop and
// after kill -9. The WAL is filled once, in the first round; later rounds
// restart the same broker again.
type restart struct {
	name      string
	walBytes0 int64           // WAL fill; 0: Config.RestartWAL
	dir       string          // the WAL, kept across rounds
	p         *broker.Process // running broker, nil when stopped
	m         *Managed
	topic     string
	records   int64 // acknowledged while filling
	dataBytes int64 // record value bytes acknowledged while filling
	walBytes  int64 // size of the WAL directory after filling
}

func (s *restart) Name() string { return s.name }

// fillBytes is how much record data the WAL is filled with.
func (s *restart) fillBytes(cfg Config) int64 {
	if s.walBytes0 > 0 {
		return s.walBytes0
	}
	return cfg.RestartWAL
}

func (s *restart) Describe(cfg Config) string {
	return fmt.Sprintf("Restart with a large WAL: the first round fills a fresh WAL with %s of %d-byte records (acks=1, "+
		"%d producers, %d partitions); each round then stops the broker with SIGTERM and times exec to ready line (clean), "+
		"and kills it with SIGKILL and times exec to ready line again (crash recovery). After each restart the sum of the "+
		"partitions' end offsets is checked against the records acknowledged while filling.",
		report.Format(report.Bytes, float64(s.fillBytes(cfg))), cfg.RecordSize, cfg.Producers, cfg.Partitions)
}

func (s *restart) Settings(cfg Config) []report.KV {
	return []report.KV{{Key: "WAL fill", Value: report.Format(report.Bytes, float64(s.fillBytes(cfg)))}}
}

func (s *restart) Run(ctx context.Context, env *Env) (Result, error) {
	var res Result
	m := env.Brokers.Managed()
	if m == nil {
		return res, ErrNeedsManaged
	}
	if s.dir == "" {
		s.m, s.dir = m, m.NewWALDir(s.Name())
		if err := s.fill(ctx, env, &res); err != nil {
			return res, fmt.Errorf("fill: %w", err)
		}
	}
	if s.p == nil { // a failed earlier round left it stopped
		p, err := m.Start(ctx, s.dir)
		if err != nil {
			return res, err
		}
		s.p = p
	}

	stop, err := s.p.Stop(syscall.SIGTERM)
	if err != nil {
		err = fmt.Errorf("%w; log tail:\n%s", err, s.p.LogTail())
	}
	s.p = nil
	if err != nil {
		return res, err
	}
	clean, cleanAnswer, err := s.start(ctx, env, &res, "after SIGTERM")
	if err != nil {
		return res, err
	}
	if _, err := s.p.Stop(syscall.SIGKILL); err != nil {
		return res, err
	}
	s.p = nil
	crash, crashAnswer, err := s.start(ctx, env, &res, "after SIGKILL")
	if err != nil {
		return res, err
	}
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "restart-clean", Label: "restart after SIGTERM (exec to ready)", Unit: report.Seconds, Value: clean.Seconds()},
		report.Metric{Key: "restart-crash", Label: "restart after SIGKILL (exec to ready)", Unit: report.Seconds, Value: crash.Seconds()},
		report.Metric{Key: "stop", Label: "stop with a full WAL (SIGTERM to exit)", Unit: report.Seconds, Value: stop.Seconds()},
		report.Metric{Key: "data-bytes", Label: "record data in the WAL", Unit: report.Bytes, Value: float64(s.dataBytes)},
		report.Metric{Key: "wal-bytes", Label: "WAL directory size (with preallocated space)", Unit: report.Bytes, Value: float64(s.walBytes)},
	)
	if cleanAnswer > 0 {
		res.Metrics = append(res.Metrics, report.Metric{Key: "answer-clean", Label: "after SIGTERM: exec to first ListOffsets answer",
			Unit: report.Seconds, Value: cleanAnswer.Seconds()})
	}
	if crashAnswer > 0 {
		res.Metrics = append(res.Metrics, report.Metric{Key: "answer-crash", Label: "after SIGKILL: exec to first ListOffsets answer",
			Unit: report.Seconds, Value: crashAnswer.Seconds()})
	}
	return res, nil
}

// start runs the broker on the filled WAL and checks the data is all there.
// It returns exec-to-ready and exec-to-first-answer: a broker that reports
// ready before it has recovered shows the difference in the second.
func (s *restart) start(ctx context.Context, env *Env, res *Result, after string) (ready, answer time.Duration, err error) {
	p, err := s.m.Start(ctx, s.dir)
	if err != nil {
		return 0, 0, err
	}
	s.p = p
	n, err := endOffsetSum(ctx, p.Addr, s.topic)
	answer = time.Since(p.Started)
	env.Progress.Logf("%s %s: ready in %s, first answer in %s", progressLabel(s.Name(), env), after,
		p.StartToReady.Round(time.Millisecond), answer.Round(time.Millisecond))
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: DATA CHECK FAILED %s: topic %s is gone", env.Round, after, s.topic))
	case err != nil:
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: could not check offsets %s: %v", env.Round, after, err))
		answer = 0 // no answer: no figure
	case n < s.records:
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: DATA CHECK FAILED %s: end offsets sum to %d, %d records were acknowledged",
			env.Round, after, n, s.records))
	case n > s.records:
		// Not provably wrong: the acks=1 fill is not idempotent, so a retried
		// request may be stored twice, and a record may be stored without its
		// acknowledgement reaching the client.
		res.Notes = append(res.Notes, fmt.Sprintf("round %d: %s: end offsets sum to %d, %d more than the %d acknowledged "+
			"(stored without an acknowledgement seen, or duplicated by a non-idempotent retry)", env.Round, after, n, n-s.records, s.records))
	}
	return p.StartToReady, answer, nil
}

func (s *restart) fill(ctx context.Context, env *Env, res *Result) error {
	p, err := s.m.Start(ctx, s.dir)
	if err != nil {
		return err
	}
	s.p = p
	s.topic = topicName("restart-fill", env)
	st, err := fillTopic(ctx, env, loadSpec{
		label: progressLabel(s.Name()+" fill", env), addr: p.Addr, topic: s.topic, partitions: env.Cfg.Partitions,
		brokerPID: p.PID, stopAfterBytes: s.fillBytes(env.Cfg),
	})
	if err != nil {
		return err
	}
	s.records, s.dataBytes = st.totalRecords, st.totalBytes
	s.walBytes, err = dirBytes(s.dir)
	if err != nil {
		return err
	}
	res.Metrics = append(res.Metrics, report.Metric{Key: "fill", Label: "fill throughput (acks=1, first round)",
		Unit: report.BytesPerSec, Value: float64(st.prodBytes) / st.window.Seconds(), Limits: []report.Limit{diskSeqWrite(env.Limits)}})
	env.Progress.Logf("%s filled %s on disk with %d records", progressLabel(s.Name(), env),
		report.Format(report.Bytes, float64(s.walBytes)), s.records)
	return nil
}

func (s *restart) Close() error {
	var err error
	if s.p != nil {
		_, err = s.p.Stop(syscall.SIGTERM)
		s.p = nil
	}
	if s.m != nil && s.dir != "" {
		s.m.Cleanup(s.dir)
	}
	return err
}

// endOffsetSum is the sum of the topic's partitions' high watermarks.
func endOffsetSum(ctx context.Context, addr, topic string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
	defer cancel()
	ends, err := listEnds(ctx, addr, topic)
	return sumEnds(ends), err
}

// dirBytes is the apparent size of the regular files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}
