package group

import (
	"context"
	"maps"
	"slices"
)

// GroupMetrics is one group as the metrics endpoint shows it.
type GroupMetrics struct {
	Name    string
	State   string // Kafka's state name (classic or consumer protocol)
	Members int
}

// Metrics returns every live group's state and member count, taken on the
// coordinator's goroutine; nil when ctx ends first or the coordinator is
// closed.
func (c *Coordinator) Metrics(ctx context.Context) []GroupMetrics {
	ch := make(chan []GroupMetrics, 1)
	c.submit(func() {
		out := make([]GroupMetrics, 0, len(c.groups))
		for _, name := range slices.Sorted(maps.Keys(c.groups)) {
			g := c.groups[name]
			if g.state == stateDead {
				continue
			}
			m := GroupMetrics{Name: name, State: g.state.String(), Members: len(g.members)}
			if g.cg != nil {
				m.State, m.Members = g.cg.stateName(), len(g.cg.members)
			}
			out = append(out, m)
		}
		ch <- out
	})
	select {
	case out := <-ch:
		return out
	case <-ctx.Done():
		return nil
	}
}

// EachCommitted calls fn for every committed offset of every group, as
// durably logged, groups with no members included. It holds the offsets
// log's read lock while it runs: fn must be quick and must not call the
// coordinator.
func (c *Coordinator) EachCommitted(fn func(group, topic string, partition int32, offset int64)) {
	l := c.offs
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	for name, g := range l.state.groups {
		for tp, o := range g.offsets {
			fn(name, tp.Topic, tp.Partition, o.Offset)
		}
	}
}
