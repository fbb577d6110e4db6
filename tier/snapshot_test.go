package tier

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func testSnapshot() *MetaSnapshot {
	s := &MetaSnapshot{
		ClusterID: "Hx3kP0rWQy6lLQ2sM-_aBg",
		Topics: []SnapshotTopic{
			{Name: "orders", Partitions: 3, Configs: map[string]string{"retention.ms": "1000", "cleanup.policy": "delete"},
				LogStart: []int64{0, 17, 1 << 40}},
			{Name: "empty", Partitions: 0},
			{Name: "no-starts", Partitions: 2, Configs: map[string]string{"x": ""}},
		},
		Producers:     []byte("producer state"),
		Offsets:       []byte{1, 2, 3},
		ACLs:          []byte(`[{"rt":2}]`),
		Users:         []byte(`[{"user":"alice"}]`),
		Quotas:        []byte(`[{"entity":{"user":"alice"}}]`),
		BrokerConfigs: []byte(`{"":{"log.retention.ms":"1000"}}`),
	}
	s.Topics[0].ID[0], s.Topics[0].ID[15] = 0xde, 0xad
	s.Topics[1].ID[3] = 7
	return s
}

// TestSnapshotRoundTrip: decode(encode(s)) == s; every truncation and
// every flipped byte is ErrCorrupt, never a panic; encoding is
// deterministic (configs sorted).
func TestSnapshotRoundTrip(t *testing.T) {
	s := testSnapshot()
	b, err := EncodeSnapshot(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	for range 5 {
		if b2, _ := EncodeSnapshot(s); string(b2) != string(b) {
			t.Fatal("encoding not deterministic")
		}
	}
	empty, err := EncodeSnapshot(&MetaSnapshot{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeSnapshot(empty); err != nil || len(got.Topics) != 0 || got.Producers != nil {
		t.Fatalf("empty: %+v %v", got, err)
	}
	for n := range len(b) {
		if _, err := DecodeSnapshot(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		if _, err := DecodeSnapshot(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
}

// TestSnapshotOldVersions: snapshots of each older version still decode:
// version 1 without the cluster id, and version 3+i and later only with
// trailing blob i (ACLs, users, quotas).
func TestSnapshotOldVersions(t *testing.T) {
	for v := byte(snapshotVersion1); v < snapshotVersion; v++ {
		want := testSnapshot()
		if v < 2 {
			want.ClusterID = ""
		}
		missing := 0
		for i, blob := range want.trailing() {
			if int(v) < 3+i {
				*blob = nil
				missing++
			}
		}
		b, err := EncodeSnapshot(want)
		if err != nil {
			t.Fatal(err)
		}
		// Cut the CRC and the (empty) lengths of what v does not have.
		cut := 4 + 4*missing
		if v < 2 {
			cut += 2
		}
		old := append([]byte(nil), b[:len(b)-cut]...)
		old[4] = v
		got, err := DecodeSnapshot(appendCRC(old))
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("version %d:\n got %+v\nwant %+v", v, got, want)
		}
	}
}

// TestSnapshotLimits: encode refuses what decode would refuse; a huge
// count with a valid CRC is refused before allocating.
func TestSnapshotLimits(t *testing.T) {
	bad := []MetaSnapshot{
		{Topics: []SnapshotTopic{{Name: ""}}},
		{Topics: []SnapshotTopic{{Name: strings.Repeat("x", 250)}}},
		{Topics: []SnapshotTopic{{Name: "a", Partitions: -1}}},
		{Topics: []SnapshotTopic{{Name: "a", Partitions: 1, LogStart: []int64{1, 2}}}},
		{Topics: []SnapshotTopic{{Name: "a", Configs: map[string]string{"": "v"}}}},
		{ClusterID: strings.Repeat("c", maxClusterIDBytes+1)},
	}
	for i := range bad {
		if _, err := EncodeSnapshot(&bad[i]); err == nil {
			t.Errorf("case %d encoded", i)
		}
	}
	// A topic count of 2^20 in a tiny body, CRC fixed up.
	b, _ := EncodeSnapshot(&MetaSnapshot{})
	b = b[:len(b)-4]
	b[8], b[9], b[10], b[11] = 0, 0x10, 0, 0
	b = appendCRC(b)
	if _, err := DecodeSnapshot(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("huge topic count: %v", err)
	}
}

func appendCRC(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// TestPublishLoadSnapshot: versions go up one by one, the newest loads,
// only keepSnapshotVersions stay.
func TestPublishLoadSnapshot(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	if s, ok, err := LoadSnapshot(ctx, store); s != nil || ok || err != nil {
		t.Fatalf("empty bucket: %v %v %v", s, ok, err)
	}
	s := testSnapshot()
	for i := 1; i <= 6; i++ {
		s.Producers = []byte{byte(i)}
		seq, err := PublishSnapshot(ctx, store, s)
		if err != nil || seq != uint64(i) {
			t.Fatalf("publish %d: seq %d, %v", i, seq, err)
		}
		got, ok, err := LoadSnapshot(ctx, store)
		if err != nil || !ok || !reflect.DeepEqual(got, s) {
			t.Fatalf("load after %d: %+v %v %v", i, got, ok, err)
		}
	}
	var versions int
	if err := store.List(ctx, SnapshotDir+"v/", "", func(ObjectInfo) error { versions++; return nil }); err != nil {
		t.Fatal(err)
	}
	if versions != keepSnapshotVersions {
		t.Fatalf("%d snapshot versions kept, want %d", versions, keepSnapshotVersions)
	}
	// A corrupt newest version is an error, not an older snapshot.
	store.Corrupt(versionKey(SnapshotDir, 6), 10)
	if _, _, err := LoadSnapshot(ctx, store); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt newest: %v", err)
	}
}

// TestSnapshotLoop: the loop publishes after an upload round that
// published a manifest (here long before its Interval), from the
// provider, and retries a failed publish.
func TestSnapshotLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := NewMemStore()
	src := newTestSource(t)
	p := testPart(0)
	src.addSegment(newRand(61), []Partition{p}, 10, 1000)
	up := testUploader(store, src, 1<<20)
	var calls atomic.Int64
	loop := NewSnapshotLoop(SnapshotLoopConfig{Store: store, Uploader: up, Interval: time.Hour,
		Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Log: zerolog.Nop(),
		Provider: func() (MetaSnapshot, error) {
			n := calls.Add(1)
			return MetaSnapshot{Topics: []SnapshotTopic{{Name: "orders", Partitions: 1, LogStart: []int64{n}}}}, nil
		}})
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()

	// The first snapshot's publish fails once: the loop retries it.
	store.FailNth(OpPut, 4, nil) // object, manifest version, pointer ok; then the snapshot version
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a snapshot after the upload", func() bool {
		s, ok, err := LoadSnapshot(ctx, store)
		return err == nil && ok && s.Topics[0].LogStart[0] >= 1
	})
	if calls.Load() < 2 {
		t.Fatalf("provider called %d times; want a retry after the failed put", calls.Load())
	}
	cancel()
	<-done
	// PublishNow continues the sequence (a final snapshot at shutdown).
	seq, err := loop.PublishNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := LoadSnapshot(context.Background(), store)
	if seq < 2 || got.Topics[0].LogStart[0] != calls.Load() {
		t.Fatalf("PublishNow: seq %d, snapshot %+v, provider calls %d", seq, got, calls.Load())
	}
}
