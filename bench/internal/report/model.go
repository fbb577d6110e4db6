// Package report turns benchmark measurements into BENCHMARKS.md: per-run
// metrics are aggregated into medians and spread, each broker figure is shown
// as a fraction of the physical limit measured in the same run, and the
// brief's targets are judged pass or miss.
package report

import (
	"encoding/json"
	"math"
	"time"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/stats"
)

// Unit says what a value means and how it prints. Values are stored in base
// units: bytes, seconds, bytes per second, records per second.
type Unit string

const (
	BytesPerSec   Unit = "MB/s"      // value in B/s, printed in MB/s (10^6)
	RecordsPerSec Unit = "records/s" // value in records/s
	Seconds       Unit = "s"         // value in seconds, printed in ms below 1 s
	Bytes         Unit = "MB"        // value in bytes, printed in MB (10^6)
	CPUPerGB      Unit = "CPU-s/GB"  // CPU seconds per 10^9 bytes moved
	Cores         Unit = "cores"     // CPU seconds per wall second
	Count         Unit = ""          // a plain number
	Fraction      Unit = "%"         // value 0..1, printed as a percentage
)

// Metric is one figure from one run of a scenario.
type Metric struct {
	Key   string // stable identifier within the scenario, e.g. "throughput"
	Label string // what the table shows
	Unit  Unit
	Value float64
	// Limits are the physical limits this figure is compared with: the
	// report shows Value/Limit for each, per run, then their median.
	Limits []Limit
}

// Limit is a physical limit a metric is compared with, with its value in the
// metric's unit as measured in the same run.
type Limit struct {
	Key   string // e.g. "disk-seq-write"
	Label string // e.g. "disk seq write"
	Value float64
}

// Row is one metric across runs.
type Row struct {
	Key    string
	Label  string
	Unit   Unit
	Values []float64 // one per run; NaN where a run did not produce it
	Ratios []RatioRow
}

// RatioRow is a metric as a fraction of one limit across runs.
type RatioRow struct {
	Key         string
	Label       string
	Ratios      []float64 // value/limit per run
	LimitValues []float64 // the limit per run, in the metric's unit
}

// Summary of the row's values.
func (r Row) Summary() stats.Summary { return stats.Summarize(r.Values) }

// Ratio returns the ratio row for limit key, if any.
func (r Row) Ratio(key string) (RatioRow, bool) {
	for _, rr := range r.Ratios {
		if rr.Key == key {
			return rr, true
		}
	}
	return RatioRow{}, false
}

// Aggregate turns per-run metrics into rows, in first-seen order. A metric
// missing from a run counts as NaN there, so the median is over the runs
// that have it.
func Aggregate(runs [][]Metric) []Row {
	var rows []Row
	idx := map[string]int{}
	for ri, run := range runs {
		for _, m := range run {
			i, ok := idx[m.Key]
			if !ok {
				i = len(rows)
				idx[m.Key] = i
				rows = append(rows, Row{Key: m.Key, Label: m.Label, Unit: m.Unit, Values: nanSlice(len(runs))})
			}
			row := &rows[i]
			row.Values[ri] = m.Value
			for _, l := range m.Limits {
				j := -1
				for k := range row.Ratios {
					if row.Ratios[k].Key == l.Key {
						j = k
					}
				}
				if j < 0 {
					j = len(row.Ratios)
					row.Ratios = append(row.Ratios, RatioRow{Key: l.Key, Label: l.Label, Ratios: nanSlice(len(runs)), LimitValues: nanSlice(len(runs))})
				}
				rr := &row.Ratios[j]
				rr.LimitValues[ri] = l.Value
				if l.Value > 0 {
					rr.Ratios[ri] = m.Value / l.Value
				}
			}
		}
	}
	return rows
}

func nanSlice(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// KV is one setting shown in a table.
type KV struct{ Key, Value string }

// Scenario is one scenario's section of the report.
type Scenario struct {
	Name        string
	Description string
	Settings    []KV
	Rows        []Row
	Notes       []string
	Errors      []string // runs that failed, with their error
	// Series are figures over time within a run (produce-steady's p99 per
	// second): the charts draw them, the JSON keeps them, the tables do not.
	Series []Series `json:",omitempty"`
}

// Series is one figure sampled at a fixed interval during one run.
type Series struct {
	Key      string // e.g. "p99-per-second"
	Label    string
	Unit     Unit
	Round    int           // 1-based
	Interval time.Duration // between points; point i covers [i*Interval, (i+1)*Interval)
	Values   []float64     // NaN where an interval has no sample
}

// MarshalJSON writes NaN as null.
func (s Series) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Key      string     `json:"key"`
		Label    string     `json:"label"`
		Unit     Unit       `json:"unit"`
		Round    int        `json:"round"`
		Interval string     `json:"interval"`
		Values   []*float64 `json:"values"`
	}{s.Key, s.Label, s.Unit, s.Round, s.Interval.String(), nullable(s.Values)})
}

// Row returns the row with key, if any.
func (s *Scenario) Row(key string) (Row, bool) {
	for _, r := range s.Rows {
		if r.Key == key {
			return r, true
		}
	}
	return Row{}, false
}

// Status is a target's verdict.
type Status string

const (
	Pass       Status = "pass"
	Miss       Status = "MISS"
	NotMeasure Status = "not measured"
)

// TargetResult is one target judged against the report.
type TargetResult struct {
	Name      string
	Measured  string
	Threshold string
	Status    Status
	Note      string
}

// Report is everything BENCHMARKS.md shows.
type Report struct {
	Command  string
	Commit   string
	Date     time.Time
	Mode     string // "full" or "quick"
	Runs     int
	Broker   string
	Elapsed  time.Duration
	Load     string // load averages at start and end, as /proc/loadavg gives them
	Machine  proc.Machine
	Settings []KV
	Limits   []Row
	// LimitNotes follow the limits table (how the probes were taken).
	LimitNotes []string
	Targets    []TargetResult
	Scenarios  []Scenario
	Notes      []string
	Charts     []Chart
}

// Chart is an image file the report links to.
type Chart struct {
	Title string
	Path  string // relative to the report file
}

// Scenario returns the named scenario section, if present.
func (r *Report) Scenario(name string) (*Scenario, bool) {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name {
			return &r.Scenarios[i], true
		}
	}
	return nil, false
}

// MarshalJSON writes NaN (a run without the figure) as null.
func (r Row) MarshalJSON() ([]byte, error) {
	type ratio struct {
		Key         string     `json:"key"`
		Label       string     `json:"label"`
		Ratios      []*float64 `json:"ratios"`
		LimitValues []*float64 `json:"limit_values"`
	}
	out := struct {
		Key    string     `json:"key"`
		Label  string     `json:"label"`
		Unit   Unit       `json:"unit"`
		Values []*float64 `json:"values"`
		Ratios []ratio    `json:"ratios,omitempty"`
	}{Key: r.Key, Label: r.Label, Unit: r.Unit, Values: nullable(r.Values)}
	for _, rr := range r.Ratios {
		out.Ratios = append(out.Ratios, ratio{rr.Key, rr.Label, nullable(rr.Ratios), nullable(rr.LimitValues)})
	}
	return json.Marshal(out)
}

func nullable(v []float64) []*float64 {
	out := make([]*float64, len(v))
	for i, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out[i] = &x
		}
	}
	return out
}
