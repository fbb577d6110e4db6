// Package chart draws the report's figures as PNG files with gonum/plot:
// produce latency percentiles against throughput, and broker memory against
// idle connections. Points are the medians across runs.
package chart

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
	if p, ok := Sweep(r); ok {
		if err := add("produce-sweep: latency percentiles against rate on the long-lived broker", "sweep.png", p); err != nil {
			return out, err
		}
	}
	if p, ok := Steady(r); ok {
		if err := add("produce-steady: p99 and max latency per second", "steady.png", p); err != nil {
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

// logFloor is the least latency a log-scale chart shows (10 µs): a log axis
// cannot show zero.
const logFloorMs = 0.01

// logY puts p's Y axis on a log scale with 1-2-5 ticks.
func logY(p *plot.Plot) {
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = ticks125{}
}

// logHeadroom raises a log axis' top so the legend in the top corner sits
// above the lines.
func logHeadroom(p *plot.Plot) { p.Y.Max *= 8 }

// ticks125 labels 1, 2 and 5 times each power of ten in range, so a log
// axis spanning less than a decade still has labels.
type ticks125 struct{}

func (ticks125) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= lo {
		return nil
	}
	ms := []float64{1, 2, 5}
	if math.Log10(hi/lo) > 3 {
		ms = ms[:1] // decades alone are enough, and fit
	}
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range ms {
			if v := m * math.Pow(10, e); v >= lo && v <= hi {
				ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
	}
	return ts
}

// Sweep plots produce-sweep's p50, p99, p99.9 and max (ms, log scale)
// against each step's achieved rate, medians across runs. Steps are found
// by their key suffix (achieved-100k, ...).
func Sweep(r *report.Report) (*plot.Plot, bool) {
	s, ok := r.Scenario("produce-sweep")
	if !ok {
		return nil, false
	}
	var sfx []string
	for _, row := range s.Rows {
		if k, ok := strings.CutPrefix(row.Key, "achieved-"); ok {
			sfx = append(sfx, "-"+k)
		}
	}
	p := plot.New()
	p.Title.Text = "klite produce-sweep (acks=all, long-lived broker)"
	p.X.Label.Text = "achieved rate (k records/s)"
	p.Y.Label.Text = "latency (ms, log scale)"
	logY(p)
	var args []any
	for _, se := range []struct{ label, key string }{{"p50", "p50"}, {"p99", "p99"}, {"p99.9", "p999"}, {"max", "max"}} {
		var pts plotter.XYs
		for _, k := range sfx {
			x, ok1 := median(s, "achieved"+k)
			y, ok2 := median(s, se.key+k)
			if ok1 && ok2 {
				pts = append(pts, plotter.XY{X: x / 1e3, Y: math.Max(y*1e3, logFloorMs)})
			}
		}
		if len(pts) > 0 {
			args = append(args, se.label, pts)
		}
	}
	if len(args) == 0 {
		return nil, false
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return nil, false
	}
	p.Legend.Top, p.Legend.Left = true, true
	logHeadroom(p)
	return p, true
}

// Steady plots produce-steady's p99 and max per second (ms, log scale)
// over the run, one pair of lines per round. Seconds without an
// acknowledgement have no point (the line joins their neighbours; the
// report's "seconds with p99 over" row counts them).
func Steady(r *report.Report) (*plot.Plot, bool) {
	s, ok := r.Scenario("produce-steady")
	if !ok {
		return nil, false
	}
	p := plot.New()
	p.Title.Text = "klite produce-steady: latency per second (acks=all, long-lived broker)"
	p.X.Label.Text = "second of the measured window"
	p.Y.Label.Text = "latency (ms, log scale)"
	logY(p)
	rounds := map[int]bool{}
	for _, se := range s.Series {
		rounds[se.Round] = true
	}
	var args []any
	lastX := 0.0
	for _, se := range s.Series {
		if se.Key != "p99-per-second" && se.Key != "max-per-second" {
			continue
		}
		lastX = max(lastX, float64(len(se.Values))*se.Interval.Seconds())
		var pts plotter.XYs
		for i, v := range se.Values {
			if !math.IsNaN(v) {
				pts = append(pts, plotter.XY{X: float64(i+1) * se.Interval.Seconds(), Y: math.Max(v*1e3, logFloorMs)})
			}
		}
		if len(pts) == 0 {
			continue
		}
		label := se.Label
		if len(rounds) > 1 {
			label = fmt.Sprintf("%s, round %d", se.Label, se.Round)
		}
		args = append(args, label, pts)
	}
	if len(args) == 0 {
		return nil, false
	}
	if err := plotutil.AddLines(p, args...); err != nil {
		return nil, false
	}
	// The issue-10 goals as gray references: p99 within 5 ms, max under 50 ms.
	for _, ref := range []struct {
		label string
		ms    float64
	}{{"5 ms (p99 goal)", 5}, {"50 ms (max goal)", 50}} {
		l, err := plotter.NewLine(plotter.XYs{{X: 1, Y: ref.ms}, {X: max(lastX, 2), Y: ref.ms}})
		if err != nil {
			return nil, false
		}
		l.Color = color.Gray{Y: 160}
		l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		p.Add(l)
		p.Legend.Add(ref.label, l)
	}
	p.Legend.Top, p.Legend.Left = true, true
	logHeadroom(p)
	return p, true
}
