package group

// Transactions in the offsets log: the transaction coordinator's state (kept
// here by transactional id, encoded by package txn: this package only stores
// it) and transactional offset commits (TxnOffsetCommit, KIP-98/KIP-447),
// which stay pending under their producer id until the transaction ends.
//
// The coordinator keeps its state in this log, beside the pending offsets,
// so that one log orders both: an offset commit of a transaction is durable
// before the transaction can be prepared, and the pending offsets are
// resolved (records 11) before the transaction is recorded complete. After a
// crash, a transaction found in PrepareCommit/PrepareAbort resolves its
// pending offsets again; resolving twice changes nothing.

import (
	"errors"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/internal/bin"
)

// On-disk record types (see doc.go).
const (
	recTxnState   = 8  // transactional id, state (u32 length; empty: the id is removed)
	recTxnPending = 9  // group, producer id i64, count u32, count x commit entry
	recTxnEnd     = 10 // group, producer id i64, commit u8
	recTxnAppend  = 11 // transactional id, bytes (u32 length) appended to its state
)

// logState is what the offsets log holds: the groups, and the transaction
// coordinator's states by transactional id.
type logState struct {
	groups map[string]*storedGroup
	txns   map[string][]byte
}

func newLogState() *logState {
	return &logState{groups: make(map[string]*storedGroup), txns: make(map[string][]byte)}
}

// PutTxn durably records the state of transactional id (bytes of package
// txn's encoding; nil removes the id). done runs after the fdatasync, from
// the log's writer goroutine: it must not block.
func (c *Coordinator) PutTxn(id string, state []byte, done func(error)) {
	c.offs.submit(&logOp{
		rec: txnIDRecord(recTxnState, id, state),
		apply: func(st *logState) {
			if len(state) == 0 {
				delete(st.txns, id)
			} else {
				st.txns[id] = state
			}
		},
		done: done,
	})
}

// AppendTxn durably appends delta to the state of transactional id (package
// txn's encoding allows it: partitions added to an ongoing transaction), so
// that growing a transaction one partition at a time writes each partition
// once, not the whole state again. An id without a state ignores it. done
// runs as PutTxn's, or at once with ErrRecordTooLarge when the state would
// grow past MaxRecordBytes.
func (c *Coordinator) AppendTxn(id string, delta []byte, done func(error)) {
	// A snapshot writes the state whole, in one record: refuse an append
	// that would make that record one the next start cannot read. The
	// caller has one write per id in flight (package txn's pending), so
	// the state read here is the one the append extends.
	c.offs.stateMu.RLock()
	cur := len(c.offs.state.txns[id])
	c.offs.stateMu.RUnlock()
	if 1+2+len(id)+4+cur+len(delta) > MaxRecordBytes { // txnIDRecord's body
		done(ErrRecordTooLarge)
		return
	}
	c.offs.submit(&logOp{
		rec:   txnIDRecord(recTxnAppend, id, delta),
		apply: applyTxnAppend(id, delta),
		done:  done,
	})
}

func applyTxnAppend(id string, delta []byte) func(*logState) {
	return func(st *logState) {
		if cur, ok := st.txns[id]; ok {
			// append may extend cur in place: only bytes past the length
			// anyone holds are written.
			st.txns[id] = append(cur, delta...)
		}
	}
}

// Txns returns every transaction state in the log (for the transaction
// coordinator's start).
func (c *Coordinator) Txns() map[string][]byte {
	l := c.offs
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	return maps.Clone(l.state.txns)
}

// EndTxnOffsets resolves producer pid's pending offsets in group: on commit
// they become the group's committed offsets, on abort they are dropped.
// Durable before done; a group without pending offsets of pid is a no-op
// (still logged, so that done means "resolved", also after a restart).
func (c *Coordinator) EndTxnOffsets(group string, pid int64, commit bool, done func(error)) {
	c.offs.submit(&logOp{
		rec:   txnEndRecord(group, pid, commit),
		apply: applyTxnEnd(group, pid, commit),
		done:  done,
	})
}

// TxnOffsetCommit stores a TxnOffsetCommit's offsets pending under its
// producer id, after the member and generation checks of KIP-447. The
// caller (the transaction coordinator) has checked the producer id, its
// epoch and that the group is part of the ongoing transaction. done runs
// after the offsets are durable (or have failed).
func (c *Coordinator) TxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest, done func(*kmsg.TxnOffsetCommitResponse)) {
	resp := kmsg.NewPtrTxnOffsetCommitResponse()
	resp.Version = req.Version
	resp.Topics = make([]kmsg.TxnOffsetCommitResponseTopic, len(req.Topics))
	for i, t := range req.Topics {
		rt := &resp.Topics[i]
		rt.Default()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.TxnOffsetCommitResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rt.Partitions[j].Default()
			rt.Partitions[j].Partition = p.Partition
		}
	}
	c.submit(func() { c.txnCommit(req, resp, done) })
}

func (c *Coordinator) txnCommit(req *kmsg.TxnOffsetCommitRequest, resp *kmsg.TxnOffsetCommitResponse, done func(*kmsg.TxnOffsetCommitResponse)) {
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	g := c.groups[req.Group]
	code := int16(0)
	created := false
	switch {
	case len(req.Group) > maxGroupIDBytes:
		code = kerr.InvalidGroupID.Code
	case g == nil && req.Generation < 0 && req.MemberID == "" && instance == "" && c.groupsFull():
		code = kerr.PolicyViolation.Code
	case g == nil && req.Generation < 0 && req.MemberID == "" && instance == "":
		g = newGroup(req.Group, time.Now()) // a group that only stores offsets
		created = true
	case g == nil:
		code = kerr.IllegalGeneration.Code
	case g.cg != nil:
		code = validateConsumerTxnCommit(g.cg, req.MemberID, req.Generation)
	default:
		code = c.validateTxnCommit(g, req.Generation, req.MemberID, instance)
	}
	now := nowMs()
	var entries []commitEntry
	var slots []*int16
	for i := range req.Topics {
		t := &req.Topics[i]
		parts, known := c.cfg.Topics(t.Topic)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			slot := &resp.Topics[i].Partitions[j].ErrorCode
			switch {
			case !known || p.Partition < 0 || p.Partition >= parts:
				*slot = kerr.UnknownTopicOrPartition.Code
			case code != 0:
				*slot = code
			case p.Metadata != nil && len(*p.Metadata) > c.cfg.MaxMetadataBytes:
				*slot = kerr.OffsetMetadataTooLarge.Code
			default:
				o := Offset{Offset: p.Offset, LeaderEpoch: -1, CommitMs: now}
				if req.Version >= 2 {
					o.LeaderEpoch = p.LeaderEpoch
				}
				if p.Metadata != nil {
					o.Metadata = *p.Metadata
				}
				entries = append(entries, commitEntry{TP{t.Topic, p.Partition}, o})
				slots = append(slots, slot)
			}
		}
	}
	if len(entries) == 0 {
		done(resp)
		return
	}
	if created {
		c.groups[req.Group] = g
	}
	c.offs.submit(&logOp{
		rec:   txnPendingRecords(req.Group, req.ProducerID, entries),
		apply: applyTxnPending(req.Group, req.ProducerID, entries),
		done: func(err error) {
			failCommit(slots, err)
			done(resp)
		},
	})
}

// validateTxnCommit is Kafka's classic-group validateOffsetCommit with
// isTransactional set: a member's generation must match, but a commit
// without member is allowed whatever the state, and so is one while the
// group completes a rebalance.
func (c *Coordinator) validateTxnCommit(g *group, gen int32, id, instance string) int16 {
	if g.state == stateDead {
		return kerr.CoordinatorNotAvailable.Code
	}
	if gen >= 0 || id != "" || instance != "" {
		if code := g.validateMember(id, instance); code != 0 {
			return code
		}
		if gen != g.generation {
			return kerr.IllegalGeneration.Code
		}
	}
	return 0
}

// validateConsumerTxnCommit is Kafka's consumer-group (KIP-848)
// validateOffsetCommit with isTransactional set: a member's epoch that is
// not its current one is ILLEGAL_GENERATION (not STALE_MEMBER_EPOCH).
func validateConsumerTxnCommit(cg *consumerGroup, id string, gen int32) int16 {
	if gen < 0 && id == "" {
		return 0
	}
	m := cg.members[id]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case gen != m.epoch:
		return kerr.IllegalGeneration.Code
	}
	return 0
}

// pendingTxn reports whether group has a transactional offset pending for
// tp (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT).
func (l *offsetsLog) pendingTxn(group string, tp TP) bool {
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	g := l.state.groups[group]
	if g == nil {
		return false
	}
	for _, offs := range g.pending {
		if _, ok := offs[tp]; ok {
			return true
		}
	}
	return false
}

// hasPendingTxn reports whether any transaction has offsets pending in group.
func (l *offsetsLog) hasPendingTxn(group string) bool {
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	g := l.state.groups[group]
	return g != nil && len(g.pending) > 0
}

// ---- records ----

// txnIDRecord encodes a record of type typ (recTxnState, recTxnAppend)
// for transactional id id carrying b.
func txnIDRecord(typ byte, id string, b []byte) []byte {
	var e enc
	e.u8(typ)
	e.str(id)
	e.lstr(string(b))
	return e.record()
}

func txnEndRecord(group string, pid int64, commit bool) []byte {
	var e enc
	e.u8(recTxnEnd)
	e.str(group)
	e.i64(pid)
	if commit {
		e.u8(1)
	} else {
		e.u8(0)
	}
	return e.record()
}

// txnPendingRecords encodes pending offsets in records of about
// commitRecordBytes, like commitRecords.
func txnPendingRecords(group string, pid int64, entries []commitEntry) []byte {
	var out []byte
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && (n == 0 || size+commitEntryBytes(&entries[n]) <= commitRecordBytes) {
			size += commitEntryBytes(&entries[n])
			n++
		}
		var e enc
		e.u8(recTxnPending)
		e.str(group)
		e.i64(pid)
		encodeEntries(&e, entries[:n])
		rec := e.record()
		if rec == nil {
			return nil
		}
		out = append(out, rec...)
		entries = entries[n:]
	}
	return out
}

// decodeTxnRecord decodes the body of a record of type 8-11 after its type
// and first string.
func decodeTxnRecord(typ byte, name string, d *bin.Reader) (func(*logState), error) {
	switch typ {
	case recTxnState:
		state := []byte(d.LStr())
		return func(st *logState) {
			if len(state) == 0 {
				delete(st.txns, name)
			} else {
				st.txns[name] = state
			}
		}, nil
	case recTxnPending:
		pid := d.I64()
		entries, err := decodeEntries(d)
		if err != nil {
			return nil, err
		}
		return applyTxnPending(name, pid, entries), nil
	case recTxnEnd:
		pid := d.I64()
		return applyTxnEnd(name, pid, d.U8() == 1), nil
	case recTxnAppend:
		return applyTxnAppend(name, []byte(d.LStr())), nil
	}
	return nil, errors.New("group: not a transaction record")
}

func applyTxnPending(group string, pid int64, entries []commitEntry) func(*logState) {
	return func(st *logState) {
		g := stored(st, group)
		if g.pending == nil {
			g.pending = make(map[int64]map[TP]Offset)
		}
		offs := g.pending[pid]
		if offs == nil {
			offs = make(map[TP]Offset)
			g.pending[pid] = offs
		}
		for _, c := range entries {
			offs[c.tp] = c.o
		}
	}
}

func applyTxnEnd(group string, pid int64, commit bool) func(*logState) {
	return func(st *logState) {
		g := st.groups[group]
		if g == nil {
			return
		}
		if commit {
			for tp, o := range g.pending[pid] {
				g.offsets[tp] = o
			}
		}
		delete(g.pending, pid)
	}
}

// encodeTxns appends the transaction states and pending offsets of a
// snapshot.
func encodeTxns(out []byte, state *logState) []byte {
	for id, s := range state.txns {
		out = append(out, txnIDRecord(recTxnState, id, s)...)
	}
	for name, g := range state.groups {
		for pid, offs := range g.pending {
			entries := make([]commitEntry, 0, len(offs))
			for tp, o := range offs {
				entries = append(entries, commitEntry{tp, o})
			}
			out = append(out, txnPendingRecords(name, pid, entries)...)
		}
	}
	return out
}
