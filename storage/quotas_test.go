package storage

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

// Quotas set and removed are back after a crash (every change was
// acknowledged, so durable) and after a snapshot replaced the log.
func TestQuotasDurable(t *testing.T) {
	for _, snapshotOften := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshots=%v", snapshotOften), func(t *testing.T) {
			mfs := vfs.NewMemFS()
			cfg := testConfig(mfs)
			if snapshotOften {
				cfg.metaLogBytes = 1
			}
			s := mustOpen(t, cfg)
			alice := QuotaEntity{User: "alice"}
			both := QuotaEntity{UserDefault: true, ClientID: "app"}
			dflt := QuotaEntity{ClientDefault: true}
			steps := [][]Quota{
				{{Entity: alice, Values: map[string]float64{"producer_byte_rate": 1024}}},
				{{Entity: both, Values: map[string]float64{"consumer_byte_rate": 2048, "request_percentage": 12.5}}},
				{{Entity: dflt, Values: map[string]float64{"producer_byte_rate": 1}}},
				{{Entity: alice, Values: map[string]float64{"consumer_byte_rate": 7}}, {Entity: dflt}},
			}
			for _, qs := range steps {
				if err := s.SetQuotas(qs); err != nil {
					t.Fatal(err)
				}
			}
			want := []Quota{
				{Entity: both, Values: map[string]float64{"consumer_byte_rate": 2048, "request_percentage": 12.5}},
				{Entity: alice, Values: map[string]float64{"consumer_byte_rate": 7}},
			}
			if got := s.Quotas(); !reflect.DeepEqual(got, want) {
				t.Fatalf("Quotas = %+v, want %+v", got, want)
			}
			crashed := mfs.CrashClone(vfs.CrashDropUnsynced, 1)
			s.Close()
			cfg.FS = crashed
			s2 := mustOpen(t, cfg)
			defer s2.Close()
			if got := s2.Quotas(); !reflect.DeepEqual(got, want) {
				t.Fatalf("after crash and reopen Quotas = %+v, want %+v", got, want)
			}
			if s.MetaStats().Snapshots == 0 && snapshotOften {
				t.Fatal("no snapshot was written")
			}
			if s2.mstate.bytes != newMetaStateBytes(t, want) {
				t.Fatalf("snapshot size bound %d after reopen, want %d", s2.mstate.bytes, newMetaStateBytes(t, want))
			}
		})
	}
}

func newMetaStateBytes(t *testing.T, qs []Quota) int64 {
	st := newMetaState(1)
	st.applyQuotas(&metaRecord{Op: opSetQuotas, Quotas: qs})
	return st.bytes
}

// A quota change that would pass the snapshot limit is refused whole.
func TestQuotasMetadataFull(t *testing.T) {
	cfg := testConfig(vfs.NewMemFS())
	cfg.metaSnapBytes = 64 << 10
	s := mustOpen(t, cfg)
	defer s.Close()
	var big []Quota
	for i := range 1000 {
		big = append(big, Quota{Entity: QuotaEntity{User: fmt.Sprintf("user-%d", i)}, Values: map[string]float64{"producer_byte_rate": 1}})
	}
	if err := s.SetQuotas(big); !errors.Is(err, ErrMetadataFull) {
		t.Fatalf("SetQuotas of 1000 under a 64 KiB limit: %v, want ErrMetadataFull", err)
	}
	if n := len(s.Quotas()); n != 0 {
		t.Fatalf("%d quotas after a refused change", n)
	}
	if err := s.SetQuotas(big[:10]); err != nil {
		t.Fatal(err)
	}
}

// The bucket snapshot carries the quotas (through the tier encoding), and
// a restore brings them back durably.
func TestQuotasSnapshotRestore(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	want := []Quota{
		{Entity: QuotaEntity{UserDefault: true}, Values: map[string]float64{"producer_byte_rate": 100}},
		{Entity: QuotaEntity{User: "alice", ClientID: "app"}, Values: map[string]float64{"consumer_byte_rate": 5, "request_percentage": 0.5}},
	}
	if err := s.SetQuotas(want); err != nil {
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
	if got := dst.Quotas(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restore:\n got %+v\nwant %+v", got, want)
	}
	crashed := mfs.CrashClone(vfs.CrashDropUnsynced, 1)
	dst.Close()
	again := mustOpen(t, testConfig(crashed))
	defer again.Close()
	if got := again.Quotas(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restore and a crash:\n got %+v\nwant %+v", got, want)
	}
	bad := tier.MetaSnapshot{Quotas: []byte(`[{"entity":{},"values":{"producer_byte_rate":1}}]`)}
	empty := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer empty.Close()
	if err := empty.Restore(&bad, nil); err == nil {
		t.Fatal("restored a quota without an entity")
	}
}
