package report

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// Merge splices a partial run (rep, e.g. -scenario security) into an
// existing BENCHMARKS.md (old) and returns the new file. The scenarios of
// rep replace the sections of the same name or are added, in the order of
// names (the registry's); the targets rep measured replace their rows (or
// are added); everything else of old stays as it was: its run, machine,
// limits and settings tables, the other scenarios, the charts and any
// sections after the scenarios (hand-added appendices). Each spliced
// section opens with a line naming the run that measured it and that run's
// limits, since the tables at the top describe the other run.
func Merge(old []byte, rep *Report, names []string) ([]byte, error) {
	var fresh bytes.Buffer
	if err := WriteMarkdown(&fresh, rep); err != nil {
		return nil, err
	}
	o, err := splitMarkdown(string(old))
	if err != nil {
		return nil, fmt.Errorf("report: existing file: %w", err)
	}
	n, err := splitMarkdown(fresh.String())
	if err != nil {
		return nil, err
	}
	provenance := mergeNote(rep)
	for name, sec := range n.scenarios {
		lines := strings.SplitN(sec, "\n", 3) // "### name", "", rest
		if len(lines) == 3 {
			sec = lines[0] + "\n\n" + provenance + "\n\n" + lines[2]
		}
		o.scenarios[name] = sec
		if !contains(o.order, name) {
			o.order = append(o.order, name)
		}
	}
	// Scenarios in registry order; any the registry no longer has keep
	// their place at the end.
	var order []string
	for _, name := range names {
		if _, ok := o.scenarios[name]; ok {
			order = append(order, name)
		}
	}
	for _, name := range o.order {
		if !contains(order, name) {
			order = append(order, name)
		}
	}
	// Target rows: a measured one from rep replaces the old row of the same
	// target; unmeasured ones leave the old row alone.
	rows := o.targetRows
	for _, t := range rep.Targets {
		if t.Status == NotMeasure {
			continue
		}
		row := targetRow(n.targetRows, t.Name)
		if row == "" {
			continue
		}
		if i := targetIndex(rows, t.Name); i >= 0 {
			rows[i] = row
		} else {
			rows = append(rows, row)
		}
	}

	var b strings.Builder
	b.WriteString(o.head)
	b.WriteString(o.targetsHead)
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	b.WriteString(o.middle)
	for _, name := range order {
		b.WriteString(o.scenarios[name])
	}
	b.WriteString(o.tail)
	return []byte(b.String()), nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// mergeNote says which run measured a spliced section.
func mergeNote(rep *Report) string {
	var lims []string
	for _, key := range []string{"fsync-p99", "seq-write", "loopback"} {
		for _, row := range rep.Limits {
			if row.Key == key {
				lims = append(lims, row.Label+" "+Format(row.Unit, row.Summary().Median))
			}
		}
	}
	s := fmt.Sprintf("Measured in a separate run, merged into this file (-merge): `%s`, commit %s, %s, %d run(s)",
		rep.Command, rep.Commit, rep.Date.UTC().Format(time.RFC3339), rep.Runs)
	if len(lims) > 0 {
		s += "; that run's limits (medians): " + strings.Join(lims, ", ")
	}
	return s + "."
}

// mdParts is a report cut where Merge splices.
type mdParts struct {
	head        string            // up to and including the "## Targets" line and the blank after it
	targetsHead string            // the targets table's header and separator lines
	targetRows  []string          // its rows, without newlines
	middle      string            // from after the table to "## Scenarios" and the blank after it
	scenarios   map[string]string // "### name" to the next section, by name
	order       []string          // scenario names as they appear
	tail        string            // from the first "## " heading after the scenarios to the end
}

func splitMarkdown(md string) (*mdParts, error) {
	lines := strings.SplitAfter(md, "\n")
	find := func(from int, pred func(string) bool) int {
		for i := from; i < len(lines); i++ {
			if pred(lines[i]) {
				return i
			}
		}
		return -1
	}
	is := func(h string) func(string) bool {
		return func(l string) bool { return strings.TrimRight(l, "\n") == h }
	}
	t := find(0, is("## Targets"))
	if t < 0 {
		return nil, fmt.Errorf("no \"## Targets\" section")
	}
	tbl := find(t+1, func(l string) bool { return strings.HasPrefix(l, "|") })
	if tbl < 0 || tbl+1 >= len(lines) {
		return nil, fmt.Errorf("no targets table")
	}
	p := &mdParts{scenarios: map[string]string{}}
	p.head = strings.Join(lines[:tbl], "")
	p.targetsHead = lines[tbl] + lines[tbl+1]
	i := tbl + 2
	for ; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
		p.targetRows = append(p.targetRows, strings.TrimRight(lines[i], "\n"))
	}
	s := find(i, is("## Scenarios"))
	if s < 0 {
		return nil, fmt.Errorf("no \"## Scenarios\" section")
	}
	body := find(s+1, func(l string) bool { return strings.HasPrefix(l, "#") })
	if body < 0 {
		body = len(lines)
	}
	p.middle = strings.Join(lines[i:body], "")
	for j := body; j < len(lines); {
		if !strings.HasPrefix(lines[j], "### ") {
			p.tail = strings.Join(lines[j:], "")
			break
		}
		name := strings.TrimSpace(strings.TrimPrefix(lines[j], "### "))
		end := find(j+1, func(l string) bool { return strings.HasPrefix(l, "## ") || strings.HasPrefix(l, "### ") })
		if end < 0 {
			end = len(lines)
		}
		p.scenarios[name] = strings.Join(lines[j:end], "")
		p.order = append(p.order, name)
		j = end
	}
	return p, nil
}

// targetRow is the row of the target named name, or "".
func targetRow(rows []string, name string) string {
	if i := targetIndex(rows, name); i >= 0 {
		return rows[i]
	}
	return ""
}

func targetIndex(rows []string, name string) int {
	cell := "| " + strings.ReplaceAll(oneLine(name), "|", `\|`) + " |"
	for i, r := range rows {
		if strings.HasPrefix(r, cell) {
			return i
		}
	}
	return -1
}
