package storage

// cacheWindow keeps about the newest budget bytes a shard wrote in the
// page cache and asks the kernel to drop older ones as soon as they are
// durable (vfs.File.DropCache). Without it the page cache grows with every
// byte written until memory runs out, and each page it grows into is
// memory the machine has not touched for a while. On a virtual machine
// that hands free memory back to its host (free page reporting,
// ballooning), touching such a page costs a fault in the host: measured
// on the reference machine, buffered writes into a new file ran at
// 790-950 MB/s into returned memory against 2650-3340 MB/s into pages
// freed a moment before, and the copy into the page cache took 48% of the
// broker's CPU on a broker that had written a few GB (the long-lived
// broker's doubled CPU per GB). Dropping what falls out of the window
// returns pages to the free list, and the next writes reuse them while
// they are still warm. Reads of data older than the window come from disk,
// as Kafka's do once the page cache has moved on. Syncer goroutine only.
type cacheWindow struct {
	budget int64 // bytes kept; 0: keep everything (the kernel decides)
	total  int64 // bytes in ranges
	ranges []cachedRange
}

type cachedRange struct {
	seg      *segment
	from, to int64
}

// dropStepBytes batches drops: one fadvise per this many bytes at most.
const dropStepBytes = 8 << 20

// add records that [from, to) of seg is written and durable. It only
// counts: trim does the dropping, after the acknowledgements.
func (w *cacheWindow) add(seg *segment, from, to int64) {
	if w.budget <= 0 || to <= from {
		return
	}
	if n := len(w.ranges); n > 0 && w.ranges[n-1].seg == seg && w.ranges[n-1].to == from {
		w.ranges[n-1].to = to
	} else {
		w.ranges = append(w.ranges, cachedRange{seg: seg, from: from, to: to})
	}
	w.total += to - from
}

// trim drops what is over budget, once that is a whole dropStepBytes.
func (w *cacheWindow) trim() {
	if w.budget <= 0 || w.total-w.budget < dropStepBytes {
		return
	}
	excess := w.total - w.budget
	for excess > 0 && len(w.ranges) > 0 {
		r := &w.ranges[0]
		n := min(excess, r.to-r.from)
		// A segment deleted meanwhile has nothing left to drop.
		if r.seg.acquire() {
			_ = r.seg.f.DropCache(r.from, n) // advisory: nothing to do if it fails
			r.seg.release()
		}
		r.from += n
		excess -= n
		w.total -= n
		if r.from == r.to {
			w.ranges[0] = cachedRange{}
			w.ranges = w.ranges[1:]
		}
	}
}
