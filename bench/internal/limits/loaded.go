package limits

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klite/klite/bench/internal/stats"
)

// LoadedWriteBytes is the write size of the loaded fdatasync probe.
const LoadedWriteBytes = 256 << 10

// loadedFileBytes is how much each preallocated scratch file of the loaded
// probe holds before it rolls to the next (a WAL segment writes into
// allocated space, so should the probe).
const loadedFileBytes = 256 << 20

// Loaded is the loaded fdatasync probe's result: the latency of one group
// commit (the writes that were due, then one fdatasync) while the disk takes
// writes at RateBs.
type Loaded struct {
	RateBs     float64 // the asked-for write rate
	AchievedBs float64 // what the loop wrote per second
	P50        time.Duration
	P99        time.Duration
	P999       time.Duration
	Max        time.Duration
	Syncs      int64
}

// String is the probe's one-line summary.
func (l Loaded) String() string {
	return fmt.Sprintf("fdatasync under %.0f MB/s (achieved %.0f MB/s): p50 %v p99 %v p99.9 %v max %v (%d syncs)",
		l.RateBs/1e6, l.AchievedBs/1e6, l.P50, l.P99, l.P999, l.Max, l.Syncs)
}

// dueWrites is how many whole writes of size bytes are due at elapsed when
// the loop writes rateBs and has written written bytes so far. At most one
// is due at the start, so the first group is not empty.
func dueWrites(rateBs float64, elapsed time.Duration, written int64, size int) int {
	want := int64(rateBs * elapsed.Seconds())
	n := (want - written) / int64(size)
	if written == 0 && n < 1 {
		return 1
	}
	return int(max(n, 0))
}

// nextDue is how long until the next write is due.
func nextDue(rateBs float64, elapsed time.Duration, written int64, size int) time.Duration {
	at := time.Duration(float64(written+int64(size)) / rateBs * float64(time.Second))
	return max(at-elapsed, 0)
}

// FsyncLoaded writes rateBs into preallocated scratch files in dir in
// 256 KiB writes for d, group-commit style: whatever writes are due go out,
// then one fdatasync, and the time from the first write to the sync's
// return is one sample. It is the fdatasync latency a WAL sees while it
// writes at that rate, which on a virtual disk is far from the idle figure.
func FsyncLoaded(ctx context.Context, dir string, rateBs float64, d time.Duration) (Loaded, error) {
	res := Loaded{RateBs: rateBs}
	if rateBs <= 0 {
		return res, fmt.Errorf("limits: loaded fsync probe: rate %v B/s", rateBs)
	}
	var f *os.File
	roll := func() error {
		if f != nil {
			removeFile(f)
		}
		var err error
		if f, err = os.CreateTemp(dir, "limits-loaded-*"); err != nil {
			return fmt.Errorf("limits: loaded fsync probe: %w", err)
		}
		if err := unix.Fallocate(int(f.Fd()), 0, 0, loadedFileBytes); err != nil {
			return fmt.Errorf("limits: loaded fsync probe: fallocate: %w", err)
		}
		// Make the allocation durable before timing, as a WAL does when it
		// preallocates a segment.
		if err := unix.Fsync(int(f.Fd())); err != nil {
			return fmt.Errorf("limits: loaded fsync probe: fsync: %w", err)
		}
		return nil
	}
	if err := roll(); err != nil {
		return res, err
	}
	defer func() { removeFile(f) }()
	buf := pattern(LoadedWriteBytes)
	h := stats.NewHist()
	var written, off int64
	start := time.Now()
	for time.Since(start) < d {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		el := time.Since(start)
		n := dueWrites(rateBs, el, written, LoadedWriteBytes)
		if n == 0 {
			time.Sleep(nextDue(rateBs, el, written, LoadedWriteBytes))
			continue
		}
		began := time.Now()
		for range n {
			if off+LoadedWriteBytes > loadedFileBytes {
				// Sync what this file holds first, then roll; the roll
				// itself is not part of any sample.
				if err := unix.Fdatasync(int(f.Fd())); err != nil {
					return res, fmt.Errorf("limits: fdatasync: %w", err)
				}
				h.Record(time.Since(began))
				if err := roll(); err != nil {
					return res, err
				}
				off, began = 0, time.Now()
			}
			if _, err := f.WriteAt(buf, off); err != nil {
				return res, fmt.Errorf("limits: loaded fsync probe write: %w", err)
			}
			off += LoadedWriteBytes
			written += LoadedWriteBytes
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return res, fmt.Errorf("limits: fdatasync: %w", err)
		}
		h.Record(time.Since(began))
	}
	res.AchievedBs = float64(written) / time.Since(start).Seconds()
	res.P50, res.P99, res.P999, res.Max, res.Syncs = h.Quantile(50), h.Quantile(99), h.Quantile(99.9), h.Max(), h.Count()
	return res, nil
}

// LoadedRate is the write rate the loaded probe should run at: records/s
// times record bytes when the produce rate is known, else half the measured
// sequential write median.
func LoadedRate(recordsPerSec float64, recordBytes int, seqWriteBs float64) float64 {
	if recordsPerSec > 0 && recordBytes > 0 {
		return recordsPerSec * float64(recordBytes)
	}
	return seqWriteBs / 2
}
