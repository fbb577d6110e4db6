package storage

import "time"

// TraceKind names one kind of WAL event reported to Config.Trace.
type TraceKind uint8

const (
	// TraceWrite: one group commit written with one pwrite. Wait is how
	// long its oldest append sat in the shard's queue, Dur the pwrite,
	// Bytes its size, N its appends.
	TraceWrite TraceKind = iota + 1
	// TraceSync: one fdatasync. Bytes is how far it moved the fsynced
	// prefix, N the groups it covered.
	TraceSync
	// TraceAck: the groups of one fdatasync published and their durable
	// appends completed. Wait runs from the oldest group's write to now,
	// Dur is the publishing itself, N the appends completed.
	TraceAck
	// TraceRoll: the writer switched segments. Wait is the seal's
	// fdatasync, Dur the whole roll (seal, waiting for the preparation,
	// rename and directory sync), Bytes how much of the new segment was
	// zero-filled.
	TraceRoll
	// TracePrepare: a new segment reserved (fallocate) and, at the end of
	// its preparation, fsynced. Dur is each step.
	TracePrepare
	// TraceZero: one zero-fill step of a segment's preparation (write and
	// fsync of zeroStepBytes).
	TraceZero
	// TraceCheckpoint: a sealed segment's index checkpoint written.
	TraceCheckpoint
	// TraceWaitRoom: the writer waited for the syncer because it ran
	// maxUnsyncedBytes ahead of the fsynced prefix.
	TraceWaitRoom
)

var traceKindNames = [...]string{
	TraceWrite: "write", TraceSync: "sync", TraceAck: "ack", TraceRoll: "roll",
	TracePrepare: "prepare", TraceZero: "zero", TraceCheckpoint: "checkpoint", TraceWaitRoom: "wait-room",
}

func (k TraceKind) String() string {
	if int(k) < len(traceKindNames) && traceKindNames[k] != "" {
		return traceKindNames[k]
	}
	return "unknown"
}

// TraceEvent is one step of the WAL's work, for finding what a latency
// spike was: every event of every shard on one time line.
type TraceEvent struct {
	Kind  TraceKind
	Shard int
	Start time.Time // when the step began
	Dur   time.Duration
	Wait  time.Duration // see the kind
	Bytes int64
	N     int
}

// trace reports ev when tracing is on. Callers check s.tracing() first
// when building the event costs anything.
func (s *shard) trace(ev TraceEvent) {
	ev.Shard = s.id
	s.st.cfg.Trace(ev)
}

func (s *shard) tracing() bool { return s.st.cfg.Trace != nil }
