package main

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestKafkaPython: kafka-python (Debian's python3-kafka, a client written
// from the protocol rather than on librdkafka, on older API versions)
// creates, describes and deletes a topic, produces gzip batches with
// acks=all, consumes them in a group with commits, and lists and describes
// the group.
func TestKafkaPython(t *testing.T) {
	// Debian's python3-kafka is installed for Debian's interpreter, which
	// need not be the first python3 on PATH (pyenv).
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "from kafka import KafkaProducer").Run(); err != nil {
		missingDebianTool(t, "python3-kafka for "+python)
	}
	b := startBroker(t)
	const n = 500
	ctx := testContext(t, 2*time.Minute)
	cmd := exec.CommandContext(ctx, python, "testdata/kafka_python.py", b.addr, "kpy", "kpy-group", strconv.Itoa(n))
	cmd.Dir = "."
	stdout, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("kafka_python.py: %v\n%s\n%s", err, stdout, stderr)
	}
	var got struct {
		Listed      bool     `json:"listed"`
		Partitions  int      `json:"partitions"`
		RetentionMs string   `json:"retention_ms"`
		Acked       int      `json:"acked"`
		Consumed    int      `json:"consumed"`
		ValuesMatch bool     `json:"values_match"`
		OutOfOrder  [][2]int `json:"out_of_order"`
		Committed   int      `json:"committed"`
		Groups      []string `json:"groups"`
		GroupState  string   `json:"group_state"`
		Deleted     bool     `json:"deleted"`
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("kafka_python.py printed %q: %v", stdout, err)
	}
	if !got.Listed || got.Partitions != 3 || got.RetentionMs != "3600000" {
		t.Errorf("admin: listed %v, %d partitions, retention.ms %q; want true, 3, 3600000", got.Listed, got.Partitions, got.RetentionMs)
	}
	if got.Acked != n || got.Consumed != n || !got.ValuesMatch || len(got.OutOfOrder) > 0 {
		t.Errorf("records: acked %d, consumed %d of %d, values match %v, out of order %v", got.Acked, got.Consumed, n, got.ValuesMatch, got.OutOfOrder)
	}
	// One commit of every partition's next offset: the offsets sum to n.
	if got.Committed != n {
		t.Errorf("committed offsets sum to %d, want %d", got.Committed, n)
	}
	if !slices.Contains(got.Groups, "kpy-group") || got.GroupState != "Empty" {
		t.Errorf("groups %v, state %q; want kpy-group listed, Empty", got.Groups, got.GroupState)
	}
	if !got.Deleted {
		t.Error("topic still listed after delete_topics")
	}
}
