package kafka

// Fetch (key 1), versions 4-18.
//
// v4 is the first version whose records are record batch v2. v13+ names
// topics by topic ID (KIP-516): unknown IDs answer UNKNOWN_TOPIC_ID. v15-v18
// only add follower/KRaft fields (ReplicaState, ReplicaDirectoryId, the
// KIP-1166 HighWatermark tag) that a consumer never sets; they are parsed
// and ignored, as on a broker with no followers.
//
// Behaviour:
//   - Partitions are read in request order. Each gets at most
//     min(PartitionMaxBytes, remaining MaxBytes); the first partition that
//     returns data gets at least one whole batch even above both limits
//     (KIP-74). A later partition whose first batch exceeds what remains
//     gets the first bytes of that batch, up to what remains: a partial
//     batch, as Kafka sends (fetch_partial.go).
//   - Offsets outside [logStart, highWatermark] answer OFFSET_OUT_OF_RANGE;
//     offset == highWatermark answers empty records.
//   - HighWatermark, LastStableOffset and LogStartOffset come from storage.
//   - IsolationLevel read_committed (KIP-98): records only below the last
//     stable offset (storage.Store.ReadCommitted), and AbortedTransactions
//     lists the aborted transactions (producer id, first offset) that
//     overlap [FetchOffset, LastStableOffset), from storage's aborted
//     index; the client drops their records and every control batch. A
//     fetch at or past the last stable offset gets no records and
//     long-polls until the high watermark moves (a marker moves it too).
//     read_uncommitted reads to the high watermark with an empty list.
//   - CurrentLeaderEpoch (v9+) above 0, the only leader epoch klite has,
//     answers UNKNOWN_LEADER_EPOCH (KIP-320); -1 skips the check.
//   - A partition listed more than once is served once, as in Kafka (whose
//     fetch data is a map keyed by topic-partition in request order): it keeps
//     the place of its first listing and the fields of its last, and the
//     response names it once.
//   - Long polling: when fewer than MinBytes are available and MaxWaitMs > 0
//     and no partition errored, the fetch watches every partition and a timer,
//     and re-reads when either fires. All of it runs off the event loop.
//     MaxWaitMs is capped by Config.MaxFetchWait. The frame is given back to
//     netloop once parsed, and a waiting fetch whose connection closes is
//     dropped at once: its watchers and timer cancelled, its memory freed.
//   - Records leave by sendfile: the response is encoded with kmsg around a
//     random marker per partition, then the marker is replaced by the
//     storage chunks as file parts (see splice.go).
//
//   - Fetch sessions (KIP-227, v7+): fetch_session.go. An incremental
//     fetch reads and long-polls every partition of its session and answers
//     only those that changed.
//
// Differences from Apache Kafka: Rack-aware
// reads (KIP-392) never redirect (PreferredReadReplica -1). Zstd batches are
// not hidden from fetch versions before 10 (UNSUPPORTED_COMPRESSION_TYPE);
// clients that produce zstd fetch with v10+. AbortedTransactions may name a
// transaction whose records start after the last batch returned (Kafka
// bounds the list by the end of the data read, klite by the last stable
// offset); clients only apply an entry to records they receive.
//
// ACLs (-authorizer): READ on each topic (TOPIC_AUTHORIZATION_FAILED, checked before the
// topic's existence; an unknown topic ID stays UNKNOWN_TOPIC_ID).

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

const fetchKey = 1

func init() { register(fetchKey, 4, 18, (*Handler).fetch) }

// fetchWait is one fetch request, from parse to response, possibly across
// several reads while it long-polls.
type fetchWait struct {
	h        *Handler
	r        *request
	req      *kmsg.FetchRequest
	topics   []fetchTopic // resolved req.Topics, same order
	deadline time.Time
	meter    *rateMeter       // counts the bytes sent against a consumer quota; nil without one
	sess     *fetchSessionCtx // KIP-227 session; nil: sessionless

	mu      sync.Mutex
	state   fetchState  // guarded by mu
	gen     uint64      // wait round, guarded by mu
	cancels []func()    // Watch cancels of this round, guarded by mu
	timer   *time.Timer // guarded by mu
	cp      *connPolls  // set by track, guarded by mu
	closed  bool        // the connection closed: answer nothing, guarded by mu
}

type fetchState uint8

const (
	fetchReading  fetchState = iota // a read is running
	fetchWaiting                    // watching partitions and the timer
	fetchWoken                      // a watch fired; a re-read is starting
	fetchExpiring                   // deadline or Close: the next read answers
	fetchDone                       // answered
)

type fetchTopic struct {
	info     storage.TopicInfo
	found    bool
	internal bool  // an internal topic: an empty log (internal_topics.go)
	code     int16 // error for every partition when !found
}

func (h *Handler) fetch(r *request) {
	req := kmsg.NewPtrFetchRequest()
	if !h.parse(r, req) {
		return
	}
	dedupePartitions(req, r.version >= 13)
	sess, code := h.fetchSessions.begin(req, r.version) // fetch_session.go
	if code != 0 {
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = r.version
		resp.ErrorCode = code
		r.respond(resp)
		return
	}
	var meter *rateMeter
	if t := h.quotaTab.Load(); t != nil {
		var d time.Duration
		if meter, d = h.fetchThrottle(t, r); d > 0 {
			// Over its consumer quota: no data, the throttle at once.
			resp := kmsg.NewPtrFetchResponse()
			resp.Version = r.version
			r.throttleMs = throttleMillis(d)
			resp.ThrottleMillis = r.throttleMs
			resp.SessionID = sess.throttledID()
			r.respond(resp)
			return
		}
	}
	if r.requestThrottle() > 0 {
		// Over its request_percentage: as Kafka, a throttled fetch is
		// answered empty (respond adds the throttle).
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = r.version
		resp.SessionID = sess.throttledID()
		r.respond(resp)
		return
	}
	// Everything the fetch needs is decoded into req (kmsg copies strings;
	// only unknown tagged fields alias the frame, and they are never read),
	// so the frame can go back now rather than after a long poll.
	r.nr.ReleaseFrame()
	r.clientID, r.body = nil, nil
	f := &fetchWait{h: h, r: r, req: req, topics: make([]fetchTopic, len(req.Topics)), meter: meter, sess: sess}
	if req.MaxWaitMillis > 0 {
		wait := min(time.Duration(req.MaxWaitMillis)*time.Millisecond, h.cfg.MaxFetchWait)
		f.deadline = time.Now().Add(wait)
	}
	for i := range req.Topics {
		t := &req.Topics[i]
		ft := &f.topics[i]
		if r.version >= 13 {
			ft.info, ft.found = h.topicByID(storage.TopicID(t.TopicID))
			ft.code = kerr.UnknownTopicID.Code
		} else {
			ft.info, ft.found = h.topic(t.Topic)
			ft.code = kerr.UnknownTopicOrPartition.Code
		}
		ft.internal = ft.found && internalTopic(ft.info.Name)
		name := t.Topic
		if r.version >= 13 {
			name = ft.info.Name
		}
		if (ft.found || r.version < 13) && !h.authorized(r, acl.OpRead, acl.ResourceTopic, name) {
			ft.found, ft.code = false, kerr.TopicAuthorizationFailed.Code
		}
	}
	// Reads may touch the disk: never on the event loop.
	f.submit(f.run)
}

// partRead is what one partition contributes to the response.
type partRead struct {
	code    int16
	res     storage.ReadResult   // Chunks empty when nothing is sent
	aborted []storage.AbortedTxn // read_committed with records: overlapping aborted transactions
}

// run reads every partition and either answers or waits for more data.
func (f *fetchWait) run() {
	if f.r.nr.Context().Err() != nil {
		// The connection closed while this fetch was queued: skip the
		// reads, so work left by closed connections drains fast.
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
	}
	var reads []partRead
	var bytes int64
	var errored bool
	f.mu.Lock()
	skip := f.closed
	f.mu.Unlock()
	if !skip {
		reads, bytes, errored = f.read()
	}

	f.mu.Lock()
	final := f.state == fetchExpiring
	closed := f.closed
	f.mu.Unlock()
	if closed {
		for i := range reads {
			reads[i].res.Release()
		}
		f.finish()
		f.r.close() // netloop drops it: the connection is gone
		return
	}
	minBytes := int64(f.req.MinBytes)
	if final || errored || bytes >= minBytes || f.req.MaxWaitMillis <= 0 || len(reads) == 0 || !time.Now().Before(f.deadline) {
		f.answer(reads)
		return
	}
	// Not enough yet: drop what we read and wait for the watermarks to move.
	after := make([]int64, len(reads))
	for i := range reads {
		after[i] = reads[i].res.HighWatermark
		reads[i].res.Release()
	}
	f.wait(after)
}

// read reads every requested partition within the byte budgets. It returns
// one partRead per partition in request order, the bytes read, and whether
// any partition has an error (which answers at once, as in Kafka).
func (f *fetchWait) read() (reads []partRead, bytes int64, errored bool) {
	h, req := f.h, f.req
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	reads = make([]partRead, 0, n)
	budget := int64(req.MaxBytes)
	committed := req.IsolationLevel == 1
	for ti := range req.Topics {
		t, ft := &req.Topics[ti], &f.topics[ti]
		for pi := range t.Partitions {
			p := &t.Partitions[pi]
			var pr partRead
			switch {
			case !ft.found:
				pr.code = ft.code
			case !partitionOK(&ft.info, p.Partition):
				pr.code = kerr.UnknownTopicOrPartition.Code
			case p.CurrentLeaderEpoch > leaderEpoch:
				pr.code = kerr.UnknownLeaderEpoch.Code
			case ft.internal:
				// An empty log: offset 0 is its end (nothing, and a long
				// poll that only the deadline ends); any other is out of range.
				if p.FetchOffset != 0 {
					pr.code = kerr.OffsetOutOfRange.Code
				}
			default:
				limit := min(int64(p.PartitionMaxBytes), budget)
				if bytes > 0 && limit <= 0 {
					// Out of budget: watermarks only.
					pr.code, pr.res = f.offsetsOnly(ft.info.Name, p.Partition, p.FetchOffset)
					break
				}
				if committed {
					pr.res = h.st.ReadCommitted(ft.info.Name, p.Partition, p.FetchOffset, limit)
				} else {
					pr.res = h.st.Read(ft.info.Name, p.Partition, p.FetchOffset, limit)
				}
				if pr.res.Err != nil {
					pr.code = h.errCode(pr.res.Err)
					pr.res.Release()
					break
				}
				if bytes > 0 && pr.res.Bytes > limit {
					// KIP-74 only lets the first partition with data
					// overshoot: the others get a partial batch (fetch_partial.go).
					truncateChunks(&pr.res, limit)
				}
				if committed && len(pr.res.Chunks) > 0 {
					var err error
					pr.aborted, err = h.st.AbortedTxns(ft.info.Name, p.Partition, p.FetchOffset, pr.res.LastStableOffset)
					if err != nil {
						pr.res.Release()
						pr.res.Chunks, pr.res.Bytes = nil, 0
						pr.code = h.errCode(err)
						break
					}
				}
				bytes += pr.res.Bytes
				budget -= pr.res.Bytes
			}
			if pr.code != 0 {
				errored = true
				pr.res = storage.ReadResult{HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1}
			}
			reads = append(reads, pr)
		}
	}
	return reads, bytes, errored
}

// offsetsOnly fills the watermarks of a partition we have no budget to read.
func (f *fetchWait) offsetsOnly(topic string, partition int32, offset int64) (int16, storage.ReadResult) {
	logStart, hwm, err := f.h.st.Offsets(topic, partition)
	if err != nil {
		return f.h.errCode(err), storage.ReadResult{}
	}
	if offset < logStart || offset > hwm {
		return kerr.OffsetOutOfRange.Code, storage.ReadResult{}
	}
	lso, err := f.h.st.LastStableOffset(topic, partition)
	if err != nil {
		return f.h.errCode(err), storage.ReadResult{}
	}
	return 0, storage.ReadResult{HighWatermark: hwm, LastStableOffset: min(lso, hwm), LogStartOffset: logStart}
}

// wait watches every readable partition past the watermark last seen, and
// arms the deadline timer. Watch may call its fn at once, on this goroutine,
// so no lock is held across it.
func (f *fetchWait) wait(after []int64) {
	f.mu.Lock()
	if f.state == fetchExpiring {
		f.mu.Unlock()
		f.submit(f.run)
		return
	}
	f.state = fetchWaiting
	f.r.polled = true
	f.gen++
	gen := f.gen
	f.mu.Unlock()
	switch f.h.track(f) {
	case trackHandlerOff:
		f.expire()
		return
	case trackConnGone:
		f.mu.Lock()
		f.closed, f.state = true, fetchReading
		f.mu.Unlock()
		f.run() // answers with a close at once
		return
	}
	i := 0
	for ti := range f.req.Topics {
		t, ft := &f.req.Topics[ti], &f.topics[ti]
		for pi := range t.Partitions {
			hwm := after[i]
			i++
			if !ft.found || ft.internal || hwm < 0 {
				continue // nothing to watch: errored, or never written
			}
			cancel := f.h.st.Watch(ft.info.Name, t.Partitions[pi].Partition, hwm, f.wake)
			f.mu.Lock()
			if f.state == fetchWaiting && f.gen == gen {
				f.cancels = append(f.cancels, cancel)
				f.mu.Unlock()
			} else {
				f.mu.Unlock()
				cancel()
			}
		}
	}
	f.mu.Lock()
	if f.state == fetchWaiting && f.gen == gen {
		f.timer = time.AfterFunc(time.Until(f.deadline), f.expire)
	}
	f.mu.Unlock()
}

// wake is a Watch callback: data arrived on some partition. It runs on a
// store goroutine and must not block.
func (f *fetchWait) wake() { f.rearm(fetchWoken) }

// expire answers with whatever is there: deadline passed or handler closing.
func (f *fetchWait) expire() { f.rearm(fetchExpiring) }

func (f *fetchWait) rearm(next fetchState) {
	f.mu.Lock()
	switch {
	case f.state == fetchDone || f.state == fetchExpiring:
		f.mu.Unlock()
		return
	case f.state != fetchWaiting:
		// A read is in progress; make it the last one if we expire.
		if next == fetchExpiring {
			f.state = fetchExpiring
		}
		f.mu.Unlock()
		return
	}
	f.state = next
	cancels := f.detachLocked()
	f.mu.Unlock()
	f.h.untrack(f)
	f.submit(func() {
		for _, c := range cancels {
			c()
		}
		f.mu.Lock()
		if f.state == fetchWoken {
			f.state = fetchReading
		}
		f.mu.Unlock()
		f.run()
	})
}

// detachLocked ends a waiting round: it stops the timer and returns the
// watchers' cancels, to be run once f.mu is released. f.mu held.
func (f *fetchWait) detachLocked() []func() {
	cancels := f.cancels
	f.cancels = nil
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	return cancels
}

// submit runs fn on the handler's fetch runner, under recoverTo.
func (f *fetchWait) submit(fn func()) {
	f.h.fetchRunner.submit(func() {
		defer f.h.recoverTo(f.r)
		defer f.r.workEnd(f.r.workStart()) // each read round is charged, not the waits
		fn()
	})
}

// abandon drops a fetch whose connection closed. A waiting fetch is
// finished here; a read in progress sees closed and finishes itself.
func (f *fetchWait) abandon() {
	f.mu.Lock()
	f.closed = true
	switch f.state {
	case fetchDone:
		f.mu.Unlock()
		return
	case fetchWaiting:
	default:
		f.state = fetchExpiring // no further wait: run closes
		f.mu.Unlock()
		return
	}
	f.state = fetchDone
	cancels := f.detachLocked()
	f.mu.Unlock()
	f.h.untrack(f)
	for _, c := range cancels {
		c()
	}
	f.r.close() // netloop drops it: the connection is gone
}

// finish marks the fetch answered and unregisters it.
func (f *fetchWait) finish() {
	f.mu.Lock()
	f.state = fetchDone
	f.mu.Unlock()
	f.h.untrack(f)
}

// trackedBy returns the connection's poll set the fetch is in, if any.
func (f *fetchWait) trackedBy() *connPolls {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cp
}

// answer encodes and sends the response; the chunks go out as file parts.
func (f *fetchWait) answer(reads []partRead) {
	f.finish()

	req := f.req
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = f.r.version
	resp.SessionID, reads = f.sess.respond(req, reads) // may drop partitions from req and reads
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	slots := make([]kmsg.FetchResponseTopicPartition, len(reads))
	i := 0
	for ti := range req.Topics {
		t := &req.Topics[ti]
		rt := &resp.Topics[ti]
		rt.Default()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		rt.Partitions, slots = slots[:len(t.Partitions):len(t.Partitions)], slots[len(t.Partitions):]
		for pi := range t.Partitions {
			rp := &rt.Partitions[pi]
			rp.Default()
			pr := &reads[i]
			i++
			rp.Partition = t.Partitions[pi].Partition
			rp.ErrorCode = pr.code
			rp.HighWatermark = pr.res.HighWatermark
			rp.LastStableOffset = pr.res.LastStableOffset
			rp.LogStartOffset = pr.res.LogStartOffset
			if rp.ErrorCode == 0 {
				// Empty, not null, when nothing overlapping was aborted.
				rp.AbortedTransactions = abortedList(pr.aborted)
			}
		}
	}
	if f.meter != nil {
		var n int64
		for i := range reads {
			n += int64(reads[i].res.Bytes)
		}
		f.meter.record(monoNow(), float64(n))
	}
	sendSpliced(f.r, resp, reads)
}

// noAborted is the empty AbortedTransactions list, shared (never written).
var noAborted = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}

// abortedList converts storage's aborted transactions for the response.
func abortedList(as []storage.AbortedTxn) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	if len(as) == 0 {
		return noAborted
	}
	out := make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, len(as))
	for i, a := range as {
		out[i].Default()
		out[i].ProducerID, out[i].FirstOffset = a.ProducerID, a.FirstOffset
	}
	return out
}

// fetchPartKey names a partition of a fetch: by topic ID from v13, by name before.
type fetchPartKey struct {
	id    [16]byte
	name  string
	index int32
}

// dedupeLinearMax: up to this many partitions duplicates are looked for by
// comparing pairs, which allocates nothing; above it a map is cheaper.
const dedupeLinearMax = 16

// hasDuplicates reports whether a partition is listed twice among n.
func hasDuplicates(req *kmsg.FetchRequest, n int, key func(*kmsg.FetchRequestTopic, *kmsg.FetchRequestTopicPartition) fetchPartKey) bool {
	if n <= dedupeLinearMax {
		var keys [dedupeLinearMax]fetchPartKey
		i := 0
		for ti := range req.Topics {
			t := &req.Topics[ti]
			for pi := range t.Partitions {
				k := key(t, &t.Partitions[pi])
				for _, seen := range keys[:i] {
					if seen == k {
						return true
					}
				}
				keys[i] = k
				i++
			}
		}
		return false
	}
	seen := make(map[fetchPartKey]struct{}, n)
	for ti := range req.Topics {
		t := &req.Topics[ti]
		for pi := range t.Partitions {
			k := key(t, &t.Partitions[pi])
			if _, ok := seen[k]; ok {
				return true
			}
			seen[k] = struct{}{}
		}
	}
	return false
}

// dedupePartitions collapses partitions listed more than once, as Kafka
// does: one entry per partition at the place of its first listing, with
// the fields of its last. Consecutive partitions of one topic share a topic
// entry. A request without duplicates is left as it is.
func dedupePartitions(req *kmsg.FetchRequest, byID bool) {
	key := func(t *kmsg.FetchRequestTopic, p *kmsg.FetchRequestTopicPartition) fetchPartKey {
		if byID {
			return fetchPartKey{id: t.TopicID, index: p.Partition}
		}
		return fetchPartKey{name: t.Topic, index: p.Partition}
	}
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	if n < 2 {
		return
	}
	if !hasDuplicates(req, n, key) {
		return
	}
	type entry struct {
		t *kmsg.FetchRequestTopic
		p kmsg.FetchRequestTopicPartition
	}
	index := make(map[fetchPartKey]int, n)
	entries := make([]entry, 0, n)
	for ti := range req.Topics {
		t := &req.Topics[ti]
		for pi := range t.Partitions {
			k := key(t, &t.Partitions[pi])
			if at, ok := index[k]; ok {
				entries[at].p = t.Partitions[pi] // the last listing's fields win
				continue
			}
			index[k] = len(entries)
			entries = append(entries, entry{t: t, p: t.Partitions[pi]})
		}
	}
	var topics []kmsg.FetchRequestTopic
	for i := range entries {
		e := &entries[i]
		if last := len(topics) - 1; last < 0 || topics[last].Topic != e.t.Topic || topics[last].TopicID != e.t.TopicID {
			t := *e.t
			t.Partitions = nil
			topics = append(topics, t)
		}
		last := &topics[len(topics)-1]
		last.Partitions = append(last.Partitions, e.p)
	}
	req.Topics = topics
}

// leaderEpoch is the leader epoch of every partition: one broker, no
// elections. It is the epoch storage stamps on every batch.
const leaderEpoch = storage.LeaderEpoch
