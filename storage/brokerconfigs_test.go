package storage

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

// Dynamic broker configs set, replaced and cleared are back after a crash
// (each change was acknowledged, so durable) and after a snapshot
// replaced the log; retention reads the broker's own before the default.
func TestBrokerConfigsDurable(t *testing.T) {
	for _, snapshotOften := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshots=%v", snapshotOften), func(t *testing.T) {
			mfs := vfs.NewMemFS()
			cfg := testConfig(mfs)
			cfg.NodeID = 3
			if snapshotOften {
				cfg.metaLogBytes = 1
			}
			s := mustOpen(t, cfg)
			steps := []struct {
				name string
				cs   map[string]string
			}{
				{"", map[string]string{"log.retention.ms": "1000", "message.max.bytes": "5000"}},
				{"3", map[string]string{"log.retention.ms": "2000"}},
				{"3", map[string]string{"log.retention.bytes": "77"}},
				{"7", map[string]string{"log.retention.ms": "9"}},
				{"7", nil},
			}
			for _, st := range steps {
				if err := s.SetBrokerConfigs(st.name, st.cs); err != nil {
					t.Fatal(err)
				}
			}
			check := func(s *Store, when string) {
				t.Helper()
				if got, want := s.BrokerConfigs(""), map[string]string{"log.retention.ms": "1000", "message.max.bytes": "5000"}; !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: default %v, want %v", when, got, want)
				}
				if got, want := s.BrokerConfigs("3"), map[string]string{"log.retention.bytes": "77"}; !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: broker 3 %v, want %v", when, got, want)
				}
				if got := s.BrokerConfigs("7"); got != nil {
					t.Fatalf("%s: cleared broker 7 has %v", when, got)
				}
				if ms, b := s.retentionDefault("log.retention.ms", -5), s.retentionDefault("log.retention.bytes", -5); ms != 1000 || b != 77 {
					t.Fatalf("%s: retention defaults %d ms %d bytes, want 1000 and 77", when, ms, b)
				}
			}
			check(s, "before the crash")
			crashed := mfs.CrashClone(vfs.CrashDropUnsynced, 1)
			s.Close()
			if snapshotOften && s.MetaStats().Snapshots == 0 {
				t.Fatal("no snapshot was written")
			}
			cfg.FS = crashed
			s2 := mustOpen(t, cfg)
			defer s2.Close()
			check(s2, "after crash and reopen")
			if s2.mstate.bytes != s.mstate.bytes {
				t.Fatalf("snapshot size bound %d after reopen, %d before", s2.mstate.bytes, s.mstate.bytes)
			}
		})
	}
}

// The bucket snapshot carries the broker configs (through the tier
// encoding), and a restore brings them back durably.
func TestBrokerConfigsSnapshotRestore(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	if err := s.SetBrokerConfigs("", map[string]string{"log.retention.ms": "60000"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBrokerConfigs("0", map[string]string{"message.max.bytes": "100"}); err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	b, err := tier.EncodeSnapshot(&snap)
	if err != nil {
		t.Fatal(err)
	}
	back, err := tier.DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	mfs := vfs.NewMemFS()
	dst := mustOpen(t, testConfig(mfs))
	if err := dst.Restore(back, nil); err != nil {
		t.Fatal(err)
	}
	crashed := mfs.CrashClone(vfs.CrashDropUnsynced, 1)
	dst.Close()
	again := mustOpen(t, testConfig(crashed))
	defer again.Close()
	for _, st := range []*Store{dst, again} {
		if got := st.BrokerConfigs(""); got["log.retention.ms"] != "60000" || len(got) != 1 {
			t.Fatalf("default after restore: %v", got)
		}
		if got := st.BrokerConfigs("0"); got["message.max.bytes"] != "100" || len(got) != 1 {
			t.Fatalf("broker 0 after restore: %v", got)
		}
	}
}

// Retention skips a topic without its own cleanup.policy once the dynamic
// log.cleanup.policy leaves out delete, and a topic that sets delete keeps
// it.
func TestBrokerConfigsCleanupPolicy(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	if !s.deletePolicy(nil) {
		t.Fatal("no policy set: retention does not apply")
	}
	if err := s.SetBrokerConfigs("", map[string]string{"log.cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	if s.deletePolicy(nil) {
		t.Fatal("compact default: retention still applies to a topic without its own policy")
	}
	if !s.deletePolicy(map[string]string{"cleanup.policy": "compact,delete"}) {
		t.Fatal("a topic's own compact,delete lost to the default")
	}
}
