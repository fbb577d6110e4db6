package group

import (
	"testing"

	"github.com/klite/klite/vfs"
)

// TestLogTornWriteSeeds: an unacknowledged write of several 512-byte
// sectors (its fdatasync failed) torn in 400 ways by the crash model never
// fails the open, never costs an acknowledged commit, and comes back whole
// or not at all (one write marker covers it).
func TestLogTornWriteSeeds(t *testing.T) {
	torn := 0
	for seed := uint64(0); seed < 400; seed++ {
		mem := vfs.NewMemFS()
		fs := vfs.NewFaultFS(mem)
		l := openTestLog(t, fs, 1<<20)
		for i := int64(1); i <= 5; i++ {
			if err := commitSync(l, "g", TP{"t", int32(i)}, i); err != nil {
				t.Fatal(err)
			}
		}
		fs.SetInjector(vfs.FailNth(vfs.OpSync, "log-*", 1, vfs.ErrInjected))
		big := make([]commitEntry, 0, 40)
		for p := 0; p < 40; p++ {
			big = append(big, commitEntry{TP{"u", int32(p)}, Offset{Offset: 7, Metadata: "0123456789012345678901234567890123456789"}})
		}
		ch := make(chan error, 1)
		l.submit(&logOp{rec: commitRecords(nil, "g", big), done: func(err error) { ch <- err }})
		if err := <-ch; err == nil {
			t.Fatal("acked")
		}
		crashed := mem.CrashClone(vfs.CrashTorn, seed)
		l.close()
		r, err := openRepair(crashed, false)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for i := int64(1); i <= 5; i++ {
			if o, ok := r.offset("g", TP{"t", int32(i)}); !ok || o.Offset != i {
				t.Fatalf("seed %d: lost %d", seed, i)
			}
		}
		n := 0
		for p := int32(0); p < 40; p++ {
			if _, ok := r.offset("g", TP{"u", p}); ok {
				n++
			}
		}
		if n != 0 && n != 40 {
			t.Fatalf("seed %d: %d of the torn write's 40 offsets came back", seed, n)
		}
		if n == 0 {
			torn++
		}
		r.close()
	}
	if torn == 0 || torn == 400 {
		t.Fatalf("%d of 400 crashes lost the unacknowledged write: the seeds do not tear it", torn)
	}
}
