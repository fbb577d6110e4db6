package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klite/klite/bench/internal/scenario"
)

func TestQuickDefaults(t *testing.T) {
	c, err := parseFlags([]string{"-quick"})
	if err != nil {
		t.Fatal(err)
	}
	if c.runs != 1 || c.load.Duration != 2*time.Second || c.load.RestartWAL != 1e9 || c.out != "" || c.charts != "" {
		t.Errorf("quick: runs %d duration %v restart WAL %d out %q charts %q", c.runs, c.load.Duration, c.load.RestartWAL, c.out, c.charts)
	}
	if slices.Contains(c.scenarios, "restart-1gb") || !slices.Contains(c.scenarios, "restart") || slices.Contains(c.scenarios, "tier-catchup") {
		t.Errorf("quick scenarios %v: want restart (1 GB) without restart-1gb and without tier-*", c.scenarios)
	}
	for _, n := range c.scenarios {
		if strings.HasPrefix(n, "security-") || strings.HasPrefix(n, "txn-") || strings.HasPrefix(n, "metrics-") {
			t.Errorf("quick all runs %s: want the security, txn and metrics groups left out", n)
		}
	}
	if c.load.TierBacklog != 256e6 || fmt.Sprint(c.load.TierRecover) != "[256000000 1000000000]" || c.seqTime != 1500*time.Millisecond {
		t.Errorf("quick: tier backlog %d recover %v seq time %v", c.load.TierBacklog, c.load.TierRecover, c.seqTime)
	}
	// Asked for by name, quick runs the tier group.
	c, err = parseFlags([]string{"-quick", "-scenario", "tier", "-tier-recover", "10MB,20MB", "-tier-args", "-s3-object-bytes 8388608"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.scenarios, ",") != "tier-catchup,tier-produce,tier-recover" || fmt.Sprint(c.load.TierRecover) != "[10000000 20000000]" ||
		strings.Join(c.load.TierArgs, " ") != "-s3-object-bytes 8388608" {
		t.Errorf("quick tier: scenarios %v recover %v args %q", c.scenarios, c.load.TierRecover, c.load.TierArgs)
	}
	if c.load.AgeBytes != 512e6 || c.load.SweepStepTime != 2*time.Second || c.load.SteadyTime != 10*time.Second {
		t.Errorf("quick: age %d sweep step %v steady %v", c.load.AgeBytes, c.load.SweepStepTime, c.load.SteadyTime)
	}
	// Explicit flags win over -quick's defaults.
	c, err = parseFlags([]string{"-quick", "-runs", "3", "-restart-wal", "2GB", "-out", "x.md"})
	if err != nil {
		t.Fatal(err)
	}
	if c.runs != 3 || c.load.RestartWAL != 2e9 || c.out != "x.md" {
		t.Errorf("quick with overrides: runs %d restart WAL %d out %q", c.runs, c.load.RestartWAL, c.out)
	}
}

func TestFullDefaults(t *testing.T) {
	c, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.runs != 3 || c.load.RestartWAL != 5e9 || c.out != "BENCHMARKS.md" || c.load.Consumers != c.load.Producers {
		t.Errorf("full: runs %d restart WAL %d out %q consumers %d", c.runs, c.load.RestartWAL, c.out, c.load.Consumers)
	}
	if len(c.scenarios) != len(scenario.Names) {
		t.Errorf("scenarios %v, want all of %v", c.scenarios, scenario.Names)
	}
	if c.load.AgeBytes != 3e9 || c.load.SteadyTime != 2*time.Minute || c.load.SweepStepTime != 5*time.Second || c.load.LongLivedScope != "round" ||
		fmt.Sprint(c.load.SweepRates) != "[100000 200000 300000 400000]" || !c.load.SweepOn || c.load.SweepP99 != 5*time.Millisecond {
		t.Errorf("full: age %d steady %v sweep %v %v on %v p99 %v scope %s", c.load.AgeBytes, c.load.SteadyTime, c.load.SweepStepTime,
			c.load.SweepRates, c.load.SweepOn, c.load.SweepP99, c.load.LongLivedScope)
	}
	if c.seqBytes != 1<<30 || c.seqTime != 4*time.Second || c.fsyncTime != 3*time.Second || fmt.Sprint(c.load.TierRecover) != "[1000000000 5000000000]" {
		t.Errorf("full: seq %d bytes / %v, fsync %v, tier recover %v", c.seqBytes, c.seqTime, c.fsyncTime, c.load.TierRecover)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-runs", "0"},
		{"-acks", "2"},
		{"-compression", "brotli"},
		{"-scenario", "nope"},
		{"-broker-pid", "12"},
		{"-brokers", "x:1", "-klite", "/bin/true"},
		{"-restart-wal", "lots"},
		{"-tier-recover", "1GB,,2GB"},
		{"-tier-segment-bytes", "1000"},
		{"-seq-time", "-1s"},
		{"-sweep-rates", "200k,100k"},
		{"-sweep-rates", "..."},
		{"-sweep-rates", "100k,,200k"},
		{"-sweep-rates", "100k,...,200k"},
		{"-sweep-max", "50k"},
		{"-sweep-p99", "2s"},
		{"-steady-rate", "fast"},
		{"-long-lived", "forever"},
		{"extra"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q): want an error", args)
		}
	}
}

func TestParseBytes(t *testing.T) {
	cases := map[string]int64{"4096": 4096, "5GB": 5e9, "1.5 GB": 1.5e9, "512MiB": 512 << 20, "1GiB": 1 << 30, "10KB": 10e3, "7B": 7}
	for in, want := range cases {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GB", "-1", "5TB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q): want an error", bad)
		}
	}
}

func TestCommand(t *testing.T) {
	got := command([]string{"-quick", "-broker-args", "-fsync-linger 1ms"})
	if want := "go run ./bench -quick -broker-args '-fsync-linger 1ms'"; got != want {
		t.Errorf("command = %q, want %q", got, want)
	}
}

func TestCommit(t *testing.T) {
	c := commit("..")
	if c == "" || strings.ContainsAny(c, " \n") {
		t.Errorf("commit = %q", c)
	}
}

func TestSweepFlags(t *testing.T) {
	c, err := parseFlags([]string{"-sweep-rates", "50k, 1.5M,2M", "-sweep-max", "3M", "-steady-rate", "120k", "-long-lived", "off"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.load.SweepRates) != "[50000 1.5e+06 2e+06]" || c.load.SweepOn || c.load.SweepMax != 3e6 || c.load.SteadyRate != 120e3 || c.load.LongLivedScope != "off" {
		t.Errorf("rates %v on %v max %v steady %v scope %s", c.load.SweepRates, c.load.SweepOn, c.load.SweepMax, c.load.SteadyRate, c.load.LongLivedScope)
	}
	var r rateList
	if err := r.Set("100k,200k,..."); err != nil || !r.on || r.String() != "100k,200k,..." {
		t.Errorf("rateList %+v %q, %v", r, r.String(), err)
	}
}
