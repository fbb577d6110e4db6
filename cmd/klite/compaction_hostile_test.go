package main

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Hostile compaction tests against the real binary (see
// storage/compact_hostile_test.go for the storage-level ones).

// A consumer whose position lies in a range compaction removed (its
// committed offset, just past the batch it read last) and whose fetch
// budget is smaller than the batch before the gap must get the next
// surviving record. Before the fix the broker answered with the batch
// before the gap alone (KIP-74: a first batch whole), wholly below the
// fetch offset, and franz-go asked for the same offset forever.
func TestCompactionFetchInsideRemovedRange(t *testing.T) {
	b := startBroker(t, "-shards", "1", "-segment-bytes", "1048576", "-max-message-bytes", "262144", "-compaction-interval", "200ms")
	const topic = "cgap"
	cl := newFranz(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(testContext(t, 30*time.Second), 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"),
	}, topic); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 2*time.Minute)
	big := make([]byte, 200<<10) // does not compress
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	recs := []*kgo.Record{
		{Key: []byte("a"), Value: big[:30<<10]},  // 0: survives, larger than the fetch budget, in one run with 2
		{Key: []byte("b"), Value: []byte("old")}, // 1: removed
		{Key: []byte("c"), Value: []byte("c")},   // 2: survives
		{Key: []byte("b"), Value: []byte("new")}, // 3: survives
	}
	for i := range 12 { // seal the segments holding the above
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "f%d", i%3), Value: big})
	}
	for i, r := range recs { // one batch each
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if r.Offset != int64(i) {
			t.Fatalf("record %d at offset %d", i, r.Offset)
		}
	}
	hwm := hwmOf(t, adm, topic)
	waitFor(t, time.Minute, "offset 1 compacted away", func() bool {
		for _, c := range readFranz(t, b.addr, topic, hwm) {
			if c.off == 1 {
				return false
			}
		}
		return true
	})
	cons := newFranz(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(1)}}),
		kgo.FetchMaxPartitionBytes(1024), kgo.FetchMaxBytes(1024))
	defer cons.Close()
	pctx := testContext(t, 30*time.Second)
	for {
		fs := cons.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatal("consumer at offset 1 (removed by compaction) got no record: stuck")
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		if recs := fs.Records(); len(recs) > 0 {
			if r := recs[0]; r.Offset != 2 || string(r.Key) != "c" {
				t.Fatalf("first record from offset 1: offset %d key %q, want 2 \"c\"", r.Offset, r.Key)
			}
			return
		}
	}
}
