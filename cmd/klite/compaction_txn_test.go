package main

import (
	"fmt"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Transactions on a compacted topic against the real binary: a franz-go
// transactional producer commits and aborts transactions whose keys later
// ones overwrite; once compaction has removed the markers of the emptied
// transactions (delete.retention.ms=0), read_committed consumers (franz-go
// and librdkafka) reading from offset 0 see no aborted record and every
// key's latest committed one, and no committed record is skipped as if
// aborted (a marker gone with its aborted-index entry left would do that),
// also after a restart and a kill -9.
func TestCompactionTxnMarkers(t *testing.T) {
	b := startBroker(t, "-shards", "1", "-segment-bytes", "1048576", "-max-message-bytes", "262144", "-compaction-interval", "200ms", "-http-addr", "127.0.0.1:0")
	const topic = "ctxn"
	adm := kadm.NewClient(newFranz(t, b.addr))
	if _, err := adm.CreateTopic(testContext(t, 30*time.Second), 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"), "delete.retention.ms": kadm.StringPtr("0"),
	}, topic); err != nil {
		t.Fatal(err)
	}
	cl := txnProducer(t, b.addr, "ctxn-producer", kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	lg := &compactLog{recs: map[int64]compactRec{}, latest: map[string]int64{}}
	aborted := map[string]bool{}
	ctx := testContext(t, 2*time.Minute)
	const txns, perTxn = 80, 40 // about 3 MiB: three sealed segments
	for i := range txns {
		commit := i%4 != 3
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var rs []*kgo.Record
		for j := range perTxn {
			n := i*perTxn + j
			r := &kgo.Record{Key: []byte(fmt.Sprintf("key-%02d", n%compactKeys)), Value: compactValue(n)}
			if !commit {
				r.Key = []byte(fmt.Sprintf("key-%02d", j)) // shadows committed keys if not dropped
			}
			rs = append(rs, r)
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if !commit {
				aborted[string(r.Value)] = true
				continue
			}
			lg.recs[r.Offset] = compactRec{key: string(r.Key), val: string(r.Value)}
			if l, ok := lg.latest[string(r.Key)]; !ok || r.Offset > l {
				lg.latest[string(r.Key)] = r.Offset
			}
		}
	}
	hwm := hwmOf(t, adm, topic)
	last := int64(-1) // the last committed record: the latest of its key
	for _, off := range lg.latest {
		last = max(last, off)
	}
	markers := func() float64 {
		v, _ := metricValue(scrape(t, b.httpAddr()), "klite_compaction_removed_markers_total")
		return v
	}
	// Most transactions' data is all superseded or aborted: their markers
	// go (the last few sit in the active segment or keep data).
	waitFor(t, time.Minute, "transaction markers removed", func() bool { return markers() >= txns/2 })
	check := func(when string) {
		t.Helper()
		got := readFranz(t, b.addr, topic, last+1, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		checkTxnRead(t, "franz read_committed "+when, lg, aborted, got)
		checkTxnRead(t, "confluent read_committed "+when, lg, aborted, readConfluentCommitted(t, b.addr, topic, last))
	}
	check("after markers went")
	t.Logf("%d transactions, %d markers removed; high watermark %d", txns, int(markers()), hwm)
	b.stop()
	b.restart()
	check("after a restart")
	// kill -9: recovery takes the aborted index from checkpoints written
	// before the markers went; the compacted file's section overrides it.
	b.kill9()
	b.restart()
	check("after kill -9")
}

// checkTxnRead checks a read_committed read of the whole log: no aborted
// record, every record the committed one at its offset, each key's latest.
func checkTxnRead(t testing.TB, who string, lg *compactLog, aborted map[string]bool, got []consumed) {
	t.Helper()
	for _, c := range got {
		if aborted[c.val] {
			t.Fatalf("%s: aborted record at %d", who, c.off)
		}
	}
	lg.check(t, who, got)
}

// readConfluentCommitted reads topic partition 0 from the beginning with a
// read_committed librdkafka consumer, up to the latest committed record.
func readConfluentCommitted(t testing.TB, addr, topic string, last int64) []consumed {
	t.Helper()
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{
		"bootstrap.servers":  addr,
		"group.id":           "klite-test",
		"enable.auto.commit": false,
		"isolation.level":    "read_committed",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return pollConfluent(t, c, topic, last)
}
