package storage

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/klite/klite/vfs"
)

func testACL(i int) ACL {
	return ACL{ResourceType: 2, Name: fmt.Sprintf("topic-%d", i), Pattern: 3, Principal: "User:alice", Host: "*", Operation: 3, Permission: 3}
}

// ACLs created and deleted are back after a crash (every change was
// acknowledged, so durable) and after a snapshot replaced the log.
func TestACLsDurable(t *testing.T) {
	for _, snapshotOften := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshots=%v", snapshotOften), func(t *testing.T) {
			mfs := vfs.NewMemFS()
			cfg := testConfig(mfs)
			if snapshotOften {
				cfg.metaLogBytes = 1
			}
			s := mustOpen(t, cfg)
			var want []ACL
			for i := range 10 {
				a := testACL(i)
				if err := s.CreateACLs([]ACL{a, a}); err != nil {
					t.Fatal(err)
				}
				want = append(want, a)
			}
			if err := s.DeleteACLs([]ACL{testACL(3), testACL(99)}); err != nil {
				t.Fatal(err)
			}
			want = slices.Delete(want, 3, 4)
			if got := s.ACLs(); !slices.Equal(sortedACLs(got), sortedACLs(want)) {
				t.Fatalf("ACLs = %v, want %v", got, want)
			}
			crashed := mfs.CrashClone(vfs.CrashDropUnsynced, 1)
			s.Close()
			cfg.FS = crashed
			s2 := mustOpen(t, cfg)
			defer s2.Close()
			if got := s2.ACLs(); !slices.Equal(got, sortedACLs(want)) {
				t.Fatalf("after crash and reopen ACLs = %v, want %v", got, sortedACLs(want))
			}
			if s.MetaStats().Snapshots == 0 && snapshotOften {
				t.Fatal("no snapshot was written")
			}
		})
	}
}

func sortedACLs(acls []ACL) []ACL {
	st := newMetaState(1)
	st.applyACLs(&metaRecord{Op: opCreateACLs, ACLs: acls})
	return st.aclList()
}

// An ACL change that would pass the snapshot limit is refused whole.
func TestACLsMetadataFull(t *testing.T) {
	cfg := testConfig(vfs.NewMemFS())
	cfg.metaSnapBytes = 64 << 10
	s := mustOpen(t, cfg)
	defer s.Close()
	var big []ACL
	for i := range 1000 {
		big = append(big, testACL(i))
	}
	if err := s.CreateACLs(big); !errors.Is(err, ErrMetadataFull) {
		t.Fatalf("CreateACLs of 1000 under a 64 KiB limit: %v, want ErrMetadataFull", err)
	}
	if n := len(s.ACLs()); n != 0 {
		t.Fatalf("%d ACLs after a refused change", n)
	}
	if err := s.CreateACLs(big[:10]); err != nil {
		t.Fatal(err)
	}
}

// Large changes are split into records of at most maxACLRecordBytes.
func TestACLsLargeChange(t *testing.T) {
	cfg := testConfig(vfs.NewMemFS())
	s := mustOpen(t, cfg)
	var big []ACL
	for i := range 6000 { // about 1.3 MB: two records
		a := testACL(i)
		a.Principal = fmt.Sprintf("User:%0100d", i)
		big = append(big, a)
	}
	if err := s.CreateACLs(big); err != nil {
		t.Fatal(err)
	}
	if st := s.MetaStats(); st.BytesWritten < maxACLRecordBytes {
		t.Fatalf("%d metadata bytes written for %d ACLs", st.BytesWritten, len(big))
	}
	s.Close()
	s = mustOpen(t, cfg)
	defer s.Close()
	if n := len(s.ACLs()); n != len(big) {
		t.Fatalf("%d ACLs after reopen, want %d", n, len(big))
	}
}

// ACLs travel in the bucket's metadata snapshot: a store restored from a
// snapshot (disaster recovery) has them, durably.
func TestACLsSnapshotRestore(t *testing.T) {
	src := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer src.Close()
	mustCreate(t, src, "a", 1)
	want := []ACL{testACL(1), testACL(2)}
	if err := src.CreateACLs(want); err != nil {
		t.Fatal(err)
	}
	snap := src.Snapshot()
	if len(snap.ACLs) == 0 {
		t.Fatal("snapshot without ACLs")
	}
	mfs := vfs.NewMemFS()
	cfg := testConfig(mfs)
	dst := mustOpen(t, cfg)
	if err := dst.Restore(&snap, nil); err != nil {
		t.Fatal(err)
	}
	if got := dst.ACLs(); !slices.Equal(got, sortedACLs(want)) {
		t.Fatalf("restored ACLs %v, want %v", got, want)
	}
	crashed := mfs.CrashClone(vfs.CrashDropUnsynced, 1)
	dst.Close()
	cfg.FS = crashed
	again := mustOpen(t, cfg)
	defer again.Close()
	if got := again.ACLs(); !slices.Equal(got, sortedACLs(want)) {
		t.Fatalf("restored ACLs after a crash %v, want %v", got, want)
	}
	bad := snap
	bad.ACLs = []byte("{")
	if err := mustOpen(t, testConfig(vfs.NewMemFS())).Restore(&bad, nil); err == nil {
		t.Fatal("Restore accepted corrupt ACLs")
	}
}
