package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/tier/s3store"
)

// Compaction of data in the bucket, against the real binary and versitygw:
// with -wal-hot-bytes 1 the local WAL lets go of what is uploaded, so a
// read from offset 0 goes to the bucket, whose objects compaction
// rewrites. franz-go and librdkafka consumers from 0 must see every key's
// latest record at its original offset and fewer records than produced,
// the bucket must hold fewer bytes than were uploaded to it, and kill -9
// during cleanings must lose and duplicate nothing.

// bucketObjects lists p's data objects: key -> size, and each key's base
// offset (from its name: <base>-<last>[-g<gen>].klo, tier/doc.go).
func bucketObjects(t testing.TB, s *s3store.Store, p tier.Partition) (sizes map[string]int64, bases map[string]int64) {
	t.Helper()
	dir := p.Dir() + "data/"
	sizes, bases = map[string]int64{}, map[string]int64{}
	err := s.List(testContext(t, time.Minute), dir, "", func(o tier.ObjectInfo) error {
		name, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, dir), ".klo")
		b, _, _ := strings.Cut(name, "-")
		base, err := strconv.ParseInt(b, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("unexpected data object key %q", o.Key)
		}
		sizes[o.Key], bases[o.Key] = o.Size, base
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sizes, bases
}

// bucketState is p's published manifest and the data objects it does not
// reference below its end (a rewrite's or an upload's leftovers).
func bucketState(t testing.TB, s *s3store.Store, p tier.Partition) (m *tier.Manifest, bytes int64, orphans []string) {
	t.Helper()
	m, err := tier.LoadManifest(testContext(t, time.Minute), s, p)
	if err != nil {
		t.Fatalf("manifest of %s/%d: %v", p.Topic, p.Partition, err)
	}
	refs := map[string]bool{}
	for i := range m.Objects {
		refs[m.ObjectKey(i)] = true
	}
	sizes, bases := bucketObjects(t, s, p)
	for k, n := range sizes {
		bytes += n
		if !refs[k] && bases[k] < m.NextOffset() {
			orphans = append(orphans, k)
		}
	}
	return m, bytes, orphans
}

func TestCompactionS3(t *testing.T) {
	endpoint := startS3(t)
	// 4 MiB/s: a cleaning of the bucket's few MB lasts long enough to be
	// killed in the middle of.
	b := startBroker(t, tierFlags(endpoint, "-compaction-interval", "300ms", "-compaction-max-bytes-per-sec", "4194304",
		"-max-message-bytes", "262144", "-http-addr", "127.0.0.1:0")...)
	const topic = "cs3"
	cl := newFranz(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(128<<10))
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(testContext(t, 30*time.Second), 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"), "delete.retention.ms": kadm.StringPtr("0"),
	}, topic); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(testContext(t, 30*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	part := tier.Partition{Topic: topic, TopicID: td[topic].ID, Partition: 0}
	s := bucket(t, endpoint)
	metric := func(name string) float64 {
		v, _ := metricValue(scrape(t, b.httpAddr()), name)
		return v
	}

	// 1,500 keys: about 1.5 MiB survives, more than one 1 MiB object, so
	// a rewrite PUTs objects while it still reads, and a kill can fall
	// between its PUTs and its publish.
	lg := &compactLog{recs: map[int64]compactRec{}, latest: map[string]int64{}, keys: 1500}
	produceCompact(t, cl, topic, lg, 0, 6000, true) // about 6 MiB
	waitUploaded(t, s, adm, topic, 2*time.Minute)
	hwm := hwmOf(t, adm, topic)

	// Compaction rewrites the bucket's objects: a read from 0, served by
	// the bucket, shows it.
	var got []consumed
	waitFor(t, 2*time.Minute, "compaction in the bucket", func() bool {
		got = readFranz(t, b.addr, topic, hwm)
		return len(got) < int(hwm)/2
	})
	cold0 := metric("klite_s3_cold_read_bytes_total")
	lg.check(t, "franz", readFranz(t, b.addr, topic, hwm))
	lg.check(t, "confluent", readConfluent(t, b.addr, topic, hwm))
	if cold := metric("klite_s3_cold_read_bytes_total"); cold <= cold0 {
		t.Errorf("reads from offset 0 did not go to the bucket (cold read bytes %v -> %v)", cold0, cold)
	}
	uploaded := metric("klite_s3_uploaded_bytes_total")
	var m *tier.Manifest
	var inBucket int64
	waitFor(t, time.Minute, "the bucket to shrink", func() bool {
		m, inBucket, _ = bucketState(t, s, part)
		return inBucket < int64(uploaded)/2
	})
	gens := 0
	for _, o := range m.Objects {
		if o.Gen > 0 {
			gens++
		}
	}
	if tiered := metric("klite_compaction_tiered_cleanings_total"); gens == 0 || tiered == 0 {
		t.Fatalf("no compacted object in the manifest (%d objects), %v cleanings of the bucket", len(m.Objects), tiered)
	}
	t.Logf("%d records produced, %d read from 0 after compaction; bucket data %d bytes of %v uploaded, %d of %d objects compacted",
		hwm, len(got), inBucket, uploaded, gens, len(m.Objects))

	// kill -9 while a cleaning of the bucket runs, at a random moment of
	// it; after each restart everything acknowledged is there once.
	counters := func() (read, runs float64) {
		fams := scrape(t, b.httpAddr())
		read, _ = metricValue(fams, "klite_compaction_read_bytes_total")
		runs, _ = metricValue(fams, "klite_compaction_cleanings_total")
		return read, runs
	}
	next := 6000
	killedMid := 0 // kills that left a rewrite's objects unpublished
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	for round := range 4 {
		cl2 := newFranz(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(128<<10))
		produceCompact(t, cl2, topic, lg, next, 2500, round == 1)
		next += 2500
		adm2 := kadm.NewClient(cl2)
		waitUploaded(t, s, adm2, topic, 2*time.Minute)
		if round%2 == 0 {
			// Any moment of a cleaning: two samples in a row with bytes
			// read between them and no cleaning finished, then a random
			// delay.
			read0, runs0 := counters()
			waitFor(t, 2*time.Minute, "a cleaning in progress", func() bool {
				read, runs := counters()
				busy := read > read0 && runs == runs0
				read0, runs0 = read, runs
				return busy
			})
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond) // a random moment of the cleaning, not a wait for state
		} else {
			// Between a rewrite's first PUT and its publish: an object
			// below the manifest's end that it does not reference.
			waitFor(t, 2*time.Minute, "a rewrite's object put, not yet published", func() bool {
				_, _, left := bucketState(t, s, part)
				return len(left) > 0
			})
		}
		cl2.Close()
		b.kill9()
		_, _, left := bucketState(t, s, part)
		killedMid += min(len(left), 1)
		t.Logf("kill -9 %d: %d unreferenced objects left in the bucket", round, len(left))
		b.restart()
		adm2 = kadm.NewClient(newFranz(t, b.addr))
		hwm = hwmOf(t, adm2, topic)
		lg.check(t, fmt.Sprintf("franz after kill -9 %d", round), readFranz(t, b.addr, topic, hwm))
	}

	// Cleanings go on after the kills: the log read from 0 shrinks again,
	// and the bucket ends up holding only what the manifest references (a
	// killed rewrite's objects are removed).
	var orphans []string
	waitFor(t, 2*time.Minute, "compaction after the kills, and no unreferenced objects", func() bool {
		got = readFranz(t, b.addr, topic, hwm)
		m, inBucket, orphans = bucketState(t, s, part)
		return len(got) < int(hwm)/4 && len(orphans) == 0
	})
	lg.check(t, "franz at the end", got)
	lg.check(t, "confluent at the end", readConfluent(t, b.addr, topic, hwm))
	t.Logf("after %d records and 4 kills (%d in the middle of a rewrite): %d read from 0, bucket data %d bytes in %d objects",
		hwm, killedMid, len(got), inBucket, len(m.Objects))
	b.stop()
}
