package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/klite/klite/internal/bin"
	"github.com/klite/klite/vfs"
)

// On-disk format constants (see doc.go). Changing them breaks existing dirs.
const (
	recCommit        = 1
	recDeleteOffsets = 2
	recDeleteGroup   = 3
	recGroupMeta     = 4
	recMember        = 5 // a consumer-protocol member joined or left (KIP-848)
	recClassic       = 6 // a classic group's completed generation (classic_store.go)
	recWrite         = 7 // write marker: length and CRC-32C of the records of one write that follow it

	markerBodyBytes = 9 // type u8, length u32, CRC-32C u32

	recHeaderBytes = 8 // length u32 + CRC-32C u32
	snapshotMagic  = "KLGSNAP1"
	logPrefix      = "log-"
	snapPrefix     = "snapshot-"
	seqDigits      = 20

	// MaxRecordBytes bounds one record body, when the log opens and when it
	// writes: a record over it is refused at write time, so whatever the log
	// acknowledges reads back. A length above it on open is a torn or
	// corrupt header, not a record to allocate for.
	MaxRecordBytes = 64 << 20

	// commitRecordBytes is the size at which a commit (in the log, a
	// snapshot or an export) continues in another record: a group's offsets
	// take as many records as they need.
	commitRecordBytes = 1 << 20
	// writeExtentBytes is the size at which one write starts another
	// marker; an op's records always stay under one marker.
	writeExtentBytes = 64 << 20
	// keepWriteBufBytes is the largest write buffer the writer keeps for
	// the next write.
	keepWriteBufBytes = 4 << 20
)

var (
	// ErrLogFailed fails every commit after a write or fdatasync error.
	ErrLogFailed = errors.New("group: offsets log failed")
	// ErrClosed is returned for commits submitted after Close.
	ErrClosed = errors.New("group: closed")
	// ErrCorrupt fails Open: a snapshot, an older log or the middle of the
	// newest log does not read back, so acknowledged records may be behind
	// the bad one. The error names the file and byte offset; an operator
	// restores the directory or opens with Config.RepairLog.
	ErrCorrupt = errors.New("group: corrupt offsets log")
	// ErrRecordTooLarge fails an op whose records the log would not read
	// back (over MaxRecordBytes, or a string field over 65535 bytes); it is
	// not written and the log goes on.
	ErrRecordTooLarge = errors.New("group: offsets log record too large")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// TP is a topic partition.
type TP struct {
	Topic     string
	Partition int32
}

// Offset is one committed offset.
type Offset struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitMs    int64
	ExpireMs    int64 // 0: the group's retention applies (v2-4 RetentionTime sets it)
}

// storedGroup is what the log keeps of a group.
type storedGroup struct {
	protocolType string
	generation   int32
	offsets      map[TP]Offset
	pending      map[int64]map[TP]Offset // transactional offsets by producer id, until the transaction ends (txnstate.go)
	members      map[string]string       // consumer-protocol member id -> instance id
	classic      *storedClassic          // last completed classic generation with members; nil when none (immutable once stored)
}

// logOp is one record waiting for the writer.
type logOp struct {
	rec   []byte
	apply func(*logState) // under stateMu, after fdatasync
	done  func(error)
}

// offsetsLog is the durable store of committed offsets and group metadata.
type offsetsLog struct {
	fs           vfs.FS
	dir          string
	log          zerolog.Logger
	compactBytes int64
	repair       bool

	mu     sync.Mutex
	queue  []*logOp // guarded by mu
	closed bool     // guarded by mu
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}

	stateMu sync.RWMutex
	state   *logState // guarded by stateMu; written by the writer only

	// Writer goroutine only.
	file   vfs.File
	seq    uint64
	size   int64
	failed error
	ok     []*logOp // scratch: the ops of one write that passed checkRecords

	compacting atomic.Bool
	compactWG  sync.WaitGroup
	syncs      atomic.Int64 // fdatasyncs of the log, for tests and metrics
	snapSize   atomic.Int64 // bytes of the newest snapshot
}

func logName(seq uint64) string  { return fmt.Sprintf("%s%0*d", logPrefix, seqDigits, seq) }
func snapName(seq uint64) string { return fmt.Sprintf("%s%0*d", snapPrefix, seqDigits, seq) }

func parseSeq(name, prefix string) (uint64, bool) {
	if !strings.HasPrefix(name, prefix) || len(name) != len(prefix)+seqDigits {
		return 0, false
	}
	n, err := strconv.ParseUint(name[len(prefix):], 10, 64)
	return n, err == nil
}

// logOptions are the offsets log's settings from Config.
type logOptions struct {
	compactBytes int64
	repair       bool // cut a file at a bad record instead of failing to open
}

// openLog recovers dir and starts the writer.
func openLog(fs vfs.FS, dir string, opt logOptions, log zerolog.Logger) (*offsetsLog, error) {
	l := &offsetsLog{
		fs: fs, dir: dir, log: log, compactBytes: opt.compactBytes, repair: opt.repair,
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		state: newLogState(),
	}
	if err := vfs.MkdirAllSync(fs, dir); err != nil {
		return nil, fmt.Errorf("group: create dir: %w", err)
	}
	if err := l.recover(); err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

// recover loads the newest snapshot and replays the logs written since.
// Only a torn tail of the newest log is cut on its own; anything else that
// does not check fails the open, unless repair is set (see doc.go).
func (l *offsetsLog) recover() error {
	names, err := l.fs.List(l.dir)
	if err != nil {
		return fmt.Errorf("group: list dir: %w", err)
	}
	var snap uint64
	var logs []uint64
	for _, n := range names {
		if s, ok := parseSeq(n, snapPrefix); ok && s > snap {
			snap = s
		}
		if s, ok := parseSeq(n, logPrefix); ok {
			logs = append(logs, s)
		}
		if strings.HasSuffix(n, vfs.TmpSuffix) {
			_ = l.fs.Remove(path.Join(l.dir, n)) // an unfinished snapshot
		}
	}
	// As in storage: names a failed directory fsync left undurable must
	// be durable before new commits are appended to them.
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("group: sync dir: %w", err)
	}
	slices.Sort(logs)
	if snap > 0 {
		name := snapName(snap)
		b, err := l.readAll(name)
		if err != nil {
			return err
		}
		good, why := 0, "bad magic"
		if len(b) >= len(snapshotMagic) && string(b[:len(snapshotMagic)]) == snapshotMagic {
			good, why, _ = replay(l.state, b[len(snapshotMagic):], false)
			good += len(snapshotMagic)
		}
		if why != "" {
			if err := l.badRecord(name, b, good, why, false, false); err != nil {
				return err
			}
			b = b[:max(good, len(snapshotMagic))]
		}
		l.snapSize.Store(int64(len(b)))
	}
	l.seq = max(snap, 1)
	var live []uint64
	for _, s := range logs {
		if s < snap {
			_ = l.fs.Remove(path.Join(l.dir, logName(s))) // folded into the snapshot
			continue
		}
		live = append(live, s)
	}
	// The log being written is the last one holding anything: a newer one
	// may exist empty (created by a compaction that then failed to sync
	// the directory, or that had no write yet).
	written := len(live) - 1
	for written > 0 {
		if n, err := l.fileSize(logName(live[written])); err != nil {
			return err
		} else if n > 0 {
			break
		}
		written--
	}
	for i, s := range live {
		b, err := l.readAll(logName(s))
		if err != nil {
			return err
		}
		good, why, torn := replay(l.state, b, true)
		if why != "" {
			if err := l.badRecord(logName(s), b, good, why, i >= written, torn); err != nil {
				return err
			}
		}
		l.seq = s
		l.size = int64(good)
	}
	for _, n := range names {
		if s, ok := parseSeq(n, snapPrefix); ok && s < snap {
			_ = l.fs.Remove(path.Join(l.dir, n))
		}
	}
	name := path.Join(l.dir, logName(l.seq))
	var f vfs.File
	if slices.Contains(live, l.seq) {
		if f, err = l.fs.OpenRW(name); err != nil {
			return fmt.Errorf("group: open log: %w", err)
		}
	} else {
		if f, err = l.fs.Create(name); err != nil {
			return fmt.Errorf("group: create log: %w", err)
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			f.Close()
			return fmt.Errorf("group: sync dir: %w", err)
		}
		l.size = 0
	}
	l.file = f
	return nil
}

// badRecord decides what to do with a file whose record at byte at does
// not check. A torn tail (in the newest log, a record or write that does
// not check with no intact write after it) is what a crash mid-write
// leaves: it was never acknowledged and is cut. Anything else may hide
// acknowledged records: it fails the open, unless the operator asked for
// repair. A cut keeps the cut bytes aside.
func (l *offsetsLog) badRecord(name string, b []byte, at int, why string, newest, tornKind bool) error {
	full := path.Join(l.dir, name)
	aside, err := l.asideName(full, at)
	if err != nil {
		return err
	}
	what := "a snapshot or an older log is never torn"
	torn := false
	if newest && tornKind {
		_, after := intactWriteAfter(b, writeEnd(b, at)-1)
		torn = !after
		what = "not a torn write: intact writes follow it"
	} else if newest {
		what = "not a torn write: its checksum matches"
	}
	switch {
	case torn:
		l.log.Warn().Str("file", full).Int("offset", at).Int("cut", len(b)-at).Str("reason", why).Str("copy", aside).
			Msg("offsets log: cutting a torn tail (an unacknowledged write cut short by a crash)")
	case l.repair:
		l.log.Error().Str("file", full).Int("offset", at).Int("cut", len(b)-at).Str("reason", why).Str("copy", aside).
			Msg("offsets log: repair: cutting the file at a bad record; records after it in this file are lost")
	default:
		return fmt.Errorf("%w: %s at byte %d: %s (%s); records after it may have been acknowledged: "+
			"restore %s from a backup, or open it once with repair, which cuts the file at byte %d and keeps the cut bytes in %s",
			ErrCorrupt, full, at, why, what, l.dir, at, aside)
	}
	return l.cut(full, b, at, aside)
}

// asideName is where a cut of full at byte at keeps the cut bytes:
// <full>.broken-<at>, or with .1, .2, ... appended when an earlier cut at
// the same byte (a repair, then a torn write made after it) kept its copy
// there: no copy is ever overwritten.
func (l *offsetsLog) asideName(full string, at int) (string, error) {
	base := fmt.Sprintf("%s.broken-%d", full, at)
	names, err := l.fs.List(l.dir)
	if err != nil {
		return "", fmt.Errorf("group: list dir: %w", err)
	}
	aside := base
	for i := 1; slices.Contains(names, path.Base(aside)); i++ {
		aside = base + "." + strconv.Itoa(i)
	}
	return aside, nil
}

// cut keeps b[at:] in aside and truncates the file to at (a snapshot keeps
// its magic, so it reads as one without records).
func (l *offsetsLog) cut(full string, b []byte, at int, aside string) error {
	// The copy is durable, name included, before anything is cut.
	if err := vfs.WriteFile(l.fs, aside, b[at:]); err != nil {
		return fmt.Errorf("group: keep the cut bytes of %s: %w", full, err)
	}
	f, err := l.fs.OpenRW(full)
	if err != nil {
		return fmt.Errorf("group: open %s: %w", full, err)
	}
	defer f.Close()
	err = f.Truncate(int64(at))
	if err == nil && strings.HasPrefix(path.Base(full), snapPrefix) && at < len(snapshotMagic) {
		err = f.Truncate(0)
		if err == nil {
			_, err = f.WriteAt([]byte(snapshotMagic), 0)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		return fmt.Errorf("group: cut %s: %w", full, err)
	}
	return nil
}

func (l *offsetsLog) fileSize(name string) (int64, error) {
	f, err := l.fs.Open(path.Join(l.dir, name))
	if err != nil {
		return 0, fmt.Errorf("group: open %s: %w", name, err)
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return 0, fmt.Errorf("group: size %s: %w", name, err)
	}
	return n, nil
}

func (l *offsetsLog) readAll(name string) ([]byte, error) {
	b, err := vfs.ReadFile(l.fs, path.Join(l.dir, name))
	if err != nil {
		return nil, fmt.Errorf("group: read %s: %w", name, err)
	}
	return b, nil
}

// replay applies the records of b to state in order and returns how many
// bytes it accepted; why is empty when that is all of b, else it says what
// is wrong with the record at the returned offset, and torn says whether a
// write cut short could have left it (a frame or write that does not check;
// not a record whose CRC checks but whose body does not decode). Logs
// (writes true) hold writes: a marker, then the records it covers, applied
// all or none.
// Snapshots hold bare records. Records outside a write are accepted in logs
// too (logs written before markers existed).
func replay(state *logState, b []byte, writes bool) (good int, why string, torn bool) {
	pos := 0
	for pos < len(b) {
		body, end, why := readFrame(b, pos)
		if why != "" {
			return pos, why, true
		}
		if body[0] == recWrite {
			if !writes {
				return pos, "write marker outside a log", false
			}
			ext, crc, ok := decodeMarker(body)
			if !ok {
				return pos, "malformed write marker", false
			}
			if ext > len(b)-end {
				return pos, fmt.Sprintf("write of %d bytes runs past the end of the file", ext), true
			}
			recs := b[end : end+ext]
			if crc32.Checksum(recs, castagnoli) != crc {
				return pos, "write CRC mismatch", true
			}
			var applies []func(*logState)
			for p := 0; p < len(recs); {
				rb, e, why := readFrame(recs, p)
				if why == "" && rb[0] == recWrite {
					why = "write marker inside a write"
				}
				if why != "" {
					return pos, fmt.Sprintf("record at byte %d of an intact write: %s", end+p, why), false
				}
				apply, err := decodeRecord(rb)
				if err != nil {
					return pos, fmt.Sprintf("record at byte %d of an intact write: %v", end+p, err), false
				}
				applies = append(applies, apply)
				p = e
			}
			for _, a := range applies {
				a(state)
			}
			pos = end + ext
			continue
		}
		apply, err := decodeRecord(body)
		if err != nil {
			return pos, err.Error(), false
		}
		apply(state)
		pos = end
	}
	return pos, "", false
}

// readFrame checks the record frame at pos of b: whole header, a length
// within MaxRecordBytes and the file, and the CRC. It never reads past b.
func readFrame(b []byte, pos int) (body []byte, end int, why string) {
	if len(b)-pos < recHeaderBytes {
		return nil, 0, "record header cut short by the end of the file"
	}
	n := int(binary.BigEndian.Uint32(b[pos:]))
	if n == 0 || n > MaxRecordBytes {
		return nil, 0, fmt.Sprintf("record length %d out of range", n)
	}
	if n > len(b)-pos-recHeaderBytes {
		return nil, 0, fmt.Sprintf("record of %d bytes runs past the end of the file", n)
	}
	body = b[pos+recHeaderBytes : pos+recHeaderBytes+n]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[pos+4:]) {
		return nil, 0, "record CRC mismatch"
	}
	return body, pos + recHeaderBytes + n, ""
}

// noMarker is the room a write marker takes, filled in by putMarker.
var noMarker [recHeaderBytes + markerBodyBytes]byte

// putMarker writes into m the marker of the records recs that follow it.
func putMarker(m, recs []byte) {
	body := m[recHeaderBytes:]
	body[0] = recWrite
	binary.BigEndian.PutUint32(body[1:], uint32(len(recs)))
	binary.BigEndian.PutUint32(body[5:], crc32.Checksum(recs, castagnoli))
	binary.BigEndian.PutUint32(m, markerBodyBytes)
	binary.BigEndian.PutUint32(m[4:], crc32.Checksum(body, castagnoli))
}

// marker is the write marker that heads recs.
func marker(recs []byte) []byte {
	m := make([]byte, len(noMarker))
	putMarker(m, recs)
	return m
}

func decodeMarker(body []byte) (ext int, crc uint32, ok bool) {
	if len(body) != markerBodyBytes {
		return 0, 0, false
	}
	return int(binary.BigEndian.Uint32(body[1:])), binary.BigEndian.Uint32(body[5:]), true
}

// writeEnd is where the write starting at pos ends if its marker is intact
// (its records may not be), else pos: acknowledged writes can only start
// there or later, never inside a write's own records (whose bytes a client
// chose).
func writeEnd(b []byte, pos int) int {
	body, end, why := readFrame(b, pos)
	if why != "" || body[0] != recWrite {
		return pos
	}
	ext, _, ok := decodeMarker(body)
	if !ok {
		return pos
	}
	return min(end+ext, len(b))
}

// intactWriteAfter reports whether an intact write (a marker whose CRC and
// whose records' CRC check) starts in b after from: proof that what follows
// a bad record was written whole, and maybe acknowledged.
func intactWriteAfter(b []byte, from int) (int, bool) {
	const mlen = recHeaderBytes + markerBodyBytes
	for q := from + 1; q <= len(b)-mlen; q++ {
		if b[q+recHeaderBytes] != recWrite || binary.BigEndian.Uint32(b[q:]) != markerBodyBytes {
			continue
		}
		body := b[q+recHeaderBytes : q+mlen]
		if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[q+4:]) {
			continue
		}
		ext, crc, _ := decodeMarker(body)
		if ext <= len(b)-q-mlen && crc32.Checksum(b[q+mlen:q+mlen+ext], castagnoli) == crc {
			return q, true
		}
	}
	return 0, false
}

// checkRecords verifies that rec is whole records that open accepts:
// written records can always be read back.
func checkRecords(rec []byte) error {
	if len(rec) == 0 {
		return ErrRecordTooLarge // an encoder refused a field (see enc.str)
	}
	for pos := 0; pos < len(rec); {
		if len(rec)-pos < recHeaderBytes {
			return ErrRecordTooLarge
		}
		n := int(binary.BigEndian.Uint32(rec[pos:]))
		if n == 0 || n > MaxRecordBytes || n > len(rec)-pos-recHeaderBytes || rec[pos+recHeaderBytes] == recWrite {
			return ErrRecordTooLarge
		}
		pos += recHeaderBytes + n
	}
	return nil
}

// submit queues a record; done runs on the writer goroutine after the
// record is durable (and applied) or has failed.
func (l *offsetsLog) submit(op *logOp) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		op.done(ErrClosed)
		return
	}
	l.queue = append(l.queue, op)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *offsetsLog) run() {
	defer close(l.done)
	var buf []byte
	for {
		select {
		case <-l.wake:
		case <-l.stop:
			l.mu.Lock()
			ops := l.queue
			l.queue = nil
			l.mu.Unlock()
			if len(ops) > 0 {
				l.write(ops, &buf)
			}
			return
		}
		l.mu.Lock()
		ops := l.queue
		l.queue = nil
		l.mu.Unlock()
		if len(ops) == 0 {
			continue
		}
		l.write(ops, &buf)
		l.maybeCompact()
	}
}

// write appends ops with one pwrite and one fdatasync, then applies them
// and calls their done, in order.
func (l *offsetsLog) write(all []*logOp, buf *[]byte) {
	ops := l.ok[:0]
	for _, op := range all {
		if err := checkRecords(op.rec); err != nil {
			if op.done != nil {
				op.done(err)
			}
			continue
		}
		ops = append(ops, op)
	}
	l.ok = ops[:0]
	defer clear(ops) // no op is kept past its write
	if len(ops) == 0 {
		return
	}
	err := l.failed
	if err == nil {
		// One marker per writeExtentBytes of ops, so that recovery can tell
		// a torn write from damage in the middle of the file.
		b := (*buf)[:0]
		for i := 0; i < len(ops); {
			at := len(b)
			b = append(b, noMarker[:]...)
			ext := 0
			for ; i < len(ops) && (ext == 0 || ext+len(ops[i].rec) <= writeExtentBytes); i++ {
				b = append(b, ops[i].rec...)
				ext += len(ops[i].rec)
			}
			putMarker(b[at:at+len(noMarker)], b[at+len(noMarker):])
		}
		*buf = b
		if cap(b) > keepWriteBufBytes {
			*buf = nil // one huge commit does not pin its size for good
		}
		start := time.Now()
		if _, werr := l.file.WriteAt(b, l.size); werr != nil {
			err = werr
		} else if serr := l.file.Sync(); serr != nil {
			err = serr
		} else {
			l.size += int64(len(b))
			l.syncs.Add(1)
		}
		if took := time.Since(start); took > time.Second {
			l.log.Warn().Dur("took", took).Msg("offsets log: slow fdatasync")
		}
		if err != nil {
			l.log.Error().Err(err).Msg("offsets log: write failed; offset commits fail from now on")
			l.failed = fmt.Errorf("%w: %w", ErrLogFailed, err)
			err = l.failed
		}
	}
	if err == nil {
		l.stateMu.Lock()
		for _, op := range ops {
			if op.apply != nil {
				op.apply(l.state)
			}
		}
		l.stateMu.Unlock()
	}
	for _, op := range ops {
		if op.done != nil {
			op.done(err)
		}
	}
}

// maybeCompact starts a new log and writes a snapshot of the state as of
// its start, in the background, once the log is large.
func (l *offsetsLog) maybeCompact() {
	if l.failed != nil || l.size < l.compactBytes || l.size < 2*l.snapSize.Load() || l.compacting.Load() {
		return
	}
	next := l.seq + 1
	f, err := l.fs.Create(path.Join(l.dir, logName(next)))
	if err == nil {
		if err = l.fs.SyncDir(l.dir); err != nil {
			f.Close()
		}
	}
	if err != nil {
		l.log.Error().Err(err).Msg("offsets log: cannot start a new log; compaction skipped")
		return
	}
	old := l.file
	l.file, l.seq, l.size = f, next, 0
	if err := old.Close(); err != nil {
		l.log.Warn().Err(err).Msg("offsets log: close old log")
	}
	// The state now holds exactly what the logs before next hold.
	l.stateMu.RLock()
	snap := encodeState(l.state)
	l.stateMu.RUnlock()
	l.compacting.Store(true)
	l.compactWG.Add(1)
	go func() {
		defer l.compactWG.Done()
		defer l.compacting.Store(false)
		if err := l.writeSnapshot(next, snap); err != nil {
			l.log.Error().Err(err).Msg("offsets log: snapshot failed; older logs are kept")
		}
	}()
}

// writeSnapshot writes snapshot-seq atomically and removes what it replaces.
func (l *offsetsLog) writeSnapshot(seq uint64, b []byte) error {
	if err := vfs.WriteFile(l.fs, path.Join(l.dir, snapName(seq)), b); err != nil {
		return err
	}
	l.snapSize.Store(int64(len(b)))
	names, err := l.fs.List(l.dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if s, ok := parseSeq(n, logPrefix); ok && s < seq {
			_ = l.fs.Remove(path.Join(l.dir, n))
		}
		if s, ok := parseSeq(n, snapPrefix); ok && s < seq {
			_ = l.fs.Remove(path.Join(l.dir, n))
		}
	}
	return l.fs.SyncDir(l.dir)
}

// close writes what is queued, stops the writer and closes the file.
func (l *offsetsLog) close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	l.compactWG.Wait()
	err := l.file.Close()
	if l.failed != nil {
		return l.failed
	}
	return err
}

// ---- reads (any goroutine) ----

func (l *offsetsLog) offset(group string, tp TP) (Offset, bool) {
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	g := l.state.groups[group]
	if g == nil {
		return Offset{}, false
	}
	o, ok := g.offsets[tp]
	return o, ok
}

// offsets returns a copy of a group's offsets.
func (l *offsetsLog) offsets(group string) map[TP]Offset {
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	g := l.state.groups[group]
	if g == nil {
		return nil
	}
	out := make(map[TP]Offset, len(g.offsets))
	for k, v := range g.offsets {
		out[k] = v
	}
	return out
}

// groups returns the stored groups' metadata.
func (l *offsetsLog) groups() map[string]storedGroup {
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	out := make(map[string]storedGroup, len(l.state.groups))
	for k, g := range l.state.groups {
		out[k] = storedGroup{protocolType: g.protocolType, generation: g.generation, members: maps.Clone(g.members), classic: g.classic}
	}
	return out
}

// ---- encoding ----

// enc builds a record body. A string too long for its u16 length makes
// the encoder bad: record() then returns nil, which the log refuses
// (ErrRecordTooLarge) instead of writing a record it cannot read.
type enc struct {
	b   []byte
	bad bool
}

func (e *enc) u8(v byte)    { e.b = append(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) i32(v int32)  { e.u32(uint32(v)) }
func (e *enc) i64(v int64)  { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }
func (e *enc) str(s string) {
	if len(s) > maxLoggedString {
		e.bad = true
	}
	e.b = binary.BigEndian.AppendUint16(e.b, uint16(len(s)))
	e.b = append(e.b, s...)
}
func (e *enc) lstr(s string) { e.u32(uint32(len(s))); e.b = append(e.b, s...) }

// record frames the body; nil if a field did not fit.
func (e *enc) record() []byte {
	if e.bad {
		return nil
	}
	return frame(e.b)
}

// frame wraps body with its length and CRC.
func frame(body []byte) []byte {
	out := make([]byte, recHeaderBytes, recHeaderBytes+len(body))
	binary.BigEndian.PutUint32(out, uint32(len(body)))
	binary.BigEndian.PutUint32(out[4:], crc32.Checksum(body, castagnoli))
	return append(out, body...)
}

type commitEntry struct {
	tp TP
	o  Offset
}

func encodeCommit(e *enc, group string, entries []commitEntry) {
	e.u8(recCommit)
	e.str(group)
	encodeEntries(e, entries)
}

// encodeEntries appends a count and the entries (commit records, and
// transactions' pending offsets).
func encodeEntries(e *enc, entries []commitEntry) {
	e.u32(uint32(len(entries)))
	for _, c := range entries {
		e.str(c.tp.Topic)
		e.i32(c.tp.Partition)
		e.i64(c.o.Offset)
		e.i32(c.o.LeaderEpoch)
		e.lstr(c.o.Metadata)
		e.i64(c.o.CommitMs)
		e.i64(c.o.ExpireMs)
	}
}

// commitRecord is one record of entries; commitRecords splits them.
func commitRecord(group string, entries []commitEntry) []byte {
	var e enc
	encodeCommit(&e, group, entries)
	return e.record()
}

// commitEntryBytes is an entry's size in a commit record.
func commitEntryBytes(c *commitEntry) int { return 38 + len(c.tp.Topic) + len(c.o.Metadata) }

// commitRecords encodes entries as records of about commitRecordBytes
// each (one entry never splits), appended to dst. Nil if one does not
// encode.
func commitRecords(dst []byte, group string, entries []commitEntry) []byte {
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && (n == 0 || size+commitEntryBytes(&entries[n]) <= commitRecordBytes) {
			size += commitEntryBytes(&entries[n])
			n++
		}
		rec := commitRecord(group, entries[:n])
		if rec == nil {
			return nil
		}
		dst = append(dst, rec...)
		entries = entries[n:]
	}
	return dst
}

func deleteOffsetsRecord(group string, tps []TP) []byte {
	var e enc
	e.u8(recDeleteOffsets)
	e.str(group)
	e.u32(uint32(len(tps)))
	for _, tp := range tps {
		e.str(tp.Topic)
		e.i32(tp.Partition)
	}
	return e.record()
}

func deleteGroupRecord(group string) []byte {
	var e enc
	e.u8(recDeleteGroup)
	e.str(group)
	return e.record()
}

func groupMetaRecord(group, protocolType string, generation int32) []byte {
	var e enc
	e.u8(recGroupMeta)
	e.str(group)
	e.str(protocolType)
	e.i32(generation)
	return e.record()
}

func memberRecord(group, id, instance string, present bool) []byte {
	var e enc
	e.u8(recMember)
	e.str(group)
	e.str(id)
	e.str(instance)
	if present {
		e.u8(1)
	} else {
		e.u8(0)
	}
	return e.record()
}

// encodeState writes a snapshot: the magic, then per group a meta record,
// its members, its classic generation and its offsets in bounded commit
// records (each record of the state was accepted by checkRecords when it
// was written, so the snapshot reads back too).
func encodeState(state *logState) []byte {
	out := []byte(snapshotMagic)
	for name, g := range state.groups {
		out = append(out, groupMetaRecord(name, g.protocolType, g.generation)...)
		for id, instance := range g.members {
			out = append(out, memberRecord(name, id, instance, true)...)
		}
		if g.classic != nil {
			out = append(out, classicRecord(name, g.classic)...)
		}
		if len(g.offsets) == 0 {
			continue
		}
		entries := make([]commitEntry, 0, len(g.offsets))
		for tp, o := range g.offsets {
			entries = append(entries, commitEntry{tp, o})
		}
		out = commitRecords(out, name, entries)
	}
	return encodeTxns(out, state)
}

// Smallest encodings of repeated entries, so a decoder sizes nothing by a
// count its input could not hold.
const (
	minCommitEntryBytes = 38 // topic length u16, partition, offset, epoch, metadata length u32, two times
	minTPBytes          = 6  // topic length u16, partition
	minMemberBytes      = 24 // four string lengths u16, two timeouts, two byte-string lengths u32
)

// decodeRecord parses a record body into the change it makes.
func decodeRecord(body []byte) (func(*logState), error) {
	d := &bin.Reader{B: body}
	typ := d.U8()
	group := d.Str()
	var apply func(*logState)
	switch typ {
	case recCommit:
		entries, err := decodeEntries(d)
		if err != nil {
			return nil, err
		}
		apply = applyCommit(group, entries)
	case recTxnState, recTxnPending, recTxnEnd, recTxnAppend:
		var err error
		if apply, err = decodeTxnRecord(typ, group, d); err != nil {
			return nil, err
		}
	case recDeleteOffsets:
		n := d.U32()
		if int(n) > len(d.B)/minTPBytes {
			return nil, errors.New("group: bad count")
		}
		tps := make([]TP, 0, n)
		for i := uint32(0); i < n && !d.Bad; i++ {
			tps = append(tps, TP{d.Str(), d.I32()})
		}
		apply = applyDeleteOffsets(group, tps)
	case recDeleteGroup:
		apply = applyDeleteGroup(group)
	case recGroupMeta:
		pt := d.Str()
		gen := d.I32()
		apply = applyGroupMeta(group, pt, gen)
	case recMember:
		id := d.Str()
		instance := d.Str()
		apply = applyMember(group, id, instance, d.U8() == 1)
	case recClassic:
		sc, err := decodeClassic(d)
		if err != nil {
			return nil, err
		}
		apply = applyClassic(group, sc)
	default:
		return nil, fmt.Errorf("group: unknown record type %d", typ)
	}
	if d.Bad || len(d.B) != 0 {
		return nil, errors.New("group: malformed record")
	}
	return apply, nil
}

// decodeEntries reads what encodeEntries wrote.
func decodeEntries(d *bin.Reader) ([]commitEntry, error) {
	n := d.U32()
	if int(n) > len(d.B)/minCommitEntryBytes { // allocation bounded by the input
		return nil, errors.New("group: bad count")
	}
	entries := make([]commitEntry, 0, n)
	for i := uint32(0); i < n && !d.Bad; i++ {
		var c commitEntry
		c.tp.Topic = d.Str()
		c.tp.Partition = d.I32()
		c.o.Offset = d.I64()
		c.o.LeaderEpoch = d.I32()
		c.o.Metadata = d.LStr()
		c.o.CommitMs = d.I64()
		c.o.ExpireMs = d.I64()
		entries = append(entries, c)
	}
	return entries, nil
}

func stored(state *logState, group string) *storedGroup {
	g := state.groups[group]
	if g == nil {
		g = &storedGroup{offsets: make(map[TP]Offset)}
		state.groups[group] = g
	}
	return g
}

func applyCommit(group string, entries []commitEntry) func(*logState) {
	return func(state *logState) {
		g := stored(state, group)
		for _, c := range entries {
			g.offsets[c.tp] = c.o
		}
	}
}

func applyDeleteOffsets(group string, tps []TP) func(*logState) {
	return func(state *logState) {
		if g := state.groups[group]; g != nil {
			for _, tp := range tps {
				delete(g.offsets, tp)
			}
		}
	}
}

func applyDeleteGroup(group string) func(*logState) {
	return func(state *logState) { delete(state.groups, group) }
}

func applyGroupMeta(group, protocolType string, generation int32) func(*logState) {
	return func(state *logState) {
		g := stored(state, group)
		g.protocolType, g.generation = protocolType, generation
		if g.classic != nil && g.classic.generation != generation {
			g.classic = nil // a newer generation began; its members are not known yet
		}
	}
}

func applyMember(group, id, instance string, present bool) func(*logState) {
	return func(state *logState) {
		if !present {
			if g := state.groups[group]; g != nil {
				delete(g.members, id)
			}
			return
		}
		g := stored(state, group)
		if g.members == nil {
			g.members = make(map[string]string)
		}
		g.members[id] = instance
	}
}
