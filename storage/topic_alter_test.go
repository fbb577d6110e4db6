package storage

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klite/klite/vfs"
)

// SetTopicConfigs replaces the configs durably (they survive a power loss
// right after it returns) and switches LogAppendTime for later appends.
func TestSetTopicConfigs(t *testing.T) {
	fsys := vfs.NewMemFS()
	cfg := testConfig(fsys)
	now := int64(1_700_000_000_000)
	cfg.Now = func() timeT { return timeUnixMilli(now) }
	s := mustOpen(t, cfg)
	if _, err := s.CreateTopic("t", 2, map[string]string{"retention.ms": "1000"}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Topic("t")
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{ts: 5}), true); r.LogAppendTime != -1 {
		t.Fatalf("CreateTime topic stamped %d", r.LogAppendTime)
	}

	set := map[string]string{"message.timestamp.type": "LogAppendTime", "cleanup.policy": "compact"}
	if err := s.SetTopicConfigs("t", set); err != nil {
		t.Fatal(err)
	}
	set["cleanup.policy"] = "mutated by the caller afterwards"
	info, ok := s.Topic("t")
	if !ok || info.ID != before.ID || info.Partitions != 2 || len(info.Configs) != 2 ||
		info.Configs["cleanup.policy"] != "compact" || info.Configs["retention.ms"] != "" {
		t.Fatalf("after set: %+v", info)
	}
	if before.Configs["retention.ms"] != "1000" {
		t.Fatalf("earlier snapshot changed: %+v", before.Configs)
	}
	if byID, _ := s.TopicByID(info.ID); byID.Configs["message.timestamp.type"] != "LogAppendTime" {
		t.Fatalf("by id: %+v", byID)
	}
	for p := int32(0); p < 2; p++ {
		if r := appendWait(t, s, "t", p, makeBatch(batchSpec{ts: 5}), true); r.Err != nil || r.LogAppendTime != now {
			t.Fatalf("partition %d after LogAppendTime: %+v", p, r)
		}
	}

	// Durable: a crash right now keeps the new configs, and the data.
	crashed := mustOpen(t, Config{Dir: cfg.Dir, FS: fsys.CrashClone(vfs.CrashDropUnsynced, 1), Shards: cfg.Shards, SegmentBytes: cfg.SegmentBytes, Now: cfg.Now})
	if got, _ := crashed.Topic("t"); got.Configs["message.timestamp.type"] != "LogAppendTime" || len(got.Configs) != 2 {
		t.Fatalf("after crash: %+v", got)
	}
	if got := readAllBatches(t, crashed, "t", 0); len(got) != 2 {
		t.Fatalf("after crash: %d batches", len(got))
	}
	// LogAppendTime is rebuilt from the persisted configs.
	if r := appendWait(t, crashed, "t", 1, makeBatch(batchSpec{ts: 5}), true); r.LogAppendTime != now {
		t.Fatalf("after crash: %+v", r)
	}
	crashed.Close()

	// Clearing: nil removes every explicit config.
	if err := s.SetTopicConfigs("t", nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Topic("t"); got.Configs == nil || len(got.Configs) != 0 {
		t.Fatalf("cleared: %+v", got.Configs)
	}
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{ts: 5}), true); r.LogAppendTime != -1 {
		t.Fatalf("back to CreateTime: %+v", r)
	}
	if err := s.SetTopicConfigs("missing", nil); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	s.Close()
	if err := s.SetTopicConfigs("t", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed store: %v", err)
	}
	s = mustOpen(t, cfg)
	defer s.Close()
	if got, _ := s.Topic("t"); len(got.Configs) != 0 {
		t.Fatalf("after reopen: %+v", got.Configs)
	}
}

// A failed metadata write changes nothing, in memory or on disk; like a
// failed WAL fsync it is not retried: metadata changes fail until a
// restart, which finds the state from before the failure.
func TestSetTopicConfigsWriteFailure(t *testing.T) {
	mem := vfs.NewMemFS()
	ffs := vfs.NewFaultFS(mem)
	cfg := testConfig(ffs)
	s := mustOpen(t, cfg)
	if _, err := s.CreateTopic("t", 1, map[string]string{"retention.ms": "1000"}); err != nil {
		t.Fatal(err)
	}
	ffs.SetInjector(func(op vfs.Op) error {
		if op.Kind == vfs.OpSync && strings.Contains(op.Name, metaLogSuffix) {
			return vfs.ErrInjected
		}
		return nil
	})
	if err := s.SetTopicConfigs("t", map[string]string{"retention.ms": "5"}); !errors.Is(err, ErrStorage) {
		t.Fatalf("set with failing disk: %v", err)
	}
	ffs.SetInjector(nil)
	if _, err := s.CreatePartitions("t", 3); !errors.Is(err, ErrStorage) {
		t.Fatalf("grow after a failed fsync: %v", err)
	}
	if got, _ := s.Topic("t"); got.Configs["retention.ms"] != "1000" || got.Partitions != 1 {
		t.Fatalf("after failed writes: %+v", got)
	}
	s.Close()
	// What a crash keeps: the topic as it was before the failed change.
	crashed := mustOpen(t, Config{Dir: cfg.Dir, FS: mem.CrashClone(vfs.CrashDropUnsynced, 1), Shards: cfg.Shards, SegmentBytes: cfg.SegmentBytes})
	defer crashed.Close()
	if got, _ := crashed.Topic("t"); got.Configs["retention.ms"] != "1000" || got.Partitions != 1 {
		t.Fatalf("after restart: %+v", got)
	}
	// The next write works and still gets fresh partition keys.
	if _, err := crashed.CreatePartitions("t", 2); err != nil {
		t.Fatal(err)
	}
}

// CreatePartitions adds empty partitions with new keys; old partitions keep
// their data, and all of it survives a crash.
func TestCreatePartitions(t *testing.T) {
	fsys := vfs.NewMemFS()
	cfg := testConfig(fsys)
	cfg.MaxPartitions = 8
	s := mustOpen(t, cfg)
	mustCreate(t, s, "t", 2)
	mustCreate(t, s, "other", 1)
	appendWait(t, s, "t", 1, makeBatch(batchSpec{value: []byte("old")}), true)
	w := make(chan struct{})
	s.Watch("t", 1, 1, func() { close(w) }) // a watcher on an old partition keeps working

	for _, c := range []struct {
		count int32
		want  error
	}{{2, ErrInvalidPartitions}, {1, ErrInvalidPartitions}, {9, ErrInvalidPartitions}} {
		if _, err := s.CreatePartitions("t", c.count); !errors.Is(err, c.want) {
			t.Fatalf("grow to %d: %v", c.count, err)
		}
	}
	if _, err := s.CreatePartitions("missing", 3); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	info, err := s.CreatePartitions("t", 5)
	if err != nil || info.Partitions != 5 {
		t.Fatalf("grow: %+v %v", info, err)
	}
	if got, _ := s.Topic("t"); got.Partitions != 5 {
		t.Fatalf("Topic after grow: %+v", got)
	}
	keys := map[uint32]bool{}
	for _, mt := range s.mstate.topics {
		for _, mp := range mt.Partitions {
			if keys[mp.Key] {
				t.Fatalf("partition key %d reused", mp.Key)
			}
			keys[mp.Key] = true
		}
	}
	for p := int32(2); p < 5; p++ {
		if r := appendWait(t, s, "t", p, makeBatch(batchSpec{value: []byte("new")}), true); r.Err != nil || r.BaseOffset != 0 {
			t.Fatalf("append to new partition %d: %+v", p, r)
		}
	}
	if r := appendWait(t, s, "t", 5, makeBatch(batchSpec{}), true); !errors.Is(r.Err, ErrUnknownTopic) {
		t.Fatalf("append past the new count: %+v", r)
	}
	appendWait(t, s, "t", 1, makeBatch(batchSpec{value: []byte("old2")}), true)
	select {
	case <-w:
	case <-time.After(waitFor):
		t.Fatal("watch on an old partition did not fire")
	}

	check := func(s *Store) {
		t.Helper()
		if got, _ := s.Topic("t"); got.Partitions != 5 || got.ID != info.ID {
			t.Fatalf("reopened: %+v", got)
		}
		if got := readAllBatches(t, s, "t", 1); len(got) != 2 || string(got[0].values[0]) != "old" {
			t.Fatalf("old partition: %d batches", len(got))
		}
		for p := int32(2); p < 5; p++ {
			if got := readAllBatches(t, s, "t", p); len(got) != 1 || string(got[0].values[0]) != "new" {
				t.Fatalf("new partition %d: %d batches", p, len(got))
			}
		}
	}
	crashed := mustOpen(t, Config{Dir: cfg.Dir, FS: fsys.CrashClone(vfs.CrashDropUnsynced, 1), Shards: cfg.Shards, SegmentBytes: cfg.SegmentBytes, MaxPartitions: 8})
	check(crashed)
	crashed.Close()
	// Deleting a grown topic drops every partition.
	if err := s.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	if r := appendWait(t, s, "t", 4, makeBatch(batchSpec{}), true); !errors.Is(r.Err, ErrUnknownTopic) {
		t.Fatalf("append after delete: %+v", r)
	}
	s.Close()
}
