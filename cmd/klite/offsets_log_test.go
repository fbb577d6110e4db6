package main

// The group offsets log always reopens with every acknowledged commit
// (issue 9): wide commits whose snapshot once held one record over the
// log's read limit, through SIGTERM and kill -9 restarts; a damaged log
// refuses to start until -offsets-log-repair is given.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	wideParts     = 10000
	wideMetaBytes = 4096
)

// commitWide commits offset base+p with 4096 bytes of metadata to every
// partition of topic in one OffsetCommit (41 MB), and requires each
// partition acknowledged.
func commitWide(ctx context.Context, t *testing.T, adm *kadm.Client, group, topic string, base int64) {
	t.Helper()
	meta := strings.Repeat("m", wideMetaBytes)
	var offs kadm.Offsets
	for p := int32(0); p < wideParts; p++ {
		offs.Add(kadm.Offset{Topic: topic, Partition: p, At: base + int64(p), LeaderEpoch: -1, Metadata: meta})
	}
	resp, err := adm.CommitOffsets(ctx, group, offs)
	if err != nil {
		t.Fatalf("commit %s: %v", topic, err)
	}
	if err := resp.Error(); err != nil {
		t.Fatalf("commit %s: %v", topic, err)
	}
}

// checkWideCommitted requires every acknowledged commit of the group.
func checkWideCommitted(ctx context.Context, t *testing.T, adm *kadm.Client, group string, want map[string]int64, extra map[int32]int64) {
	t.Helper()
	got, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for topic, base := range want {
		for p := int32(0); p < wideParts; p++ {
			at := base + int64(p)
			if e, ok := extra[p]; ok && topic == "wide-a" {
				at = e
			}
			o, ok := got.Lookup(topic, p)
			if !ok || o.Err != nil || o.At != at || len(o.Metadata) != wideMetaBytes {
				t.Fatalf("%s/%d after restart: found %v err %v offset %d metadata %d bytes, want offset %d", topic, p, ok, o.Err, o.At, len(o.Metadata), at)
			}
		}
	}
}

func TestOffsetsLogWideCommitsRestart(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, 3*time.Minute)
	const group = "wide"
	createTopic(t, adm, "wide-a", wideParts)
	createTopic(t, adm, "wide-b", wideParts)
	want := map[string]int64{"wide-a": 1000, "wide-b": 50000}
	commitWide(ctx, t, adm, group, "wide-a", want["wide-a"])
	commitWide(ctx, t, adm, group, "wide-b", want["wide-b"]) // 82 MB in all: the log compacts

	b.stop()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	checkWideCommitted(ctx, t, adm, group, want, nil)

	// One more commit, then a crash.
	meta := strings.Repeat("m", wideMetaBytes)
	var one kadm.Offsets
	one.Add(kadm.Offset{Topic: "wide-a", Partition: 7, At: 7777, LeaderEpoch: -1, Metadata: meta})
	if resp, err := adm.CommitOffsets(ctx, group, one); err != nil || resp.Error() != nil {
		t.Fatalf("commit after restart: %v %v", err, resp.Error())
	}
	b.kill9()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	checkWideCommitted(ctx, t, adm, group, want, map[int32]int64{7: 7777})
	b.stop()
}

// TestOversizedGroupMetadataRestart: JoinGroup with 65 MiB of protocol
// metadata, and a SyncGroup assigning 65 MiB, are answered
// UNKNOWN_SERVER_ERROR (Kafka's answer past __consumer_offsets'
// max.message.bytes); the broker then restarts with the commit it
// acknowledged (on main both were acknowledged and the restart failed).
func TestOversizedGroupMetadataRestart(t *testing.T) {
	b := startBroker(t, "-group-initial-rebalance-delay", "0")
	cl := newFranz(t, b.addr)
	adm := kadm.NewClient(cl)
	ctx := testContext(t, 2*time.Minute)
	createTopic(t, adm, "big-meta", 1)
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: "big-meta", Partition: 0, At: 42, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(ctx, "acked", o); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}

	huge := make([]byte, 65<<20)
	join := func(member string, meta []byte) *kmsg.JoinGroupResponse {
		t.Helper()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = "big", member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30000, 30000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", meta
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := join("", huge); r.ErrorCode != kerr.UnknownServerError.Code {
		t.Fatalf("JoinGroup with 65 MiB metadata: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	r := join("", []byte("small"))
	if r.ErrorCode == kerr.MemberIDRequired.Code {
		r = join(r.MemberID, []byte("small"))
	}
	if r.ErrorCode != 0 {
		t.Fatalf("JoinGroup: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	sreq := kmsg.NewPtrSyncGroupRequest()
	sreq.Group, sreq.MemberID, sreq.Generation = "big", r.MemberID, r.Generation
	ga := kmsg.NewSyncGroupRequestGroupAssignment()
	ga.MemberID, ga.MemberAssignment = r.MemberID, huge
	sreq.GroupAssignment = append(sreq.GroupAssignment, ga)
	sresp, err := sreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if sresp.ErrorCode != kerr.UnknownServerError.Code {
		t.Fatalf("SyncGroup with a 65 MiB assignment: %v", kerr.ErrorForCode(sresp.ErrorCode))
	}

	b.stop()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	got, err := adm.FetchOffsets(ctx, "acked")
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := got.Lookup("big-meta", 0); !ok || c.At != 42 {
		t.Fatalf("after restart: %+v %v", c, ok)
	}
	b.stop()
}

// TestOffsetsLogDamageNeedsRepair: a flipped byte in the middle of the
// offsets log stops the broker from starting, with the file, the offset
// and the flag in its error; -offsets-log-repair starts it, keeping the
// commits before the bad record and a copy of the cut bytes.
func TestOffsetsLogDamageNeedsRepair(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)
	createTopic(t, adm, "dmg", 1)
	for i := int64(1); i <= 3; i++ {
		var o kadm.Offsets
		o.Add(kadm.Offset{Topic: "dmg", Partition: 0, At: i, LeaderEpoch: -1})
		if resp, err := adm.CommitOffsets(ctx, "dmg-group", o); err != nil || resp.Error() != nil {
			t.Fatalf("commit %d: %v %v", i, err, resp.Error())
		}
	}
	b.stop()

	dir := filepath.Join(b.dir, groupsDir)
	logs, _ := filepath.Glob(filepath.Join(dir, "log-*"))
	if len(logs) != 1 {
		t.Fatalf("offsets logs: %v", logs)
	}
	data, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x10 // inside an acknowledged write with others after it
	if err := os.WriteFile(logs[0], data, 0o644); err != nil {
		t.Fatal(err)
	}

	run := func(extra ...string) (string, error) {
		args := append([]string{"-listen", "127.0.0.1:0", "-wal", b.dir, "-log-format", "json"}, extra...)
		cmd := exec.CommandContext(testContext(t, 30*time.Second), kliteBin, args...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run()
	if err == nil || !strings.Contains(out, filepath.Base(logs[0])) || !strings.Contains(out, "at byte") || !strings.Contains(out, "-offsets-log-repair") {
		t.Fatalf("start on a damaged offsets log: err %v, output:\n%s", err, out)
	}

	b.args = append(b.args, "-offsets-log-repair")
	b.restart()
	if cut, _ := filepath.Glob(logs[0] + ".broken-*"); len(cut) != 1 {
		t.Fatalf("no copy of the cut bytes: %v", cut)
	}
	adm = kadm.NewClient(newFranz(t, b.addr))
	got, err := adm.FetchOffsets(ctx, "dmg-group")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := got.Lookup("dmg", 0); !ok || o.At < 1 || o.At > 3 {
		t.Fatalf("after repair: %+v %v", o, ok)
	}
	b.stop()
}
