package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/klite/klite/vfs"
)

// Topic configs are client input of any size: the metadata a client can
// make must stay within what a snapshot may hold. Past that, creates,
// config changes and partition adds are refused with ErrMetadataFull, and
// nothing else suffers: before, the snapshot write failed, which took the
// metadata log offline for good (every later change, and InitProducerID,
// answered KAFKA_STORAGE_ERROR, after a restart too, since the first
// change then snapshots again).
func TestMetadataSizeLimit(t *testing.T) {
	mem := vfs.NewMemFS()
	cfg := testConfig(mem)
	cfg.metaLogBytes = 2 << 10
	cfg.metaSnapBytes = 64 << 10
	s := mustOpen(t, cfg)
	big := map[string]string{"message.format.version": strings.Repeat("<", 1000)} // JSON escapes each as 6 bytes
	var acked []string
	var refused error
	for i := 0; refused == nil; i++ {
		if i > 200 {
			t.Fatalf("%d topics of %d config bytes each and none refused", i, len(big["message.format.version"]))
		}
		name := fmt.Sprintf("t%d", i)
		_, err := s.CreateTopic(name, 2, big)
		switch {
		case err == nil:
			acked = append(acked, name)
		case errors.Is(err, ErrMetadataFull):
			refused = err
		default:
			t.Fatalf("create %s after %d: %v", name, len(acked), err)
		}
	}
	// Everything that fits still works: config changes that shrink, small
	// creates once room is freed, producer ids.
	if err := s.SetTopicConfigs(acked[0], big); err != nil {
		t.Fatalf("setting the same configs again: %v", err)
	}
	if err := s.SetTopicConfigs(acked[0], map[string]string{"message.format.version": strings.Repeat("<", 20000)}); !errors.Is(err, ErrMetadataFull) {
		t.Fatalf("growing configs past the limit: %v, want ErrMetadataFull", err)
	}
	if err := s.DeleteTopic(acked[1]); err != nil {
		t.Fatal(err)
	}
	acked = append(acked[:1], acked[2:]...)
	if _, err := s.CreateTopic("small", 1, nil); err != nil {
		t.Fatalf("small create after a delete: %v", err)
	}
	acked = append(acked, "small")
	for range 3 * producerIDBlock {
		if _, _, err := s.InitProducerID(); err != nil {
			t.Fatalf("InitProducerID: %v", err)
		}
	}
	// The model's bound holds for any bytes: escapes, invalid UTF-8, line
	// separators.
	odd := "a\x00\x1f\"\\<>&\xff\xc3(é\u2028\U0001F600"
	if err := s.SetTopicConfigs("small", map[string]string{odd: odd}); err != nil {
		t.Fatal(err)
	}
	s.metaMu.Lock()
	b, err := json.Marshal(s.mstate.file())
	bound := s.mstate.bytes + metaFileJSONBytes
	s.metaMu.Unlock()
	if err != nil || int64(len(b)) > bound {
		t.Fatalf("snapshot of %d bytes (%v) over the model's bound %d", len(b), err, bound)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, cfg)
	defer s.Close()
	for _, name := range acked {
		if _, ok := s.Topic(name); !ok {
			t.Errorf("acknowledged topic %s missing after reopen", name)
		}
	}
	if _, err := s.CreateTopic("after-reopen", 1, nil); err != nil {
		t.Fatalf("create after reopen: %v", err)
	}
	t.Logf("%d topics of %d config bytes fit in a %d-byte snapshot limit", len(acked), len(big["message.format.version"]), cfg.metaSnapBytes)
}
