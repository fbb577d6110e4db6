package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klite/klite/bench/internal/broker"
	"github.com/klite/klite/bench/internal/chart"
	"github.com/klite/klite/bench/internal/limits"
	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/bench/internal/scenario"
	"github.com/klite/klite/bench/internal/stats"
)

// run executes the benchmark and writes the report. The exit code is 1 when
// a scenario run failed (the report is still written), 0 otherwise; missed
// targets are findings, not failures.
func run(ctx context.Context, c *config) (int, error) {
	began := time.Now()
	loadStart := proc.LoadAvg()
	pr := scenario.NewProgress(os.Stderr)
	root, err := broker.ModuleRoot(".")
	if err != nil {
		return 2, err
	}
	scratch, err := os.MkdirTemp(c.dir, "klite-bench-")
	if err != nil {
		return 2, err
	}
	defer func() {
		if c.keepLogs {
			pr.Logf("scratch directory kept: %s", scratch)
			return
		}
		os.RemoveAll(scratch)
	}()

	launcher, brokerDesc, err := newLauncher(ctx, c, root, scratch, pr)
	if err != nil {
		return 2, err
	}

	// The broker the long-lived scenarios share; released (stopped, its WAL
	// removed) where its scope ends, and at the latest here.
	shared := scenario.NewLongLived(launcher, c.load.LongLivedScope == "off")
	defer func() {
		if err := shared.Release(); err != nil {
			pr.Logf("long-lived broker: stop: %v", err)
		}
	}()
	lastLongLived := -1 // index in scens of the last scenario on the shared broker
	for i, name := range c.scenarios {
		if scenario.OnLongLived(name) {
			lastLongLived = i
		}
	}

	var scens []scenario.Scenario
	for _, name := range c.scenarios {
		s, err := scenario.New(name)
		if err != nil {
			return 2, err
		}
		scens = append(scens, s)
	}
	defer func() {
		for _, s := range scens {
			if err := s.Close(); err != nil {
				pr.Logf("%s: close: %v", s.Name(), err)
			}
		}
	}()

	limitCfg := limits.Config{Dir: scratch, FsyncSamples: c.fsyncSamples, FsyncMinTime: c.fsyncTime,
		SeqBytes: c.seqBytes, SeqMinTime: c.seqTime, TCPBytes: c.tcpBytes}
	var probes []limits.Result // before each round, and once after the last
	probe := func(when string) (limits.Result, error) {
		pr.Logf("== physical limits %s, in %s", when, scratch)
		lim, err := limits.Measure(ctx, limitCfg)
		if err != nil {
			return lim, err
		}
		pr.Logf("   fdatasync p50 %s p99 %s (%d) | seq write %s (%s) | loopback %s",
			report.Format(report.Seconds, lim.FsyncP50.Seconds()), report.Format(report.Seconds, lim.FsyncP99.Seconds()), lim.FsyncSamples,
			report.Format(report.BytesPerSec, lim.SeqWriteBs), report.Format(report.Bytes, float64(lim.SeqBytes)),
			report.Format(report.BytesPerSec, lim.TCPBs))
		probes = append(probes, lim)
		return lim, nil
	}
	type scenRuns struct {
		runs    [][]report.Metric
		series  []report.Series
		notes   []string
		errs    []string
		skipped string
	}
	results := make([]scenRuns, len(scens))
	failed := false

rounds:
	for round := 1; round <= c.runs; round++ {
		lim, err := probe(fmt.Sprintf("before round %d/%d", round, c.runs))
		if err != nil {
			return 2, err
		}
		env := &scenario.Env{Cfg: c.load, Limits: lim, Brokers: launcher, Progress: pr, Round: round, Rounds: c.runs, ScratchDir: scratch,
			LongLived: shared}
		for i, s := range scens {
			r := &results[i]
			if r.skipped != "" {
				if i == lastLongLived && c.load.LongLivedScope == "round" {
					if err := shared.Release(); err != nil {
						pr.Logf("long-lived broker: stop: %v", err)
					}
				}
				continue
			}
			pr.Logf("== round %d/%d: %s", round, c.runs, s.Name())
			// Flush what earlier scenarios left dirty in the page cache, so
			// its writeback does not land in this scenario's fsyncs.
			unix.Sync()
			res, err := s.Run(ctx, env)
			pr.Done()
			r.notes = append(r.notes, res.Notes...)
			r.series = append(r.series, res.Series...)
			if i == lastLongLived && c.load.LongLivedScope == "round" {
				err = errors.Join(err, shared.Release())
			}
			for len(r.runs) < round {
				r.runs = append(r.runs, nil)
			}
			r.runs[round-1] = res.Metrics
			var skip *scenario.SkipError
			switch {
			case errors.Is(err, scenario.ErrNeedsManaged):
				r.skipped = "skipped: " + err.Error()
				pr.Logf("   %s", r.skipped)
			case errors.As(err, &skip):
				r.skipped = "skipped: " + skip.Reason
				pr.Logf("   %s", r.skipped)
			case err != nil:
				failed = true
				r.errs = append(r.errs, fmt.Sprintf("round %d: %v", round, err))
				pr.Logf("   FAILED: %v", err)
			default:
				pr.Logf("   %s", summaryLine(res.Metrics))
			}
			if ctx.Err() != nil {
				break rounds
			}
		}
	}
	if ctx.Err() == nil {
		unix.Sync()
		if _, err := probe("after the last round"); err != nil {
			return 2, err
		}
	}
	// Every ratio uses the run's median of each limit: one probe is noisy
	// (a virtual disk swings severalfold between minutes), the median of
	// several spread over the run is what the broker had on average.
	med := probeMedians(probes)
	for i := range results {
		for _, run := range results[i].runs {
			pinLimits(run, med)
		}
	}
	var limitRuns [][]report.Metric
	for _, l := range probes {
		limitRuns = append(limitRuns, limitMetrics(l))
	}

	rep := &report.Report{
		Command:  command(c.args),
		Commit:   commit(root),
		Date:     began,
		Mode:     map[bool]string{true: "quick", false: "full"}[c.quick],
		Runs:     c.runs,
		Broker:   brokerDesc,
		Elapsed:  time.Since(began),
		Load:     fmt.Sprintf("%s at start, %s at end", loadStart, proc.LoadAvg()),
		Machine:  proc.Describe(scratch),
		Settings: settings(c),
		Limits:   report.Aggregate(limitRuns),
		LimitNotes: []string{fmt.Sprintf("%d probes: before each of the %d round(s) and after the last; every ratio in this report uses "+
			"the medians above. Sequential write per probe, in order: %s.", len(probes), c.runs, seqList(probes))},
		Notes: []string{
			"The machine is shared with other work (compiles, tests) while the benchmark runs; treat absolute figures as noisy and prefer the ratios to limits measured in the same run.",
			"The benchmark's franz-go clients run on the same machine as the broker and compete with it for CPU; the bench client CPU rows show how much.",
		},
	}
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, "Interrupted: the run did not complete.")
	}
	for i, s := range scens {
		r := results[i]
		sec := report.Scenario{Name: s.Name(), Description: s.Describe(c.load), Settings: s.Settings(c.load),
			Rows: report.Aggregate(r.runs), Notes: r.notes, Errors: r.errs, Series: r.series}
		if r.skipped != "" {
			sec.Notes = append(sec.Notes, r.skipped)
		}
		rep.Scenarios = append(rep.Scenarios, sec)
	}
	rep.Targets = report.Judge(rep, report.Targets)
	if c.charts != "" {
		dir := c.charts
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(root, dir)
		}
		relTo, _ := os.Getwd()
		if c.out != "" {
			relTo = filepath.Dir(absPath(c.out))
		}
		charts, err := chart.Write(rep, dir, relTo)
		if err != nil {
			pr.Logf("charts: %v", err)
		}
		rep.Charts = charts
	}

	if err := writeOutputs(c, rep); err != nil {
		return 2, err
	}
	printTargets(rep)
	if failed || ctx.Err() != nil {
		return 1, nil
	}
	return 0, nil
}

func newLauncher(ctx context.Context, c *config, root, scratch string, pr *scenario.Progress) (scenario.Launcher, string, error) {
	if c.brokers != "" {
		desc := "external broker at " + c.brokers
		if c.brokerPID > 0 {
			desc += fmt.Sprintf(" (pid %d)", c.brokerPID)
		}
		return &scenario.External{Addr: c.brokers, PID: c.brokerPID}, desc, nil
	}
	bin := c.klite
	desc := "klite " + bin
	if bin == "" {
		bin = filepath.Join(scratch, "klite")
		pr.Logf("== building ./cmd/klite")
		start := time.Now()
		if err := broker.Build(ctx, root, bin); err != nil {
			return nil, "", err
		}
		pr.Logf("   built in %s", time.Since(start).Round(time.Millisecond))
		desc = "klite built from this tree (`go build ./cmd/klite`)"
	}
	desc += ", started on 127.0.0.1:0 with a fresh temporary WAL for every scenario run, stopped with SIGTERM"
	switch c.load.LongLivedScope {
	case "round":
		desc += " (except the long-lived scenarios: one aged klite per round, see produce-sweep)"
	case "run":
		desc += " (except the long-lived scenarios: one aged klite for the whole benchmark, see produce-sweep)"
	}
	if len(c.brokerArgs) > 0 {
		desc += ", extra flags `" + strings.Join(c.brokerArgs, " ") + "`"
	}
	return &scenario.Managed{Binary: bin, Dir: scratch, ExtraArgs: c.brokerArgs, KeepLogs: c.keepLogs}, desc, nil
}

func limitMetrics(l limits.Result) []report.Metric {
	seq := fmt.Sprintf("sequential write, 1 MiB writes, fdatasync every %d MiB", limits.SeqSyncBytes>>20)
	return []report.Metric{
		{Key: "fsync-p50", Label: "fdatasync after a 64 KiB append, p50", Unit: report.Seconds, Value: l.FsyncP50.Seconds()},
		{Key: "fsync-p99", Label: "fdatasync after a 64 KiB append, p99", Unit: report.Seconds, Value: l.FsyncP99.Seconds()},
		{Key: "fsync-max", Label: "fdatasync after a 64 KiB append, max", Unit: report.Seconds, Value: l.FsyncMax.Seconds()},
		{Key: "fsync-samples", Label: "fdatasync samples per probe", Unit: report.Count, Value: float64(l.FsyncSamples)},
		{Key: "seq-write", Label: seq, Unit: report.BytesPerSec, Value: l.SeqWriteBs},
		{Key: "seq-bytes", Label: "sequential write, bytes per probe", Unit: report.Bytes, Value: float64(l.SeqBytes)},
		{Key: "loopback", Label: "loopback TCP, one stream, 1 MiB writes", Unit: report.BytesPerSec, Value: l.TCPBs},
	}
}

// probeMedians are the run-wide values of the limits scenarios compare
// with, by report limit key.
func probeMedians(probes []limits.Result) map[string]float64 {
	med := func(f func(limits.Result) float64) float64 {
		var v []float64
		for _, p := range probes {
			v = append(v, f(p))
		}
		return stats.Summarize(v).Median
	}
	p99 := med(func(l limits.Result) float64 { return l.FsyncP99.Seconds() })
	return map[string]float64{
		report.LimitDiskSeqWrite: med(func(l limits.Result) float64 { return l.SeqWriteBs }),
		report.LimitLoopback:     med(func(l limits.Result) float64 { return l.TCPBs }),
		report.LimitFsyncP50:     med(func(l limits.Result) float64 { return l.FsyncP50.Seconds() }),
		report.LimitFsyncP99:     p99,
		report.Limit2xFsyncP99:   2 * p99,
	}
}

// pinLimits replaces the limits attached to a run's metrics with the
// run-wide values in med (keys it lacks, e.g. the CPU-bound limit, stay).
func pinLimits(run []report.Metric, med map[string]float64) {
	for i := range run {
		for j := range run[i].Limits {
			if v, ok := med[run[i].Limits[j].Key]; ok && !math.IsNaN(v) {
				run[i].Limits[j].Value = v
			}
		}
	}
}

func seqList(probes []limits.Result) string {
	var parts []string
	for _, p := range probes {
		parts = append(parts, report.Format(report.BytesPerSec, p.SeqWriteBs))
	}
	return strings.Join(parts, ", ")
}

func settings(c *config) []report.KV {
	l := c.load
	return []report.KV{
		{Key: "record size", Value: fmt.Sprintf("%d B", l.RecordSize)},
		{Key: "partitions", Value: fmt.Sprint(l.Partitions)},
		{Key: "producers / consumers", Value: fmt.Sprintf("%d / %d", l.Producers, l.Consumers)},
		{Key: "measured duration / warmup per run", Value: fmt.Sprintf("%s / %s", l.Duration, l.Warmup)},
		{Key: "limit probes", Value: fmt.Sprintf("before each round and after the last: at least %d fdatasyncs and %s; "+
			"seq write of at least %s and %s; %s loopback",
			c.fsyncSamples, c.fsyncTime, report.Format(report.Bytes, float64(c.seqBytes)), c.seqTime, report.Format(report.Bytes, float64(c.tcpBytes)))},
		{Key: "client", Value: "franz-go (kgo) " + kgoVersion()},
	}
}

// summaryLine is the one-line result printed after each scenario run.
func summaryLine(ms []report.Metric) string {
	var parts []string
	for _, m := range ms {
		if len(parts) == 5 {
			break
		}
		parts = append(parts, m.Label+" "+report.Format(m.Unit, m.Value))
	}
	return strings.Join(parts, " | ")
}

func writeOutputs(c *config, rep *report.Report) error {
	if c.out != "" && c.merge {
		old, err := os.ReadFile(c.out)
		if err != nil {
			return fmt.Errorf("-merge: %w", err)
		}
		md, err := report.Merge(old, rep, scenario.Names)
		if err != nil {
			return fmt.Errorf("-merge into %s: %w", c.out, err)
		}
		if err := os.WriteFile(c.out, md, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "merged into %s\n", c.out)
	} else if c.out != "" {
		f, err := os.Create(c.out)
		if err != nil {
			return err
		}
		if err := report.WriteMarkdown(f, rep); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", c.out)
	} else if err := report.WriteMarkdown(os.Stdout, rep); err != nil {
		return err
	}
	if c.jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func printTargets(rep *report.Report) {
	fmt.Fprintln(os.Stderr, "targets:")
	for _, t := range rep.Targets {
		line := fmt.Sprintf("  %-12s %s: %s", t.Status, t.Name, t.Measured)
		if t.Note != "" {
			line += " (" + t.Note + ")"
		}
		fmt.Fprintln(os.Stderr, line)
	}
}

// command is the invocation as a user would type it.
func command(args []string) string {
	parts := []string{"go run ./bench"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// commit is the short HEAD hash, "-dirty" when the tree has changes.
func commit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "-dirty"
	}
	return c
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
