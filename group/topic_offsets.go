package group

import "sync"

// Offsets of deleted topics. Kafka's coordinator removes every group's
// committed offsets of a topic's partitions when the topic is deleted
// (GroupCoordinator.onPartitionsDeleted), so a topic created again under the
// same name starts without them, and a group left Empty with no offsets
// goes away. DeleteTopicOffsets does that durably, and Open sweeps the
// offsets of topics that no longer exist (a crash between a topic's
// deletion and the removal of its offsets).

// DeleteTopicOffsets removes every group's committed offsets of topic and
// calls done (from any goroutine) once the removal is fdatasynced, with
// the write's error. Empty groups left without offsets are removed too.
// Call it after the topic is deleted.
func (c *Coordinator) DeleteTopicOffsets(topic string, done func(error)) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed { // submit would drop it, and done never run
		done(ErrClosed)
		return
	}
	c.submit(func() {
		c.deleteOffsetsWhere(func(tp TP) bool { return tp.Topic == topic }, done)
	})
}

// sweepDeletedTopics removes the offsets of topics Config.Topics does not
// know, at Open (on the loop).
func (c *Coordinator) sweepDeletedTopics() {
	known := map[string]bool{}
	c.deleteOffsetsWhere(func(tp TP) bool {
		ok, seen := known[tp.Topic]
		if !seen {
			_, ok = c.cfg.Topics(tp.Topic)
			known[tp.Topic] = ok
		}
		return !ok
	}, func(err error) {
		if err != nil {
			c.log.Warn().Err(err).Msg("offsets of deleted topics not removed; retried at the next start")
		}
	})
}

// deleteOffsetsWhere removes, for every stored group, the offsets gone
// reports, then calls done with the first write error (nil when there was
// nothing to remove). On the loop.
func (c *Coordinator) deleteOffsetsWhere(gone func(TP) bool, done func(error)) {
	type del struct {
		group string
		tps   []TP
		all   bool
	}
	var dels []del
	for name := range c.offs.groups() {
		offs := c.offs.offsets(name)
		var tps []TP
		for tp := range offs {
			if gone(tp) {
				tps = append(tps, tp)
			}
		}
		if len(tps) > 0 {
			dels = append(dels, del{name, tps, len(tps) == len(offs)})
		}
	}
	if len(dels) == 0 {
		done(nil)
		return
	}
	var mu sync.Mutex // done runs on the log's goroutine, or here when it is closed
	pending := len(dels)
	var first error
	finish := func(err error) {
		mu.Lock()
		if err != nil && first == nil {
			first = err
		}
		pending--
		last := pending == 0
		mu.Unlock()
		if last {
			done(first)
		}
	}
	for _, d := range dels {
		c.offs.submit(&logOp{rec: deleteOffsetsRecord(d.group, d.tps), apply: applyDeleteOffsets(d.group, d.tps), done: finish})
		if g := c.groups[d.group]; d.all && g != nil && g.state == stateEmpty && (g.cg == nil || len(g.cg.ghosts) == 0) {
			c.dropGroup(g)
		}
	}
}
