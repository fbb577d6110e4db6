package group

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/vfs"
)

func txnCommitReq(group string, pid int64, member string, gen int32, off int64) *kmsg.TxnOffsetCommitRequest {
	r := kmsg.NewPtrTxnOffsetCommitRequest()
	r.Version = 3
	r.TransactionalID, r.Group, r.ProducerID, r.ProducerEpoch = "tx", group, pid, 0
	r.MemberID, r.Generation = member, gen
	t := kmsg.NewTxnOffsetCommitRequestTopic()
	t.Topic = "t"
	p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset = 0, off
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	return r
}

// fetchStable fetches partition t/0 of group with require_stable (v7).
func fetchStable(t *testing.T, c *Coordinator, group string, stable bool) kmsg.OffsetFetchResponseTopicPartition {
	t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version, r.Group, r.RequireStable = 7, group, stable
	tt := kmsg.NewOffsetFetchRequestTopic()
	tt.Topic, tt.Partitions = "t", []int32{0}
	r.Topics = append(r.Topics, tt)
	fr := call(t, func(d func(*kmsg.OffsetFetchResponse)) { c.OffsetFetch(r, d) })
	return fr.Topics[0].Partitions[0]
}

// A transactional offset is invisible until its transaction commits:
// OffsetFetch returns the last committed offset, or UNSTABLE_OFFSET_COMMIT
// with require_stable; an abort drops it, a commit applies it, and both the
// pending offset and the transaction state survive a crash and a
// compaction's snapshot.
func TestTxnOffsetsPendingUntilEnd(t *testing.T) {
	fs := vfs.NewMemFS()
	c := openTestCoordinator(t, fs)
	commit := func(c *Coordinator, r *kmsg.TxnOffsetCommitRequest) int16 {
		return call(t, func(d func(*kmsg.TxnOffsetCommitResponse)) { c.TxnOffsetCommit(r, d) }).Topics[0].Partitions[0].ErrorCode
	}
	end := func(c *Coordinator, pid int64, ok bool) {
		if err := call(t, func(d func(error)) { c.EndTxnOffsets("g", pid, ok, d) }); err != nil {
			t.Fatal(err)
		}
	}
	if code := commit(c, txnCommitReq("g", 7, "", -1, 10)); code != 0 {
		t.Fatalf("txn commit: %d", code)
	}
	if p := fetchStable(t, c, "g", false); p.Offset != -1 || p.ErrorCode != 0 {
		t.Fatalf("pending offset visible: %+v", p)
	}
	if p := fetchStable(t, c, "g", true); p.ErrorCode != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("require_stable while pending: %+v", p)
	}
	end(c, 7, false)
	if p := fetchStable(t, c, "g", true); p.Offset != -1 || p.ErrorCode != 0 {
		t.Fatalf("after abort: %+v", p)
	}
	if code := commit(c, txnCommitReq("g", 7, "", -1, 20)); code != 0 {
		t.Fatalf("txn commit: %d", code)
	}
	if err := call(t, func(d func(error)) { c.PutTxn("tx", []byte("state"), d) }); err != nil {
		t.Fatal(err)
	}
	// Crash with the offset pending: it comes back pending.
	fs2 := fs.CrashClone(vfs.CrashDropUnsynced, 0)
	c2 := openTestCoordinator(t, fs2)
	if p := fetchStable(t, c2, "g", true); p.ErrorCode != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("pending lost in crash: %+v", p)
	}
	if s := c2.Txns()["tx"]; string(s) != "state" {
		t.Fatalf("txn state after crash: %q", s)
	}
	// A snapshot keeps both too.
	st := replaySnapshot(t, encodeState(c2.offs.state))
	if string(st.txns["tx"]) != "state" || st.groups["g"].pending[7][TP{"t", 0}].Offset != 20 {
		t.Fatalf("snapshot: %+v %+v", st.txns, st.groups["g"])
	}
	end(c2, 7, true)
	end(c2, 7, true) // resolving again (recovery) changes nothing
	if p := fetchStable(t, c2, "g", true); p.Offset != 20 || p.ErrorCode != 0 {
		t.Fatalf("after commit: %+v", p)
	}
	if err := call(t, func(d func(error)) { c2.PutTxn("tx", nil, d) }); err != nil {
		t.Fatal(err)
	}
	c3 := openTestCoordinator(t, fs2.CrashClone(vfs.CrashDropUnsynced, 0))
	if p := fetchStable(t, c3, "g", true); p.Offset != 20 || p.ErrorCode != 0 {
		t.Fatalf("committed txn offset after crash: %+v", p)
	}
	if len(c3.Txns()) != 0 {
		t.Fatalf("removed txn state back: %v", c3.Txns())
	}
}

// KIP-447: a transactional commit naming a member must carry the group's
// generation; one without member is allowed whatever the group's state.
func TestTxnOffsetCommitGenerationChecks(t *testing.T) {
	c := openTestCoordinator(t, vfs.NewMemFS())
	m, ch := joinNew(t, c, "g", time.Minute)
	jr := recv(t, ch)
	commit := func(r *kmsg.TxnOffsetCommitRequest) int16 {
		return call(t, func(d func(*kmsg.TxnOffsetCommitResponse)) { c.TxnOffsetCommit(r, d) }).Topics[0].Partitions[0].ErrorCode
	}
	for _, tc := range []struct {
		member string
		gen    int32
		want   int16
	}{
		{m, jr.Generation + 1, kerr.IllegalGeneration.Code},
		{"nobody", jr.Generation, kerr.UnknownMemberID.Code},
		{m, jr.Generation, 0},
		{"", -1, 0},
	} {
		if code := commit(txnCommitReq("g", 1, tc.member, tc.gen, 5)); code != tc.want {
			t.Errorf("member %q gen %d: %d, want %d", tc.member, tc.gen, code, tc.want)
		}
	}
	if code := commit(txnCommitReq("unknown", 1, "m", 3, 5)); code != kerr.IllegalGeneration.Code {
		t.Errorf("unknown group with generation: %d", code)
	}
}

// The bucket's metadata snapshot carries transaction states and pending
// offsets (export version 2); a version 1 export (none) still imports.
func TestExportImportTxns(t *testing.T) {
	src := openTestCoordinator(t, vfs.NewMemFS())
	if code := call(t, func(d func(*kmsg.TxnOffsetCommitResponse)) { src.TxnOffsetCommit(txnCommitReq("g", 3, "", -1, 42), d) }).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatal(code)
	}
	if err := call(t, func(d func(error)) { src.PutTxn("tx", []byte("s"), d) }); err != nil {
		t.Fatal(err)
	}
	b, err := src.ExportOffsets()
	if err != nil {
		t.Fatal(err)
	}
	fs := vfs.NewMemFS()
	cfg := Config{Dir: "/groups", FS: fs, Topics: func(string) (int32, bool) { return 4, true }}
	if err := ImportOffsets(cfg, b); err != nil {
		t.Fatal(err)
	}
	dst := openTestCoordinator(t, fs)
	if string(dst.Txns()["tx"]) != "s" {
		t.Fatalf("txn state after import: %v", dst.Txns())
	}
	if p := fetchStable(t, dst, "g", true); p.ErrorCode != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("pending offset after import: %+v", p)
	}
	// Version 1: the same bytes without the transaction records.
	v1 := openTestCoordinator(t, vfs.NewMemFS())
	old, err := v1.ExportOffsets()
	if err != nil {
		t.Fatal(err)
	}
	old = old[:len(old)-4]
	old[4] = 1
	old = binary.BigEndian.AppendUint32(old, crc32.Checksum(old, castagnoli))
	if err := ImportOffsets(Config{Dir: "/g1", FS: vfs.NewMemFS(), Topics: cfg.Topics}, old); err != nil {
		t.Fatalf("version 1 import: %v", err)
	}
	// A version 1 export may not hold transaction records.
	bad := append([]byte(nil), b[:len(b)-4]...)
	bad[4] = 1
	bad = binary.BigEndian.AppendUint32(bad, crc32.Checksum(bad, castagnoli))
	if err := ImportOffsets(Config{Dir: "/g2", FS: vfs.NewMemFS(), Topics: cfg.Topics}, bad); !errors.Is(err, ErrBadExport) {
		t.Fatalf("version 1 with transaction records: %v", err)
	}
}

// Offset retention does not drop a group whose only offsets are a
// transaction's, still pending: they would be lost when it commits.
func TestRetentionKeepsPendingTxnGroup(t *testing.T) {
	c := openTestCoordinator(t, vfs.NewMemFS(), func(cfg *Config) { cfg.OffsetsRetention = time.Nanosecond })
	if code := call(t, func(d func(*kmsg.TxnOffsetCommitResponse)) { c.TxnOffsetCommit(txnCommitReq("g", 3, "", -1, 42), d) }).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatal(code)
	}
	call(t, func(d func(struct{})) { c.submit(func() { c.expireOffsets(); d(struct{}{}) }) })
	if err := call(t, func(d func(error)) { c.EndTxnOffsets("g", 3, true, d) }); err != nil {
		t.Fatal(err)
	}
	if p := fetchStable(t, c, "g", true); p.Offset != 42 {
		t.Fatalf("committed offset after a retention check: %+v", p)
	}
}

// AppendTxn extends a transaction's state in the log: the appended bytes
// come back after a crash and in a snapshot (as one whole state), and a
// later PutTxn replaces them.
func TestAppendTxn(t *testing.T) {
	fs := vfs.NewMemFS()
	c := openTestCoordinator(t, fs)
	put := func(c *Coordinator, s string) {
		t.Helper()
		if err := call(t, func(d func(error)) { c.PutTxn("tx", []byte(s), d) }); err != nil {
			t.Fatal(err)
		}
	}
	appendTxn := func(c *Coordinator, id, s string) {
		t.Helper()
		if err := call(t, func(d func(error)) { c.AppendTxn(id, []byte(s), d) }); err != nil {
			t.Fatal(err)
		}
	}
	put(c, "base")
	appendTxn(c, "tx", "+a")
	appendTxn(c, "tx", "+b")
	appendTxn(c, "nobody", "+x") // no state: nothing
	if s := string(c.Txns()["tx"]); s != "base+a+b" {
		t.Fatalf("state %q", s)
	}
	fs2 := fs.CrashClone(vfs.CrashDropUnsynced, 0)
	c2 := openTestCoordinator(t, fs2)
	if s := c2.Txns(); string(s["tx"]) != "base+a+b" || len(s) != 1 {
		t.Fatalf("after crash: %q", s)
	}
	st := replaySnapshot(t, encodeState(c2.offs.state))
	if string(st.txns["tx"]) != "base+a+b" {
		t.Fatalf("snapshot: %q", st.txns)
	}
	put(c2, "new")
	appendTxn(c2, "tx", "+c")
	c3 := openTestCoordinator(t, fs2.CrashClone(vfs.CrashDropUnsynced, 0))
	if s := string(c3.Txns()["tx"]); s != "new+c" {
		t.Fatalf("after a replace and a crash: %q", s)
	}
}

// MaxGroups (-group-max-count) bounds the groups a client can create with
// standalone offset commits (and joins): one more answers
// POLICY_VIOLATION, existing groups go on, and a restart loads every group
// it had whatever the bound.
func TestMaxGroups(t *testing.T) {
	fs := vfs.NewMemFS()
	c := openTestCoordinator(t, fs, func(cfg *Config) { cfg.MaxGroups = 3 })
	commit := func(group string) int16 {
		t.Helper()
		return call(t, func(d func(*kmsg.OffsetCommitResponse)) { c.OffsetCommit(commitReq(group, "", -1, 5), d) }).Topics[0].Partitions[0].ErrorCode
	}
	for _, g := range []string{"g1", "g2", "g3"} {
		if code := commit(g); code != 0 {
			t.Fatalf("commit %s: %v", g, kerr.ErrorForCode(code))
		}
	}
	if code := commit("g4"); code != kerr.PolicyViolation.Code {
		t.Fatalf("a fourth group: %v", kerr.ErrorForCode(code))
	}
	if code := commit("g2"); code != 0 {
		t.Fatalf("an existing group: %v", kerr.ErrorForCode(code))
	}
	txn := call(t, func(d func(*kmsg.TxnOffsetCommitResponse)) { c.TxnOffsetCommit(txnCommitReq("g5", 3, "", -1, 1), d) })
	if code := txn.Topics[0].Partitions[0].ErrorCode; code != kerr.PolicyViolation.Code {
		t.Fatalf("a transactional commit to a fifth group: %v", kerr.ErrorForCode(code))
	}
	if r := call(t, c.testJoin(joinReq(5, "g6", "", nil, time.Minute, "range"))); r.ErrorCode != kerr.PolicyViolation.Code {
		t.Fatalf("a join of a new group: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	c2 := openTestCoordinator(t, fs.CrashClone(vfs.CrashDropUnsynced, 0), func(cfg *Config) { cfg.MaxGroups = 1 })
	if n := len(c2.groups); n != 3 {
		t.Fatalf("%d groups after a restart under a lower bound, want 3", n)
	}
}

// TestAppendTxnKeepsSnapshotReadable: appends each under MaxRecordBytes
// must not grow a state past it, or the snapshot writes a record that the
// next start refuses (the state's record is written whole there).
func TestAppendTxnKeepsSnapshotReadable(t *testing.T) {
	c := openTestCoordinator(t, vfs.NewMemFS())
	if err := call(t, func(d func(error)) { c.PutTxn("tx", []byte("state"), d) }); err != nil {
		t.Fatal(err)
	}
	delta := make([]byte, 8<<20)
	refused := false
	for range MaxRecordBytes/len(delta) + 1 {
		err := call(t, func(d func(error)) { c.AppendTxn("tx", delta, d) })
		if errors.Is(err, ErrRecordTooLarge) {
			refused = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !refused {
		t.Error("a state grown past MaxRecordBytes by appends was accepted")
	}
	c.offs.stateMu.RLock()
	snap := encodeState(c.offs.state)
	c.offs.stateMu.RUnlock()
	if err := checkRecords(snap[len(snapshotMagic):]); err != nil {
		t.Fatalf("snapshot unreadable: %v", err)
	}
}
