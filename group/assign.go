package group

// Server-side assignors of the consumer group protocol (KIP-848): "uniform"
// (the default, sticky and balanced) and "range" (per topic, contiguous
// ranges). Both are pure functions of their input and deterministic: the
// same members, subscriptions and previous target give the same result.

import (
	"maps"
	"slices"
	"sort"
)

const (
	assignorUniform = "uniform"
	assignorRange   = "range"
)

// assignors lists the supported assignors in preference order; the first is
// the default (group.consumer.assignors).
var assignors = []string{assignorUniform, assignorRange}

// assignment maps topic names to sorted partition numbers.
type assignment map[string][]int32

func (a assignment) has(topic string, p int32) bool {
	_, ok := slices.BinarySearch(a[topic], p)
	return ok
}

func (a assignment) count() int {
	n := 0
	for _, ps := range a {
		n += len(ps)
	}
	return n
}

func (a assignment) clone() assignment {
	out := make(assignment, len(a))
	for t, ps := range a {
		out[t] = slices.Clone(ps)
	}
	return out
}

func (a assignment) equal(b assignment) bool {
	if a.count() != b.count() {
		return false
	}
	for t, ps := range a {
		if len(ps) > 0 && !slices.Equal(ps, b[t]) {
			return false
		}
	}
	return true
}

func (a assignment) add(topic string, p int32) {
	ps := a[topic]
	i, ok := slices.BinarySearch(ps, p)
	if !ok {
		a[topic] = slices.Insert(ps, i, p)
	}
}

// assignSpec is an assignor's input: each member's subscribed topics
// (resolved: existing topics only), the partition counts, and the previous
// target assignment (for stickiness).
type assignSpec struct {
	members    map[string][]string // member id -> sorted subscribed topics
	partitions map[string]int32    // topic -> partition count
	previous   map[string]assignment
}

func runAssignor(name string, s assignSpec) map[string]assignment {
	if name == assignorRange {
		return assignRange(s)
	}
	return assignUniform(s)
}

// assignRange is the range assignor per topic: the members subscribed to a
// topic, sorted by member id, get contiguous ranges of its partitions; the
// first partitions%members members get one extra.
func assignRange(s assignSpec) map[string]assignment {
	out := make(map[string]assignment, len(s.members))
	bytopic := make(map[string][]string)
	for id, topics := range s.members {
		out[id] = assignment{}
		for _, t := range topics {
			if _, ok := s.partitions[t]; ok {
				bytopic[t] = append(bytopic[t], id)
			}
		}
	}
	for t, ids := range bytopic {
		sort.Strings(ids)
		n := s.partitions[t]
		per, extra := n/int32(len(ids)), n%int32(len(ids))
		p := int32(0)
		for i, id := range ids {
			k := per
			if int32(i) < extra {
				k++
			}
			for j := int32(0); j < k; j++ {
				out[id][t] = append(out[id][t], p)
				p++
			}
		}
	}
	return out
}

// assignUniform spreads every subscribed partition so that no member has
// more than one partition over another member subscribed to the same
// topics, keeping partitions where the previous target had them when that
// does not unbalance. With identical subscriptions the counts differ by at
// most one.
func assignUniform(s assignSpec) map[string]assignment {
	ids := make([]string, 0, len(s.members))
	subs := make(map[string]map[string]bool, len(s.members))
	for id, topics := range s.members {
		ids = append(ids, id)
		set := make(map[string]bool, len(topics))
		for _, t := range topics {
			set[t] = true
		}
		subs[id] = set
	}
	sort.Strings(ids)
	topics := slices.Sorted(maps.Keys(s.partitions))

	owner := make(map[TP]string)
	count := make(map[string]int, len(ids))
	var all []TP
	for _, t := range topics {
		for p := int32(0); p < s.partitions[t]; p++ {
			all = append(all, TP{t, p})
		}
	}
	// Sticky pass: keep previous owners, each up to the even share.
	quota := 0
	if len(ids) > 0 {
		quota = (len(all) + len(ids) - 1) / len(ids)
	}
	for _, id := range ids {
		prev := s.previous[id]
		for _, tp := range all {
			if subs[id][tp.Topic] && prev.has(tp.Topic, tp.Partition) && owner[tp] == "" && count[id] < quota {
				owner[tp] = id
				count[id]++
			}
		}
	}
	// Unowned partitions go to the least loaded subscribed member.
	least := func(topic string) string {
		best := ""
		for _, id := range ids {
			if subs[id][topic] && (best == "" || count[id] < count[best]) {
				best = id
			}
		}
		return best
	}
	for _, tp := range all {
		if owner[tp] != "" {
			continue
		}
		if id := least(tp.Topic); id != "" {
			owner[tp] = id
			count[id]++
		}
	}
	// Balance: move a partition to a subscribed member with at least two
	// fewer. Each move lowers the sum of squared counts, so this ends.
	for moved := true; moved; {
		moved = false
		for _, tp := range all {
			from := owner[tp]
			if from == "" {
				continue
			}
			if to := least(tp.Topic); to != "" && count[to] < count[from]-1 {
				owner[tp] = to
				count[from]--
				count[to]++
				moved = true
			}
		}
	}
	out := make(map[string]assignment, len(ids))
	for _, id := range ids {
		out[id] = assignment{}
	}
	for _, tp := range all {
		if id := owner[tp]; id != "" {
			out[id][tp.Topic] = append(out[id][tp.Topic], tp.Partition)
		}
	}
	return out
}
