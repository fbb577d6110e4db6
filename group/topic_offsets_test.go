package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/vfs"
)

// DeleteTopicOffsets removes every group's offsets of the topic, durably
// (gone after a reopen), drops an Empty group left with none, and keeps
// other topics' offsets.
func TestDeleteTopicOffsets(t *testing.T) {
	fs := vfs.NewMemFS()
	exists := map[string]bool{"t": true, "u": true}
	lookup := func(c *Config) { c.Topics = func(topic string) (int32, bool) { return 4, exists[topic] } }
	c := openTestCoordinator(t, fs, lookup)
	commitOne(t, c, "only-t", 5)
	commitOne(t, c, "both", 7)
	req := commitReq("both", "", -1, 9)
	req.Topics[0].Topic = "u"
	if code := call(t, func(d func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(req, d) }).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("commit u: %d", code)
	}
	exists["t"] = false
	if err := call(t, func(d func(error)) { c.DeleteTopicOffsets("t", d) }); err != nil {
		t.Fatal(err)
	}
	check := func(c *Coordinator) {
		t.Helper()
		if _, ok := c.offs.offset("both", TP{"t", 0}); ok {
			t.Fatal("offset of the deleted topic still committed")
		}
		if o, ok := c.offs.offset("both", TP{"u", 0}); !ok || o.Offset != 9 {
			t.Fatalf("offset of another topic: %v %d", ok, o.Offset)
		}
		if _, ok := c.offs.groups()["only-t"]; ok {
			t.Fatal("empty group without offsets kept")
		}
	}
	check(c)
	c.Close()
	check(openTestCoordinator(t, fs, lookup))
}

// Offsets of topics that no longer exist (a crash between a topic's
// deletion and its offsets' removal) are swept when the coordinator opens.
func TestSweepDeletedTopicOffsets(t *testing.T) {
	fs := vfs.NewMemFS()
	exists := true
	lookup := func(c *Config) { c.Topics = func(topic string) (int32, bool) { return 4, exists } }
	c := openTestCoordinator(t, fs, lookup)
	commitOne(t, c, "g", 3)
	c.Close()
	exists = false
	c = openTestCoordinator(t, fs, lookup)
	waitUntil(t, "sweep", func() bool { _, ok := c.offs.offset("g", TP{"t", 0}); return !ok })
	c.Close()
	if _, ok := openTestCoordinator(t, fs, lookup).offs.offset("g", TP{"t", 0}); ok {
		t.Fatal("swept offset back after a reopen")
	}
}
