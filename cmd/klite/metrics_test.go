package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/tier/s3fault"
)

// batchOverheadBytes is a v2 record batch's header: what klite stores
// beyond the records kgo's produce hook counts.
const batchOverheadBytes = 61

// httpAddr returns the operations endpoint's address from the broker's
// log (its latest run).
func (b *broker) httpAddr() string {
	b.t.Helper()
	a := b.lastHTTPAddr()
	if a == "" {
		b.t.Fatal("no http serving line in the broker's log")
	}
	return a
}

// lastHTTPAddr is httpAddr without failing: "" when no run logged one.
// Safe from any goroutine.
func (b *broker) lastHTTPAddr() string {
	lines := strings.Split(b.log.String(), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var m struct {
			Component, Message, Addr string
		}
		if json.Unmarshal([]byte(lines[i]), &m) == nil && m.Component == "metrics" && strings.HasPrefix(m.Message, "http serving") {
			return m.Addr
		}
	}
	return ""
}

// scrape fetches /metrics in the text format and parses it with
// prometheus/common's parser.
func scrape(t testing.TB, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricValue is the value of the series of family name whose labels
// include labels (name=value pairs); ok false when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func mustValue(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metricValue(fams, name, labels...)
	if !ok {
		t.Fatalf("no %s%v in the scrape", name, labels)
	}
	return v
}

// httpStatus returns the status code and body of GET addr+path.
func httpStatus(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// String is everything logged so far.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// produceHook sums what kgo reports as written, per topic.
type produceHook struct{ records, bytes atomic.Int64 }

func (h *produceHook) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	h.records.Add(int64(m.NumRecords))
	h.bytes.Add(int64(m.CompressedBytes + batchOverheadBytes))
}

// TestMetrics scrapes the real binary after a known load: records and
// bytes per topic equal what was produced and fetched, the Produce and
// Fetch histograms have counts, errors are counted by name, and lag is the
// real lag of a group (without members) that committed part of a topic.
func TestMetrics(t *testing.T) {
	b := startBroker(t, "-http-addr", "127.0.0.1:0")
	addr := b.httpAddr()
	if code, _ := httpStatus(t, addr, "/livez"); code != http.StatusOK {
		t.Fatalf("/livez %d", code)
	}
	if code, body := httpStatus(t, addr, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d %q after ready", code, body)
	}

	const topic, other, grp = "metrics-a", "metrics-b", "metrics-group"
	hook := &produceHook{}
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.WithHooks(hook))
	adm := kadm.NewClient(cl)
	createTopic(t, adm, topic, 2)
	createTopic(t, adm, other, 1)
	ctx := testContext(t, time.Minute)
	const perPart = 100
	for i := 0; i < 2*perPart; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(fmt.Sprintf("value %d %s", i, strings.Repeat("x", i)))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// One fetch of everything, raw, so the bytes on the wire are known.
	fr := kmsg.NewPtrFetchRequest()
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	fr.Version, fr.MaxWaitMillis, fr.MaxBytes, fr.ReplicaID = 13, 100, 64<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, td[topic].ID
	for p := int32(0); p < 2; p++ {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, 0, 32<<20
		ft.Partitions = append(ft.Partitions, fp)
	}
	fr.Topics = append(fr.Topics, ft)
	resp, err := fr.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var fetched int64
	for _, tr := range resp.Topics {
		for _, pr := range tr.Partitions {
			if pr.ErrorCode != 0 {
				t.Fatalf("fetch %s/%d: error %d", tr.Topic, pr.Partition, pr.ErrorCode)
			}
			fetched += int64(len(pr.RecordBatches))
		}
	}

	// A produce to a partition that does not exist: an error by name.
	pr := kmsg.NewPtrProduceRequest()
	pr.Version, pr.Acks, pr.TimeoutMillis = 9, -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = other
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition = 7
	pp.Records = []byte{0} // never read: the partition is checked first
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	presp, err := pr.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	// UNKNOWN_TOPIC_OR_PARTITION, or UNKNOWN_TOPIC_ID if kgo sent v13.
	perr, _ := kerr.ErrorForCode(presp.Topics[0].Partitions[0].ErrorCode).(*kerr.Error)
	if perr == nil {
		t.Fatal("produce to a missing partition succeeded")
	}

	// A group without members commits part of the topic.
	var commits kadm.Offsets
	commits.Add(kadm.Offset{Topic: topic, Partition: 0, At: 40})
	commits.Add(kadm.Offset{Topic: topic, Partition: 1, At: perPart})
	if r, err := adm.CommitOffsets(ctx, grp, commits); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}

	// netloop counts a request once its response is written, which may
	// be just after the client has read it.
	var fams map[string]*dto.MetricFamily
	waitFor(t, 10*time.Second, "the failed produce counted", func() bool {
		fams = scrape(t, addr)
		_, ok := metricValue(fams, "klite_requests_total", "api", "Produce", "error", perr.Message)
		return ok
	})
	if got, want := mustValue(t, fams, "klite_topic_records_in_total", "topic", topic), float64(hook.records.Load()); got != want || want != 2*perPart {
		t.Errorf("records in %v, produced %v (want %d)", got, want, 2*perPart)
	}
	if got, want := mustValue(t, fams, "klite_topic_bytes_in_total", "topic", topic), float64(hook.bytes.Load()); got != want {
		t.Errorf("bytes in %v, produced %v", got, want)
	}
	if got := mustValue(t, fams, "klite_topic_bytes_out_total", "topic", topic); got != float64(fetched) || fetched != hook.bytes.Load() {
		t.Errorf("bytes out %v, fetched %d (produced %d)", got, fetched, hook.bytes.Load())
	}
	if got := mustValue(t, fams, "klite_topic_records_in_total", "topic", other); got != 0 {
		t.Errorf("records in %s: %v", other, got)
	}
	for _, api := range []string{"Produce", "Fetch", "Metadata"} {
		if n := mustValue(t, fams, "klite_request_duration_seconds", "api", api); n == 0 {
			t.Errorf("%s latency histogram has no count", api)
		}
		if n := mustValue(t, fams, "klite_requests_total", "api", api, "error", "none"); n == 0 {
			t.Errorf("klite_requests_total{api=%q,error=none} is 0", api)
		}
	}
	if n := mustValue(t, fams, "klite_requests_total", "api", "Produce", "error", perr.Message); n != 1 {
		t.Errorf("Produce %s counted %v times, want 1", perr.Message, n)
	}
	for p, want := range map[string]float64{"0": perPart - 40, "1": 0} {
		if got := mustValue(t, fams, "klite_group_lag", "group", grp, "topic", topic, "partition", p); got != want {
			t.Errorf("lag of %s/%s: %v, want %v", topic, p, got, want)
		}
	}
	if got := mustValue(t, fams, "klite_group_topic_lag", "group", grp, "topic", topic); got != perPart-40 {
		t.Errorf("topic lag %v, want %d", got, perPart-40)
	}
	if got := mustValue(t, fams, "klite_group_members", "group", grp); got != 0 {
		t.Errorf("members %v", got)
	}
	if got := mustValue(t, fams, "klite_group_state", "group", grp, "state", "Empty"); got != 1 {
		t.Errorf("group state Empty %v", got)
	}
	if got := mustValue(t, fams, "klite_topics"); got != 2 {
		t.Errorf("topics %v", got)
	}
	if got := mustValue(t, fams, "klite_partitions"); got != 3 {
		t.Errorf("partitions %v", got)
	}
	if n := mustValue(t, fams, "klite_wal_fsync_duration_seconds"); n == 0 {
		t.Error("fsync histogram has no count")
	}
	if n := mustValue(t, fams, "klite_wal_group_commit_requests"); n == 0 {
		t.Error("group commit histogram has no count")
	}
	if v := mustValue(t, fams, "klite_wal_bytes"); v <= 0 {
		t.Errorf("wal bytes %v", v)
	}
	if v := mustValue(t, fams, "klite_connections"); v < 1 {
		t.Errorf("connections %v", v)
	}
	if v := mustValue(t, fams, "klite_connections_opened_total"); v < 1 {
		t.Errorf("connections opened %v", v)
	}
	if _, ok := metricValue(fams, "klite_connections_closed_total", "reason", "idle"); !ok {
		t.Error("no klite_connections_closed_total{reason=idle}")
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "klite_ready"} {
		mustValue(t, fams, name)
	}

	// OpenMetrics when asked for.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	om, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(om.Body)
	om.Body.Close()
	if ct := om.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.HasSuffix(string(body), "# EOF\n") {
		t.Errorf("OpenMetrics asked for, got %q ending %q", ct, body[max(0, len(body)-20):])
	}
	b.stop()
	b.checkLog()
}

// TestSlowRequestLog: with a tiny -slow-request every request is slow; a
// Warn names the API, client id and address, and the log is rate-limited.
func TestSlowRequestLog(t *testing.T) {
	b := startBroker(t, "-slow-request", "1ns")
	cl := newFranz(t, b.addr, kgo.ClientID("slow-client"))
	adm := kadm.NewClient(cl)
	for i := 0; i < 20; i++ {
		if _, err := adm.ListTopics(testContext(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "a slow request line", func() bool {
		return b.log.contains(`"message":"slow request"`) && b.log.contains(`"client_id":"slow-client"`)
	})
	n := strings.Count(b.log.String(), `"message":"slow request"`)
	if n >= 20 {
		t.Errorf("%d slow-request lines for 20+ requests within seconds: not rate-limited", n)
	}
	if !b.log.contains(`"api":"Metadata"`) && !b.log.contains(`"api":"ApiVersions"`) {
		t.Error("slow request line without the API name")
	}
	b.stop()
}

// TestMetricsTiered: the S3 metrics move with uploads, failed uploads and
// cold reads, and /readyz is 503 while a restore from the bucket is held
// up, 200 once it has finished.
func TestMetricsTiered(t *testing.T) {
	endpoint := startS3(t)
	proxy, err := s3fault.New(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Release(); proxy.Close() })
	b := startBroker(t, tierFlags(proxy.URL(), "-http-addr", "127.0.0.1:0")...)
	addr := b.httpAddr()
	cl := newFranz(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	const topic, n = "metrics-tiered", 30_000 // about 3 segments
	createTopic(t, adm, topic, 1)
	produceValues(t, cl, topic, 0, n, time.Now())

	waitUploaded(t, bucket(t, endpoint), adm, topic, 2*time.Minute)
	fams := scrape(t, addr)
	objects, bytes := mustValue(t, fams, "klite_s3_uploaded_objects_total"), mustValue(t, fams, "klite_s3_uploaded_bytes_total")
	if in := mustValue(t, fams, "klite_topic_bytes_in_total", "topic", topic); objects == 0 || bytes < in {
		t.Errorf("after uploading all %v bytes appended: %v objects, %v bytes", in, objects, bytes)
	}
	waitFor(t, 2*time.Minute, "uploaded segments to leave the WAL", func() bool {
		return localStartOffset(t, cl, topic, 0) > 0
	})
	consumeN(t, b.addr, topic, map[int32]kgo.Offset{0: kgo.NewOffset().AtStart()}, n)
	fams = scrape(t, addr)
	if v := mustValue(t, fams, "klite_s3_cold_read_bytes_total"); v == 0 {
		t.Error("no cold read bytes after reading uploaded data")
	}
	if v := mustValue(t, fams, "klite_s3_cache_misses_total"); v == 0 {
		t.Error("no cache misses after reading uploaded data")
	}
	mustValue(t, fams, "klite_s3_cache_hits_total")

	// The bucket refuses writes: errors count, the upload lag grows, and
	// both settle once it takes them again.
	proxy.SetMode(s3fault.SlowDown)
	produceValues(t, cl, topic, n, 100, time.Now())
	waitFor(t, time.Minute, "upload errors and upload lag", func() bool {
		fams = scrape(t, addr)
		errs, _ := metricValue(fams, "klite_s3_upload_errors_total")
		lag, _ := metricValue(fams, "klite_s3_upload_lag_seconds")
		return errs > 0 && lag > 0
	})
	proxy.SetMode(s3fault.Pass)
	waitFor(t, time.Minute, "the upload lag back to 0", func() bool {
		lag, ok := metricValue(scrape(t, addr), "klite_s3_upload_lag_seconds")
		return ok && lag == 0
	})

	// A restore on an empty disk, held at the bucket: /readyz says so
	// (the proxy holds every request, so the broker cannot get past its
	// first one until the poller has seen the 503).
	b.stop()
	if err := os.RemoveAll(b.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	proxy.Hold()
	seen := make(chan string, 1)
	go func() {
		defer proxy.Release()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if strings.Count(b.log.String(), "http serving") >= 2 {
				a := b.lastHTTPAddr()
				if resp, err := http.Get("http://" + a + "/readyz"); err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "restore") {
						seen <- string(body)
						return
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		seen <- ""
	}()
	b.restart()
	why := <-seen
	if !strings.Contains(why, "restore") {
		t.Errorf("/readyz during the restore: %q, want a 503 naming the restore", why)
	}
	if !b.log.contains("restored from the bucket") {
		t.Fatal("no restore logged")
	}
	if code, body := httpStatus(t, b.httpAddr(), "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the restore: %d %q", code, body)
	}
	b.stop()
}
