package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/klite/klite/bench/internal/broker"
	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/tier"
	"github.com/klite/klite/tier/s3store"
	"github.com/klite/klite/tier/s3test"
)

// The tier-* scenarios run klite with its S3 tiering flags against a real
// S3 server on loopback: versitygw (posix backend, static keys), built by
// scripts/versitygw.sh into the user's cache (make s3-server), one per
// scenario, its data under the benchmark's scratch directory (the disk
// under test). Each broker with S3 gets its own key prefix.
const (
	tierBucket = "klite-bench"
	tierAccess = s3test.Access
	tierSecret = s3test.Secret
	tierRegion = "us-east-1"
	// tierFlushInterval is -s3-flush-interval: short, so data reaches the
	// bucket within the benchmark's patience.
	tierFlushInterval = time.Second
	// tierPollEvery is how often the bucket is listed while data goes up.
	tierPollEvery = 200 * time.Millisecond
	// tierQuiet: uploads have settled once the bucket's data bytes and the
	// local WAL's size have not changed for this long.
	tierQuiet = 3 * tierFlushInterval
	// tierSettleTimeout bounds the wait for uploads after a fill.
	tierSettleTimeout = 3 * time.Minute
	// tierRecoverTimeout bounds a recovered broker's first answer and the
	// read of its last records.
	tierRecoverTimeout = 2 * time.Minute
)

// tierFlags are the klite flags the scenarios pass; a broker whose -h lacks
// any of them is skipped.
var tierFlags = []string{"s3-bucket", "s3-prefix", "s3-endpoint", "s3-region", "s3-flush-interval", "wal-hot-bytes"}

// tierKit is what every tier scenario shares: the launcher, the S3 server
// (started on first use, stopped by close) and key prefixes.
type tierKit struct {
	name string
	m    *Managed
	srv  *s3Server
	seq  int
}

// prepare checks the broker has the tiering flags and starts the server.
func (k *tierKit) prepare(ctx context.Context, env *Env) error {
	m := env.Brokers.Managed()
	if m == nil {
		return ErrNeedsManaged
	}
	k.m = m
	missing, err := m.MissingFlags(ctx, tierFlags...)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return &SkipError{Reason: fmt.Sprintf("klite -h does not list %s: the broker has no S3 tiering yet (issue 5)",
			strings.Join(missing, ", "))}
	}
	if k.srv == nil {
		srv, err := startS3Server(ctx, m.NewWALDir(k.name+"-s3"), env.Progress)
		if err != nil {
			return err
		}
		k.srv = srv
	}
	return nil
}

// prefix returns a fresh key prefix for one broker's data.
func (k *tierKit) prefix(what string) string {
	k.seq++
	return fmt.Sprintf("%s-%d/", what, k.seq)
}

// start runs a broker on walDir: with S3 under prefix, or local only when
// prefix is empty. Both get the same segment size, so the comparison
// differs in tiering alone.
func (k *tierKit) start(ctx context.Context, cfg Config, walDir, prefix string) (*broker.Process, error) {
	return k.startFlush(ctx, cfg, walDir, prefix, tierFlushInterval)
}

// startFlush is start with -s3-flush-interval flush.
func (k *tierKit) startFlush(ctx context.Context, cfg Config, walDir, prefix string, flush time.Duration) (*broker.Process, error) {
	args := []string{"-segment-bytes", strconv.FormatInt(cfg.TierSegmentBytes, 10)}
	var env []string
	if prefix != "" {
		args = append(args,
			"-s3-bucket", tierBucket, "-s3-prefix", prefix, "-s3-endpoint", k.srv.endpoint, "-s3-region", tierRegion,
			"-s3-flush-interval", flush.String(), "-wal-hot-bytes", strconv.FormatInt(cfg.TierHotBytes, 10))
		args = append(args, cfg.TierArgs...)
		env = []string{"AWS_ACCESS_KEY_ID=" + tierAccess, "AWS_SECRET_ACCESS_KEY=" + tierSecret, "AWS_EC2_METADATA_DISABLED=true"}
	}
	return k.m.StartWith(ctx, walDir, args, env)
}

// stop stops a broker and removes its WAL.
func (k *tierKit) stop(p *broker.Process, walDir string) error {
	_, err := p.Stop(syscall.SIGTERM)
	if err != nil {
		return fmt.Errorf("%w; log tail:\n%s", err, p.LogTail())
	}
	k.m.Cleanup(walDir)
	return nil
}

// drop deletes a prefix's objects from the server's disk (the benchmark's
// own scratch server), so finished runs do not fill the disk.
func (k *tierKit) drop(prefix string) {
	if k.srv != nil && prefix != "" {
		os.RemoveAll(filepath.Join(k.srv.root, tierBucket, strings.TrimSuffix(prefix, "/")))
	}
}

// tierRun is one fresh broker of a comparison: on its own WAL directory,
// with S3 under its own prefix and a watch on the bucket, or local only.
type tierRun struct {
	p      *broker.Process
	dir    string
	prefix string       // "" without S3
	w      *bucketWatch // nil without S3
}

// open starts a tierRun on a fresh WAL directory named dirName, with S3
// when s3. finish stops what open started.
func (k *tierKit) open(ctx context.Context, cfg Config, dirName string, s3 bool) (*tierRun, error) {
	r := &tierRun{dir: k.m.NewWALDir(dirName)}
	if s3 {
		r.prefix = k.prefix(k.name)
	}
	p, err := k.start(ctx, cfg, r.dir, r.prefix)
	if err != nil {
		k.m.Cleanup(r.dir)
		return nil, err
	}
	r.p = p
	if s3 {
		store, err := k.srv.store(ctx, r.prefix)
		if err != nil {
			return nil, errors.Join(err, k.finish(r))
		}
		r.w = watchBucket(ctx, store, r.dir)
	}
	return r, nil
}

// finish stops the watch and the broker, and deletes the WAL directory and
// the bucket prefix.
func (k *tierKit) finish(r *tierRun) error {
	if r.w != nil {
		r.w.stop()
	}
	err := k.stop(r.p, r.dir)
	k.drop(r.prefix)
	return err
}

func (k *tierKit) close() error {
	if k.srv == nil {
		return nil
	}
	err := k.srv.stop()
	k.srv = nil
	return err
}

// tierSettings are the broker settings every tier scenario reports.
func tierSettings(cfg Config) []report.KV {
	kv := []report.KV{
		{Key: "segment bytes", Value: report.Format(report.Bytes, float64(cfg.TierSegmentBytes))},
		{Key: "WAL hot bytes (with S3)", Value: report.Format(report.Bytes, float64(cfg.TierHotBytes))},
		{Key: "S3 flush interval", Value: tierFlushInterval.String()},
		{Key: "S3 server", Value: "versitygw (posix backend) on loopback, on the WAL's disk"},
	}
	if len(cfg.TierArgs) > 0 {
		kv = append(kv, report.KV{Key: "more S3 broker flags", Value: strings.Join(cfg.TierArgs, " ")})
	}
	return kv
}

// s3Server is a versitygw process serving tierBucket from root.
type s3Server struct {
	endpoint string
	dir      string // holds root and the server's log
	root     string
	srv      *s3test.Server
}

func startS3Server(ctx context.Context, dir string, pr *Progress) (*s3Server, error) {
	// Install first: a failed build skips the scenario rather than failing it.
	if _, err := s3test.Binary(ctx, func(msg string) { pr.Logf("   versitygw: %s", msg) }); err != nil {
		return nil, &SkipError{Reason: fmt.Sprintf("no S3 server: %v", err)}
	}
	s := &s3Server{dir: dir, root: filepath.Join(dir, "root")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	if s.srv, err = s3test.Start(ctx, s.root, tierBucket, logf); err != nil {
		return nil, fmt.Errorf("scenario: %w; log:\n%s", err, s.logTail())
	}
	s.endpoint = s.srv.Endpoint
	return s, nil
}

func (s *s3Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "versitygw.log"))
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
	}
	return string(b)
}

func (s *s3Server) stop() error {
	s.srv.Stop()
	return os.RemoveAll(s.dir)
}

// store is an S3 client for one broker's prefix.
func (s *s3Server) store(ctx context.Context, prefix string) (*s3store.Store, error) {
	return s3store.New(ctx, s3store.Config{Bucket: tierBucket, Prefix: prefix, Endpoint: s.endpoint, Region: tierRegion,
		AccessKey: tierAccess, SecretKey: tierSecret})
}

// bucketSample is the bucket's data objects and the local WAL at one time.
type bucketSample struct {
	t        time.Time
	bytes    int64 // data object bytes (*.klo under topics/, index footers included)
	objects  int64
	walBytes int64
}

// bucketWatch lists a prefix's data objects every tierPollEvery, so upload
// progress has timestamps finer than S3's one-second Last-Modified.
type bucketWatch struct {
	store  *s3store.Store
	walDir string
	stopFn context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	samples []bucketSample // guarded by mu
	err     error          // last listing error; guarded by mu
}

func watchBucket(ctx context.Context, store *s3store.Store, walDir string) *bucketWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &bucketWatch{store: store, walDir: walDir, stopFn: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(tierPollEvery)
		defer t.Stop()
		for {
			w.sample(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *bucketWatch) sample(ctx context.Context) {
	s := bucketSample{}
	err := w.store.List(ctx, "topics/", "", func(o tier.ObjectInfo) error {
		if strings.HasSuffix(o.Key, ".klo") {
			s.bytes += o.Size
			s.objects++
		}
		return nil
	})
	s.t = time.Now()
	wal, werr := dirBytes(w.walDir)
	if errors.Is(werr, os.ErrNotExist) {
		werr = nil
	}
	s.walBytes = wal
	w.mu.Lock()
	defer w.mu.Unlock()
	if err = errors.Join(err, werr); err != nil {
		if ctx.Err() == nil {
			w.err = err
		}
		return
	}
	w.samples = append(w.samples, s)
}

// stop ends the watch and returns its samples.
func (w *bucketWatch) stop() []bucketSample {
	w.stopFn()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.samples
}

// settle waits until the bucket and the WAL have not changed for
// tierQuiet, and returns the last sample; settled is false when
// tierSettleTimeout passed first.
func (w *bucketWatch) settle(ctx context.Context) (last bucketSample, settled bool, err error) {
	deadline := time.Now().Add(tierSettleTimeout)
	for {
		w.mu.Lock()
		ss, lerr := w.samples, w.err
		w.mu.Unlock()
		if n := len(ss); n > 0 {
			last = ss[n-1]
			since := last.t
			for i := n - 1; i >= 0 && ss[i].bytes == last.bytes && ss[i].walBytes == last.walBytes; i-- {
				since = ss[i].t
			}
			if last.t.Sub(since) >= tierQuiet {
				return last, true, nil
			}
		}
		if time.Now().After(deadline) {
			return last, false, lerr
		}
		if err := sleepCtx(ctx, tierPollEvery); err != nil {
			return last, false, err
		}
	}
}

// uploadFigures turns a fill's samples into upload rates. fillEnd is when
// producing stopped.
type uploadFigures struct {
	final     bucketSample
	rate      float64       // bytes/s from the first object seen to the last; NaN if one step
	drain     time.Duration // from fillEnd to the last object seen (0 if it kept up)
	drainRate float64       // bytes/s uploaded after fillEnd; NaN if too little
}

func uploadFiguresOf(ss []bucketSample, fillEnd time.Time) uploadFigures {
	f := uploadFigures{rate: math.NaN(), drainRate: math.NaN()}
	if len(ss) == 0 {
		return f
	}
	f.final = ss[len(ss)-1]
	first, done := -1, -1
	for i, s := range ss {
		if first < 0 && s.bytes > 0 {
			first = i
		}
		if done < 0 && s.bytes == f.final.bytes {
			done = i
		}
	}
	if first >= 0 && done > first {
		f.rate = float64(ss[done].bytes-ss[first].bytes) / ss[done].t.Sub(ss[first].t).Seconds()
	}
	if done >= 0 && ss[done].t.After(fillEnd) {
		f.drain = ss[done].t.Sub(fillEnd)
		at := -1 // the last sample at or before fillEnd
		for i, s := range ss {
			if !s.t.After(fillEnd) {
				at = i
			}
		}
		if at >= 0 && done > at && ss[done].bytes > ss[at].bytes {
			f.drainRate = float64(ss[done].bytes-ss[at].bytes) / ss[done].t.Sub(ss[at].t).Seconds()
		}
	}
	return f
}

func (f uploadFigures) metrics(keySuffix, labelSuffix string) []report.Metric {
	ms := []report.Metric{
		{Key: "bucket-bytes" + keySuffix, Label: "data in the bucket" + labelSuffix, Unit: report.Bytes, Value: float64(f.final.bytes)},
		{Key: "bucket-objects" + keySuffix, Label: "data objects in the bucket" + labelSuffix, Unit: report.Count, Value: float64(f.final.objects)},
		{Key: "upload-rate" + keySuffix, Label: "upload throughput, first to last object (paced by the fill while it runs)" + labelSuffix,
			Unit: report.BytesPerSec, Value: f.rate},
		{Key: "upload-drain" + keySuffix, Label: "uploads finished after producing stopped" + labelSuffix, Unit: report.Seconds, Value: f.drain.Seconds()},
	}
	if !math.IsNaN(f.drainRate) {
		ms = append(ms, report.Metric{Key: "upload-drain-rate" + keySuffix, Label: "upload throughput after producing stopped (backlog only)" + labelSuffix,
			Unit: report.BytesPerSec, Value: f.drainRate})
	}
	return ms
}

// listEnds are the topic's partitions' high watermarks, one attempt.
func listEnds(ctx context.Context, addr, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("klite-bench-admin"))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := offs.Error(); err != nil {
		return nil, err
	}
	ends := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends, nil
}

// sumEnds adds up high watermarks: the records of a topic no one has trimmed.
func sumEnds(ends map[int32]int64) int64 {
	var sum int64
	for _, e := range ends {
		sum += e
	}
	return sum
}

// readLast fetches the last record of every non-empty partition.
func readLast(ctx context.Context, addr, topic string, ends map[int32]int64) error {
	parts := map[int32]kgo.Offset{}
	for p, end := range ends {
		if end > 0 {
			parts[p] = kgo.NewOffset().At(end - 1)
		}
	}
	if len(parts) == 0 {
		return errors.New("scenario: every partition is empty")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("klite-bench-last"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(parts) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("scenario: %d partitions' last records not read: %w", len(parts), err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Partition]-1 {
				delete(parts, r.Partition)
			}
		})
	}
	return nil
}

// withSuffix renames metrics, for two brokers' figures in one table.
func withSuffix(ms []report.Metric, keySuffix, labelSuffix string) []report.Metric {
	out := make([]report.Metric, len(ms))
	for i, m := range ms {
		m.Key += keySuffix
		m.Label += labelSuffix
		out[i] = m
	}
	return out
}

// order gives the two sides of a comparison, swapped in even rounds so
// neither always runs on the warmer machine.
func order(round int) []bool {
	if round%2 == 0 {
		return []bool{true, false}
	}
	return []bool{false, true}
}
