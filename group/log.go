package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

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

	recHeaderBytes = 8 // length u32 + CRC-32C u32
	snapshotMagic  = "KLGSNAP1"
	logPrefix      = "log-"
	snapPrefix     = "snapshot-"
	seqDigits      = 20

	// maxRecordBytes bounds one record on recovery; a length above it is a
	// torn or corrupt header, not a record to allocate for.
	maxRecordBytes = 64 << 20
)

var (
	// ErrLogFailed fails every commit after a write or fdatasync error.
	ErrLogFailed = errors.New("group: offsets log failed")
	// ErrClosed is returned for commits submitted after Close.
	ErrClosed = errors.New("group: closed")
	// ErrCorruptSnapshot means a snapshot that was renamed into place does not
	// read back: an operator must look.
	ErrCorruptSnapshot = errors.New("group: corrupt offsets snapshot")
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
	members      map[string]string // consumer-protocol member id -> instance id
	classic      *storedClassic    // last completed classic generation with members; nil when none (immutable once stored)
}

// logOp is one record waiting for the writer.
type logOp struct {
	rec   []byte
	apply func(map[string]*storedGroup) // under stateMu, after fdatasync
	done  func(error)
}

// offsetsLog is the durable store of committed offsets and group metadata.
type offsetsLog struct {
	fs           vfs.FS
	dir          string
	log          zerolog.Logger
	compactBytes int64

	mu     sync.Mutex
	queue  []*logOp // guarded by mu
	closed bool     // guarded by mu
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}

	stateMu sync.RWMutex
	state   map[string]*storedGroup // guarded by stateMu; written by the writer only

	// Writer goroutine only.
	file   vfs.File
	seq    uint64
	size   int64
	failed error

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

// openLog recovers dir and starts the writer.
func openLog(fs vfs.FS, dir string, compactBytes int64, log zerolog.Logger) (*offsetsLog, error) {
	l := &offsetsLog{
		fs: fs, dir: dir, log: log, compactBytes: compactBytes,
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		state: make(map[string]*storedGroup),
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
	if snap > 0 {
		b, err := l.readAll(snapName(snap))
		if err != nil {
			return err
		}
		if len(b) < len(snapshotMagic) || string(b[:len(snapshotMagic)]) != snapshotMagic {
			return fmt.Errorf("%w: %s: bad magic", ErrCorruptSnapshot, snapName(snap))
		}
		good, err := l.replay(b[len(snapshotMagic):])
		if err != nil || good != len(b)-len(snapshotMagic) {
			return fmt.Errorf("%w: %s: bad record at %d", ErrCorruptSnapshot, snapName(snap), good+len(snapshotMagic))
		}
		l.snapSize.Store(int64(len(b)))
	}
	l.seq = max(snap, 1)
	for _, s := range logs {
		if s < snap {
			_ = l.fs.Remove(path.Join(l.dir, logName(s))) // folded into the snapshot
			continue
		}
		b, err := l.readAll(logName(s))
		if err != nil {
			return err
		}
		good, _ := l.replay(b)
		if good != len(b) {
			if err := l.cutTail(s, b, good); err != nil {
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
	exists := false
	for _, s := range logs {
		exists = exists || s == l.seq
	}
	var f vfs.File
	if exists {
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

// cutTail keeps a copy of a log whose tail does not parse and truncates it
// to its last whole record. A torn tail is what a crash mid-write leaves.
func (l *offsetsLog) cutTail(seq uint64, b []byte, good int) error {
	name := path.Join(l.dir, logName(seq))
	l.log.Warn().Str("file", name).Int("kept", good).Int("cut", len(b)-good).
		Msg("offsets log: cutting a torn tail; a copy is kept as .broken")
	cp, err := l.fs.Create(name + ".broken")
	if err == nil {
		_, err = cp.WriteAt(b, 0)
		if err == nil {
			err = cp.Sync()
		}
		cp.Close()
	}
	if err != nil {
		return fmt.Errorf("group: keep copy of torn log: %w", err)
	}
	f, err := l.fs.OpenRW(name)
	if err != nil {
		return fmt.Errorf("group: open log: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(int64(good)); err != nil {
		return fmt.Errorf("group: truncate torn log: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("group: sync truncated log: %w", err)
	}
	return l.fs.SyncDir(l.dir)
}

func (l *offsetsLog) readAll(name string) ([]byte, error) {
	f, err := l.fs.Open(path.Join(l.dir, name))
	if err != nil {
		return nil, fmt.Errorf("group: open %s: %w", name, err)
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("group: size %s: %w", name, err)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && n > 0 {
		return nil, fmt.Errorf("group: read %s: %w", name, err)
	}
	return b, nil
}

// replay applies every whole, valid record of b and returns how many bytes
// they take. A record that does not check stops the replay.
func (l *offsetsLog) replay(b []byte) (int, error) {
	pos := 0
	for pos+recHeaderBytes <= len(b) {
		n := int(binary.BigEndian.Uint32(b[pos:]))
		if n == 0 || n > maxRecordBytes || pos+recHeaderBytes+n > len(b) {
			break
		}
		body := b[pos+recHeaderBytes : pos+recHeaderBytes+n]
		if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[pos+4:]) {
			break
		}
		apply, err := decodeRecord(body)
		if err != nil {
			break
		}
		apply(l.state)
		pos += recHeaderBytes + n
	}
	if pos != len(b) {
		return pos, errors.New("group: bad record")
	}
	return pos, nil
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
func (l *offsetsLog) write(ops []*logOp, buf *[]byte) {
	err := l.failed
	if err == nil {
		b := (*buf)[:0]
		for _, op := range ops {
			b = append(b, op.rec...)
		}
		*buf = b
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
	g := l.state[group]
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
	g := l.state[group]
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
	out := make(map[string]storedGroup, len(l.state))
	for k, g := range l.state {
		out[k] = storedGroup{protocolType: g.protocolType, generation: g.generation, members: maps.Clone(g.members), classic: g.classic}
	}
	return out
}

// ---- encoding ----

type enc struct{ b []byte }

func (e *enc) u8(v byte)    { e.b = append(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) i32(v int32)  { e.u32(uint32(v)) }
func (e *enc) i64(v int64)  { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }
func (e *enc) str(s string) {
	e.b = binary.BigEndian.AppendUint16(e.b, uint16(len(s)))
	e.b = append(e.b, s...)
}
func (e *enc) lstr(s string) { e.u32(uint32(len(s))); e.b = append(e.b, s...) }

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

func commitRecord(group string, entries []commitEntry) []byte {
	var e enc
	encodeCommit(&e, group, entries)
	return frame(e.b)
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
	return frame(e.b)
}

func deleteGroupRecord(group string) []byte {
	var e enc
	e.u8(recDeleteGroup)
	e.str(group)
	return frame(e.b)
}

func groupMetaRecord(group, protocolType string, generation int32) []byte {
	var e enc
	e.u8(recGroupMeta)
	e.str(group)
	e.str(protocolType)
	e.i32(generation)
	return frame(e.b)
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
	return frame(e.b)
}

// encodeState writes a snapshot: the magic, then per group a meta record and
// a commit record.
func encodeState(state map[string]*storedGroup) []byte {
	out := []byte(snapshotMagic)
	for name, g := range state {
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
		out = append(out, commitRecord(name, entries)...)
	}
	return out
}

type dec struct {
	b   []byte
	bad bool
}

func (d *dec) take(n int) []byte {
	if d.bad || n < 0 || len(d.b) < n {
		d.bad = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
func (d *dec) u8() byte {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}
func (d *dec) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}
func (d *dec) i32() int32 { return int32(d.u32()) }
func (d *dec) i64() int64 {
	if b := d.take(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}
func (d *dec) str() string {
	n := 0
	if b := d.take(2); b != nil {
		n = int(binary.BigEndian.Uint16(b))
	}
	return string(d.take(n))
}
func (d *dec) lstr() string { return string(d.take(int(d.u32()))) }

// decodeRecord parses a record body into the change it makes.
func decodeRecord(body []byte) (func(map[string]*storedGroup), error) {
	d := &dec{b: body}
	typ := d.u8()
	group := d.str()
	var apply func(map[string]*storedGroup)
	switch typ {
	case recCommit:
		n := d.u32()
		if int(n) > len(d.b) {
			return nil, errors.New("group: bad count")
		}
		entries := make([]commitEntry, 0, n)
		for i := uint32(0); i < n && !d.bad; i++ {
			var c commitEntry
			c.tp.Topic = d.str()
			c.tp.Partition = d.i32()
			c.o.Offset = d.i64()
			c.o.LeaderEpoch = d.i32()
			c.o.Metadata = d.lstr()
			c.o.CommitMs = d.i64()
			c.o.ExpireMs = d.i64()
			entries = append(entries, c)
		}
		apply = applyCommit(group, entries)
	case recDeleteOffsets:
		n := d.u32()
		if int(n) > len(d.b) {
			return nil, errors.New("group: bad count")
		}
		tps := make([]TP, 0, n)
		for i := uint32(0); i < n && !d.bad; i++ {
			tps = append(tps, TP{d.str(), d.i32()})
		}
		apply = applyDeleteOffsets(group, tps)
	case recDeleteGroup:
		apply = applyDeleteGroup(group)
	case recGroupMeta:
		pt := d.str()
		gen := d.i32()
		apply = applyGroupMeta(group, pt, gen)
	case recMember:
		id := d.str()
		instance := d.str()
		apply = applyMember(group, id, instance, d.u8() == 1)
	case recClassic:
		sc, err := decodeClassic(d)
		if err != nil {
			return nil, err
		}
		apply = applyClassic(group, sc)
	default:
		return nil, fmt.Errorf("group: unknown record type %d", typ)
	}
	if d.bad || len(d.b) != 0 {
		return nil, errors.New("group: malformed record")
	}
	return apply, nil
}

func stored(state map[string]*storedGroup, group string) *storedGroup {
	g := state[group]
	if g == nil {
		g = &storedGroup{offsets: make(map[TP]Offset)}
		state[group] = g
	}
	return g
}

func applyCommit(group string, entries []commitEntry) func(map[string]*storedGroup) {
	return func(state map[string]*storedGroup) {
		g := stored(state, group)
		for _, c := range entries {
			g.offsets[c.tp] = c.o
		}
	}
}

func applyDeleteOffsets(group string, tps []TP) func(map[string]*storedGroup) {
	return func(state map[string]*storedGroup) {
		if g := state[group]; g != nil {
			for _, tp := range tps {
				delete(g.offsets, tp)
			}
		}
	}
}

func applyDeleteGroup(group string) func(map[string]*storedGroup) {
	return func(state map[string]*storedGroup) { delete(state, group) }
}

func applyGroupMeta(group, protocolType string, generation int32) func(map[string]*storedGroup) {
	return func(state map[string]*storedGroup) {
		g := stored(state, group)
		g.protocolType, g.generation = protocolType, generation
		if g.classic != nil && g.classic.generation != generation {
			g.classic = nil // a newer generation began; its members are not known yet
		}
	}
}

func applyMember(group, id, instance string, present bool) func(map[string]*storedGroup) {
	return func(state map[string]*storedGroup) {
		if !present {
			if g := state[group]; g != nil {
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
