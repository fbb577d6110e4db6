package scenario

import (
	"context"
	"fmt"
	"syscall"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
)

// idleRSS: a fresh broker's memory with no load, and its start and stop times.
type idleRSS struct{}

func (s *idleRSS) Name() string { return "idle-rss" }

func (s *idleRSS) Describe(cfg Config) string {
	return fmt.Sprintf("Idle broker: a fresh klite on an empty WAL, no clients. RSS is VmRSS from /proc/<pid>/status "+
		"%s after the ready line; startup is exec to ready line; stop is SIGTERM to exit.", cfg.IdleSettle)
}

func (s *idleRSS) Close() error { return nil }

func (s *idleRSS) Settings(Config) []report.KV { return nil }

func (s *idleRSS) Run(ctx context.Context, env *Env) (Result, error) {
	var res Result
	m := env.Brokers.Managed()
	if m == nil {
		return res, ErrNeedsManaged
	}
	dir := m.NewWALDir(s.Name())
	p, err := m.Start(ctx, dir)
	if err != nil {
		m.Cleanup(dir)
		return res, err
	}
	atReady, err := proc.RSS(p.PID)
	if err == nil {
		err = sleepCtx(ctx, env.Cfg.IdleSettle)
	}
	var settled int64
	if err == nil {
		settled, err = proc.RSS(p.PID)
	}
	stop, serr := p.Stop(syscall.SIGTERM)
	if err != nil {
		return res, err
	}
	if serr != nil {
		return res, fmt.Errorf("%w; log tail:\n%s", serr, p.LogTail())
	}
	m.Cleanup(dir)
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "rss", Label: fmt.Sprintf("idle RSS (%s after ready)", env.Cfg.IdleSettle), Unit: report.Bytes, Value: float64(settled)},
		report.Metric{Key: "rss-at-ready", Label: "RSS at ready", Unit: report.Bytes, Value: float64(atReady)},
		report.Metric{Key: "startup", Label: "startup, empty WAL (exec to ready)", Unit: report.Seconds, Value: p.StartToReady.Seconds()},
		report.Metric{Key: "stop", Label: "stop (SIGTERM to exit)", Unit: report.Seconds, Value: stop.Seconds()},
	)
	return res, nil
}
