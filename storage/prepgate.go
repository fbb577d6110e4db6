package storage

import (
	"sync/atomic"
	"time"
)

// Zero-filling a segment doubles the bytes the disk writes while it runs,
// and on this machine's virtual disk it held the WAL's fdatasyncs up by
// 50–300 ms when it ran at full speed beside a busy writer (produce p99 at
// half peak went from a few ms to hundreds). So preparation only writes
// zeros while the WAL leaves the disk alone, in small fsynced steps, and a
// roll takes the file as far as it got: a busy store ends up with
// fallocated segments (slightly slower fdatasyncs), an idle or moderate one
// with zero-filled ones (the fastest).
const (
	// zeroIdleGap: zeros are written only when no WAL fdatasync has run
	// for this long (and none is running). At 1 ms zero steps still slipped
	// in between a busy writer's fdatasyncs (20-50 ms stalls seen at
	// 230 MB/s); at 10 ms they still ran in the lulls of a steady 100k
	// records/s load (14 steps in 20 s, each 2-5 ms of disk the next WAL
	// fdatasync queued behind: -wal-trace). 50 ms leaves a steady load
	// alone and still zero-fills a WAL that pauses.
	zeroIdleGap = 50 * time.Millisecond
	// zeroPoll is how often a waiting preparation looks again.
	zeroPoll = 5 * time.Millisecond
	// zeroBytesPerSec budgets zero-filling for the whole store: even on
	// an idle WAL it takes at most this much of the disk, so other
	// writers on the same disk (and a WAL that wakes up) find it
	// available. A 256 MiB segment takes 8 s at this rate. At full speed
	// an idle broker's zero-fill took the disk's fdatasync p99 for other
	// processes from 1.0-1.4 ms to 23-30 ms (issue 10).
	zeroBytesPerSec = 32 << 20
)

// walActivity tracks the WAL's fdatasyncs across shards for preparation.
type walActivity struct {
	syncing  atomic.Int32
	lastEnd  atomic.Int64 // monotonic nanoseconds since walEpoch
	nextZero atomic.Int64 // earliest start of the next zero step (zeroBytesPerSec), since walEpoch
}

var walEpoch = time.Now()

func (a *walActivity) begin() { a.syncing.Add(1) }

func (a *walActivity) end() {
	a.lastEnd.Store(int64(time.Since(walEpoch)))
	a.syncing.Add(-1)
}

// idle reports whether the WAL has not synced for zeroIdleGap.
func (a *walActivity) idle() bool { return a.idleAt(time.Since(walEpoch)) }

// idleAt is idle at now, in monotonic nanoseconds since walEpoch.
func (a *walActivity) idleAt(now time.Duration) bool {
	return a.syncing.Load() == 0 && now-time.Duration(a.lastEnd.Load()) >= zeroIdleGap
}

// zeroSlot reserves the time the next zero step of n bytes may start
// under zeroBytesPerSec, shared by every shard's preparation.
func (a *walActivity) zeroSlot(now time.Duration, n int64) time.Duration {
	step := time.Duration(n * int64(time.Second) / zeroBytesPerSec)
	for {
		next := a.nextZero.Load()
		slot := max(now, time.Duration(next))
		if a.nextZero.CompareAndSwap(next, int64(slot+step)) {
			return slot
		}
	}
}

// waitZeroStep blocks until a zero step of n bytes may run: within the
// store's zero-fill budget and with the WAL idle (true), or until hurry
// is closed (false).
func (a *walActivity) waitZeroStep(hurry <-chan struct{}, n int64) bool {
	if d := a.zeroSlot(time.Since(walEpoch), n) - time.Since(walEpoch); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-hurry:
			return false
		case <-t.C:
		}
	}
	return a.waitIdle(hurry)
}

// waitIdle blocks until the WAL is idle (true) or hurry is closed (false).
func (a *walActivity) waitIdle(hurry <-chan struct{}) bool {
	for {
		select {
		case <-hurry:
			return false
		default:
		}
		if a.idle() {
			return true
		}
		select {
		case <-hurry:
			return false
		case <-time.After(zeroPoll):
		}
	}
}
