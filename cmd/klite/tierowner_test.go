package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

// TestInstanceID: the instance id is made once and kept in -wal; a file
// that is not one is an error, never silently replaced (the bucket's owner
// record names the kept id).
func TestInstanceID(t *testing.T) {
	dir := t.TempDir()
	id, err := loadInstanceID(vfs.OSFS{}, dir)
	if err != nil || id == ([16]byte{}) {
		t.Fatalf("new instance id %x, %v", id, err)
	}
	again, err := loadInstanceID(vfs.OSFS{}, dir)
	if err != nil || again != id {
		t.Fatalf("reloaded instance id %x (%v), want %x", again, err, id)
	}
	if err := os.WriteFile(filepath.Join(dir, instanceIDFile), []byte("not hex\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadInstanceID(vfs.OSFS{}, dir); err == nil || !strings.Contains(err.Error(), instanceIDFile) {
		t.Fatalf("garbage instance id file: %v", err)
	}
}

// TestRestoredClusterID: a restore keeps the snapshot's cluster id (and
// writes it to cluster.id), unless -cluster-id names another or the
// snapshot has none.
func TestRestoredClusterID(t *testing.T) {
	dir := t.TempDir()
	plan := &restorePlan{snap: &tier.MetaSnapshot{ClusterID: "restored"}}
	got, err := restoredClusterID(Config{WALDir: dir}, plan, "generated", zerolog.Nop())
	if err != nil || got != "restored" {
		t.Fatalf("restored cluster id %q, %v", got, err)
	}
	if kept, err := loadClusterID(vfs.OSFS{}, dir); err != nil || kept != "restored" {
		t.Fatalf("cluster.id after the restore: %q, %v", kept, err)
	}
	if got, _ := restoredClusterID(Config{WALDir: dir, ClusterID: "flag"}, plan, "flag", zerolog.Nop()); got != "flag" {
		t.Fatalf("with -cluster-id: %q", got)
	}
	plan.snap.ClusterID = ""
	if got, _ := restoredClusterID(Config{WALDir: dir}, plan, "generated", zerolog.Nop()); got != "generated" {
		t.Fatalf("snapshot without a cluster id: %q", got)
	}
}
