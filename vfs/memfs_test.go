package vfs

import (
	"errors"
	"io/fs"
	"slices"
	"testing"
)

func mustWrite(t *testing.T, m FS, name, data string) {
	t.Helper()
	f, err := m.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(data), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestMemFSDirectoryDurability checks that names survive a crash only once
// their directory was synced, and only inside directories that survive.
func TestMemFSDirectoryDurability(t *testing.T) {
	crashFiles := func(m *MemFS, dir string) []string {
		return m.CrashClone(CrashKeepUnsynced, 1).Files(dir)
	}

	t.Run("new directory needs its parent synced", func(t *testing.T) {
		m := NewMemFS()
		mustOK(t, m.MkdirAll("/a/b"))
		mustWrite(t, m, "/a/b/f", "x")
		mustOK(t, m.SyncDir("/a/b"))
		if got := crashFiles(m, "/"); len(got) != 0 {
			t.Fatalf("files in an unsynced directory survived: %q", got)
		}
		if _, err := m.CrashClone(CrashKeepUnsynced, 1).List("/a"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("unsynced directory /a survived: %v", err)
		}
		mustOK(t, m.SyncDir("/a"))
		if got := crashFiles(m, "/"); len(got) != 0 {
			t.Fatalf("/a/b survived without syncing / first: %q", got)
		}
		mustOK(t, m.SyncDir("/"))
		if got := crashFiles(m, "/"); !slices.Equal(got, []string{"/a/b/f"}) {
			t.Fatalf("after syncing every parent: %q", got)
		}
	})

	t.Run("create, rename and remove need the directory synced", func(t *testing.T) {
		m := NewMemFS()
		mustOK(t, MkdirAllSync(m, "/d"))
		mustWrite(t, m, "/d/a", "a")
		if got := crashFiles(m, "/d"); len(got) != 0 {
			t.Fatalf("unsynced creation survived: %q", got)
		}
		mustOK(t, m.SyncDir("/d"))
		mustOK(t, m.Rename("/d/a", "/d/b"))
		if got := crashFiles(m, "/d"); !slices.Equal(got, []string{"/d/a"}) {
			t.Fatalf("after an unsynced rename: %q, want the old name", got)
		}
		mustOK(t, m.SyncDir("/d"))
		mustOK(t, m.Remove("/d/b"))
		if got := crashFiles(m, "/d"); !slices.Equal(got, []string{"/d/b"}) {
			t.Fatalf("after an unsynced remove: %q, want the file back", got)
		}
		mustOK(t, m.SyncDir("/d"))
		if got := crashFiles(m, "/d"); len(got) != 0 {
			t.Fatalf("after a synced remove: %q", got)
		}
	})

	t.Run("syncing a missing directory fails", func(t *testing.T) {
		if err := NewMemFS().SyncDir("/nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("SyncDir of a missing directory: %v", err)
		}
	})
}

// TestMkdirAllSyncSurvivesCrash: a directory made by MkdirAllSync exists
// after a crash; one made by plain MkdirAll does not (/plain itself does:
// syncing / for /durable persists every entry of /).
func TestMkdirAllSyncSurvivesCrash(t *testing.T) {
	m := NewMemFS()
	mustOK(t, m.MkdirAll("/plain/x"))
	mustOK(t, MkdirAllSync(m, "/durable/x"))
	c := m.CrashClone(CrashDropUnsynced, 1)
	if _, err := c.List("/durable/x"); err != nil {
		t.Fatalf("MkdirAllSync directory lost: %v", err)
	}
	if _, err := c.List("/plain/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("plain MkdirAll directory survived: %v", err)
	}
}
