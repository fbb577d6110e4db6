package group

// The offsets log always reopens and never drops an acknowledged commit:
// the reproductions of issue 9 (oversized group metadata, commits whose
// merged snapshot record was over the read limit, an oversized record cut
// as a "torn tail" after an older large snapshot), and recovery's rules
// (only a torn tail of the newest log is cut; anything else fails the open
// unless repair is asked for, and a cut keeps the cut bytes).

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/vfs"
)

// bigTopics answers topics "a" (10,000 partitions), "b" (20,000) and "t" (4).
func bigTopics(c *Config) {
	c.Topics = func(topic string) (int32, bool) {
		switch topic {
		case "a":
			return 10000, true
		case "b":
			return 20000, true
		case "t":
			return 4, true
		}
		return 0, false
	}
}

// wideCommit commits offset base+p with 4096 bytes of metadata to
// partitions [0, n) of topic, standalone, and requires every partition
// acknowledged.
func wideCommit(t *testing.T, c *Coordinator, group, topic string, n int32, base int64) {
	t.Helper()
	meta := strings.Repeat("m", DefaultMaxMetadataBytes)
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version, r.Group, r.Generation = 8, group, -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < n; p++ {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.Metadata = p, base+int64(p), &meta
		rt.Partitions = append(rt.Partitions, rp)
	}
	r.Topics = append(r.Topics, rt)
	resp := call(t, func(d func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(r, d) })
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("commit %s/%d: error %d", topic, p.Partition, p.ErrorCode)
		}
	}
}

// checkWide requires what wideCommit acknowledged.
func checkWide(t *testing.T, c *Coordinator, group, topic string, n int32, base int64) {
	t.Helper()
	offs := c.offs.offsets(group)
	for p := int32(0); p < n; p++ {
		o, ok := offs[TP{topic, p}]
		if !ok || o.Offset != base+int64(p) || len(o.Metadata) != DefaultMaxMetadataBytes {
			t.Fatalf("%s/%s/%d after restart: %v offset %d metadata %d bytes, want offset %d", group, topic, p, ok, o.Offset, len(o.Metadata), base+int64(p))
		}
	}
}

func commitOne(t *testing.T, c *Coordinator, group string, off int64) {
	t.Helper()
	if code := call(t, func(d func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(commitReq(group, "", -1, off), d) }).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("commit: %d", code)
	}
}

func checkOne(t *testing.T, c *Coordinator, group string, off int64) {
	t.Helper()
	if o, ok := c.offs.offset(group, TP{"t", 0}); !ok || o.Offset != off {
		t.Fatalf("%s after restart: %v %d, want %d", group, ok, o.Offset, off)
	}
}

// skipUnderRace skips a test that moves tens of megabytes when the race
// detector is on; plain `go test` runs it.
func skipUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("moves tens of MB: too slow and large under -race; runs without it")
	}
}

// reopen closes c (a clean stop, as after SIGTERM) and opens fs again.
func reopen(t *testing.T, c *Coordinator, fs vfs.FS, mod ...func(*Config)) *Coordinator {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return openTestCoordinator(t, fs, mod...)
}

// TestOversizedGroupMetadataRefused: 65 MiB of JoinGroup protocol metadata,
// or a SyncGroup whose assignments make the generation that large, are
// answered UNKNOWN_SERVER_ERROR (Kafka's answer to a group metadata record
// over __consumer_offsets' max.message.bytes) and never logged; the log
// reopens with every acknowledged commit.
func TestOversizedGroupMetadataRefused(t *testing.T) {
	skipUnderRace(t)
	fs := vfs.NewMemFS()
	c := openTestCoordinator(t, fs)
	commitOne(t, c, "before", 7)

	huge := make([]byte, 65<<20)
	jr := joinReq(5, "big", "", nil, time.Minute, "range")
	jr.Protocols[0].Metadata = huge
	if r := call(t, c.testJoin(jr)); r.ErrorCode != kerr.UnknownServerError.Code {
		t.Fatalf("join with 65 MiB metadata: error %d, want UNKNOWN_SERVER_ERROR", r.ErrorCode)
	}

	// A small join, then the leader assigns 65 MiB.
	id, ch := joinNew(t, c, "big", time.Minute)
	if r := recv(t, ch); r.ErrorCode != 0 {
		t.Fatalf("join: %d", r.ErrorCode)
	}
	sr := syncReq("big", id, 1, nil)
	ga := kmsg.NewSyncGroupRequestGroupAssignment()
	ga.MemberID, ga.MemberAssignment = id, huge
	sr.GroupAssignment = append(sr.GroupAssignment, ga)
	if r := call(t, func(d func(*kmsg.SyncGroupResponse)) { c.SyncGroup(sr, d) }); r.ErrorCode != kerr.UnknownServerError.Code {
		t.Fatalf("sync with a 65 MiB assignment: error %d, want UNKNOWN_SERVER_ERROR", r.ErrorCode)
	}
	commitOne(t, c, "after", 9)

	c = reopen(t, c, fs)
	checkOne(t, c, "before", 7)
	checkOne(t, c, "after", 9)
	c = reopen(t, c, fs.CrashClone(vfs.CrashDropUnsynced, 0))
	checkOne(t, c, "after", 9)
}

// TestGroupMetadataLimitConfigurable: a generation just under the limit is
// stored and comes back after a restart; the limit is Config's.
func TestGroupMetadataLimitConfigurable(t *testing.T) {
	fs := vfs.NewMemFS()
	limit := func(c *Config) { c.MaxGroupMetadataBytes = 64 << 10 }
	c := openTestCoordinator(t, fs, limit)
	id, ch := joinNew(t, c, "g", time.Minute)
	if r := recv(t, ch); r.ErrorCode != 0 {
		t.Fatalf("join: %d", r.ErrorCode)
	}
	sync := func(n int) int16 {
		sr := syncReq("g", id, 1, map[string]string{id: strings.Repeat("x", n)})
		return call(t, func(d func(*kmsg.SyncGroupResponse)) { c.SyncGroup(sr, d) }).ErrorCode
	}
	if code := sync(64 << 10); code != kerr.UnknownServerError.Code {
		t.Fatalf("sync over the limit: %d", code)
	}
	// The failed sync rebalanced the group: join again, then fit.
	r := call(t, c.testJoin(joinReq(5, "g", id, nil, time.Minute, "range", "sticky")))
	if r.ErrorCode != 0 {
		t.Fatalf("rejoin: %d", r.ErrorCode)
	}
	sr := syncReq("g", id, r.Generation, map[string]string{id: strings.Repeat("x", 60<<10)})
	if code := call(t, func(d func(*kmsg.SyncGroupResponse)) { c.SyncGroup(sr, d) }).ErrorCode; code != 0 {
		t.Fatalf("sync under the limit: %d", code)
	}
	c = reopen(t, c, fs, limit)
	if d := describeClassic(t, c, "g"); d.State != "Stable" || len(d.Members) != 1 || len(d.Members[0].MemberAssignment) != 60<<10 {
		t.Fatalf("after restart: %s, %d members", d.State, len(d.Members))
	}
}

// TestWideCommitsReopen: two commits of 10,000 partitions with 4096 bytes
// of metadata each (43 MB, inside every limit) are snapshotted and reopen:
// the snapshot splits a group's offsets across bounded records.
func TestWideCommitsReopen(t *testing.T) {
	skipUnderRace(t)
	fs := vfs.NewMemFS()
	c := openTestCoordinator(t, fs, bigTopics)
	wideCommit(t, c, "g", "a", 10000, 100)
	wideCommit(t, c, "g", "b", 10000, 200)
	commitOne(t, c, "g", 5)
	c = reopen(t, c, fs, bigTopics) // Close waits for the snapshot the log size started
	if n := snapshots(t, fs); n != 1 {
		t.Fatalf("%d snapshots, want 1 (compaction did not run)", n)
	}
	checkWide(t, c, "g", "a", 10000, 100)
	checkWide(t, c, "g", "b", 10000, 200)
	checkOne(t, c, "g", 5)
}

// TestOversizedCommitAfterLargeSnapshot: with an older snapshot of about
// 40 MB, a commit of 70 MB (one record over the read limit before) and a
// commit acknowledged after it both come back.
func TestOversizedCommitAfterLargeSnapshot(t *testing.T) {
	skipUnderRace(t)
	fs := vfs.NewMemFS()
	small := func(c *Config) { bigTopics(c); c.CompactBytes = 1 << 20 }
	c := openTestCoordinator(t, fs, small)
	wideCommit(t, c, "g", "a", 10000, 100) // 41 MB: the log is compacted into a snapshot
	waitUntil(t, "the first snapshot", func() bool { return c.offs.snapSize.Load() > 35<<20 && !c.offs.compacting.Load() })
	wideCommit(t, c, "g", "b", 17000, 300) // 70 MB: under twice the snapshot, so no new one
	commitOne(t, c, "g", 11)
	for _, crash := range []bool{false, true} {
		var rfs vfs.FS = fs
		if crash {
			rfs = fs.CrashClone(vfs.CrashDropUnsynced, 0)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		c = openTestCoordinator(t, rfs, small)
		checkWide(t, c, "g", "a", 10000, 100)
		checkWide(t, c, "g", "b", 17000, 300)
		checkOne(t, c, "g", 11)
	}
}

func snapshots(t *testing.T, fs *vfs.MemFS) int {
	t.Helper()
	n := 0
	for _, f := range fs.Files("/groups") {
		if _, ok := parseSeq(path.Base(f), snapPrefix); ok {
			n++
		}
	}
	return n
}

// ---- recovery rules, on the log itself ----

// threeWrites opens a log on a fresh MemFS, acknowledges offsets 1, 2, 3 of
// g/t/0 in three writes and closes it; it returns the file system and the
// byte offset where each write starts.
func threeWrites(t *testing.T) (*vfs.MemFS, []int) {
	t.Helper()
	fs := vfs.NewMemFS()
	l := openTestLog(t, fs, 1<<30)
	var starts []int
	for i := int64(1); i <= 3; i++ {
		starts = append(starts, int(l.size))
		if err := commitSync(l, "g", TP{"t", int32(i)}, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	return fs, starts
}

var log1 = "/g/" + logName(1)

func readMem(t *testing.T, fs vfs.FS, name string) []byte {
	t.Helper()
	b, err := vfs.ReadFile(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeMem(t *testing.T, fs vfs.FS, name string, b []byte) {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func openRepair(fs vfs.FS, repair bool) (*offsetsLog, error) {
	return openLog(fs, "/g", logOptions{compactBytes: 1 << 30, repair: repair}, zerolog.Nop())
}

// wantCorrupt requires an open that fails with ErrCorrupt naming file and
// byte offset.
func wantCorrupt(t *testing.T, fs vfs.FS, file string, at int) {
	t.Helper()
	l, err := openRepair(fs, false)
	if err == nil {
		l.close()
		t.Fatalf("opened a log with a bad record in %s at %d", file, at)
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), fmt.Sprintf("at byte %d", at)) {
		t.Fatalf("open error does not name the file and offset: %v", err)
	}
}

// wantOffsets requires partitions 1..n of g/t at offsets 1..n and nothing
// after them.
func wantOffsets(t *testing.T, l *offsetsLog, n int) {
	t.Helper()
	for i := 1; i <= 3; i++ {
		o, ok := l.offset("g", TP{"t", int32(i)})
		if i <= n && (!ok || o.Offset != int64(i)) {
			t.Fatalf("partition %d: %v %d", i, ok, o.Offset)
		}
		if i > n && ok {
			t.Fatalf("partition %d came back past the cut", i)
		}
	}
}

func TestLogFlippedByteMidFileFailsOpen(t *testing.T) {
	fs, starts := threeWrites(t)
	b := readMem(t, fs, log1)
	at := starts[1] + recHeaderBytes + markerBodyBytes + 20 // inside the second write's record
	b[at] ^= 0x40
	writeMem(t, fs, log1, b)
	wantCorrupt(t, fs, log1, starts[1])

	l, err := openRepair(fs, true)
	if err != nil {
		t.Fatal(err)
	}
	wantOffsets(t, l, 1)
	if err := commitSync(l, "g", TP{"t", 0}, 9); err != nil {
		t.Fatal(err)
	}
	l.close()
	if cut := readMem(t, fs, fmt.Sprintf("%s.broken-%d", log1, starts[1])); !bytes.Equal(cut, b[starts[1]:]) {
		t.Fatalf("the copy of the cut bytes differs (%d bytes, want %d)", len(cut), len(b)-starts[1])
	}
	// Repaired, the log opens without repair and keeps what came after.
	l, err = openRepair(fs, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	wantOffsets(t, l, 1)
	if o, _ := l.offset("g", TP{"t", 0}); o.Offset != 9 {
		t.Fatalf("commit after the repair: %d", o.Offset)
	}
}

// Two cuts of one file at the same byte keep both copies: a repair's copy
// (which may hold acknowledged commits) is not overwritten when the write
// made after the repair, at the same offset, is later cut as a torn tail.
func TestLogCutsAtOneOffsetKeepEveryCopy(t *testing.T) {
	fs, starts := threeWrites(t)
	b := readMem(t, fs, log1)
	b[starts[1]+recHeaderBytes+markerBodyBytes+20] ^= 0x40
	writeMem(t, fs, log1, b)
	l, err := openRepair(fs, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := commitSync(l, "g", TP{"t", 0}, 9); err != nil {
		t.Fatal(err)
	}
	l.close()
	// The commit after the repair was written where the cut was; tear it.
	after := readMem(t, fs, log1)
	torn := after[:starts[1]+7]
	writeMem(t, fs, log1, torn)
	if l, err = openRepair(fs, false); err != nil {
		t.Fatal(err)
	}
	l.close()
	if cut := readMem(t, fs, fmt.Sprintf("%s.broken-%d", log1, starts[1])); !bytes.Equal(cut, b[starts[1]:]) {
		t.Fatalf("the repair's copy was replaced (%d bytes, want %d)", len(cut), len(b)-starts[1])
	}
	if cut := readMem(t, fs, fmt.Sprintf("%s.broken-%d.1", log1, starts[1])); !bytes.Equal(cut, torn[starts[1]:]) {
		t.Fatalf("the torn tail's copy differs (%d bytes, want %d)", len(cut), len(torn)-starts[1])
	}
}

func TestLogTornTailCut(t *testing.T) {
	for _, keep := range []int{1, 7, 8, 12, 17, 30} { // bytes of the last write that landed
		t.Run(fmt.Sprint(keep), func(t *testing.T) {
			fs, starts := threeWrites(t)
			b := readMem(t, fs, log1)
			torn := b[:starts[2]+keep]
			writeMem(t, fs, log1, torn)
			l, err := openRepair(fs, false)
			if err != nil {
				t.Fatal(err)
			}
			wantOffsets(t, l, 2)
			if err := commitSync(l, "g", TP{"t", 3}, 3); err != nil {
				t.Fatal(err)
			}
			l.close()
			if cut := readMem(t, fs, fmt.Sprintf("%s.broken-%d", log1, starts[2])); !bytes.Equal(cut, torn[starts[2]:]) {
				t.Fatalf("the copy of the torn tail differs")
			}
			l, err = openRepair(fs, false)
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			wantOffsets(t, l, 3)
		})
	}
	// A last write whose middle sector never landed (zeros) is torn too.
	fs, starts := threeWrites(t)
	b := readMem(t, fs, log1)
	clear(b[starts[2]+recHeaderBytes+markerBodyBytes+4 : starts[2]+recHeaderBytes+markerBodyBytes+12])
	writeMem(t, fs, log1, b)
	l, err := openRepair(fs, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	wantOffsets(t, l, 2)
}

// TestLogCorruptionInOlderLogFailsOpen: a bad record in a log followed by
// a newer one is never a torn tail, even at the older log's end.
func TestLogCorruptionInOlderLogFailsOpen(t *testing.T) {
	fs, starts := threeWrites(t)
	b := readMem(t, fs, log1)
	writeMem(t, fs, log1, b[:len(b)-3]) // the older log's last write cut short
	newer := commitRecord("g", []commitEntry{{TP{"t", 0}, Offset{Offset: 42}}})
	writeMem(t, fs, "/g/"+logName(2), append(marker(newer), newer...))
	if err := fs.SyncDir("/g"); err != nil {
		t.Fatal(err)
	}
	wantCorrupt(t, fs, log1, starts[2])

	l, err := openRepair(fs, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	wantOffsets(t, l, 2)
	if o, _ := l.offset("g", TP{"t", 0}); o.Offset != 42 {
		t.Fatalf("the newer log was not replayed after the repair: %d", o.Offset)
	}
}

// TestLogUnknownRecordTypeFailsOpen: a record whose CRC checks but whose
// type is unknown was written so: not torn, even at the end of the newest
// log.
func TestLogUnknownRecordTypeFailsOpen(t *testing.T) {
	fs, _ := threeWrites(t)
	b := readMem(t, fs, log1)
	rec := frame([]byte{99, 0, 1, 'g'})
	at := len(b)
	writeMem(t, fs, log1, append(append(b, marker(rec)...), rec...))
	wantCorrupt(t, fs, log1, at)
	l, err := openRepair(fs, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	wantOffsets(t, l, 3)
}

// TestSnapshotCorruptionFailsOpen: snapshots are written whole (tmp, fsync,
// rename): any bad record in one fails the open.
func TestSnapshotCorruptionFailsOpen(t *testing.T) {
	fs := vfs.NewMemFS()
	l := openTestLog(t, fs, 1)
	for i := int64(1); i <= 3; i++ {
		if err := commitSync(l, fmt.Sprintf("g%d", i), TP{"t", 0}, i); err != nil {
			t.Fatal(err)
		}
	}
	l.close()
	var snap string
	for _, f := range fs.Files("/g") {
		if _, ok := parseSeq(path.Base(f), snapPrefix); ok {
			snap = f
		}
	}
	if snap == "" {
		t.Fatal("no snapshot")
	}
	b := readMem(t, fs, snap)
	b[len(b)-5] ^= 1
	writeMem(t, fs, snap, b)
	if _, err := openRepair(fs, false); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), snap) {
		t.Fatalf("open of a damaged snapshot: %v", err)
	}
	r, err := openRepair(fs, true)
	if err != nil {
		t.Fatal(err)
	}
	r.close()
}

// TestLogRefusesUnreadableRecords: an op the log could not read back is
// refused, unwritten, and the log goes on.
func TestLogRefusesUnreadableRecords(t *testing.T) {
	fs := vfs.NewMemFS()
	l := openTestLog(t, fs, 1<<30)
	long := strings.Repeat("g", maxLoggedString+1)
	for name, rec := range map[string][]byte{
		"string over u16": commitRecord(long, []commitEntry{{TP{"t", 0}, Offset{Offset: 1}}}),
		"record over MaxRecordBytes": frame(append([]byte{recCommit, 0, 1, 'g', 0, 0, 0, 0},
			make([]byte, MaxRecordBytes)...)),
		"marker": marker(nil),
	} {
		ch := make(chan error, 1)
		l.submit(&logOp{rec: rec, apply: func(*logState) { t.Error("applied") }, done: func(err error) { ch <- err }})
		if err := <-ch; !errors.Is(err, ErrRecordTooLarge) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := commitSync(l, "g", TP{"t", 0}, 5); err != nil {
		t.Fatal(err)
	}
	l.close()
	r := openTestLog(t, fs, 1<<30)
	defer r.close()
	if o, _ := r.offset("g", TP{"t", 0}); o.Offset != 5 {
		t.Fatalf("after reopen: %d", o.Offset)
	}

	// Group ids the log cannot name are refused at the door.
	c := openTestCoordinator(t, vfs.NewMemFS())
	if code := call(t, func(d func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(commitReq(long, "", -1, 1), d) }).Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidGroupID.Code {
		t.Fatalf("commit with a %d-byte group id: %d", len(long), code)
	}
	if code := call(t, c.testJoin(joinReq(5, long, "", nil, time.Minute, "range"))).ErrorCode; code != kerr.InvalidGroupID.Code {
		t.Fatalf("join with a %d-byte group id: %d", len(long), code)
	}
}

// TestCommitRecordsBounded: a commit of any size is records of at most
// about commitRecordBytes that decode to the same entries.
func TestCommitRecordsBounded(t *testing.T) {
	meta := strings.Repeat("m", 4096)
	var entries []commitEntry
	for p := range 3000 {
		entries = append(entries, commitEntry{TP{"topic", int32(p)}, Offset{Offset: int64(p), Metadata: meta}})
	}
	entries = append(entries, commitEntry{TP{"topic", 3000}, Offset{Offset: 1, Metadata: strings.Repeat("x", 3<<20)}})
	recs := commitRecords(nil, "g", entries)
	if err := checkRecords(recs); err != nil {
		t.Fatal(err)
	}
	st := newLogState()
	n := 0
	for pos := 0; pos < len(recs); n++ {
		body, end, why := readFrame(recs, pos)
		if why != "" {
			t.Fatal(why)
		}
		if len(body) > commitRecordBytes+1<<10 && len(body) < 3<<20 {
			t.Fatalf("record %d of %d bytes", n, len(body))
		}
		apply, err := decodeRecord(body)
		if err != nil {
			t.Fatal(err)
		}
		apply(st)
		pos = end
	}
	if n < 13 || len(st.groups["g"].offsets) != len(entries) {
		t.Fatalf("%d records, %d offsets", n, len(st.groups["g"].offsets))
	}
}

// TestLogTornTailBeforeEmptyLog: a compaction that created the next log but
// failed to sync the directory leaves it empty while writes go on to the
// previous one; that one is still the log being written, so its torn tail
// is cut.
func TestLogTornTailBeforeEmptyLog(t *testing.T) {
	fs, starts := threeWrites(t)
	b := readMem(t, fs, log1)
	writeMem(t, fs, log1, b[:len(b)-3])
	writeMem(t, fs, "/g/"+logName(2), nil)
	if err := fs.SyncDir("/g"); err != nil {
		t.Fatal(err)
	}
	l, err := openRepair(fs, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	wantOffsets(t, l, 2)
	if cut := readMem(t, fs, fmt.Sprintf("%s.broken-%d", log1, starts[2])); !bytes.Equal(cut, b[starts[2]:len(b)-3]) {
		t.Fatal("the copy of the torn tail differs")
	}
}

// TestLogTornWriteWithForgedWriteInside: a torn last write whose records
// carry, in client-chosen metadata, the bytes of an intact write is still
// a torn tail: acknowledged writes start only where a write ends.
func TestLogTornWriteWithForgedWriteInside(t *testing.T) {
	fs, _ := threeWrites(t)
	inner := commitRecord("g", []commitEntry{{TP{"t", 9}, Offset{Offset: 9}}})
	forged := string(append(marker(inner), inner...))
	recs := commitRecord("g", []commitEntry{{TP{"t", 8}, Offset{Offset: 8, Metadata: forged}}})
	b := readMem(t, fs, log1)
	at := len(b)
	b = append(append(b, marker(recs)...), recs...)
	clear(b[at+len(noMarker)+recHeaderBytes+4 : at+len(noMarker)+recHeaderBytes+8]) // a lost sector before the metadata
	writeMem(t, fs, log1, b)
	if _, ok := intactWriteAfter(b, at); !ok {
		t.Fatal("the forged write does not look intact: the test proves nothing")
	}
	l, err := openRepair(fs, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	wantOffsets(t, l, 3)
	if _, ok := l.offset("g", TP{"t", 9}); ok {
		t.Fatal("the forged write was applied")
	}
}
