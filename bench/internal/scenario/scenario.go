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
	RecordSize  int           // value bytes per record
	Partitions  int           // partitions per topic
	Producers   int           // producer clients (one connection each)
	Consumers   int           // consumer clients in tail-fetch
	Acks        string        // "all", "1" or "0" for scenarios that do not fix it
	Linger      time.Duration // producer linger
	BatchBytes  int           // producer max batch bytes
	Compression string        // none, gzip, snappy, lz4, zstd
	Inflight    int           // max produce requests in flight per broker without idempotence
	Rate        float64       // records/s for produce-latency; 0 = half the measured acks=all peak
	Duration    time.Duration // measured time per run
	Warmup      time.Duration // unmeasured time before it
	IdleSettle  time.Duration // wait after ready before reading idle RSS
	RestartWAL  int64         // bytes to fill the WAL to before timing restarts
}

// Env is what a scenario run sees.
type Env struct {
	Cfg      Config
	Limits   limits.Result // measured this round
	Brokers  Launcher
	Progress *Progress
	Round    int // 1-based
	Rounds   int
	// PeakRecords is the acks=all produce peak of this round in records/s,
	// 0 when produce-acks-all has not run this round.
	PeakRecords float64
}

// Result is one run's figures.
type Result struct {
	Metrics []report.Metric
	Notes   []string
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

// Names lists the scenarios in the order "all" runs them. produce-acks-all
// comes before produce-latency, which paces itself at half its peak.
var Names = []string{"produce-acks-all", "produce-acks-1", "produce-latency", "tail-fetch", "idle-rss", "restart"}

// New returns a fresh scenario by name.
func New(name string) (Scenario, error) {
	switch name {
	case "produce-acks-all":
		return &produceThroughput{name: name, acks: "all"}, nil
	case "produce-acks-1":
		return &produceThroughput{name: name, acks: "1"}, nil
	case "produce-latency":
		return &produceLatency{}, nil
	case "tail-fetch":
		return &tailFetch{}, nil
	case "idle-rss":
		return &idleRSS{}, nil
	case "restart":
		return &restart{}, nil
	}
	return nil, fmt.Errorf("scenario: unknown %q (have %s)", name, strings.Join(Names, ", "))
}

// Parse turns "all" or a comma list into scenario names in run order.
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
		if !slices.Contains(Names, n) {
			return nil, fmt.Errorf("scenario: unknown %q (have %s, or all)", n, strings.Join(Names, ", "))
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
