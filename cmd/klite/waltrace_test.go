package main

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestWALTraceRecordsEveryStep runs the binary with -wal-trace and small
// segments, produces acks=all records until segments roll, stops it, and
// reads the trace back: every line is JSON, and writes, fdatasyncs,
// acknowledgements, rolls and preparation steps are all there with their
// sizes and counts.
func TestWALTraceRecordsEveryStep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal-trace.jsonl")
	b := startBroker(t, "-wal-trace", path, "-segment-bytes", "1048576", "-max-message-bytes", "262144", "-shards", "1")
	cl := newFranz(t, b.addr, kgo.DefaultProduceTopic("traced"), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchMaxBytes(128<<10))
	createTopic(t, kadm.NewClient(cl), "traced", 1)
	ctx := testContext(t, 30*time.Second)
	const n = 600
	const size = 8 << 10
	for i := range n {
		value := make([]byte, size)
		_, _ = rand.Read(value) // incompressible: the WAL holds at least n*size bytes
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce %d: %v", i, err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b.stop()

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type event struct {
		TUs    int64  `json:"t_us"`
		Kind   string `json:"kind"`
		Shard  int    `json:"shard"`
		DurUs  int64  `json:"dur_us"`
		WaitUs int64  `json:"wait_us"`
		Bytes  int64  `json:"bytes"`
		N      int    `json:"n"`
	}
	kinds := map[string]int{}
	var written, acked int64
	var last event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		kinds[ev.Kind]++
		switch ev.Kind {
		case "write":
			written += ev.Bytes
			if ev.N <= 0 || ev.Bytes <= 0 || ev.TUs <= 0 || ev.DurUs < 0 || ev.WaitUs < 0 {
				t.Errorf("write event %+v", ev)
			}
		case "ack":
			acked += int64(ev.N)
		}
		last = ev
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"write", "sync", "ack", "roll", "prepare", "checkpoint"} {
		if kinds[k] == 0 {
			t.Errorf("no %q events (saw %v)", k, kinds)
		}
	}
	if written < n*size {
		t.Errorf("writes add up to %d bytes, want at least the %d produced", written, n*size)
	}
	if acked == 0 {
		t.Error("acks completed no appends")
	}
	if last.Kind != "dropped" || last.N != 0 {
		t.Errorf("last line %+v, want the dropped count (0)", last)
	}
}
