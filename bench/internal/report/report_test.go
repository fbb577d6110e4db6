package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klite/klite/bench/internal/proc"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// fixture is a report built from fixed per-run figures: three runs, one of
// which lacks a metric, a skipped scenario and a failed run.
func fixture() *Report {
	disk := func(v float64) []Limit { return []Limit{{Key: LimitDiskSeqWrite, Label: "disk seq write", Value: v}} }
	fsync := func(v float64) []Limit {
		return []Limit{{Key: Limit2xFsyncP99, Label: "2x disk p99 fdatasync", Value: v}}
	}
	r := &Report{
		Command: "go run ./bench -runs 3",
		Commit:  "abc1234-dirty",
		Date:    time.Date(2025, 11, 25, 20, 0, 0, 0, time.UTC),
		Mode:    "full",
		Runs:    3,
		Broker:  "klite built from this tree",
		Elapsed: 95 * time.Second,
		Load:    "0.50 0.40 0.30 at start, 1.00 0.60 0.40 at end",
		Machine: proc.Machine{CPUModel: "AMD EPYC", Cores: 2, MemBytes: 24e9, Kernel: "Linux 6.1", GoVersion: "go1.26",
			FSType: "ext4", FSDevice: "/dev/vda", FSMount: "/", WALDirNote: "/tmp/klite-bench-1"},
		Settings: []KV{{Key: "record size", Value: "1024 B"}},
		Limits: Aggregate([][]Metric{
			{{Key: "fsync-p99", Label: "fdatasync p99", Unit: Seconds, Value: 0.004}, {Key: "seq-write", Label: "seq write", Unit: BytesPerSec, Value: 300e6}},
			{{Key: "fsync-p99", Label: "fdatasync p99", Unit: Seconds, Value: 0.005}, {Key: "seq-write", Label: "seq write", Unit: BytesPerSec, Value: 500e6}},
			{{Key: "fsync-p99", Label: "fdatasync p99", Unit: Seconds, Value: 0.003}, {Key: "seq-write", Label: "seq write", Unit: BytesPerSec, Value: 400e6}},
		}),
		LimitNotes: []string{"4 probes: before each round and after the last."},
		Notes:      []string{"shared machine"},
	}
	r.Scenarios = []Scenario{
		{
			Name: "produce-acks-all", Description: "Peak produce.", Settings: []KV{{Key: "acks", Value: "all"}},
			Rows: Aggregate([][]Metric{
				{{Key: "throughput", Label: "throughput", Unit: BytesPerSec, Value: 150e6, Limits: disk(300e6)}, {Key: "records", Label: "records", Unit: RecordsPerSec, Value: 146e3}},
				{{Key: "throughput", Label: "throughput", Unit: BytesPerSec, Value: 200e6, Limits: disk(500e6)}},
				{{Key: "throughput", Label: "throughput", Unit: BytesPerSec, Value: 240e6, Limits: disk(400e6)}, {Key: "records", Label: "records", Unit: RecordsPerSec, Value: 234e3}},
			}),
		},
		{
			Name: "produce-latency",
			Rows: Aggregate([][]Metric{
				{{Key: "p99", Label: "latency p99", Unit: Seconds, Value: 0.006, Limits: fsync(0.008)}},
				{{Key: "p99", Label: "latency p99", Unit: Seconds, Value: 0.012, Limits: fsync(0.010)}},
				{{Key: "p99", Label: "latency p99", Unit: Seconds, Value: 0.009, Limits: fsync(0.006)}},
			}),
			Notes: []string{"round 2: achieved 10 k/s"},
		},
		{Name: "idle-rss", Rows: Aggregate([][]Metric{{{Key: "rss", Label: "idle RSS", Unit: Bytes, Value: 9.5e6}}, nil, nil})},
		{Name: "restart", Notes: []string{"skipped: needs a managed broker"}},
		{Name: "tail-fetch", Errors: []string{"round 1: broker: exited before ready\nlog tail"}},
	}
	r.Targets = Judge(r, Targets)
	return r
}

func TestAggregate(t *testing.T) {
	r := fixture()
	s, _ := r.Scenario("produce-acks-all")
	row, ok := s.Row("records")
	if !ok {
		t.Fatal("no records row")
	}
	if sum := row.Summary(); sum.N != 2 || sum.Median != 190e3 {
		t.Errorf("records summary %+v: want 2 runs, median 190k (run 2 lacks it)", sum)
	}
	tp, _ := s.Row("throughput")
	rr, ok := tp.Ratio(LimitDiskSeqWrite)
	if !ok {
		t.Fatal("no disk ratio")
	}
	// per-run ratios 0.5, 0.4, 0.6: the median of ratios, not a ratio of medians
	if got := (Row{Values: rr.Ratios}).Summary().Median; math.Abs(got-0.5) > 1e-12 {
		t.Errorf("median ratio %v, want 0.5", got)
	}
}

func TestJudge(t *testing.T) {
	got := map[string]TargetResult{}
	for _, tr := range fixture().Targets {
		got[tr.Name] = tr
	}
	want := map[string]Status{
		"produce acks=all throughput >= 60% of disk seq write": Miss, // median ratio 50%
		"produce p99 at half peak <= 2x disk p99 fdatasync":    Miss, // ratios .75, 1.2, 1.5: median 1.2
		"idle RSS < 15 MB":                 Pass,       // 9.5 MB
		"restart with a 5 GB WAL < 1 s":    NotMeasure, // skipped
		"tail fetch >= 1M 1 KiB records/s": NotMeasure, // failed
	}
	for name, st := range want {
		tr, ok := got[name]
		if !ok {
			t.Errorf("target %q not judged", name)
			continue
		}
		if tr.Status != st {
			t.Errorf("%s: %s (%s; %s), want %s", name, tr.Status, tr.Measured, tr.Note, st)
		}
	}
	if n := got["produce p99 at half peak <= 2x disk p99 fdatasync"].Note; !strings.Contains(n, "1.20x the threshold") {
		t.Errorf("latency miss note %q: want the factor by which it misses", n)
	}
	if n := got["produce acks=all throughput >= 60% of disk seq write"].Note; !strings.Contains(n, "83% of the threshold") {
		t.Errorf("throughput miss note %q: want how far below", n)
	}
}

func TestWriteMarkdownStructure(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, fixture()); err != nil {
		t.Fatal(err)
	}
	md := buf.String()

	// Sections in order.
	var heads []string
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "#") {
			heads = append(heads, l)
		}
	}
	wantHeads := []string{"# klite benchmarks", "## Run", "## Machine", "## Targets", "## Physical limits (measured in this run)",
		"## Settings", "## Scenarios", "### produce-acks-all", "### produce-latency", "### idle-rss", "### restart", "### tail-fetch"}
	if strings.Join(heads, "\n") != strings.Join(wantHeads, "\n") {
		t.Errorf("headings:\n%s\nwant:\n%s", strings.Join(heads, "\n"), strings.Join(wantHeads, "\n"))
	}

	// Every table row has as many cells as its header.
	checkTables(t, md)

	for _, want := range []string{
		"| command | `go run ./bench -runs 3` |",
		"| commit | abc1234-dirty |",
		"| date | 2025-11-25T20:00:00Z |",
		"| CPU | AMD EPYC, 2 logical CPUs |",
		"| WAL directory | /tmp/klite-bench-1: ext4 on /dev/vda (mounted at /) |",
		"| throughput | 200 MB/s | 150 MB/s - 240 MB/s | ±22.5% | 50.0% of disk seq write |",
		"| records | 190 k/s | 146 k/s - 234 k/s | ±23.2% | - |",
		"| idle RSS | 9.50 MB | 9.50 MB - 9.50 MB | - | - |",
		"| produce acks=all throughput >= 60% of disk seq write | 50.0% of disk seq write (200 MB/s vs 400 MB/s) | >= 60.0% | MISS |",
		"| idle RSS < 15 MB | 9.50 MB | <= 15.0 MB | pass |",
		"- skipped: needs a managed broker",
		"- failed run: round 1: broker: exited before ready ...",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}

	golden := filepath.Join("testdata", "report.golden.md")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("markdown differs from %s (run with -update after checking):\n%s", golden, md)
	}
}

var cellSplit = regexp.MustCompile(`[^\\]\|`)

func checkTables(t *testing.T, md string) {
	t.Helper()
	cols := 0
	for i, l := range strings.Split(md, "\n") {
		if !strings.HasPrefix(l, "|") {
			cols = 0
			continue
		}
		n := len(cellSplit.FindAllString(l, -1))
		if cols == 0 {
			cols = n
			continue
		}
		if n != cols {
			t.Errorf("line %d has %d cells, its table %d: %s", i+1, n, cols, l)
		}
	}
}

func TestJSONNaNIsNull(t *testing.T) {
	b, err := json.Marshal(fixture())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"values":[146000,null,234000]`)) {
		t.Errorf("want the missing run as null in %s", b)
	}
}

func TestFormat(t *testing.T) {
	cases := []struct {
		u    Unit
		v    float64
		want string
	}{
		{BytesPerSec, 1.234e9, "1234 MB/s"},
		{BytesPerSec, 45.67e6, "45.7 MB/s"},
		{RecordsPerSec, 1.5e6, "1.50 M/s"},
		{RecordsPerSec, 999, "999 /s"},
		{Seconds, 0.00071, "710 µs"},
		{Seconds, 0.0042, "4.20 ms"},
		{Seconds, 2.5, "2.50 s"},
		{Bytes, 5e9, "5.00 GB"},
		{Bytes, 12.3e6, "12.3 MB"},
		{Fraction, 0.625, "62.5%"},
		{CPUPerGB, 0.5, "0.5 CPU-s/GB"},
		{Count, math.NaN(), "n/a"},
	}
	for _, c := range cases {
		if got := Format(c.u, c.v); got != c.want {
			t.Errorf("Format(%q, %v) = %q, want %q", c.u, c.v, got, c.want)
		}
	}
}

// The loaded-fdatasync row is judged from its own limit and leaves the
// brief's fdatasync target as it was.
func TestJudgeLoadedFsyncContext(t *testing.T) {
	lims := func(idle, loaded float64) []Limit {
		return []Limit{{Key: Limit2xFsyncP99, Label: "2x disk p99 fdatasync", Value: idle},
			{Key: Limit2xLoadedFsyncP99, Label: "2x p99 fdatasync under the same write rate", Value: loaded}}
	}
	r := &Report{Scenarios: []Scenario{{Name: "produce-latency", Rows: Aggregate([][]Metric{
		{{Key: "p99", Label: "produce p99", Unit: Seconds, Value: 0.002, Limits: lims(0.001, 0.004)}},
	})}}}
	got := map[string]TargetResult{}
	for _, tr := range Judge(r, Targets) {
		got[tr.Name] = tr
	}
	if tr := got["produce p99 at half peak <= 2x disk p99 fdatasync"]; tr.Status != Miss {
		t.Errorf("idle target: %s (%s), want a miss at 2x", tr.Status, tr.Measured)
	}
	var ctx TargetResult
	for name, tr := range got {
		if strings.HasPrefix(name, "context (not a brief target)") {
			ctx = tr
		}
	}
	if ctx.Status != Pass || !strings.Contains(ctx.Measured, "50.0%") {
		t.Errorf("loaded context row: %s (%s), want a pass at 50%%", ctx.Status, ctx.Measured)
	}
}

// Issue 10's targets: the sustainable rate, the steady run's p99 against
// the loaded fdatasync p99 and its max, and the long-lived broker's CPU per
// GB against a fresh one's (the worse of acks=all and acks=1 counts).
func TestJudgeLongLivedTargets(t *testing.T) {
	loaded := func(v float64) []Limit {
		return []Limit{{Key: Limit2xLoadedFsyncP99, Label: "2x p99 fdatasync under the same write rate", Value: v}}
	}
	judge := func(sustainable, p99, loadedLimit, max, ratioAll, ratio1 float64, steadyNotes ...string) map[string]TargetResult {
		r := &Report{Settings: []KV{{Key: "record size", Value: "1024 B"}}, Scenarios: []Scenario{
			{Name: "produce-sweep", Settings: []KV{{Key: "sustainable p99", Value: "<= 5.00 ms"}},
				Rows: Aggregate([][]Metric{{{Key: "sustainable", Unit: RecordsPerSec, Value: sustainable}}})},
			{Name: "produce-steady", Notes: steadyNotes, Rows: Aggregate([][]Metric{{
				{Key: "p99", Unit: Seconds, Value: p99, Limits: loaded(loadedLimit)},
				{Key: "max", Unit: Seconds, Value: max},
			}})},
			{Name: "produce-aged-cpu", Rows: Aggregate([][]Metric{{
				{Key: "cpu-ratio-all", Label: "ratio acks=all", Unit: Count, Value: ratioAll},
				{Key: "cpu-ratio-1", Label: "ratio acks=1", Unit: Count, Value: ratio1},
			}})},
		}}
		got := map[string]TargetResult{}
		for _, tr := range Judge(r, Targets) {
			switch tr.Name {
			case "sustainable rate (every step up to it keeps up with p99 <= 5 ms) >= 300k 1 KiB records/s":
				got["sustainable"] = tr
			case "produce p99 at half the sustainable rate <= 2x p99 fdatasync under the same write rate":
				got["p99"] = tr
			case "produce max at half the sustainable rate < 50 ms":
				got["max"] = tr
			case "long-lived broker's CPU-s/GB (acks=all and acks=1) within 10% of a fresh broker's":
				got["cpu"] = tr
			}
		}
		if len(got) != 4 {
			t.Fatalf("judged %v, want the four long-lived targets", got)
		}
		return got
	}
	got := judge(300e3, 0.003, 0.004, 0.049, 1.02, 1.10)
	for k, tr := range got {
		if tr.Status != Pass || tr.Note != "" {
			t.Errorf("%s: %s (%s; %s), want a clean pass", k, tr.Status, tr.Measured, tr.Note)
		}
	}
	got = judge(299e3, 0.005, 0.004, 0.051, 1.11, 1.02, "round 1: produce-steady at 70 k/s (-rate, "+SteadyNotHalf+": produce-sweep did not run this round)")
	for k, tr := range got {
		if tr.Status != Miss {
			t.Errorf("%s: %s (%s), want a miss", k, tr.Status, tr.Measured)
		}
	}
	if m := got["cpu"].Measured; !strings.Contains(m, "1.11") || !strings.Contains(m, "acks=all") {
		t.Errorf("cpu measured %q: want the worse ratio, acks=all's 1.11", m)
	}
	if n := got["p99"].Note; !strings.Contains(n, SteadyNotHalf) {
		t.Errorf("p99 note %q: want the caveat that the rate was not half a sustainable one", n)
	}
	if got := judge(0, 0.003, 0.004, 0.01, 1, 1)["sustainable"]; got.Status != Miss || got.Measured != "0 /s" {
		t.Errorf("no step held: %s %q, want a miss at 0", got.Status, got.Measured)
	}
}

// A steady run's per-second series go to the JSON with seconds without a
// figure as null.
func TestSeriesJSON(t *testing.T) {
	b, err := json.Marshal(Scenario{Name: "produce-steady", Series: []Series{
		{Key: "p99-per-second", Label: "p99", Unit: Seconds, Round: 2, Interval: time.Second, Values: []float64{0.002, math.NaN()}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `"Series":[{"key":"p99-per-second","label":"p99","unit":"s","round":2,"interval":"1s","values":[0.002,null]}]`; !bytes.Contains(b, []byte(want)) {
		t.Errorf("JSON %s, want %s", b, want)
	}
}
