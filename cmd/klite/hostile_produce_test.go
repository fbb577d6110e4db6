package main

// Hostile producers against the real binary: compressed batches that cost
// the broker far more to validate than they cost the client to send.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// zstdBomb returns a produce frame (v7, acks 1) whose zstd batch holds one
// valid record with a value of n zero bytes: a few KiB on the wire, n bytes
// to decompress and walk.
func zstdBomb(t testing.TB, topic string, n int, corr int32) []byte {
	t.Helper()
	recs := encRecords([]int32{0}, make([]byte, n))
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	body := enc.EncodeAll(recs, nil)
	return reqFrame(0, 7, corr, false, produceBody(topic, 1, craftBatch(4, 1, body)))
}

// TestHostileProduceAbandonedBombs: connections that pipeline compressed
// batches which decompress to 16 MiB (100 each, the in-flight cap) and
// close at once. Each costs 4 KiB to send and milliseconds of CPU to
// validate; a client that reconnects over and over would queue unbounded
// CPU work ahead of every well-behaved producer (before the fix, 10,865 such
// batches of 60 MiB held a good producer for 2m17s here). The broker must
// drop the queued requests of a closed connection: the bombs are valid, so
// each one validated is appended, and the offset a well-behaved producer
// then gets counts them. Before the fix 1,699 to over 2,000 of the 4,000
// were (the rest were cut with their connection before being read); after
// it, a dozen.
func TestHostileProduceAbandonedBombs(t *testing.T) {
	const conns, perConn, rounds = 20, 100, 2
	const bombBytes = 16 << 20
	b := startBroker(t, "-max-inflight-requests", strconv.Itoa(perConn))
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), "bombs", 1)

	var frames []byte
	for i := range perConn {
		frames = append(frames, zstdBomb(t, "bombs", bombBytes, int32(i))...)
	}
	sent := conns * perConn * rounds
	t.Logf("%d bombs of %d bytes each on the wire", sent, len(frames)/perConn)
	for range rounds {
		for range conns {
			sendFrames(t, b.addr, frames).Close()
		}
	}
	// A good producer's compressed batch, queued behind what is left.
	start := time.Now()
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(zstdBomb(t, "bombs", 100, 1)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Minute))
	resp, err := readFrameMax(c, mib)
	if err != nil {
		t.Fatal(err)
	}
	var pr kmsg.ProduceResponse
	pr.Version = 7
	if err := pr.ReadFrom(resp[4:]); err != nil {
		t.Fatal(err)
	}
	got := pr.Topics[0].Partitions[0]
	t.Logf("good produce answered after %v at offset %d", time.Since(start), got.BaseOffset)
	if got.ErrorCode != 0 {
		t.Fatalf("good produce: error %d", got.ErrorCode)
	}
	if got.BaseOffset >= int64(sent/10) {
		t.Errorf("%d of %d bombs from closed connections were validated and appended", got.BaseOffset, sent)
	}
	b.stop()
}

// TestHostileProduceMixedPipeline pipelines, on one connection, produce
// requests that are validated on the event loop (one uncompressed record)
// and off it (zstd, or 2,000 uncompressed records), with acks 1 and 0 mixed
// in.
// A connection's batches must reach the log in request order: every record
// read back carries its request's number, in increasing order, and the
// answers to acks=1 requests arrive in request order with increasing
// offsets.
func TestHostileProduceMixedPipeline(t *testing.T) {
	const requests = 300
	b := startBroker(t)
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), "mixed", 1)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	var frames []byte
	acked := 0
	for i := range requests {
		val := []byte(fmt.Sprintf("%06d", i))
		acks := int16(1)
		if i%7 == 3 {
			acks = 0
		} else {
			acked++
		}
		var batch []byte
		switch i % 3 {
		case 0: // inline
			batch = craftBatch(0, 1, encRecords([]int32{0}, val))
		case 1: // off the loop: compressed
			batch = craftBatch(4, 1, enc.EncodeAll(encRecords([]int32{0}, val), nil))
		case 2: // off the loop: many records
			const n = 2000
			deltas := make([]int32, n)
			vals := make([][]byte, n)
			for j := range n {
				deltas[j], vals[j] = int32(j), val
			}
			batch = craftBatch(0, n, encRecords(deltas, vals...))
		}
		frames = append(frames, reqFrame(0, 7, int32(i), false, produceBody("mixed", acks, batch))...)
	}
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A broker that stops answering fails the test instead of hanging it.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	go c.Write(frames) // its error shows as a missing answer
	last := int64(-1)
	for i := range acked {
		resp, err := readFrameMax(c, mib)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		var pr kmsg.ProduceResponse
		pr.Version = 7
		if err := pr.ReadFrom(resp[4:]); err != nil {
			t.Fatal(err)
		}
		if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 {
			t.Fatalf("answer %d names %d topics", i, len(pr.Topics))
		}
		p := pr.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset <= last {
			t.Fatalf("answer %d (correlation %d): error %d, offset %d after %d", i, int32(binary.BigEndian.Uint32(resp)), p.ErrorCode, p.BaseOffset, last)
		}
		last = p.BaseOffset
	}
	c.Close()

	total := 0
	for i := range requests {
		if i%3 == 2 {
			total += 2000
		} else {
			total++
		}
	}
	prev := -1
	for j, r := range consumeN(t, b.addr, "mixed", map[int32]kgo.Offset{0: kgo.NewOffset().At(0)}, total) {
		n, err := strconv.Atoi(string(r.Value))
		if err != nil || n < prev || int64(j) != r.Offset {
			t.Fatalf("record at offset %d: %q after request %d", r.Offset, r.Value, prev)
		}
		prev = n
	}
	if prev != requests-1 {
		t.Fatalf("last record from request %d, want %d", prev, requests-1)
	}
	b.stop()
}

// zstdWindowFrame returns a produce frame whose zstd batch holds one small
// valid record in a frame that declares a window of 128 MiB (window
// descriptor 0x88, the largest zstd decoders accept by default): 41 bytes
// of frame that make a decoder set up a 128 MiB ring.
func zstdWindowFrame(t testing.TB, topic string, corr int32) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithWindowSize(1<<20), zstd.WithSingleSegment(false), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	enc.Write(encRecords([]int32{0}, bytes.Repeat([]byte("abcdefgh"), 128)))
	enc.Close()
	frame := buf.Bytes()
	frame[5] = 0x88 // window descriptor (no single segment): 1<<27
	var h zstd.Header
	if err := h.Decode(frame); err != nil || h.WindowSize != 128<<20 {
		t.Fatalf("crafted zstd header: %v, window %d", err, h.WindowSize)
	}
	return reqFrame(0, 7, corr, false, produceBody(topic, 1, craftBatch(4, 1, frame)))
}

// TestHostileProduceZstdWindows: 1,000 produce requests (20 connections at
// once) whose zstd frames declare a 128 MiB window over 1 KiB of records,
// with -max-decompressed-batch-bytes at 1 GiB so the window is allowed.
// Each is valid and appended. A decoder made per batch allocated the whole
// window each time: 14 s of CPU and a peak RSS of 788 MiB for 41 KB of
// frames. Decoders for large windows are pooled and at most two are in use
// at once, so their memory is at most two windows.
func TestHostileProduceZstdWindows(t *testing.T) {
	const conns, perConn = 20, 50
	b := startBroker(t, "-max-decompressed-batch-bytes", strconv.Itoa(1<<30))
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), "windows", 1)
	pid := b.cmd.Process.Pid
	base := memStatus(t, pid).rss
	var frames []byte
	for i := range perConn {
		frames = append(frames, zstdWindowFrame(t, "windows", int32(i))...)
	}
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", b.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.Write(frames)
			c.SetReadDeadline(time.Now().Add(5 * time.Minute))
			for i := range perConn {
				resp, err := readFrameMax(c, mib)
				if err != nil {
					t.Errorf("answer %d: %v", i, err)
					return
				}
				var pr kmsg.ProduceResponse
				pr.Version = 7
				if err := pr.ReadFrom(resp[4:]); err != nil || pr.Topics[0].Partitions[0].ErrorCode != 0 {
					t.Errorf("answer %d: %v %+v", i, err, pr.Topics)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Two 128 MiB windows (and their two blocks of space), plus the
	// runtime's 64 MiB.
	bound := base + 2*(128+1)*mib + 64*mib
	m := memStatus(t, pid)
	t.Logf("RSS before %d MiB, after %d MiB, peak %d MiB; bound %d MiB", base/mib, m.rss/mib, m.hwm/mib, bound/mib)
	checkPeak(t, "peak RSS (a large-window zstd decoder per batch?)", m.hwm, int64(bound))
	b.stop()
}
