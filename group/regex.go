package group

import (
	"regexp"

	"github.com/klite/klite/storage"
)

// DefaultMaxRegexBytes bounds a KIP-848 SubscribedTopicRegex. Go's regexp
// matches in time proportional to the regex's size times the name's, and
// subscriptions are matched against every topic name on the coordinator
// loop, so the bound is what keeps one heartbeat from holding every group.
// Real subscriptions are a prefix or a handful of names ("orders-.*",
// "(a|b|c)"): 4 KiB still holds sixteen 249-byte topic names as
// alternatives; a longer list belongs in SubscribedTopicNames.
const DefaultMaxRegexBytes = 4096

// maxCachedRegexes bounds the regex cache: at most this many compiled
// regexes and their match lists are kept (each at most MaxRegexBytes of
// source, so a few MB at worst).
const maxCachedRegexes = 1024

// regexCache compiles each distinct subscription regex once and keeps the
// topics it matched in the last topic listing. A listing's names change
// only when topics are created or deleted, so heartbeats, refreshes and
// members sharing a regex match nothing again until then. Loop only.
type regexCache struct {
	names   []string // names of the last listing, in its order
	version uint64   // bumped whenever names change
	entries map[string]*regexEntry
}

type regexEntry struct {
	re      *regexp.Regexp
	version uint64   // the listing matches belong to; 0 is none
	matches []string // in listing order
}

// compile returns expr's cache entry, compiling it on a miss. The regex
// must match a whole topic name, as Java's Matcher.matches().
func (rc *regexCache) compile(expr string) (*regexEntry, error) {
	if e := rc.entries[expr]; e != nil {
		return e, nil
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, err
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
	e := &regexEntry{re: re}
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
	rc.names = rc.names[:0]
	for _, t := range topics {
		rc.names = append(rc.names, t.Name)
	}
	rc.version++
}

// matches returns the names of the last listing that expr matches, or
// false when expr does not compile (a member's regex compiled when it
// subscribed, so that is only a programming error).
func (rc *regexCache) matches(expr string) ([]string, bool) {
	e, err := rc.compile(expr)
	if err != nil {
		return nil, false
	}
	if e.version != rc.version {
		var ms []string // a new slice: callers may hold the last one
		for _, name := range rc.names {
			if e.re.MatchString(name) {
				ms = append(ms, name)
			}
		}
		e.matches, e.version = ms, rc.version
	}
	return e.matches, true
}
