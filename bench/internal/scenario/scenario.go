// Package scenario holds the benchmark's named scenarios and the load
// generator they share (franz-go clients producing and consuming). A scenario
// runs once per round; the harness repeats rounds and the report takes
// medians. Scenarios get their broker from a Launcher: a fresh klite on an
// empty WAL per run, or an external Kafka-compatible broker.
package scenario

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/klite/klite/bench/internal/limits"
	"github.com/klite/klite/bench/internal/report"
)

// Config is the load shape shared by scenarios; the harness fills it from flags.
type Config struct {
	RecordSize   int           // value bytes per record
	Partitions   int           // partitions per topic
	Producers    int           // producer clients (one connection each)
	Consumers    int           // consumer clients in tail-fetch
	Acks         string        // "all", "1" or "0" for scenarios that do not fix it
	Linger       time.Duration // producer linger
	BatchBytes   int           // producer max batch bytes
	Compression  string        // none, gzip, snappy, lz4, zstd
	Inflight     int           // max produce requests in flight per broker without idempotence
	Rate         float64       // records/s for produce-latency; 0 = half the measured acks=all peak
	Duration     time.Duration // measured time per run
	Warmup       time.Duration // unmeasured time before it
	IdleSettle   time.Duration // wait after ready before reading idle RSS
	RestartWAL   int64         // bytes to fill the WAL to before timing restarts
	Backlog      int64         // catch-up fetch: record bytes to read from the start
	Conns        int           // connections: idle client connections to hold (0: none)
	ConnsPerProc int           // connections: most connections per holder process
	TLSConns     int           // security-tls-idle: idle connections to hold, plaintext and TLS

	// Tiering (tier-* scenarios, S3 on a local versitygw).
	TierBacklog      int64    // tier-catchup: record bytes to offload and read back
	TierRecover      []int64  // tier-recover: bucket sizes to recover from
	TierSegmentBytes int64    // -segment-bytes of every tier-* broker, with and without S3
	TierHotBytes     int64    // -wal-hot-bytes of the brokers with S3
	TierArgs         []string // more klite flags for the brokers with S3

	// The scenarios on the long-lived broker (produce-sweep, produce-steady,
	// produce-aged-cpu).
	AgeBytes       int64         // record bytes the long-lived broker takes (acks=all) before the first of them measures
	SweepRates     []float64     // produce-sweep: target rates in records/s, ascending
	SweepOn        bool          // after the last rate, go on in steps of the last difference until a step fails
	SweepMax       float64       // produce-sweep: no step above this rate
	SweepStepTime  time.Duration // measured time per sweep step (after Warmup)
	SweepP99       time.Duration // a step within this p99 (and kept up) counts toward the sustainable rate
	SweepFailP99   time.Duration // a step over this p99 cannot keep up: the sweep stops
	SteadyTime     time.Duration // produce-steady: measured time
	SteadyRate     float64       // produce-steady: records/s; 0 = half the sustainable rate of the round's sweep
	LongLivedScope string        // "round", "run" or "off": see LongLived

	Quick bool // -quick: scenarios with probes of their own shorten them
}

// Env is what a scenario run sees.
type Env struct {
	Cfg      Config
	Limits   limits.Result // measured this round
	Brokers  Launcher
	Progress *Progress
	// ScratchDir is where the WAL lives: probes a scenario runs itself
	// (the loaded fdatasync probe) write their scratch files here.
	ScratchDir string
	Round      int // 1-based
	Rounds     int
	// PeakRecords is the acks=all produce peak of this round in records/s,
	// 0 when produce-acks-all has not run this round.
	PeakRecords float64
	// LongLived hands out the broker the long-lived scenarios share.
	LongLived *LongLived
	// Sustainable is produce-sweep's sustainable rate of this round in
	// records/s; SweepRan says whether it ran (Sustainable 0: no step held).
	Sustainable float64
	SweepRan    bool
	// FreshCPUPerGB is the broker CPU-s/GB of this round's fresh-broker
	// produce-acks-all and produce-acks-1, by acks ("all", "1").
	FreshCPUPerGB map[string]float64
}

// Result is one run's figures.
type Result struct {
	Metrics []report.Metric
	Notes   []string
	Series  []report.Series // figures over time within the run, for charts
}

// Scenario is one named benchmark.
type Scenario interface {
	Name() string
	// Describe says what the scenario measures, for the report.
	Describe(Config) string
	// Settings are the parameters the scenario used, for the report.
	Settings(Config) []report.KV
	// Run measures once. A scenario may keep state between runs (restart
	// keeps its filled WAL); Close releases it.
	Run(ctx context.Context, env *Env) (Result, error)
	Close() error
}

// registry is every scenario in the order "all" runs them, one line each.
// produce-acks-all comes before produce-latency, which paces itself at
// fractions of its peak. To add a scenario, add its line here.
// longLived marks the scenarios that run on Env.LongLived's shared broker;
// they come after produce-acks-all and produce-acks-1, whose fresh-broker
// CPU per GB produce-aged-cpu compares with, and after produce-sweep, whose
// sustainable rate produce-steady runs at half of.
var registry = []struct {
	name      string
	new       func() Scenario
	longLived bool
}{
	{"produce-acks-all", func() Scenario { return &produceThroughput{name: "produce-acks-all", acks: "all"} }, false},
	{"produce-acks-1", func() Scenario { return &produceThroughput{name: "produce-acks-1", acks: "1"} }, false},
	{"produce-100b", func() Scenario { return &produceThroughput{name: "produce-100b", acks: "all", recordSize: 100} }, false},
	{"produce-10k", func() Scenario { return &produceThroughput{name: "produce-10k", acks: "all", recordSize: 10 << 10} }, false},
	{"produce-lz4", func() Scenario { return &produceThroughput{name: "produce-lz4", acks: "all", compression: "lz4"} }, false},
	{"produce-zstd", func() Scenario { return &produceThroughput{name: "produce-zstd", acks: "all", compression: "zstd"} }, false},
	{"produce-latency", func() Scenario { return &produceLatency{} }, false},
	{"produce-sweep", func() Scenario { return &produceSweep{} }, true},
	{"produce-steady", func() Scenario { return &produceSteady{} }, true},
	{"produce-aged-cpu", func() Scenario { return &agedCPU{} }, true},
	{"tail-fetch", func() Scenario { return &tailFetch{} }, false},
	{"catchup-fetch", func() Scenario { return &catchupFetch{} }, false},
	{"fetch-sessions", func() Scenario { return &fetchSessionSavings{} }, false},
	{"partitions", func() Scenario { return &scaleSweep{name: "partitions", counts: []int{1, 100, 1000}} }, false},
	{"producers", func() Scenario { return &scaleSweep{name: "producers", counts: []int{1, 16, 64}} }, false},
	{"connections", func() Scenario { return &connScale{} }, false},
	{"group-rebalance", func() Scenario { return &groupRebalance{} }, false},
	{"group-commit", func() Scenario { return &groupCommit{} }, false},
	{"group-consume", func() Scenario { return &groupConsume{} }, false},
	{"idle-rss", func() Scenario { return &idleRSS{} }, false},
	{"hostile-memory", func() Scenario { return &hostileMemory{} }, false},
	{"metadata-scale", func() Scenario { return &metadataScale{} }, false},
	{"restart-1gb", func() Scenario { return &restart{name: "restart-1gb", walBytes0: 1e9} }, false},
	{"restart", func() Scenario { return &restart{name: "restart"} }, false},
	{"security-tls", func() Scenario { return &secTLS{} }, false},
	{"security-tls-idle", func() Scenario { return &secTLSIdle{} }, false},
	{"security-sasl", func() Scenario { return &secSASL{} }, false},
	{"security-acl", func() Scenario { return &secACL{} }, false},
	{"security-plain-flood", func() Scenario { return &secPlainFlood{} }, false},
	{"txn-produce", func() Scenario { return &txnProduce{} }, false},
	{"txn-fetch", func() Scenario { return &txnFetch{} }, false},
	{"metrics-produce", func() Scenario { return &metricsProduce{} }, false},
	{"metrics-scrape", func() Scenario { return &metricsScrape{} }, false},
	{"compaction", func() Scenario { return &compactionBench{} }, false},
	{"compaction-s3", func() Scenario { return &compactionS3{} }, false},
	{"tier-catchup", func() Scenario { return &tierCatchup{} }, false},
	{"tier-produce", func() Scenario { return &tierProduce{} }, false},
	{"tier-recover", func() Scenario { return &tierRecover{} }, false},
}

// Groups name sets of scenarios for -scenario: a group runs every scenario
// whose name starts with its prefix.
var Groups = map[string]string{"tier": "tier-", "security": "security-", "txn": "txn-", "metrics": "metrics-"}

// Names lists the scenarios in the order "all" runs them.
var Names = func() []string {
	var ns []string
	for _, r := range registry {
		ns = append(ns, r.name)
	}
	return ns
}()

// OnLongLived says whether the named scenario runs on the long-lived broker.
func OnLongLived(name string) bool {
	for _, r := range registry {
		if r.name == name {
			return r.longLived
		}
	}
	return false
}

// New returns a fresh scenario by name.
func New(name string) (Scenario, error) {
	for _, r := range registry {
		if r.name == name {
			return r.new(), nil
		}
	}
	return nil, fmt.Errorf("scenario: unknown %q (have %s)", name, strings.Join(Names, ", "))
}

// Parse turns "all" or a comma list of names and groups into scenario names
// in run order.
func Parse(list string) ([]string, error) {
	if strings.TrimSpace(list) == "all" {
		return slices.Clone(Names), nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if prefix, ok := Groups[n]; ok {
			for _, name := range Names {
				if strings.HasPrefix(name, prefix) {
					want[name] = true
				}
			}
			continue
		}
		if !slices.Contains(Names, n) {
			return nil, fmt.Errorf("scenario: unknown %q (have %s, or all, or the groups tier, security, txn and metrics)", n, strings.Join(Names, ", "))
		}
		want[n] = true
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("scenario: none selected")
	}
	var out []string
	for _, n := range Names {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// Limits as report.Limit values in the unit of the metric they bound.
func diskSeqWrite(l limits.Result) report.Limit {
	return report.Limit{Key: report.LimitDiskSeqWrite, Label: "disk seq write", Value: l.SeqWriteBs}
}

func loopback(l limits.Result) report.Limit {
	return report.Limit{Key: report.LimitLoopback, Label: "loopback TCP", Value: l.TCPBs}
}

func twiceFsyncP99(l limits.Result) report.Limit {
	return report.Limit{Key: report.Limit2xFsyncP99, Label: "2x disk p99 fdatasync", Value: 2 * l.FsyncP99.Seconds()}
}
