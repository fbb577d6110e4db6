package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/klite/klite/group"
	"github.com/klite/klite/kafka"
	"github.com/klite/klite/metrics"
	"github.com/klite/klite/netloop"
	"github.com/klite/klite/storage"
	"github.com/klite/klite/txn"
)

// envPrefix names the environment variables that give flags their defaults:
// -max-conns is read from KLITE_MAX_CONNS. A flag on the command line wins
// over the environment; the environment wins over the built-in default.
const envPrefix = "KLITE_"

// Config is everything main needs to build the broker. Defaults and
// validation live here and nowhere else.
type Config struct {
	Listen    string // comma-separated [PROTOCOL://]host:port to bind
	Advertise string // comma-separated host:port clients are told to dial, in Listen's order; an empty entry is derived
	WALDir    string

	// TLS, for SSL (and SASL_SSL) listeners.
	TLSCert             string // PEM certificate chain; reloaded when it changes
	TLSKey              string // PEM private key
	TLSClientCA         string // PEM CAs; when set, client certificates are required and verified (mTLS)
	TLSHandshakeTimeout time.Duration
	TLSMaxHandshakes    int

	LogLevel  string
	LogFormat string // console | json

	FsyncLinger     time.Duration
	SegmentBytes    int64
	ShardQueueBytes int64
	WALCacheBytes   int64
	Prealloc        string // zero-fill | fallocate | none
	Shards          int
	ProducerExpiry  time.Duration

	NodeID             int
	ClusterID          string
	DefaultPartitions  int
	AutoCreateTopics   bool
	MaxMessageBytes    int
	MaxTopicPartitions int
	MaxPartitions      int64
	// MaxDescribePartitions caps the partitions of one
	// DescribeTopicPartitions response (max.request.partition.size.limit).
	MaxDescribePartitions int
	// MaxDecompressedBatchBytes bounds what one compressed batch may
	// decompress to while its records are validated.
	MaxDecompressedBatchBytes int64

	Loops               int
	MaxRequestBytes     int
	MaxInflightRequests int
	MaxInflightBytes    int64
	MaxOutboundBytes    int64
	MaxInboundBytes     int64 // 0: MaxRequestBytes + 8 MiB
	MaxQueuedBytes      int64 // -1: no cap
	MaxFetchWait        time.Duration
	MaxFetchSessions    int // 0: none
	MaxSessionParts     int
	MaxSessionCache     int // partitions of every fetch session together
	FetchWorkers        int
	QuotaWindow         time.Duration // byte-rate quotas: one sample's length
	QuotaWindowSamples  int           // byte-rate quotas: samples in the window
	QuotaMaxSensors     int           // quota rate state kept per user/client id, at most
	IdleTimeout         time.Duration
	MaxConns            int
	MaxConnRatePerIP    float64 // new connections per second per client address (IPv6: /64); 0: no cap

	SASLUsersFile   string        // user:password lines; empty: no users from a file
	SASLAuthTimeout time.Duration // SASL listeners: close connections not authenticated by then
	SASLMaxReceive  int           // SASL listeners: largest frame before authentication
	SASLMaxReauth   time.Duration // KIP-368 session lifetime; 0: sessions never expire
	SASLVerifiers   int           // password checks at once; 0: half the cores
	SASLQueued      int           // password checks waiting at most
	SASLFailDelay   time.Duration // KIP-306: failed authentications answered this late; 0: at once

	ShutdownTimeout time.Duration
	PprofAddr       string
	HTTPAddr        string        // /metrics, /livez, /readyz; empty: off
	SlowRequest     time.Duration // Warn for requests slower; 0: off
	MaxLagSeries    int           // cap of klite_group_lag series; negative: none
	WALTrace        string        // file for the WAL's trace events; empty: off

	// Retention (Kafka's log.retention.* broker settings): the defaults of
	// topics that do not set retention.ms / retention.bytes.
	RetentionMs            int64 // -1: forever
	RetentionBytes         int64 // -1: no limit
	RetentionCheckInterval time.Duration
	WALMaxBytes            int64 // 0: no cap
	WALHotBytes            int64 // with S3: uploaded data kept locally

	// Log compaction (cleanup.policy=compact topics); not run with S3.
	CompactionInterval    time.Duration // 0: off
	CompactionBytesPerSec int64         // 0: unbounded
	CompactionMapKeys     int
	CompactionMinRoll     time.Duration

	// Tiered storage: S3 is used when S3Bucket is set.
	S3Bucket        string
	S3Prefix        string
	S3Endpoint      string // custom endpoint, path-style addressing
	S3Region        string
	S3FlushInterval time.Duration // longest time data stays local-only
	S3ObjectBytes   int64
	S3CacheBytes    int64
	S3TakeOver      bool // claim the bucket prefix from another broker instance (tier.OwnerKey)

	// Group coordinator (package group); Kafka's group.* and offsets.* settings.
	GroupMinSessionTimeout     time.Duration
	GroupMaxSessionTimeout     time.Duration
	GroupInitialRebalanceDelay time.Duration
	GroupMaxSize               int
	GroupMaxCount              int // groups kept at most
	// Consumer group protocol (KIP-848); Kafka's group.consumer.* settings.
	GroupConsumerSessionTimeout    time.Duration
	GroupConsumerHeartbeatInterval time.Duration
	GroupConsumerMaxRegexBytes     int // longest SubscribedTopicRegex
	OffsetsRetention               time.Duration
	OffsetMetadataMaxBytes         int
	GroupMetadataMaxBytes          int  // largest stored classic generation (__consumer_offsets' max.message.bytes)
	OffsetsLogRepair               bool // cut a damaged offsets log at its bad record instead of refusing to start

	// Transaction coordinator (package txn); Kafka's transaction.* settings.
	TransactionMaxTimeout    time.Duration
	TransactionAbortInterval time.Duration
	TransactionalIDExpiry    time.Duration
	TxnListMaxPatternBytes   int // longest ListTransactions TransactionalIDPattern
	TransactionMaxIDs        int // transactional ids kept at most
	TransactionMaxGroups     int // groups (AddOffsetsToTxn) per transaction

	// ACLs (package acl).
	Authorizer   bool   // enforce ACLs
	AllowIfNoACL bool   // allow.everyone.if.no.acl.found
	SuperUsers   string // comma-separated principals allowed everything
}

// defaultConfig holds the built-in defaults. The Kafka-visible ones follow
// Apache Kafka's broker defaults (message.max.bytes, socket.request.max.bytes,
// connections.max.idle.ms, num.partitions).
func defaultConfig() Config {
	return Config{
		Listen:    ":9092",
		WALDir:    "./data",
		LogLevel:  "info",
		LogFormat: "console",

		FsyncLinger:     0,
		SegmentBytes:    256 << 20,
		ShardQueueBytes: 64 << 20,
		WALCacheBytes:   2 << 30,
		Prealloc:        "zero-fill",
		Shards:          0,
		ProducerExpiry:  24 * time.Hour,

		NodeID:                1,
		DefaultPartitions:     1,
		AutoCreateTopics:      true,
		MaxMessageBytes:       1048588,
		MaxTopicPartitions:    10000,
		MaxDescribePartitions: 2000,
		// 64 times the default max.message.bytes: text compresses 5-20x,
		// very repetitive data rarely past 50x. The limit costs CPU, not
		// memory (records are validated streaming).
		MaxDecompressedBatchBytes: 64 << 20,
		MaxPartitions:             storage.DefaultMaxTotalPartitions,

		Loops:               0,
		MaxRequestBytes:     100 << 20,
		MaxInflightRequests: 100,
		MaxInflightBytes:    128 << 20,
		MaxOutboundBytes:    64 << 20,
		MaxQueuedBytes:      netloop.DefaultMaxQueuedRequestBytes,
		MaxFetchWait:        kafka.DefaultMaxFetchWait,
		MaxFetchSessions:    kafka.DefaultMaxFetchSessions,
		MaxSessionParts:     kafka.DefaultMaxFetchSessionPartitions,
		MaxSessionCache:     kafka.DefaultMaxFetchSessionCacheParts,
		FetchWorkers:        kafka.DefaultFetchWorkers,
		QuotaWindow:         kafka.DefaultQuotaWindow,
		QuotaWindowSamples:  kafka.DefaultQuotaWindowSamples,
		QuotaMaxSensors:     kafka.DefaultQuotaMaxSensors,
		IdleTimeout:         10 * time.Minute,
		MaxConns:            0,

		SASLAuthTimeout:     kafka.DefaultSASLAuthTimeout,
		SASLMaxReceive:      kafka.DefaultSASLMaxReceiveBytes,
		SASLQueued:          kafka.DefaultSASLMaxQueuedVerifications,
		SASLFailDelay:       kafka.DefaultSASLFailedAuthDelay,
		TLSHandshakeTimeout: netloop.DefaultHandshakeTimeout,
		TLSMaxHandshakes:    netloop.DefaultMaxHandshakes,

		ShutdownTimeout: 30 * time.Second,

		RetentionMs:            604800000, // log.retention.hours=168
		RetentionBytes:         -1,
		RetentionCheckInterval: 5 * time.Minute,
		WALMaxBytes:            0,
		WALHotBytes:            1 << 30,

		CompactionInterval:    15 * time.Second,
		CompactionBytesPerSec: 64 << 20,
		CompactionMapKeys:     storage.DefaultCompactionMapKeys,
		CompactionMinRoll:     storage.DefaultCompactionMinRollInterval,

		S3Region:        "us-east-1",
		S3FlushInterval: 60 * time.Second,
		S3ObjectBytes:   64 << 20,
		S3CacheBytes:    256 << 20,
		SlowRequest:     time.Second,
		MaxLagSeries:    metrics.DefaultMaxLagSeries,

		GroupMinSessionTimeout:         group.DefaultMinSessionTimeout,
		GroupMaxSessionTimeout:         group.DefaultMaxSessionTimeout,
		GroupInitialRebalanceDelay:     group.DefaultInitialRebalanceDelay,
		GroupMaxSize:                   0,
		GroupMaxCount:                  group.DefaultMaxGroups,
		GroupConsumerSessionTimeout:    group.DefaultConsumerSessionTimeout,
		GroupConsumerHeartbeatInterval: group.DefaultConsumerHeartbeatInterval,
		GroupConsumerMaxRegexBytes:     group.DefaultMaxRegexBytes,
		OffsetsRetention:               group.DefaultOffsetsRetention,
		TransactionMaxTimeout:          txn.DefaultMaxTimeout,
		TransactionAbortInterval:       txn.DefaultAbortCheckInterval,
		TransactionalIDExpiry:          txn.DefaultIDExpiration,
		TxnListMaxPatternBytes:         kafka.DefaultMaxTxnPatternBytes,
		TransactionMaxIDs:              txn.DefaultMaxIDs,
		TransactionMaxGroups:           txn.DefaultMaxGroups,
		OffsetMetadataMaxBytes:         group.DefaultMaxMetadataBytes,
		GroupMetadataMaxBytes:          group.DefaultMaxGroupMetadataBytes,
	}
}

// parseConfig reads args (without the program name) and the environment into
// a validated Config. It returns flag.ErrHelp after printing usage for -h.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	cfg := defaultConfig()
	fs := newFlagSet(&cfg, out)

	// The environment replaces the defaults before the command line is parsed.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := getenv(name)
		if v == "" || envErr != nil {
			return
		}
		if err := f.Value.Set(v); err != nil {
			envErr = fmt.Errorf("%s=%q: %w", name, v, err)
		}
	})
	if envErr != nil {
		return cfg, envErr
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return cfg, cfg.validate()
}

// newFlagSet defines every flag on cfg, with cfg's values as defaults.
func newFlagSet(cfg *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("klite", flag.ContinueOnError)
	fs.SetOutput(out)

	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "comma-separated `[PROTOCOL://]host:port` list to listen on; port 0 picks a free port. PROTOCOL is\nPLAINTEXT (the default), SSL (needs -tls-cert and -tls-key), SASL_PLAINTEXT or SASL_SSL")
	fs.StringVar(&cfg.Advertise, "advertise", cfg.Advertise, "comma-separated `host:port` list returned in Metadata to clients of each -listen listener, in the same\norder. An empty entry (or an empty list): the listen address, with 127.0.0.1 when the listen host is empty or\nunspecified (0.0.0.0, ::) and the bound port when it is 0 or omitted. Set it whenever clients connect from other machines")
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "PEM certificate chain `file` for SSL listeners; read again when it changes, so a certificate rotates without\na restart (new connections get the new one)")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM private key `file` of -tls-cert")
	fs.StringVar(&cfg.TLSClientCA, "tls-client-ca", cfg.TLSClientCA, "PEM CA `file`: SSL listeners require client certificates signed by these CAs (mTLS); empty: no client certificates")
	fs.DurationVar(&cfg.TLSHandshakeTimeout, "tls-handshake-timeout", cfg.TLSHandshakeTimeout, "close a TLS connection whose handshake has not finished this long after it connected")
	fs.IntVar(&cfg.TLSMaxHandshakes, "tls-max-handshakes", cfg.TLSMaxHandshakes, "TLS handshakes running at once (each on a goroutine of its own); more wait their turn")
	fs.StringVar(&cfg.WALDir, "wal", cfg.WALDir, "data `dir`ectory for the write-ahead log and metadata")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log `level`: trace, debug, info, warn, error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log `format`: console or json (both on stderr)")
	fs.DurationVar(&cfg.FsyncLinger, "fsync-linger", cfg.FsyncLinger, "how long a shard waits for more writes before an fdatasync (group commit); 0 syncs at once")
	fs.Int64Var(&cfg.SegmentBytes, "segment-bytes", cfg.SegmentBytes, "WAL segment size in `bytes` before it rolls")
	fs.Int64Var(&cfg.ShardQueueBytes, "shard-queue-bytes", cfg.ShardQueueBytes, "produce `bytes` queued per storage shard before appends are refused with REQUEST_TIMED_OUT (clients retry)")
	fs.Int64Var(&cfg.WALCacheBytes, "wal-cache-bytes", cfg.WALCacheBytes, "newest WAL `bytes` kept in the page cache; older ones are dropped from it once durable, so writes reuse\nwarm memory and the broker's cache stays bounded (reads of older data come from disk); 0: leave it to the kernel")
	fs.StringVar(&cfg.Prealloc, "segment-prealloc", cfg.Prealloc, "how new WAL segments reserve disk: zero-fill (fallocate, then write zeros while the WAL is idle, at most\n32 MiB/s: steadiest fdatasync), fallocate (reserve only) or none (grow by appending)")
	fs.DurationVar(&cfg.ProducerExpiry, "producer-expiry", cfg.ProducerExpiry, "idempotent producer state idle this long is dropped (transactional.id.expiration.ms analogue)")
	fs.IntVar(&cfg.Shards, "shards", cfg.Shards, "storage writer shards, each with its own WAL and fsync; 0 means one per CPU")
	fs.IntVar(&cfg.NodeID, "node-id", cfg.NodeID, "broker id returned in Metadata")
	fs.StringVar(&cfg.ClusterID, "cluster-id", cfg.ClusterID, "cluster id returned in Metadata; empty: generated once and kept in <wal>/cluster.id")
	fs.IntVar(&cfg.DefaultPartitions, "default-partitions", cfg.DefaultPartitions, "partitions of auto-created topics and of CreateTopics with -1 partitions")
	fs.BoolVar(&cfg.AutoCreateTopics, "auto-create-topics", cfg.AutoCreateTopics, "create unknown topics on Metadata requests that allow it (auto.create.topics.enable)")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", cfg.MaxMessageBytes, "largest record batch accepted, in `bytes` (message.max.bytes)")
	fs.Int64Var(&cfg.MaxDecompressedBatchBytes, "max-decompressed-batch-bytes", cfg.MaxDecompressedBatchBytes, "most `bytes` a compressed record batch may decompress to; larger ones get MESSAGE_TOO_LARGE\n(Java producers then split the batch). Validation streams, so this bounds CPU, not memory")
	fs.IntVar(&cfg.MaxTopicPartitions, "max-topic-partitions", cfg.MaxTopicPartitions, "most partitions one topic may have")
	fs.Int64Var(&cfg.MaxPartitions, "max-partitions", cfg.MaxPartitions, "most partitions of all topics together; creates past it answer POLICY_VIOLATION")
	fs.IntVar(&cfg.MaxDescribePartitions, "max-describe-partitions", cfg.MaxDescribePartitions, "most partitions one DescribeTopicPartitions response carries (Kafka's max.request.partition.size.limit); the client pages with the cursor")
	fs.IntVar(&cfg.Loops, "loops", cfg.Loops, "network event loops; 0 means one per CPU")
	fs.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", cfg.MaxRequestBytes, "largest request frame, in `bytes`; larger ones close the connection (socket.request.max.bytes)")
	fs.IntVar(&cfg.MaxInflightRequests, "max-inflight-requests", cfg.MaxInflightRequests, "requests read but not yet answered, per connection; past it no more are read until one is answered")
	fs.Int64Var(&cfg.MaxInflightBytes, "max-inflight-bytes", cfg.MaxInflightBytes, "request `bytes` read but not yet answered, per connection (one frame is always admitted)")
	fs.Int64Var(&cfg.MaxOutboundBytes, "max-outbound-bytes", cfg.MaxOutboundBytes, "response `bytes` queued for a client that reads slowly, per connection; past it no more requests are read")
	fs.Int64Var(&cfg.MaxInboundBytes, "max-inbound-bytes", cfg.MaxInboundBytes, "`bytes` a client may send ahead while its connection is held back by the in-flight or outbound caps,\nbefore it is disconnected; 0 means -max-request-bytes plus 8 MiB")
	fs.Int64Var(&cfg.MaxQueuedBytes, "max-queued-request-bytes", cfg.MaxQueuedBytes, "request `bytes` held in memory by the whole broker (queued.max.request.bytes); past it no connection starts\na new request until memory frees; a request is let in whenever the whole requests held are below the cap; -1 no cap")
	fs.IntVar(&cfg.FetchWorkers, "fetch-workers", cfg.FetchWorkers, "goroutines reading for fetches at once; more fetches queue (a queued fetch costs bytes, a goroutine 8 KiB or more)")
	fs.DurationVar(&cfg.QuotaWindow, "quota-window", cfg.QuotaWindow, "length of one sample of the window client quotas are measured in (Kafka's quota.window.size.seconds);\na request_percentage throttle lasts at most one sample")
	fs.IntVar(&cfg.QuotaWindowSamples, "quota-window-samples", cfg.QuotaWindowSamples, "samples in the window client quotas are measured in (Kafka's quota.window.num); a byte-rate throttle lasts at most the whole window")
	fs.IntVar(&cfg.QuotaMaxSensors, "quota-max-sensors", cfg.QuotaMaxSensors, "most quota sensors (rate state of one user and/or client id under a quota, about 400 bytes each) kept at once;\npast it the least recently active are evicted, so clients cycling client ids cannot grow memory; rounded up to a multiple of 16")
	fs.IntVar(&cfg.MaxFetchSessions, "max-fetch-sessions", cfg.MaxFetchSessions, "most fetch sessions (KIP-227) cached at once, Kafka's max.incremental.fetch.session.cache.slots;\nwhen full, a new session evicts one idle over 2 minutes or a smaller one older than 2 minutes, else the client fetches without one; 0: no sessions")
	fs.IntVar(&cfg.MaxSessionParts, "max-fetch-session-partitions", cfg.MaxSessionParts, "most partitions in one fetch session (about 100 bytes each); a client fetching more fetches without a session")
	fs.IntVar(&cfg.MaxSessionCache, "max-fetch-session-cache-partitions", cfg.MaxSessionCache, "most partitions in all fetch sessions together (about 100 bytes each; a topic counts one more);\nwhen full, a new or growing session evicts stale or smaller sessions older than 2 minutes, else the client fetches without one")
	fs.DurationVar(&cfg.MaxFetchWait, "max-fetch-wait", cfg.MaxFetchWait, "longest a fetch waits for data, whatever its MaxWaitMs asks (clients give up after request.timeout.ms, 30s)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "close connections idle this long; 0 never (connections.max.idle.ms)")
	fs.Float64Var(&cfg.MaxConnRatePerIP, "max-connection-creation-rate-per-ip", cfg.MaxConnRatePerIP, "most new connections per second from one client address (an IPv6 address counts by its /64; KIP-612's\nconnection_creation_rate for IPs), with one second's worth at once; a connection past it is closed at once; 0: no cap")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "most open client connections; 0 means as many as the open-file limit allows, less a reserve for segment files; clients past the cap are closed at once")
	fs.StringVar(&cfg.SASLUsersFile, "sasl-users-file", cfg.SASLUsersFile, "`file` of user:password lines: SASL users (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) added at startup to the users\nkept in the metadata (AlterUserScramCredentials manages those at run time), as salted SCRAM credentials only.\nBlank lines and lines starting with # are skipped")
	fs.IntVar(&cfg.SASLMaxReceive, "sasl-max-receive-bytes", cfg.SASLMaxReceive, "on SASL listeners, the largest request in `bytes` a client may send before it has authenticated;\na larger one closes the connection (sasl.server.max.receive.size)")
	fs.DurationVar(&cfg.SASLMaxReauth, "sasl-max-reauth", cfg.SASLMaxReauth, "SASL session lifetime (KIP-368, connections.max.reauth.ms): clients re-authenticate on the same connection\nbefore it ends or are closed at their next request after it; 0: sessions never expire")
	fs.IntVar(&cfg.SASLVerifiers, "sasl-max-concurrent-verifications", cfg.SASLVerifiers, "password checks (PLAIN's key derivation, milliseconds of CPU each) run at once, off the event loops;\nmore wait in a queue per client address (IPv6: per /64), served round-robin; 0: half the cores, at least 1")
	fs.IntVar(&cfg.SASLQueued, "sasl-max-queued-verifications", cfg.SASLQueued, "password checks waiting for their turn at most; when full, a new check takes the place of the newest\nof the longest address queue (or fails, if that is its own address's), and the displaced check fails")
	fs.DurationVar(&cfg.SASLFailDelay, "sasl-failed-auth-delay", cfg.SASLFailDelay, "answer a failed SASL authentication this late, then close the connection (KIP-306,\nconnection.failed.authentication.delay.ms), so retrying passwords is slow; 0: at once")
	fs.DurationVar(&cfg.SASLAuthTimeout, "sasl-auth-timeout", cfg.SASLAuthTimeout, "on SASL listeners, close a connection that has not finished authenticating this long after it opened")
	fs.StringVar(&cfg.WALTrace, "wal-trace", cfg.WALTrace, "write one JSON line per WAL step (group commit write, fdatasync, acknowledgement, segment roll,\npreparation and zero-fill step, checkpoint) to this `file`, for finding what a latency spike was; about 100 bytes\nper event, thousands of events a second under load, never rotated: for a diagnosis, not to leave on; empty: off")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "serve Prometheus metrics (/metrics), liveness (/livez) and readiness (/readyz) over HTTP on this `host:port`\n(e.g. 127.0.0.1:9644, or :9644 for a scraper or probe on another host); no authentication; empty: off")
	fs.DurationVar(&cfg.SlowRequest, "slow-request", cfg.SlowRequest, "log a Warn (at most one a second) for each request slower than this from arrival to response written\n(fetches that long-polled excepted); 0: off")
	fs.IntVar(&cfg.MaxLagSeries, "metrics-max-lag-series", cfg.MaxLagSeries, "most klite_group_lag series (one per group and partition with a committed offset) a scrape returns;\npast it lag is only in klite_group_topic_lag (per group and topic); negative: none")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", cfg.PprofAddr, "serve Go's net/http/pprof profiles on this `host:port` (e.g. 127.0.0.1:6060); empty: off")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long a graceful stop waits for in-flight requests, and with -s3-bucket for the final upload")
	fs.DurationVar(&cfg.GroupMinSessionTimeout, "group-min-session-timeout", cfg.GroupMinSessionTimeout, "smallest consumer session timeout accepted (group.min.session.timeout.ms)")
	fs.DurationVar(&cfg.GroupMaxSessionTimeout, "group-max-session-timeout", cfg.GroupMaxSessionTimeout, "largest consumer session timeout accepted (group.max.session.timeout.ms)")
	fs.DurationVar(&cfg.GroupInitialRebalanceDelay, "group-initial-rebalance-delay", cfg.GroupInitialRebalanceDelay, "how long a new group waits for more members before its first rebalance; 0 none\n(group.initial.rebalance.delay.ms)")
	fs.DurationVar(&cfg.GroupConsumerSessionTimeout, "group-consumer-session-timeout", cfg.GroupConsumerSessionTimeout, "session timeout of consumer-protocol group members, KIP-848 (group.consumer.session.timeout.ms)")
	fs.DurationVar(&cfg.GroupConsumerHeartbeatInterval, "group-consumer-heartbeat-interval", cfg.GroupConsumerHeartbeatInterval, "heartbeat interval given to consumer-protocol group members, KIP-848\n(group.consumer.heartbeat.interval.ms)")
	fs.IntVar(&cfg.GroupConsumerMaxRegexBytes, "group-consumer-max-regex-bytes", cfg.GroupConsumerMaxRegexBytes, "longest SubscribedTopicRegex of a consumer-protocol member, KIP-848, in `bytes`; a longer one answers\nINVALID_REGULAR_EXPRESSION (regexes are matched against every topic name)")
	fs.IntVar(&cfg.GroupMaxCount, "group-max-count", cfg.GroupMaxCount, "most consumer groups the broker keeps; a JoinGroup, ConsumerGroupHeartbeat or (Txn)OffsetCommit that would create\none more answers POLICY_VIOLATION (groups leave when their offsets expire or DeleteGroups removes them)")
	fs.IntVar(&cfg.GroupMaxSize, "group-max-size", cfg.GroupMaxSize, "most members of one consumer group; 0 means unlimited (group.max.size)")
	fs.DurationVar(&cfg.OffsetsRetention, "offsets-retention", cfg.OffsetsRetention, "committed offsets of a group without members are dropped this long after it emptied, or after the\ncommit for groups that only store offsets (offsets.retention.minutes)")
	fs.DurationVar(&cfg.TransactionMaxTimeout, "transaction-max-timeout", cfg.TransactionMaxTimeout, "longest transaction timeout a producer may ask for; a longer one answers INVALID_TRANSACTION_TIMEOUT\n(transaction.max.timeout.ms)")
	fs.DurationVar(&cfg.TransactionAbortInterval, "transaction-abort-interval", cfg.TransactionAbortInterval, "how often transactions open past their timeout are aborted by the broker, and expired transactional ids\nremoved (transaction.abort.timed.out.transaction.cleanup.interval.ms)")
	fs.IntVar(&cfg.TxnListMaxPatternBytes, "list-transactions-max-pattern-bytes", cfg.TxnListMaxPatternBytes, "longest TransactionalIdPattern of a ListTransactions request, KIP-1152, in `bytes`; a longer one answers\nINVALID_REGULAR_EXPRESSION (a pattern is matched against every transactional id)")
	fs.IntVar(&cfg.TransactionMaxIDs, "transaction-max-ids", cfg.TransactionMaxIDs, "transactional ids the coordinator keeps at most (some 400 B of memory each); an InitProducerId for a new one\nbeyond it answers POLICY_VIOLATION until ids expire (-transactional-id-expiration)")
	fs.IntVar(&cfg.TransactionMaxGroups, "transaction-max-groups", cfg.TransactionMaxGroups, "consumer groups one transaction may add with AddOffsetsToTxn; one more answers POLICY_VIOLATION")
	fs.DurationVar(&cfg.TransactionalIDExpiry, "transactional-id-expiration", cfg.TransactionalIDExpiry, "a transactional id with no transaction open, unused this long, is forgotten (transactional.id.expiration.ms)")
	fs.IntVar(&cfg.OffsetMetadataMaxBytes, "offset-metadata-max-bytes", cfg.OffsetMetadataMaxBytes, "largest metadata string of a committed offset, in `bytes` (offset.metadata.max.bytes)")
	fs.IntVar(&cfg.GroupMetadataMaxBytes, "group-metadata-max-bytes", cfg.GroupMetadataMaxBytes, "largest stored generation of a classic group (every member's subscription and assignment), in `bytes`;\na SyncGroup over it answers UNKNOWN_SERVER_ERROR, as Kafka does past __consumer_offsets' max.message.bytes")
	fs.BoolVar(&cfg.OffsetsLogRepair, "offsets-log-repair", cfg.OffsetsLogRepair, "start even if the group offsets log is damaged: cut each damaged file at its first bad record, keeping the\ncut bytes in <file>.broken-<offset> (commits after the cut in that file are lost); without it klite refuses to start")
	fs.Int64Var(&cfg.RetentionMs, "retention-ms", cfg.RetentionMs, "default retention.ms of topics: data older than this many `ms` is deleted; -1 keeps it forever (log.retention.ms)")
	fs.Int64Var(&cfg.RetentionBytes, "retention-bytes", cfg.RetentionBytes, "default retention.bytes of topics: a partition's oldest data is deleted past this many `bytes`; -1 no limit\n(log.retention.bytes)")
	fs.DurationVar(&cfg.RetentionCheckInterval, "retention-check-interval", cfg.RetentionCheckInterval, "how often retention runs (log.retention.check.interval.ms)")
	fs.DurationVar(&cfg.CompactionInterval, "compaction-interval", cfg.CompactionInterval, "how often log compaction looks for partitions of cleanup.policy=compact topics to clean (Kafka's\nlog.cleaner.backoff.ms); 0: off. With -s3-bucket the bucket's copy is compacted")
	fs.Int64Var(&cfg.CompactionBytesPerSec, "compaction-max-bytes-per-sec", cfg.CompactionBytesPerSec, "`bytes` per second log compaction reads (log.cleaner.io.max.bytes.per.second); 0: unbounded")
	fs.IntVar(&cfg.CompactionMapKeys, "compaction-map-keys", cfg.CompactionMapKeys, "most distinct keys one cleaning of a partition maps, about 50 bytes each (Kafka's log.cleaner.dedupe.buffer.size);\na partition with more keys in its uncleaned part is cleaned over several passes, each rewriting its compacted file")
	fs.DurationVar(&cfg.CompactionMinRoll, "compaction-min-roll-interval", cfg.CompactionMinRoll, "least time a shard's active WAL segment has been active before compaction rolls it for a topic's\nsegment.ms or max.compaction.lag.ms (segments are shared by a shard's partitions); 0: no floor")
	fs.Int64Var(&cfg.WALMaxBytes, "wal-max-bytes", cfg.WALMaxBytes, "cap on the WAL's segment `bytes`; past it produce fails with KAFKA_STORAGE_ERROR until retention or uploads\nfree space; 0 means no cap")
	fs.Int64Var(&cfg.WALHotBytes, "wal-hot-bytes", cfg.WALHotBytes, "with -s3-bucket: `bytes` of already uploaded data kept in the local WAL as a read cache; 1 keeps none")
	fs.StringVar(&cfg.S3Bucket, "s3-bucket", cfg.S3Bucket, "S3 `bucket` for tiered storage: older data is uploaded there and read back from it; empty: local only.\nCredentials come from the AWS default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, IAM role)")
	fs.StringVar(&cfg.S3Prefix, "s3-prefix", cfg.S3Prefix, "key `prefix` for everything klite writes to the bucket (e.g. klite/)")
	fs.StringVar(&cfg.S3Endpoint, "s3-endpoint", cfg.S3Endpoint, "custom S3 endpoint `URL` (MinIO, versitygw, ...), addressed path-style; empty: AWS")
	fs.StringVar(&cfg.S3Region, "s3-region", cfg.S3Region, "S3 `region`")
	fs.DurationVar(&cfg.S3FlushInterval, "s3-flush-interval", cfg.S3FlushInterval, "longest time acknowledged data stays local-only before it is uploaded")
	fs.Int64Var(&cfg.S3ObjectBytes, "s3-object-bytes", cfg.S3ObjectBytes, "target size in `bytes` of one uploaded object")
	fs.Int64Var(&cfg.S3CacheBytes, "s3-cache-bytes", cfg.S3CacheBytes, "memory in `bytes` for caching data read back from S3")
	fs.BoolVar(&cfg.S3TakeOver, "s3-take-over", cfg.S3TakeOver, "claim the bucket prefix although another broker instance holds it: only when that broker is gone for good\n(disaster recovery after a crash); a prefix released by a clean stop needs no take-over")
	fs.BoolVar(&cfg.Authorizer, "authorizer", cfg.Authorizer, "enforce ACLs (CreateAcls, DescribeAcls, DeleteAcls): every request is checked for the operation Kafka requires\non its resources; off, the ACL APIs answer SECURITY_DISABLED")
	fs.BoolVar(&cfg.AllowIfNoACL, "allow-everyone-if-no-acl", cfg.AllowIfNoACL, "with -authorizer: a resource that no ACL matches is open to everyone (allow.everyone.if.no.acl.found)")
	fs.StringVar(&cfg.SuperUsers, "super-users", cfg.SuperUsers, "comma-separated `principals` (User:admin,User:ops) every ACL check allows (super.users)")

	fs.Usage = func() {
		fmt.Fprintf(out, "klite: a single-node Kafka-compatible broker\n\nUsage: klite [flags]\n\n")
		fmt.Fprintf(out, "Every flag can also be set with an environment variable named KLITE_ and the flag name\n")
		fmt.Fprintf(out, "in upper case with - as _ (-max-conns: KLITE_MAX_CONNS). A flag given on the command\n")
		fmt.Fprintf(out, "line wins over the environment.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// envName maps a flag name to its environment variable.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	lns, err := parseListeners(c.Listen)
	if err != nil {
		bad("-listen %q: %v", c.Listen, err)
	}
	if c.Advertise != "" {
		advs := strings.Split(c.Advertise, ",")
		if err == nil && len(advs) != len(lns) {
			bad("-advertise %q: %d entries for %d listeners (an entry may be empty)", c.Advertise, len(advs), len(lns))
		}
		for _, a := range advs {
			if a = strings.TrimSpace(a); a == "" {
				continue
			}
			if _, err := splitAdvertise(a); err != nil {
				bad("-advertise %q: %v", a, err)
			}
		}
	}
	needTLS := false
	for _, l := range lns {
		needTLS = needTLS || l.Proto.TLS()
	}
	if needTLS && (c.TLSCert == "" || c.TLSKey == "") {
		bad("SSL listeners need -tls-cert and -tls-key")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("-tls-cert and -tls-key go together")
	}
	if c.TLSHandshakeTimeout <= 0 {
		bad("-tls-handshake-timeout must be > 0")
	}
	if c.TLSMaxHandshakes < 1 {
		bad("-tls-max-handshakes must be at least 1")
	}
	if c.WALDir == "" {
		bad("-wal must not be empty")
	}
	for _, p := range c.superUsers() {
		if i := strings.IndexByte(p, ':'); i <= 0 || i == len(p)-1 {
			bad("-super-users: %q is not Type:Name (User:admin)", p)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("-log-level: %v", err)
	}
	if c.LogFormat != "console" && c.LogFormat != "json" {
		bad("-log-format %q: want console or json", c.LogFormat)
	}
	if c.WALCacheBytes < 0 {
		bad("-wal-cache-bytes must be 0 or more")
	}
	if c.ShardQueueBytes <= 0 {
		bad("-shard-queue-bytes must be > 0")
	}
	if c.FsyncLinger < 0 || c.FsyncLinger > 100*time.Millisecond {
		bad("-fsync-linger must be in [0, 100ms]")
	}
	if c.SegmentBytes < 1<<20 || c.SegmentBytes > 4<<30 {
		bad("-segment-bytes must be in [1 MiB, 4 GiB]")
	}
	if _, ok := preallocModes[c.Prealloc]; !ok {
		bad("-segment-prealloc %q: want zero-fill, fallocate or none", c.Prealloc)
	}
	if c.ProducerExpiry <= 0 {
		bad("-producer-expiry must be > 0")
	}
	if c.MaxDescribePartitions < 1 {
		bad("-max-describe-partitions must be at least 1")
	}
	if c.MaxTopicPartitions < 1 || c.MaxTopicPartitions > 100000 {
		bad("-max-topic-partitions must be in [1, 100000]")
	}
	if c.MaxPartitions < 1 {
		bad("-max-partitions must be at least 1")
	}
	if c.DefaultPartitions > c.MaxTopicPartitions {
		bad("-default-partitions (%d) must not exceed -max-topic-partitions (%d)", c.DefaultPartitions, c.MaxTopicPartitions)
	}
	if int64(c.MaxMessageBytes) > c.SegmentBytes {
		bad("-max-message-bytes (%d) must not exceed -segment-bytes (%d)", c.MaxMessageBytes, c.SegmentBytes)
	}
	if c.Shards < 0 || c.Shards > 1024 {
		bad("-shards must be in [0, 1024]")
	}
	if c.NodeID < 0 || c.NodeID > 1<<31-1 {
		bad("-node-id must be in [0, 2147483647]")
	}
	if c.DefaultPartitions < 1 {
		bad("-default-partitions must be at least 1")
	}
	if c.MaxMessageBytes < 1024 {
		bad("-max-message-bytes must be at least 1024")
	}
	if c.MaxDecompressedBatchBytes < 1024 || c.MaxDecompressedBatchBytes > 1<<30 {
		// Above 1 GiB franz-go's consumer refuses the batch by default.
		bad("-max-decompressed-batch-bytes must be in [1024, 1073741824]")
	}
	if c.Loops < 0 || c.Loops > 1024 {
		bad("-loops must be in [0, 1024]")
	}
	if c.MaxRequestBytes < 1024 || c.MaxRequestBytes > 1<<31-1 {
		bad("-max-request-bytes must be in [1024, 2147483647]")
	}
	if c.MaxRequestBytes < c.MaxMessageBytes {
		bad("-max-request-bytes (%d) must be at least -max-message-bytes (%d)", c.MaxRequestBytes, c.MaxMessageBytes)
	}
	if c.MaxInflightRequests < 1 {
		bad("-max-inflight-requests must be at least 1")
	}
	if c.MaxInflightBytes < 1 {
		bad("-max-inflight-bytes must be at least 1 (one frame is always admitted)")
	}
	if c.MaxOutboundBytes < 1<<20 {
		bad("-max-outbound-bytes must be at least 1 MiB")
	}
	if c.MaxInboundBytes != 0 && c.MaxInboundBytes < int64(c.MaxRequestBytes) {
		bad("-max-inbound-bytes (%d) must be 0 or at least -max-request-bytes (%d)", c.MaxInboundBytes, c.MaxRequestBytes)
	}
	if c.MaxQueuedBytes != -1 && c.MaxQueuedBytes < 1<<20 {
		bad("-max-queued-request-bytes must be -1 (no cap) or at least 1 MiB")
	}
	if c.FetchWorkers < 1 || c.FetchWorkers > 100000 {
		bad("-fetch-workers must be in [1, 100000]")
	}
	if c.QuotaWindow < time.Millisecond || c.QuotaWindow > time.Hour {
		bad("-quota-window must be in [1ms, 1h]")
	}
	if c.QuotaWindowSamples < 2 || c.QuotaWindowSamples > 1000 {
		bad("-quota-window-samples must be in [2, 1000]")
	}
	if c.QuotaMaxSensors < 16 || c.QuotaMaxSensors > 10_000_000 {
		bad("-quota-max-sensors must be in [16, 10000000]")
	}
	if c.MaxFetchSessions < 0 || c.MaxFetchSessions > 1_000_000 {
		bad("-max-fetch-sessions must be in [0, 1000000]")
	}
	if c.MaxSessionParts < 1 {
		bad("-max-fetch-session-partitions must be at least 1")
	}
	if c.MaxSessionCache < 1 {
		bad("-max-fetch-session-cache-partitions must be at least 1")
	}
	if c.MaxFetchWait < time.Millisecond {
		bad("-max-fetch-wait must be at least 1ms")
	}
	if c.SASLAuthTimeout <= 0 {
		bad("-sasl-auth-timeout must be > 0")
	}
	if c.SASLMaxReauth < 0 {
		bad("-sasl-max-reauth must be >= 0")
	}
	if c.SASLMaxReceive <= 0 {
		bad("-sasl-max-receive-bytes must be > 0")
	}
	if c.SASLVerifiers < 0 {
		bad("-sasl-max-concurrent-verifications must be >= 0")
	}
	if c.SASLQueued <= 0 {
		bad("-sasl-max-queued-verifications must be > 0")
	}
	if c.SASLFailDelay < 0 || c.SASLFailDelay >= c.SASLAuthTimeout {
		bad("-sasl-failed-auth-delay must be >= 0 and below -sasl-auth-timeout")
	}
	if c.IdleTimeout < 0 {
		bad("-idle-timeout must be >= 0")
	}
	if c.MaxConnRatePerIP < 0 {
		bad("-max-connection-creation-rate-per-ip must be >= 0")
	}
	if c.MaxConns < 0 {
		bad("-max-conns must be >= 0")
	}
	if c.SlowRequest < 0 {
		bad("-slow-request must not be negative")
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			bad("-http-addr %q: %v", c.HTTPAddr, err)
		}
	}
	if c.ShutdownTimeout <= 0 {
		bad("-shutdown-timeout must be > 0")
	}
	if c.GroupMinSessionTimeout <= 0 || c.GroupMaxSessionTimeout < c.GroupMinSessionTimeout {
		bad("-group-min-session-timeout must be > 0 and at most -group-max-session-timeout")
	}
	if c.GroupInitialRebalanceDelay < 0 {
		bad("-group-initial-rebalance-delay must be >= 0")
	}
	if c.GroupConsumerHeartbeatInterval <= 0 || c.GroupConsumerSessionTimeout <= c.GroupConsumerHeartbeatInterval {
		bad("-group-consumer-heartbeat-interval must be > 0 and below -group-consumer-session-timeout")
	}
	if c.GroupConsumerMaxRegexBytes < 1 {
		bad("-group-consumer-max-regex-bytes must be > 0")
	}
	if c.GroupMaxCount < 1 {
		bad("-group-max-count must be > 0")
	}
	if c.GroupMaxSize < 0 {
		bad("-group-max-size must be >= 0")
	}
	if c.TransactionMaxTimeout < time.Millisecond || c.TransactionMaxTimeout.Milliseconds() > 1<<31-1 {
		bad("-transaction-max-timeout must be between 1ms and 2147483647ms")
	}
	if c.TransactionAbortInterval <= 0 {
		bad("-transaction-abort-interval must be > 0")
	}
	if c.TxnListMaxPatternBytes < 1 {
		bad("-list-transactions-max-pattern-bytes must be > 0")
	}
	if c.TransactionalIDExpiry <= 0 {
		bad("-transactional-id-expiration must be > 0")
	}
	if c.TransactionMaxIDs < 1 {
		bad("-transaction-max-ids must be > 0")
	}
	if c.TransactionMaxGroups < 1 {
		bad("-transaction-max-groups must be > 0")
	}
	if c.OffsetsRetention <= 0 {
		bad("-offsets-retention must be > 0")
	}
	if c.OffsetMetadataMaxBytes < 1 || c.OffsetMetadataMaxBytes > group.MaxMetadataBytesLimit {
		bad("-offset-metadata-max-bytes must be between 1 and %d", group.MaxMetadataBytesLimit)
	}
	if c.GroupMetadataMaxBytes < 1024 || c.GroupMetadataMaxBytes > group.MaxGroupMetadataBytesLimit {
		bad("-group-metadata-max-bytes must be between 1024 and %d (the offsets log's record limit)", group.MaxGroupMetadataBytesLimit)
	}
	if c.RetentionMs < -1 || c.RetentionMs == 0 {
		bad("-retention-ms must be -1 (forever) or > 0")
	}
	if c.RetentionBytes < -1 || c.RetentionBytes == 0 {
		bad("-retention-bytes must be -1 (no limit) or > 0")
	}
	if c.RetentionCheckInterval < 100*time.Millisecond {
		bad("-retention-check-interval must be at least 100ms")
	}
	if c.CompactionInterval < 0 || (c.CompactionInterval > 0 && c.CompactionInterval < 100*time.Millisecond) {
		bad("-compaction-interval must be 0 (off) or at least 100ms")
	}
	if c.CompactionBytesPerSec < 0 {
		bad("-compaction-max-bytes-per-sec must be 0 (unbounded) or > 0")
	}
	if c.CompactionMapKeys < 1000 {
		bad("-compaction-map-keys must be at least 1000")
	}
	if c.CompactionMinRoll < 0 {
		bad("-compaction-min-roll-interval must be 0 (no floor) or > 0")
	}
	if c.WALMaxBytes < 0 || (c.WALMaxBytes > 0 && c.WALMaxBytes < 2*c.SegmentBytes) {
		bad("-wal-max-bytes must be 0 (no cap) or at least two segments (2 x -segment-bytes)")
	}
	if c.WALHotBytes < 1 {
		bad("-wal-hot-bytes must be at least 1 (1: keep nothing already uploaded)")
	}
	if c.S3Bucket == "" && (c.S3Prefix != "" || c.S3Endpoint != "") {
		bad("-s3-prefix and -s3-endpoint need -s3-bucket")
	}
	if c.S3Bucket == "" && c.S3TakeOver {
		bad("-s3-take-over needs -s3-bucket")
	}
	if c.S3Endpoint != "" {
		if u, err := url.Parse(c.S3Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("-s3-endpoint %q: want an http:// or https:// URL", c.S3Endpoint)
		}
	}
	if c.S3Region == "" {
		bad("-s3-region must not be empty")
	}
	if c.S3FlushInterval < 100*time.Millisecond {
		bad("-s3-flush-interval must be at least 100ms")
	}
	if c.S3ObjectBytes < 1<<20 || c.S3ObjectBytes > 5<<30 {
		bad("-s3-object-bytes must be in [1 MiB, 5 GiB]")
	}
	if c.S3CacheBytes < 1<<20 {
		bad("-s3-cache-bytes must be at least 1 MiB")
	}
	return errors.Join(errs...)
}

// preallocModes maps -segment-prealloc to storage's modes.
var preallocModes = map[string]storage.Prealloc{
	"zero-fill": storage.PreallocZeroFill,
	"fallocate": storage.PreallocFallocate,
	"none":      storage.PreallocNone,
}

// listenSpec is one -listen entry.
type listenSpec struct {
	Proto kafka.SecurityProtocol
	Addr  string // host:port
}

// parseListeners splits -listen's comma-separated list.
func parseListeners(s string) ([]listenSpec, error) {
	var out []listenSpec
	for _, e := range strings.Split(s, ",") {
		proto, addr, err := parseListen(strings.TrimSpace(e))
		if err != nil {
			return nil, err
		}
		out = append(out, listenSpec{Proto: proto, Addr: addr})
	}
	return out, nil
}

// parseListen splits one -listen entry "[PROTOCOL://]host:port" (PLAINTEXT
// when the protocol is omitted).
func parseListen(s string) (kafka.SecurityProtocol, string, error) {
	proto, addr := kafka.Plaintext, s
	if name, rest, ok := strings.Cut(s, "://"); ok {
		p, known := kafka.ParseSecurityProtocol(strings.ToUpper(name))
		if !known {
			return "", "", fmt.Errorf("unknown security protocol %q: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", name)
		}
		proto, addr = p, rest
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", err
	}
	return proto, addr, nil
}

// hostPort is an advertised address; Port 0 means "the bound port".
type hostPort struct {
	Host string
	Port int
}

// splitAdvertise accepts "host:port", "host:" or "host".
func splitAdvertise(s string) (hostPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// A bare host (no port) is allowed; a bare IPv6 address needs brackets.
		if strings.Contains(s, ":") {
			return hostPort{}, err
		}
		host, port = s, ""
	}
	if host == "" {
		return hostPort{}, errors.New("empty host")
	}
	hp := hostPort{Host: host}
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return hostPort{}, fmt.Errorf("bad port %q", port)
		}
		hp.Port = p
	}
	return hp, nil
}

// advertised works out the address to put in Metadata from the flags and the
// address actually bound. It reports whether clients on other machines will be
// unable to use it, and why.
func advertised(advertise, listen string, bound net.Addr) (hp hostPort, warn string) {
	boundPort := 0
	if ta, ok := bound.(*net.TCPAddr); ok {
		boundPort = ta.Port
	}
	if advertise != "" {
		hp, _ = splitAdvertise(advertise) // validated
		if hp.Port == 0 {
			hp.Port = boundPort
		}
		if ip := net.ParseIP(hp.Host); ip != nil && ip.IsUnspecified() {
			warn = "advertised host is unspecified; clients cannot dial it, set -advertise to a reachable host"
		}
		return hp, warn
	}
	host, _, _ := net.SplitHostPort(listen)
	hp = hostPort{Host: host, Port: boundPort}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		hp.Host = "127.0.0.1"
		warn = "listening on all interfaces but advertising 127.0.0.1; clients on other machines need -advertise"
	}
	return hp, warn
}

func (hp hostPort) String() string { return net.JoinHostPort(hp.Host, strconv.Itoa(hp.Port)) }

// superUsers splits -super-users.
func (c *Config) superUsers() []string {
	var out []string
	for _, p := range strings.Split(c.SuperUsers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
