package storage

import (
	"cmp"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transactions on the partition log (KIP-98, KIP-890):
//
//   - A transactional batch (attributes bit 0x10) of producer pid opens
//     pid's transaction on its partition when none is open there; the
//     batch's base offset is the transaction's first offset. The producer
//     id, epoch and sequence checks of idempotence apply as to any batch.
//   - WriteTxnMarker appends a control batch (COMMIT or ABORT) that ends
//     it. An ABORT of an open transaction adds (pid, first offset, marker
//     offset) to the partition's aborted-transaction index.
//   - The last stable offset (LSO) is the first offset of the earliest
//     open transaction, or the high watermark when none is open, and never
//     below the log start (Kafka's firstUnstableOffset, raised to the log
//     start).
//
// Who owns what: the shard's writer keeps each producer's open
// transaction in its producer entry (producerEntry.txnOpen, txnFirst), as
// it keeps sequences, and queues an event per open and close with the
// group commit. The syncer applies them when the group is durable: opens
// before the high watermark moves past their data, closes after the
// marker is visible, each under the partition's txnMu and then published
// as firstOpen (atomic), so a reader that loads the high watermark and
// then firstOpen never sees open data as stable. Partitions that never saw
// a transaction pay one atomic load per read (firstOpen = MaxInt64).
//
// Durability: open transactions travel with the producer state (index
// checkpoints, the S3 metadata snapshot); the aborted index of the whole
// shard, trimmed to each partition's log start, goes into every index
// checkpoint (format version 2), so it survives the deletion of the
// segments that held the markers (retention, tiering) and is answerable
// for cold reads. Recovery takes the newest checkpoint's list and adds the
// aborts of the segments scanned after it, replaying their control
// batches; restart costs what the producer state does (nothing more is
// read).

// AbortedTxn is one aborted transaction of a partition: its producer id,
// the offset of its first batch and the offset of its ABORT marker.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// Errors of transactional appends (the protocol layer maps them).
var (
	// ErrInvalidTxnMarker: a control batch that is not a transaction marker.
	ErrInvalidTxnMarker = errors.New("storage: invalid transaction marker")
	// ErrInvalidTxnState: a non-transactional batch from a producer with a
	// transaction open on the partition (Kafka: INVALID_TXN_STATE).
	ErrInvalidTxnState = errors.New("storage: non-transactional batch inside an open transaction") // INVALID_TXN_STATE
	// ErrConcurrentTxns: a transactional batch of a newer epoch while the
	// producer's previous transaction on the partition has no marker yet
	// (KIP-890: the next transaction must wait for it; retriable).
	ErrConcurrentTxns = errors.New("storage: previous transaction not ended on the partition") // CONCURRENT_TRANSACTIONS
)

// txnEventKind is what a txnEvent does.
type txnEventKind uint8

const (
	txnOpened txnEventKind = iota
	txnCommitted
	txnAborted
)

// txnEvent is an open or close of a transaction, queued by the writer with
// its group and applied by the syncer once the group is durable.
type txnEvent struct {
	p     *partition
	kind  txnEventKind
	pid   int64
	first int64 // the transaction's first offset
	last  int64 // close: the marker's offset
}

// openTxn is an open transaction of a partition.
type openTxn struct {
	pid, first int64
}

// partTxns is a partition's published transaction state. The syncer (or
// recovery) changes it under mu; readers take mu.
type partTxns struct {
	mu sync.Mutex
	// open holds the open transactions by first offset; a closed one
	// stays as a tombstone (pid -1) until the entries before it close too
	// or tombstones outnumber the open ones, so a close costs a binary
	// search, not a shift of every later entry (which made ending 200,000
	// open transactions of a partition quadratic: 42 s).
	open []openTxn
	head int             // open[:head] are tombstones
	dead int             // tombstones in open[head:]
	live map[int64]int64 // producer id -> first offset of its open transaction
	// aborted: by marker (last) offset
	aborted []AbortedTxn
	// maxSpan is the largest LastOffset-FirstOffset in aborted: a lookup
	// for data below to stops once an entry's LastOffset-maxSpan >= to.
	maxSpan int64
}

// txnState returns p's transaction state, creating it (and listing p in
// its shard's txnParts) on first use.
func (p *partition) txnState() *partTxns {
	if t := p.txns.Load(); t != nil {
		return t
	}
	sh := p.sh
	sh.txnMu.Lock()
	defer sh.txnMu.Unlock()
	t := p.txns.Load()
	if t == nil {
		t = &partTxns{}
		p.txns.Store(t)
		if sh.txnParts == nil {
			sh.txnParts = map[uint32]*partition{}
		}
		sh.txnParts[p.key] = p
	}
	return t
}

// publishFirstOpen stores the first offset of the earliest open
// transaction. t.mu held.
func (p *partition) publishFirstOpen(t *partTxns) {
	if t.head == len(t.open) {
		p.firstOpen.Store(math.MaxInt64)
		return
	}
	p.firstOpen.Store(t.open[t.head].first)
}

// addOpen records pid's transaction open from first, which is above every
// open one's (offsets grow). t.mu held.
func (t *partTxns) addOpen(pid, first int64) {
	if t.live == nil {
		t.live = make(map[int64]int64)
	}
	t.live[pid] = first
	t.open = append(t.open, openTxn{pid: pid, first: first})
}

// closeOpen forgets pid's open transaction, if any. t.mu held.
func (t *partTxns) closeOpen(pid int64) {
	first, ok := t.live[pid]
	if !ok {
		return
	}
	delete(t.live, pid)
	rest := t.open[t.head:]
	i, found := slices.BinarySearchFunc(rest, first, func(o openTxn, f int64) int { return cmp.Compare(o.first, f) })
	if !found || rest[i].pid != pid {
		return // not in order (cannot happen: opens come by offset)
	}
	rest[i].pid = -1
	t.dead++
	for t.head < len(t.open) && t.open[t.head].pid < 0 {
		t.head++
		t.dead--
	}
	switch {
	case t.head == len(t.open):
		t.open, t.head, t.dead = t.open[:0], 0, 0
	case t.head+t.dead > len(t.open)/2:
		kept := t.open[:0]
		for _, o := range t.open[t.head:] {
			if o.pid >= 0 {
				kept = append(kept, o)
			}
		}
		clear(t.open[len(kept):])
		t.open, t.head, t.dead = kept, 0, 0
	}
}

// lso computes the last stable offset from a log start and a high
// watermark loaded (in that order) before it.
func (p *partition) lso(logStart, hwm int64) int64 {
	return min(hwm, max(p.firstOpen.Load(), logStart))
}

// addAborted appends an aborted transaction. t.mu held.
func (t *partTxns) addAborted(a AbortedTxn) {
	t.aborted = append(t.aborted, a)
	t.maxSpan = max(t.maxSpan, a.LastOffset-a.FirstOffset)
}

// trimAborted drops the aborted transactions wholly below logStart. t.mu held.
func (t *partTxns) trimAborted(logStart int64) {
	i := 0
	for i < len(t.aborted) && t.aborted[i].LastOffset < logStart {
		i++
	}
	if i > 0 {
		t.aborted = slices.Delete(t.aborted, 0, i)
	}
}

// setAbortedBelow makes c's aborted section p's aborted-transaction index
// below c's cleaned end: the aborted transactions whose ABORT markers c
// holds. Those whose markers a cleaning removed must go with them, or a
// read_committed consumer would add the producer to its aborted set and,
// never seeing the marker, skip its later committed data. Entries at or
// above c's end (markers still in the WAL) stay. A version 1 file (every
// marker kept) leaves the index as it is.
func (p *partition) setAbortedBelow(c *compacted) {
	if !c.abortedKnown || (len(c.aborted) == 0 && p.txns.Load() == nil) {
		return
	}
	t := p.txnState()
	t.mu.Lock()
	defer t.mu.Unlock()
	i, _ := slices.BinarySearchFunc(t.aborted, c.end, func(a AbortedTxn, end int64) int { return cmp.Compare(a.LastOffset, end) })
	if i == len(c.aborted) && slices.Equal(t.aborted[:i], c.aborted) {
		return
	}
	out := make([]AbortedTxn, 0, len(c.aborted)+len(t.aborted)-i)
	out = append(append(out, c.aborted...), t.aborted[i:]...)
	t.aborted, t.maxSpan = out, 0
	for _, a := range out {
		t.maxSpan = max(t.maxSpan, a.LastOffset-a.FirstOffset)
	}
}

// applyTxnOpens publishes the opens of a durable group, before its high
// watermarks move. Syncer only.
func (s *shard) applyTxnOpens(evs []txnEvent) {
	for i := range evs {
		ev := &evs[i]
		if ev.kind != txnOpened {
			continue
		}
		p := ev.p
		t := p.txnState()
		t.mu.Lock()
		t.addOpen(ev.pid, ev.first)
		p.publishFirstOpen(t)
		t.mu.Unlock()
	}
}

// applyTxnCloses publishes the closes of a durable group, after its high
// watermarks moved past the markers. Syncer only.
func (s *shard) applyTxnCloses(evs []txnEvent) {
	for i := range evs {
		ev := &evs[i]
		if ev.kind == txnOpened {
			continue
		}
		p := ev.p
		t := p.txnState()
		t.mu.Lock()
		if ev.kind == txnAborted {
			t.addAborted(AbortedTxn{ProducerID: ev.pid, FirstOffset: ev.first, LastOffset: ev.last})
		}
		t.closeOpen(ev.pid)
		p.publishFirstOpen(t)
		t.mu.Unlock()
	}
}

// abortedSnapshot returns the shard's aborted transactions at or above
// each partition's log start, trimming the in-memory lists to the same.
// Syncer only (at a seal).
func (s *shard) abortedSnapshot() []ckAborted {
	var out []ckAborted
	for _, p := range s.txnPartitions() {
		k := p.key
		t := p.txns.Load()
		t.mu.Lock()
		t.trimAborted(p.logStart.Load())
		for _, a := range t.aborted {
			out = append(out, ckAborted{key: k, AbortedTxn: a})
		}
		t.mu.Unlock()
	}
	return out
}

// txnPartitions lists the shard's partitions with transaction state,
// forgetting deleted ones.
func (s *shard) txnPartitions() []*partition {
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	out := make([]*partition, 0, len(s.txnParts))
	for k, p := range s.txnParts {
		if p.deleted.Load() {
			delete(s.txnParts, k)
			continue
		}
		out = append(out, p)
	}
	return out
}

// txnContinues checks a data batch of a producer whose transaction is open
// on the partition: it must be transactional and of the same epoch (a
// newer epoch's transaction starts only after this one's marker).
func txnContinues(e *producerEntry, h *BatchHeader) error {
	switch {
	case !h.Transactional():
		return ErrInvalidTxnState
	case h.ProducerEpoch > e.epoch:
		return ErrConcurrentTxns
	}
	return nil
}

// WriteTxnMarker appends one control batch, a COMMIT (commit) or ABORT
// marker in Kafka's control-record format (attributes control and
// transactional, producer id and epoch, key version 0 type 1 or 0, value
// version 0 and coordinatorEpoch), to topic/partition, ending producer
// pid's open transaction there. done runs once, after the fsync that makes
// the marker durable (or with the error), on a store goroutine or, when the
// append fails at once, on the caller's; it must not block.
//
// A marker for a partition where pid has no open transaction is still
// written (Kafka does) and changes nothing else. A marker whose epoch is
// older than the producer's current epoch on the partition fails with
// ErrInvalidProducerEpoch. After the marker the producer's epoch on the
// partition is the marker's epoch; a marker with a newer epoch (KIP-890's
// bump on every end) also clears the producer's sequence history there, so
// its next transaction starts at sequence 0 with that epoch.
func (s *Store) WriteTxnMarker(topic string, partition int32, pid int64, epoch int16, commit bool,
	coordinatorEpoch int32, done func(AppendResult)) {
	if pid < 0 || epoch < 0 {
		done(failResult(ErrInvalidProducerEpoch))
		return
	}
	s.Append(topic, partition, MarkerBatch(pid, epoch, commit, coordinatorEpoch, s.now().UnixMilli()), true, done)
}

// MarkerBatch builds the transaction marker control batch WriteTxnMarker
// appends (with kmsg), at base offset 0; nowMs is its timestamp.
func MarkerBatch(pid int64, epoch int16, commit bool, coordinatorEpoch int32, nowMs int64) []byte {
	typ := kmsg.ControlRecordKeyTypeAbort
	if commit {
		typ = kmsg.ControlRecordKeyTypeCommit
	}
	key := kmsg.ControlRecordKey{Version: 0, Type: typ}
	val := kmsg.EndTxnMarker{Version: 0, CoordinatorEpoch: coordinatorEpoch}
	rec := kmsg.Record{Key: key.AppendTo(nil), Value: val.AppendTo(nil)}
	body := rec.AppendTo(nil) // Length 0 takes one varint byte
	rec.Length = int32(len(body) - 1)
	records := rec.AppendTo(make([]byte, 0, len(body)+4))
	b := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: LeaderEpoch,
		Magic:                2,
		Attributes:           attrControl | attrTransactional,
		LastOffsetDelta:      0,
		FirstTimestamp:       nowMs,
		MaxTimestamp:         nowMs,
		ProducerID:           pid,
		ProducerEpoch:        epoch,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              records,
	}
	out := b.AppendTo(make([]byte, 0, BatchHeaderBytes+len(records)))
	binary.BigEndian.PutUint32(out[batchLengthAt:], uint32(len(out)-batchLengthOverhead))
	binary.BigEndian.PutUint32(out[batchCRCAt:], crc32.Checksum(out[batchAttributesAt:], castagnoli))
	return out
}

// MarkerCommit reads the type of a control batch's marker: commit or
// abort. ok is false for a control batch that is not a transaction marker
// (or does not parse).
func MarkerCommit(batch []byte) (commit, ok bool) {
	if len(batch) <= BatchHeaderBytes {
		return false, false
	}
	var rb kmsg.RecordBatch
	if err := rb.UnsafeReadFrom(batch); err != nil || rb.NumRecords < 1 || rb.Attributes&attrCompressionMask != 0 {
		return false, false
	}
	var rec kmsg.Record
	if err := rec.UnsafeReadFrom(rb.Records); err != nil {
		// ReadFrom wants exactly one record; take the first of several.
		return false, false
	}
	var key kmsg.ControlRecordKey
	if err := key.UnsafeReadFrom(rec.Key); err != nil {
		return false, false
	}
	switch key.Type {
	case kmsg.ControlRecordKeyTypeCommit:
		return true, true
	case kmsg.ControlRecordKeyTypeAbort:
		return false, true
	}
	return false, false
}

// AbortedTxns returns the aborted transactions of topic/partition whose
// data overlaps [from, to) (first offset below to, marker at or above
// from), in first-offset order: Fetch's AbortedTransactions for a
// read_committed read of that range. Nil when there are none.
func (s *Store) AbortedTxns(topic string, partition int32, from, to int64) ([]AbortedTxn, error) {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return nil, err
	}
	if p.failed.Load() {
		return nil, ErrStorage
	}
	t := p.txns.Load()
	if t == nil {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	i, _ := slices.BinarySearchFunc(t.aborted, from, func(a AbortedTxn, off int64) int { return cmp.Compare(a.LastOffset, off) })
	var out []AbortedTxn
	for _, a := range t.aborted[i:] {
		if a.LastOffset-t.maxSpan >= to {
			break // every later entry starts at or past to
		}
		if a.FirstOffset < to {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b AbortedTxn) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
	return out, nil
}

// OpenTxnStart returns the first offset of pid's open transaction on
// topic/partition as readers see it (durable), or -1 when none is open.
// Producers shows the writer's view, which may be ahead by what is not
// durable yet.
func (s *Store) OpenTxnStart(topic string, partition int32, pid int64) (int64, error) {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return -1, err
	}
	t := p.txns.Load()
	if t == nil {
		return -1, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if first, ok := t.live[pid]; ok {
		return first, nil
	}
	return -1, nil
}

// LastStableOffset returns topic/partition's last stable offset: the first
// offset of its earliest open transaction, or the high watermark when none
// is open (ListOffsets latest for read_committed).
func (s *Store) LastStableOffset(topic string, partition int32) (int64, error) {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return -1, err
	}
	if p.failed.Load() {
		return -1, ErrStorage
	}
	logStart := p.logStart.Load()
	hwm := p.hwm.Load()
	return p.lso(logStart, hwm), nil
}

// ckAborted is an aborted transaction in an index checkpoint.
type ckAborted struct {
	key uint32
	AbortedTxn
}

// Aborted section of an index checkpoint (version 2), after the producers;
// part of the on-disk format, big-endian:
//
//	count u32 | count x (key u32 | pid i64 | first i64 | last i64)
const ckAbortedBytes = 28

func appendAborted(b []byte, as []ckAborted) []byte {
	be := binary.BigEndian
	b = be.AppendUint32(b, uint32(len(as)))
	for _, a := range as {
		b = be.AppendUint32(b, a.key)
		b = be.AppendUint64(b, uint64(a.ProducerID))
		b = be.AppendUint64(b, uint64(a.FirstOffset))
		b = be.AppendUint64(b, uint64(a.LastOffset))
	}
	return b
}

// decodeAborted decodes the aborted section; it must fill b exactly.
func decodeAborted(b []byte) ([]ckAborted, error) {
	be := binary.BigEndian
	if len(b) < 4 {
		return nil, errCheckpoint
	}
	n := int(be.Uint32(b))
	b = b[4:]
	if n > len(b)/ckAbortedBytes || len(b) != n*ckAbortedBytes {
		return nil, errCheckpoint
	}
	out := make([]ckAborted, n)
	for i := range out {
		e := b[i*ckAbortedBytes:]
		out[i] = ckAborted{key: be.Uint32(e), AbortedTxn: AbortedTxn{
			ProducerID:  int64(be.Uint64(e[4:])),
			FirstOffset: int64(be.Uint64(e[12:])),
			LastOffset:  int64(be.Uint64(e[20:])),
		}}
	}
	return out, nil
}

// abortedByKey groups checkpointed aborted transactions by partition key,
// each list in marker order. Recovery only.
type abortedByKey map[uint32][]AbortedTxn

func (m abortedByKey) load(as []ckAborted) {
	clear(m)
	for _, a := range as {
		m[a.key] = append(m[a.key], a.AbortedTxn)
	}
}

func (m abortedByKey) flat() []ckAborted {
	var out []ckAborted
	for k, l := range m {
		for _, a := range l {
			out = append(out, ckAborted{key: k, AbortedTxn: a})
		}
	}
	return out
}

// installTxns publishes rebuilt transaction state: the open transactions
// of prods and the aborted lists, trimmed to the log starts. Recovery, and
// Restore before clients are served.
func (s *shard) installTxns(prods producerMap, aborted abortedByKey) {
	for k, l := range aborted {
		p := s.partByKey(k)
		if p == nil || p.sh != s {
			continue
		}
		t := p.txnState()
		t.mu.Lock()
		for _, a := range l {
			t.addAborted(a)
		}
		t.trimAborted(p.logStart.Load())
		t.mu.Unlock()
	}
	for k, e := range prods {
		if !e.txnOpen {
			continue
		}
		p := s.partByKey(k.key)
		if p == nil || p.sh != s {
			continue
		}
		t := p.txnState()
		t.mu.Lock()
		t.addOpen(k.pid, e.txnFirst)
		t.mu.Unlock()
	}
	for _, p := range s.txnPartitions() {
		t := p.txns.Load()
		t.mu.Lock()
		t.open = slices.DeleteFunc(t.open, func(o openTxn) bool { return o.pid < 0 })
		t.head, t.dead = 0, 0
		slices.SortFunc(t.open, func(a, b openTxn) int { return cmp.Compare(a.first, b.first) })
		p.publishFirstOpen(t)
		t.mu.Unlock()
	}
}

// partByKey finds a partition by key (metaMu guards byKey once the store
// runs; recovery holds no lock, nothing else runs then).
func (s *shard) partByKey(key uint32) *partition {
	s.st.metaMu.Lock()
	defer s.st.metaMu.Unlock()
	return s.st.byKey[key]
}
