package storage

import (
	"errors"
	"reflect"
	"testing"

	"github.com/klite/klite/vfs"
)

func testCred(user string, mech int8, b byte) ScramCredential {
	return ScramCredential{User: user, Mechanism: mech, Iterations: 4096,
		Salt: []byte{b, 1}, StoredKey: []byte{b, 2}, ServerKey: []byte{b, 3}}
}

// TestScramCredentialsDurable: a credential is in the metadata log when
// SetScramCredential returns (a crash that drops everything unsynced keeps
// it), survives a snapshot of the log, and a deletion is as durable.
func TestScramCredentialsDurable(t *testing.T) {
	mem := vfs.NewMemFS()
	s := mustOpen(t, testConfig(mem))
	alice256, alice512, bob := testCred("alice", 1, 1), testCred("alice", 2, 2), testCred("bob", 1, 3)
	for _, c := range []ScramCredential{alice256, alice512, bob, testCred("bob", 1, 4)} {
		if err := s.SetScramCredential(c); err != nil {
			t.Fatal(err)
		}
	}
	bob = testCred("bob", 1, 4) // replaced
	want := []ScramCredential{alice256, alice512, bob}
	if got := s.ScramCredentials(); !reflect.DeepEqual(got, want) {
		t.Fatalf("credentials:\n got %+v\nwant %+v", got, want)
	}
	crashed := mem.CrashClone(vfs.CrashDropUnsynced, 1)
	s2 := mustOpen(t, testConfig(crashed))
	if got := s2.ScramCredentials(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a crash:\n got %+v\nwant %+v", got, want)
	}
	if err := s2.DeleteScramCredential("alice", 2); err != nil {
		t.Fatal(err)
	}
	if err := s2.DeleteScramCredential("alice", 2); !errors.Is(err, ErrUnknownCredential) {
		t.Fatalf("second delete: %v", err)
	}
	// Force the state into a snapshot: the credentials must ride along.
	s2.metaMu.Lock()
	snap := s2.mstate.file()
	s2.metaMu.Unlock()
	st, err := stateFromFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	want = []ScramCredential{alice256, bob}
	if got := st.credentials(); !reflect.DeepEqual(got, want) {
		t.Fatalf("from a snapshot:\n got %+v\nwant %+v", got, want)
	}
	s2.Close()
	s3 := mustOpen(t, testConfig(crashed.CrashClone(vfs.CrashDropUnsynced, 1)))
	defer s3.Close()
	if got := s3.ScramCredentials(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after delete and a crash:\n got %+v\nwant %+v", got, want)
	}
	s.Close()

	// The bucket snapshot carries them, and a restore brings them back.
	bucket := s3.Snapshot()
	dst := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer dst.Close()
	if err := dst.Restore(&bucket, nil); err != nil {
		t.Fatal(err)
	}
	if got := dst.ScramCredentials(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restore:\n got %+v\nwant %+v", got, want)
	}
}
