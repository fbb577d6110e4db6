package group

import (
	"errors"
	"fmt"
	"path"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/klite/klite/vfs"
)

func openTestLog(t *testing.T, fs vfs.FS, compact int64) *offsetsLog {
	t.Helper()
	l, err := openLog(fs, "/g", logOptions{compactBytes: compact}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// commitSync commits one offset and waits for the ack.
func commitSync(l *offsetsLog, group string, tp TP, off int64) error {
	entries := []commitEntry{{tp, Offset{Offset: off, LeaderEpoch: 3, Metadata: "m", CommitMs: 1}}}
	ch := make(chan error, 1)
	l.submit(&logOp{rec: commitRecord(group, entries), apply: applyCommit(group, entries), done: func(err error) { ch <- err }})
	return <-ch
}

func TestLogRecoversAckedCommits(t *testing.T) {
	for _, mode := range []vfs.CrashMode{vfs.CrashDropUnsynced, vfs.CrashKeepUnsynced, vfs.CrashTorn} {
		for seed := uint64(0); seed < 5; seed++ {
			t.Run(fmt.Sprintf("mode%d/seed%d", mode, seed), func(t *testing.T) {
				fs := vfs.NewMemFS()
				l := openTestLog(t, fs, 1<<20)
				// Concurrent committers share fdatasyncs.
				var wg sync.WaitGroup
				acked := make([]int64, 8)
				for w := 0; w < 8; w++ {
					wg.Add(1)
					go func(w int) {
						defer wg.Done()
						for i := int64(1); i <= 50; i++ {
							if err := commitSync(l, "g", TP{"t", int32(w)}, i); err != nil {
								t.Error(err)
								return
							}
							acked[w] = i
						}
					}(w)
				}
				wg.Wait()
				if syncs := l.syncs.Load(); syncs > 400 {
					t.Fatalf("%d fdatasyncs for 400 commits", syncs)
				}
				// An unacked write in flight at the crash: torn or not, the
				// acked state survives.
				l.submit(&logOp{rec: commitRecord("g", []commitEntry{{TP{"t", 0}, Offset{Offset: 999}}}), done: func(error) {}})
				crashed := fs.CrashClone(mode, seed)
				l.close()

				r := openTestLog(t, crashed, 1<<20)
				defer r.close()
				for w := range acked {
					o, ok := r.offset("g", TP{"t", int32(w)})
					if !ok || (o.Offset != acked[w] && !(w == 0 && o.Offset == 999)) {
						t.Fatalf("partition %d: recovered %+v ok=%v, acked %d", w, o, ok, acked[w])
					}
					if o.Offset != 999 && (o.LeaderEpoch != 3 || o.Metadata != "m") {
						t.Fatalf("partition %d: fields lost: %+v", w, o)
					}
				}
				// The recovered log takes new commits after a torn tail.
				if err := commitSync(r, "g", TP{"t", 1}, 1000); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestLogCompaction(t *testing.T) {
	fs := vfs.NewMemFS()
	l := openTestLog(t, fs, 4096) // compact often
	for i := int64(0); i < 2000; i++ {
		if err := commitSync(l, fmt.Sprintf("g%d", i%5), TP{"t", int32(i % 7)}, i); err != nil {
			t.Fatal(err)
		}
	}
	// Delete one group: it must stay deleted across snapshots.
	ch := make(chan error, 1)
	l.submit(&logOp{rec: deleteGroupRecord("g4"), apply: applyDeleteGroup("g4"), done: func(err error) { ch <- err }})
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	files := fs.Files("/g")
	snaps := 0
	for _, f := range files {
		if _, ok := parseSeq(f[len("/g/"):], snapPrefix); ok {
			snaps++
		}
	}
	if snaps != 1 || len(files) > 3 {
		t.Fatalf("after compaction: %v", files)
	}
	for _, crash := range []bool{false, true} {
		var rfs vfs.FS = fs
		if crash {
			rfs = fs.CrashClone(vfs.CrashDropUnsynced, 1)
		}
		r := openTestLog(t, rfs, 4096)
		for i := int64(1995); i < 2000; i++ {
			g := fmt.Sprintf("g%d", i%5)
			o, ok := r.offset(g, TP{"t", int32(i % 7)})
			if g == "g4" {
				if ok {
					t.Fatalf("deleted group g4 came back")
				}
				continue
			}
			if !ok || o.Offset != i {
				t.Fatalf("%s/%d: %+v %v, want %d", g, i%7, o, ok, i)
			}
		}
		r.close()
	}
}

func TestLogFsyncFailureFailsCommits(t *testing.T) {
	mem := vfs.NewMemFS()
	fs := vfs.NewFaultFS(mem)
	l := openTestLog(t, fs, 1<<20)
	if err := commitSync(l, "g", TP{"t", 0}, 1); err != nil {
		t.Fatal(err)
	}
	fs.SetInjector(vfs.FailNth(vfs.OpSync, "log-*", 1, vfs.ErrInjected))
	if err := commitSync(l, "g", TP{"t", 0}, 2); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("commit over a failed fsync: %v", err)
	}
	fs.SetInjector(nil)
	// Never retried: later commits fail too, and nothing unsynced is applied.
	if err := commitSync(l, "g", TP{"t", 0}, 3); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("commit after a failed fsync: %v", err)
	}
	if o, _ := l.offset("g", TP{"t", 0}); o.Offset != 1 {
		t.Fatalf("offset %d visible, want 1", o.Offset)
	}
	l.close()

	// A short write (disk full mid-record) leaves a torn tail; recovery cuts it.
	mem = vfs.NewMemFS()
	fs = vfs.NewFaultFS(mem)
	l = openTestLog(t, fs, 1<<20)
	if err := commitSync(l, "g", TP{"t", 0}, 1); err != nil {
		t.Fatal(err)
	}
	fs.SetInjector(vfs.FailNth(vfs.OpWrite, "log-*", 1, &vfs.ShortWrite{N: 10, Err: vfs.ErrNoSpace}))
	if err := commitSync(l, "g", TP{"t", 0}, 2); err == nil {
		t.Fatal("short write acknowledged")
	}
	l.close()
	r := openTestLog(t, mem.CrashClone(vfs.CrashKeepUnsynced, 0), 1<<20)
	defer r.close()
	if o, _ := r.offset("g", TP{"t", 0}); o.Offset != 1 {
		t.Fatalf("recovered %d, want 1", o.Offset)
	}
	if err := commitSync(r, "g", TP{"t", 0}, 5); err != nil {
		t.Fatal(err)
	}
}

func TestLogRecordRoundTrip(t *testing.T) {
	st := newLogState()
	recs := [][]byte{
		groupMetaRecord("g", "consumer", 7),
		commitRecord("g", []commitEntry{{TP{"a", 1}, Offset{5, 2, "meta", 10, 20}}, {TP{"b", 0}, Offset{Offset: 9}}}),
		deleteOffsetsRecord("g", []TP{{"b", 0}}),
		memberRecord("g", "m1", "", true),
		memberRecord("g", "m2", "inst", true),
		memberRecord("g", "m1", "", false),
	}
	for _, r := range recs {
		apply, err := decodeRecord(r[recHeaderBytes:])
		if err != nil {
			t.Fatal(err)
		}
		apply(st)
	}
	g := st.groups["g"]
	if g == nil || g.protocolType != "consumer" || g.generation != 7 || len(g.offsets) != 1 ||
		g.offsets[TP{"a", 1}] != (Offset{5, 2, "meta", 10, 20}) || len(g.members) != 1 || g.members["m2"] != "inst" {
		t.Fatalf("state %+v", g)
	}
	// A snapshot keeps the members.
	st2 := replaySnapshot(t, encodeState(st))
	if g2 := st2.groups["g"]; g2 == nil || len(g2.members) != 1 || g2.members["m2"] != "inst" {
		t.Fatalf("snapshot state %+v", g2)
	}
	// Truncated bodies never decode (and never panic).
	for _, r := range recs {
		for n := 0; n < len(r)-recHeaderBytes; n++ {
			if _, err := decodeRecord(r[recHeaderBytes : recHeaderBytes+n]); err == nil {
				t.Fatalf("truncated record of %d bytes decoded", n)
			}
		}
	}
}

// replaySnapshot reads a snapshot back as recovery does (replay checks each
// record's CRC too) into a fresh state.
func replaySnapshot(t *testing.T, snap []byte) *logState {
	t.Helper()
	st := newLogState()
	if _, why, _ := replay(st, snap[len(snapshotMagic):], false); why != "" {
		t.Fatal(why)
	}
	return st
}

// Compaction creates the next log and fsyncs the directory. When that fsync
// fails the new, empty log stays behind with a name that is not durable;
// after a restart without a crash, recovery appends to it. Unless recovery
// fsyncs the directory, a commit acknowledged then is lost at the next
// power loss with the name.
func TestLogNewFileDirSyncFailsThenRestart(t *testing.T) {
	mem := vfs.NewMemFS()
	fs := vfs.NewFaultFS(mem)
	var created atomic.Bool // set on the log's goroutine
	fs.SetInjector(func(op vfs.Op) error {
		if op.Kind == vfs.OpCreate && vfs.MatchBase("log-*", op.Name) && path.Base(op.Name) != logName(1) {
			created.Store(true)
		}
		if created.Load() && op.Kind == vfs.OpSyncDir {
			return vfs.ErrInjected
		}
		return nil
	})
	l := openTestLog(t, fs, 4096)
	for i := int64(0); !created.Load(); i++ {
		if i == 10000 {
			t.Fatal("no compaction after 10,000 commits")
		}
		if err := commitSync(l, "g", TP{"t", 0}, i); err != nil {
			t.Fatal(err)
		}
	}
	l.close()
	fs.SetInjector(nil)

	r := openTestLog(t, fs, 4096)
	if err := commitSync(r, "g", TP{"t", 1}, 42); err != nil {
		t.Fatal(err)
	}
	r.close()
	c := openTestLog(t, mem.CrashClone(vfs.CrashDropUnsynced, 1), 4096)
	defer c.close()
	if o, ok := c.offset("g", TP{"t", 1}); !ok || o.Offset != 42 {
		t.Fatalf("commit acknowledged after the restart: recovered %+v, %v", o, ok)
	}
}
