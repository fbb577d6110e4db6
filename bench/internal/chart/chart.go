// Package chart draws the report's figures as PNG files with gonum/plot:
// produce latency percentiles against throughput, and broker memory against
// idle connections. Points are the medians across runs.
package chart

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/klite/klite/bench/internal/report"
)

// Size of every chart; small PNGs keep the repository light.
const (
	width  = 6 * vg.Inch
	height = 4 * vg.Inch
)

// latencySteps are produce-latency's key suffixes, lowest rate first.
var latencySteps = []string{"-25", "", "-75"}

// Write draws every chart the report has data for into dir and returns them
// with paths relative to relTo (the report's directory).
func Write(r *report.Report, dir, relTo string) ([]report.Chart, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []report.Chart
	add := func(title, name string, p *plot.Plot) error {
		path := filepath.Join(dir, name)
		if err := p.Save(width, height, path); err != nil {
			return fmt.Errorf("chart: %s: %w", name, err)
		}
		rel, err := filepath.Rel(relTo, path)
		if err != nil {
			rel = path
		}
		out = append(out, report.Chart{Title: title, Path: filepath.ToSlash(rel)})
		return nil
	}
	if p, ok := Latency(r); ok {
		if err := add("produce latency percentiles against throughput", "latency.png", p); err != nil {
			return out, err
		}
	}
	if p, ok := Memory(r); ok {
		if err := add("broker memory against idle connections", "memory.png", p); err != nil {
			return out, err
		}
	}
	return out, nil
}

func median(s *report.Scenario, key string) (float64, bool) {
	row, ok := s.Row(key)
	if !ok {
		return 0, false
	}
	v := row.Summary().Median
	return v, !math.IsNaN(v)
}

// Latency plots produce p50, p99, p99.9 and end-to-end p99 (ms) against the
// achieved rate (records/s) of produce-latency's steps.
func Latency(r *report.Report) (*plot.Plot, bool) {
	s, ok := r.Scenario("produce-latency")
	if !ok {
		return nil, false
	}
	// Produce percentiles per step; end-to-end from its own step (with
	// consumers), one point at that step's rate. Keys are {x, y}.
	perStep := func(y string) [][2]string {
		var ks [][2]string
		for _, st := range latencySteps {
			ks = append(ks, [2]string{"achieved" + st, y + st})
		}
		return ks
	}
	series := []struct {
		label string
		keys  [][2]string
	}{
		{"produce p50", perStep("p50")},
		{"produce p99", perStep("p99")},
		{"produce p99.9", perStep("p999")},
		{"end-to-end p99 (with consumers)", [][2]string{{"achieved-e2e", "e2e-p99"}}},
	}
	p := plot.New()
	p.Title.Text = "klite produce latency (acks=all) vs throughput"
	p.X.Label.Text = "achieved rate (k records/s)"
	p.Y.Label.Text = "latency (ms)"
	var args []any
	n := 0
	for _, se := range series {
		var pts plotter.XYs
		for _, k := range se.keys {
			x, ok1 := median(s, k[0])
			y, ok2 := median(s, k[1])
			if ok1 && ok2 {
				pts = append(pts, plotter.XY{X: x / 1e3, Y: y * 1e3})
			}
		}
		if len(pts) > 0 {
			args = append(args, se.label, pts)
			n += len(pts)
		}
	}
	if n == 0 {
		return nil, false
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return nil, false
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Y.Min = 0
	return p, true
}

// Memory plots broker RSS (MB) against idle connections from the
// connections scenario's steps.
func Memory(r *report.Report) (*plot.Plot, bool) {
	s, ok := r.Scenario("connections")
	if !ok {
		return nil, false
	}
	var pts plotter.XYs
	if y, ok := median(s, "rss-0"); ok {
		pts = append(pts, plotter.XY{X: 0, Y: y / 1e6})
	}
	for i := 1; ; i++ {
		x, ok1 := median(s, fmt.Sprintf("conns-%d", i))
		y, ok2 := median(s, fmt.Sprintf("rss-%d", i))
		if !ok1 || !ok2 {
			break
		}
		pts = append(pts, plotter.XY{X: x, Y: y / 1e6})
	}
	if len(pts) < 2 {
		return nil, false
	}
	p := plot.New()
	p.Title.Text = "klite broker RSS vs idle connections"
	p.X.Label.Text = "idle client connections"
	p.Y.Label.Text = "broker RSS (MB)"
	if err := plotutil.AddLinePoints(p, "RSS", pts); err != nil {
		return nil, false
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Y.Min = 0
	return p, true
}
