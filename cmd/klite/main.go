// Command klite runs a single-node Kafka-compatible broker.
//
// main only wires: flags and environment into a Config, a root logger, the
// storage, protocol and network components (and with -s3-bucket the tier,
// tiering.go), then it waits for SIGINT or SIGTERM and stops them in order:
// answer long-polling fetches, stop accepting and finish in-flight
// requests, a last upload to the bucket, close the store (final fdatasync).
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // -pprof-addr
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/group"
	"github.com/klite/klite/kafka"
	"github.com/klite/klite/metrics"
	"github.com/klite/klite/netloop"
	"github.com/klite/klite/storage"
	"github.com/klite/klite/txn"
	"github.com/klite/klite/vfs"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run is main with its inputs explicit; it returns the exit code.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "klite: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	if err := serve(cfg, log); err != nil {
		log.Error().Err(err).Msg("exiting")
		return 1
	}
	return 0
}

// logTimeFormat gives log timestamps millisecond precision (zerolog's
// default is whole seconds).
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

func newLogger(cfg Config, w io.Writer) zerolog.Logger {
	level, _ := parseLevel(cfg.LogLevel)    // validated
	zerolog.TimeFieldFormat = logTimeFormat // process-wide; main owns it
	if cfg.LogFormat == "console" {
		// Colour only on a terminal, not into files or journald.
		f, isFile := w.(*os.File)
		color := isFile && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: logTimeFormat, NoColor: !color}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func parseLevel(s string) (zerolog.Level, error) {
	l, err := zerolog.ParseLevel(strings.ToLower(s))
	if err != nil || l == zerolog.NoLevel || s == "" {
		return zerolog.InfoLevel, fmt.Errorf("unknown log level %q", s)
	}
	return l, nil
}

func component(root zerolog.Logger, name string) zerolog.Logger {
	return root.With().Str("component", name).Logger()
}

// serve builds the broker, runs it until a signal, and stops it.
func serve(cfg Config, root zerolog.Logger) error {
	log := component(root, "klite")

	// The operations endpoint comes first, so /livez answers and /readyz
	// says why not ready through recovery and a restore from the bucket.
	var ops *metrics.Server
	if cfg.HTTPAddr != "" {
		var err error
		if ops, err = metrics.New(metrics.Config{Addr: cfg.HTTPAddr, MaxLagSeries: cfg.MaxLagSeries, Logger: root}); err != nil {
			return fmt.Errorf("-http-addr: %w", err)
		}
		ops.Serve()
		defer ops.Close() // after every other component has stopped
	}
	notReady := func(reason string) {
		if ops != nil {
			ops.SetNotReady(reason)
		}
	}

	clusterID, err := openWALDir(vfs.OSFS{}, cfg.WALDir, cfg.ClusterID)
	if err != nil {
		return err
	}

	// Signals are caught from here on, so a SIGTERM during recovery still
	// leads to a clean stop instead of the default "terminate at once".
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	// Each component started pushes its stop; a failed start and the
	// graceful stop both close the stack, newest first.
	var stack closers
	graceful := false // the tier's final upload only on a graceful stop

	started := time.Now()
	var tiers *tiering
	var plan *restorePlan // disaster recovery: an empty -wal, a snapshot in the bucket
	if cfg.S3Bucket != "" {
		notReady("connecting to the bucket")
		t, err := newTiering(cfg, root)
		if err != nil {
			return err
		}
		tiers = t
		stack.push(tiers.closeErr) // Cold's background work, after the store
		fresh, err := freshDir(cfg.WALDir)
		if err != nil {
			return errors.Join(err, stack.close())
		}
		if fresh {
			notReady("reading the bucket's snapshot for a restore")
			// A signal ends the restore (the process exits with the error).
			sctx, unwatch := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			ctx, cancel := context.WithTimeout(sctx, restoreTimeout)
			plan, err = tiers.loadRestore(ctx)
			cancel()
			unwatch()
			if err != nil {
				// Starting empty would publish a snapshot over the bucket's.
				return errors.Join(fmt.Errorf("-wal %s is empty and the bucket could not be read: %w", cfg.WALDir, err), stack.close())
			}
			if plan != nil {
				if clusterID, err = restoredClusterID(cfg, plan, clusterID, log); err != nil {
					return errors.Join(err, stack.close())
				}
			}
		}
		// Before anything is written to the bucket or restored into -wal.
		ctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
		err = tiers.claim(ctx, cfg, clusterID, fresh)
		cancel()
		if err != nil {
			return errors.Join(err, stack.close())
		}
		if plan != nil {
			if err := markRestore(vfs.OSFS{}, cfg.WALDir, true); err != nil {
				return errors.Join(fmt.Errorf("restore marker: %w", err), stack.close())
			}
		}
		log.Info().Str("bucket", cfg.S3Bucket).Str("prefix", cfg.S3Prefix).Str("endpoint", cfg.S3Endpoint).
			Bool("restore", plan != nil).Msg("tiered storage on")
	}
	var walTrace func(storage.TraceEvent)
	if cfg.WALTrace != "" {
		tr, err := openWALTrace(cfg.WALTrace)
		if err != nil {
			return errors.Join(fmt.Errorf("-wal-trace: %w", err), stack.close())
		}
		stack.push(tr.close) // runs after the store's closer below
		walTrace = tr.event
	}
	notReady("recovering the WAL")
	store, err := storage.Open(storage.Config{
		Dir:                       cfg.WALDir,
		Shards:                    cfg.Shards,
		SegmentBytes:              cfg.SegmentBytes,
		MaxQueueBytes:             cfg.ShardQueueBytes,
		CacheBytes:                cfg.WALCacheBytes,
		FsyncLinger:               cfg.FsyncLinger,
		Prealloc:                  preallocModes[cfg.Prealloc],
		MaxPartitions:             int32(cfg.MaxTopicPartitions),
		MaxTotalPartitions:        cfg.MaxPartitions,
		ProducerExpiry:            cfg.ProducerExpiry,
		Cold:                      tiers.coldLog(),
		OnSeal:                    tiers.kick,
		RetentionCheckInterval:    cfg.RetentionCheckInterval,
		RetentionMs:               cfg.RetentionMs,
		RetentionBytes:            cfg.RetentionBytes,
		NodeID:                    int32(cfg.NodeID),
		MaxWALBytes:               cfg.WALMaxBytes,
		HotBytes:                  cfg.WALHotBytes,
		CompactionInterval:        cfg.CompactionInterval,
		CompactionBytesPerSec:     cfg.CompactionBytesPerSec,
		CompactionMapKeys:         cfg.CompactionMapKeys,
		CompactionMinRollInterval: cfg.CompactionMinRoll,
		Logger:                    root, // storage adds its own component field
		Trace:                     walTrace,
	})
	if err != nil {
		return errors.Join(fmt.Errorf("open storage: %w", err), stack.close())
	}
	stack.push(func() error { return closeStore(store, log) })
	log.Info().Str("dir", cfg.WALDir).Dur("took", time.Since(started)).Msg("storage open")

	if plan != nil {
		notReady("restoring from the bucket")
		if err := restore(plan, store, groupConfig(cfg, store, clusterID, root), log, started); err != nil {
			return errors.Join(err, stack.close())
		}
	}
	notReady("opening the group coordinator")
	groups, err := openGroups(cfg, store, clusterID, root)
	if err != nil {
		return errors.Join(err, stack.close())
	}
	// The coordinator closes after the network (no request is in flight)
	// and before the store its topic lookups read.
	stack.push(func() error {
		if err := groups.Close(); err != nil {
			return fmt.Errorf("close group coordinator: %w", err)
		}
		return nil
	})
	// The transaction coordinator keeps its state in the group
	// coordinator's offsets log: it opens after it and closes before it
	// (finishing markers need the store and the offsets log).
	txns, err := txn.Open(txn.Config{
		Log:                store,
		Store:              groups,
		MaxTimeout:         cfg.TransactionMaxTimeout,
		AbortCheckInterval: cfg.TransactionAbortInterval,
		IDExpiration:       cfg.TransactionalIDExpiry,
		MaxIDs:             cfg.TransactionMaxIDs,
		MaxGroups:          cfg.TransactionMaxGroups,
		Logger:             root,
	})
	if err != nil {
		return errors.Join(fmt.Errorf("open transaction coordinator: %w", err), stack.close())
	}
	stack.push(txns.Close)
	if plan != nil {
		if err := markRestore(vfs.OSFS{}, cfg.WALDir, false); err != nil {
			return errors.Join(fmt.Errorf("restore marker: %w", err), stack.close())
		}
	}
	if tiers != nil {
		tiers.start(store, groups, root)
		// Uploads stop before the store closes (they pin its segments);
		// the last upload and snapshot need the coordinator's offsets. A
		// failed start skips the final upload (the next start does it).
		stack.push(func() error {
			if graceful {
				tiers.stop(cfg.ShutdownTimeout)
			} else {
				tiers.stopNow()
			}
			return nil
		})
	}

	// netloop needs a handler before it binds, and the kafka handler needs the
	// bound port (with -listen :0), so the handler is attached after Start.
	users := kafka.NewUsers()
	users.Load(store.ScramCredentials())
	secret, err := loadSASLSecret(vfs.OSFS{}, cfg.WALDir)
	if err != nil {
		return errors.Join(fmt.Errorf("SASL secret: %w", err), stack.close())
	}
	users.SetFakeSecret(secret)
	if cfg.SASLUsersFile != "" {
		n, err := loadUsersFile(cfg.SASLUsersFile, users, store)
		if err != nil {
			return errors.Join(fmt.Errorf("-sasl-users-file: %w", err), stack.close())
		}
		log.Info().Int("users", n).Str("file", cfg.SASLUsersFile).Msg("SASL users loaded")
	}
	late := &lateHandler{}
	maxConns := connCap(cfg.MaxConns, log)
	specs, _ := parseListeners(cfg.Listen) // validated
	lcfgs := make([]netloop.ListenerConfig, len(specs))
	var tlsCfg *tls.Config
	for i, sp := range specs {
		lcfgs[i].Addr = sp.Addr
		if !sp.Proto.TLS() {
			continue
		}
		if tlsCfg == nil {
			if tlsCfg, err = tlsServerConfig(cfg, log); err != nil {
				return errors.Join(err, stack.close())
			}
		}
		lcfgs[i].TLS = tlsCfg
	}
	if len(users.Names()) == 0 && slices.ContainsFunc(specs, func(sp listenSpec) bool { return sp.Proto.SASL() }) {
		log.Warn().Msg("SASL listener without users: every authentication fails; give -sasl-users-file")
	}
	srv, err := netloop.New(netloop.Config{
		Listeners:                lcfgs,
		HandshakeTimeout:         cfg.TLSHandshakeTimeout,
		MaxHandshakes:            cfg.TLSMaxHandshakes,
		Loops:                    cfg.Loops,
		MaxFrameBytes:            int32(cfg.MaxRequestBytes),
		MaxInflightRequests:      cfg.MaxInflightRequests,
		MaxInflightBytes:         cfg.MaxInflightBytes,
		MaxOutboundBytes:         cfg.MaxOutboundBytes,
		MaxInboundBufferedBytes:  cfg.MaxInboundBytes,
		MaxQueuedRequestBytes:    cfg.MaxQueuedBytes,
		IdleTimeout:              cfg.IdleTimeout,
		MaxConns:                 maxConns,
		MaxConnCreationRatePerIP: cfg.MaxConnRatePerIP,
		Logger:                   root, // netloop adds its own component field
	}, late)
	if err != nil {
		return errors.Join(fmt.Errorf("netloop: %w", err), stack.close())
	}
	if err := srv.Start(); err != nil {
		return errors.Join(fmt.Errorf("listen on %s: %w", cfg.Listen, err), stack.close())
	}
	stack.push(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			return fmt.Errorf("stop network: %w", err)
		}
		return nil
	})
	bound := srv.Addrs()

	// The advertised address of each listener, and the bound ones for logs
	// and DescribeConfigs' listeners.
	advs := make([]string, len(specs))
	if cfg.Advertise != "" {
		advs = strings.Split(cfg.Advertise, ",") // validated: one per listener
	}
	listeners := make([]kafka.Listener, len(specs))
	boundNames := make([]string, len(specs))
	advNames := make([]string, len(specs))
	for i, sp := range specs {
		adv, warn := advertised(strings.TrimSpace(advs[i]), sp.Addr, bound[i])
		if warn != "" {
			log.Warn().Str("advertised", adv.String()).Msg(warn)
		}
		listeners[i] = kafka.Listener{Protocol: sp.Proto, Host: adv.Host, Port: int32(adv.Port)}
		boundNames[i] = string(sp.Proto) + "://" + bound[i].String()
		advNames[i] = string(sp.Proto) + "://" + adv.String()
	}
	adv := hostPort{Host: listeners[0].Host, Port: int(listeners[0].Port)}
	handler := kafka.New(kafka.Config{
		NodeID:                    int32(cfg.NodeID),
		Listeners:                 listeners,
		ClusterID:                 clusterID,
		AutoCreateTopics:          cfg.AutoCreateTopics,
		DefaultPartitions:         int32(cfg.DefaultPartitions),
		MaxMessageBytes:           int32(cfg.MaxMessageBytes),
		MaxTopicPartitions:        int32(cfg.MaxTopicPartitions),
		MaxDescribePartitions:     int32(cfg.MaxDescribePartitions),
		MaxDecompressedBatchBytes: cfg.MaxDecompressedBatchBytes,
		MaxFetchWait:              cfg.MaxFetchWait,
		MaxFetchSessions:          fetchSessions(cfg.MaxFetchSessions),
		MaxFetchSessionPartitions: cfg.MaxSessionParts,
		MaxFetchSessionCacheParts: cfg.MaxSessionCache,
		FetchWorkers:              cfg.FetchWorkers,
		QuotaWindow:               cfg.QuotaWindow,
		QuotaWindowSamples:        cfg.QuotaWindowSamples,
		QuotaMaxSensors:           cfg.QuotaMaxSensors,
		Logger:                    root, // kafka adds its own component field
		// Reported by DescribeConfigs under Kafka's names.
		BoundListeners:             strings.Join(boundNames, ","),
		LogDirs:                    cfg.WALDir,
		SegmentBytes:               cfg.SegmentBytes,
		SocketRequestMaxBytes:      int32(cfg.MaxRequestBytes),
		QueuedMaxRequestBytes:      cfg.MaxQueuedBytes,
		ConnectionsMaxIdleMs:       idleMs(cfg.IdleTimeout),
		MaxConnections:             int32(min(maxConns, 1<<31-1)),
		RetentionMs:                cfg.RetentionMs,
		RetentionBytes:             cfg.RetentionBytes,
		RetentionCheckIntervalMs:   cfg.RetentionCheckInterval.Milliseconds(),
		Authorizer:                 authorizer(cfg),
		ACLStore:                   store,
		QuotaStore:                 store,
		BrokerConfigStore:          store,
		Groups:                     groups,
		Txns:                       txns,
		MaxTxnPatternBytes:         cfg.TxnListMaxPatternBytes,
		TxnVerifier:                txns,
		Users:                      users,
		UserStore:                  store,
		SASLAuthTimeout:            cfg.SASLAuthTimeout,
		SASLMaxReceiveBytes:        cfg.SASLMaxReceive,
		SASLMaxReauth:              cfg.SASLMaxReauth,
		SASLMaxVerifications:       cfg.SASLVerifiers,
		SASLMaxQueuedVerifications: cfg.SASLQueued,
		SASLFailedAuthDelay:        cfg.SASLFailDelay,
		SlowRequest:                cfg.SlowRequest,
	}, store)
	late.h.Store(handler)
	// Long-polling fetches are answered first (with what they have), so the
	// network drain does not wait out their MaxWaitMs.
	stack.push(func() error { handler.Close(); return nil })

	if cfg.PprofAddr != "" {
		servePprof(cfg.PprofAddr, log)
	}
	if ops != nil {
		src := metrics.Sources{Store: store, Net: srv, Kafka: handler, Groups: groups}
		if tiers != nil {
			src.Uploader, src.Reader = tiers.uploader, tiers.reader
		}
		ops.SetSources(src)
		ops.SetReady()
	}

	log.Info().
		Str("addr", bound[0].String()).
		Str("advertised", adv.String()).
		Strs("listeners", boundNames).
		Strs("advertised_listeners", advNames).
		Str("cluster_id", clusterID).
		Int("node_id", cfg.NodeID).
		Msg("ready")

	sig := <-sigs
	notReady("stopping")
	log.Info().Str("signal", sig.String()).Msg("stopping")
	go func() {
		// A second signal gives up on the graceful stop. Acknowledged data is
		// already on disk, so this loses nothing that was promised.
		sig := <-sigs
		log.Warn().Str("signal", sig.String()).Msg("second signal, exiting now")
		os.Exit(1)
	}()

	stopStart := time.Now()
	graceful = true
	if err := stack.close(); err != nil {
		return err
	}
	log.Info().Dur("took", time.Since(stopStart)).Msg("stopped")
	return nil
}

// idleMs is -idle-timeout as Kafka's connections.max.idle.ms, where -1
// (not 0) means idle connections are kept.
func idleMs(d time.Duration) int64 {
	if d == 0 {
		return -1
	}
	return d.Milliseconds()
}

// fileSlack is descriptors kept for segments, the listener and the runtime.
const fileSlack = 256

// connCap turns -max-conns into netloop's cap. 0 means the open-file limit
// (Go raises the soft limit to the hard one at start) less fileSlack, so a
// client past it gets a clean close rather than an EMFILE on accept. An
// explicit value above that limit is kept but warned about.
func connCap(maxConns int, log zerolog.Logger) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return maxConns
	}
	avail := 1
	if lim.Cur > fileSlack+1 {
		avail = int(min(lim.Cur-fileSlack, 1<<31-1))
	}
	if maxConns == 0 {
		log.Info().Int("max_conns", avail).Uint64("nofile", lim.Cur).Msg("connection cap from the open-file limit")
		return avail
	}
	if maxConns > avail {
		log.Warn().Int("max_conns", maxConns).Uint64("nofile", lim.Cur).
			Msg("open-file limit is below -max-conns plus slack; set -max-conns lower or raise the limit")
	}
	return maxConns
}

func closeStore(store *storage.Store, log zerolog.Logger) error {
	start := time.Now()
	if err := store.Close(); err != nil {
		return fmt.Errorf("close storage: %w", err)
	}
	log.Info().Dur("took", time.Since(start)).Msg("storage closed")
	return nil
}

// servePprof serves net/http/pprof for profiling a running broker (off by
// default; the standard library's handlers, not a hand-made profiler).
func servePprof(addr string, log zerolog.Logger) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn().Err(err).Str("addr", addr).Msg("pprof listener")
		return
	}
	log.Info().Str("addr", ln.Addr().String()).Msg("pprof serving")
	go func() { _ = http.Serve(ln, nil) }()
}

// lateHandler lets netloop start before the kafka handler exists. Requests
// that race the attachment (a client connecting within microseconds of the
// bind, before "ready" is logged) get their connection closed; clients retry.
type lateHandler struct {
	h atomic.Pointer[kafka.Handler]
}

// Written implements netloop.Observer for the kafka handler's request
// metrics.
func (l *lateHandler) Written(req *netloop.Request, took time.Duration) {
	if h := l.h.Load(); h != nil {
		h.Written(req, took)
	}
}

func (l *lateHandler) Serve(req *netloop.Request) {
	h := l.h.Load()
	if h == nil {
		req.Respond(netloop.Response{Close: true})
		return
	}
	h.Serve(req)
}

// ConnOpened implements netloop.Opener. A connection opened before the
// handler is attached is closed, as its requests would be: the handler
// could not have started its authentication deadline.
func (l *lateHandler) ConnOpened(c netloop.Conn) {
	h := l.h.Load()
	if h == nil {
		c.Close()
		return
	}
	h.ConnOpened(c)
}

// clusterIDFile keeps the generated cluster id stable across restarts.
const clusterIDFile = "cluster.id"

// openWALDir creates the -wal directory durably (its entry in its parent
// synced, so a crash cannot lose it with acknowledged data inside) and
// returns the cluster id: configured when set, else the one kept in dir.
func openWALDir(fsys vfs.FS, dir, configured string) (string, error) {
	if err := vfs.MkdirAllSync(fsys, dir); err != nil {
		return "", fmt.Errorf("create -wal dir: %w", err)
	}
	if configured != "" {
		return configured, nil
	}
	return loadClusterID(fsys, dir)
}

// loadClusterID reads the cluster id kept in dir, or makes and keeps a new
// one: 16 random bytes in unpadded URL-safe base64, the shape Kafka uses.
// The new id is written durably (vfs.WriteFile) before it is returned, so
// a crash after the broker has handed it out cannot bring back a different
// one.
func loadClusterID(fsys vfs.FS, dir string) (string, error) {
	path := filepath.Join(dir, clusterIDFile)
	b, err := vfs.ReadFile(fsys, path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read cluster id: %w", err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := vfs.WriteFile(fsys, path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("write cluster id: %w", err)
	}
	return id, nil
}

// groupsDir is the group coordinator's directory under -wal.
const groupsDir = "groups"

// openGroups starts the group coordinator on <wal>/groups; topics are looked
// up in the store, and the internal topics beside them.
func openGroups(cfg Config, store *storage.Store, clusterID string, root zerolog.Logger) (*group.Coordinator, error) {
	gc, err := group.Open(groupConfig(cfg, store, clusterID, root))
	if errors.Is(err, group.ErrCorrupt) {
		return nil, fmt.Errorf("open group coordinator: %w (repair: start once with -offsets-log-repair)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("open group coordinator: %w", err)
	}
	return gc, nil
}

// groupConfig is the coordinator's configuration from the flags. The
// coordinator sees the internal topics (__consumer_offsets, ...) as Kafka's
// does: a KIP-848 regex or topic name may match them, and offsets may be
// committed for them (kafka/internal_topics.go says what reading them gives).
func groupConfig(cfg Config, store *storage.Store, clusterID string, root zerolog.Logger) group.Config {
	internal := kafka.InternalTopics(clusterID)
	return group.Config{
		Dir: filepath.Join(cfg.WALDir, groupsDir),
		Topics: func(topic string) (int32, bool) {
			if info, ok := store.Topic(topic); ok {
				return info.Partitions, true
			}
			for _, info := range internal {
				if info.Name == topic {
					return info.Partitions, true
				}
			}
			return 0, false
		},
		TopicList: func() []storage.TopicInfo {
			return append(store.Topics(), internal...)
		},
		ConsumerSessionTimeout:    cfg.GroupConsumerSessionTimeout,
		ConsumerHeartbeatInterval: cfg.GroupConsumerHeartbeatInterval,
		MaxRegexBytes:             cfg.GroupConsumerMaxRegexBytes,
		MinSessionTimeout:         cfg.GroupMinSessionTimeout,
		MaxSessionTimeout:         cfg.GroupMaxSessionTimeout,
		InitialRebalanceDelay:     cfg.GroupInitialRebalanceDelay,
		NoInitialDelay:            cfg.GroupInitialRebalanceDelay == 0,
		MaxGroupSize:              cfg.GroupMaxSize,
		MaxGroups:                 cfg.GroupMaxCount,
		OffsetsRetention:          cfg.OffsetsRetention,
		MaxMetadataBytes:          cfg.OffsetMetadataMaxBytes,
		MaxGroupMetadataBytes:     cfg.GroupMetadataMaxBytes,
		RepairLog:                 cfg.OffsetsLogRepair,
		Logger:                    root, // group adds its own component field
	}
}

// authorizer is the ACL authorizer -authorizer asks for, or nil.
func authorizer(cfg Config) *acl.Authorizer {
	if !cfg.Authorizer {
		return nil
	}
	return acl.New(acl.Config{SuperUsers: cfg.superUsers(), AllowIfNoACL: cfg.AllowIfNoACL})
}

// fetchSessions maps -max-fetch-sessions (0: none) to kafka.Config's
// MaxFetchSessions (0: the default, -1: none).
func fetchSessions(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
