// Package metrics serves klite's operations endpoint: Prometheus metrics
// (/metrics, with OpenMetrics when the scraper asks), liveness (/livez)
// and readiness (/readyz). It is the only package that imports
// prometheus/client_golang: the core packages keep plain atomic counters
// and histograms (internal/hist) and expose snapshots, and the collector
// here reads them at scrape time, so the produce and fetch paths pay for
// no metrics library, no lock and no allocation.
//
// Label cardinality is bounded: per topic (records, bytes), per API and
// Kafka error name (requests), per close reason (connections), per group
// (members, state), per group and topic (klite_group_topic_lag); only
// klite_group_lag is per partition, and Config.MaxLagSeries caps its
// series (past the cap, lag is in klite_group_topic_lag only).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/group"
	"github.com/klite/klite/internal/hist"
	"github.com/klite/klite/kafka"
	"github.com/klite/klite/netloop"
	"github.com/klite/klite/storage"
	"github.com/klite/klite/tier"
)

// DefaultMaxLagSeries is Config.MaxLagSeries' default.
const DefaultMaxLagSeries = 10_000

// groupsTimeout bounds the wait for the group coordinator during a scrape.
const groupsTimeout = 2 * time.Second

// Config configures a Server.
type Config struct {
	// Addr is host:port to listen on (port 0 picks one; see Server.Addr).
	Addr string
	// MaxLagSeries caps klite_group_lag series per scrape; 0 means
	// DefaultMaxLagSeries, negative means none (per group and topic only).
	MaxLagSeries int
	Logger       zerolog.Logger
}

// Sources are the components the collector reads; set once they exist
// (Server.SetSources). Tier parts are nil without a bucket.
type Sources struct {
	Store    *storage.Store
	Net      *netloop.Server
	Kafka    *kafka.Handler
	Groups   *group.Coordinator
	Uploader *tier.Uploader
	Reader   *tier.Reader
}

// Server is the HTTP endpoint. Readiness starts false with a reason
// (SetNotReady) and turns true with SetReady.
type Server struct {
	cfg    Config
	log    zerolog.Logger
	reg    *prometheus.Registry
	ln     net.Listener
	srv    *http.Server
	src    atomic.Pointer[Sources]
	reason atomic.Pointer[string] // nil: ready
}

// New listens on cfg.Addr and returns the server, not yet serving.
func New(cfg Config) (*Server, error) {
	if cfg.MaxLagSeries == 0 {
		cfg.MaxLagSeries = DefaultMaxLagSeries
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", cfg.Addr, err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With().Str("component", "metrics").Logger(), reg: prometheus.NewRegistry(), ln: ln}
	s.SetNotReady("starting")
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &collector{s: s})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true, // only when the scraper's Accept asks for it
		ErrorLog:          logAdapter{s.log},
		ErrorHandling:     promhttp.ContinueOnError,
	}))
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", s.readyz)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves in the background until Close.
func (s *Server) Serve() {
	s.log.Info().Str("addr", s.ln.Addr().String()).Msg("http serving /metrics /livez /readyz")
	go func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("http server")
		}
	}()
}

// Close stops serving (a scrape in progress is cut).
func (s *Server) Close() error { return s.srv.Close() }

// SetSources gives the collector its components (replacing any before).
func (s *Server) SetSources(src Sources) { s.src.Store(&src) }

// SetNotReady makes /readyz answer 503 with reason.
func (s *Server) SetNotReady(reason string) { s.reason.Store(&reason) }

// SetReady makes /readyz answer 200 while the store is healthy.
func (s *Server) SetReady() { s.reason.Store(nil) }

// readyz is 200 "ok" once started and while every WAL shard is writable,
// else 503 with the reason.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	why := ""
	if r := s.reason.Load(); r != nil {
		why = *r
	} else if src := s.src.Load(); src != nil && src.Store != nil {
		if err := src.Store.Health(); err != nil {
			why = err.Error()
		}
	}
	if why != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(why + "\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

type logAdapter struct{ log zerolog.Logger }

func (l logAdapter) Println(v ...any) { l.log.Warn().Msg(fmt.Sprint(v...)) }

// ---- collector ----

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dRecordsIn  = desc("klite_topic_records_in_total", "Records appended to the topic (durable).", "topic")
	dBytesIn    = desc("klite_topic_bytes_in_total", "Record batch bytes appended to the topic (durable).", "topic")
	dBytesOut   = desc("klite_topic_bytes_out_total", "Record batch bytes read from the topic for fetches.", "topic")
	dRequests   = desc("klite_requests_total", "Requests answered, by API and Kafka error (none: no error).", "api", "error")
	dReqDur     = desc("klite_request_duration_seconds", "Time from a request's arrival to its response written.", "api")
	dFsync      = desc("klite_wal_fsync_duration_seconds", "WAL fdatasync durations.")
	dWALBytes   = desc("klite_wal_bytes", "Bytes of WAL segment files.")
	dWALMax     = desc("klite_wal_max_bytes", "The WAL size cap (-wal-max-bytes; 0: none).")
	dBatch      = desc("klite_wal_group_commit_requests", "Append requests acknowledged by one WAL fdatasync (group commit size).")
	dShardsDown = desc("klite_wal_shards_failed", "WAL shards offline after a disk error.")
	dConns      = desc("klite_connections", "Client connections open.")
	dOpened     = desc("klite_connections_opened_total", "Client connections accepted (refused ones included).")
	dClosed     = desc("klite_connections_closed_total", "Client connections closed, by reason.", "reason")
	dLag        = desc("klite_group_lag", "High watermark minus the group's committed offset.", "group", "topic", "partition")
	dTopicLag   = desc("klite_group_topic_lag", "klite_group_lag summed over the topic's partitions.", "group", "topic")
	dLagDropped = desc("klite_group_lag_series_dropped", "klite_group_lag series left out by the series cap this scrape.")
	dMembers    = desc("klite_group_members", "Members of the group.", "group")
	dGroupState = desc("klite_group_state", "1 for the group's current state.", "group", "state")
	dParts      = desc("klite_partitions", "Partitions.")
	dTopics     = desc("klite_topics", "Topics.")
	dUpBytes    = desc("klite_s3_uploaded_bytes_total", "Bytes of objects uploaded to the bucket.")
	dUpObjects  = desc("klite_s3_uploaded_objects_total", "Objects uploaded to the bucket.")
	dUpErrors   = desc("klite_s3_upload_errors_total", "Partition uploads that failed after their retries (one per partition per upload round).")
	dUpLag      = desc("klite_s3_upload_lag_seconds", "Age of the oldest acknowledged record not yet in the bucket (by record timestamp).")
	dColdBytes  = desc("klite_s3_cold_read_bytes_total", "Bytes read from the bucket for fetches.")
	dHits       = desc("klite_s3_cache_hits_total", "Cold reads served from the cache.")
	dMisses     = desc("klite_s3_cache_misses_total", "Cold reads that went to the bucket.")
	dReady      = desc("klite_ready", "1 when /readyz answers 200.")
	dCompRuns   = desc("klite_compaction_cleanings_total", "Partition cleanings by log compaction.")
	dCompRead   = desc("klite_compaction_read_bytes_total", "Record batch bytes read by log compaction as it reads them (its I/O).")
	dCompIn     = desc("klite_compaction_cleaned_bytes_total", "Record batch bytes cleaned: the input of finished cleanings.")
	dCompOut    = desc("klite_compaction_written_bytes_total", "Record batch bytes written to compacted files.")
	dCompRemove = desc("klite_compaction_removed_records_total", "Records removed by log compaction.")
	dCompMarker = desc("klite_compaction_removed_markers_total", "Transaction markers removed by log compaction (also counted in klite_compaction_removed_records_total).")
	dCompTier   = desc("klite_compaction_tiered_cleanings_total", "Partition cleanings of tiered data in the bucket (-s3-bucket; counted in klite_compaction_cleanings_total too).")
	dCompTierP  = desc("klite_compaction_tiered_put_bytes_total", "Bytes of compacted objects put in the bucket by finished cleanings.")
	dCompTierD  = desc("klite_compaction_tiered_deleted_bytes_total", "Bytes of bucket objects deleted after cleanings replaced them.")

	dFetchSess  = desc("klite_fetch_sessions", "Fetch sessions cached (KIP-227).")
	dFetchCost  = desc("klite_fetch_session_cache_partitions", "Fetch session cache use in cached-partition units (-max-fetch-session-cache-partitions).")
	dFetchKind  = desc("klite_fetch_session_requests_total", "Fetch v7+ requests by session use: sessionless (epoch -1), full (epoch 0, opens a session), incremental (epoch > 0).", "kind")
	dFetchEvict = desc("klite_fetch_session_evictions_total", "Fetch sessions evicted from the cache to make room.")

	dSASLChecks = desc("klite_sasl_checks_total", "SASL authentications finished, by mechanism and result (ok, failed).", "mechanism", "result")
	dSASLQueued = desc("klite_sasl_verifications_queued", "Password checks waiting for their turn (-sasl-max-queued-verifications).")
	dSASLDrop   = desc("klite_sasl_verifications_dropped_total", "Queued password checks dropped unchecked, by reason: closed (the connection had closed), overflow (the queue was full).", "reason")

	allDescs = []*prometheus.Desc{dRecordsIn, dBytesIn, dBytesOut, dRequests, dReqDur, dFsync, dWALBytes, dWALMax, dBatch,
		dShardsDown, dConns, dOpened, dClosed, dLag, dTopicLag, dLagDropped, dMembers, dGroupState, dParts, dTopics,
		dUpBytes, dUpObjects, dUpErrors, dUpLag, dColdBytes, dHits, dMisses, dReady, dCompRuns, dCompRead, dCompIn, dCompOut, dCompRemove, dCompMarker, dCompTier, dCompTierP, dCompTierD,
		dFetchSess, dFetchCost, dFetchKind, dFetchEvict, dSASLChecks, dSASLQueued, dSASLDrop}
)

type collector struct{ s *Server }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ready := 0.0
	if c.s.reason.Load() == nil {
		ready = 1
	}
	src := c.s.src.Load()
	if src == nil {
		ch <- gauge(dReady, 0)
		return
	}
	if src.Store != nil && ready == 1 && src.Store.Health() != nil {
		ready = 0
	}
	ch <- gauge(dReady, ready)
	if src.Store != nil {
		collectStore(ch, src, c.s.cfg.MaxLagSeries)
	}
	if src.Kafka != nil {
		collectRequests(ch, src.Kafka.RequestMetrics())
		sm := src.Kafka.SASLMetrics()
		for k, n := range sm.Checks {
			ch <- counter(dSASLChecks, float64(n), k[0], k[1])
		}
		ch <- gauge(dSASLQueued, float64(sm.Queued))
		ch <- counter(dSASLDrop, float64(sm.Dropped), "closed")
		ch <- counter(dSASLDrop, float64(sm.Overflowed), "overflow")
		fm := src.Kafka.FetchSessionMetrics()
		ch <- gauge(dFetchSess, float64(fm.Sessions))
		ch <- gauge(dFetchCost, float64(fm.Cost))
		ch <- counter(dFetchKind, float64(fm.Sessionless), "sessionless")
		ch <- counter(dFetchKind, float64(fm.Full), "full")
		ch <- counter(dFetchKind, float64(fm.Incremental), "incremental")
		ch <- counter(dFetchEvict, float64(fm.Evicted))
	}
	if src.Net != nil {
		st := src.Net.Stats()
		ch <- gauge(dConns, float64(st.ConnsOpen))
		ch <- counter(dOpened, float64(st.ConnsAccepted))
		for i, n := range st.Closes {
			ch <- counter(dClosed, float64(n), netloop.CloseReason(i).String())
		}
	}
	if src.Uploader != nil {
		st := src.Uploader.Stats()
		ch <- counter(dUpBytes, float64(st.Bytes))
		ch <- counter(dUpObjects, float64(st.Objects))
		ch <- counter(dUpErrors, float64(st.Errors))
	}
	if src.Reader != nil {
		st := src.Reader.Stats()
		ch <- counter(dColdBytes, float64(st.GetBytes))
		ch <- counter(dHits, float64(st.Hits))
		ch <- counter(dMisses, float64(st.Misses))
	}
}

type topicSums struct {
	recordsIn, bytesIn, bytesOut int64
	hwm                          []int64 // by partition
}

func collectStore(ch chan<- prometheus.Metric, src *Sources, maxLag int) {
	st := src.Store
	topics := make(map[string]*topicSums, st.TopicCount())
	parts := 0
	var oldestPending int64 // Unix ms; 0: nothing pending
	st.EachPartition(func(m *storage.PartitionMetrics) {
		parts++
		t := topics[m.Topic]
		if t == nil {
			t = &topicSums{}
			topics[m.Topic] = t
		}
		t.recordsIn += m.RecordsIn
		t.bytesIn += m.BytesIn
		t.bytesOut += m.BytesOut
		for int32(len(t.hwm)) <= m.Partition {
			t.hwm = append(t.hwm, -1)
		}
		t.hwm[m.Partition] = m.HighWatermark
		if p := m.UploadPendingSince; p > 0 && (oldestPending == 0 || p < oldestPending) {
			oldestPending = p
		}
	})
	for name, t := range topics {
		ch <- counter(dRecordsIn, float64(t.recordsIn), name)
		ch <- counter(dBytesIn, float64(t.bytesIn), name)
		ch <- counter(dBytesOut, float64(t.bytesOut), name)
	}
	ch <- gauge(dParts, float64(parts))
	ch <- gauge(dTopics, float64(len(topics)))
	if src.Uploader != nil {
		lag := 0.0
		if oldestPending > 0 {
			lag = max(float64(time.Now().UnixMilli()-oldestPending)/1e3, 0)
		}
		ch <- gauge(dUpLag, lag)
	}

	stats := st.Stats()
	ch <- gauge(dWALBytes, float64(stats.WALBytes))
	ch <- gauge(dWALMax, float64(st.MaxWALBytes()))
	ch <- gauge(dShardsDown, float64(stats.FailedShards))
	cs := st.CompactionStats()
	ch <- counter(dCompRuns, float64(cs.Runs))
	ch <- counter(dCompRead, float64(cs.BytesRead))
	ch <- counter(dCompIn, float64(cs.BytesIn))
	ch <- counter(dCompOut, float64(cs.BytesOut))
	ch <- counter(dCompRemove, float64(cs.RecordsRemoved))
	ch <- counter(dCompMarker, float64(cs.MarkersRemoved))
	ch <- counter(dCompTier, float64(cs.TieredRuns))
	ch <- counter(dCompTierP, float64(cs.TieredBytesPut))
	ch <- counter(dCompTierD, float64(cs.TieredBytesDeleted))
	wm := st.WALMetrics()
	ch <- histogram(dFsync, wm.Fsync, 1e-9)
	ch <- histogram(dBatch, wm.Batch, 1)

	if src.Groups != nil {
		collectGroups(ch, src.Groups, topics, maxLag)
	}
}

func collectGroups(ch chan<- prometheus.Metric, gc *group.Coordinator, topics map[string]*topicSums, maxLag int) {
	ctx, cancel := context.WithTimeout(context.Background(), groupsTimeout)
	defer cancel()
	for _, g := range gc.Metrics(ctx) {
		ch <- gauge(dMembers, float64(g.Members), g.Name)
		ch <- gauge(dGroupState, 1, g.Name, g.State)
	}
	type gt struct{ group, topic string }
	sums := map[gt]int64{}
	series, dropped := 0, 0
	// Lags are gathered under the offsets log's read lock and sent after.
	type lagRow struct {
		group, topic string
		part         int32
		lag          int64
	}
	var rows []lagRow
	gc.EachCommitted(func(group, topic string, part int32, offset int64) {
		t := topics[topic]
		if t == nil || part < 0 || int(part) >= len(t.hwm) || t.hwm[part] < 0 {
			return // the topic or partition is gone
		}
		lag := max(t.hwm[part]-offset, 0)
		sums[gt{group, topic}] += lag
		if maxLag >= 0 && series < maxLag {
			series++
			rows = append(rows, lagRow{group, topic, part, lag})
		} else {
			dropped++
		}
	})
	for _, r := range rows {
		ch <- gauge(dLag, float64(r.lag), r.group, r.topic, strconv.Itoa(int(r.part)))
	}
	for k, v := range sums {
		ch <- gauge(dTopicLag, float64(v), k.group, k.topic)
	}
	ch <- gauge(dLagDropped, float64(dropped))
}

func collectRequests(ch chan<- prometheus.Metric, rm kafka.RequestMetrics) {
	errs := map[int16]uint64{}
	for k, n := range rm.Errors {
		errs[k[0]] += n
		ch <- counter(dRequests, float64(n), kmsg.NameForKey(k[0]), errName(k[1]))
	}
	for key, h := range rm.Latency {
		api := kmsg.NameForKey(key)
		ch <- counter(dRequests, float64(h.Count()-errs[key]), api, "none")
		ch <- histogram(dReqDur, h, 1e-9, api)
	}
}

func errName(code int16) string {
	var ke *kerr.Error
	if errors.As(kerr.ErrorForCode(code), &ke) {
		return ke.Message
	}
	return strconv.Itoa(int(code))
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

// histogram converts s (values in some unit) to a Prometheus histogram,
// scale turning the unit into the metric's (1e-9: nanoseconds to seconds).
func histogram(d *prometheus.Desc, s hist.Snapshot, scale float64, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(s.Bounds))
	var cum uint64
	for i, b := range s.Bounds {
		cum += s.Counts[i]
		buckets[float64(b)*scale] = cum
	}
	return prometheus.MustNewConstHistogram(d, s.Count(), float64(s.Sum)*scale, buckets, labels...)
}
