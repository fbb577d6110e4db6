package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A full disk during compaction, against the real binary: the WAL lives
// on a small tmpfs that a filler file fills while a cleaning runs. The
// broker must stay up, answer produce with KAFKA_STORAGE_ERROR (as Kafka
// does for an offline log dir), keep serving reads of what it
// acknowledged, and, once the filler is gone and after a restart, read
// back every acknowledged record (each key's latest) with its compacted
// file intact and compaction finishing, after a kill -9 on the full disk
// and a start refused while it was still full.

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory and
// returns it; skipped, saying why, when that is impossible (not root).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full disk needs a small tmpfs mounted as the WAL dir, and mount needs root: not root, skipped")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount -t tmpfs failed (%v: %s): full-disk test skipped", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk creates path taking all but leave bytes of its file system's
// free space.
func fillDisk(t *testing.T, path string, leave int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := free - leave; n > 0 {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
			t.Fatalf("fallocate %d bytes: %v", n, err)
		}
	}
}

func TestCompactionDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, 48<<20)
	wal := filepath.Join(mnt, "wal")
	if err := os.Mkdir(wal, 0o755); err != nil {
		t.Fatal(err)
	}
	// 2 MiB/s: a cleaning of a few MB is still running when the disk fills.
	b := startBrokerDir(t, wal, "", "-shards", "1", "-segment-bytes", "1048576", "-max-message-bytes", "262144",
		"-compaction-interval", "200ms", "-compaction-max-bytes-per-sec", "2097152", "-http-addr", "127.0.0.1:0")
	const topic = "cfull"
	cl := newFranz(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(128<<10))
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(testContext(t, 30*time.Second), 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"),
	}, topic); err != nil {
		t.Fatal(err)
	}
	lg := &compactLog{recs: map[int64]compactRec{}, latest: map[string]int64{}, maybe: map[string]compactRec{}}
	produceCompact(t, cl, topic, lg, 0, 8000, true)
	counters := func() (read, runs float64) {
		fams := scrape(t, b.httpAddr())
		read, _ = metricValue(fams, "klite_compaction_read_bytes_total")
		runs, _ = metricValue(fams, "klite_compaction_cleanings_total")
		return read, runs
	}
	read0, runs0 := counters()
	waitFor(t, time.Minute, "a cleaning in progress", func() bool {
		read, runs := counters()
		busy := read > read0 && runs == runs0
		read0, runs0 = read, runs
		return busy
	})

	// The disk fills in the middle of the cleaning; produce goes on until
	// the broker refuses it.
	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler, 64<<10)
	pcl := newFranz(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.DisableIdempotentWrite(), kgo.RecordRetries(2),
		kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(128<<10))
	var refused error
	next := 8000
	for refused == nil && next < 8000+20000 { // at most 20 MB more
		var recs []*kgo.Record
		for i := next; i < next+32; i++ {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "key-%02d", i%compactKeys), Value: compactValue(i)})
		}
		next += len(recs)
		res := pcl.ProduceSync(testContext(t, time.Minute), recs...)
		lg.mu.Lock()
		for _, r := range res {
			if r.Err != nil {
				refused = r.Err
				lg.maybe[string(r.Record.Value)] = compactRec{key: string(r.Record.Key), val: string(r.Record.Value)}
				continue
			}
			lg.recs[r.Record.Offset] = compactRec{key: string(r.Record.Key), val: string(r.Record.Value)}
			lg.latest[string(r.Record.Key)] = max(lg.latest[string(r.Record.Key)], r.Record.Offset)
		}
		lg.mu.Unlock()
	}
	if !errors.Is(refused, kerr.KafkaStorageError) {
		t.Fatalf("produce on a full disk: %v, want KAFKA_STORAGE_ERROR", refused)
	}
	if !b.running() {
		t.Fatal("broker exited on a full disk")
	}
	waitFor(t, time.Minute, "compaction to hit the full disk", func() bool {
		return b.log.contains("compaction failed; retried next pass") && b.log.contains("no space left on device")
	})
	// Reads of what was acknowledged go on while the disk is full.
	hwm := hwmOf(t, adm, topic)
	lg.check(t, "franz on a full disk", readFranz(t, b.addr, topic, hwm))

	// Space comes back; the WAL shard stays offline until a restart, as
	// Kafka's offline log dir does.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := pcl.ProduceSync(testContext(t, time.Minute), &kgo.Record{Key: []byte("key-00"), Value: []byte("after")}).FirstErr(); !errors.Is(err, kerr.KafkaStorageError) {
		t.Errorf("produce after space freed, before restart: %v, want KAFKA_STORAGE_ERROR", err)
	}
	lg.maybe["after"] = compactRec{key: "key-00", val: "after"}
	pcl.Close()

	// A crash on a full disk, and a restart before space is freed: klite
	// refuses to start, saying why (Kafka too fails to start when it
	// cannot write its log dir).
	fillDisk(t, filler, 0)
	b.kill9()
	ctx := testContext(t, time.Minute)
	out, err := exec.CommandContext(ctx, kliteBin, append([]string{"-listen", b.addr, "-wal", b.dir, "-log-format", "json"}, b.args...)...).CombinedOutput()
	b.log.write(append([]byte("---- start on the full disk:\n"), out...))
	if err == nil || !bytes.Contains(out, []byte("no space left on device")) || bytes.Contains(out, []byte("panic")) {
		t.Fatalf("start on a full disk: %v, output:\n%s", err, out)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	hwm = hwmOf(t, adm, topic)
	lg.check(t, "franz after restart", readFranz(t, b.addr, topic, hwm))
	lg.check(t, "confluent after restart", readConfluent(t, b.addr, topic, hwm))

	// Writes work again, and compaction finishes its cleaning.
	cl2 := newFranz(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(128<<10))
	produceCompact(t, cl2, topic, lg, next, 1000, false)
	hwm = hwmOf(t, adm, topic)
	var got []consumed
	waitFor(t, time.Minute, "compaction after the restart", func() bool {
		got = readFranz(t, b.addr, topic, hwm)
		_, runs := counters()
		return runs > 0 && len(got) < int(hwm)/2
	})
	lg.check(t, "franz after compaction", got)
	entries, _ := os.ReadDir(filepath.Join(wal, "compacted"))
	if len(entries) != 1 {
		t.Errorf("compacted directory holds %d files, want 1", len(entries))
	}
	t.Logf("%d records produced (%d before the disk filled), %d read after compaction", hwm, next, len(got))
	b.stop()
}
