package scenario

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestRatio(t *testing.T) {
	for _, c := range []struct{ a, b, want float64 }{{1, 2, 0.5}, {3, 3, 1}, {0, 5, 0}} {
		if got := ratio(c.a, c.b); got != c.want {
			t.Errorf("ratio(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
	for _, b := range []float64{0, -1, math.NaN()} {
		if got := ratio(1, b); !math.IsNaN(got) {
			t.Errorf("ratio(1, %v) = %v, want NaN (no baseline)", b, got)
		}
	}
}

func TestAbortsTxn(t *testing.T) {
	var got []int
	for i := range 12 {
		if abortsTxn(i, 4) {
			got = append(got, i)
		}
	}
	if fmt.Sprint(got) != "[3 7 11]" {
		t.Errorf("aborted of 12 with every 4th: %v, want [3 7 11]", got)
	}
	for i := range 10 {
		if abortsTxn(i, 0) {
			t.Fatalf("abortEvery 0 aborted transaction %d", i)
		}
	}
}

func TestTxnSteps(t *testing.T) {
	if got := fmt.Sprint(txnSteps(1)); got != "[0 10 100 1000]" {
		t.Errorf("round 1: %s, want the idempotent step first", got)
	}
	if got := fmt.Sprint(txnSteps(2)); got != "[10 100 1000 0]" {
		t.Errorf("round 2: %s, want the idempotent step last", got)
	}
	if fmt.Sprint(txnSizes) != "[10 100 1000]" {
		t.Errorf("txnSteps changed txnSizes: %v", txnSizes)
	}
}

func TestPassOrders(t *testing.T) {
	if got := strings.Join(txnFetchPasses(1), ","); got != "read_uncommitted,read_committed,read_committed,read_uncommitted" {
		t.Errorf("round 1: %s", got)
	}
	if got := strings.Join(txnFetchPasses(2), ","); got != "read_committed,read_uncommitted,read_uncommitted,read_committed" {
		t.Errorf("round 2: %s", got)
	}
	if got := strings.Join(abba(3, "off", "on"), ","); got != "off,on,on,off" {
		t.Errorf("abba round 3: %s", got)
	}
	if got := strings.Join(abba(4, "off", "on"), ","); got != "on,off,off,on" {
		t.Errorf("abba round 4: %s", got)
	}
}

func TestAbortedCheck(t *testing.T) {
	for _, c := range []struct {
		level           string
		marked, aborted int64
		fails           bool
	}{
		{"read_committed", 0, 100, false},
		{"read_committed", 1, 100, true},
		{"read_uncommitted", 100, 100, false},
		{"read_uncommitted", 99, 100, true},
	} {
		note := abortedCheck(c.level, c.marked, c.aborted)
		if got := strings.Contains(note, "DATA CHECK FAILED"); got != c.fails {
			t.Errorf("abortedCheck(%s, %d, %d) = %q, want failed %v", c.level, c.marked, c.aborted, note, c.fails)
		}
	}
}

func TestJoinInts(t *testing.T) {
	for _, c := range []struct {
		ns   []int
		want string
	}{{nil, ""}, {[]int{1}, "1"}, {[]int{1, 2}, "1 or 2"}, {[]int{10, 100, 1000}, "10, 100 or 1000"}} {
		if got := joinInts(c.ns, ", ", " or "); got != c.want {
			t.Errorf("joinInts(%v) = %q, want %q", c.ns, got, c.want)
		}
	}
}

const scrapeSample = `# HELP klite_partitions Partitions.
# TYPE klite_partitions gauge
klite_partitions 1000
# HELP klite_topic_records_in_total Records appended to the topic (durable).
# TYPE klite_topic_records_in_total counter
klite_topic_records_in_total{topic="a"} 5
klite_topic_records_in_total{topic="b"} 7
# HELP klite_wal_fsync_duration_seconds WAL fdatasync durations.
# TYPE klite_wal_fsync_duration_seconds histogram
klite_wal_fsync_duration_seconds_bucket{le="0.001"} 1
klite_wal_fsync_duration_seconds_bucket{le="0.01"} 2
klite_wal_fsync_duration_seconds_bucket{le="+Inf"} 3
klite_wal_fsync_duration_seconds_sum 0.5
klite_wal_fsync_duration_seconds_count 3
`

func TestParseScrape(t *testing.T) {
	got, err := parseScrape([]byte(scrapeSample))
	if err != nil {
		t.Fatal(err)
	}
	// 1 gauge + 2 counters + 3 buckets (+Inf included), sum and count.
	want := scrapeBody{bytes: len(scrapeSample), families: 3, samples: 8, partitions: 1000}
	if got != want {
		t.Errorf("parseScrape = %+v, want %+v", got, want)
	}
	noParts, err := parseScrape([]byte("# TYPE x counter\nx 1\n"))
	if err != nil || noParts.partitions != -1 || noParts.samples != 1 {
		t.Errorf("without klite_partitions: %+v, %v; want partitions -1, 1 sample", noParts, err)
	}
	for _, bad := range []string{"klite_partitions one\n", "# TYPE x counter\nx{le=\"1\" 1\n"} {
		if _, err := parseScrape([]byte(bad)); err == nil {
			t.Errorf("parseScrape(%q): want an error", bad)
		}
	}
}
