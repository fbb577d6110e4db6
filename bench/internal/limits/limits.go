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

// Sizes of the probes. FsyncAppendBytes and WriteChunkBytes are what the
// report names; the counts and totals are set per mode by Config.
const (
	FsyncAppendBytes = 64 << 10
	WriteChunkBytes  = 1 << 20
)

// Config sizes the probes.
type Config struct {
	Dir          string // where the WAL lives: probes write a scratch file here
	FsyncSamples int    // fdatasync calls to time
	SeqBytes     int64  // bytes for the sequential write probe
	TCPBytes     int64  // bytes for the loopback probe
}

// Result is one measurement of the limits.
type Result struct {
	FsyncP50   time.Duration
	FsyncP99   time.Duration
	FsyncMax   time.Duration
	SeqWriteBs float64 // bytes per second, 1 MiB writes + one final fdatasync
	TCPBs      float64 // bytes per second, one loopback stream, 1 MiB writes
}

// Measure runs all three probes in turn.
func Measure(ctx context.Context, cfg Config) (Result, error) {
	var r Result
	h, err := Fsync(ctx, cfg.Dir, cfg.FsyncSamples)
	if err != nil {
		return r, err
	}
	r.FsyncP50, r.FsyncP99, r.FsyncMax = h.Quantile(50), h.Quantile(99), h.Max()
	if r.SeqWriteBs, err = SeqWrite(ctx, cfg.Dir, cfg.SeqBytes); err != nil {
		return r, err
	}
	if r.TCPBs, err = Loopback(ctx, cfg.TCPBytes); err != nil {
		return r, err
	}
	return r, nil
}

// Fsync appends 64 KiB to a scratch file in dir n times and times each
// fdatasync that follows the append (the write itself is not timed: it lands
// in the page cache). This is the floor under an acks=all produce.
func Fsync(ctx context.Context, dir string, n int) (*stats.Hist, error) {
	f, err := os.CreateTemp(dir, "limits-fsync-*")
	if err != nil {
		return nil, fmt.Errorf("limits: fsync probe: %w", err)
	}
	defer removeFile(f)
	buf := pattern(FsyncAppendBytes)
	h := stats.NewHist()
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := f.Write(buf); err != nil {
			return nil, fmt.Errorf("limits: fsync probe write: %w", err)
		}
		start := time.Now()
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return nil, fmt.Errorf("limits: fdatasync: %w", err)
		}
		h.Record(time.Since(start))
	}
	return h, nil
}

// SeqWrite writes total bytes to a new scratch file in dir in 1 MiB writes and
// fdatasyncs once at the end; it returns bytes per second over the whole.
func SeqWrite(ctx context.Context, dir string, total int64) (float64, error) {
	f, err := os.CreateTemp(dir, "limits-seq-*")
	if err != nil {
		return 0, fmt.Errorf("limits: seq write probe: %w", err)
	}
	defer removeFile(f)
	buf := pattern(WriteChunkBytes)
	start := time.Now()
	for done := int64(0); done < total; done += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if _, err := f.Write(buf); err != nil {
			return 0, fmt.Errorf("limits: seq write: %w", err)
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return 0, fmt.Errorf("limits: fdatasync: %w", err)
	}
	return float64(roundUp(total, WriteChunkBytes)) / time.Since(start).Seconds(), nil
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
