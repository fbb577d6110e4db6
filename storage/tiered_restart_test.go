package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
	"github.com/rs/zerolog"
)

// lateCold is the real tier.Cold as the store's ColdLog, wired after Open
// (its uploader's Source is the store). While drop is set, Retain calls
// are lost, as when Close or a crash ends Cold's background job.
type lateCold struct {
	c    atomic.Pointer[tier.Cold]
	drop atomic.Bool
}

func (l *lateCold) Manifest(ctx context.Context, p tier.Partition) (*tier.Manifest, error) {
	if c := l.c.Load(); c != nil {
		return c.Manifest(ctx, p)
	}
	return nil, nil
}

func (l *lateCold) Read(ctx context.Context, p tier.Partition, offset, maxBytes int64) ([]byte, error) {
	if c := l.c.Load(); c != nil {
		return c.Read(ctx, p, offset, maxBytes)
	}
	return nil, tier.ErrNotTiered
}

func (l *lateCold) OffsetForTime(ctx context.Context, p tier.Partition, ts int64) (int64, int64, error) {
	if c := l.c.Load(); c != nil {
		return c.OffsetForTime(ctx, p, ts)
	}
	return -1, -1, nil
}

func (l *lateCold) Retain(p tier.Partition, offset int64) {
	if c := l.c.Load(); c != nil && !l.drop.Load() {
		c.Retain(p, offset)
	}
}

func (l *lateCold) Forget(p tier.Partition) {
	if c := l.c.Load(); c != nil {
		c.Forget(p)
	}
}

// restartFixture opens a store over a real uploader and Cold on a
// MemStore (uploaded segments freed at once: HotBytes 1), appends 20
// three-record batches of ~3 KB to t/0 and uploads them, then appends 20
// more (offsets 60..119) that stay local.
func restartFixture(t *testing.T) (*Store, *lateCold, *tier.Uploader, *tier.MemStore, tier.Partition, *tier.Manifest) {
	ms := tier.NewMemStore()
	lc := &lateCold{}
	cfg := testConfig(vfs.NewMemFS())
	cfg.MaxChunkBytes = 4 << 10
	cfg.Cold = lc
	cfg.HotBytes = 1
	s := mustOpen(t, cfg)
	t.Cleanup(func() { s.Close() })
	ti := mustCreate(t, s, "t", 1)
	u := tier.NewUploader(tier.UploaderConfig{Store: ms, Source: s, Log: zerolog.Nop(), ObjectBytes: 32 << 10,
		Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	c := tier.NewCold(tier.ColdConfig{Uploader: u, Reader: tier.NewReader(tier.ReaderConfig{Store: ms}), Log: zerolog.Nop(),
		Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	t.Cleanup(c.Close)
	lc.c.Store(c)
	value := bytes.Repeat([]byte("v"), 1000)
	appendN(t, s, "t", 0, 20, 3, 100, value)
	if err := u.UploadAll(context.Background()); err != nil {
		t.Fatalf("UploadAll: %v", err)
	}
	tp := tierOf(ti, 0)
	m, err := tier.LoadManifest(context.Background(), ms, tp)
	if err != nil || m.NextOffset() != 60 || len(m.Objects) < 2 {
		t.Fatalf("fixture manifest: %+v %v", m, err)
	}
	appendN(t, s, "t", 0, 20, 3, 1000, value)
	return s, lc, u, ms, tp, m
}

// expectRestartedTier uploads what is left and checks that the bucket
// holds t/0 exactly from the batch holding start to the high watermark,
// nothing of the old tier, and that reads at the log start, once the WAL
// no longer holds it, come from the bucket.
func expectRestartedTier(t *testing.T, s *Store, u *tier.Uploader, ms *tier.MemStore, tp tier.Partition, old *tier.Manifest, start int64, want []readBatch) {
	t.Helper()
	ctx := context.Background()
	eventually(t, "the tier to restart at the log start and catch up", func() bool {
		if err := u.UploadAll(ctx); err != nil && !errors.Is(err, tier.ErrGap) {
			t.Fatalf("UploadAll: %v", err)
		}
		m, err := u.Manifest(ctx, tp)
		return err == nil && m.LogStartOffset == start
	})
	if err := u.UploadAll(ctx); err != nil {
		t.Fatalf("UploadAll after the restart: %v", err)
	}
	_, hwm, _ := s.Offsets("t", 0)
	m, err := tier.LoadManifest(ctx, ms, tp)
	if err != nil {
		t.Fatal(err)
	}
	if m.LogStartOffset != start || len(m.Objects) == 0 || m.Objects[0].BaseOffset != want[0].base || m.NextOffset() != hwm {
		t.Fatalf("manifest [%d, %d) from %d; want [%d, %d) from the batch at %d",
			m.LogStartOffset, m.NextOffset(), m.Objects[0].BaseOffset, start, hwm, want[0].base)
	}
	for i, o := range m.Objects {
		data, err := tier.Get(ctx, ms, m.ObjectKey(i), o.Size)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data[:o.DataBytes], rawRange(want, o.BaseOffset, o.LastOffset)) {
			t.Fatalf("object %d [%d, %d] differs from the log", i, o.BaseOffset, o.LastOffset)
		}
	}
	for i := range old.Objects {
		if _, err := ms.Head(ctx, old.ObjectKey(i)); !errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("old object %d still in the bucket: %v", i, err)
		}
	}
	for _, k := range ms.Keys() {
		var base, last int64
		if _, err := fmt.Sscanf(k[strings.LastIndex(k, "/")+1:], "%d-%d.klo", &base, &last); err == nil && base < want[0].base {
			t.Fatalf("bucket holds %s below the log start %d", k, start)
		}
	}

	p, _ := s.lookup("t", 0)
	eventually(t, "uploaded segments freed", func() bool {
		s.maybeFree()
		return localStart(p.idx.view(), p.hwm.Load()) > start
	})
	sameBatches(t, "read from the log start through the tier", readFrom(t, s, "t", 0, start), want)
	if r := s.Read("t", 0, start-1, 1<<20); !errors.Is(r.Err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the log start: %v", r.Err)
	}
	b, err := s.cfg.Cold.Read(ctx, tp, start, 1)
	if err != nil {
		t.Fatalf("cold read at the log start: %v", err)
	}
	if h, _ := ParseBatchHeader(b); h.BaseOffset != want[0].base {
		t.Fatalf("cold read at %d starts at %d, want %d", start, h.BaseOffset, want[0].base)
	}
}

// TestTierRestartsAfterDeleteRecords: DeleteRecords moves the log start
// past what the tier holds (to inside a batch) before the uploader ran
// again. Cold.Retain restarts the tiered log there; more appends upload
// after it, and reads at the new log start work from the bucket.
func TestTierRestartsAfterDeleteRecords(t *testing.T) {
	s, lc, u, ms, tp, old := restartFixture(t)
	const start = 91 // inside the batch [90, 92]
	if ls, err := s.DeleteRecords("t", 0, start); err != nil || ls != start {
		t.Fatalf("DeleteRecords: %d, %v", ls, err)
	}
	eventually(t, "Cold.Retain to restart the tier", func() bool {
		m, err := lc.Manifest(context.Background(), tp)
		return err == nil && m != nil && m.LogStartOffset == start && len(m.Objects) == 0
	})
	appendN(t, s, "t", 0, 50, 3, 2000, bytes.Repeat([]byte("w"), 1000))
	want := readFrom(t, s, "t", 0, start)
	if want[0].base != 90 {
		t.Fatalf("first batch at %d", want[0].base)
	}
	expectRestartedTier(t, s, u, ms, tp, old, start, want)
}

// TestTierHealsLostRetain: DeleteRecords to the high watermark whose
// Cold.Retain is lost (Close or a crash before the background job ran).
// The next upload round finds Sealed's data past the tier's end: it fails
// with ErrGap once, Sealed has asked for the Retain again, and the tier
// restarts at the log start and goes on.
func TestTierHealsLostRetain(t *testing.T) {
	s, lc, u, ms, tp, old := restartFixture(t)
	lc.drop.Store(true)
	start, err := s.DeleteRecords("t", 0, -1)
	if err != nil || start != 120 {
		t.Fatalf("DeleteRecords(-1): %d, %v", start, err)
	}
	lc.drop.Store(false)
	appendN(t, s, "t", 0, 50, 3, 2000, bytes.Repeat([]byte("w"), 1000))
	want := readFrom(t, s, "t", 0, start)
	if err := u.UploadAll(context.Background()); !errors.Is(err, tier.ErrGap) {
		t.Fatalf("round before the tier restarts: %v, want ErrGap", err)
	}
	expectRestartedTier(t, s, u, ms, tp, old, start, want)
}

// TestTierRestartsAfterRestore: a snapshot's log start past the tier's end
// (DeleteRecords after the last upload round). The restored store's log
// starts there; nothing calls Retain, yet the first upload round's Sealed
// asks for it, and the tier restarts at the log start.
func TestTierRestartsAfterRestore(t *testing.T) {
	src, _, _, ms, tp, old := restartFixture(t)
	const start = 100
	snap := src.Snapshot()
	snap.Topics[0].LogStart[0] = start

	lc := &lateCold{}
	cfg := testConfig(vfs.NewMemFS())
	cfg.MaxChunkBytes = 4 << 10
	cfg.Cold = lc
	cfg.HotBytes = 1
	s := mustOpen(t, cfg)
	t.Cleanup(func() { s.Close() })
	u := tier.NewUploader(tier.UploaderConfig{Store: ms, Source: s, Log: zerolog.Nop(), ObjectBytes: 32 << 10,
		Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	c := tier.NewCold(tier.ColdConfig{Uploader: u, Reader: tier.NewReader(tier.ReaderConfig{Store: ms}), Log: zerolog.Nop(),
		Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	t.Cleanup(c.Close)
	lc.c.Store(c)
	if err := s.Restore(&snap, map[tier.Partition]int64{tp: old.NextOffset()}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if ls, hwm, err := s.Offsets("t", 0); err != nil || ls != start || hwm != start {
		t.Fatalf("restored offsets %d, %d, %v", ls, hwm, err)
	}
	appendN(t, s, "t", 0, 50, 3, 2000, bytes.Repeat([]byte("w"), 1000))
	want := readFrom(t, s, "t", 0, start)
	if err := u.UploadAll(context.Background()); !errors.Is(err, tier.ErrGap) {
		t.Fatalf("round before the tier restarts: %v, want ErrGap", err)
	}
	expectRestartedTier(t, s, u, ms, tp, old, start, want)
}

// TestRestoreFromRestartedTier: the bucket's manifest was restarted past
// its end (no objects) after the snapshot was taken. The restored log
// starts at the restart point, not at the snapshot's older log start that
// neither the bucket nor the WAL holds.
func TestRestoreFromRestartedTier(t *testing.T) {
	src, _, _, ms, tp, _ := restartFixture(t)
	snap := src.Snapshot() // log start 0
	const start = 110
	if _, err := src.DeleteRecords("t", 0, start); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the tier to restart", func() bool {
		m, err := tier.LoadManifest(context.Background(), ms, tp)
		return err == nil && m.LogStartOffset == start && len(m.Objects) == 0
	})
	u := tier.NewUploader(tier.UploaderConfig{Store: ms, Source: src, Log: zerolog.Nop()})
	c := tier.NewCold(tier.ColdConfig{Uploader: u, Reader: tier.NewReader(tier.ReaderConfig{Store: ms}), Log: zerolog.Nop()})
	t.Cleanup(c.Close)
	lc := &lateCold{}
	lc.c.Store(c)
	cfg := testConfig(vfs.NewMemFS())
	cfg.Cold = lc
	s := mustOpen(t, cfg)
	t.Cleanup(func() { s.Close() })
	m, err := c.Manifest(context.Background(), tp)
	if err != nil || m == nil {
		t.Fatalf("manifest: %+v %v", m, err)
	}
	if err := s.Restore(&snap, map[tier.Partition]int64{tp: m.NextOffset()}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if ls, hwm, err := s.Offsets("t", 0); err != nil || ls != start || hwm != start {
		t.Fatalf("restored offsets %d, %d, %v; want %d, %d", ls, hwm, err, start, start)
	}
}

// ObjectData and Rewrite make lateCold a ColdCompactor (compacttier.go).
func (l *lateCold) ObjectData(ctx context.Context, m *tier.Manifest, i int, dst []byte) ([]byte, error) {
	return l.c.Load().ObjectData(ctx, m, i, dst)
}

func (l *lateCold) Rewrite(ctx context.Context, p tier.Partition, m *tier.Manifest, end int64) (*tier.Rewrite, error) {
	return l.c.Load().Rewrite(ctx, p, m, end)
}

func (l *lateCold) CleanOrphans(ctx context.Context, p tier.Partition) error {
	return l.c.Load().CleanOrphans(ctx, p)
}
