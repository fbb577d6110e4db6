package storage

import (
	"bytes"
	"testing"

	"github.com/klite/klite/vfs"
)

// PartitionBytes counts a partition's batches from its log start on, and
// only its own (partitions share the WAL); it survives a reopen.
func TestPartitionBytes(t *testing.T) {
	fs := vfs.NewMemFS()
	s := mustOpen(t, testConfig(fs))
	mustCreate(t, s, "t", 2)
	batch := makeBatch(batchSpec{records: 3, value: bytes.Repeat([]byte("x"), 200), pid: -1})
	for range 4 {
		appendWait(t, s, "t", 1, batch, true)
	}
	appendWait(t, s, "t", 0, batch, true)
	size := func(p int32) int64 {
		t.Helper()
		n, err := s.PartitionBytes("t", p)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got0, got1 := size(0), size(1); got0 != int64(len(batch)) || got1 != 4*int64(len(batch)) {
		t.Fatalf("sizes %d/%d, want %d/%d", got0, got1, len(batch), 4*len(batch))
	}
	if _, err := s.PartitionBytes("nope", 0); err == nil {
		t.Fatal("unknown topic has a size")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, testConfig(fs))
	defer s.Close()
	if got := size(1); got != 4*int64(len(batch)) {
		t.Fatalf("after reopen: %d", got)
	}
	if off, err := s.LatestTiered("t", 1); err != nil || off != -1 {
		t.Fatalf("latest tiered without a tier: %d %v", off, err)
	}
}

// RecordTimestamps reads each record's offset delta and time; in a
// LogAppendTime batch every record has the batch's max timestamp.
func TestRecordTimestamps(t *testing.T) {
	b := makeBatch(batchSpec{records: 4, value: []byte("v"), pid: -1, ts: 1000})
	var got []int64
	if err := RecordTimestamps(b, 1<<20, func(d int32, ts int64) bool {
		if int64(d) != int64(len(got)) {
			t.Fatalf("offset delta %d at record %d", d, len(got))
		}
		got = append(got, ts)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0] != 1000 || got[3] != 1003 {
		t.Fatalf("timestamps %v", got)
	}
	SetLogAppendTime(b, 5000)
	got = got[:0]
	if err := RecordTimestamps(b, 1<<20, func(_ int32, ts int64) bool { got = append(got, ts); return len(got) < 2 }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 5000 || got[1] != 5000 {
		t.Fatalf("LogAppendTime timestamps %v (and fn's false must stop the walk)", got)
	}
	if err := RecordTimestamps(b[:30], 1<<20, func(int32, int64) bool { return true }); err == nil {
		t.Fatal("a truncated batch walked")
	}
}
