package txn

import (
	"errors"
	"sync"
	"time"

	"github.com/klite/klite/storage"
)

// finish completes prepared state p of t (PrepareCommit or PrepareAbort,
// already durable) on its own goroutine: a marker to every partition, the
// group offsets resolved, then CompleteCommit/CompleteAbort recorded. t is
// pending until then. A step that fails for a reason that may pass is
// retried; if the coordinator closes first, the next Open resumes from p.
// after, if set, runs once finish is done either way.
func (c *Coordinator) finish(t *txn, p record, after func()) {
	if after == nil {
		after = func() {}
	}
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.wg.Add(1) // under mu: Close waits only after it set closed
	}
	c.mu.Unlock()
	if closed {
		after() // the next Open resumes from p
		return
	}
	go func() {
		defer c.wg.Done()
		defer after()
		commit := p.state == PrepareCommit
		t.inflight.Wait() // produces and offset commits admitted before the end land first
		if !c.writeMarkers(t.id, p, commit) || !c.endOffsets(t.id, p, commit) {
			return // closing
		}
		next := p
		next.state = CompleteAbort
		if commit {
			next.state = CompleteCommit
		}
		next.parts, next.groups = nil, nil
		next.startMs = -1
		next.updateMs = c.now().UnixMilli()
		if p.nextPid >= 0 {
			// The epoch bump of EndTxn exhausted the epoch (KIP-890): the
			// producer goes on with the producer id it was given.
			// lastEpoch: the epoch the producer ended with, which a
			// retry of this EndTxn carries.
			next.lastPid, next.lastEpoch = p.pid, p.lastEpoch
			next.pid, next.epoch, next.nextPid = p.nextPid, 0, -1
		}
		for {
			done := make(chan error, 1)
			c.persist(t, next, false, func(err error) { done <- err })
			err := <-done
			if err == nil {
				return
			}
			c.log.Warn().Err(err).Str("transactional_id", t.id).Msg("txn: cannot record a completed transaction; retrying")
			c.mu.Lock()
			t.pending = true
			c.mu.Unlock()
			if !c.sleep(retryBackoff) {
				return
			}
		}
	}()
}

// writeMarkers writes p's marker to each of its partitions, in parallel,
// retrying those that fail for a reason that may pass. It returns false if
// the coordinator closed first.
func (c *Coordinator) writeMarkers(id string, p record, commit bool) bool {
	todo := p.parts
	for len(todo) > 0 {
		var mu sync.Mutex
		var again []TP
		var wg sync.WaitGroup
		wg.Add(len(todo))
		for _, tp := range todo {
			c.cfg.Log.WriteTxnMarker(tp.Topic, tp.Partition, p.pid, p.epoch, commit, 0, func(res storage.AppendResult) {
				defer wg.Done()
				switch {
				case res.Err == nil:
				case errors.Is(res.Err, storage.ErrUnknownTopic):
					// Deleted since it was added: nothing there to end.
				case errors.Is(res.Err, storage.ErrInvalidProducerEpoch):
					// A newer epoch of the producer wrote there: its
					// transaction is already ended on that partition.
					c.warn.Warn().Err(res.Err).Str("transactional_id", id).Str("topic", tp.Topic).Int32("partition", tp.Partition).Msg("txn: marker refused")
				default:
					c.warn.Warn().Err(res.Err).Str("transactional_id", id).Str("topic", tp.Topic).Int32("partition", tp.Partition).Msg("txn: marker write failed; retrying")
					mu.Lock()
					again = append(again, tp)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if todo = again; len(todo) > 0 && !c.sleep(retryBackoff) {
			return false
		}
	}
	return true
}

// endOffsets resolves p's pending offsets in each of its groups.
func (c *Coordinator) endOffsets(id string, p record, commit bool) bool {
	for _, g := range p.groups {
		for {
			done := make(chan error, 1)
			c.cfg.Store.EndTxnOffsets(g, p.pid, commit, func(err error) { done <- err })
			err := <-done
			if err == nil {
				break
			}
			c.warn.Warn().Err(err).Str("transactional_id", id).Str("group", g).Msg("txn: cannot resolve the transaction's offsets; retrying")
			if !c.sleep(retryBackoff) {
				return false
			}
		}
	}
	return true
}

// sleep waits d; false if the coordinator closes first.
func (c *Coordinator) sleep(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-c.stop:
		return false
	}
}
