package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Log compaction against the real binary: franz-go produces keyed records
// (some keys ending in a tombstone) into a compacted topic on 1 MiB
// segments; franz-go and librdkafka consumers read it from offset 0 once
// compaction has run, through a restart and kill -9 during compaction.

const compactKeys = 64

// compactLog is what was produced: offset -> record, and each key's latest
// offset.
type compactLog struct {
	mu     sync.Mutex
	recs   map[int64]compactRec
	latest map[string]int64
	// maybe holds records whose produce failed, by value: they may be
	// in the log at offsets never acknowledged.
	maybe map[string]compactRec
	keys  int // keys produced to; 0 is compactKeys
}

type compactRec struct {
	key, val string
	tomb     bool
}

func compactValue(i int) []byte {
	v := fmt.Appendf(nil, "%08d-", i)
	for j := range 32 { // 1 KiB that does not compress
		sum := sha256.Sum256(fmt.Appendf(nil, "%d/%d", i, j))
		v = append(v, sum[:]...)
	}
	return v
}

// produceCompact produces n records (record i: key i%lg.keys, compactKeys
// by default; with tombs the last round of keys below 8 are tombstones)
// and records their offsets.
func produceCompact(t testing.TB, cl *kgo.Client, topic string, lg *compactLog, from, n int, tombs bool) {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	keys := compactKeys
	if lg.keys > 0 {
		keys = lg.keys
	}
	for i := from; i < from+n; i++ {
		k := fmt.Sprintf("key-%02d", i%keys)
		r := &kgo.Record{Topic: topic, Key: []byte(k), Value: compactValue(i)}
		if tombs && i >= from+n-keys && i%keys < 8 {
			r.Value = nil
		}
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			lg.mu.Lock()
			lg.recs[r.Offset] = compactRec{key: string(r.Key), val: string(r.Value), tomb: r.Value == nil}
			if l, ok := lg.latest[string(r.Key)]; !ok || r.Offset > l {
				lg.latest[string(r.Key)] = r.Offset
			}
			lg.mu.Unlock()
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// consumed is one record a consumer read.
type consumed struct {
	off      int64
	key, val string
	tomb     bool
}

// checkCompacted checks a read of the whole log: every record is the one
// produced at its offset, offsets only grow, and each key's latest record
// is there (a tombstone may be gone). It returns how many records were read.
func (lg *compactLog) check(t testing.TB, who string, got []consumed) {
	t.Helper()
	lg.mu.Lock()
	defer lg.mu.Unlock()
	have := map[int64]bool{}
	last := int64(-1)
	for _, c := range got {
		want, ok := lg.recs[c.off]
		if m, found := lg.maybe[c.val]; !ok && found && !c.tomb {
			want, ok = m, true
		}
		if !ok || want.key != c.key || want.val != c.val || want.tomb != c.tomb {
			t.Fatalf("%s: offset %d holds key %q (tombstone %v), produced %q (tombstone %v)", who, c.off, c.key, c.tomb, want.key, want.tomb)
		}
		if c.off <= last {
			t.Fatalf("%s: offset %d after %d", who, c.off, last)
		}
		last = c.off
		have[c.off] = true
	}
	for k, off := range lg.latest {
		if !have[off] && !lg.recs[off].tomb {
			t.Fatalf("%s: latest record of %s at %d missing", who, k, off)
		}
	}
}

// readFranz reads topic partition 0 from offset 0 to its high watermark.
func readFranz(t testing.TB, addr, topic string, hwm int64, opts ...kgo.Opt) []consumed {
	t.Helper()
	cl := newFranz(t, addr, append([]kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}})}, opts...)...)
	defer cl.Close()
	ctx := testContext(t, time.Minute)
	var out []consumed
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("franz: reading to %d: %v (at %d records)", hwm, err, len(out))
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("franz fetch: %v", err) })
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, consumed{off: r.Offset, key: string(r.Key), val: string(r.Value), tomb: r.Value == nil})
			done = done || r.Offset >= hwm-1
		})
		if done {
			return out
		}
	}
}

// readConfluent reads topic partition 0 from the beginning to hwm with
// librdkafka.
func readConfluent(t testing.TB, addr, topic string, hwm int64) []consumed {
	t.Helper()
	c := ckConsumer(t, addr)
	defer c.Close()
	return pollConfluent(t, c, topic, hwm-1)
}

// pollConfluent assigns topic partition 0 from the beginning to c and polls
// until the record at offset last arrives.
func pollConfluent(t testing.TB, c *ckafka.Consumer, topic string, last int64) []consumed {
	t.Helper()
	if err := c.Assign([]ckafka.TopicPartition{{Topic: &topic, Partition: 0, Offset: ckafka.OffsetBeginning}}); err != nil {
		t.Fatal(err)
	}
	var out []consumed
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		switch e := c.Poll(100).(type) {
		case *ckafka.Message:
			off := int64(e.TopicPartition.Offset)
			out = append(out, consumed{off: off, key: string(e.Key), val: string(e.Value), tomb: e.Value == nil})
			if off >= last {
				return out
			}
		case ckafka.Error:
			if e.IsFatal() {
				t.Fatalf("confluent consumer: %v", e)
			}
		}
	}
	t.Fatalf("confluent: timed out reading to %d (at %d records)", last, len(out))
	return nil
}

func walSegments(t testing.TB, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "shard-*", "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func hwmOf(t testing.TB, adm *kadm.Client, topic string) int64 {
	t.Helper()
	offs, err := adm.ListEndOffsets(testContext(t, 30*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := offs.Lookup(topic, 0)
	return o.Offset
}

func TestCompaction(t *testing.T) {
	// 8 MiB/s: a cleaning of a few MB takes long enough to be killed in
	// the middle of.
	b := startBroker(t, "-shards", "1", "-segment-bytes", "1048576", "-max-message-bytes", "262144",
		"-compaction-interval", "200ms", "-compaction-max-bytes-per-sec", "8388608", "-http-addr", "127.0.0.1:0")
	cl := newFranz(t, b.addr, kgo.DefaultProduceTopic("ct"), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(128<<10))
	adm := kadm.NewClient(cl)
	const topic = "ct"
	if _, err := adm.CreateTopic(testContext(t, 30*time.Second), 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"), "delete.retention.ms": kadm.StringPtr("0"),
	}, topic); err != nil {
		t.Fatal(err)
	}
	lg := &compactLog{recs: map[int64]compactRec{}, latest: map[string]int64{}}
	produceCompact(t, cl, topic, lg, 0, 6000, true) // about 6 MiB: 6 segments
	hwm := hwmOf(t, adm, topic)
	segsBefore := walSegments(t, b.dir)

	// Compaction runs in the background: wait until a read from 0 shows it.
	var got []consumed
	waitFor(t, time.Minute, "compaction", func() bool {
		got = readFranz(t, b.addr, topic, hwm)
		return len(got) < 3000
	})
	lg.check(t, "franz", got)
	lg.check(t, "confluent", readConfluent(t, b.addr, topic, hwm))
	waitFor(t, time.Minute, "WAL segments freed", func() bool { return walSegments(t, b.dir) < segsBefore })
	t.Logf("%d records produced, %d read after compaction; WAL segments %d -> %d", hwm, len(got), segsBefore, walSegments(t, b.dir))

	// Tombstones (delete.retention.ms=0) go at a later cleaning: more data
	// makes one due.
	produceCompact(t, cl, topic, lg, 6000, 3000, false)
	hwm = hwmOf(t, adm, topic)
	waitFor(t, time.Minute, "tombstones removed", func() bool {
		got = readFranz(t, b.addr, topic, hwm)
		for _, c := range got {
			if c.tomb {
				return false
			}
		}
		return true
	})
	lg.check(t, "franz after tombstones", got)

	b.stop()
	b.restart()
	lg.check(t, "franz after restart", readFranz(t, b.addr, topic, hwm))
	lg.check(t, "confluent after restart", readConfluent(t, b.addr, topic, hwm))

	// kill -9 while a cleaning runs: produce, wait until a cleaning is
	// reading, kill, restart, check.
	counters := func() (read, runs float64) {
		fams := scrape(t, b.httpAddr())
		read, _ = metricValue(fams, "klite_compaction_read_bytes_total")
		runs, _ = metricValue(fams, "klite_compaction_cleanings_total")
		return read, runs
	}
	next := 9000
	for round := range 3 {
		read0, runs0 := counters()
		cl2 := newFranz(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(128<<10))
		produceCompact(t, cl2, topic, lg, next, 2500, round == 1)
		next += 2500
		cl2.Close()
		// Two samples in a row with bytes read between them and no
		// cleaning finished: one is reading now.
		waitFor(t, time.Minute, "a cleaning in progress", func() bool {
			read, runs := counters()
			busy := read > read0 && runs == runs0
			read0, runs0 = read, runs
			return busy
		})
		b.kill9()
		b.restart()
		adm2 := kadm.NewClient(newFranz(t, b.addr))
		hwm = hwmOf(t, adm2, topic)
		lg.check(t, fmt.Sprintf("franz after kill -9 %d", round), readFranz(t, b.addr, topic, hwm))
	}
	lg.check(t, "confluent at the end", readConfluent(t, b.addr, topic, hwm))
	entries, _ := os.ReadDir(filepath.Join(b.dir, "compacted"))
	if len(entries) != 1 {
		t.Errorf("compacted directory holds %d files, want 1", len(entries))
	}
	b.stop()
}
