package main

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConcurrentClients runs many producers and tailing consumers at once:
// consumers start before the data exists, so every record reaches them
// through long-polling fetches woken by new data. Each consumer must see
// every record exactly once, each producer's records in order.
func TestConcurrentClients(t *testing.T) {
	const (
		topic     = "concurrent"
		parts     = 8
		producers = 16
		consumers = 6
		perProd   = 5000
	)
	b := startBroker(t)
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), topic, parts)
	ctx := testContext(t, 3*time.Minute)

	offsets := map[int32]kgo.Offset{}
	for p := int32(0); p < parts; p++ {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	var cwg sync.WaitGroup
	for c := 0; c < consumers; c++ {
		cl := newFranz(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
			kgo.FetchMaxWait(time.Second))
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			var last [producers][parts]int64 // last sequence seen per producer and partition
			for i := range last {
				for j := range last[i] {
					last[i][j] = -1
				}
			}
			nextOffset := make([]int64, parts)
			for got := 0; got < producers*perProd; {
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Errorf("consumer %d: got %d of %d records", c, got, producers*perProd)
					return
				}
				fs.EachError(func(_ string, p int32, err error) { t.Errorf("consumer %d partition %d: %v", c, p, err) })
				for _, r := range fs.Records() {
					got++
					if r.Offset != nextOffset[r.Partition] {
						t.Errorf("consumer %d partition %d: offset %d, want %d", c, r.Partition, r.Offset, nextOffset[r.Partition])
						return
					}
					nextOffset[r.Partition]++
					id, seq, ok := parseDurValue(r.Value)
					if !ok || id >= producers {
						t.Errorf("consumer %d: bad value %q", c, r.Value)
						return
					}
					// Producer id writes sequence s to partition (id+s)%parts,
					// so in one partition its sequences rise by parts.
					want := last[id][r.Partition] + parts
					if last[id][r.Partition] < 0 {
						want = (int64(r.Partition) - int64(id)%parts + parts) % parts
					}
					if seq != want {
						t.Errorf("consumer %d partition %d offset %d: producer %d seq %d, want %d", c, r.Partition, r.Offset, id, seq, want)
						return
					}
					last[id][r.Partition] = seq
				}
			}
		}()
	}

	var pwg sync.WaitGroup
	for id := 0; id < producers; id++ {
		cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for s := int64(0); s < perProd; s++ {
				cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32((int64(id) + s) % parts), Value: durValue(id, s)}, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Errorf("producer %d: %v", id, err)
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				t.Errorf("producer %d flush: %v", id, err)
			}
		}()
	}
	pwg.Wait()
	cwg.Wait()
	b.stop()
}

// TestSlowReader pipelines many large fetches on one connection without
// reading, then reads: flow control must hold the broker back (it stops
// reading requests while responses queue) without deadlock or loss, and
// every response arrives whole and in order.
func TestSlowReader(t *testing.T) {
	b := startBroker(t, "-max-outbound-bytes", "8388608")
	const topic = "slow-reader"
	cl := newFranz(t, b.addr, kgo.ProducerBatchCompression(kgo.NoCompression()))
	createTopic(t, kadm.NewClient(cl), topic, 1)
	ctx := testContext(t, 2*time.Minute)
	for i := 0; i < 2000; i++ { // about 2 MB of 1 KB records
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: make([]byte, 1000)}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	rc := dialRaw(t, b.addr)
	const fetches = 200 // about 400 MB of responses against an 8 MiB outbound cap
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.ReplicaID = -1
	req.MaxBytes = 4 << 20
	req.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 4 << 20
	fp.CurrentLeaderEpoch = -1
	fp.LogStartOffset = -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)

	// The requests are small (about 20 KB in all), so the socket buffers
	// take them whole: they are all sent before a single response is read.
	for i := 0; i < fetches; i++ {
		if _, err := rc.c.Write(reqFrame(req.Key(), req.Version, int32(i), false, req.AppendTo(nil))); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}

	var total int64
	for i := 0; i < fetches; i++ {
		rc.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		f, err := readFrame(rc.c)
		if err != nil {
			t.Fatalf("response %d of %d: %v", i, fetches, err)
		}
		if got := int32(binary.BigEndian.Uint32(f)); got != int32(i) {
			t.Fatalf("response %d has correlation id %d", i, got)
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = 11
		if err := resp.ReadFrom(f[4:]); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.HighWatermark != 2000 || len(p.RecordBatches) == 0 {
			t.Fatalf("response %d: error %d hwm %d, %d bytes", i, p.ErrorCode, p.HighWatermark, len(p.RecordBatches))
		}
		total += int64(len(f))
	}
	t.Logf("read %d fetch responses, %d MB", fetches, total>>20)
	healthy := newFranz(t, b.addr)
	if err := healthy.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	b.stop()
}
