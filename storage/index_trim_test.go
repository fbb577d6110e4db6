package storage

import (
	"sync"
	"testing"
)

// TestIndexTrim: trimmed entries are unreachable, pages wholly below the
// first live entry are dropped, and time lookups ignore trimmed chunks
// even when they held the largest timestamps.
func TestIndexTrim(t *testing.T) {
	var x chunkIndex
	const n = 3 * indexPageEntries
	for i := range int64(n) {
		ts := i
		if i == 10 {
			ts = 1 << 40 // a trimmed chunk with the largest timestamp
		}
		x.add(chunkEntry{base: 2 * i, last: 2*i + 1, length: 100, maxTs: ts, maxTsOff: 2 * i})
	}
	first := int64(indexPageEntries + 100)
	x.trim(first)
	x.trim(5) // never backwards
	v := x.view()
	if v.first != first {
		t.Fatalf("first %d", v.first)
	}
	if (*x.pages.Load())[0] != nil || (*x.pages.Load())[1] == nil {
		t.Fatal("page 0 kept or page 1 dropped")
	}
	if i := v.find(2*first - 1); i != -1 {
		t.Fatalf("find below the first live entry: %d", i)
	}
	if i := v.find(2*first + 1); i != first {
		t.Fatalf("find(%d) = %d", 2*first+1, i)
	}
	// ts 50 is below the trimmed max: the walk finds the first live chunk.
	if i := v.findTime(50); i != first {
		t.Fatalf("findTime(50) = %d, want %d", i, first)
	}
	if i := v.findTime(first + 7); i != first+7 {
		t.Fatalf("findTime(%d) = %d", first+7, i)
	}
	if i := v.findTime(1 << 41); i != -1 {
		t.Fatalf("findTime past all = %d", i)
	}
	if b := v.at(v.n-1).cumBytes - v.at(first).cumBytes + v.at(first).length; b != (n-first)*100 {
		t.Fatalf("live bytes %d", b)
	}
	x.trim(n)
	if v := x.view(); v.find(1<<40) != -1 || v.findTime(0) != -1 {
		t.Fatal("everything trimmed, yet found")
	}
}

// TestIndexTrimConcurrent: readers, an appender and trims at once (-race).
func TestIndexTrimConcurrent(t *testing.T) {
	var x chunkIndex
	x.add(chunkEntry{base: 0, last: 0})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := x.view()
				for off := v.first; off < v.n; off += 97 {
					if i := v.find(off); i >= 0 && v.at(i).base != off {
						t.Errorf("find(%d) gave base %d", off, v.at(i).base)
						return
					}
				}
			}
		}()
	}
	for i := int64(1); i < 20*indexPageEntries; i++ {
		x.add(chunkEntry{base: i, last: i})
		if i%300 == 0 {
			x.trim(i - 100)
		}
	}
	close(stop)
	wg.Wait()
}
