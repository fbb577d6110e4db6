package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// storedCodecs fetches partition 0 of topic from offset 0 with a raw
// Fetch and returns the compression codec of each stored batch (the
// attributes' low three bits) and the records they hold in all.
func storedCodecs(t *testing.T, cl *kgo.Client, topic string) (codecs []int16, records int) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil || td[topic].Err != nil {
		t.Fatalf("metadata of %s: %v %v", topic, err, td[topic].Err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxBytes, req.MaxWaitMillis = 12, 16<<20, 100
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, td[topic].ID // kgo sends v13+, by ID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 16 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch: error %d", p.ErrorCode)
	}
	for b := p.RecordBatches; len(b) > 0; {
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(b); err != nil {
			t.Fatalf("stored batch: %v", err)
		}
		codecs = append(codecs, batch.Attributes&7)
		records += int(batch.NumRecords)
		b = b[12+batch.Length:]
	}
	return codecs, records
}

// Debian's kcat (librdkafka 2.0.2) only compresses when the broker advertises
// Produce v0 (KAFKA-18659): each codec's batches must arrive compressed.
func TestKcatCompresses(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed (Debian package kcat)")
	}
	b := startBroker(t)
	cl := newFranz(t, b.addr)
	adm := kadm.NewClient(cl)
	const lines = 200
	var in bytes.Buffer
	for i := range lines {
		in.WriteString(strings.Repeat("compressible ", 8))
		in.WriteByte(byte('a' + i%26))
		in.WriteByte('\n')
	}
	for codec, name := range map[int16]string{1: "gzip", 2: "snappy", 3: "lz4"} {
		t.Run(name, func(t *testing.T) {
			topic := "kcat-" + name
			createTopic(t, adm, topic, 1)
			prod := exec.CommandContext(testContext(t, time.Minute), kcat, "-b", b.addr, "-t", topic, "-p", "0", "-P",
				"-z", name, "-X", "linger.ms=50")
			prod.Stdin = bytes.NewReader(in.Bytes())
			if out, err := prod.CombinedOutput(); err != nil {
				t.Fatalf("kcat -P: %v\n%s", err, out)
			}
			codecs, n := storedCodecs(t, cl, topic)
			if n != lines {
				t.Fatalf("%d records stored, want %d", n, lines)
			}
			for i, c := range codecs {
				if c != codec {
					t.Fatalf("batch %d of %d stored with codec %d, want %d (%s)", i, len(codecs), c, codec, name)
				}
			}
		})
	}
}
