package vfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// failOpN fails the nth (1-based) operation of any kind; it reports
// through fired whether it was reached.
func failOpN(n int64, fired *atomic.Bool) func(Op) error {
	var seen atomic.Int64
	return func(Op) error {
		if seen.Add(1) == n {
			fired.Store(true)
			return ErrInjected
		}
		return nil
	}
}

// TestWriteFileCrashAtEveryOp fails WriteFile at each of its operations in
// turn, crashes, and checks the file holds the old or the new contents,
// never anything else; once WriteFile returns nil, a crash keeps the new.
func TestWriteFileCrashAtEveryOp(t *testing.T) {
	old, data := []byte("old contents\n"), bytes.Repeat([]byte("new contents\n"), 100)
	for _, existed := range []bool{false, true} {
		for n := int64(1); ; n++ {
			mem := NewMemFS()
			if err := MkdirAllSync(mem, "/d"); err != nil {
				t.Fatal(err)
			}
			if existed {
				if err := WriteFile(mem, "/d/f", old); err != nil {
					t.Fatal(err)
				}
			}
			ffs := NewFaultFS(mem)
			var fired atomic.Bool
			ffs.SetInjector(failOpN(n, &fired))
			err := WriteFile(ffs, "/d/f", data)
			if !fired.Load() {
				if err != nil {
					t.Fatalf("existed=%v: no fault, err %v", existed, err)
				}
				if n < 5 {
					t.Fatalf("WriteFile ran only %d operations", n-1)
				}
				break
			}
			if !errors.Is(err, ErrInjected) {
				t.Fatalf("existed=%v op %d: err %v, want the injected fault", existed, n, err)
			}
			for _, mode := range []CrashMode{CrashDropUnsynced, CrashKeepUnsynced, CrashTorn} {
				crashed := mem.CrashClone(mode, uint64(n))
				got, rerr := crashed.ReadFile("/d/f")
				switch {
				case errors.Is(rerr, fs.ErrNotExist) && !existed:
				case rerr == nil && (bytes.Equal(got, data) || existed && bytes.Equal(got, old)):
				default:
					t.Fatalf("existed=%v op %d mode %d: after crash got %q, %v", existed, n, mode, got, rerr)
				}
			}
		}
		mem := NewMemFS()
		if err := MkdirAllSync(mem, "/d"); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(mem, "/d/f", data); err != nil {
			t.Fatal(err)
		}
		got, err := mem.CrashClone(CrashDropUnsynced, 1).ReadFile("/d/f")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after a successful WriteFile and a crash: %q, %v", got, err)
		}
	}
}

// TestMkdirAllSyncSyncsParents checks every parent on the path is synced.
func TestMkdirAllSyncSyncsParents(t *testing.T) {
	ffs := NewFaultFS(NewMemFS())
	var synced []string
	ffs.SetAfter(func(op Op, err error) {
		if op.Kind == OpSyncDir && err == nil {
			synced = append(synced, op.Name)
		}
	})
	if err := MkdirAllSync(ffs, "/a/b/c"); err != nil {
		t.Fatal(err)
	}
	want := []string{"/a/b", "/a", "/"}
	if len(synced) != len(want) {
		t.Fatalf("synced %q, want %q", synced, want)
	}
	for i := range want {
		if synced[i] != want[i] {
			t.Fatalf("synced %q, want %q", synced, want)
		}
	}
}

// TestMkdirAllSyncSkipsUnsyncableParents: a parent on a file system that
// cannot sync directories (EINVAL) does not fail MkdirAllSync; other
// errors do.
func TestMkdirAllSyncSkipsUnsyncableParents(t *testing.T) {
	ffs := NewFaultFS(NewMemFS())
	ffs.SetInjector(func(op Op) error {
		if op.Kind == OpSyncDir && op.Name == "/" {
			return unix.EINVAL
		}
		return nil
	})
	if err := MkdirAllSync(ffs, "/data/wal"); err != nil {
		t.Fatalf("EINVAL from syncing /: %v", err)
	}
	ffs.SetInjector(FailNth(OpSyncDir, "data", 1, unix.EIO))
	if err := MkdirAllSync(ffs, "/data/wal"); !errors.Is(err, unix.EIO) {
		t.Fatalf("EIO from syncing /data: %v", err)
	}
}

// TestWritePrivateFile: the secret's file is 0600 (and so is the
// temporary file it is written through), and its contents are data.
func TestWritePrivateFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "secret")
	// A leftover temporary file, world-readable, from an interrupted write.
	if err := os.WriteFile(name+TmpSuffix, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WritePrivateFile(OSFS{}, name, []byte("s3cret")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(name); string(b) != "s3cret" {
		t.Fatalf("contents %q", b)
	}
}
