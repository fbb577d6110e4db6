package group

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// seedLogs are inputs the writer makes: a log of several writes holding
// every record type, the records of a snapshot, and damaged copies.
func seedLogs() [][]byte {
	recs := [][]byte{
		groupMetaRecord("g", "consumer", 3),
		commitRecord("g", []commitEntry{{TP{"t", 0}, Offset{5, 2, "meta", 10, 20}}, {TP{"u", 7}, Offset{Offset: 9}}}),
		deleteOffsetsRecord("g", []TP{{"u", 7}}),
		memberRecord("g", "m1", "i1", true),
		memberRecord("g", "m1", "i1", false),
		classicRecord("g", &storedClassic{protocolType: "consumer", generation: 3, protocol: "range", leader: "m",
			members: []storedMember{{id: "m", clientID: "c", clientHost: "/h", session: time.Second, rebalance: time.Minute,
				subscription: []byte("sub"), assignment: []byte("asg")}}}),
		deleteGroupRecord("g"),
	}
	var log []byte
	for _, r := range recs {
		log = append(append(log, marker(r)...), r...)
	}
	var all []byte
	for _, r := range recs {
		all = append(all, r...)
	}
	log = append(append(log, marker(all)...), all...)
	snap := encodeState(&logState{groups: map[string]*storedGroup{"g": {protocolType: "consumer", generation: 2,
		offsets: map[TP]Offset{{"t", 0}: {Offset: 1, Metadata: "x"}}, members: map[string]string{"m": ""}}}})
	flipped := append([]byte(nil), log...)
	flipped[len(flipped)/2] ^= 1
	return [][]byte{log, all, snap[len(snapshotMagic):], log[:len(log)-5], flipped, {}, {0, 0, 0, 9, 1, 2, 3, 4, recWrite}}
}

// FuzzReplay feeds any bytes to the offsets log's decoders, as a log and as
// a snapshot's records. Invariants: never panics (so never reads past the
// input); accepts a prefix of the input, and all of it exactly when it
// reports nothing wrong; the accepted prefix replays again whole; the
// torn-tail probes stay inside the input and the write-time check never
// panics either.
func FuzzReplay(f *testing.F) {
	for _, s := range seedLogs() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		b = b[:len(b):len(b)]
		for _, writes := range []bool{true, false} {
			good, why, _ := replay(newLogState(), b, writes)
			if good < 0 || good > len(b) || (why == "") != (good == len(b)) {
				t.Fatalf("writes=%v: accepted %d of %d bytes, why %q", writes, good, len(b), why)
			}
			if g2, why2, _ := replay(newLogState(), b[:good], writes); g2 != good || why2 != "" {
				t.Fatalf("writes=%v: the accepted prefix of %d bytes replays to %d: %s", writes, good, g2, why2)
			}
		}
		if q, ok := intactWriteAfter(b, 0); ok && (q <= 0 || q >= len(b)) {
			t.Fatalf("intact write at %d of %d", q, len(b))
		}
		if e := writeEnd(b, 0); e < 0 || e > len(b) {
			t.Fatalf("write end %d of %d", e, len(b))
		}
		_ = checkRecords(b)
		if len(b) > 0 {
			_, _ = decodeRecord(b)
		}
	})
}

// TestWriteReplayCorpus regenerates testdata/fuzz/FuzzReplay from
// seedLogs when KLITE_WRITE_CORPUS=1.
func TestWriteReplayCorpus(t *testing.T) {
	if os.Getenv("KLITE_WRITE_CORPUS") != "1" {
		t.Skip("set KLITE_WRITE_CORPUS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReplay")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seedLogs() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSeedLogsReplay: the undamaged seeds are what recovery accepts whole.
func TestSeedLogsReplay(t *testing.T) {
	s := seedLogs()
	for i, writes := range map[int]bool{0: true, 1: false, 2: false} {
		if good, why, _ := replay(newLogState(), s[i], writes); why != "" || good != len(s[i]) {
			t.Fatalf("seed %d: %d of %d: %s", i, good, len(s[i]), why)
		}
	}
}
