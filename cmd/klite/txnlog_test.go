package main

// Read side of transactions with real clients: the log is written with
// transactions (data, COMMIT and ABORT control batches, one left open)
// straight through storage while the broker is stopped, so these tests
// depend on nothing of the transaction coordinator; then franz-go,
// librdkafka and sarama consume it read_committed and read_uncommitted,
// before and after kill -9, and from the bucket once the WAL has let the
// segments go.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

const txnTopic = "txlog"

// txnLogWant is what each partition must read: the committed and
// non-transactional values (read_committed), every data value
// (read_uncommitted), and the last stable and end offsets.
type txnLogWant struct {
	committed, all [][]byte
	lso, end       int64
}

// txnDataBatch is an uncompressed v2 batch of values, built with kmsg.
func txnDataBatch(pid int64, epoch int16, seq int32, txn bool, vals [][]byte) []byte {
	var recs []byte
	for i, v := range vals {
		r := kmsg.Record{OffsetDelta: int32(i), Value: v}
		body := r.AppendTo(nil)
		r.Length = int32(len(body) - 1)
		recs = r.AppendTo(recs)
	}
	attrs := int16(0)
	if txn {
		attrs = 0x10
	}
	if pid < 0 {
		epoch, seq = -1, -1
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{Magic: 2, Attributes: attrs, LastOffsetDelta: int32(len(vals) - 1), FirstTimestamp: now,
		MaxTimestamp: now, ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(len(vals)), Records: recs}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// writeTxnLog opens the stopped broker's data directory with storage and
// writes, on each partition, txns transactions of three producers (every
// third aborted, one batch of them interleaved with plain records),
// then leaves one transaction open on partition 1 with plain records
// after it.
func writeTxnLog(t *testing.T, dir string, parts int32, txns int, valBytes int) []txnLogWant {
	t.Helper()
	st, err := storage.Open(storage.Config{Dir: dir, SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	wait := func(what string, f func(func(storage.AppendResult))) int64 {
		t.Helper()
		ch := make(chan storage.AppendResult, 1)
		f(func(r storage.AppendResult) { ch <- r })
		r := <-ch
		if r.Err != nil {
			t.Fatalf("%s: %v", what, r.Err)
		}
		return r.BaseOffset
	}
	var pids [3]int64
	for i := range pids {
		if pids[i], _, err = st.InitProducerID(); err != nil {
			t.Fatal(err)
		}
	}
	want := make([]txnLogWant, parts)
	seqs := map[[2]int64]int32{}
	pad := make([]byte, valBytes)
	val := func(p int32, what string, i, j int) []byte {
		return fmt.Appendf(nil, "%d-%s-%d-%d-%s", p, what, i, j, pad)
	}
	for p := range parts {
		w := &want[p]
		data := func(pid int64, txn bool, vals [][]byte) {
			k := [2]int64{pid, int64(p)}
			wait("append", func(done func(storage.AppendResult)) {
				st.Append(txnTopic, p, txnDataBatch(pid, 0, seqs[k], txn, vals), true, done)
			})
			seqs[k] += int32(len(vals))
			w.all = append(w.all, vals...)
		}
		for i := range txns {
			pid := pids[i%3]
			commit := i%3 != 1
			var vals [][]byte
			for j := range 2 {
				v := [][]byte{val(p, "txn", i, 2*j), val(p, "txn", i, 2*j+1)}
				data(pid, true, v)
				vals = append(vals, v...)
				plain := [][]byte{val(p, "plain", i, j)}
				data(-1, false, plain)
				w.committed = append(w.committed, plain...)
			}
			wait("marker", func(done func(storage.AppendResult)) {
				st.WriteTxnMarker(txnTopic, p, pid, 0, commit, 0, done)
			})
			if commit {
				// Committed records are read at their place in the log: after
				// the plain ones written while the transaction was open.
				w.committed = insertCommitted(w.all, w.committed, vals)
			}
		}
		if p == 1 {
			data(pids[0], true, [][]byte{val(p, "open", 0, 0)})
			data(-1, false, [][]byte{val(p, "after-open", 0, 0)})
		}
		if w.lso, err = st.LastStableOffset(txnTopic, p); err != nil {
			t.Fatal(err)
		}
		_, w.end, _ = st.Offsets(txnTopic, p)
	}
	return want
}

// insertCommitted returns committed with vals placed in log order (as in all).
func insertCommitted(all, committed, vals [][]byte) [][]byte {
	keep := map[string]bool{}
	for _, v := range committed {
		keep[string(v)] = true
	}
	for _, v := range vals {
		keep[string(v)] = true
	}
	out := committed[:0:0]
	for _, v := range all {
		if keep[string(v)] {
			out = append(out, v)
		}
	}
	return out
}

// checkTxnLogClients reads every partition with each client and isolation
// level and compares with want.
func checkTxnLogClients(t *testing.T, addr string, want []txnLogWant) {
	t.Helper()
	adm := kadm.NewClient(newFranz(t, addr))
	ctx := testContext(t, time.Minute)
	ends, err := adm.ListEndOffsets(ctx, txnTopic)
	if err != nil {
		t.Fatal(err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, txnTopic)
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range want {
		e, _ := ends.Lookup(txnTopic, int32(p))
		s, _ := stable.Lookup(txnTopic, int32(p))
		if e.Err != nil || s.Err != nil || e.Offset != w.end || s.Offset != w.lso {
			t.Fatalf("partition %d: end %d (%v), stable %d (%v); want %d and %d", p, e.Offset, e.Err, s.Offset, s.Err, w.end, w.lso)
		}
	}
	for p, w := range want {
		p := int32(p)
		franzRead(t, addr, p, kgo.ReadCommitted(), w.committed)
		franzRead(t, addr, p, kgo.ReadUncommitted(), w.all)
		confluentRead(t, addr, p, w.committed)
		saramaRead(t, addr, p, w.committed)
	}
}

// sameValues fails unless got is want (values in order).
func sameValues(t *testing.T, client string, p int32, got, want [][]byte) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
		n := min(len(got), len(want))
		i := 0
		for i < n && string(got[i]) == string(want[i]) {
			i++
		}
		t.Fatalf("%s partition %d: %d values, want %d; first difference at %d", client, p, len(got), len(want), i)
	}
}

// franzRead consumes partition p from the start until it has len(want)
// values, or one too many.
func franzRead(t *testing.T, addr string, p int32, iso kgo.IsolationLevel, want [][]byte) {
	t.Helper()
	cl := newFranz(t, addr, kgo.FetchIsolationLevel(iso), kgo.FetchMaxBytes(256<<10), kgo.FetchMaxPartitionBytes(64<<10),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{txnTopic: {p: kgo.NewOffset().AtStart()}}))
	defer cl.Close()
	ctx := testContext(t, time.Minute)
	var got [][]byte
	for len(got) < len(want) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("franz-go partition %d: %d of %d values: %v", p, len(got), len(want), ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("franz-go fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r.Value) })
	}
	sameValues(t, "franz-go", p, got, want)
}

func confluentRead(t *testing.T, addr string, p int32, want [][]byte) {
	t.Helper()
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{
		"bootstrap.servers": addr, "group.id": "klite-txlog", "enable.auto.commit": false,
		"isolation.level": "read_committed", "max.partition.fetch.bytes": 64 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := txnTopic
	if err := c.Assign([]ckafka.TopicPartition{{Topic: &topic, Partition: p, Offset: ckafka.OffsetBeginning}}); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	deadline := time.Now().Add(time.Minute)
	for len(got) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("confluent partition %d: %d of %d values", p, len(got), len(want))
		}
		switch e := c.Poll(100).(type) {
		case *ckafka.Message:
			got = append(got, e.Value)
		case ckafka.Error:
			if e.IsFatal() {
				t.Fatalf("confluent: %v", e)
			}
		}
	}
	sameValues(t, "confluent", p, got, want)
}

func saramaRead(t *testing.T, addr string, p int32, want [][]byte) {
	t.Helper()
	cfg := saramaConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.Fetch.Default = 64 << 10
	consumer, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(txnTopic, p, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var got [][]byte
	timeout := time.After(time.Minute)
	for len(got) < len(want) {
		select {
		case m := <-pc.Messages():
			got = append(got, m.Value)
		case err := <-pc.Errors():
			t.Fatalf("sarama: %v", err)
		case <-timeout:
			t.Fatalf("sarama partition %d: %d of %d values", p, len(got), len(want))
		}
	}
	sameValues(t, "sarama", p, got, want)
}

// TestReadCommittedClients: franz-go, librdkafka and sarama read exactly the
// committed records of a log with commits, aborts and an open transaction
// (read_uncommitted: every data record), and ListOffsets answers the last
// stable offset; the same after kill -9 and restart (the aborted index and
// open transactions from checkpoints and the WAL).
func TestReadCommittedClients(t *testing.T) {
	b := startBroker(t, "-shards", "2", "-segment-bytes", "1048576", "-max-message-bytes", "1000000")
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), txnTopic, 2)
	b.stop()
	want := writeTxnLog(t, b.dir, 2, 120, 3000) // several 1 MiB segments per shard
	b.restart()
	checkTxnLogClients(t, b.addr, want)
	b.kill9()
	b.restart()
	checkTxnLogClients(t, b.addr, want)
	b.stop()
	b.checkLog()
}

// TestReadCommittedTiered: the same log read from the bucket once the WAL
// has let its segments go: tiered objects carry the control batches as
// bytes, and the aborted index (from the checkpoints) answers cold reads.
func TestReadCommittedTiered(t *testing.T) {
	endpoint := startS3(t)
	b := startBroker(t, tierFlags(endpoint)...)
	cl := newFranz(t, b.addr)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, txnTopic, 2)
	b.stop()
	want := writeTxnLog(t, b.dir, 2, 120, 3000)
	b.restart()
	// Segments go once uploaded and a newer one has its checkpoint: the
	// oldest of each shard's three.
	waitFor(t, 2*time.Minute, "the WAL to let uploaded segments go", func() bool {
		return localStartOffset(t, cl, txnTopic, 0) > 0 && localStartOffset(t, cl, txnTopic, 1) > 0
	})
	if s := startOffset(t, adm, txnTopic, 0); s != 0 {
		t.Fatalf("log start %d, want 0", s)
	}
	checkTxnLogClients(t, b.addr, want)
	b.stop()
	b.checkLog()
}
