package txn

import (
	"math"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka error codes the coordinator answers.
var (
	errConcurrent    = kerr.ConcurrentTransactions.Code
	errInvalidState  = kerr.InvalidTxnState.Code
	errFenced        = kerr.ProducerFenced.Code
	errBadMapping    = kerr.InvalidProducerIDMapping.Code
	errBadTimeout    = kerr.InvalidTransactionTimeout.Code
	errBadEpoch      = kerr.InvalidProducerEpoch.Code
	errNotCoord      = kerr.NotCoordinator.Code // a failed write: the client finds the coordinator again and retries
	errCoordNotAvail = kerr.CoordinatorNotAvailable.Code
	errPolicy        = kerr.PolicyViolation.Code // -transaction-max-ids, -transaction-max-groups
)

// InitProducerID answers InitProducerId for transactional id id (non-empty:
// the caller answers the idempotent case). expPid/expEpoch are the
// producer's current id and epoch (KIP-360; -1 when it has none). done gets
// the producer id and epoch, or an error code, once the new state is
// durable. It may wait for a new producer id (storage reserves them in
// blocks): call it off the event loop.
func (c *Coordinator) InitProducerID(id string, timeoutMs int32, expPid int64, expEpoch int16, done func(pid int64, epoch int16, code int16)) {
	fail := func(code int16) { done(-1, -1, code) }
	if len(id) > MaxIDBytes {
		fail(kerr.InvalidRequest.Code)
		return
	}
	if timeoutMs <= 0 || int64(timeoutMs) > c.cfg.MaxTimeout.Milliseconds() {
		fail(errBadTimeout)
		return
	}
	c.mu.RLock()
	t := c.byID[id]
	full := len(c.byID) >= c.cfg.MaxIDs
	c.mu.RUnlock()
	if t == nil && full {
		c.warn.Warn().Int("limit", c.cfg.MaxIDs).Msg("txn: a new transactional id refused: -transaction-max-ids reached")
		fail(errPolicy)
		return
	}
	if t == nil {
		// A new transactional id: its first producer id, epoch -1 (the
		// bump below makes it 0).
		pid, _, err := c.cfg.Log.InitProducerID()
		if err != nil {
			fail(kerr.UnknownServerError.Code)
			return
		}
		c.mu.Lock()
		if t = c.byID[id]; t == nil && !c.closed && len(c.byID) < c.cfg.MaxIDs {
			// updateMs now: an id created here is not idle, and must not
			// expire before this request makes it durable.
			t = &txn{id: id, rec: record{pid: pid, lastPid: noPID, epoch: noEpoch, lastEpoch: noEpoch, nextPid: noPID, startMs: -1, updateMs: c.now().UnixMilli(), state: Empty}}
			c.byID[id] = t
		}
		closed := c.closed
		c.mu.Unlock()
		if t == nil {
			if closed {
				fail(errCoordNotAvail)
			} else {
				fail(errPolicy) // filled up meanwhile
			}
			return
		}
	}
	// A rotation (exhausted epoch) needs a producer id; get it before
	// taking the lock.
	var fresh int64 = noPID
	c.mu.RLock()
	rotate := epochExhausted(t.rec.epoch) && (expEpoch == noEpoch || expEpoch == t.rec.epoch)
	c.mu.RUnlock()
	if rotate {
		pid, _, err := c.cfg.Log.InitProducerID()
		if err != nil {
			fail(kerr.UnknownServerError.Code)
			return
		}
		fresh = pid
	}

	nowMs := c.now().UnixMilli()
	c.mu.Lock()
	r := t.rec
	code := int16(0)
	var next record
	switch {
	case c.closed || r.state == Dead:
		code = errCoordNotAvail
	case t.pending:
		code = errConcurrent
	case expPid != noPID && !validPID(r, expPid, expEpoch):
		code = errFenced
	case r.state.preparing():
		code = errConcurrent
	case r.state == Ongoing:
		// Abort the open transaction first, fencing its epoch (that epoch
		// is never handed out); the client retries and gets the next.
		next = c.fenced(r, nowMs)
		t.pending = true
		c.mu.Unlock()
		c.persist(t, next, true, func(err error) {
			if err != nil {
				fail(errNotCoord)
				return
			}
			c.finish(t, next, nil)
			fail(errConcurrent)
		})
		return
	case epochExhausted(r.epoch) && fresh == noPID && (expEpoch == noEpoch || expEpoch == r.epoch):
		// The epoch ran out after the check above: a bump would overflow.
		code = errConcurrent
	default: // Empty, CompleteCommit, CompleteAbort
		next = r
		switch {
		case epochExhausted(r.epoch) && fresh != noPID && (expEpoch == noEpoch || expEpoch == r.epoch):
			next.lastPid, next.pid, next.epoch = r.pid, fresh, 0
			next.lastEpoch = noEpoch
			if expPid != noPID {
				next.lastEpoch = r.epoch
			}
		case expPid == noPID:
			next.epoch, next.lastEpoch = r.epoch+1, noEpoch
		case r.epoch == noEpoch || expEpoch == r.epoch:
			next.epoch, next.lastEpoch = r.epoch+1, r.epoch
		case expEpoch == r.lastEpoch:
			// A retry of a bump that succeeded: the current epoch again.
		default:
			code = errFenced
		}
		next.state, next.timeoutMs, next.updateMs, next.startMs = Empty, timeoutMs, nowMs, -1
		next.parts, next.groups, next.nextPid = nil, nil, noPID
	}
	if code != 0 {
		c.mu.Unlock()
		fail(code)
		return
	}
	t.pending = true
	c.mu.Unlock()
	c.persist(t, next, false, func(err error) {
		if err != nil {
			fail(errNotCoord)
			return
		}
		done(next.pid, next.epoch, 0)
	})
}

// validPID is Kafka's isValidProducerId: a producer recovering (KIP-360)
// with its id and epoch is fenced unless the id is current, the id is new
// (epoch -1), or it is the previous id with an exhausted epoch (a retry of
// a rotation it never heard about).
func validPID(r record, pid int64, epoch int16) bool {
	return r.epoch == noEpoch || pid == r.pid || (pid == r.lastPid && epochExhausted(epoch))
}

// check is the validation AddPartitionsToTxn, AddOffsetsToTxn and
// TxnOffsetCommit share; mu held.
func (c *Coordinator) check(t *txn, pid int64, epoch int16) int16 {
	switch {
	case t == nil || t.rec.pid != pid:
		return errBadMapping
	case t.rec.epoch != epoch:
		return errFenced
	case t.pending || t.rec.state.preparing():
		return errConcurrent
	}
	return 0
}

// AddPartitions adds tps (existing partitions: the caller checks) to id's
// transaction, making it Ongoing. done gets an error code for all of them,
// after the new state is durable.
func (c *Coordinator) AddPartitions(id string, pid int64, epoch int16, tps []TP, done func(code int16)) {
	c.add(id, pid, epoch, tps, "", done)
}

// AddOffsets adds group's offsets to id's transaction (AddOffsetsToTxn).
func (c *Coordinator) AddOffsets(id string, pid int64, epoch int16, group string, done func(code int16)) {
	if len(group) > MaxIDBytes {
		done(kerr.InvalidGroupID.Code)
		return
	}
	c.add(id, pid, epoch, nil, group, done)
}

func (c *Coordinator) add(id string, pid int64, epoch int16, tps []TP, group string, done func(code int16)) {
	nowMs := c.now().UnixMilli()
	c.mu.Lock()
	t := c.byID[id]
	if code := c.check(t, pid, epoch); code != 0 {
		c.mu.Unlock()
		done(code)
		return
	}
	next := t.rec
	if next.state != Ongoing {
		next.parts, next.groups = nil, nil
		next.startMs = nowMs
	}
	var added bool
	next.parts, added = next.withParts(tps)
	if group != "" {
		if i, ok := slices.BinarySearch(next.groups, group); !ok {
			if len(next.groups) >= c.cfg.MaxGroups {
				c.mu.Unlock()
				done(errPolicy)
				return
			}
			next.groups = slices.Insert(slices.Clone(next.groups), i, group)
			added = true
		}
	}
	wasOngoing := t.rec.state == Ongoing
	if !added && wasOngoing {
		c.mu.Unlock()
		done(0)
		return
	}
	// Only partitions join an open transaction: write them, not the whole
	// state again (which made a transaction grown one partition at a time
	// quadratic in bytes written).
	partsOnly := wasOngoing && group == ""
	var fresh []TP
	if partsOnly {
		for _, tp := range tps {
			if !t.rec.hasPart(tp) {
				fresh = append(fresh, tp)
			}
		}
	}
	next.state = Ongoing
	next.updateMs = nowMs
	t.pending = true
	c.mu.Unlock()
	answer := func(err error) {
		if err != nil {
			done(errNotCoord)
			return
		}
		done(0)
	}
	if partsOnly {
		c.persistParts(t, next, fresh, answer)
		return
	}
	c.persist(t, next, false, answer)
}

// VerifyPartitions answers AddPartitionsToTxn's verify-only mode (KIP-890):
// a code for the whole transaction, or per partition 0 when it is in id's
// ongoing transaction and INVALID_TXN_STATE when not.
func (c *Coordinator) VerifyPartitions(id string, pid int64, epoch int16, tps []TP) (code int16, parts []int16) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t := c.byID[id]
	switch {
	case t == nil || t.rec.pid != pid:
		return errBadMapping, nil
	case t.rec.epoch != epoch:
		return errFenced, nil
	case t.pending:
		return errConcurrent, nil
	}
	parts = make([]int16, len(tps))
	for i, tp := range tps {
		if t.rec.state != Ongoing || !t.rec.hasPart(tp) {
			parts[i] = errInvalidState
		}
	}
	return 0, parts
}

// VerifyTxnPartition implements kafka.TxnVerifier for the produce path: 0
// when transactional id id's producer is pid at epoch and has an ongoing
// transaction that includes topic/partition. The batch is checked against
// the id the request names, so a client cannot write into another id's
// transaction by copying its producer id and epoch. On 0, the batch is
// admitted: the end of the transaction waits until done is called (the
// append has its outcome) before writing its markers, so a produce
// overtaken by EndTxn cannot land after the marker and reopen the
// transaction on the partition (which would hold its last stable offset
// forever). Cheap: one read lock and a map lookup.
func (c *Coordinator) VerifyTxnPartition(id string, pid int64, epoch int16, topic string, partition int32) (code int16, done func()) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t := c.byID[id]
	switch {
	case t == nil || t.rec.pid != pid:
		return errBadMapping, nil
	case epoch < t.rec.epoch:
		return errBadEpoch, nil
	case epoch > t.rec.epoch, t.rec.state != Ongoing, !t.rec.hasPart(TP{topic, partition}):
		return errInvalidState, nil
	}
	// Under the lock that the move to Prepare* takes: an Add either
	// happens before finish's Wait or is refused above.
	t.inflight.Add(1)
	return 0, t.inflight.Done
}

// EndTxn ends id's transaction (EndTxn). bump is KIP-890's transaction
// version 2 (EndTxn v5+): every end bumps the epoch, and done gets the
// producer id and epoch to go on with. done runs once the markers are
// written and the transaction is recorded complete (or, if the coordinator
// closes first, once the prepared state is durable: the next start
// finishes it). It may wait for a producer id
// (an exhausted epoch): call it off the event loop.
func (c *Coordinator) EndTxn(id string, pid int64, epoch int16, commit, bump bool, done func(pid int64, epoch int16, code int16)) {
	want := PrepareAbort
	if commit {
		want = PrepareCommit
	}
	completed := CompleteAbort
	if commit {
		completed = CompleteCommit
	}
	c.mu.RLock()
	t := c.byID[id]
	needPid := t != nil && bump && epochExhausted(t.rec.epoch)
	c.mu.RUnlock()
	var fresh int64 = noPID
	if needPid {
		p, _, err := c.cfg.Log.InitProducerID()
		if err != nil {
			done(-1, -1, kerr.UnknownServerError.Code)
			return
		}
		fresh = p
	}
	nowMs := c.now().UnixMilli()
	c.mu.Lock()
	if t == nil || c.byID[id] != t {
		c.mu.Unlock()
		done(-1, -1, errBadMapping)
		return
	}
	r := t.rec
	answer := func(code int16) {
		c.mu.Unlock()
		if code != 0 {
			done(-1, -1, code)
			return
		}
		done(r.pid, r.epoch, 0)
	}
	// A retry of an end that bumped the epoch comes with the epoch before.
	retry := bump && r.pid == pid && epoch == r.lastEpoch && epoch+1 == r.epoch && (r.state == want || r.state == completed)
	if bump && r.pid != pid && r.lastPid == pid && r.lastEpoch == epoch && r.state == completed {
		retry = true // the bump also rotated the producer id
	}
	switch {
	case r.pid != pid && !retry:
		answer(errBadMapping)
		return
	case epoch != r.epoch && !retry:
		answer(errFenced)
		return
	case t.pending:
		answer(errConcurrent)
		return
	}
	switch r.state {
	case Ongoing:
	case CompleteCommit, CompleteAbort:
		switch {
		case retry || (!bump && r.state == completed):
			answer(0)
			return
		case bump && !commit:
			// TV2: an abort with nothing open still bumps the epoch.
		default:
			answer(errInvalidState)
			return
		}
	case PrepareCommit, PrepareAbort:
		if r.state == want {
			answer(errConcurrent)
		} else {
			answer(errInvalidState)
		}
		return
	case Empty:
		if !bump || commit {
			answer(errInvalidState)
			return
		}
	default:
		answer(errInvalidState)
		return
	}
	next := r
	next.state, next.updateMs = want, nowMs
	if r.state != Ongoing {
		next.parts, next.groups = nil, nil
	}
	if bump {
		// The markers carry the bumped epoch (up to 32767, as in Kafka's
		// prepareAbortOrCommit), fencing the epoch the producer had; an
		// exhausted one also rotates the producer id (nextPid).
		next.lastEpoch = r.epoch
		if fresh != noPID {
			next.nextPid = fresh
		}
		if r.epoch < math.MaxInt16 {
			next.epoch = r.epoch + 1
		}
	}
	t.pending = true
	c.mu.Unlock()
	c.persist(t, next, true, func(err error) {
		if err != nil {
			done(-1, -1, errNotCoord)
			return
		}
		// The answer waits for the markers (local fsyncs, a few ms): a
		// client that starts its next transaction at once then finds this
		// one complete, instead of CONCURRENT_TRANSACTIONS and a retry
		// backoff. If the coordinator closes first, the durable Prepare is
		// finished on the next start: the end stands either way.
		c.finish(t, next, func() {
			if next.nextPid != noPID {
				done(next.nextPid, 0, 0)
				return
			}
			done(next.pid, next.epoch, 0)
		})
	})
}

// TxnOffsetCommit checks that the producer's ongoing transaction includes
// the group (AddOffsetsToTxn came first), then hands the commit to the
// store, which checks the member (KIP-447) and keeps the offsets pending
// until the transaction ends.
func (c *Coordinator) TxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest, done func(*kmsg.TxnOffsetCommitResponse)) {
	c.mu.Lock()
	t := c.byID[req.TransactionalID]
	code := int16(0)
	switch {
	case t == nil || t.rec.pid != req.ProducerID:
		code = errBadMapping
	case req.ProducerEpoch < t.rec.epoch:
		code = errFenced
	case req.ProducerEpoch > t.rec.epoch:
		code = errBadEpoch
	case t.rec.state != Ongoing || !t.rec.hasGroup(req.Group):
		// Not added, or the transaction is ending: a late commit must not
		// join the next one (KIP-890).
		code = errInvalidState
	case t.pending:
		code = errConcurrent
	}
	if code != 0 {
		c.mu.Unlock()
		done(TxnOffsetCommitError(req, code))
		return
	}
	t.inflight.Add(1)
	c.mu.Unlock()
	c.cfg.Store.TxnOffsetCommit(req, func(resp *kmsg.TxnOffsetCommitResponse) {
		t.inflight.Done()
		done(resp)
	})
}

// TxnOffsetCommitError is the response to req with code for every partition.
func TxnOffsetCommitError(req *kmsg.TxnOffsetCommitRequest, code int16) *kmsg.TxnOffsetCommitResponse {
	resp := kmsg.NewPtrTxnOffsetCommitResponse()
	resp.Version = req.Version
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// Description is a transaction as DescribeTransactions and
// ListTransactions show it.
type Description struct {
	ID        string
	State     State
	PID       int64
	Epoch     int16
	TimeoutMs int32
	StartMs   int64 // -1 when no transaction is open
	Parts     []TP  // sorted
}

func describe(t *txn) Description {
	r := t.rec
	return Description{ID: t.id, State: r.state, PID: r.pid, Epoch: r.epoch, TimeoutMs: r.timeoutMs, StartMs: r.startMs, Parts: r.parts}
}

// Describe returns transactional id id's current state.
func (c *Coordinator) Describe(id string) (Description, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t := c.byID[id]
	if t == nil || t.rec.epoch == noEpoch { // not durable yet
		return Description{}, false
	}
	return describe(t), true
}

// List returns every transactional id's state.
func (c *Coordinator) List() []Description {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Description, 0, len(c.byID))
	for _, t := range c.byID {
		out = append(out, describe(t))
	}
	return out
}
