package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
)

// confluent-kafka-go wraps librdkafka (a static copy bundled in the module,
// built with cgo), so this is the librdkafka client kcat and most non-Java
// clients share.

func ckProducer(t testing.TB, addr string, extra ckafka.ConfigMap) *ckafka.Producer {
	t.Helper()
	cfg := ckafka.ConfigMap{
		"bootstrap.servers":            addr,
		"enable.idempotence":           true,
		"acks":                         "all",
		"linger.ms":                    5,
		"queue.buffering.max.messages": 200000,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	p, err := ckafka.NewProducer(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func ckConsumer(t testing.TB, addr string) *ckafka.Consumer {
	t.Helper()
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{
		"bootstrap.servers":  addr,
		"group.id":           "klite-test", // required by the Go wrapper; offsets are assigned, never committed
		"enable.auto.commit": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// consumeBigConfluent reads the big run's partitions from offset 0 with
// librdkafka and checks every record.
func consumeBigConfluent(t *testing.T, addr, topic string, n int) {
	t.Helper()
	c := ckConsumer(t, addr)
	var tps []ckafka.TopicPartition
	for p := int32(0); p < bigParts; p++ {
		tps = append(tps, ckafka.TopicPartition{Topic: &topic, Partition: p, Offset: ckafka.OffsetBeginning})
	}
	if err := c.Assign(tps); err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, "confluent", n)
	deadline := time.Now().Add(5 * time.Minute)
	for !v.done() && !t.Failed() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out at %s", v.progress())
		}
		switch e := c.Poll(100).(type) {
		case *ckafka.Message:
			v.add(e.TopicPartition.Partition, int64(e.TopicPartition.Offset), e.Value)
		case ckafka.Error:
			if e.IsFatal() {
				t.Fatalf("consumer: %v", e)
			}
			t.Logf("consumer error event: %v", e)
		}
	}
}

// ckProduce produces msgs and waits for every delivery report.
func ckProduce(t testing.TB, p *ckafka.Producer, msgs func(yield func(*ckafka.Message) bool), n int) {
	t.Helper()
	reports := make(chan ckafka.Event, 1024)
	done := make(chan struct{})
	var failed int
	go func() {
		defer close(done)
		for got := 0; got < n; {
			m, ok := (<-reports).(*ckafka.Message)
			if !ok {
				continue
			}
			got++
			if m.TopicPartition.Error != nil {
				if failed++; failed <= 5 {
					t.Errorf("delivery: %v", m.TopicPartition.Error)
				}
			}
		}
	}()
	for m := range msgs {
		for {
			err := p.Produce(m, reports)
			if err == nil {
				break
			}
			if e, ok := err.(ckafka.Error); ok && e.Code() == ckafka.ErrQueueFull {
				p.Flush(50) // drain some, then retry
				continue
			}
			t.Fatalf("produce: %v", err)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("delivery reports missing")
	}
	if failed > 0 {
		t.Fatalf("%d of %d deliveries failed", failed, n)
	}
}

func TestConfluent(t *testing.T) {
	b := startBroker(t)
	prod := ckProducer(t, b.addr, nil)
	admin, err := ckafka.NewAdminClientFromProducer(prod)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	create := func(t *testing.T, topic string, parts int) {
		t.Helper()
		res, err := admin.CreateTopics(testContext(t, 30*time.Second), []ckafka.TopicSpecification{{Topic: topic, NumPartitions: parts, ReplicationFactor: 1}})
		if err != nil || res[0].Error.Code() != ckafka.ErrNoError {
			t.Fatalf("create %s: %v %v", topic, err, res)
		}
	}
	listOffsets := func(t *testing.T, topic string, p int32, spec ckafka.OffsetSpec) ckafka.ListOffsetsResultInfo {
		t.Helper()
		res, err := admin.ListOffsets(testContext(t, 30*time.Second), map[ckafka.TopicPartition]ckafka.OffsetSpec{
			{Topic: &topic, Partition: p}: spec,
		})
		if err != nil {
			t.Fatal(err)
		}
		for tp, info := range res.ResultInfos {
			if *tp.Topic == topic && tp.Partition == p {
				if info.Error.Code() != ckafka.ErrNoError {
					t.Fatalf("list offsets %s/%d: %v", topic, p, info.Error)
				}
				return info
			}
		}
		t.Fatalf("list offsets: no result for %s/%d", topic, p)
		return ckafka.ListOffsetsResultInfo{}
	}

	t.Run("big", func(t *testing.T) {
		topic := "confluent-big"
		create(t, topic, bigParts)
		start := time.Now()
		ckProduce(t, prod, func(yield func(*ckafka.Message) bool) {
			for i := 0; i < *records; i++ {
				p := int32(i % bigParts)
				if !yield(&ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: p}, Key: key(p), Value: value(p, int64(i/bigParts))}) {
					return
				}
			}
		}, *records)
		t.Logf("produced %d records in %v", *records, time.Since(start))
		for p := int32(0); p < bigParts; p++ {
			if got := listOffsets(t, topic, p, ckafka.LatestOffsetSpec); int64(got.Offset) != seqCount(*records, p) {
				t.Errorf("partition %d latest offset %d, want %d", p, got.Offset, seqCount(*records, p))
			}
			if got := listOffsets(t, topic, p, ckafka.EarliestOffsetSpec); got.Offset != 0 {
				t.Errorf("partition %d earliest offset %d, want 0", p, got.Offset)
			}
		}

		start = time.Now()
		consumeBigConfluent(t, b.addr, topic, *records)
		t.Logf("consumed %d records in %v", *records, time.Since(start))
	})

	t.Run("auto-create", func(t *testing.T) {
		topic := "confluent-auto"
		ckProduce(t, prod, func(yield func(*ckafka.Message) bool) {
			yield(&ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: ckafka.PartitionAny}, Value: []byte("hello")})
		}, 1)
		if got := listOffsets(t, topic, 0, ckafka.LatestOffsetSpec); got.Offset != 1 {
			t.Errorf("latest offset %d, want 1", got.Offset)
		}
	})

	t.Run("acks", func(t *testing.T) {
		for _, acks := range []int{0, 1, -1} {
			t.Run(fmt.Sprint(acks), func(t *testing.T) {
				topic := fmt.Sprintf("confluent-acks-%d", acks)
				create(t, topic, 1)
				p := ckProducer(t, b.addr, ckafka.ConfigMap{"enable.idempotence": acks == -1, "acks": acks})
				const n = 2000
				ckProduce(t, p, func(yield func(*ckafka.Message) bool) {
					for i := 0; i < n; i++ {
						if !yield(&ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: 0}, Value: value(0, int64(i))}) {
							return
						}
					}
				}, n)
				waitFor(t, time.Minute, "latest offset", func() bool {
					return listOffsets(t, topic, 0, ckafka.LatestOffsetSpec).Offset == n
				})
				c := ckConsumer(t, b.addr)
				if err := c.Assign([]ckafka.TopicPartition{{Topic: &topic, Partition: 0, Offset: ckafka.OffsetBeginning}}); err != nil {
					t.Fatal(err)
				}
				for i := int64(0); i < n; i++ {
					m, err := c.ReadMessage(time.Minute)
					if err != nil {
						t.Fatalf("offset %d: %v", i, err)
					}
					if int64(m.TopicPartition.Offset) != i || string(m.Value) != string(value(0, i)) {
						t.Fatalf("offset %d: got %d %q", i, m.TopicPartition.Offset, m.Value)
					}
				}
			})
		}
	})

	t.Run("time-and-end", func(t *testing.T) {
		topic := "confluent-time"
		create(t, topic, 1)
		base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		// One message per produce call and flush: one timestamp per batch.
		for i := 0; i < 20; i++ {
			ckProduce(t, prod, func(yield func(*ckafka.Message) bool) {
				yield(&ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: 0}, Value: []byte("t"), Timestamp: base.Add(time.Duration(i) * time.Second)})
			}, 1)
		}
		if got := listOffsets(t, topic, 0, ckafka.NewOffsetSpecForTimestamp(base.Add(10*time.Second).UnixMilli())); got.Offset != 10 {
			t.Errorf("offset at +10s: %d, want 10", got.Offset)
		}
		if got := listOffsets(t, topic, 0, ckafka.MaxTimestampOffsetSpec); got.Offset != 19 {
			t.Errorf("max timestamp offset: %d, want 19", got.Offset)
		}
		c := ckConsumer(t, b.addr)
		times, err := c.OffsetsForTimes([]ckafka.TopicPartition{{Topic: &topic, Partition: 0, Offset: ckafka.Offset(base.Add(15 * time.Second).UnixMilli())}}, 30000)
		if err != nil || times[0].Offset != 15 {
			t.Fatalf("OffsetsForTimes(+15s): %v %v, want 15", times, err)
		}
		if err := c.Assign(times); err != nil {
			t.Fatal(err)
		}
		m, err := c.ReadMessage(time.Minute)
		if err != nil || m.TopicPartition.Offset != 15 {
			t.Fatalf("read from +15s: %v %v", m, err)
		}

		end := ckConsumer(t, b.addr)
		if err := end.Assign([]ckafka.TopicPartition{{Topic: &topic, Partition: 0, Offset: ckafka.OffsetEnd}}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for seen := false; !seen; {
			if time.Now().After(deadline) {
				t.Fatal("consumer at the end saw nothing")
			}
			ckProduce(t, prod, func(yield func(*ckafka.Message) bool) {
				yield(&ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: 0}, Value: []byte("new")})
			}, 1)
			m, err := end.ReadMessage(200 * time.Millisecond)
			if err != nil {
				continue // timed out: produce another
			}
			if string(m.Value) != "new" || m.TopicPartition.Offset < 20 {
				t.Fatalf("consumer at the end got %q at %d", m.Value, m.TopicPartition.Offset)
			}
			seen = true
		}
	})

	t.Run("delete-topic", func(t *testing.T) {
		const topic = "confluent-delete"
		create(t, topic, 2)
		res, err := admin.DeleteTopics(testContext(t, 30*time.Second), []string{topic})
		if err != nil || res[0].Error.Code() != ckafka.ErrNoError {
			t.Fatalf("delete: %v %v", err, res)
		}
		md, err := admin.GetMetadata(nil, true, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := md.Topics[topic]; ok {
			t.Fatal("deleted topic still listed")
		}
	})

	b.stop()
}

// TestCrashConfluent is TestCrashKill9 with librdkafka's idempotent
// producer, which is strict about sequence numbers: after a kill -9 and
// restart it must carry on without a fatal idempotence error, and every
// delivered record must be in the log exactly once.
func TestCrashConfluent(t *testing.T) {
	b := startBroker(t)
	const topic = "crash-confluent"
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), topic, durParts)
	p := ckProducer(t, b.addr, ckafka.ConfigMap{"linger.ms": 1})
	tr := newTracker(1)

	reports := make(chan ckafka.Event, 4096)
	stop := make(chan struct{})
	produced := make(chan int64, 1)
	go func() {
		seq := int64(0)
		defer func() { produced <- seq }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			tp := topic
			m := &ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &tp, Partition: int32(seq % durParts)}, Value: durValue(0, seq), Opaque: seq}
			if err := p.Produce(m, reports); err != nil {
				if e, ok := err.(ckafka.Error); ok && e.Code() == ckafka.ErrQueueFull {
					p.Flush(10)
					continue
				}
				t.Errorf("produce: %v", err)
				return
			}
			seq++
		}
	}()
	var fatalMu sync.Mutex
	var fatal error
	go func() { // errors come on the producer's own channel
		for ev := range p.Events() {
			if e, ok := ev.(ckafka.Error); ok && e.IsFatal() {
				fatalMu.Lock()
				if fatal == nil {
					fatal = e
				}
				fatalMu.Unlock()
			}
		}
	}()
	delivered := make(chan struct{})
	settled := int64(0)
	var settledMu sync.Mutex
	go func() {
		defer close(delivered)
		for ev := range reports {
			switch e := ev.(type) {
			case *ckafka.Message:
				settledMu.Lock()
				settled++
				settledMu.Unlock()
				if e.TopicPartition.Error != nil {
					tr.fail(e.TopicPartition.Error)
					continue
				}
				tr.ack(0, e.Opaque.(int64))
			}
		}
	}()

	for round := 1; round <= 3; round++ {
		from := tr.nAcked.Load()
		waitFor(t, 2*time.Minute, "the producer to make progress", func() bool { return tr.nAcked.Load() >= from+5000 })
		b.kill9()
		t.Logf("round %d: killed with %d delivered, %d failed", round, tr.nAcked.Load(), tr.nFail.Load())
		b.restart()
	}
	from := tr.nAcked.Load()
	waitFor(t, 2*time.Minute, "the producer to make progress", func() bool { return tr.nAcked.Load() >= from+5000 })
	close(stop)
	n := <-produced
	waitFor(t, 2*time.Minute, "every delivery report", func() bool {
		settledMu.Lock()
		defer settledMu.Unlock()
		return settled == n
	})
	close(reports)
	<-delivered
	fatalMu.Lock()
	defer fatalMu.Unlock()
	if fatal != nil {
		t.Errorf("librdkafka raised a fatal error: %v", fatal)
	}
	verifyDurable(t, b.addr, topic, tr)
	b.stop()
}
