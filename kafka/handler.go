// Package kafka speaks the Kafka wire protocol for klite. It parses request
// headers, dispatches by api key to one file per API (named by key, as in
// franz-go's kfake), and encodes every request and response body with
// franz-go's kmsg.
//
// Invariants:
//   - Serve never blocks the event loop: cheap requests are answered inline;
//     anything that touches the disk or waits runs on another goroutine and
//     calls Respond from there.
//   - Every request is completed exactly once: a response, an empty response
//     (acks=0 produce) or a connection close.
//   - Client input never panics the broker: a frame whose header or body does
//     not parse closes the connection; a Kafka-level error is data in the
//     response.
//   - The versions advertised by ApiVersions are the ranges registered beside
//     each handler (register), so the two cannot drift.
package kafka

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/netloop"
	"github.com/klite/klite/storage"
)

// Defaults and limits. Each is overridable through Config.
const (
	defaultPartitions         = 1
	defaultMaxMessageBytes    = 1048588 // Kafka's max.message.bytes default
	defaultMaxDecompressed    = 64 << 20
	defaultMaxTopicPartitions = 10000 // CreateTopics/auto-create cap
	defaultAdvertisedPort     = 9092
	// DefaultMaxFetchWait caps a fetch's MaxWaitMs. Kafka clients wait far
	// less (fetch.max.wait.ms is 500 ms in the Java client and librdkafka,
	// 5 s in franz-go) and give up on a request after request.timeout.ms,
	// 30 s by default: a longer wait only pins memory for a client that has
	// stopped listening. Answering early is always allowed (Kafka does so
	// whenever MinBytes are there), so clients handle it.
	DefaultMaxFetchWait = 30 * time.Second
	// DefaultQuotaWindow and DefaultQuotaWindowSamples are Kafka's
	// quota.window.size.seconds (1) and quota.window.num (11).
	DefaultQuotaWindow        = time.Second
	DefaultQuotaWindowSamples = 11

	// requestHeaderBytes is api key, api version and correlation id.
	requestHeaderBytes = 8
	// pooledBufMaxBytes: larger response buffers are left to the GC.
	pooledBufMaxBytes = 1 << 20
)

// Config configures the protocol layer. Zero values take the defaults above,
// except NodeID.
type Config struct {
	// NodeID is the broker id (Kafka's node.id/broker.id). It has no
	// default: 0 is a valid id, so the zero value means node 0.
	NodeID int32
	// Listeners are the listeners in the order of netloop's, each with the
	// address clients that came in on it are given. Empty means one
	// PLAINTEXT listener at AdvertisedHost:AdvertisedPort.
	Listeners      []Listener
	AdvertisedHost string
	AdvertisedPort int32
	ClusterID      string
	// AutoCreateTopics lets Metadata create missing topics (Kafka's
	// auto.create.topics.enable).
	AutoCreateTopics  bool
	DefaultPartitions int32 // default 1, for auto-created topics and NumPartitions -1
	// MaxMessageBytes is the broker-wide max.message.bytes; a topic's own
	// max.message.bytes config overrides it.
	MaxMessageBytes int32
	// MaxTopicPartitions caps the partition count of one topic.
	MaxTopicPartitions int32
	// MaxDescribePartitions caps the partitions of one
	// DescribeTopicPartitions response; 0 means Kafka's default, 2000.
	MaxDescribePartitions int32
	// MaxDecompressedBatchBytes bounds what one compressed batch may
	// decompress to while produce validates its records.
	MaxDecompressedBatchBytes int64
	// MaxFetchWait caps how long a fetch long-polls, whatever its MaxWaitMs.
	// 0 means DefaultMaxFetchWait.
	MaxFetchWait time.Duration
	// MaxFetchSessions caps the fetch sessions cached (KIP-227, Kafka's
	// max.incremental.fetch.session.cache.slots); 0 means
	// DefaultMaxFetchSessions, -1 none (every fetch is sessionless).
	MaxFetchSessions int
	// MaxFetchSessionPartitions caps the partitions of one fetch session;
	// 0 means DefaultMaxFetchSessionPartitions.
	MaxFetchSessionPartitions int
	// MaxFetchSessionCacheParts caps the cost of all fetch sessions cached
	// together, in partitions of about 100 bytes (fetch_session.go); 0
	// means DefaultMaxFetchSessionCacheParts.
	MaxFetchSessionCacheParts int
	// FetchWorkers caps the goroutines that read for fetches; more fetches
	// queue (runner.go). 0 means DefaultFetchWorkers.
	FetchWorkers int
	Logger       zerolog.Logger

	// Reported by DescribeConfigs only (configs.go): netloop and storage
	// enforce these. Kafka's names and units; zero reports Kafka's default.
	BoundListeners        string // listeners, e.g. "PLAINTEXT://127.0.0.1:9092"
	LogDirs               string // log.dirs: the data directory (zero: null)
	SegmentBytes          int64  // log.segment.bytes, the default of topics' segment.bytes: WAL segment size
	SocketRequestMaxBytes int32  // socket.request.max.bytes: largest request frame
	QueuedMaxRequestBytes int64  // queued.max.request.bytes; -1: no cap
	ConnectionsMaxIdleMs  int64  // connections.max.idle.ms; -1: idle connections are kept
	MaxConnections        int32  // max.connections
	// Retention defaults of topics that do not set retention.ms /
	// retention.bytes (log.retention.ms, log.retention.bytes: storage
	// enforces them) and log.retention.check.interval.ms. -1 means no limit.
	RetentionMs              int64
	RetentionBytes           int64
	RetentionCheckIntervalMs int64

	// Authorizer enforces ACLs (authz.go); nil turns enforcement off and
	// the ACL APIs answer SECURITY_DISABLED. New loads ACLStore's ACLs
	// into it.
	Authorizer *acl.Authorizer
	// ACLStore makes ACL changes durable; needed with an Authorizer.
	ACLStore ACLStore
	// QuotaStore makes client quota changes durable (quotas.go); nil
	// keeps them in memory only.
	QuotaStore QuotaStore
	// BrokerConfigStore makes dynamic broker config changes durable
	// (brokerconfigs.go); nil keeps them in memory.
	BrokerConfigStore BrokerConfigStore
	// QuotaWindow and QuotaWindowSamples are the window byte-rate quotas
	// are measured in (Kafka's quota.window.size.seconds and
	// quota.window.num); 0 means DefaultQuotaWindow and
	// DefaultQuotaWindowSamples.
	QuotaWindow        time.Duration
	QuotaWindowSamples int
	// QuotaMaxSensors caps the quota sensors (rate state per user and
	// client id under a quota) kept at once; past it the least recently
	// active is evicted (quota_enforce.go). Rounded up to a multiple of
	// 16; 0 means DefaultQuotaMaxSensors.
	QuotaMaxSensors int

	// Groups is the group coordinator (groups.go); nil answers the group
	// APIs with COORDINATOR_NOT_AVAILABLE.
	Groups Groups
	// Txns is the transaction coordinator (txns.go); nil answers the
	// transaction APIs with COORDINATOR_NOT_AVAILABLE.
	Txns Txns
	// MaxTxnPatternBytes bounds ListTransactions v2's
	// TransactionalIDPattern (66_list_transactions.go); 0 means
	// DefaultMaxTxnPatternBytes.
	MaxTxnPatternBytes int

	// TxnVerifier checks transactional produce against the transaction
	// coordinator (txnverify.go); nil refuses transactional batches.
	TxnVerifier TxnVerifier

	// Users are the SASL users (users.go); nil means none, so every
	// authentication on a SASL listener fails.
	Users *Users
	// UserStore keeps the users that AlterUserScramCredentials changes;
	// nil keeps changes in memory only.
	UserStore UserStore
	// SASLAuthTimeout closes a connection on a SASL listener that has not
	// authenticated this long after it opened. 0 means
	// DefaultSASLAuthTimeout.
	SASLAuthTimeout time.Duration
	// SASLMaxReceiveBytes is the largest frame a connection on a SASL
	// listener may send before it has authenticated (Kafka's
	// sasl.server.max.receive.size); a larger one closes it. 0 means
	// DefaultSASLMaxReceiveBytes.
	SASLMaxReceiveBytes int
	// SASLMaxReauth is Kafka's connections.max.reauth.ms (KIP-368): an
	// authenticated session lasts this long, SaslAuthenticate v1+ tells
	// the client so, and a client that has not re-authenticated by then is
	// closed at its next request. 0: sessions never expire.
	SASLMaxReauth time.Duration
	// SASLMaxVerifications is how many password checks (sasl_verify.go)
	// run at once; 0 means DefaultSASLMaxVerifications().
	SASLMaxVerifications int
	// SASLMaxQueuedVerifications bounds the checks waiting for their
	// turn; 0 means DefaultSASLMaxQueuedVerifications.
	SASLMaxQueuedVerifications int
	// SASLFailedAuthDelay delays the answer to a failed authentication
	// (KIP-306's connection.failed.authentication.delay.ms); 0: none.
	SASLFailedAuthDelay time.Duration

	// SlowRequest, when positive, logs a Warn (rate-limited) for each
	// request whose response took longer from arrival to written; fetches
	// that long-polled are not logged (their wait is asked for).
	SlowRequest time.Duration
}

func (c *Config) setDefaults() {
	if c.DefaultPartitions <= 0 {
		c.DefaultPartitions = defaultPartitions
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = defaultMaxMessageBytes
	}
	if c.MaxTopicPartitions <= 0 {
		c.MaxTopicPartitions = defaultMaxTopicPartitions
	}
	if c.MaxDescribePartitions <= 0 {
		c.MaxDescribePartitions = defaultMaxDescribePartitions
	}
	if c.MaxDecompressedBatchBytes <= 0 {
		c.MaxDecompressedBatchBytes = defaultMaxDecompressed
	}
	if c.FetchWorkers <= 0 {
		c.FetchWorkers = DefaultFetchWorkers
	}
	if c.QuotaWindow <= 0 {
		c.QuotaWindow = DefaultQuotaWindow
	}
	if c.QuotaWindowSamples <= 1 {
		c.QuotaWindowSamples = DefaultQuotaWindowSamples
	}
	if c.MaxTxnPatternBytes <= 0 {
		c.MaxTxnPatternBytes = DefaultMaxTxnPatternBytes
	}
	if c.QuotaMaxSensors <= 0 {
		c.QuotaMaxSensors = DefaultQuotaMaxSensors
	}
	if c.MaxFetchSessions == 0 {
		c.MaxFetchSessions = DefaultMaxFetchSessions
	}
	if c.MaxFetchSessionPartitions <= 0 {
		c.MaxFetchSessionPartitions = DefaultMaxFetchSessionPartitions
	}
	if c.MaxFetchSessionCacheParts <= 0 {
		c.MaxFetchSessionCacheParts = DefaultMaxFetchSessionCacheParts
	}
	if c.MaxFetchWait <= 0 {
		c.MaxFetchWait = DefaultMaxFetchWait
	}
	if c.AdvertisedHost == "" {
		c.AdvertisedHost = "localhost"
	}
	if c.AdvertisedPort == 0 {
		c.AdvertisedPort = defaultAdvertisedPort
	}
	if len(c.Listeners) == 0 {
		c.Listeners = []Listener{{Protocol: Plaintext, Host: c.AdvertisedHost, Port: c.AdvertisedPort}}
	}
	if c.Users == nil {
		c.Users = NewUsers()
	}
	if c.SASLAuthTimeout <= 0 {
		c.SASLAuthTimeout = DefaultSASLAuthTimeout
	}
	if c.SASLMaxReceiveBytes <= 0 {
		c.SASLMaxReceiveBytes = DefaultSASLMaxReceiveBytes
	}
	if c.SASLMaxVerifications <= 0 {
		c.SASLMaxVerifications = DefaultSASLMaxVerifications()
	}
	if c.SASLMaxQueuedVerifications <= 0 {
		c.SASLMaxQueuedVerifications = DefaultSASLMaxQueuedVerifications
	}
	if c.SASLFailedAuthDelay < 0 {
		c.SASLFailedAuthDelay = 0
	}
}

// Handler implements netloop.Handler for the Kafka protocol.
type Handler struct {
	cfg Config
	st  Storage
	log zerolog.Logger
	// warn is log, sampled: clients breaking the protocol.
	warn zerolog.Logger

	acls   aclState   // ACL changes (authz.go)
	quotas quotaState // client quotas (quotas.go)
	// quotaTab is the quotas enforced (quota_enforce.go); nil when there
	// are none.
	quotaTab    atomic.Pointer[quotaTable]
	reqs        reqMetrics // request metrics (metrics.go)
	quotaMeters quotaMeters

	// apiKeys is the ApiVersions list, built once from the registry.
	apiKeys []kmsg.ApiVersionsResponseApiKey
	// nodeReplicas is []int32{NodeID}, shared read-only by every partition
	// of every Metadata response.
	nodeReplicas []int32
	// internal describes the internal topics (internal_topics.go).
	internal []storage.TopicInfo

	// alterMu serializes the config read-modify-write of AlterConfigs and
	// IncrementalAlterConfigs (configs.go), so concurrent changes are not lost.
	alterMu sync.Mutex
	// brokerCfg is the dynamic broker configs in force (brokerconfigs.go);
	// replaced whole under alterMu.
	brokerCfg atomic.Pointer[brokerConfigState]
	// usersMu serializes AlterUserScramCredentials, so Users and
	// UserStore see changes in the same order.
	usersMu sync.Mutex

	fetchSessions *fetchSessions // KIP-227 session cache (fetch_session.go)
	fetchRunner   runner         // reads for fetches, at most cfg.FetchWorkers at once
	// produceRunner validates produce records off the event loop
	// (00_produce.go), two tasks per CPU at once: queued requests cost a
	// closure rather than a goroutine each, and wait in arrival order.
	produceRunner runner
	// verifier checks PLAIN passwords (sasl_verify.go), one CPU-bound
	// key derivation per task, fairly between client addresses.
	verifier *verifier
	// saslChecks counts finished authentications by mechanism and
	// result (sasl_verify.go); atomic.
	saslChecks [3][2]atomic.Uint64 // by saslMechanisms index

	mu     sync.Mutex
	closed bool                  // guarded by mu
	conns  map[uint64]*connPolls // long polls by connection id, guarded by mu (polls.go)

	// produceMu guards produceTail: per connection, closed when the last
	// produce validated off the event loop has issued its appends (see
	// 00_produce.go), so appends keep each connection's request order.
	produceMu   sync.Mutex
	produceTail map[uint64]chan struct{}

	unknownLogged *logOnce // storage errors already logged (errors.go)

	// unannounced holds the state of connections netloop did not
	// announce (requests made without netloop, as in tests), by
	// connection id: uint64 -> *connState. Announced ones carry theirs
	// (conn_state.go).
	unannounced sync.Map
	authWarn    zerolog.Logger // log, sampled: failed authentications
}

// New returns a handler serving st.
func New(cfg Config, st Storage) *Handler {
	cfg.setDefaults()
	log := cfg.Logger.With().Str("component", "kafka").Logger()
	h := &Handler{
		cfg:           cfg,
		st:            st,
		log:           log,
		warn:          log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute}),
		nodeReplicas:  []int32{cfg.NodeID},
		internal:      InternalTopics(cfg.ClusterID),
		produceTail:   make(map[uint64]chan struct{}),
		conns:         make(map[uint64]*connPolls),
		fetchSessions: newFetchSessions(cfg.MaxFetchSessions, cfg.MaxFetchSessionPartitions, cfg.MaxFetchSessionCacheParts),
		unknownLogged: newLogOnce(maxUnknownLogged),
		authWarn:      authWarnSampler(log),
	}
	h.fetchRunner.max = cfg.FetchWorkers
	h.reqs.init()
	h.reqs.slowNanos = int64(cfg.SlowRequest)
	h.produceRunner.max = 2 * runtime.GOMAXPROCS(0)
	h.verifier = newVerifier(cfg.SASLMaxVerifications, cfg.SASLMaxQueuedVerifications)
	h.quotaMeters.init(cfg.QuotaMaxSensors)
	h.apiKeys = advertisedKeys()
	h.loadACLs()
	h.loadQuotas()
	h.loadBrokerConfigs()
	return h
}

// Close answers every fetch that is long polling (with what it has) and makes
// later fetches answer without waiting. Call it before netloop.Server.Stop:
// Stop drains in-flight requests, and a long-polling fetch would otherwise
// hold the drain until its MaxWaitMs runs out.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	for _, f := range h.allPolls() {
		f.expire()
	}
}

// ---- registry ----

// apiServe handles one request whose header has been parsed and whose version
// is in the registered range.
type apiServe func(h *Handler, r *request)

type api struct {
	min, max int16
	// flexibleFrom is the first flexible version (header v2, tagged fields).
	flexibleFrom int16
	serve        apiServe
	// unadvertised APIs are served but left out of ApiVersions
	// (registerUnadvertised).
	unadvertised bool
}

// maxAPIKey bounds the registry; raise it when a higher key is implemented.
const maxAPIKey = 127

var apis [maxAPIKey + 1]*api

// register records an API's supported versions beside its handler. Called
// from each API file's init.
func register(key, minVersion, maxVersion int16, serve apiServe) {
	if key < 0 || key > maxAPIKey || apis[key] != nil || minVersion > maxVersion {
		panic(fmt.Sprintf("kafka: bad registration for api key %d", key))
	}
	probe := kmsg.RequestForKey(key)
	if probe == nil || maxVersion > probe.MaxVersion() {
		panic(fmt.Sprintf("kafka: kmsg cannot encode api key %d v%d", key, maxVersion))
	}
	flex := maxVersion + 1
	for v := maxVersion; v >= 0; v-- {
		probe.SetVersion(v)
		if !probe.IsFlexible() {
			break
		}
		flex = v
	}
	apis[key] = &api{min: minVersion, max: maxVersion, flexibleFrom: flex, serve: serve}
}

// registerUnadvertised is register for an API Kafka serves but leaves out
// of ApiVersions (the telemetry APIs of a broker without a receiver).
func registerUnadvertised(key, minVersion, maxVersion int16, serve apiServe) {
	register(key, minVersion, maxVersion, serve)
	apis[key].unadvertised = true
}

func advertisedKeys() []kmsg.ApiVersionsResponseApiKey {
	var keys []kmsg.ApiVersionsResponseApiKey
	for k, a := range apis {
		if a == nil || a.unadvertised {
			continue
		}
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey, ak.MinVersion, ak.MaxVersion = int16(k), a.min, a.max
		keys = append(keys, ak)
	}
	return keys
}

// ---- requests ----

// request is one Kafka request being served.
type request struct {
	nr       *netloop.Request
	key      int16
	version  int16
	corr     int32
	flexible bool // header v2 / flexible body
	// exempt: request_percentage does not apply (a request before SASL
	// authentication); set by the SASL gate.
	exempt bool
	known  bool // key is a registered API (metrics.go)
	polled bool // a fetch that long-polled (metrics.go), set before completion
	// throttleMs mutes the connection after the response (KIP-219),
	// in ms (an int32 fits the padding); set before the request is
	// answered, by the goroutine serving it.
	throttleMs int32
	// reqMeter is the request-time sensor (request_percentage) the work on
	// this request is charged to, and reqQuota its quota; nil when none
	// applies. Set on the event loop before the request is handed to any
	// goroutine (an acks=0 produce clears it there too), read-only after.
	reqMeter *rateMeter
	reqQuota float64
	// cs is the connection's state (conn_state.go), set by Serve before
	// anything else, read-only after.
	cs       *connState
	clientID []byte // aliases the frame: use only before completion
	body     []byte // aliases the frame: use only before completion
	done     atomic.Bool
	// errCode is the response's error for metrics (metrics.go), set
	// before completion; here it fits the padding after done.
	errCode int16
}

// Serve implements netloop.Handler.
func (h *Handler) Serve(nr *netloop.Request) {
	r := &request{nr: nr}
	defer h.recoverTo(r)
	r.cs = h.lookupConn(nr)
	if r.cs.sasl != nil && h.saslGate(r) {
		return // pre-authentication gate (sasl.go)
	}

	f := nr.Frame
	if len(f) < requestHeaderBytes {
		h.protocolError(r, "frame shorter than a request header")
		return
	}
	be := binary.BigEndian
	r.key = int16(be.Uint16(f[0:]))
	r.version = int16(be.Uint16(f[2:]))
	r.corr = int32(be.Uint32(f[4:]))

	var a *api
	if r.key >= 0 && r.key <= maxAPIKey {
		a = apis[r.key]
	}
	if a == nil {
		h.protocolError(r, "unsupported api key")
		return
	}
	r.known = true
	if r.key == apiVersionsKey && r.version > a.max {
		// KIP-511: the client may be newer than us; answer in the v0 layout
		// so it can retry with a version we know. The body is not parsed.
		h.apiVersionsUnsupported(r)
		return
	}
	if r.version < a.min || r.version > a.max {
		h.protocolError(r, "unsupported api version")
		return
	}
	r.flexible = r.version >= a.flexibleFrom

	rd := kbin.Reader{Src: f[requestHeaderBytes:]}
	if n := rd.Int16(); n > 0 {
		r.clientID = rd.Span(int(n))
	}
	if r.flexible {
		skipTags(&rd)
	}
	if !rd.Ok() {
		h.protocolError(r, "truncated request header")
		return
	}
	r.body = rd.Src
	h.meterRequest(r)
	start := r.workStart()
	a.serve(h, r)
	r.workEnd(start) // the event loop's part of the request's time
}

// skipTags skips a tagged-field section; the header defines no tags we use.
func skipTags(rd *kbin.Reader) {
	for n := rd.Uvarint(); n > 0 && rd.Ok(); n-- {
		rd.Uvarint() // tag
		rd.Span(int(rd.Uvarint()))
	}
}

// parse decodes the body into m at the request's version. On failure it
// closes the connection and returns false.
func (h *Handler) parse(r *request, m kmsg.Request) bool {
	m.SetVersion(r.version)
	if err := m.ReadFrom(r.body); err != nil {
		h.protocolError(r, "malformed request body")
		return false
	}
	return true
}

// protocolError closes the connection of a request that breaks the protocol.
func (h *Handler) protocolError(r *request, why string) {
	h.warn.Warn().
		Uint64("conn", r.nr.Conn.ID).
		Int16("api_key", r.key).
		Int16("api_version", r.version).
		Bytes("client_id", r.clientID).
		Msg("kafka: " + why + "; closing connection")
	r.close()
}

// recoverTo is the last line of defence: a panic while serving r is logged
// and closes the connection (if r was not answered yet).
func (h *Handler) recoverTo(r *request) {
	if v := recover(); v != nil {
		h.log.Error().
			Uint64("conn", r.nr.Conn.ID).
			Int16("api_key", r.key).
			Int16("api_version", r.version).
			Str("panic", fmt.Sprint(v)).
			Msg("kafka: handler panic; closing connection")
		r.close()
	}
}

// async runs fn off the event loop, under recoverTo. fn's time is not
// charged to request_percentage: it waits on a durable write (see
// quota_enforce.go); read-only work uses asyncRead.
func (h *Handler) async(r *request, fn func()) {
	go func() {
		defer h.recoverTo(r)
		fn()
	}()
}

// asyncRead is async for work that only reads: its time is charged to r's
// request-time sensor (request_percentage).
func (h *Handler) asyncRead(r *request, fn func()) {
	go func() {
		defer h.recoverTo(r)
		defer r.workEnd(r.workStart())
		fn()
	}()
}

// complete hands resp to netloop, once; later calls are dropped (and their
// Release run).
func (r *request) complete(resp netloop.Response) {
	if r.done.Swap(true) {
		if resp.Release != nil {
			resp.Release()
		}
		return
	}
	resp.Throttle = time.Duration(r.throttleMs) * time.Millisecond
	if r.known {
		r.nr.Tag = r.tag()
	}
	r.nr.Respond(resp)
}

func (r *request) close() { r.complete(netloop.Response{Close: true}) }

// respond encodes msg (whose Version must be the request's) with its
// response header and completes the request.
func (r *request) respond(msg kmsg.Response) {
	r.setThrottle(msg)
	buf := getBuf()
	b := r.appendHeader((*buf)[:0])
	b = msg.AppendTo(b)
	*buf = b
	r.respErr(msg)
	r.complete(netloop.Response{
		Parts:   []netloop.Part{{Bytes: b}},
		Release: func() { putBuf(buf) },
	})
}

// appendHeader appends the response header: the correlation id, and an empty
// tag section for flexible versions except ApiVersions, whose response header
// is always v0 (so a client can read it before knowing our versions).
func (r *request) appendHeader(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(r.corr))
	if r.flexible && r.key != apiVersionsKey {
		b = append(b, 0)
	}
	return b
}

// ---- buffers ----

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > pooledBufMaxBytes {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}
