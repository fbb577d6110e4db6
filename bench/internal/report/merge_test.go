package report

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestMerge: a partial run's scenarios replace their sections (with a line
// naming the run) or are added in registry order, its measured targets
// replace their rows, and everything else of the old file stays, hand-added
// appendices included.
func TestMerge(t *testing.T) {
	full := fixture()
	full.Targets = Judge(full, Targets)
	var old bytes.Buffer
	if err := WriteMarkdown(&old, full); err != nil {
		t.Fatal(err)
	}
	old.WriteString("## Appendix: by hand\n\nKept.\n")

	part := fixture()
	part.Command, part.Commit, part.Date = "go run ./bench -scenario x", "def5678", time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	part.Scenarios = []Scenario{
		{Name: "produce-latency", Description: "New latency.", Rows: Aggregate([][]Metric{{{Key: "p99", Label: "latency p99", Unit: Seconds, Value: 0.001,
			Limits: []Limit{{Key: Limit2xFsyncP99, Label: "2x disk p99 fdatasync", Value: 0.008}}}}})},
		{Name: "brand-new", Description: "Added.", Rows: Aggregate([][]Metric{{{Key: "x", Label: "x", Unit: Count, Value: 7}}})},
	}
	part.Targets = Judge(part, Targets)
	names := []string{"produce-acks-all", "brand-new", "produce-latency"}
	out, err := Merge(old.Bytes(), part, names)
	if err != nil {
		t.Fatal(err)
	}
	md := string(out)
	checkTables(t, md)
	var heads []string
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "#") {
			heads = append(heads, l)
		}
	}
	oldHeads := 0
	for _, l := range strings.Split(old.String(), "\n") {
		if strings.HasPrefix(l, "### ") {
			oldHeads++
		}
	}
	got := strings.Join(heads, "\n")
	for _, want := range []string{
		"### produce-acks-all\n### brand-new\n### produce-latency\n",
		"## Appendix: by hand",
		"## Run\n## Machine\n## Targets",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("headings %q lack %q", got, want)
		}
	}
	if strings.Count(got, "### ") != oldHeads+1 {
		t.Errorf("%d scenario sections, want %d", strings.Count(got, "### "), oldHeads+1)
	}
	for _, want := range []string{"New latency.", "Added.", "Kept.", "Peak produce.", "| commit | abc1234-dirty |",
		"Measured in a separate run, merged into this file (-merge): `go run ./bench -scenario x`, commit def5678"} {
		if !strings.Contains(md, want) {
			t.Errorf("merged file lacks %q", want)
		}
	}
	// The latency target row is the partial run's (1 ms is 12.5% of 8 ms),
	// the throughput one the old file's.
	for _, l := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(l, "| produce p99 at half peak"):
			if !strings.Contains(l, "| pass |") {
				t.Errorf("latency target row not replaced: %s", l)
			}
		case strings.HasPrefix(l, "| produce acks=all throughput"):
			if !strings.Contains(l, "| MISS |") {
				t.Errorf("throughput target row changed: %s", l)
			}
		}
	}
	if strings.Contains(md, "New latency.") && strings.Count(md, "### produce-latency") != 1 {
		t.Error("produce-latency appears twice")
	}
	// Merging the same partial run again changes nothing.
	again, err := Merge(out, part, names)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != md {
		t.Error("a second merge of the same run changed the file")
	}
	if _, err := Merge([]byte("# not a report\n"), part, names); err == nil {
		t.Error("merge into a file without the report's sections: want an error")
	}
}
