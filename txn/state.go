package txn

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"

	"github.com/klite/klite/internal/bin"
)

// State is a transaction's state (Kafka's TransactionState).
type State int8

// States, by their on-disk value (part of the format).
const (
	Empty State = iota
	Ongoing
	PrepareCommit
	PrepareAbort
	CompleteCommit
	CompleteAbort
	PrepareEpochFence
	Dead
)

var stateNames = [...]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "PrepareEpochFence", "Dead"}

// String is Kafka's name of the state (DescribeTransactions, ListTransactions).
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "Unknown"
	}
	return stateNames[s]
}

// ParseState is the inverse of String; ok is false for an unknown name.
func ParseState(name string) (State, bool) {
	i := slices.Index(stateNames[:], name)
	return State(i), i >= 0
}

func (s State) preparing() bool { return s == PrepareCommit || s == PrepareAbort }
func (s State) complete() bool  { return s == CompleteCommit || s == CompleteAbort }

// TP is a topic partition.
type TP struct {
	Topic     string
	Partition int32
}

// noEpoch and noPID are Kafka's RecordBatch.NO_PRODUCER_EPOCH and
// NO_PRODUCER_ID.
const (
	noEpoch int16 = -1
	noPID   int64 = -1
)

// epochExhausted: the epoch cannot be bumped again (Kafka keeps
// Short.MaxValue for the markers of an epoch fence), so the next
// InitProducerId rotates the producer id.
func epochExhausted(e int16) bool { return e >= math.MaxInt16-1 }

// record is a transaction's durable state.
type record struct {
	pid, lastPid     int64
	epoch, lastEpoch int16
	timeoutMs        int32
	state            State
	startMs          int64 // when the transaction became Ongoing; -1 when none is open
	updateMs         int64
	// nextPid is the producer id the transaction continues with once it
	// completes, when EndTxn's epoch bump (KIP-890) exhausted the epoch;
	// -1 otherwise.
	nextPid int64
	parts   []TP     // sorted, unique
	groups  []string // sorted, unique
}

const stateVersion = 1

var errBadState = errors.New("txn: malformed transaction state")

func (r *record) encode() []byte {
	b := make([]byte, 0, 64+len(r.parts)*24)
	be := binary.BigEndian
	b = append(b, stateVersion)
	b = be.AppendUint64(b, uint64(r.pid))
	b = be.AppendUint64(b, uint64(r.lastPid))
	b = be.AppendUint16(b, uint16(r.epoch))
	b = be.AppendUint16(b, uint16(r.lastEpoch))
	b = be.AppendUint32(b, uint32(r.timeoutMs))
	b = append(b, byte(r.state))
	b = be.AppendUint64(b, uint64(r.startMs))
	b = be.AppendUint64(b, uint64(r.updateMs))
	b = be.AppendUint64(b, uint64(r.nextPid))
	b = be.AppendUint32(b, uint32(len(r.parts)))
	for _, p := range r.parts {
		b = be.AppendUint16(b, uint16(len(p.Topic)))
		b = append(b, p.Topic...)
		b = be.AppendUint32(b, uint32(p.Partition))
	}
	b = be.AppendUint32(b, uint32(len(r.groups)))
	for _, g := range r.groups {
		b = be.AppendUint16(b, uint16(len(g)))
		b = append(b, g...)
	}
	return b
}

func decodeRecord(b []byte) (record, error) {
	d := &bin.Reader{B: b}
	var r record
	if d.U8() != stateVersion {
		return r, errBadState
	}
	r.pid = int64(d.U64())
	r.lastPid = int64(d.U64())
	r.epoch = int16(d.U16())
	r.lastEpoch = int16(d.U16())
	r.timeoutMs = int32(d.U32())
	r.state = State(d.U8())
	r.startMs = int64(d.U64())
	r.updateMs = int64(d.U64())
	r.nextPid = int64(d.U64())
	n := d.U32()
	if int(n) > len(d.B)/6 { // allocation bounded by the input
		return r, errBadState
	}
	for i := uint32(0); i < n && !d.Bad; i++ {
		r.parts = append(r.parts, TP{d.Str(), int32(d.U32())})
	}
	n = d.U32()
	if int(n) > len(d.B)/2 {
		return r, errBadState
	}
	for i := uint32(0); i < n && !d.Bad; i++ {
		r.groups = append(r.groups, d.Str())
	}
	// Partitions appended since (Store.AppendTxn), merged in once.
	var added []TP
	for len(d.B) > 0 && !d.Bad {
		if d.U8() != chunkParts {
			return r, errBadState
		}
		n = d.U32()
		if int(n) > len(d.B)/6 {
			return r, errBadState
		}
		for i := uint32(0); i < n && !d.Bad; i++ {
			added = append(added, TP{d.Str(), int32(d.U32())})
		}
	}
	if d.Bad || r.state < Empty || r.state > Dead {
		return r, errBadState
	}
	r.parts, _ = r.withParts(added)
	return r, nil
}

// chunkParts tags partitions appended to a stored state (part of the
// format): count u32 x (topic u16 length + bytes, partition i32).
const chunkParts = 1

// partsChunk encodes tps as a chunk appended to a stored state.
func partsChunk(tps []TP) []byte {
	be := binary.BigEndian
	b := make([]byte, 0, 5+len(tps)*24)
	b = append(b, chunkParts)
	b = be.AppendUint32(b, uint32(len(tps)))
	for _, p := range tps {
		b = be.AppendUint16(b, uint16(len(p.Topic)))
		b = append(b, p.Topic...)
		b = be.AppendUint32(b, uint32(p.Partition))
	}
	return b
}

func cmpTP(a, b TP) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return int(a.Partition) - int(b.Partition)
}

// hasPart reports whether r's transaction includes tp.
func (r *record) hasPart(tp TP) bool {
	_, ok := slices.BinarySearchFunc(r.parts, tp, cmpTP)
	return ok
}

func (r *record) hasGroup(g string) bool {
	_, ok := slices.BinarySearch(r.groups, g)
	return ok
}

// withParts returns r's partitions with tps added (a new slice: records are
// immutable once stored), and whether any was new. tps is sorted and
// merged in one pass: inserting one at a time was quadratic (30 s to add
// 300,000 partitions to one transaction).
func (r *record) withParts(tps []TP) ([]TP, bool) {
	if len(tps) == 0 {
		return r.parts, false
	}
	in := slices.Clone(tps)
	slices.SortFunc(in, cmpTP)
	in = slices.CompactFunc(in, func(a, b TP) bool { return cmpTP(a, b) == 0 })
	out := make([]TP, 0, len(r.parts)+len(in))
	i, j := 0, 0
	for i < len(r.parts) && j < len(in) {
		switch c := cmpTP(r.parts[i], in[j]); {
		case c < 0:
			out = append(out, r.parts[i])
			i++
		case c > 0:
			out = append(out, in[j])
			j++
		default:
			out = append(out, r.parts[i])
			i++
			j++
		}
	}
	out = append(out, r.parts[i:]...)
	out = append(out, in[j:]...)
	return out, len(out) > len(r.parts)
}
