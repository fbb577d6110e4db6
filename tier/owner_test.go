package tier

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func instance(b byte) [16]byte {
	var id [16]byte
	id[0], id[15] = b, b
	return id
}

func claim(t *testing.T, s ObjectStore, id byte, cluster string, fresh, takeOver bool) (*Owner, error) {
	t.Helper()
	o := NewOwner(s, instance(id), zerolog.Nop())
	if err := o.Claim(context.Background(), ClaimOptions{ClusterID: cluster, Fresh: fresh, TakeOver: takeOver}); err != nil {
		return nil, err
	}
	return o, nil
}

// TestOwnerClaim walks the owner record through its cases: created on an
// empty prefix; kept by a restart of the same instance; refused to a
// second instance (fresh or not) while held, with a message that says
// what to do; claimed after a clean release by a fresh broker (disaster
// recovery after a clean stop) or one of the same cluster, refused to one
// of another cluster; taken over with TakeOver. The previous owner's next
// Check fails and keeps failing without asking the store.
func TestOwnerClaim(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	a, err := claim(t, s, 1, "c1", false, false)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := ReadOwner(ctx, s); err != nil || rec.Instance != instance(1) || rec.ClusterID != "c1" || rec.Released {
		t.Fatalf("record after the first claim: %+v %v", rec, err)
	}
	for _, fresh := range []bool{false, true} {
		_, err := claim(t, s, 2, "c1", fresh, false)
		if !errors.Is(err, ErrNotOwner) || !strings.Contains(err.Error(), "-s3-prefix") || !strings.Contains(err.Error(), "-s3-take-over") {
			t.Fatalf("second instance (fresh %v) on a held prefix: %v", fresh, err)
		}
	}
	if err := a.Check(ctx); err != nil {
		t.Fatalf("owner after refused claims: %v", err)
	}
	if a, err = claim(t, s, 1, "c1", false, false); err != nil {
		t.Fatalf("restart of the owner: %v", err)
	}

	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, err := ReadOwner(ctx, s); err != nil || !rec.Released || rec.Instance != instance(1) {
		t.Fatalf("record after release: %+v %v", rec, err)
	}
	if err := a.Check(ctx); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("check after release: %v", err)
	}
	if _, err := claim(t, s, 3, "other", false, false); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("a broker of another cluster on a released prefix: %v", err)
	}
	b, err := claim(t, s, 2, "", true, false)
	if err != nil {
		t.Fatalf("fresh broker on a released prefix: %v", err)
	}

	c, err := claim(t, s, 3, "c1", true, true)
	if err != nil {
		t.Fatalf("take over: %v", err)
	}
	if err := b.Check(ctx); !errors.Is(err, ErrNotOwner) || !strings.Contains(err.Error(), "030000") {
		t.Fatalf("previous owner's check after a take over: %v", err)
	}
	gets := s.Calls(OpGet) + s.Calls(OpHead)
	if err := b.Check(ctx); !errors.Is(err, ErrNotOwner) || s.Calls(OpGet)+s.Calls(OpHead) != gets {
		t.Fatalf("lost owner's second check: %v, %d requests", err, s.Calls(OpGet)+s.Calls(OpHead)-gets)
	}
	heads, gets := s.Calls(OpHead), s.Calls(OpGet)
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Calls(OpHead) != heads || s.Calls(OpGet) != gets+1 {
		t.Fatalf("a check of a held record took %d HEADs and %d GETs, want one GET", s.Calls(OpHead)-heads, s.Calls(OpGet)-gets)
	}
	// Deleting the record is losing it too.
	if err := s.Delete(ctx, OwnerKey); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctx); !errors.Is(err, ErrNotOwner) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("check after the record was deleted: %v", err)
	}
}

// TestOwnerTransientError: a store error during a check is returned as
// is (the round retries), not taken for a lost prefix.
func TestOwnerTransientError(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	a, err := claim(t, s, 1, "c", false, false)
	if err != nil {
		t.Fatal(err)
	}
	s.SetDown(errors.New("bucket unreachable"))
	if err := a.Check(ctx); err == nil || errors.Is(err, ErrNotOwner) {
		t.Fatalf("check with the store down: %v", err)
	}
	s.SetDown(nil)
	if err := a.Check(ctx); err != nil {
		t.Fatalf("check after the store is back: %v", err)
	}
}

// TestOwnerClaimDeferred: a broker that could not reach the store at
// startup claims at its first check, before it writes anything: the
// uploader's first put claims the prefix; a prefix held by another
// instance by then stops it (ErrNotOwner, for good).
func TestOwnerClaimDeferred(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	a := NewOwner(s, instance(1), zerolog.Nop())
	s.SetDown(errors.New("bucket unreachable"))
	if err := a.Claim(ctx, ClaimOptions{ClusterID: "c"}); err == nil || errors.Is(err, ErrNotOwner) {
		t.Fatalf("claim with the store down: %v", err)
	}
	s.SetDown(nil)
	src := newTestSource(t)
	p := testPart(0)
	src.addSegment(newRand(7), []Partition{p}, 5, 1000)
	up := NewUploader(UploaderConfig{Store: s, Source: src, Log: zerolog.Nop(), Owner: a,
		Attempts: 1, Backoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if n, err := up.UploadPartition(ctx, p); err != nil || n == 0 {
		t.Fatalf("first upload after the store came back: %d objects, %v", n, err)
	}
	if rec, err := ReadOwner(ctx, s); err != nil || rec.Instance != instance(1) || rec.ClusterID != "c" {
		t.Fatalf("record after the deferred claim: %+v %v", rec, err)
	}

	b := NewOwner(s, instance(2), zerolog.Nop())
	s.SetDown(errors.New("bucket unreachable"))
	if err := b.Claim(ctx, ClaimOptions{}); err == nil || errors.Is(err, ErrNotOwner) {
		t.Fatalf("claim with the store down: %v", err)
	}
	s.SetDown(nil)
	if err := b.Check(ctx); !errors.Is(err, ErrNotOwner) || !strings.Contains(err.Error(), "owned by") {
		t.Fatalf("deferred claim of a held prefix: %v", err)
	}
	if err := b.Check(ctx); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("second check after a refused claim: %v", err)
	}
	if err := a.Check(ctx); err != nil {
		t.Fatalf("the owner after another's refused claim: %v", err)
	}
}

// TestOwnerRecordCorrupt: every truncation and flipped byte of an owner
// record is ErrCorrupt.
func TestOwnerRecordCorrupt(t *testing.T) {
	rec := OwnerRecord{Instance: instance(7), ClusterID: "cluster", Claimed: time.UnixMilli(1234)}
	b := encodeOwner(rec)
	got, err := decodeOwner(b)
	if err != nil || got != rec {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for n := range len(b) {
		if _, err := decodeOwner(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x08
		if _, err := decodeOwner(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
}

// TestOwnerStopsWrites: once another broker took the prefix over, the old
// owner's uploader puts no data object and publishes no manifest, its
// snapshot loop publishes nothing, and it says so at Error.
func TestOwnerStopsWrites(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	var logBuf bytes.Buffer
	a := NewOwner(s, instance(1), zerolog.New(&logBuf))
	if err := a.Claim(ctx, ClaimOptions{}); err != nil {
		t.Fatal(err)
	}
	src := newTestSource(t)
	p := testPart(0)
	src.addSegment(newRand(5), []Partition{p}, 10, 1000)
	up := NewUploader(UploaderConfig{Store: s, Source: src, Log: zerolog.Nop(), ObjectBytes: 4000, Owner: a,
		Attempts: 2, Backoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if n, err := up.UploadPartition(ctx, p); err != nil || n == 0 {
		t.Fatalf("upload as the owner: %d objects, %v", n, err)
	}
	snaps := NewSnapshotLoop(SnapshotLoopConfig{Store: s, Owner: a, Log: zerolog.Nop(),
		Provider: func() (MetaSnapshot, error) { return MetaSnapshot{ClusterID: "c"}, nil }})
	if _, err := snaps.PublishNow(ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := claim(t, s, 2, "", true, true); err != nil {
		t.Fatal(err)
	}
	keys := strings.Join(s.Keys(), "\n")
	src.addSegment(newRand(6), []Partition{p}, 10, 1000)
	if n, err := up.UploadPartition(ctx, p); !errors.Is(err, ErrNotOwner) || n != 0 {
		t.Fatalf("upload after the take over: %d objects, %v", n, err)
	}
	if _, err := up.Retain(ctx, p, 1); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("retention after the take over: %v", err)
	}
	if _, err := snaps.PublishNow(ctx); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("snapshot after the take over: %v", err)
	}
	if got := strings.Join(s.Keys(), "\n"); got != keys {
		t.Fatalf("the old owner wrote after the take over:\nbefore\n%s\nafter\n%s", keys, got)
	}
	if !strings.Contains(logBuf.String(), `"level":"error"`) || !strings.Contains(logBuf.String(), "no longer owns its bucket prefix") {
		t.Fatalf("no Error logged: %s", logBuf.String())
	}
}
