package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/klite/klite/internal/hist"
	"github.com/klite/klite/vfs"
)

// A shard owns a set of partitions and their WAL. Its goroutines:
//
//   - writer: takes append requests off the queue, checks idempotent
//     producer state, assigns offsets, builds one chunk per partition in a
//     reused buffer and writes the whole group with one pwrite. Non-durable
//     (acks 0/1) requests complete here.
//   - syncer: takes written groups in order and covers all that are queued
//     with one fdatasync (pipelined: groups written while an fdatasync runs
//     share the next one). Then it publishes the chunks to the partition
//     indexes, moves the high watermarks, completes durable requests and
//     wakes watchers. Acks therefore never precede the fsync covering them.
//   - bg: writes index checkpoints of sealed segments, off the hot path.
//   - prep (while one runs): prepares the next segment file; see prepTask.
//
// Append never blocks: it adds to a mutex-guarded queue whose bytes are
// counted (Config.MaxQueueBytes) and wakes the writer. Close takes what is
// queued and fails it with ErrClosed on its own goroutine; the writer
// fails what it had taken but not yet written. So Close waits only for
// I/O already issued: the group being written and the fdatasyncs of
// written groups.
//
// The writer keeps at most Config.unsyncedBytes (maxUnsyncedBytes) written
// past the end of the fsynced prefix of the active segment: a write that
// would end beyond synced+maxUnsyncedBytes waits for the syncer, and a
// group larger than that is written in pieces, each handed to the syncer.
// Recovery relies on this bound (see doc.go).
//
// A failed write or fsync fails the shard until restart (as Kafka takes a
// log directory offline): every waiting and later append fails with
// ErrStorage and nothing more is written, so no later fsync can be taken to
// cover data an earlier failed fsync may have dropped. Reads of data already
// made durable keep working. Recovery on the next Open cuts the unsynced
// tail back to the last whole chunk.
type shard struct {
	st  *Store
	id  int
	dir string
	log zerolog.Logger

	qmu     sync.Mutex
	queue   []*appendReq  // guarded by qmu: appends not yet taken by the writer
	qbytes  int64         // guarded by qmu: reqCost of queued and taken-but-unwritten appends
	qclosed bool          // guarded by qmu: Close has run; Append fails with ErrClosed
	wake    chan struct{} // cap 1: Append -> writer, the queue became non-empty

	stop     chan struct{} // closed by Close
	syncCh   chan *group   // writer -> syncer, closed by the writer on exit
	free     chan *group   // syncer -> writer
	sealed   chan error    // syncer -> writer: the old segment is durable
	synced   atomic.Int64  // end of the fsynced prefix of the active segment; syncer stores, writer reads
	syncWake chan struct{} // cap 1: syncer -> writer, synced moved or the shard failed
	handed   atomic.Int64  // groups handed to the syncer (tests wait on it)
	bgJobs   chan func()
	calls    chan func() // run on the writer goroutine between groups (restore.go: producer state)
	failed   atomic.Bool
	failOnce sync.Once
	wg       sync.WaitGroup // writer and syncer
	bgDone   chan struct{}

	// activeSince is when the active segment became active (unix ms; 0:
	// before this process started). Writer stores, compaction reads.
	activeSince atomic.Int64

	// Writer goroutine only (recovery and start before it runs, Close
	// after it has exited).
	seg       *segment
	pos       int64 // write position in seg
	nextSegID uint64
	prep      *prepTask // preparing segment nextSegID, or nil
	producers producerMap
	buf       []byte
	pending   []*appendReq // taken off the queue; pending[pendAt:] not yet processed
	pendAt    int
	parts     []*partition
	gen       uint64
	saved     []savedProducer
	txev      []txnEvent // transaction opens and closes of the request being admitted

	// Partitions of the shard with transaction state, for the aborted
	// index in checkpoints (txn.go). Guarded by txnMu; a partition is
	// added once, when its state is created.
	txnMu    sync.Mutex
	txnParts map[uint32]*partition

	// Syncer goroutine only (recovery before it starts).
	ck    []ckEntry // chunks of the active segment, for its checkpoint
	cache cacheWindow

	segsMu sync.Mutex
	segs   []*segment // every open segment, for Close

	// Metrics, observed by the syncer only (metrics.go).
	fsyncHist, batchHist *hist.Hist
}

type appendReq struct {
	p       *partition
	data    []byte
	durable bool
	done    func(AppendResult)
	res     AppendResult
	next    *appendReq // next request of the same partition in the group
	queued  time.Time  // when it was queued; set only while tracing
}

var reqPool = sync.Pool{New: func() any { return new(appendReq) }}

func putReq(r *appendReq) {
	*r = appendReq{}
	reqPool.Put(r)
}

// reqOverheadBytes is what Config.MaxQueueBytes counts per append on top of
// its batches: the request and its chunk header, so a flood of tiny
// appends is bounded too.
const reqOverheadBytes = 128

func reqCost(n int) int64 { return int64(n) + reqOverheadBytes }

type groupKind uint8

const (
	groupData groupKind = iota
	groupSeal           // the segment is full: fsync it, checkpoint it
)

type pubEntry struct {
	p *partition
	e chunkEntry
}

// group is one group commit (or one piece of a large one) on its way from
// the writer to the syncer.
type group struct {
	kind    groupKind
	seg     *segment
	end     int64        // data: write position in seg after this group
	reqs    []*appendReq // durable requests waiting for the fsync
	entries []pubEntry
	txns    []txnEvent  // data: transaction opens and closes, applied when durable
	snap    producerMap // seal: producer state at the end of seg
	written time.Time   // data: when its write ended; set only while tracing
}

type prepResult struct {
	id     uint64
	f      vfs.File
	zeroed int64 // bytes zero-filled
	err    error
}

type savedProducer struct {
	k       producerKey
	old     producerEntry
	created bool
}

func newShard(st *Store, id int) *shard {
	s := &shard{
		st:        st,
		id:        id,
		dir:       filepath.Join(st.cfg.Dir, fmt.Sprintf("shard-%03d", id)),
		log:       st.log.With().Int("shard", id).Logger(),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		syncCh:    make(chan *group, groupsInFlight+1),
		free:      make(chan *group, groupsInFlight),
		sealed:    make(chan error, 1),
		syncWake:  make(chan struct{}, 1),
		bgJobs:    make(chan func(), 4),
		calls:     make(chan func()),
		bgDone:    make(chan struct{}),
		producers: producerMap{},
		fsyncHist: hist.New(FsyncBounds),
		batchHist: hist.New(BatchBounds),
	}
	for range groupsInFlight {
		s.free <- new(group)
	}
	return s
}

func (s *shard) start() {
	s.synced.Store(s.pos) // recovery left everything below pos durable
	if s.pos >= s.prepAt() {
		s.startPrep()
	}
	s.wg.Add(2)
	go s.runWriter()
	go s.runSyncer()
	go s.runBg()
}

// enqueue adds r to the queue unless the store is closed or the queue is
// over Config.MaxQueueBytes. It never blocks.
func (s *shard) enqueue(r *appendReq) error {
	cost := reqCost(len(r.data))
	s.qmu.Lock()
	switch {
	case s.qclosed:
		s.qmu.Unlock()
		return ErrClosed
	case s.qbytes >= s.st.cfg.MaxQueueBytes:
		// Checked before adding, so one append larger than the cap still
		// gets in whenever the queue is below it.
		s.qmu.Unlock()
		return ErrBusy
	}
	wasEmpty := len(s.queue) == 0
	s.queue = append(s.queue, r)
	s.qbytes += cost
	s.qmu.Unlock()
	if wasEmpty {
		select {
		case s.wake <- struct{}{}:
		default: // a wake is already pending
		}
	}
	return nil
}

// closeQueue stops Append and fails everything still queued with ErrClosed
// (on the caller's goroutine), then tells the writer to stop.
func (s *shard) closeQueue() {
	s.qmu.Lock()
	s.qclosed = true
	q := s.queue
	s.queue = nil
	for _, r := range q {
		s.qbytes -= reqCost(len(r.data))
	}
	s.qmu.Unlock()
	for _, r := range q {
		r.res = failResult(ErrClosed)
		s.complete(r)
	}
	close(s.stop)
}

// wait returns once the writer and syncer have finished (everything
// written is fsynced, or failed) and the background goroutines are done.
func (s *shard) wait() {
	s.wg.Wait()
	if t := s.prep; t != nil {
		s.prep = nil
		t.abandon(s)
	}
	close(s.bgJobs)
	<-s.bgDone
}

func (s *shard) closeSegments() {
	s.segsMu.Lock()
	segs := s.segs
	s.segs = nil
	s.segsMu.Unlock()
	for _, seg := range segs {
		seg.release()
	}
}

func (s *shard) addSegment(seg *segment) {
	s.segsMu.Lock()
	s.segs = append(s.segs, seg)
	s.segsMu.Unlock()
	s.st.walBytes.Add(seg.size)
}

// markSealed records that seg is sealed and which partitions' chunks it
// holds, making it a candidate for deletion (retention.go).
func (s *shard) markSealed(seg *segment, entries []ckEntry) {
	keys := summarize(entries)
	s.segsMu.Lock()
	seg.sealed, seg.keys = true, keys
	s.segsMu.Unlock()
	if s.st.cfg.OnSeal != nil {
		s.st.cfg.OnSeal()
	}
}

// fail marks the shard failed; the first failure is logged.
func (s *shard) fail(what string, err error) {
	s.failed.Store(true)
	s.failOnce.Do(func() {
		s.log.Error().Err(err).Str("op", what).Msg("WAL I/O failed: shard is offline until restart; unacknowledged appends fail with KAFKA_STORAGE_ERROR")
	})
	s.wakeWriter()
}

// wakeWriter tells a writer waiting for room (waitRoom) to look again.
func (s *shard) wakeWriter() {
	select {
	case s.syncWake <- struct{}{}:
	default:
	}
}

func failResult(err error) AppendResult {
	return AppendResult{BaseOffset: -1, LogAppendTime: -1, Err: err}
}

func (s *shard) complete(r *appendReq) {
	done, res := r.done, r.res
	putReq(r)
	done(res)
}

func (s *shard) runWriter() {
	defer s.wg.Done()
	defer close(s.syncCh)
	for {
		select {
		case <-s.wake:
		case fn := <-s.calls:
			fn()
			continue
		case <-s.stop:
			return // Close has failed what was queued
		}
		for s.take() {
			for s.pendAt < len(s.pending) {
				select {
				case <-s.stop:
					s.failPending()
					return
				case fn := <-s.calls:
					fn()
				default:
				}
				s.nextGroup()
			}
		}
	}
}

// take swaps the (processed) pending list with the queue.
func (s *shard) take() bool {
	clear(s.pending)
	s.qmu.Lock()
	s.pending, s.queue = s.queue, s.pending[:0]
	s.qmu.Unlock()
	s.pendAt = 0
	return len(s.pending) > 0
}

// refill moves what is queued to the end of pending.
func (s *shard) refill() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if len(s.queue) == 0 {
		return false
	}
	s.pending = append(s.pending, s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	return true
}

// failPending fails the taken but unprocessed requests with ErrClosed.
func (s *shard) failPending() {
	rest := s.pending[s.pendAt:]
	var cost int64
	for _, r := range rest {
		cost += reqCost(len(r.data))
		r.res = failResult(ErrClosed)
		s.complete(r)
	}
	clear(rest)
	s.pendAt = len(s.pending)
	s.qmu.Lock()
	s.qbytes -= cost
	s.qmu.Unlock()
}

// nextGroup processes the pending requests that fit in one group commit
// (up to MaxGroupBytes, at least one), taking more off the queue when the
// pending ones run out first.
func (s *shard) nextGroup() {
	reqs := s.pending[s.pendAt:]
	limit := s.st.cfg.MaxGroupBytes
	n, bound := 0, 0
	var cost int64
	for {
		for ; n < len(reqs); n++ {
			c := len(reqs[n].data) + chunkHeaderBytes
			if n > 0 && bound+c > limit {
				break
			}
			bound += c
			cost += reqCost(len(reqs[n].data))
		}
		if n < len(reqs) || bound >= limit || !s.refill() {
			break
		}
		reqs = s.pending[s.pendAt:]
	}
	s.process(reqs[:n], bound)
	clear(reqs[:n])
	s.pendAt += n
	s.qmu.Lock()
	s.qbytes -= cost
	s.qmu.Unlock()
}

// process admits, places and writes one group; bound is an upper bound of
// its bytes.
func (s *shard) process(reqs []*appendReq, bound int) {
	if s.failed.Load() {
		for _, r := range reqs {
			r.res = failResult(ErrStorage)
			s.complete(r)
		}
		return
	}
	now := s.st.now().UnixMilli()
	if s.pos+int64(bound) > s.st.cfg.SegmentBytes {
		if err := s.st.walRoom(s); err != nil {
			for _, r := range reqs {
				r.res = failResult(err)
				s.complete(r)
			}
			return
		}
		if err := s.roll(now); err != nil {
			s.fail("roll", err)
			for _, r := range reqs {
				r.res = failResult(ErrStorage)
				s.complete(r)
			}
			return
		}
	}
	g := <-s.free
	g.kind, g.seg = groupData, s.seg

	// Bucket the requests by partition, keeping arrival order.
	s.gen++
	s.parts = s.parts[:0]
	for _, r := range reqs {
		p := r.p
		r.next = nil
		if p.gen != s.gen {
			p.gen, p.head = s.gen, r
			s.parts = append(s.parts, p)
		} else {
			p.tail.next = r
		}
		p.tail = r
	}

	// bound counts a header per request; chunks never split a request.
	if cap(s.buf) < bound {
		s.buf = make([]byte, 0, bound)
	}
	buf := s.buf[:0]
	for _, p := range s.parts {
		buf = s.placeChunk(g, p, buf, now)
		p.head, p.tail = nil, nil
	}
	s.buf = buf

	if len(buf) > 0 {
		var t0 time.Time
		if s.tracing() {
			t0 = time.Now()
		}
		if err := s.write(buf); err != nil {
			s.fail("write", err)
			for _, r := range reqs {
				r.res = failResult(ErrStorage)
				s.complete(r)
			}
			g.reset()
			s.free <- g
			return
		}
		s.st.stats.groups.Add(1)
		s.st.stats.appendBytes.Add(int64(len(buf)))
		if s.tracing() {
			g.written = time.Now()
			s.trace(TraceEvent{Kind: TraceWrite, Start: t0, Dur: g.written.Sub(t0), Wait: t0.Sub(oldestQueued(reqs)),
				Bytes: int64(len(buf)), N: len(reqs)})
		}
	}
	s.st.stats.appends.Add(int64(len(reqs)))
	for _, r := range reqs {
		if r.res.Err != nil || !r.durable {
			s.complete(r)
		} else {
			g.reqs = append(g.reqs, r)
		}
	}
	if len(g.entries) == 0 && len(g.reqs) == 0 {
		g.reset()
		s.free <- g
		return
	}
	g.end = s.pos
	s.hand(g)
	if s.prep == nil && s.pos >= s.prepAt() {
		s.startPrep()
	}
}

func (s *shard) hand(g *group) {
	s.syncCh <- g
	s.handed.Add(1)
}

// write writes buf at pos, keeping the written extent within
// unsyncedBytes of the fsynced prefix: a buf larger than that goes out in
// pieces, each handed to the syncer so the prefix can move.
func (s *shard) write(buf []byte) error {
	for len(buf) > 0 {
		n := int(min(int64(len(buf)), s.st.cfg.unsyncedBytes))
		if err := s.waitRoom(s.pos + int64(n)); err != nil {
			return err
		}
		if _, err := s.seg.f.WriteAt(buf[:n], s.pos); err != nil {
			return err
		}
		s.pos += int64(n)
		buf = buf[n:]
		if len(buf) > 0 {
			pg := <-s.free
			pg.kind, pg.seg, pg.end = groupData, s.seg, s.pos
			s.hand(pg)
		}
	}
	return nil
}

// waitRoom waits until a write ending at end stays within unsyncedBytes of
// the fsynced prefix. Everything written is already handed to the syncer,
// so the prefix moves (or the shard fails).
func (s *shard) waitRoom(end int64) error {
	if end <= s.synced.Load()+s.st.cfg.unsyncedBytes {
		return nil
	}
	s.st.stats.unsyncedWaits.Add(1)
	var t0 time.Time
	if s.tracing() {
		t0 = time.Now()
	}
	for end > s.synced.Load()+s.st.cfg.unsyncedBytes {
		if s.failed.Load() {
			return ErrStorage
		}
		<-s.syncWake
	}
	if s.tracing() {
		s.trace(TraceEvent{Kind: TraceWaitRoom, Start: t0, Dur: time.Since(t0)})
	}
	return nil
}

// oldestQueued is the earliest queue time of reqs (tracing only).
func oldestQueued(reqs []*appendReq) time.Time {
	var t time.Time
	for _, r := range reqs {
		if t.IsZero() || r.queued.Before(t) {
			t = r.queued
		}
	}
	return t
}

// placeChunk appends p's chunks (header and admitted batches) to buf. A
// chunk is closed once it reaches MaxChunkBytes, so finding a batch inside
// one (Read walking batch prefixes) stays cheap.
func (s *shard) placeChunk(g *group, p *partition, buf []byte, nowMs int64) []byte {
	c := chunkBuilder{hdrAt: len(buf), base: p.next, maxTs: math.MinInt64, maxTsOff: -1}
	buf = buf[:c.hdrAt+chunkHeaderBytes]
	limit := s.st.cfg.MaxChunkBytes
	logStart := p.logStart.Load()
	lat := p.logAppendTime.Load() // one timestamp type per group (SetTopicConfigs)
	for r := p.head; r != nil; r = r.next {
		r.res = failResult(nil)
		r.res.LogStartOffset = logStart
		switch {
		case p.deleted.Load():
			r.res.Err = ErrUnknownTopic
			continue
		case p.failed.Load():
			r.res.Err = ErrStorage
			continue
		}
		dupBase, err := s.admit(p, r.data, nowMs)
		if err != nil {
			r.res.Err = err
			continue
		}
		if dupBase >= 0 {
			r.res.BaseOffset = dupBase
			continue
		}
		if len(s.txev) > 0 {
			for i := range s.txev {
				s.txev[i].p = p
			}
			g.txns = append(g.txns, s.txev...)
			clear(s.txev)
			s.txev = s.txev[:0]
		}
		if c.count > 0 && len(buf)-c.hdrAt-chunkHeaderBytes+len(r.data) > limit {
			buf = s.closeChunk(g, p, &c, buf)
			c = chunkBuilder{hdrAt: len(buf), base: p.next, maxTs: math.MinInt64, maxTsOff: -1}
			buf = buf[:c.hdrAt+chunkHeaderBytes]
		}
		at := len(buf)
		buf = append(buf, r.data...)
		off := p.next
		r.res.BaseOffset = off
		if lat {
			r.res.LogAppendTime = nowMs
		}
		for b := buf[at:]; len(b) > 0; {
			batch, rest, _ := NextBatch(b) // admit checked the framing
			SetBaseOffset(batch, off)
			SetLeaderEpoch(batch, LeaderEpoch)
			if lat {
				SetLogAppendTime(batch, nowMs)
			}
			if mt := int64(binary.BigEndian.Uint64(batch[batchMaxTimestampAt:])); mt > c.maxTs {
				c.maxTs, c.maxTsOff = mt, off
			}
			off += int64(int32(binary.BigEndian.Uint32(batch[batchLastOffsetDeltaAt:]))) + 1
			c.count++
			b = rest
		}
		p.next = off
	}
	if c.count == 0 {
		return buf[:c.hdrAt]
	}
	return s.closeChunk(g, p, &c, buf)
}

// chunkBuilder tracks the chunk being placed.
type chunkBuilder struct {
	hdrAt           int
	base            int64
	count           uint32
	maxTs, maxTsOff int64
}

func (s *shard) closeChunk(g *group, p *partition, c *chunkBuilder, buf []byte) []byte {
	length := len(buf) - c.hdrAt - chunkHeaderBytes
	putChunkHeader(buf[c.hdrAt:], chunkHeader{key: p.key, count: c.count, base: c.base, last: p.next - 1, length: uint32(length)})
	g.entries = append(g.entries, pubEntry{p: p, e: chunkEntry{
		base: c.base, last: p.next - 1, seg: s.seg,
		pos: s.pos + int64(c.hdrAt) + chunkHeaderBytes, length: int64(length),
		maxTs: c.maxTs, maxTsOff: c.maxTsOff,
	}})
	return buf
}

// admit checks the batches of one request against the idempotent producer
// state and records them, all or nothing. dupBase >= 0 means the request
// is a retry of batches already in the log at that offset: nothing is to
// be written.
//
// Transaction markers (control batches, only ever built by WriteTxnMarker)
// and the first transactional batch of a transaction queue a txnEvent in
// s.txev, kept only when the request is admitted.
func (s *shard) admit(p *partition, data []byte, nowMs int64) (dupBase int64, err error) {
	s.saved = s.saved[:0]
	s.txev = s.txev[:0]
	off := p.next
	nb, ndup := 0, 0
	dupBase = -1
	for b := data; len(b) > 0; {
		batch, rest, err := NextBatch(b)
		if err != nil {
			s.rollback()
			return -1, err
		}
		b = rest
		h, _ := ParseBatchHeader(batch)
		if h.LastOffsetDelta < 0 {
			s.rollback()
			return -1, ErrBatchCount
		}
		nb++
		last := off + int64(h.LastOffsetDelta)
		if h.ProducerID >= 0 && h.Control() {
			if err := s.admitMarker(p, &h, batch, off, nowMs); err != nil {
				s.rollback()
				return -1, err
			}
		} else if h.ProducerID >= 0 {
			lastSeq := incSeq(h.BaseSequence, h.LastOffsetDelta)
			k := producerKey{pid: h.ProducerID, key: p.key}
			e := s.producers[k]
			if e == nil {
				e = &producerEntry{epoch: h.ProducerEpoch}
				s.producers[k] = e
				s.saved = append(s.saved, savedProducer{k: k, created: true})
			} else {
				dup, err := e.checkSeq(h.ProducerEpoch, h.BaseSequence, lastSeq)
				if err != nil {
					s.rollback()
					return -1, err
				}
				if dup != nil {
					if nb == 1 {
						dupBase = dup.base
					}
					ndup++
					continue
				}
				if e.txnOpen {
					if err := txnContinues(e, &h); err != nil {
						s.rollback()
						return -1, err
					}
				}
				s.save(k, e)
			}
			e.record(h.ProducerEpoch, producerBatch{
				firstSeq: h.BaseSequence, lastSeq: lastSeq,
				base: off, last: last,
			}, nowMs)
			if h.Transactional() && !e.txnOpen {
				e.txnOpen, e.txnFirst = true, off
				s.txev = append(s.txev, txnEvent{kind: txnOpened, pid: h.ProducerID, first: off})
			}
		}
		off = last + 1
	}
	if ndup > 0 {
		s.rollback()
		if ndup == nb {
			return dupBase, nil
		}
		return -1, ErrOutOfOrderSequence
	}
	return -1, nil
}

// admitMarker checks a transaction marker at offset off against the
// producer's epoch and applies it (txn.go).
func (s *shard) admitMarker(p *partition, h *BatchHeader, batch []byte, off, nowMs int64) error {
	commit, ok := MarkerCommit(batch)
	if !ok {
		return ErrInvalidTxnMarker
	}
	k := producerKey{pid: h.ProducerID, key: p.key}
	e := s.producers[k]
	switch {
	case e == nil:
		e = &producerEntry{epoch: h.ProducerEpoch}
		s.producers[k] = e
		s.saved = append(s.saved, savedProducer{k: k, created: true})
	case h.ProducerEpoch < e.epoch:
		return ErrInvalidProducerEpoch
	default:
		s.save(k, e)
	}
	closed, first := e.marker(h.ProducerEpoch, nowMs)
	if closed {
		kind := txnAborted
		if commit {
			kind = txnCommitted
		}
		s.txev = append(s.txev, txnEvent{kind: kind, pid: h.ProducerID, first: first, last: off})
	}
	return nil
}

func (s *shard) save(k producerKey, e *producerEntry) {
	for i := range s.saved {
		if s.saved[i].k == k {
			return
		}
	}
	s.saved = append(s.saved, savedProducer{k: k, old: *e})
}

func (s *shard) rollback() {
	for i := len(s.saved) - 1; i >= 0; i-- {
		sv := &s.saved[i]
		if sv.created {
			delete(s.producers, sv.k)
		} else {
			*s.producers[sv.k] = sv.old
		}
	}
	s.saved = s.saved[:0]
}

// roll seals the active segment and switches to the next one, prepared as
// far as its preparation got. It waits until the old segment is fsynced,
// so only the newest segment of a shard can ever hold unsynced (possibly
// torn) bytes.
func (s *shard) roll(nowMs int64) error {
	t0 := time.Now()
	g := <-s.free
	g.kind, g.seg = groupSeal, s.seg
	s.producers.expire(nowMs - s.st.cfg.ProducerExpiry.Milliseconds())
	g.snap = s.producers.clone()
	s.hand(g)
	if err := <-s.sealed; err != nil {
		return err
	}
	sealed := time.Since(t0)
	if s.prep == nil {
		s.startPrep()
	}
	t := s.prep
	s.prep = nil
	close(t.hurry)
	pr := <-t.done
	if pr.err != nil {
		return pr.err
	}
	seg, err := s.install(pr)
	if err != nil {
		return err
	}
	s.seg, s.pos = seg, 0
	s.activeSince.Store(nowMs)
	s.synced.Store(0) // the syncer is idle: the seal was its last group
	s.st.stats.rolls.Add(1)
	if s.tracing() {
		s.trace(TraceEvent{Kind: TraceRoll, Start: t0, Dur: time.Since(t0), Wait: sealed, Bytes: pr.zeroed})
	}
	return nil
}

// install renames a prepared segment into place and makes the name durable
// before anything written to it can be acknowledged.
func (s *shard) install(pr prepResult) (*segment, error) {
	path := segPath(s.dir, pr.id)
	if err := s.st.fs.Rename(prepPath(s.dir, pr.id), path); err != nil {
		_ = pr.f.Close()
		return nil, err
	}
	if err := s.st.fs.SyncDir(s.dir); err != nil {
		_ = pr.f.Close()
		return nil, err
	}
	seg := newSegment(pr.id, path, pr.f)
	seg.size = s.st.cfg.SegmentBytes
	s.addSegment(seg)
	s.nextSegID = pr.id + 1
	return seg, nil
}

// prepAt is the write position in the active segment from which the next
// segment is prepared: late enough that a store that writes little (a
// test, an idle broker) never zero-fills one, early enough that a busy one
// usually finds it fully zeroed at the roll.
func (s *shard) prepAt() int64 { return s.st.cfg.SegmentBytes / 4 }

// prepTask prepares segment id as <id>.wal.prep on its own goroutine:
// create, fallocate (unless PreallocNone), then, for PreallocZeroFill, zeros
// over the file in fsynced zeroStepBytes steps while the WAL is idle
// (prepgate.go). A roll does not wait for the zeros: it closes hurry and
// takes the file as far as it got (the rest reads as zeros too, it is
// only slower to write). Close abandons it: the file is removed.
type prepTask struct {
	id      uint64
	hurry   chan struct{} // closed: stop zero-filling, sync and hand the file over
	dropped atomic.Bool   // set before hurry is closed: remove the file instead
	done    chan prepResult
	zeroed  int64 // bytes zero-filled so far; the preparing goroutine's
}

// zeroStepBytes is one zero-fill step, fsynced on its own: small enough
// that a WAL fdatasync arriving meanwhile waits well under a millisecond
// or two behind it.
const zeroStepBytes = 256 << 10

var zeros = make([]byte, zeroStepBytes)

func (s *shard) startPrep() {
	t := &prepTask{id: s.nextSegID, hurry: make(chan struct{}), done: make(chan prepResult, 1)}
	s.prep = t
	go func() {
		f, err := s.prepare(t.id, t)
		t.done <- prepResult{id: t.id, f: f, zeroed: t.zeroed, err: err}
	}()
}

// abandon stops the preparation and removes its file (Close).
func (t *prepTask) abandon(s *shard) {
	t.dropped.Store(true)
	close(t.hurry)
	if pr := <-t.done; pr.f != nil {
		_ = pr.f.Close()
		_ = s.st.fs.Remove(prepPath(s.dir, pr.id))
	}
}

var errPrepDropped = errors.New("storage: segment preparation abandoned")

// prepare creates segment id as <id>.wal.prep, reserves its space and, when
// t is set and the mode is PreallocZeroFill, zero-fills it. Without t (the
// first segment of a shard, made while Open waits) it only reserves.
func (s *shard) prepare(id uint64, t *prepTask) (vfs.File, error) {
	path := prepPath(s.dir, id)
	f, err := s.st.fs.Create(path)
	if err != nil {
		return nil, err
	}
	size := s.st.cfg.SegmentBytes
	t0 := time.Now()
	if s.st.cfg.Prealloc != PreallocNone {
		err = f.Allocate(0, size)
		if s.tracing() {
			s.trace(TraceEvent{Kind: TracePrepare, Start: t0, Dur: time.Since(t0), Bytes: size})
		}
	}
	if err == nil && t != nil && s.st.cfg.Prealloc == PreallocZeroFill {
		var traceStep func(TraceEvent)
		if s.tracing() {
			traceStep = s.trace
		}
		err = t.zeroFill(&s.st.wal, f, size, traceStep)
	}
	if err == nil && t != nil && t.dropped.Load() {
		err = errPrepDropped
	}
	if err == nil {
		t0 = time.Now()
		err = f.Sync()
		if s.tracing() {
			s.trace(TraceEvent{Kind: TracePrepare, Start: t0, Dur: time.Since(t0)})
		}
	}
	if err != nil {
		_ = f.Close()
		_ = s.st.fs.Remove(path)
		return nil, err
	}
	return f, nil
}

// zeroFill writes zeros over [0, size) until done or hurried, one
// fsynced step at a time while the WAL is idle and within the store's
// zero-fill budget (see prepgate.go).
func (t *prepTask) zeroFill(wal *walActivity, f vfs.File, size int64, trace func(TraceEvent)) error {
	for off := int64(0); off < size; {
		n := min(int64(len(zeros)), size-off)
		if !wal.waitZeroStep(t.hurry, n) {
			return nil
		}
		t0 := time.Now()
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if trace != nil {
			trace(TraceEvent{Kind: TraceZero, Start: t0, Dur: time.Since(t0), Bytes: n})
		}
		off += n
		t.zeroed = off
	}
	return nil
}

func zeroRange(f vfs.File, off, end int64) error {
	for off < end {
		n := min(int64(len(zeros)), end-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

func (g *group) reset() {
	clear(g.reqs)
	clear(g.entries)
	clear(g.txns)
	*g = group{reqs: g.reqs[:0], entries: g.entries[:0], txns: g.txns[:0]}
}

func (s *shard) runSyncer() {
	defer s.wg.Done()
	var batch []*group
	var timer *time.Timer
	linger := s.st.cfg.FsyncLinger
	for {
		g, ok := <-s.syncCh
		if !ok {
			return
		}
		batch = append(batch[:0], g)
		open := true
		if linger > 0 {
			if timer == nil {
				timer = time.NewTimer(linger)
			} else {
				timer.Reset(linger)
			}
		wait:
			for {
				select {
				case g, ok := <-s.syncCh:
					if !ok {
						open = false
						break wait
					}
					batch = append(batch, g)
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
		}
	drain:
		for open {
			select {
			case g, ok := <-s.syncCh:
				if !ok {
					open = false
					break drain
				}
				batch = append(batch, g)
			default:
				break drain
			}
		}
		err := s.syncGroups(batch)
		s.noteBatch(batch)
		var t0, oldest time.Time
		acked := 0
		if s.tracing() {
			t0 = time.Now()
			for _, g := range batch {
				acked += len(g.reqs)
				if !g.written.IsZero() && (oldest.IsZero() || g.written.Before(oldest)) {
					oldest = g.written
				}
			}
		}
		for _, g := range batch {
			s.finish(g, err)
		}
		if s.tracing() && acked > 0 {
			s.trace(TraceEvent{Kind: TraceAck, Start: t0, Dur: time.Since(t0), Wait: t0.Sub(oldest), N: acked})
		}
		s.cache.trim() // after the acks: an fadvise may take a while
		clear(batch)
		s.wakeWriter()
		if !open {
			return
		}
	}
}

// syncGroups fdatasyncs every segment the groups wrote to.
func (s *shard) syncGroups(batch []*group) error {
	if s.failed.Load() {
		return ErrStorage
	}
	var synced [2]*segment
	n := 0
	for _, g := range batch {
		if (n > 0 && synced[0] == g.seg) || (n > 1 && synced[1] == g.seg) {
			continue
		}
		t0 := time.Now()
		s.st.wal.begin()
		err := g.seg.f.Sync()
		s.st.wal.end()
		took := time.Since(t0)
		s.st.stats.fsyncs.Add(1)
		s.st.stats.fsyncNanos.Add(int64(took))
		s.fsyncHist.Observe(int64(took))
		if s.tracing() {
			var moved int64
			if last := batch[len(batch)-1]; last.kind == groupData && last.seg == g.seg {
				moved = last.end - s.synced.Load()
			}
			s.trace(TraceEvent{Kind: TraceSync, Start: t0, Dur: took, Bytes: moved, N: len(batch)})
		}
		if err != nil {
			s.fail("fdatasync", err)
			return fmt.Errorf("%w: %v", ErrStorage, err)
		}
		if took > fsyncWarnAfter {
			s.log.Warn().Dur("took", took).Str("segment", g.seg.path).Msg("slow fdatasync")
		}
		if n < len(synced) {
			synced[n] = g.seg
			n++
		} else {
			synced[0], synced[1] = synced[1], g.seg
		}
	}
	return nil
}

// finish publishes a group after its fsync (err nil) or fails it.
func (s *shard) finish(g *group, err error) {
	switch g.kind {
	case groupSeal:
		if err == nil {
			s.markSealed(g.seg, s.ck)
			s.queueCheckpoint(g.seg, s.ck, g.snap, s.abortedSnapshot())
			s.ck = nil
		}
		s.sealed <- err
	case groupData:
		if err == nil {
			from := s.synced.Load()
			s.synced.Store(g.end)
			s.cache.add(g.seg, from, g.end)
			if len(g.txns) > 0 {
				// Before the high watermarks move past the new data.
				s.applyTxnOpens(g.txns)
			}
			for i := range g.entries {
				pe := &g.entries[i]
				pe.p.idx.add(pe.e)
				pe.p.hwm.Store(pe.e.last + 1)
				pe.p.recordsIn.Add(pe.e.last - pe.e.base + 1)
				pe.p.bytesIn.Add(pe.e.length)
				s.ck = append(s.ck, ckEntry{key: pe.p.key, base: pe.e.base, last: pe.e.last, pos: pe.e.pos,
					length: pe.e.length, maxTs: pe.e.maxTs, maxTsOff: pe.e.maxTsOff})
			}
		}
		if err == nil && len(g.txns) > 0 {
			// After the markers are visible, before the acks.
			s.applyTxnCloses(g.txns)
		}
		for _, r := range g.reqs {
			if err != nil {
				r.res = failResult(ErrStorage)
			}
			s.complete(r)
		}
		if err == nil {
			for i := range g.entries {
				g.entries[i].p.fire()
			}
		}
	}
	g.reset()
	s.free <- g
}

func (s *shard) queueCheckpoint(seg *segment, entries []ckEntry, snap producerMap, aborted []ckAborted) {
	s.bgJobs <- func() {
		t0 := time.Now()
		err := s.writeCheckpoint(seg.id, entries, snap, aborted)
		if s.tracing() {
			s.trace(TraceEvent{Kind: TraceCheckpoint, Start: t0, Dur: time.Since(t0), N: len(entries)})
		}
		if err != nil {
			s.log.Warn().Err(err).Str("segment", seg.path).Msg("index checkpoint not written; the segment will be scanned on restart")
			return
		}
		seg.ckDone.Store(true)
		// Older segments may go now: this checkpoint keeps the producer
		// state they held.
		s.st.maybeFree()
	}
}

func (s *shard) writeCheckpoint(id uint64, entries []ckEntry, snap producerMap, aborted []ckAborted) error {
	prod, np := encodeProducers(snap)
	b := encodeCheckpoint(id, entries, prod, np, aborted)
	return vfs.WriteFile(s.st.fs, idxPath(s.dir, id), b)
}

func (s *shard) runBg() {
	defer close(s.bgDone)
	for job := range s.bgJobs {
		job()
	}
}
