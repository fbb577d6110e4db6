package kafka

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

// sessParts lists a fetch response's partitions as "topic/partition:records".
func sessParts(resp *kmsg.FetchResponse) []string {
	var out []string
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out = append(out, fmt.Sprintf("%s/%d:%d:%d", t.Topic, p.Partition, len(p.RecordBatches), p.ErrorCode))
		}
	}
	return out
}

func sessFetch(hs *harness, version int16, id, epoch int32, parts ...fetchPart) *kmsg.FetchResponse {
	req := fetchReq(hs, version, 0, 0, 1<<20, parts...)
	req.SessionID, req.SessionEpoch = id, epoch
	return roundTrip[*kmsg.FetchResponse](hs, req)
}

func TestFetchSessionIncremental(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 3, nil)
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 1, payload: 10}))

	full := sessFetch(hs, 12, 0, 0, fetchPart{"t", 0, 0, 1 << 20}, fetchPart{"t", 1, 0, 1 << 20}, fetchPart{"t", 2, 0, 1 << 20})
	id := full.SessionID
	if full.ErrorCode != 0 || id <= 0 || len(sessParts(full)) != 3 {
		t.Fatalf("full fetch: id %d, %v", id, sessParts(full))
	}
	// The client moves partition 0 to its next offset; nothing changed.
	if resp := sessFetch(hs, 12, id, 1, fetchPart{"t", 0, 1, 1 << 20}); resp.SessionID != id || len(resp.Topics) != 0 {
		t.Fatalf("incremental without changes: id %d, %v", resp.SessionID, sessParts(resp))
	}
	// New data on partition 2 only.
	hs.produceTo("t", 2, makeBatch(batchOpts{records: 1, payload: 10}))
	resp := sessFetch(hs, 12, id, 2)
	if got := sessParts(resp); !slices.Equal(got, []string{"t/2:" + fmt.Sprint(len(hs.partitionBytes("t", 2))) + ":0"}) {
		t.Fatalf("incremental after produce to 2: %v", got)
	}
	// The client did not move partition 2's offset: its records come
	// again (the session keeps the client's offsets, not the broker's).
	if got := sessParts(sessFetch(hs, 12, id, 3)); len(got) != 1 {
		t.Fatalf("unmoved partition 2: %v", got)
	}
	if got := sessParts(sessFetch(hs, 12, id, 4, fetchPart{"t", 2, 1, 1 << 20})); len(got) != 0 {
		t.Fatalf("partition 2 moved: %v", got)
	}

	// Errors for the whole fetch.
	for _, c := range []struct {
		version     int16
		id, epoch   int32
		code        int16
		description string
	}{
		{12, id + 1, 5, kerr.FetchSessionIDNotFound.Code, "unknown id"},
		{12, id, 4, kerr.InvalidFetchSessionEpoch.Code, "stale epoch"},
		{12, id, 9, kerr.InvalidFetchSessionEpoch.Code, "future epoch"},
		{13, id, 5, kerr.FetchSessionTopicIDError.Code, "topic IDs on a session of names"},
		{12, 0, 3, kerr.FetchSessionIDNotFound.Code, "epoch without id"},
	} {
		resp := sessFetch(hs, c.version, c.id, c.epoch)
		if resp.ErrorCode != c.code || resp.SessionID != 0 || len(resp.Topics) != 0 {
			t.Fatalf("%s: %+v", c.description, resp)
		}
	}
	// The errors left the session as it was.
	if resp := sessFetch(hs, 12, id, 5); resp.ErrorCode != 0 || resp.SessionID != id {
		t.Fatalf("epoch 5 after errors: %+v", resp)
	}

	// Forgotten topics: partition 1 leaves, and its data no longer comes.
	req := fetchReq(hs, 12, 0, 0, 1<<20)
	req.SessionID, req.SessionEpoch = id, 6
	req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: "t", Partitions: []int32{1}}}
	if resp := roundTrip[*kmsg.FetchResponse](hs, req); len(resp.Topics) != 0 {
		t.Fatalf("forget: %v", sessParts(resp))
	}
	hs.produceTo("t", 1, makeBatch(batchOpts{records: 1, payload: 10}))
	if got := sessParts(sessFetch(hs, 12, id, 7)); len(got) != 0 {
		t.Fatalf("forgotten partition answered: %v", got)
	}
	// Forgetting the rest empties the session: served sessionless, closed.
	req.SessionEpoch = 8
	req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: "t", Partitions: []int32{0, 2}}}
	if resp := roundTrip[*kmsg.FetchResponse](hs, req); resp.SessionID != 0 || resp.ErrorCode != 0 {
		t.Fatalf("emptied session: %+v", resp)
	}
	if resp := sessFetch(hs, 12, id, 9); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("emptied session still there: %+v", resp)
	}
	if n := hs.h.fetchSessions.len(); n != 0 {
		t.Fatalf("%d sessions cached", n)
	}
}

// Epoch -1 with an id closes that session and serves the fetch without
// one; epoch 0 with an id closes it and opens another.
func TestFetchSessionClose(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	p := fetchPart{"t", 0, 0, 1 << 20}
	id := sessFetch(hs, 12, 0, 0, p).SessionID
	resp := sessFetch(hs, 12, id, 0, p)
	if resp.SessionID == 0 || resp.SessionID == id || len(resp.Topics) != 1 {
		t.Fatalf("epoch 0 with id %d: %+v", id, resp)
	}
	if r := sessFetch(hs, 12, id, 1); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("replaced session still there: %+v", r)
	}
	id = resp.SessionID
	resp = sessFetch(hs, 12, id, -1, p)
	if resp.SessionID != 0 || resp.ErrorCode != 0 || len(resp.Topics) != 1 {
		t.Fatalf("epoch -1: %+v", resp)
	}
	if r := sessFetch(hs, 12, id, 1); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session still there: %+v", r)
	}
	if n := hs.h.fetchSessions.len(); n != 0 {
		t.Fatalf("%d sessions cached", n)
	}
	// Versions before 7 have no session fields: never a session.
	if r := sessFetch(hs, 6, 0, -1, p); r.SessionID != 0 || len(r.Topics) != 1 {
		t.Fatalf("v6: %+v", r)
	}
}

// v13+: sessions keyed by topic ID; a deleted topic's partition answers its
// error at every fetch until the client forgets it.
func TestFetchSessionTopicIDs(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("a", 1, nil)
	hs.createTopic("b", 1, nil)
	full := sessFetch(hs, 13, 0, 0, fetchPart{"a", 0, 0, 1 << 20}, fetchPart{"b", 0, 0, 1 << 20})
	id := full.SessionID
	if id == 0 || len(sessParts(full)) != 2 {
		t.Fatalf("full: %+v", full)
	}
	infoB, _ := hs.st.Topic("b")
	if err := hs.st.DeleteTopic("b"); err != nil {
		t.Fatal(err)
	}
	for epoch := int32(1); epoch <= 2; epoch++ {
		resp := sessFetch(hs, 13, id, epoch)
		if len(resp.Topics) != 1 || resp.Topics[0].TopicID != infoB.ID ||
			resp.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
			t.Fatalf("epoch %d after delete: %+v", epoch, resp)
		}
	}
	hs.produceTo("a", 0, makeBatch(batchOpts{records: 1, payload: 10}))
	req := fetchReq(hs, 13, 0, 0, 1<<20)
	req.SessionID, req.SessionEpoch = id, 3
	req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{TopicID: infoB.ID, Partitions: []int32{0}}}
	resp := roundTrip[*kmsg.FetchResponse](hs, req)
	infoA, _ := hs.st.Topic("a")
	if len(resp.Topics) != 1 || resp.Topics[0].TopicID != infoA.ID || len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("after forgetting b: %+v", resp)
	}
	if r := sessFetch(hs, 12, id, 4); r.ErrorCode != kerr.FetchSessionTopicIDError.Code {
		t.Fatalf("names on a session of IDs: %+v", r)
	}
}

// An incremental fetch long-polls on every partition of its session, not
// only those it lists, and answers only the one that changed.
func TestFetchSessionLongPoll(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 3, nil)
	id := sessFetch(hs, 12, 0, 0, fetchPart{"t", 0, 0, 1 << 20}, fetchPart{"t", 1, 0, 1 << 20}, fetchPart{"t", 2, 0, 1 << 20}).SessionID
	req := fetchReq(hs, 12, 60000, 1, 1<<20)
	req.SessionID, req.SessionEpoch = id, 1
	p := hs.serveFrame(encodeRequest(req, testCorr))
	waitWatchers(t, hs, 3)
	if p.answered() {
		t.Fatal("answered before any data")
	}
	hs.produceTo("t", 2, makeBatch(batchOpts{records: 1, payload: 10}))
	resp := decodeBody[*kmsg.FetchResponse](t, req, assemble(t, p.wait(t)))
	if got := sessParts(resp); len(got) != 1 || got[0] != fmt.Sprintf("t/2:%d:0", len(hs.partitionBytes("t", 2))) {
		t.Fatalf("woken incremental fetch: %v", got)
	}
}

// The cache is bounded: a full fetch beyond -max-fetch-sessions gets no
// session when none may be evicted.
func TestFetchSessionCacheFull(t *testing.T) {
	hs := newHarness(t, func(c *Config) { c.MaxFetchSessions = 1 })
	hs.createTopic("t", 2, nil)
	one := fetchPart{"t", 0, 0, 1 << 20}
	if id := sessFetch(hs, 12, 0, 0, one).SessionID; id == 0 {
		t.Fatal("no first session")
	}
	if r := sessFetch(hs, 12, 0, 0, one, fetchPart{"t", 1, 0, 1 << 20}); r.SessionID != 0 || len(r.Topics[0].Partitions) != 2 {
		t.Fatalf("second session in a full cache: %+v", r)
	}
	hs2 := newHarness(t, func(c *Config) { c.MaxFetchSessions = -1 })
	hs2.createTopic("t", 1, nil)
	if r := sessFetch(hs2, 12, 0, 0, one); r.SessionID != 0 {
		t.Fatalf("sessions off: %+v", r)
	}
}

func TestFetchSessionOrderRotates(t *testing.T) {
	s := newFetchSession(false, 0)
	for p := int32(0); p < 4; p++ {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p
		s.put("t", [16]byte{}, &rp)
	}
	partitions := func(req *kmsg.FetchRequest) (out []int32) {
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.Partition)
			}
		}
		return out
	}
	for _, known := range []bool{true, false} {
		req := kmsg.NewPtrFetchRequest()
		var order []int32
		req.Topics, order = s.requestTopics()
		before := partitions(req)
		reads := make([]partRead, 4)
		reads[1].res.Chunks = make([]storage.Chunk, 1) // the second partition returned records
		gen := s.gen
		if !known {
			gen-- // the session changed since: found by key
		}
		reads = s.prune(req, reads, order, gen)
		if known {
			// The first response after put carries every partition.
			if got := partitions(req); !slices.Equal(got, before) || len(reads) != 4 {
				t.Fatalf("first prune kept %v of %v", got, before)
			}
		} else if got := partitions(req); !slices.Equal(got, before[1:2]) || len(reads) != 1 {
			t.Fatalf("second prune kept %v, want %v", got, before[1:2])
		}
		req.Topics, _ = s.requestTopics()
		after := partitions(req)
		want := append(append(slices.Clone(before[:1]), before[2:]...), before[1])
		if !slices.Equal(after, want) {
			t.Fatalf("order after %d returned records: %v, want %v", before[1], after, want)
		}
	}
}

// cacheAt builds a cache whose clock the test moves.
func cacheAt(max int, now *time.Time) *fetchSessions {
	c := newFetchSessions(max, 1000, 1<<30)
	c.now = func() time.Time { return *now }
	return c
}

func sessionOf(n int) *fetchSession {
	s := newFetchSession(false, n)
	for p := range n {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = int32(p)
		s.put("t", [16]byte{}, &rp)
	}
	return s
}

// touch marks a session used, as an incremental fetch that changes
// nothing does.
func touch(t *testing.T, c *fetchSessions, s *fetchSession) {
	t.Helper()
	if evicted, ok := c.touch(s, s.n, s.memCost()); !ok || len(evicted) > 0 {
		t.Fatalf("touch of an unchanged session: %v, evicted %d", ok, len(evicted))
	}
}

func TestFetchSessionCacheEviction(t *testing.T) {
	now := time.Unix(1000, 0)
	c := cacheAt(2, &now)
	small, big := sessionOf(5), sessionOf(10)
	if !c.add(small) || !c.add(big) {
		t.Fatal("cache with room refused a session")
	}
	// Both are younger than the eviction time: nothing is evicted, even
	// for a larger newcomer.
	now = now.Add(time.Second)
	if c.add(sessionOf(20)) {
		t.Fatal("evicted a session younger than two minutes")
	}
	// Both old now, and both used recently (not stale).
	now = now.Add(fetchSessionEvictAfter)
	touch(t, c, small)
	touch(t, c, big)
	now = now.Add(time.Second)
	if c.add(sessionOf(5)) {
		t.Fatal("a newcomer of equal size evicted the smallest")
	}
	if c.add(sessionOf(3)) {
		t.Fatal("a smaller newcomer evicted a session")
	}
	s7 := sessionOf(7)
	if !c.add(s7) {
		t.Fatal("a larger newcomer evicted nothing")
	}
	if c.get(small.id) != nil || c.get(big.id) != big || !small.removed {
		t.Fatal("not the smallest evicted")
	}
	// A stale session (idle past the eviction time) goes first, whatever
	// its size: big is used, s7 is left idle.
	now = now.Add(fetchSessionEvictAfter / 2)
	touch(t, c, big)
	now = now.Add(fetchSessionEvictAfter/2 + time.Second)
	if !c.add(sessionOf(1)) || c.get(s7.id) != nil || c.get(big.id) != big {
		t.Fatal("stale session not evicted first")
	}
	// Privileged newcomers evict non-privileged sessions of any age if smaller.
	p := sessionOf(100)
	p.privileged = true
	if !c.add(p) || c.get(big.id) != big {
		t.Fatal("privileged newcomer: evicted the wrong session")
	}
}

func TestFetchSessionEpochWraps(t *testing.T) {
	if nextFetchEpoch(math.MaxInt32) != 1 || nextFetchEpoch(1) != 2 {
		t.Fatal("epoch after MaxInt32 must be 1")
	}
}

// BenchmarkFetchSessionMemory reports the heap bytes one cached partition
// of a session costs (1,000 sessions of 1,000 partitions is the case
// KIP-227 sizes for).
func BenchmarkFetchSessionMemory(b *testing.B) {
	const sessions, parts = 100, 1000
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := newFetchSessions(sessions, parts, sessions*parts*2)
		for range sessions {
			s := newFetchSession(true, parts)
			for p := range parts {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition = int32(p % 50)
				s.put("", [16]byte{byte(p / 50)}, &rp)
			}
			c.add(s)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(sessions*parts), "bytes/session-partition")
		runtime.KeepAlive(c)
	}
}

// A partition comes back in an incremental response when only its log
// start offset moved, and a read_committed session sees a transaction's
// records once its marker moves the last stable offset.
func TestFetchSessionWatermarksOnly(t *testing.T) {
	hs := newTxnHarness(t)
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 2, payload: 10}))
	req := fetchReq(hs, 12, 0, 0, 1<<20, fetchPart{"t", 0, 2, 1 << 20})
	req.IsolationLevel = 1
	req.SessionEpoch = 0
	id := roundTrip[*kmsg.FetchResponse](hs, req).SessionID
	next := func(epoch int32) *kmsg.FetchResponse {
		r := fetchReq(hs, 12, 0, 0, 1<<20)
		r.IsolationLevel = 1
		r.SessionID, r.SessionEpoch = id, epoch
		return roundTrip[*kmsg.FetchResponse](hs, r)
	}
	if got := sessParts(next(1)); len(got) != 0 {
		t.Fatalf("nothing changed: %v", got)
	}
	if _, err := hs.st.DeleteRecords("t", 0, 1); err != nil {
		t.Fatal(err)
	}
	resp := next(2)
	if got := sessParts(resp); len(got) != 1 || resp.Topics[0].Partitions[0].LogStartOffset != 1 {
		t.Fatalf("log start moved: %+v", resp.Topics)
	}
	if got := sessParts(next(3)); len(got) != 0 {
		t.Fatalf("log start already sent: %v", got)
	}
	hs.produceTxn("t", 0, makeBatch(batchOpts{records: 1, attrs: attrTxn, producerID: 7}))
	resp = next(4) // the high watermark moved, not the last stable offset
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions[0].RecordBatches) != 0 || resp.Topics[0].Partitions[0].LastStableOffset != 2 {
		t.Fatalf("open transaction: %+v", resp.Topics)
	}
	hs.marker("t", 0, 7, true)
	resp = next(5)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions[0].RecordBatches) == 0 || resp.Topics[0].Partitions[0].LastStableOffset != 4 {
		t.Fatalf("committed: %+v", resp.Topics)
	}
}

// checkCache fails unless the cache's accounted cost is the sum of its
// sessions' memory and within the budget.
func checkCache(t *testing.T, c *fetchSessions) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := 0
	for _, s := range c.byID {
		s.mu.Lock()
		if s.cost != s.memCost() {
			t.Errorf("session %d: accounted %d, holds %d", s.id, s.cost, s.memCost())
		}
		sum += s.cost
		s.mu.Unlock()
	}
	if sum != c.used || c.used > c.maxCached {
		t.Fatalf("cache accounts %d, sessions hold %d, budget %d", c.used, sum, c.maxCached)
	}
}

// growSession adds partitions to a cached session as an incremental fetch does.
func growSession(c *fetchSessions, s *fetchSession, n int) ([]*fetchSession, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := s.n; p < n; p++ {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = int32(p)
		s.put("t", [16]byte{}, &rp)
	}
	return c.touch(s, s.n, s.memCost())
}

// The cache-wide budget: new and growing sessions free room by Kafka's
// eviction rules, all they need or nothing.
func TestFetchSessionCacheBudget(t *testing.T) {
	now := time.Unix(1000, 0)
	c := cacheAt(1000, &now)
	c.maxCached = 100
	var s30 []*fetchSession
	for range 3 {
		s := sessionOf(30) // 30 partitions and a topic: cost 31
		if !c.add(s) {
			t.Fatal("refused a session within the budget")
		}
		s30 = append(s30, s)
	}
	checkCache(t, c)
	if c.add(sessionOf(30)) {
		t.Fatal("a young cache gave room past the budget")
	}
	s6 := sessionOf(6)
	if !c.add(s6) || c.usedCost() != 100 {
		t.Fatalf("a session that fits exactly: used %d", c.usedCost())
	}
	if c.add(sessionOf(100)) {
		t.Fatal("a session costlier than the whole budget")
	}
	checkCache(t, c)

	// All older than the eviction time and used: a larger newcomer takes
	// the smallest, as many as it needs.
	now = now.Add(fetchSessionEvictAfter + time.Second)
	for _, s := range append(s30, s6) {
		touch(t, c, s)
	}
	s40 := sessionOf(40)
	if !c.add(s40) {
		t.Fatal("a larger newcomer freed no room")
	}
	left := 0
	for _, s := range s30 {
		if c.get(s.id) == s {
			left++
		}
	}
	if c.get(s6.id) != nil || !s6.removed || left != 1 || c.usedCost() != 31+41 {
		t.Fatalf("evicted: s6 %v, 30s left %d, used %d", c.get(s6.id) == nil, left, c.usedCost())
	}
	checkCache(t, c)
	// Not enough evictable room (s40 is young): nothing is evicted.
	if c.add(sessionOf(80)) || c.usedCost() != 72 {
		t.Fatalf("a newcomer that cannot fit: used %d", c.usedCost())
	}

	// Growth: the old 30 grows to 60 past the budget; s40, young, may not
	// go, so the growth is refused and the accounting unchanged.
	var old *fetchSession
	for _, s := range s30 {
		if c.get(s.id) == s {
			old = s
		}
	}
	if _, ok := growSession(c, old, 60); ok || c.usedCost() != 72 {
		t.Fatalf("growth past the budget: %v, used %d", ok, c.usedCost())
	}
	c.remove(old.id) // as begin does
	checkCache(t, c)

	// s40 left idle past the eviction time is stale: any newcomer takes it.
	now = now.Add(fetchSessionEvictAfter + time.Second)
	s99 := sessionOf(99)
	if !c.add(s99) || c.get(s40.id) != nil || c.usedCost() != 100 {
		t.Fatalf("stale session kept: used %d", c.usedCost())
	}
	checkCache(t, c)
	c.remove(s99.id)

	// A growing session evicts a smaller old one, never itself.
	a, b := sessionOf(20), sessionOf(50)
	if !c.add(a) || !c.add(b) {
		t.Fatal("refused")
	}
	now = now.Add(fetchSessionEvictAfter + time.Second)
	touch(t, c, a)
	touch(t, c, b)
	if ev, ok := growSession(c, b, 70); !ok || len(ev) != 0 {
		t.Fatalf("growth within the budget: %v, evicted %d", ok, len(ev))
	}
	if ev, ok := growSession(c, b, 80); !ok || len(ev) != 1 || ev[0] != a || c.get(a.id) != nil || c.usedCost() != 81 {
		t.Fatalf("growth evicting the smaller: %v, evicted %d, used %d", ok, len(ev), c.usedCost())
	}
	checkCache(t, c)
	if _, ok := growSession(c, b, 100); ok || c.usedCost() != 81 {
		t.Fatalf("growth past the whole budget: %v, used %d", ok, c.usedCost())
	}
}

// Topic names count toward a session's cost: a name in a request may be
// far longer than a partition's entry.
func TestFetchSessionCostNames(t *testing.T) {
	s := newFetchSession(false, 0)
	long := strings.Repeat("x", 1000)
	rp := kmsg.NewFetchRequestTopicPartition()
	s.put(long, [16]byte{}, &rp)
	if got := s.memCost(); got != 1+1+1000/fsUnitBytes {
		t.Fatalf("cost %d", got)
	}
	s.put("t", [16]byte{}, &rp)
	s.forget(long, nil, 0)
	// The slots stay allocated (they are reused, and maps never shrink);
	// the long name is gone.
	if got := s.memCost(); got != 2+2 {
		t.Fatalf("cost after forgetting the long name %d", got)
	}
}

// TestFetchSessionHostileBudget reproduces the review finding: clients
// that open as many sessions of as many partitions as the per-session
// limits allow (many partitions of unknown topics with long names, then
// growing them) must not hold more than the cache-wide budget. Before the
// budget, the cache held every session up to -max-fetch-sessions, each up
// to -max-fetch-session-partitions: 10 GB at the defaults.
func TestFetchSessionHostileBudget(t *testing.T) {
	const budget = 2000
	hs := newHarness(t, func(c *Config) {
		c.MaxFetchSessions = 1000
		c.MaxFetchSessionCacheParts = budget
	})
	c := hs.h.fetchSessions
	now := time.Now()
	c.now = func() time.Time { return now }
	hs.createTopic("real", 3, nil)

	hostile := func(i, parts int) []fetchPart {
		var ps []fetchPart
		for p := range parts {
			name := fmt.Sprintf("%03d-%03d-%s", i, p/50, strings.Repeat("h", 200))
			ps = append(ps, fetchPart{name, int32(p % 50), 0, 1 << 20})
		}
		return ps
	}
	requested, created := 0, 0
	var ids []int32
	for i := range 40 {
		resp := sessFetch(hs, 12, 0, 0, hostile(i, 500)...)
		requested += 500
		if resp.ErrorCode != 0 || len(sessParts(resp)) != 500 {
			t.Fatalf("hostile full fetch %d: %d, %d partitions", i, resp.ErrorCode, len(sessParts(resp)))
		}
		if resp.SessionID != 0 {
			created++
			ids = append(ids, resp.SessionID)
		}
		checkCache(t, c)
	}
	// Each session tries to double.
	for _, id := range ids {
		resp := sessFetch(hs, 12, id, 1, hostile(1000+int(id%1000), 500)...)
		requested += 500
		if resp.ErrorCode != 0 {
			t.Fatalf("hostile growth: %d", resp.ErrorCode)
		}
		checkCache(t, c)
	}
	if requested < 10*budget || created == 0 || created == 40 {
		t.Fatalf("the test asked for %d partitions in %d sessions of 40", requested, created)
	}
	// Then as many small sessions as are given, to the last unit.
	for i := 0; ; i++ {
		if i == budget {
			t.Fatal("small sessions never refused")
		}
		resp := sessFetch(hs, 12, 0, 0, fetchPart{fmt.Sprint("f", i), 0, 0, 1 << 20})
		checkCache(t, c)
		if resp.SessionID == 0 {
			break
		}
	}
	// A real consumer gets no session while the cache is young, but is
	// served in full.
	real := []fetchPart{{"real", 0, 0, 1 << 20}, {"real", 1, 0, 1 << 20}, {"real", 2, 0, 1 << 20}}
	if resp := sessFetch(hs, 12, 0, 0, real...); resp.SessionID != 0 || len(sessParts(resp)) != 3 {
		t.Fatalf("real consumer in a full cache: %+v", resp)
	}
	// Once the hostile sessions idle past the eviction time they are
	// stale, and the real consumer's session evicts one.
	now = now.Add(fetchSessionEvictAfter + time.Second)
	resp := sessFetch(hs, 12, 0, 0, real...)
	if resp.SessionID == 0 || len(sessParts(resp)) != 3 {
		t.Fatalf("real consumer after the hostile sessions went stale: %+v", resp)
	}
	checkCache(t, c)
	if r := sessFetch(hs, 12, resp.SessionID, 1); r.ErrorCode != 0 || r.SessionID != resp.SessionID {
		t.Fatalf("real consumer's incremental fetch: %+v", r)
	}
}
