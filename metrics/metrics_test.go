package metrics

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/group"
	"github.com/klite/klite/storage"
)

// TestDashboardNames: every klite_ metric the Grafana dashboard queries is
// one this package exports, so a rename cannot leave the dashboard blank.
func TestDashboardNames(t *testing.T) {
	b, err := os.ReadFile("../dashboards/klite.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	known := map[string]bool{}
	for _, d := range allDescs {
		name := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String())[1]
		known[name] = true
	}
	re := regexp.MustCompile(`klite_[a-z0-9_]+`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range re.FindAllString(tg.Expr, -1) {
				n++
				base := m
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					base = strings.TrimSuffix(base, suf)
				}
				if !known[base] {
					t.Errorf("dashboard queries %s, which klite does not export", m)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no klite_ metric in the dashboard")
	}
}

// TestLagSeriesCap: with more committed partitions than MaxLagSeries,
// klite_group_lag stops at the cap, the dropped ones are counted and
// klite_group_topic_lag still sums every partition.
func TestLagSeriesCap(t *testing.T) {
	dir := t.TempDir()
	st, err := storage.Open(storage.Config{Dir: filepath.Join(dir, "wal"), Shards: 1, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateTopic("t", 8, nil); err != nil {
		t.Fatal(err)
	}
	gc, err := group.Open(group.Config{Dir: filepath.Join(dir, "groups"), Topics: func(name string) (int32, bool) {
		info, ok := st.Topic(name)
		return info.Partitions, ok
	}, TopicList: st.Topics, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.Generation = 8, "g", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	for p := int32(0); p < 8; p++ {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, 0
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	done := make(chan *kmsg.OffsetCommitResponse, 1)
	gc.OffsetCommit(req, func(r *kmsg.OffsetCommitResponse) { done <- r })
	if r := <-done; r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit: %d", r.Topics[0].Partitions[0].ErrorCode)
	}
	// Three records in partition 5: its lag is 3, the others' 0.
	ack := make(chan storage.AppendResult, 1)
	st.Append("t", 5, testBatch(3), true, func(r storage.AppendResult) { ack <- r })
	if r := <-ack; r.Err != nil {
		t.Fatal(r.Err)
	}

	s := &Server{cfg: Config{MaxLagSeries: 3}, reg: prometheus.NewRegistry()}
	s.SetSources(Sources{Store: st, Groups: gc})
	s.reg.MustRegister(&collector{s: s})
	fams, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if n := len(byName["klite_group_lag"].GetMetric()); n != 3 {
		t.Errorf("%d klite_group_lag series, want the cap 3", n)
	}
	if v := byName["klite_group_lag_series_dropped"].GetMetric()[0].GetGauge().GetValue(); v != 5 {
		t.Errorf("dropped %v, want 5", v)
	}
	if v := byName["klite_group_topic_lag"].GetMetric()[0].GetGauge().GetValue(); v != 3 {
		t.Errorf("topic lag %v, want 3", v)
	}
}

// TestReadyz: 503 with the reason until SetReady, then 200.
func TestReadyz(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s.Serve()
	defer s.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	s.SetNotReady("restoring from the bucket")
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "restoring") {
		t.Errorf("/readyz %d %q while not ready", code, body)
	}
	if code, _ := get("/livez"); code != http.StatusOK {
		t.Errorf("/livez %d", code)
	}
	s.SetReady()
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz %d %q when ready", code, body)
	}
}

// testBatch is a v2 record batch of n small records, built with kmsg.
func testBatch(n int) []byte {
	var recs []byte
	for i := 0; i < n; i++ {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte("v")}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // a one-byte varint length for these
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: int32(n - 1), FirstTimestamp: 1, MaxTimestamp: 1,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(n), Records: recs}
	raw := b.AppendTo(nil)
	b.Length = int32(len(raw) - 12)
	raw = b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}
