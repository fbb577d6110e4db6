package tier

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/klite/klite/tier/s3fault"
)

// TestS3ColdThroughOutage: against versitygw behind the fault proxy, the
// uploader (Run) and the snapshot loop keep up with new data; while S3
// answers 503 SlowDown and then resets connections they retry, lose
// nothing, and catch up once it is back. Cold reads and time lookups from
// a fresh uploader (a restarted broker) then match the source byte for
// byte, and the newest snapshot describes the final tier.
func TestS3ColdThroughOutage(t *testing.T) {
	endpoint := startVersitygw(t)
	proxy, err := s3fault.New(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	store := newVersitygwStore(t, proxy.URL(), nil)
	clean := newVersitygwStore(t, endpoint, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	src := newTestSource(t)
	parts := []Partition{testPart(0), testPart(1)}
	tsOf := func(i int) int64 { return 5000 + int64(i)*3 }
	batches := map[Partition][]testBatch{}
	add := func(chunks int) {
		for _, p := range parts {
			n := len(batches[p])
			batches[p] = append(batches[p], src.addBatchSegment(p, chunks, 3, func(i int) int64 { return tsOf(n + i) })...)
		}
	}
	add(20)
	up := NewUploader(UploaderConfig{Store: store, Source: src, Log: zerolog.Nop(), ObjectBytes: 2000, Parallel: 2,
		Attempts: 2, Backoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Interval: 50 * time.Millisecond})
	// The provider records each partition's tier end, as storage's log
	// starts and cmd's offsets export would describe the broker.
	loop := NewSnapshotLoop(SnapshotLoopConfig{Store: store, Uploader: up, Interval: time.Hour,
		Backoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Log: zerolog.Nop(),
		Provider: func() (MetaSnapshot, error) {
			var ends []byte
			for _, p := range parts {
				m, err := up.Manifest(ctx, p)
				if err != nil {
					return MetaSnapshot{}, err
				}
				ends = binary.BigEndian.AppendUint64(ends, uint64(m.NextOffset()))
			}
			return MetaSnapshot{Topics: []SnapshotTopic{{Name: "orders", Partitions: int32(len(parts))}}, Offsets: ends}, nil
		}})
	runCtx, stop := context.WithCancel(ctx)
	upDone, loopDone := make(chan struct{}), make(chan struct{})
	go func() { up.Run(runCtx); close(upDone) }()
	go func() { loop.Run(runCtx); close(loopDone) }()
	defer func() { stop(); <-upDone; <-loopDone }()

	caughtUp := func() bool { return src.caughtUp(parts) }
	waitFor(t, time.Minute, "first upload", caughtUp)

	for _, mode := range []s3fault.Mode{s3fault.SlowDown, s3fault.Reset} {
		proxy.SetMode(mode)
		add(10)
		up.Kick()
		faults := proxy.Faults()
		waitFor(t, time.Minute, mode.String()+" faults", func() bool { return proxy.Faults() > faults+20 })
		if caughtUp() {
			t.Fatalf("caught up through %v", mode)
		}
		proxy.SetMode(s3fault.Pass)
		waitFor(t, time.Minute, "catch up after "+mode.String(), caughtUp)
	}
	snapshotFinal := func() bool {
		s, ok, err := LoadSnapshot(ctx, clean)
		if err != nil || !ok || len(s.Offsets) != 8*len(parts) {
			return false
		}
		for i, p := range parts {
			if int64(binary.BigEndian.Uint64(s.Offsets[8*i:])) != src.sealed[p] {
				return false
			}
		}
		return true
	}
	waitFor(t, time.Minute, "a snapshot of the final tier", snapshotFinal)

	// A restarted broker: fresh uploader and reader on the bucket alone.
	cold := NewCold(ColdConfig{Uploader: NewUploader(UploaderConfig{Store: clean, Source: src, Log: zerolog.Nop()}),
		Reader: NewReader(ReaderConfig{Store: clean, CacheBytes: 1 << 20}), Log: zerolog.Nop()})
	defer cold.Close()
	for _, p := range parts {
		m, err := cold.Manifest(ctx, p)
		if err != nil || m == nil || m.NextOffset() != src.sealed[p] || len(m.Objects) < 3 {
			t.Fatalf("%v: manifest %+v, %v", p, m, err)
		}
		var pos int64
		for _, c := range src.chunks[p] {
			got, err := cold.Read(ctx, p, c.BaseOffset, 1)
			if err != nil || !bytes.Equal(got, src.data[p][pos:pos+int64(c.Len)]) {
				t.Fatalf("%v read %d: %d bytes, %v", p, c.BaseOffset, len(got), err)
			}
			pos += int64(c.Len)
		}
		for _, i := range []int{0, 7, len(batches[p]) / 2, len(batches[p]) - 1} {
			b := batches[p][i]
			off, ts, err := cold.OffsetForTime(ctx, p, b.maxTS-1)
			if err != nil || off != b.base || ts != b.maxTS {
				t.Fatalf("%v OffsetForTime(%d): %d %d %v, want %d %d", p, b.maxTS-1, off, ts, err, b.base, b.maxTS)
			}
		}
		if off, _, err := cold.OffsetForTime(ctx, p, tsOf(len(batches[p]))+1); off != -1 || err != nil {
			t.Fatalf("%v OffsetForTime past the end: %d %v", p, off, err)
		}
	}
	t.Logf("proxy: %d requests, %d faults", proxy.Requests(), proxy.Faults())
}
