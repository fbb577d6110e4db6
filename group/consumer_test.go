package group

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
	"github.com/klite/klite/vfs"
)

// --- assignors ---

func homogeneous(members int, topics map[string]int32) assignSpec {
	s := assignSpec{members: map[string][]string{}, partitions: topics}
	var names []string
	for t := range topics {
		names = append(names, t)
	}
	slices.Sort(names)
	for i := 0; i < members; i++ {
		s.members[fmt.Sprintf("m%02d", i)] = names
	}
	return s
}

// checkComplete fails unless every partition of every subscribed topic is
// assigned exactly once, to a member subscribed to it.
func checkComplete(t *testing.T, s assignSpec, out map[string]assignment) {
	t.Helper()
	seen := map[TP]string{}
	for id, a := range out {
		for topic, ps := range a {
			if !slices.Contains(s.members[id], topic) {
				t.Fatalf("%s got %s without subscribing", id, topic)
			}
			for _, p := range ps {
				tp := TP{topic, p}
				if other, dup := seen[tp]; dup {
					t.Fatalf("%v assigned to %s and %s", tp, other, id)
				}
				seen[tp] = id
			}
		}
	}
	for topic, n := range s.partitions {
		subscribed := false
		for _, ts := range s.members {
			subscribed = subscribed || slices.Contains(ts, topic)
		}
		for p := int32(0); p < n && subscribed; p++ {
			if _, ok := seen[TP{topic, p}]; !ok {
				t.Fatalf("%s-%d unassigned", topic, p)
			}
		}
	}
}

func TestUniformBalancedAndDeterministic(t *testing.T) {
	for _, tc := range []struct {
		members int
		topics  map[string]int32
	}{
		{1, map[string]int32{"a": 3}},
		{3, map[string]int32{"a": 7}},
		{4, map[string]int32{"a": 3, "b": 5, "c": 1}},
		{5, map[string]int32{"a": 2}}, // more members than partitions
		{7, map[string]int32{"a": 16, "b": 16}},
	} {
		s := homogeneous(tc.members, tc.topics)
		out := assignUniform(s)
		checkComplete(t, s, out)
		lo, hi := 1<<30, 0
		for _, a := range out {
			lo, hi = min(lo, a.count()), max(hi, a.count())
		}
		if hi-lo > 1 {
			t.Fatalf("%d members %v: counts %d..%d: %v", tc.members, tc.topics, lo, hi, out)
		}
		if again := assignUniform(s); !reflect.DeepEqual(out, again) {
			t.Fatalf("not deterministic: %v vs %v", out, again)
		}
	}
}

func TestUniformSticky(t *testing.T) {
	s := homogeneous(2, map[string]int32{"a": 6})
	first := assignUniform(s)
	s3 := homogeneous(3, map[string]int32{"a": 6})
	s3.previous = first
	second := assignUniform(s3)
	checkComplete(t, s3, second)
	// Each old member keeps two of its three partitions: only two move.
	for _, id := range []string{"m00", "m01"} {
		kept := 0
		for _, p := range second[id]["a"] {
			if first[id].has("a", p) {
				kept++
			}
		}
		if kept != 2 || second[id].count() != 2 {
			t.Fatalf("%s: first %v second %v", id, first[id], second[id])
		}
	}
}

func TestUniformHeterogeneous(t *testing.T) {
	s := assignSpec{
		members:    map[string][]string{"x": {"a"}, "y": {"a", "b"}, "z": {"b"}},
		partitions: map[string]int32{"a": 4, "b": 4, "c": 2},
	}
	out := assignUniform(s)
	checkComplete(t, s, out)
	for id, a := range out {
		if a.count() < 2 || a.count() > 3 {
			t.Fatalf("%s has %d: %v", id, a.count(), out)
		}
	}
}

func TestRangeAsKafka(t *testing.T) {
	s := assignSpec{
		members:    map[string][]string{"c": {"t1", "t2"}, "a": {"t1", "t2"}, "b": {"t1"}},
		partitions: map[string]int32{"t1": 7, "t2": 3},
	}
	out := assignRange(s)
	checkComplete(t, s, out)
	want := map[string]assignment{
		"a": {"t1": {0, 1, 2}, "t2": {0, 1}},
		"b": {"t1": {3, 4}},
		"c": {"t1": {5, 6}, "t2": {2}},
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("got %v, want %v", out, want)
	}
}

// --- protocol ---

// topicSet is a mutable topic list for TopicList.
type topicSet struct {
	mu     sync.Mutex
	topics []storage.TopicInfo
}

func (s *topicSet) list() []storage.TopicInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.topics)
}

func (s *topicSet) add(name string, parts int32) storage.TopicInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := storage.TopicInfo{Name: name, Partitions: parts}
	copy(info.ID[:], name)
	info.ID[15] = 1
	s.topics = append(s.topics, info)
	return info
}

func openConsumerCoordinator(t *testing.T, mod ...func(*Config)) (*Coordinator, *topicSet) {
	ts := &topicSet{}
	ts.add("t", 4)
	c := openTestCoordinator(t, vfs.NewMemFS(), append([]func(*Config){func(cfg *Config) {
		cfg.TopicList = ts.list
		cfg.Topics = func(topic string) (int32, bool) {
			for _, info := range ts.list() {
				if info.Name == topic {
					return info.Partitions, true
				}
			}
			return 0, false
		}
		cfg.TopicRefreshInterval = 10 * time.Millisecond
	}}, mod...)...)
	return c, ts
}

// cmem is a test client of the consumer protocol: it remembers its epoch
// and what it owns, and acknowledges revocations like a real consumer.
type cmem struct {
	t     *testing.T
	c     *Coordinator
	ts    *topicSet
	group string
	id    string
	inst  *string
	epoch int32
	owned map[string][]int32 // topic name -> partitions
}

func newCmem(t *testing.T, c *Coordinator, ts *topicSet, group, id string) *cmem {
	return &cmem{t: t, c: c, ts: ts, group: group, id: id}
}

func (m *cmem) send(req *kmsg.ConsumerGroupHeartbeatRequest) *kmsg.ConsumerGroupHeartbeatResponse {
	m.t.Helper()
	return call(m.t, func(done func(*kmsg.ConsumerGroupHeartbeatResponse)) {
		m.c.ConsumerGroupHeartbeat("client", "/127.0.0.1", req, done)
	})
}

func (m *cmem) req(epoch int32) *kmsg.ConsumerGroupHeartbeatRequest {
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version, r.Group, r.MemberID, r.MemberEpoch, r.InstanceID = 1, m.group, m.id, epoch, m.inst
	return r
}

func (m *cmem) join(topics ...string) *kmsg.ConsumerGroupHeartbeatResponse {
	m.t.Helper()
	r := m.req(0)
	r.RebalanceTimeoutMillis = 60000
	r.SubscribedTopicNames = topics
	r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	resp := m.send(r)
	m.apply(resp)
	return resp
}

// beat sends a full heartbeat reporting what the member owns.
func (m *cmem) beat() *kmsg.ConsumerGroupHeartbeatResponse {
	m.t.Helper()
	r := m.req(m.epoch)
	r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	for _, info := range m.ts.list() {
		if ps := m.owned[info.Name]; len(ps) > 0 {
			rt := kmsg.NewConsumerGroupHeartbeatRequestTopic()
			rt.TopicID, rt.Partitions = info.ID, slices.Clone(ps)
			r.Topics = append(r.Topics, rt)
		}
	}
	resp := m.send(r)
	m.apply(resp)
	return resp
}

func (m *cmem) apply(resp *kmsg.ConsumerGroupHeartbeatResponse) {
	m.t.Helper()
	if resp.ErrorCode != 0 {
		return
	}
	if resp.MemberEpoch < m.epoch {
		m.t.Fatalf("%s: epoch went back from %d to %d", m.id, m.epoch, resp.MemberEpoch)
	}
	m.epoch = resp.MemberEpoch
	if resp.Assignment == nil {
		return
	}
	m.owned = map[string][]int32{}
	for _, at := range resp.Assignment.Topics {
		for _, info := range m.ts.list() {
			if info.ID == at.TopicID {
				m.owned[info.Name] = slices.Clone(at.Partitions)
			}
		}
	}
}

func (m *cmem) count() int {
	n := 0
	for _, ps := range m.owned {
		n += len(ps)
	}
	return n
}

func noDoubleOwners(t *testing.T, ms ...*cmem) {
	t.Helper()
	seen := map[TP]string{}
	for _, m := range ms {
		for topic, ps := range m.owned {
			for _, p := range ps {
				if o, dup := seen[TP{topic, p}]; dup {
					t.Fatalf("%s-%d owned by %s and %s", topic, p, o, m.id)
				}
				seen[TP{topic, p}] = m.id
			}
		}
	}
}

func describe(t *testing.T, c *Coordinator, group string) kmsg.ConsumerGroupDescribeResponseGroup {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Version, req.Groups = 1, []string{group}
	resp := call(t, func(done func(*kmsg.ConsumerGroupDescribeResponse)) { c.ConsumerGroupDescribe(req, done) })
	return resp.Groups[0]
}

func TestConsumerIncrementalReconciliation(t *testing.T) {
	c, ts := openConsumerCoordinator(t)
	a := newCmem(t, c, ts, "g", "A")
	if r := a.join("t"); r.ErrorCode != 0 || a.count() != 4 || r.HeartbeatIntervalMillis != int32(DefaultConsumerHeartbeatInterval.Milliseconds()) {
		t.Fatalf("join: %+v owned %v", r, a.owned)
	}
	b := newCmem(t, c, ts, "g", "B")
	if r := b.join("t"); r.ErrorCode != 0 || b.count() != 0 {
		t.Fatalf("B join must wait for A's partitions: %+v %v", r, b.owned)
	}
	noDoubleOwners(t, a, b)
	if st := describe(t, c, "g").State; st != "Reconciling" {
		t.Fatalf("state %s", st)
	}
	// A learns it must give up two partitions; its epoch stays.
	oldEpoch := a.epoch
	a.beat()
	if a.count() != 2 || a.epoch != oldEpoch {
		t.Fatalf("A after revocation request: epoch %d owned %v", a.epoch, a.owned)
	}
	// A's previous heartbeat reported all four: until it reports two, B
	// still gets nothing.
	b.beat()
	noDoubleOwners(t, a, b)
	a.beat() // reports only two now: revocation done
	if a.epoch <= oldEpoch {
		t.Fatalf("A epoch did not advance: %d", a.epoch)
	}
	b.beat()
	if b.count() != 2 || b.epoch != a.epoch {
		t.Fatalf("B: epoch %d owned %v (A epoch %d)", b.epoch, b.owned, a.epoch)
	}
	noDoubleOwners(t, a, b)
	d := describe(t, c, "g")
	if d.State != "Stable" || d.Epoch != a.epoch || d.AssignmentEpoch != d.Epoch || d.AssignorName != "uniform" || len(d.Members) != 2 {
		t.Fatalf("describe: %+v", d)
	}

	// B leaves: A gets everything back with a new epoch.
	if r := b.send(b.req(-1)); r.ErrorCode != 0 || r.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", r)
	}
	a.beat()
	if a.count() != 4 {
		t.Fatalf("A after B left: %v", a.owned)
	}
	// Errors on B now.
	if r := b.beat(); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("left member: %+v", r)
	}
	r := a.req(a.epoch + 1)
	if resp := a.send(r); resp.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Fatalf("future epoch: %+v", resp)
	}
	r = a.req(a.epoch - 1)
	if resp := a.send(r); resp.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Fatalf("old epoch without owned partitions: %+v", resp)
	}
}

func TestConsumerManyMembersConverge(t *testing.T) {
	c, ts := openConsumerCoordinator(t)
	ts.add("u", 5)
	var ms []*cmem
	for i := 0; i < 3; i++ {
		m := newCmem(t, c, ts, "g", fmt.Sprintf("m%d", i))
		m.join("t", "u")
		ms = append(ms, m)
		noDoubleOwners(t, ms...)
	}
	deadline := time.Now().Add(waitFor)
	for describe(t, c, "g").State != "Stable" {
		if time.Now().After(deadline) {
			t.Fatalf("not stable: %+v", describe(t, c, "g"))
		}
		for _, m := range ms {
			m.beat()
			noDoubleOwners(t, ms...)
		}
	}
	total := 0
	for _, m := range ms {
		if m.count() != 3 {
			t.Fatalf("%s owns %v", m.id, m.owned)
		}
		total += m.count()
	}
	if total != 9 {
		t.Fatalf("total %d", total)
	}
}

func TestConsumerHeartbeatValidation(t *testing.T) {
	c, ts := openConsumerCoordinator(t)
	m := newCmem(t, c, ts, "g", "A")
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name string
		mod  func(*kmsg.ConsumerGroupHeartbeatRequest)
		want *kerr.Error
	}{
		{"empty group", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.Group = "" }, kerr.InvalidRequest},
		{"empty member v1", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID = "" }, kerr.InvalidRequest},
		{"no rebalance timeout", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.RebalanceTimeoutMillis = -1 }, kerr.InvalidRequest},
		{"owned on join", func(r *kmsg.ConsumerGroupHeartbeatRequest) {
			r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{{Partitions: []int32{0}}}
		}, kerr.InvalidRequest},
		{"no subscription", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicNames = nil }, kerr.InvalidRequest},
		{"bad epoch", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = -3 }, kerr.InvalidRequest},
		{"static leave without instance", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = -2 }, kerr.InvalidRequest},
		{"empty instance", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.InstanceID = str("") }, kerr.InvalidRequest},
		{"unknown assignor", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.ServerAssignor = str("sticky") }, kerr.UnsupportedAssignor},
		{"bad regex", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicRegex = str("t(") }, kerr.InvalidRegularExpression},
		{"leave unknown group", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.Group, r.MemberEpoch = "nope", -1 }, kerr.GroupIDNotFound},
		{"unknown member", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = 3 }, kerr.UnknownMemberID},
	} {
		r := m.req(0)
		r.RebalanceTimeoutMillis = 1000
		r.SubscribedTopicNames = []string{"t"}
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		tc.mod(r)
		if resp := m.send(r); resp.ErrorCode != tc.want.Code {
			t.Errorf("%s: got %v, want %v", tc.name, kerr.ErrorForCode(resp.ErrorCode), tc.want)
		}
	}
	// v0: the broker names the member.
	r := m.req(0)
	r.Version, r.MemberID, r.RebalanceTimeoutMillis = 0, "", 1000
	r.SubscribedTopicNames, r.Topics = []string{"t"}, []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	if resp := m.send(r); resp.ErrorCode != 0 || resp.MemberID == nil || len(*resp.MemberID) != 22 {
		t.Fatalf("v0 join: %+v", resp)
	}
}

func TestConsumerStaticMembership(t *testing.T) {
	c, ts := openConsumerCoordinator(t)
	inst := "i1"
	a := newCmem(t, c, ts, "g", "A1")
	a.inst = &inst
	a.join("t")
	if a.count() != 4 {
		t.Fatalf("owned %v", a.owned)
	}
	// A second process with the same instance id while A1 is active.
	a2 := newCmem(t, c, ts, "g", "A2")
	a2.inst = &inst
	if r := a2.join("t"); r.ErrorCode != kerr.UnreleasedInstanceID.Code {
		t.Fatalf("duplicate instance: %+v", r)
	}
	// Static leave keeps the assignment for the instance.
	if r := a.send(a.req(-2)); r.ErrorCode != 0 || r.MemberEpoch != -2 {
		t.Fatalf("static leave: %+v", r)
	}
	epoch := describe(t, c, "g").Epoch
	if r := a2.join("t"); r.ErrorCode != 0 || a2.count() != 4 {
		t.Fatalf("rejoin of instance: %+v %v", r, a2.owned)
	}
	if d := describe(t, c, "g"); d.Epoch != epoch || len(d.Members) != 1 || d.Members[0].MemberID != "A2" {
		t.Fatalf("static rejoin must not rebalance: %+v (epoch was %d)", d, epoch)
	}
	// The old id is fenced.
	if r := a.beat(); r.ErrorCode != kerr.FencedInstanceID.Code {
		t.Fatalf("old static member: %+v", r)
	}
}

func TestConsumerSessionTimeout(t *testing.T) {
	c, ts := openConsumerCoordinator(t, func(cfg *Config) { cfg.ConsumerSessionTimeout = 50 * time.Millisecond })
	a := newCmem(t, c, ts, "g", "A")
	a.join("t")
	waitUntil(t, "member to expire", func() bool { return len(describe(t, c, "g").Members) == 0 })
	if d := describe(t, c, "g"); d.State != "Empty" {
		t.Fatalf("state %s", d.State)
	}
	if r := a.beat(); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("expired member: %+v", r)
	}
}

func TestConsumerRevocationTimeout(t *testing.T) {
	c, ts := openConsumerCoordinator(t)
	a := newCmem(t, c, ts, "g", "A")
	r := a.req(0)
	r.RebalanceTimeoutMillis = 30 // A will never revoke in time
	r.SubscribedTopicNames, r.Topics = []string{"t"}, []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	a.apply(a.send(r))
	b := newCmem(t, c, ts, "g", "B")
	b.join("t")
	a.beat() // A is told to revoke two partitions
	waitUntil(t, "A to be fenced", func() bool { return len(describe(t, c, "g").Members) == 1 })
	b.beat()
	if b.count() != 4 {
		t.Fatalf("B after A was fenced: %v", b.owned)
	}
}

func TestConsumerRegexAndNewTopics(t *testing.T) {
	c, ts := openConsumerCoordinator(t)
	a := newCmem(t, c, ts, "g", "A")
	r := a.req(0)
	r.RebalanceTimeoutMillis = 1000
	re := "lo.*"
	r.SubscribedTopicRegex = &re
	r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	a.apply(a.send(r))
	if a.count() != 0 {
		t.Fatalf("nothing matches yet: %v", a.owned)
	}
	ts.add("logs", 2)
	ts.add("xlogs", 2) // must match the whole name
	waitUntil(t, "the new topic assigned", func() bool {
		if a.count() == 2 {
			return true
		}
		a.beat()
		return false
	})
	if len(a.owned["logs"]) != 2 {
		t.Fatalf("owned %v", a.owned)
	}
	if d := describe(t, c, "g"); *d.Members[0].SubscribedTopicRegex != re {
		t.Fatalf("describe: %+v", d.Members[0])
	}
}

func TestConsumerAndClassicGroups(t *testing.T) {
	c, ts := openConsumerCoordinator(t)
	a := newCmem(t, c, ts, "cg", "A")
	a.join("t")
	// A classic join on a live consumer group.
	jr := call(t, c.testJoin(joinReq(9, "cg", "", nil, time.Second, "range")))
	if jr.ErrorCode != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("classic join on consumer group: %+v", jr)
	}
	// A consumer heartbeat on a live classic group.
	jr = call(t, c.testJoin(joinReq(3, "classic", "", nil, time.Second, "range")))
	if jr.ErrorCode != 0 {
		t.Fatalf("classic join: %+v", jr)
	}
	x := newCmem(t, c, ts, "classic", "X")
	if r := x.join("t"); r.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("consumer join on classic group: %+v", r)
	}
	if d := describe(t, c, "classic"); d.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("describe classic as consumer: %+v", d)
	}
	dreq := kmsg.NewPtrDescribeGroupsRequest()
	dreq.Version, dreq.Groups = 6, []string{"cg"}
	dr := call(t, func(done func(*kmsg.DescribeGroupsResponse)) { c.DescribeGroups(dreq, done) })
	if dr.Groups[0].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("DescribeGroups of consumer group: %+v", dr.Groups[0])
	}
	lreq := kmsg.NewPtrListGroupsRequest()
	lreq.Version = 5
	lr := call(t, func(done func(*kmsg.ListGroupsResponse)) { c.ListGroups(lreq, done) })
	types := map[string]string{}
	for _, g := range lr.Groups {
		types[g.Group] = g.GroupType + "/" + g.ProtocolType + "/" + g.GroupState
	}
	if types["cg"] != "consumer/consumer/Stable" || types["classic"] != "classic/consumer/CompletingRebalance" {
		t.Fatalf("list: %v", types)
	}
	lreq.TypesFilter = []string{"Consumer"}
	lr = call(t, func(done func(*kmsg.ListGroupsResponse)) { c.ListGroups(lreq, done) })
	if len(lr.Groups) != 1 || lr.Groups[0].Group != "cg" {
		t.Fatalf("filtered list: %+v", lr.Groups)
	}

	// OffsetCommit v9 with member epochs.
	commit := func(v int16, member string, epoch int32) int16 {
		r := commitReq("cg", member, epoch, 5)
		r.Version = v
		resp := call(t, func(done func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(r, done) })
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := commit(9, "A", a.epoch); code != 0 {
		t.Fatalf("commit: %v", kerr.ErrorForCode(code))
	}
	if code := commit(9, "A", a.epoch-1); code != kerr.StaleMemberEpoch.Code {
		t.Fatalf("stale commit: %v", kerr.ErrorForCode(code))
	}
	if code := commit(9, "Z", a.epoch); code != kerr.UnknownMemberID.Code {
		t.Fatalf("unknown member commit: %v", kerr.ErrorForCode(code))
	}
	if code := commit(8, "A", a.epoch); code != kerr.UnsupportedVersion.Code {
		t.Fatalf("v8 commit from consumer member: %v", kerr.ErrorForCode(code))
	}
	if code := commit(9, "", -1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("standalone commit to live group: %v", kerr.ErrorForCode(code))
	}
	a.send(a.req(-1))
	if code := commit(9, "", -1); code != 0 {
		t.Fatalf("standalone commit to empty group: %v", kerr.ErrorForCode(code))
	}
	// An empty consumer group can become classic.
	if jr := call(t, c.testJoin(joinReq(3, "cg", "", nil, time.Second, "range"))); jr.ErrorCode != 0 {
		t.Fatalf("classic join on empty consumer group: %+v", jr)
	}
}

// Members are logged, assignments are not: after a restart no partition is
// handed out until every member from before has heard it is unknown (or
// its session expired), so none is owned twice.
func TestConsumerRestartGrace(t *testing.T) {
	fs := vfs.NewMemFS()
	ts := &topicSet{}
	ts.add("t", 4)
	open := func(session time.Duration) *Coordinator {
		c := openTestCoordinator(t, fs, func(cfg *Config) {
			cfg.TopicList = ts.list
			cfg.ConsumerSessionTimeout = session
		})
		return c
	}
	c1 := open(time.Hour)
	a := newCmem(t, c1, ts, "g", "A")
	a.join("t")
	b := newCmem(t, c1, ts, "g", "B")
	b.join("t")
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}

	c2 := open(time.Hour)
	n := newCmem(t, c2, ts, "g", "N")
	if r := n.join("t"); r.ErrorCode != 0 || n.count() != 0 {
		t.Fatalf("new member during the grace: %+v %v", r, n.owned)
	}
	a.c = c2
	if r := a.beat(); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("member from before the restart: %+v", r)
	}
	a.owned = nil // what a client does on UNKNOWN_MEMBER_ID
	n.beat()
	if n.count() != 0 {
		t.Fatalf("B may still own partitions: %v", n.owned)
	}
	b.c = c2
	if r := b.send(b.req(-1)); r.ErrorCode != 0 {
		t.Fatalf("leave of a member from before: %+v", r)
	}
	n.beat()
	if n.count() != 4 {
		t.Fatalf("after both old members left: %v", n.owned)
	}
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}

	// A member that never returns holds the partitions for one session.
	c3 := open(50 * time.Millisecond)
	m := newCmem(t, c3, ts, "g", "M")
	m.join("t")
	waitUntil(t, "ghost N expired", func() bool {
		if m.count() == 4 {
			return true
		}
		if r := m.beat(); r.ErrorCode != 0 {
			// M itself has a 50ms session: rejoin when it lapsed.
			m.epoch, m.owned = 0, nil
			m.join("t")
		}
		return false
	})
}

func TestConsumerLongIDsRejected(t *testing.T) {
	c, ts := openConsumerCoordinator(t)
	m := newCmem(t, c, ts, "g", string(make([]byte, 70000)))
	if r := m.join("t"); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("70000-byte member id: %+v", r)
	}
}

// Random joins, leaves, subscription changes and heartbeats (members that
// acknowledge revocations late or not at all before leaving): no partition
// is ever owned by two members, epochs never go back, and once everyone
// heartbeats the group converges to every partition assigned.
func TestConsumerRandomChurn(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c, ts := openConsumerCoordinator(t)
			ts.add("u", 3)
			rng := rand.New(rand.NewPCG(seed, 0))
			live := map[string]*cmem{}
			next := 0
			all := func() []*cmem {
				var ms []*cmem
				for _, id := range slices.Sorted(maps.Keys(live)) {
					ms = append(ms, live[id])
				}
				return ms
			}
			subs := [][]string{{"t"}, {"u"}, {"t", "u"}}
			for step := 0; step < 300; step++ {
				ms := all()
				switch op := rng.IntN(10); {
				case op == 0 && len(live) < 6:
					m := newCmem(t, c, ts, "g", fmt.Sprintf("m%d", next))
					next++
					if r := m.join(subs[rng.IntN(len(subs))]...); r.ErrorCode != 0 {
						t.Fatalf("join: %+v", r)
					}
					live[m.id] = m
				case op == 1 && len(ms) > 0:
					m := ms[rng.IntN(len(ms))]
					if r := m.send(m.req(-1)); r.ErrorCode != 0 {
						t.Fatalf("leave: %+v", r)
					}
					delete(live, m.id)
				case op == 2 && len(ms) > 0:
					m := ms[rng.IntN(len(ms))]
					r := m.req(m.epoch)
					r.SubscribedTopicNames = subs[rng.IntN(len(subs))]
					m.apply(m.send(r)) // Topics nil: ownership not reported
				case len(ms) > 0:
					m := ms[rng.IntN(len(ms))]
					if r := m.beat(); r.ErrorCode != 0 {
						t.Fatalf("step %d heartbeat of %s: %v", step, m.id, kerr.ErrorForCode(r.ErrorCode))
					}
				}
				noDoubleOwners(t, all()...)
			}
			// Everyone heartbeats until the group is stable.
			for round := 0; describe(t, c, "g").State != "Stable" && len(live) > 0; round++ {
				if round > 50 {
					t.Fatalf("no convergence: %+v", describe(t, c, "g"))
				}
				for _, m := range all() {
					m.beat()
					noDoubleOwners(t, all()...)
				}
			}
			d := describe(t, c, "g")
			subscribed := map[string]bool{}
			for _, m := range d.Members {
				for _, s := range m.SubscribedTopics {
					subscribed[s] = true
				}
			}
			total, want := 0, 0
			for _, m := range all() {
				total += m.count()
			}
			for _, info := range ts.list() {
				if subscribed[info.Name] {
					want += int(info.Partitions)
				}
			}
			if total != want {
				t.Fatalf("%d partitions owned, %d subscribed: %+v", total, want, d)
			}
		})
	}
}

func TestConsumerOffsetFetchEpoch(t *testing.T) {
	c, ts := openConsumerCoordinator(t)
	a := newCmem(t, c, ts, "g", "A")
	a.join("t")
	fetch := func(member *string, epoch int32) int16 {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 9
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group, rg.MemberID, rg.MemberEpoch = "g", member, epoch
		req.Groups = append(req.Groups, rg)
		resp := call(t, func(done func(*kmsg.OffsetFetchResponse)) { c.OffsetFetch(req, done) })
		return resp.Groups[0].ErrorCode
	}
	id, other := "A", "Z"
	for _, tc := range []struct {
		member *string
		epoch  int32
		want   int16
	}{
		{nil, -1, 0},
		{&id, a.epoch, 0},
		{&id, a.epoch - 1, kerr.StaleMemberEpoch.Code},
		{&other, a.epoch, kerr.UnknownMemberID.Code},
	} {
		if got := fetch(tc.member, tc.epoch); got != tc.want {
			t.Errorf("member %v epoch %d: %v, want %v", tc.member, tc.epoch, kerr.ErrorForCode(got), kerr.ErrorForCode(tc.want))
		}
	}
}
