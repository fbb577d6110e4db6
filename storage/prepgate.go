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
	// 230 MB/s); at 10 ms a writer at that rate leaves it no room and the
	// roll takes a fallocated file (1-4 MiB zeroed, measured).
	zeroIdleGap = 10 * time.Millisecond
	// zeroPoll is how often a waiting preparation looks again.
	zeroPoll = 2 * time.Millisecond
)

// walActivity tracks the WAL's fdatasyncs across shards for preparation.
type walActivity struct {
	syncing atomic.Int32
	lastEnd atomic.Int64 // monotonic nanoseconds since walEpoch
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
