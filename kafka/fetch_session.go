package kafka

// Fetch sessions (KIP-227), for Fetch v7+.
//
// A full fetch (SessionEpoch 0) lists every partition; klite caches them as
// a session and answers with its SessionID. Each later fetch of that
// session (SessionEpoch 1, 2, ...) lists only the partitions whose fetch
// fields changed, plus ForgottenTopics to drop; the broker reads every
// partition of the session and answers only those that changed since the
// last response: records, or a different high watermark, last stable
// offset or log start offset, or an error (an errored partition is sent
// every time until the error clears). Partitions that returned records move
// to the end of the session's order, so a MaxBytes budget rotates over
// them, as in Kafka.
//
// Epochs and errors, as Kafka's FetchManager:
//   - epoch 0: a new full session; a SessionID with it closes that session.
//   - epoch -1: no session; a SessionID with it closes that session, and
//     the fetch is served sessionless (SessionID 0 in the response).
//   - epoch > 0: an unknown SessionID answers FETCH_SESSION_ID_NOT_FOUND, a
//     wrong epoch INVALID_FETCH_SESSION_EPOCH, and a session created with
//     topic IDs (v13+) used with names, or the reverse,
//     FETCH_SESSION_TOPIC_ID_ERROR. An incremental fetch that empties the
//     session closes it and is served sessionless.
//   - a throttled fetch changes the session as usual and answers no
//     partitions (the session's id for an incremental fetch, 0 for a full
//     one, which then creates no session).
//
// The cache (Kafka's FetchSessionCache) holds at most Config.MaxFetchSessions
// sessions (max.incremental.fetch.session.cache.slots, 1000). When it is full
// a new session may take a slot: first from the least recently used session
// idle for over two minutes (Kafka's fixed eviction time), else from the
// smallest session older than two minutes that has fewer partitions than
// the new one, non-privileged before privileged (privileged sessions are
// followers'; klite has none, so every session is non-privileged). Else
// the fetch is answered without a session (SessionID 0), and the client
// keeps sending full fetches.
//
// Differences from Apache Kafka, which bounds the cache by sessions only:
// a full fetch of no partitions creates no session. A session holds at
// most Config.MaxFetchSessionPartitions partitions, and the cache at most
// Config.MaxFetchSessionCacheParts partition slots across its sessions
// (a session's cost, below), so that 1,000 hostile clients of 100,000
// partitions each cannot hold 10 GB. A new session that does not fit the
// budget frees room by the rules above (stale sessions first, then
// smaller evictable ones, as many as it takes, or none at all), else it
// is not created. An incremental fetch that grows its session past the
// budget is judged the same way, as a new session of its new size would
// be (Kafka never refuses growth, but it also never caps the cache); if
// no room can be freed, or the session would pass its own cap, the
// session is closed and the fetch served sessionless, so the client falls
// back to full fetches.
//
// A session's cost is what its memory grows with, in units of one cached
// partition (about 100 bytes, BenchmarkFetchSessionMemory): its partition
// slots and topic slots, which are reused but never shrink (nor do Go
// maps), and its topic names by the 100 bytes (a name in a request may be
// 32 KB long). A session of one topic's 1,000 partitions costs 1,001.
//
// FetchSessionMetrics counts fetches by kind (sessionless, full,
// incremental), sessions cached, their cost and evictions, with atomic adds
// in begin and the eviction paths (klite_fetch_session_* in /metrics).

import (
	"container/list"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	// DefaultMaxFetchSessions is Kafka's
	// max.incremental.fetch.session.cache.slots.
	DefaultMaxFetchSessions = 1000
	// DefaultMaxFetchSessionPartitions caps the partitions of one session.
	DefaultMaxFetchSessionPartitions = 100_000
	// DefaultMaxFetchSessionCacheParts caps the cost of every session
	// cached together: KIP-227's design point of 1,000 consumers of 1,000
	// partitions, about 100 MB.
	DefaultMaxFetchSessionCacheParts = 1_000_000
	// fsUnitBytes is the memory one unit of session cost stands for: a
	// cached partition measures 97 bytes (BenchmarkFetchSessionMemory).
	fsUnitBytes = 100
	// fetchSessionEvictAfter is Kafka's fixed session eviction time: a
	// session idle this long may be evicted by any new one, and a session
	// younger than this is never evicted while in use.
	fetchSessionEvictAfter = 2 * time.Minute
)

// fsNone ends the session's partition list and the free list.
const fsNone = -1

// fsPart is one partition of a session: the client's fetch fields and what
// the last response told the client. 56 bytes.
type fsPart struct {
	topic       int32 // index into fetchSession.topics
	partition   int32
	prev, next  int32 // session order (or the free list, by next)
	maxBytes    int32
	leaderEpoch int32 // CurrentLeaderEpoch
	fetchOffset int64
	// Last sent; -1 high watermark means "send at the next response".
	hwm, lso, logStart int64
}

// fsTopic is a topic of a session.
type fsTopic struct {
	name  string
	id    [16]byte
	parts int32 // partitions of the session in this topic; 0: slot free
}

// fetchSession is one client's cached fetch (KIP-227).
type fetchSession struct {
	id         int32
	byID       bool // created by Fetch v13+: topics are keyed by topic ID
	privileged bool // a follower's (never in klite)

	mu       sync.Mutex
	removed  bool             // taken out of the cache, guarded by mu
	epoch    int32            // the epoch the next fetch must carry, guarded by mu
	topics   []fsTopic        // guarded by mu
	topicIdx map[string]int32 // topic name, or string(id), to topics index, guarded by mu
	parts    []fsPart         // guarded by mu
	idx      map[uint64]int32 // topic index<<32 | partition to parts index, guarded by mu
	head     int32            // first in session order, guarded by mu
	tail     int32            // last in session order, guarded by mu
	free     int32            // free parts slots, by next, guarded by mu
	n        int              // partitions in the session, guarded by mu
	names    int              // bytes of the topic names held, guarded by mu
	gen      uint64           // bumped when a partition is added or removed, guarded by mu

	// Cache bookkeeping, guarded by fetchSessions.mu.
	created  time.Time
	lastUsed time.Time
	size     int // n at the last touch
	cost     int // memCost() at the last touch, counted in fetchSessions.used
	lru      *list.Element
}

// memCost is the session's memory in units of one cached partition (package
// doc). s.mu held (or s unshared).
func (s *fetchSession) memCost() int {
	return len(s.parts) + len(s.topics) + s.names/fsUnitBytes
}

// fetchSessions is the session cache (Kafka's FetchSessionCache).
type fetchSessions struct {
	max       int // sessions at most
	maxParts  int // partitions per session at most
	maxCached int // cost of all sessions at most

	mu   sync.Mutex
	byID map[int32]*fetchSession // guarded by mu
	used int                     // cost of the sessions cached, at most maxCached, guarded by mu
	lru  list.List               // *fetchSession, least recently used first, guarded by mu
	now  func() time.Time        // time.Now; tests set it

	// fetches counts Fetch v7+ requests begun, by fetchSessionKind;
	// evicted counts sessions evicted to make room. Atomic.
	fetches [3]atomic.Uint64
	evicted atomic.Uint64
}

// FetchSessionMetrics are the session cache's counters (KIP-227; Kafka's
// NumIncrementalFetchSessions, NumIncrementalFetchPartitionsCached and
// IncrementalFetchSessionEvictionsPerSec, plus fetches by kind).
type FetchSessionMetrics struct {
	Sessions int // sessions cached
	// Cost is the cache's use in cached-partition units (the budget of
	// -max-fetch-session-cache-partitions).
	Cost int
	// Fetch v7+ requests begun by kind: Sessionless (epoch -1, or an
	// incremental fetch that closed its session), Full (epoch 0) and
	// Incremental (epoch > 0, accepted).
	Sessionless, Full, Incremental uint64
	Evicted                        uint64 // sessions evicted for room
}

// FetchSessionMetrics reads the fetch session counters.
func (h *Handler) FetchSessionMetrics() FetchSessionMetrics {
	c := h.fetchSessions
	c.mu.Lock()
	m := FetchSessionMetrics{Sessions: len(c.byID), Cost: c.used}
	c.mu.Unlock()
	m.Sessionless = c.fetches[fsSessionless].Load()
	m.Full = c.fetches[fsFull].Load()
	m.Incremental = c.fetches[fsIncremental].Load()
	m.Evicted = c.evicted.Load()
	return m
}

func newFetchSessions(max, maxParts, maxCached int) *fetchSessions {
	c := &fetchSessions{max: max, maxParts: maxParts, maxCached: maxCached, byID: make(map[int32]*fetchSession), now: time.Now}
	c.lru.Init()
	return c
}

// len is the number of sessions cached.
func (c *fetchSessions) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}

func (c *fetchSessions) get(id int32) *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byID[id]
}

// remove takes a session out of the cache; false if it was not there.
func (c *fetchSessions) remove(id int32) bool {
	c.mu.Lock()
	s := c.byID[id]
	if s != nil {
		c.removeLocked(s)
	}
	c.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		s.removed = true
		s.mu.Unlock()
	}
	return s != nil
}

func (c *fetchSessions) removeLocked(s *fetchSession) {
	delete(c.byID, s.id)
	c.lru.Remove(s.lru)
	c.used -= s.cost
}

// usedCost is the cost of the sessions cached.
func (c *fetchSessions) usedCost() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// markRemoved tells evicted sessions' later fetches they are gone.
func (c *fetchSessions) markRemoved(evicted []*fetchSession) {
	c.evicted.Add(uint64(len(evicted)))
	for _, s := range evicted {
		s.mu.Lock()
		s.removed = true
		s.mu.Unlock()
	}
}

// touch marks a cached session used now with size partitions and the
// given cost. A session that grew past the budget must free room as a new
// session of its size would; false if it cannot, and the caller removes
// it. The sessions it evicted are returned to be marked removed once the
// caller no longer holds s.mu. A session no longer cached is left alone.
func (c *fetchSessions) touch(s *fetchSession, size, cost int) ([]*fetchSession, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID[s.id] != s {
		return nil, true
	}
	now := c.now()
	var evicted []*fetchSession
	if grow := cost - s.cost; grow > 0 && c.used+grow > c.maxCached {
		if cost > c.maxCached {
			return nil, false
		}
		var ok bool
		if evicted, ok = c.evictLocked(s, s.privileged, size, false, c.used+grow-c.maxCached, now); !ok {
			return nil, false
		}
	}
	s.lastUsed = now
	s.size = size
	c.used += cost - s.cost
	s.cost = cost
	c.lru.MoveToBack(s.lru)
	return evicted, true
}

// add caches a new session of s.n partitions if there is a free slot and
// room in the budget, or they can be freed by eviction. It sets s.id;
// false leaves it out.
func (c *fetchSessions) add(s *fetchSession) bool {
	cost := s.memCost()
	if c.max <= 0 || s.n > c.maxParts || cost > c.maxCached {
		return false
	}
	c.mu.Lock()
	now := c.now()
	var evicted []*fetchSession
	if slot, over := len(c.byID) >= c.max, c.used+cost-c.maxCached; slot || over > 0 {
		var ok bool
		if evicted, ok = c.evictLocked(nil, s.privileged, s.n, slot, over, now); !ok {
			c.mu.Unlock()
			return false
		}
	}
	for {
		s.id = rand.Int32N(math.MaxInt32) + 1
		if c.byID[s.id] == nil {
			break
		}
	}
	s.created, s.lastUsed, s.size, s.cost = now, now, s.n, cost
	c.byID[s.id] = s
	c.used += cost
	s.lru = c.lru.PushBack(s)
	c.mu.Unlock()
	c.markRemoved(evicted)
	return true
}

// evictLocked frees a slot (if slot) and at least over units of cost for
// a session of the given size, privileged or not, by Kafka's rules: the
// least recently used sessions that are stale, then the least valuable
// sessions that may be evicted, each worth less than the newcomer. Worth
// orders by (privileged, size, id); a session may be evicted once it is
// older than fetchSessionEvictAfter, or at any age by a privileged
// newcomer if it is not privileged itself. Kafka frees one slot; a budget
// may take several sessions. It evicts all it needs or none, and returns
// those evicted. self, a cached session growing, is never evicted.
func (c *fetchSessions) evictLocked(self *fetchSession, privileged bool, size int, slot bool, over int, now time.Time) ([]*fetchSession, bool) {
	var victims []*fetchSession
	taken := make(map[*fetchSession]bool)
	done := func() bool { return !slot && over <= 0 }
	take := func(s *fetchSession) {
		victims = append(victims, s)
		taken[s] = true
		slot = false
		over -= s.cost
	}
	for e := c.lru.Front(); e != nil && !done(); e = e.Next() {
		s := e.Value.(*fetchSession)
		if now.Sub(s.lastUsed) <= fetchSessionEvictAfter {
			break
		}
		if s != self {
			take(s)
		}
	}
	if !done() {
		var cands []*fetchSession
		for e := c.lru.Front(); e != nil; e = e.Next() {
			s := e.Value.(*fetchSession)
			old := now.Sub(s.created) > fetchSessionEvictAfter
			if s != self && !taken[s] && (old || privileged && !s.privileged) {
				cands = append(cands, s)
			}
		}
		slices.SortFunc(cands, func(a, b *fetchSession) int {
			if worthLess(a, b) {
				return -1
			}
			return 1
		})
		// A newcomer's id is 0, below every cached id: at equal
		// (privileged, size) it is worth less and evicts nothing. A
		// growing session competes with its own id.
		var id int32
		if self != nil {
			id = self.id
		}
		newcomer := &fetchSession{privileged: privileged, size: size, id: id}
		for _, s := range cands {
			if done() || !worthLess(s, newcomer) {
				break
			}
			take(s)
		}
	}
	if !done() {
		return nil, false
	}
	for _, s := range victims {
		c.removeLocked(s)
	}
	return victims, true
}

// worthLess orders sessions by (privileged, size, id), false before true.
func worthLess(a, b *fetchSession) bool {
	if a.privileged != b.privileged {
		return !a.privileged
	}
	if a.size != b.size {
		return a.size < b.size
	}
	return a.id < b.id
}

// nextFetchEpoch is the epoch after e: 1 follows MaxInt32 (KIP-227).
func nextFetchEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}

// fetchSessionKind is how one fetch uses sessions.
type fetchSessionKind uint8

const (
	fsSessionless fetchSessionKind = iota // SessionID 0, every partition answered
	fsFull                                // creates a session when answered
	fsIncremental                         // answers only changed partitions
)

// fetchSessionCtx is a fetch's session, from begin to the response. A nil
// *fetchSessionCtx is a sessionless fetch.
type fetchSessionCtx struct {
	c    *fetchSessions
	kind fetchSessionKind
	s    *fetchSession // fsIncremental
	byID bool
	// order is, for an incremental fetch, the parts index of each
	// partition read, valid while s.gen is gen.
	order []int32
	gen   uint64
}

// begin applies a fetch's session fields (KIP-227). It returns a Kafka
// error code for the whole fetch, or the fetch's session context, having
// replaced req.Topics by the session's partitions for an incremental fetch.
// req's partitions are already deduplicated.
func (c *fetchSessions) begin(req *kmsg.FetchRequest, version int16) (*fetchSessionCtx, int16) {
	if version < 7 {
		return nil, 0
	}
	byID := version >= 13
	if req.SessionEpoch == 0 || req.SessionEpoch == -1 {
		if req.SessionID != 0 {
			c.remove(req.SessionID)
		}
		if req.SessionEpoch == -1 {
			c.fetches[fsSessionless].Add(1)
			return nil, 0
		}
		c.fetches[fsFull].Add(1)
		return &fetchSessionCtx{c: c, kind: fsFull, byID: byID}, 0
	}
	s := c.get(req.SessionID)
	if s == nil {
		return nil, kerr.FetchSessionIDNotFound.Code
	}
	s.mu.Lock()
	switch {
	case s.removed:
		s.mu.Unlock()
		return nil, kerr.FetchSessionIDNotFound.Code
	case s.epoch != req.SessionEpoch:
		s.mu.Unlock()
		return nil, kerr.InvalidFetchSessionEpoch.Code
	case s.byID != byID:
		s.mu.Unlock()
		return nil, kerr.FetchSessionTopicIDError.Code
	}
	ok := s.update(req, c.maxParts)
	var evicted []*fetchSession
	if ok && s.n > 0 {
		evicted, ok = c.touch(s, s.n, s.memCost())
	}
	if !ok || s.n == 0 {
		// Emptied, or grown past a cap with no room to free: served
		// sessionless from what the request lists.
		s.mu.Unlock()
		c.remove(s.id)
		c.fetches[fsSessionless].Add(1)
		return nil, 0
	}
	c.fetches[fsIncremental].Add(1)
	s.epoch = nextFetchEpoch(s.epoch)
	x := &fetchSessionCtx{c: c, kind: fsIncremental, s: s, byID: byID, gen: s.gen}
	req.Topics, x.order = s.requestTopics()
	s.mu.Unlock()
	c.markRemoved(evicted)
	return x, 0
}

// throttledID is the SessionID of a throttled fetch's empty response.
func (x *fetchSessionCtx) throttledID() int32 {
	if x == nil || x.kind != fsIncremental {
		return 0
	}
	return x.s.id
}

// respond returns the fetch's SessionID. For a full fetch it creates the
// session. For an incremental one it drops from req.Topics and reads the
// partitions that have not changed since the client last heard of them,
// and returns reads cut to match (dropped reads hold no chunks).
func (x *fetchSessionCtx) respond(req *kmsg.FetchRequest, reads []partRead) (int32, []partRead) {
	if x == nil {
		return 0, reads
	}
	switch x.kind {
	case fsFull:
		s := newFetchSession(x.byID, len(reads))
		i := 0
		for ti := range req.Topics {
			t := &req.Topics[ti]
			for pi := range t.Partitions {
				p := s.put(t.Topic, t.TopicID, &t.Partitions[pi])
				s.parts[p].sent(&reads[i])
				i++
			}
		}
		if s.n > 0 && x.c.add(s) {
			return s.id, reads
		}
		return 0, reads
	case fsIncremental:
		return x.s.id, x.s.prune(req, reads, x.order, x.gen)
	}
	return 0, reads
}

func newFetchSession(byID bool, n int) *fetchSession {
	return &fetchSession{
		byID:     byID,
		epoch:    1,
		topicIdx: make(map[string]int32),
		parts:    make([]fsPart, 0, n),
		idx:      make(map[uint64]int32, n),
		head:     fsNone,
		tail:     fsNone,
		free:     fsNone,
	}
}

// sent records what a response told the client about a partition.
func (p *fsPart) sent(pr *partRead) {
	p.hwm, p.lso, p.logStart = pr.res.HighWatermark, pr.res.LastStableOffset, pr.res.LogStartOffset
	if pr.code != 0 {
		p.hwm = -1 // resend once the error clears
	}
}

// changed reports whether a response must carry the partition (Kafka's
// CachedPartition.maybeUpdateResponseData), and records it as sent if so.
func (p *fsPart) changed(pr *partRead) bool {
	if len(pr.res.Chunks) == 0 && pr.code == 0 && p.hwm == pr.res.HighWatermark &&
		p.lso == pr.res.LastStableOffset && p.logStart == pr.res.LogStartOffset {
		return false
	}
	p.sent(pr)
	return true
}

func (s *fetchSession) topicKey(name string, id *[16]byte) string {
	if s.byID {
		return string(id[:])
	}
	return name
}

func partKey(topic, partition int32) uint64 {
	return uint64(uint32(topic))<<32 | uint64(uint32(partition))
}

// lookup finds a partition of the session; fsNone if it is not there.
func (s *fetchSession) lookup(name string, id *[16]byte, partition int32) int32 {
	var ti int32
	var ok bool
	if s.byID {
		ti, ok = s.topicIdx[string(id[:])]
	} else {
		ti, ok = s.topicIdx[name]
	}
	if !ok {
		return fsNone
	}
	if i, ok := s.idx[partKey(ti, partition)]; ok {
		return i
	}
	return fsNone
}

// put adds a partition at the end of the session, or updates its fetch
// fields where it is. It returns its parts index. s.mu held (or s unshared).
func (s *fetchSession) put(name string, id [16]byte, rp *kmsg.FetchRequestTopicPartition) int32 {
	key := s.topicKey(name, &id)
	ti, ok := s.topicIdx[key]
	if !ok {
		ti = -1
		for i := range s.topics {
			if s.topics[i].parts == 0 {
				ti = int32(i)
				break
			}
		}
		if ti < 0 {
			ti = int32(len(s.topics))
			s.topics = append(s.topics, fsTopic{})
		}
		s.topics[ti] = fsTopic{name: name, id: id}
		if s.byID {
			s.topics[ti].name = "" // resolved by ID at each read
		}
		s.names += len(s.topics[ti].name)
		s.topicIdx[key] = ti
	}
	k := partKey(ti, rp.Partition)
	i, ok := s.idx[k]
	if !ok {
		if s.free != fsNone {
			i = s.free
			s.free = s.parts[i].next
		} else {
			i = int32(len(s.parts))
			s.parts = append(s.parts, fsPart{})
		}
		s.parts[i] = fsPart{topic: ti, partition: rp.Partition, hwm: -1, lso: -1, logStart: -1}
		s.idx[k] = i
		s.link(i)
		s.topics[ti].parts++
		s.n++
		s.gen++
	}
	p := &s.parts[i]
	p.fetchOffset, p.maxBytes, p.leaderEpoch = rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch
	return i
}

// link appends parts[i] to the session order.
func (s *fetchSession) link(i int32) {
	p := &s.parts[i]
	p.prev, p.next = s.tail, fsNone
	if s.tail != fsNone {
		s.parts[s.tail].next = i
	} else {
		s.head = i
	}
	s.tail = i
}

// unlink takes parts[i] out of the session order.
func (s *fetchSession) unlink(i int32) {
	p := &s.parts[i]
	if p.prev != fsNone {
		s.parts[p.prev].next = p.next
	} else {
		s.head = p.next
	}
	if p.next != fsNone {
		s.parts[p.next].prev = p.prev
	} else {
		s.tail = p.prev
	}
}

// forget removes a partition from the session, if it is there.
func (s *fetchSession) forget(name string, id *[16]byte, partition int32) {
	i := s.lookup(name, id, partition)
	if i == fsNone {
		return
	}
	p := &s.parts[i]
	ti := p.topic
	delete(s.idx, partKey(ti, partition))
	s.unlink(i)
	p.next = s.free
	s.free = i
	s.n--
	s.gen++
	if s.topics[ti].parts--; s.topics[ti].parts == 0 {
		delete(s.topicIdx, s.topicKey(s.topics[ti].name, &s.topics[ti].id))
		s.names -= len(s.topics[ti].name)
		s.topics[ti] = fsTopic{}
	}
}

// update applies an incremental fetch: its partitions are added or
// updated, then its forgotten topics removed (Kafka's order). False if the
// session would grow past maxParts. s.mu held.
func (s *fetchSession) update(req *kmsg.FetchRequest, maxParts int) bool {
	for ti := range req.Topics {
		t := &req.Topics[ti]
		for pi := range t.Partitions {
			if s.n >= maxParts && s.lookup(t.Topic, &t.TopicID, t.Partitions[pi].Partition) == fsNone {
				return false
			}
			s.put(t.Topic, t.TopicID, &t.Partitions[pi])
		}
	}
	for ti := range req.ForgottenTopics {
		t := &req.ForgottenTopics[ti]
		for _, p := range t.Partitions {
			s.forget(t.Topic, &t.TopicID, p)
		}
	}
	return true
}

// requestTopics lists the session's partitions in session order, as a full
// fetch would; consecutive partitions of a topic share a topic. order is
// the parts index of each. s.mu held.
func (s *fetchSession) requestTopics() (topics []kmsg.FetchRequestTopic, order []int32) {
	ps := make([]kmsg.FetchRequestTopicPartition, s.n)
	order = make([]int32, s.n)
	last := int32(fsNone)
	j := 0
	for i := s.head; i != fsNone; i = s.parts[i].next {
		p := &s.parts[i]
		rp := &ps[j]
		order[j] = i
		j++
		rp.Default()
		rp.Partition, rp.FetchOffset = p.partition, p.fetchOffset
		rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = p.maxBytes, p.leaderEpoch
		if p.topic != last || len(topics) == 0 {
			t := &s.topics[p.topic]
			topics = append(topics, kmsg.FetchRequestTopic{Topic: t.name, TopicID: t.id, Partitions: ps[j-1 : j-1 : s.n]})
			last = p.topic
		}
		ft := &topics[len(topics)-1]
		ft.Partitions = ft.Partitions[:len(ft.Partitions)+1]
	}
	return topics, order
}

// prune drops from req.Topics the partitions the client needs not hear
// about again, records what it is told of the others, and moves partitions
// that returned records to the end of the session. order and gen are what
// begin saw: while gen holds, the i-th partition read is parts[order[i]].
// It returns reads cut to match req.Topics.
func (s *fetchSession) prune(req *kmsg.FetchRequest, reads []partRead, order []int32, gen uint64) []partRead {
	s.mu.Lock()
	defer s.mu.Unlock()
	same := s.gen == gen && len(order) == len(reads)
	i, kept := 0, 0
	topics := req.Topics[:0]
	for ti := range req.Topics {
		t := req.Topics[ti]
		ps := t.Partitions[:0]
		for pi := range t.Partitions {
			pr := &reads[i]
			at := int32(fsNone)
			if same {
				at = order[i]
			} else {
				at = s.lookup(t.Topic, &t.TopicID, t.Partitions[pi].Partition)
			}
			i++
			if at != fsNone && !s.parts[at].changed(pr) {
				continue
			}
			if at != fsNone && len(pr.res.Chunks) > 0 {
				s.unlink(at)
				s.link(at)
			}
			ps = append(ps, t.Partitions[pi])
			reads[kept] = *pr
			kept++
		}
		if len(ps) > 0 {
			t.Partitions = ps
			topics = append(topics, t)
		}
	}
	req.Topics = topics
	return reads[:kept]
}
