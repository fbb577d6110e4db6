package group

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/vfs"
)

// fetchAll returns a group's committed offsets as OffsetFetch (v8, all
// topics) reports them.
func fetchAll(t *testing.T, c *Coordinator, group string) map[TP]kmsg.OffsetFetchResponseGroupTopicPartition {
	t.Helper()
	fr := call(t, func(d func(*kmsg.OffsetFetchResponse)) {
		r := kmsg.NewPtrOffsetFetchRequest()
		r.Version = 8
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group = group
		r.Groups = append(r.Groups, g)
		c.OffsetFetch(r, d)
	})
	out := make(map[TP]kmsg.OffsetFetchResponseGroupTopicPartition)
	for _, tt := range fr.Groups[0].Topics {
		for _, p := range tt.Partitions {
			out[TP{tt.Topic, p.Partition}] = p
		}
	}
	return out
}

// TestExportImportOffsets: offsets committed by a classic group and by an
// offsets-only group are exported, imported into a fresh directory, and
// served by a coordinator opened on it, with epoch, metadata and commit
// time; the classic group keeps its protocol type and generation.
func TestExportImportOffsets(t *testing.T) {
	src := openTestCoordinator(t, vfs.NewMemFS())
	for p := int32(0); p < 4; p++ {
		r := commitReq("standalone", "", -1, 100+int64(p))
		r.Topics[0].Partitions[0].Partition = p
		r.Topics[0].Partitions[0].LeaderEpoch = 7
		if code := call(t, func(d func(*kmsg.OffsetCommitResponse)) { src.OffsetCommit(r, d) }).Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("commit: %d", code)
		}
	}
	a, _ := stableTwo(t, src, "classic", time.Minute)
	if code := call(t, func(d func(*kmsg.OffsetCommitResponse)) { src.OffsetCommit(commitReq("classic", a, 2, 55), d) }).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("member commit: %d", code)
	}
	b, err := src.ExportOffsets()
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := src.ExportOffsets()
	if string(b) != string(b2) {
		t.Fatal("export not deterministic")
	}

	fs := vfs.NewMemFS()
	cfg := Config{Dir: "/groups", FS: fs}
	if err := ImportOffsets(cfg, b); err != nil {
		t.Fatal(err)
	}
	if err := ImportOffsets(cfg, b); err != nil { // again, as after a crash mid-import
		t.Fatal(err)
	}
	// Durable: a crash right after the import loses nothing.
	dst := openTestCoordinator(t, fs.CrashClone(vfs.CrashDropUnsynced, 1))
	for _, group := range []string{"standalone", "classic"} {
		want, got := fetchAll(t, src, group), fetchAll(t, dst, group)
		if len(want) == 0 || len(got) != len(want) {
			t.Fatalf("%s: %d offsets imported, %d exported", group, len(got), len(want))
		}
		for tp, w := range want {
			g := got[tp]
			if g.Offset != w.Offset || g.LeaderEpoch != w.LeaderEpoch || *g.Metadata != *w.Metadata {
				t.Fatalf("%s %v: got %+v, want %+v", group, tp, g, w)
			}
			so, _ := src.offs.offset(group, tp)
			do, _ := dst.offs.offset(group, tp)
			if so != do {
				t.Fatalf("%s %v: stored %+v, imported %+v", group, tp, so, do)
			}
		}
	}
	if got := fetchAll(t, dst, "standalone")[TP{"t", 3}]; got.Offset != 103 || got.LeaderEpoch != 7 {
		t.Fatalf("standalone t/3: %+v", got)
	}
	g := dst.offs.groups()["classic"]
	if g.protocolType != "consumer" || g.generation != 2 || len(g.members) != 0 || g.classic != nil {
		t.Fatalf("classic group imported as %+v", g)
	}
}

// TestImportRejectsDamage: a truncated or altered export is refused and
// writes nothing.
func TestImportRejectsDamage(t *testing.T) {
	src := openTestCoordinator(t, vfs.NewMemFS())
	r := commitReq("g", "", -1, 9)
	call(t, func(d func(*kmsg.OffsetCommitResponse)) { src.OffsetCommit(r, d) })
	b, err := src.ExportOffsets()
	if err != nil {
		t.Fatal(err)
	}
	fs := vfs.NewMemFS()
	cfg := Config{Dir: "/groups", FS: fs}
	for n := range len(b) {
		if err := ImportOffsets(cfg, b[:n]); !errors.Is(err, ErrBadExport) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		if err := ImportOffsets(cfg, c); !errors.Is(err, ErrBadExport) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if names, _ := fs.List("/groups"); len(names) != 0 {
		t.Fatalf("refused imports wrote %v", names)
	}
	// An empty coordinator exports an empty, importable set.
	empty, err := openTestCoordinator(t, vfs.NewMemFS()).ExportOffsets()
	if err != nil {
		t.Fatal(err)
	}
	if err := ImportOffsets(cfg, empty); err != nil {
		t.Fatal(err)
	}
}
