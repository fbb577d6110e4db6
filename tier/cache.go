package tier

import "sync"

// cache is an LRU of object byte spans and decoded indexes, bounded by
// bytes. Buffers are immutable once inserted and never reused, so a slice
// handed to a caller stays valid after eviction (the GC frees it once the
// caller drops it). Hits allocate nothing.
type cache struct {
	mu       sync.Mutex
	maxBytes int64
	used     int64                   // guarded by mu
	m        map[cacheKey]*cacheItem // guarded by mu
	head     cacheItem               // sentinel: head.next is most recent; guarded by mu
}

// cacheKey: a span is entered once per index entry it covers (entry >= 0);
// an object's index under entry -1.
type cacheKey struct {
	obj   string
	entry int32
}

type cacheItem struct {
	prev, next *cacheItem
	obj        string
	// span: bytes of entries [first, end) of obj, starting at object
	// position pos.
	first, end int32
	pos        int64
	buf        []byte
	// index: decoded entries (first = -1).
	idx    []IndexEntry
	charge int64
}

func newCache(maxBytes int64) *cache {
	c := &cache{maxBytes: maxBytes, m: make(map[cacheKey]*cacheItem)}
	c.head.next, c.head.prev = &c.head, &c.head
	return c
}

func (c *cache) unlink(it *cacheItem) {
	it.prev.next, it.next.prev = it.next, it.prev
}

func (c *cache) pushFront(it *cacheItem) {
	it.prev, it.next = &c.head, c.head.next
	c.head.next.prev = it
	c.head.next = it
}

// get returns the item holding key and marks it recently used.
func (c *cache) get(obj string, entry int32) *cacheItem {
	c.mu.Lock()
	defer c.mu.Unlock()
	it := c.m[cacheKey{obj, entry}]
	if it != nil {
		c.unlink(it)
		c.pushFront(it)
	}
	return it
}

// has reports whether key is cached without touching recency.
func (c *cache) has(obj string, entry int32) bool {
	c.mu.Lock()
	_, ok := c.m[cacheKey{obj, entry}]
	c.mu.Unlock()
	return ok
}

// add inserts it (a span or an index) and evicts the least recently used
// items beyond maxBytes. An item larger than the whole cache is not kept.
// Keys already present keep their existing item.
func (c *cache) add(it *cacheItem) {
	if it.charge > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	added := false
	if it.idx != nil {
		if _, ok := c.m[cacheKey{it.obj, -1}]; !ok {
			c.m[cacheKey{it.obj, -1}] = it
			added = true
		}
	} else {
		for e := it.first; e < it.end; e++ {
			if _, ok := c.m[cacheKey{it.obj, e}]; !ok {
				c.m[cacheKey{it.obj, e}] = it
				added = true
			}
		}
	}
	if !added {
		return
	}
	c.pushFront(it)
	c.used += it.charge
	for c.used > c.maxBytes && c.head.prev != it {
		c.evict(c.head.prev)
	}
}

// evict removes it. mu held.
func (c *cache) evict(it *cacheItem) {
	c.unlink(it)
	c.used -= it.charge
	if it.idx != nil {
		delete(c.m, cacheKey{it.obj, -1})
		return
	}
	for e := it.first; e < it.end; e++ {
		if c.m[cacheKey{it.obj, e}] == it {
			delete(c.m, cacheKey{it.obj, e})
		}
	}
}

// usedBytes reports the bytes charged (tests, metrics).
func (c *cache) usedBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}
