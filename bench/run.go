package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	limitCfg := limits.Config{Dir: scratch, FsyncSamples: c.fsyncSamples, SeqBytes: c.seqBytes, TCPBytes: c.tcpBytes}
	var limitRuns [][]report.Metric
	type scenRuns struct {
		runs    [][]report.Metric
		notes   []string
		errs    []string
		skipped string
	}
	results := make([]scenRuns, len(scens))
	failed := false

rounds:
	for round := 1; round <= c.runs; round++ {
		pr.Logf("== round %d/%d: physical limits in %s", round, c.runs, scratch)
		lim, err := limits.Measure(ctx, limitCfg)
		if err != nil {
			return 2, err
		}
		pr.Logf("   fdatasync p50 %s p99 %s | seq write %s | loopback %s",
			report.Format(report.Seconds, lim.FsyncP50.Seconds()), report.Format(report.Seconds, lim.FsyncP99.Seconds()),
			report.Format(report.BytesPerSec, lim.SeqWriteBs), report.Format(report.BytesPerSec, lim.TCPBs))
		limitRuns = append(limitRuns, limitMetrics(lim))
		env := &scenario.Env{Cfg: c.load, Limits: lim, Brokers: launcher, Progress: pr, Round: round, Rounds: c.runs}
		for i, s := range scens {
			r := &results[i]
			if r.skipped != "" {
				continue
			}
			pr.Logf("== round %d/%d: %s", round, c.runs, s.Name())
			// Flush what earlier scenarios left dirty in the page cache, so
			// its writeback does not land in this scenario's fsyncs.
			unix.Sync()
			res, err := s.Run(ctx, env)
			pr.Done()
			r.notes = append(r.notes, res.Notes...)
			for len(r.runs) < round {
				r.runs = append(r.runs, nil)
			}
			r.runs[round-1] = res.Metrics
			switch {
			case errors.Is(err, scenario.ErrNeedsManaged):
				r.skipped = "skipped: " + err.Error()
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
			Rows: report.Aggregate(r.runs), Notes: r.notes, Errors: r.errs}
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
	if len(c.brokerArgs) > 0 {
		desc += ", extra flags `" + strings.Join(c.brokerArgs, " ") + "`"
	}
	return &scenario.Managed{Binary: bin, Dir: scratch, ExtraArgs: c.brokerArgs, KeepLogs: c.keepLogs}, desc, nil
}

func limitMetrics(l limits.Result) []report.Metric {
	return []report.Metric{
		{Key: "fsync-p50", Label: "fdatasync after a 64 KiB append, p50", Unit: report.Seconds, Value: l.FsyncP50.Seconds()},
		{Key: "fsync-p99", Label: "fdatasync after a 64 KiB append, p99", Unit: report.Seconds, Value: l.FsyncP99.Seconds()},
		{Key: "fsync-max", Label: "fdatasync after a 64 KiB append, max", Unit: report.Seconds, Value: l.FsyncMax.Seconds()},
		{Key: "seq-write", Label: "sequential write, 1 MiB writes, one fdatasync at the end", Unit: report.BytesPerSec, Value: l.SeqWriteBs},
		{Key: "loopback", Label: "loopback TCP, one stream, 1 MiB writes", Unit: report.BytesPerSec, Value: l.TCPBs},
	}
}

func settings(c *config) []report.KV {
	l := c.load
	return []report.KV{
		{Key: "record size", Value: fmt.Sprintf("%d B", l.RecordSize)},
		{Key: "partitions", Value: fmt.Sprint(l.Partitions)},
		{Key: "producers / consumers", Value: fmt.Sprintf("%d / %d", l.Producers, l.Consumers)},
		{Key: "measured duration / warmup per run", Value: fmt.Sprintf("%s / %s", l.Duration, l.Warmup)},
		{Key: "limit probes", Value: fmt.Sprintf("%d fdatasyncs, %s seq write, %s loopback",
			c.fsyncSamples, report.Format(report.Bytes, float64(c.seqBytes)), report.Format(report.Bytes, float64(c.tcpBytes)))},
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
	if c.out != "" {
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
