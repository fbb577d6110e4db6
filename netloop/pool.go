package netloop

import (
	"math/bits"
	"sync"
)

// Frame and copy buffers come from power-of-two size classes, one sync.Pool
// each. A buffer is returned to the class its capacity names; anything larger
// than the biggest class is left to the garbage collector.
const (
	minClassShift = 9  // 512 B
	maxClassShift = 27 // 128 MiB, above the default MaxFrameBytes
)

var bufPools [maxClassShift - minClassShift + 1]sync.Pool

// sizeClass returns the pool index for a buffer of n bytes (n <= 1<<maxClassShift).
func sizeClass(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// getBuf returns a buffer of length n. The pointer is what putBuf takes back,
// so recycling allocates nothing.
func getBuf(n int) *[]byte {
	if n > 1<<maxClassShift {
		b := make([]byte, n)
		return &b
	}
	c := sizeClass(n)
	if v := bufPools[c].Get(); v != nil {
		bp := v.(*[]byte)
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, 1<<(c+minClassShift))
	return &b
}

// putBuf returns a buffer from getBuf to its pool. nil is ignored.
func putBuf(bp *[]byte) {
	if bp == nil {
		return
	}
	c := cap(*bp)
	if c < 1<<minClassShift || c > 1<<maxClassShift || c&(c-1) != 0 {
		return
	}
	bufPools[sizeClass(c)].Put(bp)
}
