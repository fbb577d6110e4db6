package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/klite/klite/vfs"
)

// TestSASLSecretKept: the secret behind unknown users' made-up SCRAM
// credentials is made once, kept 0600, read back the same, and survives a
// power loss right after it was made.
func TestSASLSecretKept(t *testing.T) {
	dir := t.TempDir()
	a, err := loadSASLSecret(vfs.OSFS{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadSASLSecret(vfs.OSFS{}, dir)
	if err != nil || a != b || a == [len(a)]byte{} {
		t.Fatalf("secrets %x then %x (%v): want one stable random secret", a, b, err)
	}
	fi, err := os.Stat(filepath.Join(dir, saslSecretFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want mode 0600", saslSecretFile, fi, err)
	}
	for _, mode := range []vfs.CrashMode{vfs.CrashDropUnsynced, vfs.CrashKeepUnsynced, vfs.CrashTorn} {
		mem := vfs.NewMemFS()
		if err := vfs.MkdirAllSync(mem, "/wal"); err != nil {
			t.Fatal(err)
		}
		s, err := loadSASLSecret(mem, "/wal")
		if err != nil {
			t.Fatal(err)
		}
		again, err := loadSASLSecret(mem.CrashClone(mode, uint64(mode)+1), "/wal")
		if err != nil || again != s {
			t.Fatalf("crash mode %d: secret %x before the crash, %x (%v) after", mode, s, again, err)
		}
	}
}
