package group

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

// A SubscribedTopicRegex longer than MaxRegexBytes answers
// INVALID_REGULAR_EXPRESSION with a message, as an invalid one does; one
// at the limit is accepted.
func TestConsumerRegexSizeBound(t *testing.T) {
	c, ts := openConsumerCoordinator(t, func(cfg *Config) { cfg.MaxRegexBytes = 8 })
	m := newCmem(t, c, ts, "g", "A")
	for _, tc := range []struct {
		rx   string
		want *kerr.Error
	}{
		{"t|tt|ttt", nil}, // 8 bytes
		{"t|tt|tttt", kerr.InvalidRegularExpression},
		{"t(", kerr.InvalidRegularExpression},
	} {
		r := m.req(0)
		r.RebalanceTimeoutMillis = 1000
		r.SubscribedTopicRegex = &tc.rx
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		resp := m.send(r)
		var want int16
		if tc.want != nil {
			want = tc.want.Code
		}
		if resp.ErrorCode != want {
			t.Fatalf("regex %q: got %v, want %v", tc.rx, kerr.ErrorForCode(resp.ErrorCode), tc.want)
		}
		if tc.want != nil && (resp.ErrorMessage == nil || *resp.ErrorMessage == "") {
			t.Fatalf("regex %q: no error message", tc.rx)
		}
		if tc.want == nil {
			m.apply(resp)
		}
	}
	if m.count() != 4 {
		t.Fatalf("the 8-byte regex matches t's 4 partitions; owned %v", m.owned)
	}
}

func names(ns ...string) []storage.TopicInfo {
	out := make([]storage.TopicInfo, len(ns))
	for i, n := range ns {
		out[i].Name = n
	}
	return out
}

// The cache compiles a regex once and matches it once per topic listing:
// a regex whose compiled form is swapped for one matching everything still
// answers its first matches until the listing's names change.
func TestRegexCacheOncePerListing(t *testing.T) {
	c := &Coordinator{} // cheap matches only: the loop's own work
	rc := &c.regexes
	rc.list(names("a1", "a2", "b1"))
	e, err := rc.compile("a.")
	if err != nil {
		t.Fatal(err)
	}
	if e2, _ := rc.compile("a."); e2 != e {
		t.Fatal("compiled twice")
	}
	if ms := c.regexMatches("a."); !slices.Equal(ms, []string{"a1", "a2"}) {
		t.Fatalf("matches %v", ms)
	}
	e.re = regexp.MustCompile(".*")
	rc.list(names("a1", "a2", "b1")) // same names, partitions may differ: no new version
	if ms := c.regexMatches("a."); !slices.Equal(ms, []string{"a1", "a2"}) {
		t.Fatalf("matched again within one listing: %v", ms)
	}
	rc.list(names("a1", "b1", "c1")) // a2 deleted, c1 created
	if ms := c.regexMatches("a."); !slices.Equal(ms, []string{"a1", "b1", "c1"}) {
		t.Fatalf("not matched again after the names changed: %v", ms)
	}
	if ms := c.regexMatches("("); ms != nil {
		t.Fatalf("an invalid regex matched %v", ms)
	}
	for i := range 2 * maxCachedRegexes {
		if _, err := rc.compile("x" + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(rc.entries) > maxCachedRegexes {
		t.Fatalf("%d cached regexes, bound %d", len(rc.entries), maxCachedRegexes)
	}
}

// Costly matching runs off the coordinator loop: while it is held, the
// regex member is answered (with nothing yet) and other groups are served;
// once it is done the member is given the matched topics.
func TestConsumerRegexOffLoop(t *testing.T) {
	c, ts := openConsumerCoordinator(t)
	ts.add("logs", 2)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	onLoop(t, c, func() {
		c.regexes.inlineSteps = 1 // every match is costly
		c.regexes.beforeMatch = func() {
			started <- struct{}{}
			<-release
		}
	})
	a := newCmem(t, c, ts, "g", "A")
	r := a.req(0)
	r.RebalanceTimeoutMillis = 60000
	rx := "lo.*"
	r.SubscribedTopicRegex = &rx
	r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	resp := a.send(r)
	if resp.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(resp.ErrorCode))
	}
	a.apply(resp)
	select { // the background match holds
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the costly regex was not matched in the background")
	}
	if a.count() != 0 {
		t.Fatalf("owned %v before the regex was matched", a.owned)
	}
	b := newCmem(t, c, ts, "other", "B")
	b.join("t")
	if b.count() != 4 {
		t.Fatalf("another group's member got %v while a regex was matched", b.owned)
	}
	close(release)
	waitUntil(t, "the regex's topic assigned", func() bool {
		a.beat()
		return a.count() == 2
	})
	if len(a.owned["logs"]) != 2 {
		t.Fatalf("owned %v", a.owned)
	}
}

// Members sharing a regex share one cache entry, and heartbeats and
// refreshes over an unchanged topic listing do not match it again; when a
// member with the regex leaves, the others keep what it resolved to.
func TestConsumerRegexCached(t *testing.T) {
	c, ts := openConsumerCoordinator(t)
	ts.add("logs", 2)
	ts.add("logs2", 2)
	rx := "logs.*"
	var ms []*cmem
	for i := range 3 {
		m := newCmem(t, c, ts, "g"+strconv.Itoa(i%2), "M"+strconv.Itoa(i))
		r := m.req(0)
		r.RebalanceTimeoutMillis = 60000
		r.SubscribedTopicRegex = &rx
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		m.apply(m.send(r))
		ms = append(ms, m)
	}
	var swapped bool
	onLoop(t, c, func() {
		c.regexes.mu.Lock()
		defer c.regexes.mu.Unlock()
		if len(c.regexes.entries) != 1 {
			t.Errorf("%d cache entries for one regex", len(c.regexes.entries))
		}
		// Matching again would now find every topic.
		c.regexes.entries[rx].re, swapped = regexp.MustCompile(".*"), true
	})
	if !swapped {
		t.Fatal("loop did not run")
	}
	for range 3 {
		onLoop(t, c, c.reresolveAll) // a subscription refresh
		for _, m := range ms {
			m.beat()
		}
	}
	leave := ms[2].req(epochLeave)
	ms[2].send(leave)
	for _, m := range ms[:2] {
		waitUntil(t, m.id+" owns logs and logs2", func() bool {
			m.beat()
			return m.count() == 4
		})
		if len(m.owned["t"]) != 0 {
			t.Fatalf("%s owns %v, want logs and logs2 only", m.id, m.owned)
		}
	}
	if d := describe(t, c, "g0"); len(d.Members) != 1 || !strings.HasPrefix(*d.Members[0].SubscribedTopicRegex, "logs") {
		t.Fatalf("describe: %+v", d.Members)
	}
}

// onLoop runs f on c's loop and waits for it.
func onLoop(t *testing.T, c *Coordinator, f func()) {
	t.Helper()
	call(t, func(done func(struct{})) { c.submit(func() { f(); done(struct{}{}) }) })
}

// BenchmarkRegexMatchAtBound matches the worst shape of regex found so far
// (many '.*x.*' alternatives, which Go's regexp simulates at every byte)
// at the default size bound against one topic name: the coordinator loop
// pays this per topic for each distinct regex and topic listing.
func BenchmarkRegexMatchAtBound(b *testing.B) {
	var alts []string
	n := 0
	for i := 0; n < DefaultMaxRegexBytes-20; i++ {
		a := ".*zz" + strconv.Itoa(1000000+i*7919%1000000) + ".*"
		alts = append(alts, a)
		n += len(a) + 1
	}
	rx := "(?:" + strings.Join(alts, "|") + ")|rx-topic-0000.."
	re := regexp.MustCompile("^(?:" + rx + ")$")
	name := strings.Repeat("rx-topic-", 27) + "000123" // 249 bytes, Kafka's longest name
	b.ReportAllocs()
	for b.Loop() {
		re.MatchString(name)
	}
}
