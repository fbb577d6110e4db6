package group

import (
	"regexp"
	"sync"

	"github.com/klite/klite/storage"
)

// DefaultMaxRegexBytes bounds a KIP-848 SubscribedTopicRegex. Go's regexp
// matches in time up to the regex's size times the name's, and a
// subscription is matched against every topic name, so the bound is what
// keeps one regex's matching short. Real subscriptions are a prefix or a
// handful of names ("orders-.*", "a|b|c"): 4 KiB still holds sixteen
// 249-byte topic names as alternatives; a longer list belongs in
// SubscribedTopicNames.
const DefaultMaxRegexBytes = 4096

// maxCachedRegexes bounds the regex cache: at most this many compiled
// regexes and their match lists are kept (each at most MaxRegexBytes of
// source, so a few MB at worst).
const maxCachedRegexes = 1024

// regexInlineSteps is the most matching work (regex bytes times topic name
// bytes, Go's worst case) done on the coordinator loop: about 3 ms for the
// worst regex shape (BenchmarkRegexMatchAtBound). Costlier matching runs
// on a background goroutine, as Kafka resolves regexes asynchronously; the
// member's regex resolves to its previous matches (none at first) until it
// is done.
const regexInlineSteps = 1 << 20

// regexCache compiles each distinct subscription regex once and keeps the
// topics it matched in the last topic listing. A listing's names change
// only when topics are created or deleted, so heartbeats, refreshes and
// members sharing a regex match nothing again until then. Loop only, but
// for compile and cached: heartbeats compile before they reach the loop.
type regexCache struct {
	mu      sync.Mutex
	entries map[string]*regexEntry // guarded by mu

	names     []string // names of the last listing, in its order; never modified in place
	nameBytes int      // their total length
	version   uint64   // bumped whenever names change

	inlineSteps int      // regexInlineSteps; tests change it
	beforeMatch func()   // tests: run by the background matcher before it matches
	queue       []string // regexes waiting for the background matcher
	busy        bool     // the background matcher is running
}

// regexEntry is one compiled regex; re and srcBytes never change, the
// rest is loop only.
type regexEntry struct {
	re       *regexp.Regexp
	srcBytes int
	version  uint64   // the listing matches belong to; 0 is none
	matches  []string // in listing order; never modified in place
	pending  bool     // queued for or being matched by the background matcher
}

// cached returns expr's cache entry, or nil.
func (rc *regexCache) cached(expr string) *regexEntry {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.entries[expr]
}

// compile returns expr's cache entry, compiling it on a miss (outside the
// lock: up to ~2 ms at the size bound). The regex must match a whole topic
// name, as Java's Matcher.matches().
func (rc *regexCache) compile(expr string) (*regexEntry, error) {
	if e := rc.cached(expr); e != nil {
		return e, nil
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, err
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if e := rc.entries[expr]; e != nil {
		return e, nil // compiled meanwhile by another heartbeat
	}
	if rc.entries == nil {
		rc.entries = make(map[string]*regexEntry)
	}
	if len(rc.entries) >= maxCachedRegexes {
		for k := range rc.entries { // evict one at random; it is recompiled if still used
			delete(rc.entries, k)
			break
		}
	}
	e := &regexEntry{re: re, srcBytes: len(expr)}
	rc.entries[expr] = e
	return e, nil
}

// list records a full topic listing, starting a new version when its names
// differ from the last one's.
func (rc *regexCache) list(topics []storage.TopicInfo) {
	same := len(topics) == len(rc.names) && rc.version != 0
	for i := 0; same && i < len(topics); i++ {
		same = topics[i].Name == rc.names[i]
	}
	if same {
		return
	}
	names := make([]string, len(topics)) // a new slice: background matching reads the old one
	rc.nameBytes = 0
	for i, t := range topics {
		names[i] = t.Name
		rc.nameBytes += len(t.Name)
	}
	rc.names = names
	rc.version++
}

// matchNames returns the names re matches.
func matchNames(re *regexp.Regexp, names []string) []string {
	var ms []string
	for _, name := range names {
		if re.MatchString(name) {
			ms = append(ms, name)
		}
	}
	return ms
}

// regexMatches returns the names of the last topic listing that regex
// matches. Cheap matching is done at once; costly matching is started in
// the background (c.matchRegexes) and the regex's previous matches, if
// any, are returned meanwhile: the member's groups are resolved again when
// it is done. Loop only.
func (c *Coordinator) regexMatches(regex string) []string {
	rc := &c.regexes
	e, err := rc.compile(regex)
	if err != nil {
		return nil // a member's regex compiled when it subscribed
	}
	if e.version == rc.version {
		return e.matches
	}
	steps := rc.inlineSteps
	if steps == 0 {
		steps = regexInlineSteps
	}
	if e.srcBytes*rc.nameBytes <= steps {
		e.matches, e.version = matchNames(e.re, rc.names), rc.version
		return e.matches
	}
	if !e.pending { // so the queue holds each cached regex at most once
		e.pending = true
		rc.queue = append(rc.queue, regex)
		c.matchRegexes()
	}
	return e.matches
}

// matchRegexes starts the background matcher on the next queued regex,
// unless it is running: one match at a time, so a client sending regex
// after regex costs the broker one core at most, and the loop nothing.
// Loop only.
func (c *Coordinator) matchRegexes() {
	rc := &c.regexes
	for !rc.busy && len(rc.queue) > 0 {
		regex := rc.queue[0]
		rc.queue = rc.queue[1:]
		e := rc.cached(regex)
		if e == nil {
			continue // evicted
		}
		if e.version == rc.version {
			e.pending = false // matched inline since
			continue
		}
		rc.busy = true
		re, names, version, hook := e.re, rc.names, rc.version, rc.beforeMatch
		go func() {
			if hook != nil {
				hook()
			}
			ms := matchNames(re, names)
			c.submit(func() { c.regexMatched(regex, e, version, ms) })
		}()
	}
}

// regexMatched stores a background match of regex against listing version
// and resolves again the groups with a member subscribed to it. Loop only.
func (c *Coordinator) regexMatched(regex string, e *regexEntry, version uint64, ms []string) {
	rc := &c.regexes
	rc.busy, e.pending = false, false
	defer c.matchRegexes()
	if rc.cached(regex) != e || version <= e.version || c.cfg.TopicList == nil {
		return // evicted, or matched inline since
	}
	// Kept even if the listing changed meanwhile, so that a stream of
	// topic creations cannot keep a costly regex from ever resolving: the
	// resolves below queue it again for the new listing.
	e.matches, e.version = ms, version
	var topics []storage.TopicInfo
	for _, g := range c.groups {
		if g.cg == nil {
			continue
		}
		for _, m := range g.cg.members {
			if m.regex == regex {
				if topics == nil {
					topics = c.cfg.TopicList()
				}
				c.resolve(g, topics)
				break
			}
		}
	}
}
