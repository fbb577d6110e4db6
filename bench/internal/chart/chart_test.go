package chart

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klite/klite/bench/internal/report"
)

func row(key string, vs ...float64) report.Row {
	return report.Row{Key: key, Label: key, Values: vs}
}

func TestWrite(t *testing.T) {
	r := &report.Report{Scenarios: []report.Scenario{
		{Name: "produce-latency", Rows: []report.Row{
			row("achieved-25", 10e3, 11e3), row("achieved", 20e3, 21e3), row("achieved-75", 30e3, 29e3),
			row("p50-25", 0.001, 0.002), row("p50", 0.002, 0.003), row("p50-75", 0.004, 0.005),
			row("p99", 0.01, 0.02), row("p999", 0.03, 0.04), row("achieved-e2e", 9e3), row("e2e-p99", 0.02, 0.03),
		}},
		{Name: "connections", Rows: []report.Row{
			row("rss-0", 10e6), row("conns-1", 5000), row("rss-1", 20e6), row("conns-2", 10000), row("rss-2", 30e6),
		}},
		{Name: "produce-sweep", Rows: []report.Row{
			row("sustainable", 100e3), row("achieved-100k", 100e3, 99e3), row("p50-100k", 0.001), row("p99-100k", 0.004),
			row("p999-100k", 0.006), row("max-100k", 0.009), row("achieved-200k", 150e3), row("p50-200k", 0.2), row("p99-200k", 0.9),
			row("p999-200k", 1.1), row("max-200k", 1.2),
		}},
		{Name: "produce-steady", Series: []report.Series{
			{Key: "p99-per-second", Label: "p99", Round: 1, Interval: time.Second, Values: []float64{0.002, math.NaN(), 0.5}},
			{Key: "max-per-second", Label: "max", Round: 1, Interval: time.Second, Values: []float64{0.003, math.NaN(), 0.6}},
			{Key: "p99-per-second", Label: "p99", Round: 2, Interval: time.Second, Values: []float64{0, 0, 0}},
		}},
	}}
	dir := t.TempDir()
	if d := os.Getenv("KLITE_CHART_DIR"); d != "" {
		dir = d // look at the charts
	}
	charts, err := Write(r, filepath.Join(dir, "results"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(charts) != 4 {
		t.Fatalf("charts %+v, want latency, sweep, steady and memory", charts)
	}
	for _, c := range charts {
		if filepath.IsAbs(c.Path) || filepath.Dir(c.Path) != "results" {
			t.Errorf("%s: path %q, want relative to the report under results/", c.Title, c.Path)
		}
		b, err := os.ReadFile(filepath.Join(dir, c.Path))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 8 || string(b[1:4]) != "PNG" {
			t.Errorf("%s: not a PNG (%d bytes)", c.Path, len(b))
		}
	}
}

func TestWriteNothingWithoutData(t *testing.T) {
	r := &report.Report{Scenarios: []report.Scenario{{Name: "connections", Rows: []report.Row{row("rss-0", 10e6)}}}}
	charts, err := Write(r, t.TempDir(), "")
	if err != nil || len(charts) != 0 {
		t.Errorf("Write = %+v, %v; want no charts from a single point", charts, err)
	}
}
