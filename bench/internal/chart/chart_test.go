package chart

import (
	"os"
	"path/filepath"
	"testing"

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
	}}
	dir := t.TempDir()
	charts, err := Write(r, filepath.Join(dir, "results"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(charts) != 2 {
		t.Fatalf("charts %+v, want latency and memory", charts)
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
