// Package limits measures the machine's physical limits that bound what a
// broker can do: the disk's fdatasync latency, its sequential write
// throughput, and loopback TCP throughput. The benchmark measures them in the
// same run as the broker so every broker figure can be quoted as a fraction
// of a limit measured minutes apart on the same (noisy, shared) machine.
package limits

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klite/klite/bench/internal/stats"
)

// Sizes of the probes. FsyncAppendBytes, WriteChunkBytes and SeqSyncBytes
// are what the report names; the counts, totals and durations are set per
// mode by Config.
const (
	FsyncAppendBytes = 64 << 10
	WriteChunkBytes  = 1 << 20
	// SeqSyncBytes is how often the sequential write probe fdatasyncs: a
	// virtual disk's host cache absorbs a short burst that ends with one
	// sync, so the probe syncs as it goes and the figure is what the disk
	// sustains, as a WAL that group-commits sees it.
	SeqSyncBytes = 16 << 20
	// fsyncRollBytes bounds the fsync probe's scratch file: past it the
	// probe starts a new one (the probe may run for seconds).
	fsyncRollBytes = 256 << 20
)

// Config sizes the probes. Each disk probe runs until it has both its count
// (or bytes) and its time: a probe of a fraction of a second samples the
// disk between two of its stalls, or inside the host's write cache.
type Config struct {
	Dir          string        // where the WAL lives: probes write a scratch file here
	FsyncSamples int           // fdatasync calls to time, at least
	FsyncMinTime time.Duration // and for at least this long
	SeqBytes     int64         // bytes for the sequential write probe, at least
	SeqMinTime   time.Duration // and for at least this long
	TCPBytes     int64         // bytes for the loopback probe
}

// Result is one measurement of the limits.
type Result struct {
	FsyncP50     time.Duration
	FsyncP99     time.Duration
	FsyncMax     time.Duration
	FsyncSamples int64
	SeqWriteBs   float64 // bytes per second, 1 MiB writes, fdatasync every SeqSyncBytes
	SeqBytes     int64   // what the sequential probe wrote
	TCPBs        float64 // bytes per second, one loopback stream, 1 MiB writes
}

// Measure runs all three probes in turn.
func Measure(ctx context.Context, cfg Config) (Result, error) {
	var r Result
	h, err := Fsync(ctx, cfg.Dir, cfg.FsyncSamples, cfg.FsyncMinTime)
	if err != nil {
		return r, err
	}
	r.FsyncP50, r.FsyncP99, r.FsyncMax, r.FsyncSamples = h.Quantile(50), h.Quantile(99), h.Max(), h.Count()
	if r.SeqWriteBs, r.SeqBytes, err = SeqWrite(ctx, cfg.Dir, cfg.SeqBytes, cfg.SeqMinTime); err != nil {
		return r, err
	}
	if r.TCPBs, err = Loopback(ctx, cfg.TCPBytes); err != nil {
		return r, err
	}
	return r, nil
}

// Fsync appends 64 KiB to a scratch file in dir and times the fdatasync
// that follows each append (the write itself is not timed: it lands in the
// page cache), at least n times and for at least minTime. This is the floor
// under an acks=all produce.
func Fsync(ctx context.Context, dir string, n int, minTime time.Duration) (*stats.Hist, error) {
	f, err := os.CreateTemp(dir, "limits-fsync-*")
	if err != nil {
		return nil, fmt.Errorf("limits: fsync probe: %w", err)
	}
	defer func() { removeFile(f) }()
	buf := pattern(FsyncAppendBytes)
	h := stats.NewHist()
	began := time.Now()
	var size int64
	for i := 0; i < n || time.Since(began) < minTime; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if size >= fsyncRollBytes {
			removeFile(f)
			if f, err = os.CreateTemp(dir, "limits-fsync-*"); err != nil {
				return nil, fmt.Errorf("limits: fsync probe: %w", err)
			}
			size = 0
		}
		if _, err := f.Write(buf); err != nil {
			return nil, fmt.Errorf("limits: fsync probe write: %w", err)
		}
		size += int64(len(buf))
		start := time.Now()
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return nil, fmt.Errorf("limits: fdatasync: %w", err)
		}
		h.Record(time.Since(start))
	}
	return h, nil
}

// SeqWrite writes a new scratch file in dir in 1 MiB writes with an
// fdatasync after every SeqSyncBytes and at the end, until it has written
// at least total bytes and spent at least minTime. It returns bytes per
// second over the whole (the last sync included) and the bytes written.
func SeqWrite(ctx context.Context, dir string, total int64, minTime time.Duration) (float64, int64, error) {
	f, err := os.CreateTemp(dir, "limits-seq-*")
	if err != nil {
		return 0, 0, fmt.Errorf("limits: seq write probe: %w", err)
	}
	defer removeFile(f)
	buf := pattern(WriteChunkBytes)
	sync := func() error {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return fmt.Errorf("limits: fdatasync: %w", err)
		}
		return nil
	}
	start := time.Now()
	var done, unsynced int64
	for done < total || time.Since(start) < minTime {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		if _, err := f.Write(buf); err != nil {
			return 0, 0, fmt.Errorf("limits: seq write: %w", err)
		}
		done += int64(len(buf))
		if unsynced += int64(len(buf)); unsynced >= SeqSyncBytes {
			if err := sync(); err != nil {
				return 0, 0, err
			}
			unsynced = 0
		}
	}
	if err := sync(); err != nil {
		return 0, 0, err
	}
	return float64(done) / time.Since(start).Seconds(), done, nil
}

// Loopback sends total bytes over one TCP connection on 127.0.0.1 in 1 MiB
// writes and returns bytes per second, timed until the reader has them all.
func Loopback(ctx context.Context, total int64) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("limits: loopback listen: %w", err)
	}
	defer ln.Close()

	type readResult struct {
		n   int64
		err error
	}
	got := make(chan readResult, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- readResult{err: err}
			return
		}
		defer c.Close()
		n, err := io.CopyBuffer(io.Discard, c, make([]byte, WriteChunkBytes))
		got <- readResult{n, err}
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("limits: loopback dial: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	buf := pattern(WriteChunkBytes)
	want := roundUp(total, WriteChunkBytes)
	start := time.Now()
	for done := int64(0); done < want; done += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, fmt.Errorf("limits: loopback write: %w", errors.Join(err, ctx.Err()))
		}
	}
	c.Close() // EOF ends the reader's copy
	r := <-got
	el := time.Since(start)
	if r.err != nil {
		return 0, fmt.Errorf("limits: loopback read: %w", r.err)
	}
	if r.n != want {
		return 0, fmt.Errorf("limits: loopback read %d bytes, sent %d", r.n, want)
	}
	return float64(want) / el.Seconds(), nil
}

func roundUp(n, unit int64) int64 {
	return (n + unit - 1) / unit * unit
}

// pattern returns n bytes that do not compress to nothing (a filesystem or
// virtual disk that dedups zeros would flatter the figure).
func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func removeFile(f *os.File) {
	name := f.Name()
	f.Close()
	os.Remove(name)
}
