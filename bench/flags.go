package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klite/klite/bench/internal/scenario"
)

// Defaults per mode. The full run takes about 33-35 minutes on the 2-core
// reference machine, the quick run about 2.5: "all" runs about 17 loads of
// warmup+duration per round, plus the long-lived group (aging fill, sweep
// steps, the two-minute steady run: about 3 minutes a round), the security
// group (about 1.5 minutes a round), the txn group (about 45 s a round) and
// the metrics group (about 65 s a round).
type modeDefaults struct {
	runs         int
	duration     time.Duration
	warmup       time.Duration
	restartWAL   int64
	backlog      int64
	tierBacklog  int64
	tierRecover  []int64
	conns        int
	tlsConns     int
	fsyncSamples int
	fsyncTime    time.Duration
	seqBytes     int64
	seqTime      time.Duration
	tcpBytes     int64
	out          string
	charts       string
	ageBytes     int64
	sweepStep    time.Duration
	steadyTime   time.Duration
}

var (
	fullDefaults = modeDefaults{
		runs: 3, duration: 5 * time.Second, warmup: time.Second, restartWAL: 5e9, backlog: 1e9, conns: 17000, tlsConns: 10000,
		tierBacklog: 1e9, tierRecover: []int64{1e9, 5e9},
		fsyncSamples: 2000, fsyncTime: 3 * time.Second, seqBytes: 1 << 30, seqTime: 4 * time.Second, tcpBytes: 4 << 30,
		out: "BENCHMARKS.md", charts: "bench/results",
		ageBytes: 3e9, sweepStep: 5 * time.Second, steadyTime: 2 * time.Minute,
	}
	quickDefaults = modeDefaults{
		runs: 1, duration: 2 * time.Second, warmup: 500 * time.Millisecond, restartWAL: 1e9, backlog: 256e6, conns: 4000, tlsConns: 2000,
		tierBacklog: 256e6, tierRecover: []int64{256e6, 1e9},
		fsyncSamples: 500, fsyncTime: time.Second, seqBytes: 256 << 20, seqTime: 1500 * time.Millisecond, tcpBytes: 1 << 30, out: "",
		ageBytes: 512e6, sweepStep: 2 * time.Second, steadyTime: 10 * time.Second,
	}
)

// config is everything the flags set.
type config struct {
	quick      bool
	brokers    string
	brokerPID  int
	klite      string   // prebuilt binary; empty: go build ./cmd/klite
	brokerArgs []string // extra klite flags
	scenarios  []string
	runs       int
	dir        string // scratch root for WALs and probes
	out        string
	jsonOut    string
	charts     string // chart directory; empty: none
	keepLogs   bool
	merge      bool // splice into the existing -out instead of rewriting it
	load       scenario.Config

	fsyncSamples int
	fsyncTime    time.Duration
	seqBytes     int64
	seqTime      time.Duration
	tcpBytes     int64

	args []string // as given, for the report
}

func parseFlags(args []string) (*config, error) {
	c := &config{args: args}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench [flags]\n\nscenarios: %s\n\n", strings.Join(scenario.Names, ", "))
		fs.PrintDefaults()
	}
	d := fullDefaults
	var scen string
	restartWAL, backlog := byteSize(d.restartWAL), byteSize(d.backlog)
	tierBacklog, tierRecover := byteSize(d.tierBacklog), byteSizes(d.tierRecover)
	tierSegment, tierHot := byteSize(32<<20), byteSize(64<<20)
	seqBytes, tcpBytes := byteSize(d.seqBytes), byteSize(d.tcpBytes)
	ageBytes := byteSize(d.ageBytes)
	sweepRates := rateList{rates: []float64{100e3, 200e3, 300e3, 400e3}, on: true}
	sweepMax, steadyRate := rate(2e6), rate(0)
	l := &c.load
	fs.BoolVar(&c.quick, "quick", false, "short smoke run: 1 run of 2 s per scenario, 1 GB restart WAL, smaller probes; prints the report instead of writing BENCHMARKS.md unless -out is given")
	fs.StringVar(&c.brokers, "brokers", "", "host:port of a running Kafka-compatible broker; empty: build klite and start it per scenario run on a temporary WAL")
	fs.IntVar(&c.brokerPID, "broker-pid", 0, "with -brokers: the broker's pid, to read its CPU and RSS from /proc")
	fs.StringVar(&c.klite, "klite", "", "prebuilt klite binary to run instead of building ./cmd/klite")
	brokerArgs := fs.String("broker-args", "", "extra flags for klite, space separated (e.g. a profile flag)")
	tierArgs := fs.String("tier-args", "", "tier-*: more klite flags for the brokers with S3, space separated (after the benchmark's own -s3-* flags, so they win)")
	fs.StringVar(&scen, "scenario", "all", "scenarios to run: all (quick: without tier-*, security-*, txn-* and metrics-*) or a comma list of "+strings.Join(scenario.Names, ",")+" and groups (tier: every tier-* scenario; security: every security-* one; txn: every txn-* one; metrics: every metrics-* one)")
	fs.IntVar(&c.runs, "runs", d.runs, "repetitions of every scenario; the report gives medians and spread (quick: 1)")
	fs.StringVar(&c.dir, "dir", os.TempDir(), "scratch directory for WALs and disk probes (the disk under test)")
	fs.StringVar(&c.out, "out", d.out, "markdown report path (quick: none, the report goes to stdout)")
	fs.StringVar(&c.jsonOut, "json", "", "also write the raw per-run figures as JSON to this path")
	fs.StringVar(&c.charts, "charts", d.charts, "directory for the PNG charts linked from the report, relative to the module root unless absolute (quick: none); empty: no charts")
	fs.BoolVar(&c.keepLogs, "keep-logs", false, "keep the scratch directory's broker logs")
	fs.BoolVar(&c.merge, "merge", false, "splice the scenarios run now into the existing -out report instead of rewriting it: their sections (marked with this run's "+
		"command, commit and limits) and measured targets replace the old ones, everything else stays (other scenarios, the run's tables, appendices); "+
		"e.g. -scenario security -merge")

	fs.IntVar(&l.RecordSize, "record-size", 1024, "record value bytes")
	fs.IntVar(&l.Partitions, "partitions", 8, "partitions per topic")
	fs.IntVar(&l.Producers, "producers", 4, "producer clients (one connection each)")
	fs.IntVar(&l.Consumers, "consumers", 0, "consumer clients in tail-fetch (0: as many as -producers)")
	fs.StringVar(&l.Acks, "acks", "all", "acks for scenarios that do not fix them (tail-fetch): all, 1 or 0")
	fs.DurationVar(&l.Linger, "linger", 0, "producer linger")
	fs.IntVar(&l.BatchBytes, "batch-bytes", 0, "producer max batch bytes (0: franz-go's default, 1000012)")
	fs.StringVar(&l.Compression, "compression", "none", "producer compression: none, gzip, snappy, lz4, zstd (values are random bytes)")
	fs.IntVar(&l.Inflight, "inflight", 5, "produce requests in flight per broker for acks 1 and 0 (idempotent acks=all allows 5)")
	fs.Float64Var(&l.Rate, "rate", 0, "records/s for produce-latency (0: half the acks=all peak of the same round)")
	fs.DurationVar(&l.Duration, "duration", d.duration, "measured time per scenario run (quick: 2s)")
	fs.DurationVar(&l.Warmup, "warmup", d.warmup, "unmeasured time before it (quick: 500ms)")
	fs.DurationVar(&l.IdleSettle, "idle-settle", time.Second, "idle-rss: wait after ready before reading RSS")
	fs.Var(&restartWAL, "restart-wal", "restart: WAL size to fill before timing restarts (quick: 1GB; restart-1gb always fills 1GB and is left out of quick's all)")
	fs.Var(&backlog, "backlog", "catchup-fetch: record bytes to fill and read back (default 1GB, quick: 256MB); txn-fetch writes and reads half of it")
	fs.IntVar(&l.Conns, "conns", d.conns, "connections: idle client connections to hold (quick: 4000); the broker's -max-conns (18000) and open-file limit bound it")
	fs.IntVar(&l.ConnsPerProc, "conns-per-proc", 5000, "connections, security-tls-idle: most idle connections per holder process")
	fs.IntVar(&l.TLSConns, "tls-conns", d.tlsConns, "security-tls-idle: idle connections to hold, plaintext and then TLS (quick: 2000)")
	fs.Var(&tierBacklog, "tier-backlog", "tier-catchup: record bytes to offload to S3 and read back (default 1GB, quick: 256MB)")
	fs.Var(&tierRecover, "tier-recover", "tier-recover: bucket sizes to recover from, comma separated (default 1GB,5GB, quick: 256MB,1GB)")
	fs.Var(&tierSegment, "tier-segment-bytes", "tier-*: -segment-bytes of every broker in them, with S3 or without (default 32MiB): only sealed segments are uploaded")
	fs.Var(&tierHot, "tier-hot-bytes", "tier-*: -wal-hot-bytes of the brokers with S3 (default 64MiB)")
	fs.StringVar(&l.LongLivedScope, "long-lived", "round", "the broker produce-sweep, produce-steady and produce-aged-cpu share: round (one klite per round, aged by -age-bytes, "+
		"stopped with its WAL removed after the last of them), run (one for the whole benchmark; it idles while other scenarios run) or off (a fresh, aged klite per run)")
	fs.Var(&ageBytes, "age-bytes", "record bytes (acks=all, as fast as it goes) the long-lived broker takes before it is measured (default 3GB, quick: 512MB)")
	fs.Var(&sweepRates, "sweep-rates", "produce-sweep: target rates in records/s, ascending; a trailing ,... goes on in steps of the last difference until a step cannot keep up")
	fs.Var(&sweepMax, "sweep-max", "produce-sweep: highest rate to try, records/s")
	fs.DurationVar(&l.SweepStepTime, "sweep-duration", d.sweepStep, "produce-sweep: measured time per step, after -warmup (quick: 2s)")
	fs.DurationVar(&l.SweepP99, "sweep-p99", 5*time.Millisecond, "produce-sweep: p99 bound of the sustainable rate (steps up to it keep up with p99 within it)")
	fs.DurationVar(&l.SweepFailP99, "sweep-fail-p99", time.Second, "produce-sweep: a step with p99 over this (or achieving under 95% of its rate) cannot keep up and ends the sweep")
	fs.DurationVar(&l.SteadyTime, "steady-duration", d.steadyTime, "produce-steady: measured time (quick: 10s)")
	fs.Var(&steadyRate, "steady-rate", "produce-steady: records/s (e.g. 150k); 0: half the sustainable rate of the round's produce-sweep, or -rate without it")
	fs.IntVar(&c.fsyncSamples, "fsync-samples", d.fsyncSamples, "limit probe: fdatasync calls per probe, at least (quick: 500)")
	fs.DurationVar(&c.fsyncTime, "fsync-time", d.fsyncTime, "limit probe: time the fdatasync probe runs for, at least (quick: 1s)")
	fs.Var(&seqBytes, "seq-bytes", "limit probe: bytes for sequential write, at least (default 1GiB, quick: 256MiB)")
	fs.DurationVar(&c.seqTime, "seq-time", d.seqTime, "limit probe: time the sequential write runs for, at least (quick: 1.5s)")
	fs.Var(&tcpBytes, "tcp-bytes", "limit probe: bytes for loopback TCP (quick: 1GiB)")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.quick {
		q := quickDefaults
		pick := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		pick("runs", func() { c.runs = q.runs })
		pick("duration", func() { l.Duration = q.duration })
		pick("warmup", func() { l.Warmup = q.warmup })
		pick("restart-wal", func() { restartWAL = byteSize(q.restartWAL) })
		pick("backlog", func() { backlog = byteSize(q.backlog) })
		pick("conns", func() { l.Conns = q.conns })
		pick("tls-conns", func() { l.TLSConns = q.tlsConns })
		pick("tier-backlog", func() { tierBacklog = byteSize(q.tierBacklog) })
		pick("tier-recover", func() { tierRecover = byteSizes(q.tierRecover) })
		pick("fsync-samples", func() { c.fsyncSamples = q.fsyncSamples })
		pick("fsync-time", func() { c.fsyncTime = q.fsyncTime })
		pick("seq-bytes", func() { seqBytes = byteSize(q.seqBytes) })
		pick("seq-time", func() { c.seqTime = q.seqTime })
		pick("tcp-bytes", func() { tcpBytes = byteSize(q.tcpBytes) })
		pick("age-bytes", func() { ageBytes = byteSize(q.ageBytes) })
		pick("sweep-duration", func() { l.SweepStepTime = q.sweepStep })
		pick("steady-duration", func() { l.SteadyTime = q.steadyTime })
		pick("out", func() { c.out = q.out })
		pick("charts", func() { c.charts = q.charts })
	}
	l.RestartWAL, l.Backlog, c.seqBytes, c.tcpBytes = int64(restartWAL), int64(backlog), int64(seqBytes), int64(tcpBytes)
	l.TierBacklog, l.TierRecover, l.TierSegmentBytes, l.TierHotBytes = int64(tierBacklog), tierRecover, int64(tierSegment), int64(tierHot)
	l.TierArgs = strings.Fields(*tierArgs)
	l.AgeBytes, l.SweepRates, l.SweepOn, l.SweepMax, l.SteadyRate = int64(ageBytes), sweepRates.rates, sweepRates.on, float64(sweepMax), float64(steadyRate)
	l.Quick = c.quick
	if l.Consumers == 0 {
		l.Consumers = l.Producers
	}
	c.brokerArgs = strings.Fields(*brokerArgs)
	var err error
	if c.scenarios, err = scenario.Parse(scen); err != nil {
		return nil, err
	}
	if c.quick && strings.TrimSpace(scen) == "all" {
		// quick's restart already fills 1 GB; the tier group alone takes
		// about as long as the rest of quick (run it with -scenario tier),
		// the security group about half as long (-scenario security), the
		// txn and metrics groups about a third each.
		c.scenarios = slices.DeleteFunc(c.scenarios, func(n string) bool {
			if n == "restart-1gb" {
				return true
			}
			for _, g := range []string{"tier", "security", "txn", "metrics"} {
				if strings.HasPrefix(n, scenario.Groups[g]) {
					return true
				}
			}
			return false
		})
	}
	return c, c.validate()
}

func (c *config) validate() error {
	l := c.load
	switch {
	case c.runs < 1:
		return fmt.Errorf("-runs must be at least 1")
	case l.RecordSize < 1:
		return fmt.Errorf("-record-size must be at least 1")
	case l.Partitions < 1 || l.Producers < 1 || l.Consumers < 1:
		return fmt.Errorf("-partitions, -producers and -consumers must be at least 1")
	case l.Duration <= 0 || l.Warmup < 0:
		return fmt.Errorf("-duration must be positive and -warmup not negative")
	case l.Inflight < 1:
		return fmt.Errorf("-inflight must be at least 1")
	case l.Rate < 0:
		return fmt.Errorf("-rate must not be negative")
	case l.RestartWAL < 1 || l.Backlog < 1 || l.TierBacklog < 1:
		return fmt.Errorf("-restart-wal, -backlog and -tier-backlog must be positive")
	case len(l.TierRecover) == 0 || slices.Min(l.TierRecover) < 1:
		return fmt.Errorf("-tier-recover needs at least one positive size")
	case l.TierSegmentBytes < 1<<20 || l.TierHotBytes < 1:
		return fmt.Errorf("-tier-segment-bytes must be at least 1MiB and -tier-hot-bytes positive")
	case l.Conns < 0 || l.ConnsPerProc < 1 || l.TLSConns < 0:
		return fmt.Errorf("-conns and -tls-conns must not be negative and -conns-per-proc must be at least 1")
	case c.fsyncSamples < 1 || c.seqBytes < 1 || c.tcpBytes < 1:
		return fmt.Errorf("limit probe sizes must be positive")
	case c.fsyncTime < 0 || c.seqTime < 0:
		return fmt.Errorf("-fsync-time and -seq-time must not be negative")
	case c.brokerPID != 0 && c.brokers == "":
		return fmt.Errorf("-broker-pid needs -brokers")
	case c.merge && c.out == "":
		return fmt.Errorf("-merge needs -out (the report to merge into)")
	case c.brokers != "" && c.klite != "":
		return fmt.Errorf("-klite and -brokers exclude each other")
	case l.AgeBytes < 0:
		return fmt.Errorf("-age-bytes must not be negative")
	case !ascending(l.SweepRates):
		return fmt.Errorf("-sweep-rates needs positive rates in ascending order")
	case l.SweepMax < l.SweepRates[0]:
		return fmt.Errorf("-sweep-max is below the first -sweep-rates step")
	case l.SweepStepTime <= 0 || l.SteadyTime <= 0:
		return fmt.Errorf("-sweep-duration and -steady-duration must be positive")
	case l.SweepP99 <= 0 || l.SweepFailP99 < l.SweepP99:
		return fmt.Errorf("-sweep-p99 must be positive and -sweep-fail-p99 at least as large")
	}
	switch l.LongLivedScope {
	case "round", "run", "off":
	default:
		return fmt.Errorf("-long-lived %q: want round, run or off", l.LongLivedScope)
	}
	switch l.Acks {
	case "all", "1", "0":
	default:
		return fmt.Errorf("-acks %q: want all, 1 or 0", l.Acks)
	}
	switch l.Compression {
	case "none", "gzip", "snappy", "lz4", "zstd":
	default:
		return fmt.Errorf("-compression %q: want none, gzip, snappy, lz4 or zstd", l.Compression)
	}
	return nil
}

// byteSize is a flag for sizes: 5GB, 512MB, 1GiB, 4096.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// byteSizes is a flag for a comma list of sizes: 1GB,5GB.
type byteSizes []int64

func (b *byteSizes) String() string {
	var parts []string
	for _, n := range *b {
		parts = append(parts, strconv.FormatInt(n, 10))
	}
	return strings.Join(parts, ",")
}

func (b *byteSizes) Set(s string) error {
	var out []int64
	for _, part := range strings.Split(s, ",") {
		n, err := parseBytes(part)
		if err != nil {
			return err
		}
		out = append(out, n)
	}
	*b = out
	return nil
}

func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 5GB, 512MiB, 4096)", s)
	}
	return int64(f * mult), nil
}

// rate is a flag for records/s: 150k, 1.5M, 250000.
type rate float64

func (r *rate) String() string { return rateString(float64(*r)) }

func (r *rate) Set(s string) error {
	v, err := parseRate(s)
	if err != nil {
		return err
	}
	*r = rate(v)
	return nil
}

// rateList is a flag for a comma list of rates; a trailing "..." means go
// on in steps of the last difference: 100k,200k,300k,...
type rateList struct {
	rates []float64
	on    bool
}

func (r *rateList) String() string {
	var parts []string
	for _, v := range r.rates {
		parts = append(parts, rateString(v))
	}
	if r.on {
		parts = append(parts, "...")
	}
	return strings.Join(parts, ",")
}

func (r *rateList) Set(s string) error {
	var out rateList
	parts := strings.Split(s, ",")
	for i, part := range parts {
		part = strings.TrimSpace(part)
		if part == "..." && i == len(parts)-1 && i > 0 {
			out.on = true
			break
		}
		v, err := parseRate(part)
		if err != nil {
			return err
		}
		out.rates = append(out.rates, v)
	}
	*r = out
	return nil
}

func rateString(v float64) string {
	switch {
	case v >= 1e6 && math.Mod(v, 1e5) == 0:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3 && math.Mod(v, 1e3) == 0:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"):
		s, mult = strings.TrimSuffix(s, "k"), 1e3
	case strings.HasSuffix(s, "M"):
		s, mult = strings.TrimSuffix(s, "M"), 1e6
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) {
		return 0, fmt.Errorf("bad rate %q (want records/s, e.g. 150k, 1.5M, 250000)", s)
	}
	return f * mult, nil
}

// ascending says whether rs is non-empty, positive and strictly rising.
func ascending(rs []float64) bool {
	for i, r := range rs {
		if r <= 0 || (i > 0 && r <= rs[i-1]) {
			return false
		}
	}
	return len(rs) > 0
}
