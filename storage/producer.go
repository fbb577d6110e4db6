package storage

import (
	"cmp"
	"encoding/binary"
	"errors"
	"math"
	"slices"
)

// Idempotent producer state, as Apache Kafka keeps it: per (producer id,
// partition) the epoch and the last producerBatchesKept batches' sequence
// ranges and offsets. A shard's writer goroutine owns its shard's map.
// It is snapshotted into each sealed segment's index checkpoint and rebuilt
// on recovery from the newest checkpoint plus the batch headers of the
// segments after it.

// producerBatchesKept is how many batches per producer and partition are
// remembered for duplicate detection (Kafka: 5, the most in-flight requests
// an idempotent producer may have).
const producerBatchesKept = 5

type producerKey struct {
	pid int64
	key uint32 // partition key
}

type producerBatch struct {
	firstSeq, lastSeq int32
	base, last        int64
}

type producerEntry struct {
	epoch  int16
	n      uint8 // batches held, <= producerBatchesKept
	head   uint8 // index of the oldest batch
	lastMs int64 // broker time of the last append, for expiry
	b      [producerBatchesKept]producerBatch
	// txnOpen: a transactional batch opened a transaction that no marker
	// has ended yet; txnFirst is its first offset (txn.go).
	txnOpen  bool
	txnFirst int64
}

type producerMap map[producerKey]*producerEntry

func (e *producerEntry) newest() *producerBatch {
	return &e.b[(int(e.head)+int(e.n)-1)%producerBatchesKept]
}

func (e *producerEntry) push(pb producerBatch) {
	if e.n < producerBatchesKept {
		e.b[(int(e.head)+int(e.n))%producerBatchesKept] = pb
		e.n++
		return
	}
	e.b[e.head] = pb
	e.head = (e.head + 1) % producerBatchesKept
}

// incSeq adds d to a sequence number; sequences wrap from MaxInt32 to 0.
func incSeq(s int32, d int32) int32 {
	return int32((int64(s) + int64(d)) % (math.MaxInt32 + 1))
}

// checkSeq decides what to do with a batch of a known producer. It returns
// the original batch when the batch is a duplicate.
func (e *producerEntry) checkSeq(epoch int16, first, last int32) (dup *producerBatch, err error) {
	switch {
	case epoch < e.epoch:
		return nil, ErrInvalidProducerEpoch
	case epoch > e.epoch:
		if first != 0 {
			return nil, ErrOutOfOrderSequence
		}
		return nil, nil
	}
	for i := 0; i < int(e.n); i++ {
		b := &e.b[(int(e.head)+i)%producerBatchesKept]
		if b.firstSeq == first && b.lastSeq == last {
			return b, nil
		}
	}
	if e.n > 0 && first != incSeq(e.newest().lastSeq, 1) {
		return nil, ErrOutOfOrderSequence
	}
	return nil, nil
}

// record applies an accepted batch.
func (e *producerEntry) record(epoch int16, pb producerBatch, nowMs int64) {
	if epoch != e.epoch {
		e.epoch, e.n, e.head = epoch, 0, 0
	}
	e.push(pb)
	e.lastMs = nowMs
}

// marker applies a transaction marker of epoch to e (admitted: epoch is
// not older than e's). It reports whether it closed an open transaction,
// and that transaction's first offset.
func (e *producerEntry) marker(epoch int16, nowMs int64) (closed bool, first int64) {
	if epoch > e.epoch {
		// KIP-890: the bumped epoch starts over at sequence 0.
		e.epoch, e.n, e.head = epoch, 0, 0
	}
	e.lastMs = nowMs
	if !e.txnOpen {
		return false, -1
	}
	e.txnOpen = false
	return true, e.txnFirst
}

// replay applies a batch found in the log during recovery: no checks. A
// marker that closes an aborted transaction is returned (ok) for the
// aborted index.
func (m producerMap) replay(key uint32, h *BatchHeader, batch []byte, nowMs int64) (ab AbortedTxn, ok bool) {
	if h.ProducerID < 0 {
		return ab, false
	}
	k := producerKey{pid: h.ProducerID, key: key}
	e := m[k]
	if e == nil {
		e = &producerEntry{epoch: h.ProducerEpoch}
		m[k] = e
	}
	if h.ProducerEpoch < e.epoch {
		return ab, false
	}
	if h.Control() {
		commit, isMarker := MarkerCommit(batch)
		if !isMarker {
			return ab, false
		}
		closed, first := e.marker(h.ProducerEpoch, nowMs)
		if !closed || commit {
			return ab, false
		}
		return AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset}, true
	}
	e.record(h.ProducerEpoch, producerBatch{
		firstSeq: h.BaseSequence, lastSeq: incSeq(h.BaseSequence, h.LastOffsetDelta),
		base: h.BaseOffset, last: h.BaseOffset + int64(h.LastOffsetDelta),
	}, nowMs)
	if h.Transactional() && !e.txnOpen {
		e.txnOpen, e.txnFirst = true, h.BaseOffset
	}
	return ab, false
}

// expire drops producers idle since before cutoffMs, but never one with an
// open transaction: its first offset holds the last stable offset back
// until the coordinator ends it.
func (m producerMap) expire(cutoffMs int64) {
	for k, e := range m {
		if e.lastMs < cutoffMs && !e.txnOpen {
			delete(m, k)
		}
	}
}

// Producer snapshot encoding, part of the index checkpoint format:
//
//	pid i64 | key u32 | epoch i16 | n u8 | flags u8 | lastMs i64 |
//	[txnFirst i64, when flags has producerTxnOpen] |
//	n x (firstSeq i32 | lastSeq i32 | base i64 | last i64), oldest first
//
// flags was 0 before transactions, so older snapshots decode unchanged.
const (
	producerFixedBytes = 24
	producerTxnOpen    = 0x01
)

func encodeProducers(m producerMap) ([]byte, int) {
	be := binary.BigEndian
	b := make([]byte, 0, len(m)*(producerFixedBytes+2*24))
	for k, e := range m {
		b = be.AppendUint64(b, uint64(k.pid))
		b = be.AppendUint32(b, k.key)
		b = be.AppendUint16(b, uint16(e.epoch))
		var flags uint8
		if e.txnOpen {
			flags |= producerTxnOpen
		}
		b = append(b, e.n, flags)
		b = be.AppendUint64(b, uint64(e.lastMs))
		if e.txnOpen {
			b = be.AppendUint64(b, uint64(e.txnFirst))
		}
		for i := 0; i < int(e.n); i++ {
			pb := &e.b[(int(e.head)+i)%producerBatchesKept]
			b = be.AppendUint32(b, uint32(pb.firstSeq))
			b = be.AppendUint32(b, uint32(pb.lastSeq))
			b = be.AppendUint64(b, uint64(pb.base))
			b = be.AppendUint64(b, uint64(pb.last))
		}
	}
	return b, len(m)
}

var errProducers = errors.New("storage: bad producer snapshot")

func decodeProducers(b []byte, count int) (producerMap, error) {
	be := binary.BigEndian
	m := make(producerMap, count)
	for range count {
		if len(b) < producerFixedBytes {
			return nil, errProducers
		}
		k := producerKey{pid: int64(be.Uint64(b)), key: be.Uint32(b[8:])}
		e := &producerEntry{epoch: int16(be.Uint16(b[12:])), lastMs: int64(be.Uint64(b[16:]))}
		n, flags := int(b[14]), b[15]
		b = b[producerFixedBytes:]
		if flags&^producerTxnOpen != 0 {
			return nil, errProducers
		}
		if flags&producerTxnOpen != 0 {
			if len(b) < 8 {
				return nil, errProducers
			}
			e.txnOpen, e.txnFirst = true, int64(be.Uint64(b))
			b = b[8:]
		}
		if n > producerBatchesKept || len(b) < n*24 {
			return nil, errProducers
		}
		for i := range n {
			e.push(producerBatch{
				firstSeq: int32(be.Uint32(b[i*24:])), lastSeq: int32(be.Uint32(b[i*24+4:])),
				base: int64(be.Uint64(b[i*24+8:])), last: int64(be.Uint64(b[i*24+16:])),
			})
		}
		b = b[n*24:]
		m[k] = e
	}
	if len(b) != 0 {
		return nil, errProducers
	}
	return m, nil
}

func (m producerMap) clone() producerMap {
	c := make(producerMap, len(m))
	for k, e := range m {
		ce := *e
		c[k] = &ce
	}
	return c
}

// Producer is one producer's state on a partition, as Kafka's
// DescribeProducers (KIP-664) shows it.
type Producer struct {
	ID    int64
	Epoch int16
	// LastSequence is the last sequence number of its newest batch of
	// Epoch, -1 when it has none (a marker bumped the epoch since).
	LastSequence int32
	// LastTimestamp is the broker's time (ms) of its last batch or marker
	// here: what klite keeps to expire producers; Kafka shows the batch's
	// own max timestamp.
	LastTimestamp int64
	// TxnStart is the first offset of its open transaction, -1 when none.
	TxnStart int64
}

// PartitionProducers is the answer for one partition of Producers.
type PartitionProducers struct {
	Partition int32
	Producers []Producer // by producer id
	Err       error      // ErrUnknownTopic, ErrStorage, ErrClosed
}

// Producers returns the producer state of the listed partitions of topic:
// the producers the writer knows, including batches not yet durable, as
// Kafka's leader shows what its log holds. It visits each shard once, on
// its writer goroutine between group commits, so it may wait for a
// segment roll's fsync: call it off the event loop.
func (s *Store) Producers(topic string, partitions []int32) []PartitionProducers {
	out := make([]PartitionProducers, len(partitions))
	byShard := map[*shard][]int{}
	keys := make([]uint32, len(partitions))
	for i, num := range partitions {
		out[i].Partition = num
		p, err := s.lookup(topic, num)
		switch {
		case err != nil:
			out[i].Err = err
		case p.failed.Load() || p.sh.failed.Load():
			out[i].Err = ErrStorage
		default:
			keys[i] = p.key
			byShard[p.sh] = append(byShard[p.sh], i)
		}
	}
	for sh, idx := range byShard {
		want := make(map[uint32][]int, len(idx)) // a partition may be listed twice
		for _, i := range idx {
			want[keys[i]] = append(want[keys[i]], i)
		}
		err := sh.onWriter(func() {
			for k, e := range sh.producers {
				is, ok := want[k.key]
				if !ok {
					continue
				}
				pr := Producer{ID: k.pid, Epoch: e.epoch, LastSequence: -1, LastTimestamp: e.lastMs, TxnStart: -1}
				if e.n > 0 {
					pr.LastSequence = e.newest().lastSeq
				}
				if e.txnOpen {
					pr.TxnStart = e.txnFirst
				}
				for _, i := range is {
					out[i].Producers = append(out[i].Producers, pr)
				}
			}
		})
		for _, i := range idx {
			if err != nil {
				out[i].Err, out[i].Producers = err, nil
			}
			slices.SortFunc(out[i].Producers, func(a, b Producer) int { return cmp.Compare(a.ID, b.ID) })
		}
	}
	return out
}
