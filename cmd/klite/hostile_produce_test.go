package main

// Hostile producers against the real binary: compressed batches that cost
// the broker far more to validate than they cost the client to send.

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kadm"
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
	for round := range rounds {
		for range conns {
			c, err := net.Dial("tcp", b.addr)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if _, err := c.Write(frames); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			c.Close()
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
