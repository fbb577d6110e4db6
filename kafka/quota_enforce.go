package kafka

// Enforcement of client quotas: producer_byte_rate and consumer_byte_rate
// (KIP-13) and request_percentage (KIP-124), all with KIP-219's
// throttling. Each is measured per sensor in a window of
// Config.QuotaWindowSamples samples of Config.QuotaWindow each, as Kafka's
// quota.window.num and quota.window.size.seconds. Which quota applies is
// KIP-55's resolution order, each key on its own; its sensor is per user
// and/or client id as that entity names them, so default quotas apply to
// each user or client apart.
//
// Byte rates: a produce that brings its sensor over the quota is served
// and answered at once with throttle_time_ms, the time at the quota that
// pays back the excess, and netloop mutes the connection that long. A
// fetch whose sensor is already over the quota is answered at once with no
// data and the throttle (Kafka answers a throttled fetch empty too); other
// fetches count the bytes of their response.
//
// Request time (request_percentage): the share of one thread's time, in
// percent, that an entity's requests may take over the window; 100 is one
// whole core. Kafka counts the time its request handler (I/O) threads and
// network threads spend on a request, not the time it waits in purgatory
// (replication, a long-polling fetch). klite has no such thread pools: a
// request is served on its connection's event loop and, when it does
// heavy or blocking work, on a goroutine. What is charged is the time the
// handler runs on the request: Serve on the event loop (header parse,
// dispatch, whatever is answered inline), the produce validation and
// append issuing off the loop, the reads of a fetch (each round of a long
// poll), and the goroutine of the read-only admin requests (asyncRead).
// Not charged: waits that use no CPU (an fsync before acks=-1 is answered,
// a fetch's long poll, a task queued behind others in a runner, a produce
// waiting for the connection's earlier one) and the goroutines of
// requests that wait on a durable metadata write (CreateTopics,
// AlterConfigs, ...): their time is mostly the fsync, which Kafka would
// count as remote time too. netloop's own work (reading and writing
// sockets, TLS) is not charged; it is the bulk of Kafka's network-thread
// time, which Kafka charges after the response. Each piece of work is
// charged when it ends, and a response's throttle is computed from what
// has been charged by then, so the piece that sends a response counts
// towards the next one, as Kafka's network-thread time does (that piece
// is still running when the throttle goes into the response).
// A throttle from request time lasts at most one sample
// (quota.window.size.seconds), as in Kafka; the longest throttle of the
// request's quotas is the one answered and applied.
//
// Exempt from request_percentage, as in Kafka: requests before SASL
// authentication (ApiVersions, SaslHandshake, SaslAuthenticate, which
// Kafka's authenticator serves outside its request handlers), every
// SaslHandshake and SaslAuthenticate (re-authentication too), acks=0
// produce (there is no response to carry the throttle) and the
// cluster-action APIs brokers send each other (quotaExemptKeys; klite
// serves none of them today). ApiVersions after authentication, and on
// listeners without SASL, is charged like any request, as KafkaApis does.
//
// Sensors are state per user and client id, so a client that cycles
// client ids would make one per id: a sensor idle for a whole window is
// dropped, by a sweep at most once a window when a sensor is made (it
// measures nothing, and a new one starts the same; Kafka keeps them an
// hour, for its metrics), and past Config.QuotaMaxSensors the
// least recently active of a few sampled sensors is evicted to make room
// (the cap is per shard: QuotaMaxSensors rounded up to a multiple of 16).
// An evicted sensor forgets its rate: its client may pass its quota once.
//
// Differs from Kafka: a fetch is checked before it is served rather than
// after, so one fetch response may pass a quota before the throttle
// starts. Kafka charges a request's handler-thread time before computing
// its throttle; here the piece of work that answers is charged just
// after, so it throttles the next response instead (the same total).

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

// DefaultQuotaMaxSensors caps the quota sensors kept: a sensor costs about
// 400 bytes with the default window, so 50,000 are about 20 MB.
const DefaultQuotaMaxSensors = 50000

// quotaEvictSample is how many sensors are looked at to pick the least
// recently active one to evict (sampled LRU: no bookkeeping per request).
const quotaEvictSample = 8

// Sensor kinds: which rate a sensor measures.
const (
	quotaProduce int8 = iota
	quotaFetch
	quotaRequest
)

// quotaKindKeys is the quota key each sensor kind enforces.
var quotaKindKeys = [...]string{
	quotaProduce: quotaProducerByteRate,
	quotaFetch:   quotaConsumerByteRate,
	quotaRequest: quotaRequestPercentage,
}

// quotaExemptKeys are the APIs request_percentage never charges nor
// throttles (Kafka's ApiKeys with clusterAction, and the SASL exchange).
var quotaExemptKeys = func() (ex [maxAPIKey + 1]bool) {
	for _, k := range []int16{
		4, 5, 6, 7, // LeaderAndIsr, StopReplica, UpdateMetadata, ControlledShutdown (KIP-124)
		27,             // WriteTxnMarkers
		52, 53, 54, 59, // Vote, BeginQuorumEpoch, EndQuorumEpoch, FetchSnapshot
		56, 58, // AlterPartition, Envelope
		62, 63, // BrokerRegistration, BrokerHeartbeat
		67, // AllocateProducerIds
		saslHandshakeKey, saslAuthenticateKey,
	} {
		ex[k] = true
	}
	return ex
}()

// quotaTable is an immutable copy of the quotas, swapped whole when
// quotas change; nil (no table) when no quota exists, so requests pay one
// atomic load without quotas.
type quotaTable struct {
	m map[storage.QuotaEntity]map[string]float64
	// levels has bit i set when some entity of KIP-55 level i (resolve's
	// order) sets the key, by sensor kind: the levels nobody uses are not
	// looked up.
	levels [len(quotaKindKeys)]uint8
}

// sensorKey names one sensor: the user and client id the matched quota
// entity names (empty for a component it does not have).
type sensorKey struct {
	kind         int8
	user, client string
}

// quotaShards is how many parts the sensors are split into, each with its
// own lock: a sensor is looked up for every request under a quota, from
// every event loop and handler goroutine (BenchmarkQuotaSensors: one lock
// for all had the lookups spinning on it at two cores).
const quotaShards = 16

// quotaMeters holds the sensors, split by a hash of their key.
type quotaMeters struct {
	perShard int    // most sensors a shard keeps: Config.QuotaMaxSensors / quotaShards, rounded up
	used     uint64 // shards in use: quotaShards (BenchmarkQuotaSensors compares with 1)
	seed     maphash.Seed
	shards   [quotaShards]quotaShard
}

type quotaShard struct {
	mu        sync.Mutex
	m         map[sensorKey]*rateMeter // guarded by mu
	lastSweep int64                    // monoNow of the last idle sweep, guarded by mu
	_         [40]byte                 // one shard per cache line
}

// init sizes the sensors for at most maxSensors (rounded up to a multiple
// of quotaShards).
func (qm *quotaMeters) init(maxSensors int) {
	qm.perShard = max(1, (maxSensors+quotaShards-1)/quotaShards)
	qm.used = quotaShards
	qm.seed = maphash.MakeSeed()
}

// rebuildQuotaTable publishes the quotas for enforcement; quotas.mu is
// held (or the handler is being built).
func (h *Handler) rebuildQuotaTable() {
	h.quotaTab.Store(buildQuotaTable(h.quotas.m))
}

// buildQuotaTable is the table of the entities in m that set a key klite
// enforces; nil when none does.
func buildQuotaTable(m map[storage.QuotaEntity]map[string]float64) *quotaTable {
	t := &quotaTable{m: map[storage.QuotaEntity]map[string]float64{}}
	for e, v := range m {
		used := false
		for kind, key := range quotaKindKeys {
			if _, ok := v[key]; ok {
				used = true
				t.levels[kind] |= 1 << quotaLevel(e)
			}
		}
		if used {
			t.m[e] = v
		}
	}
	if len(t.m) == 0 {
		return nil
	}
	return t
}

// quotaLevel is e's place in KIP-55's order (resolve's), 0 most specific.
func quotaLevel(e storage.QuotaEntity) int {
	var user, client int // 0 named, 1 default, 2 none
	switch {
	case e.UserDefault:
		user = 1
	case !e.HasUser():
		user = 2
	}
	switch {
	case e.ClientDefault:
		client = 1
	case !e.HasClientID():
		client = 2
	}
	return 3*user + client
}

// resolve finds the quota of kind for user and client by KIP-55's order,
// most specific first, and the sensor it is measured in.
func (t *quotaTable) resolve(kind int8, user, client string) (float64, sensorKey, bool) {
	levels := t.levels[kind]
	if levels == 0 {
		return 0, sensorKey{}, false
	}
	key := quotaKindKeys[kind]
	for i := range 8 {
		if levels&(1<<i) == 0 || (user == "" && i < 3) || (client == "" && i%3 == 0) {
			continue // unused level, or names are never empty: no such entity
		}
		var e storage.QuotaEntity
		switch i / 3 {
		case 0:
			e.User = user
		case 1:
			e.UserDefault = true
		}
		switch i % 3 {
		case 0:
			e.ClientID = client
		case 1:
			e.ClientDefault = true
		}
		if v, ok := t.m[e][key]; ok {
			sk := sensorKey{kind: kind}
			if e.HasUser() {
				sk.user = user
			}
			if e.HasClientID() {
				sk.client = client
			}
			return v, sk, true
		}
	}
	return 0, sensorKey{}, false
}

// quotaUser is the user name of a principal ("User:alice" is alice), as
// Kafka's user quotas name it.
func quotaUser(principal string) string {
	_, name, ok := strings.Cut(principal, ":")
	if !ok {
		return principal
	}
	return name
}

// meter returns r's sensor of kind and its quota, or nil when no quota
// applies. Only called when a quota table exists.
func (h *Handler) meter(t *quotaTable, r *request, kind int8) (*rateMeter, float64) {
	if t.levels[kind] == 0 {
		return nil, 0
	}
	quota, sk, ok := t.resolve(kind, quotaUser(h.principal(r)), string(r.clientID))
	if !ok {
		return nil, 0
	}
	return h.quotaMeters.get(sk, h.cfg.QuotaWindowSamples, h.cfg.QuotaWindow), quota
}

// get returns sk's sensor, made if needed. Sensors idle for a whole window
// measure nothing: they are dropped, once a window, so client ids that
// come and go do not pile up. At the cap, one is evicted first.
func (qm *quotaMeters) get(sk sensorKey, samples int, sample time.Duration) *rateMeter {
	sh := &qm.shards[maphash.Comparable(qm.seed, sk)%qm.used]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.m[sk]; m != nil {
		return m
	}
	now := monoNow()
	if sh.m == nil {
		sh.m = map[sensorKey]*rateMeter{}
	}
	span := int64(samples) * int64(sample)
	if now-sh.lastSweep > span {
		sh.sweepLocked(now, span)
	}
	if len(sh.m) >= qm.perShard {
		sh.evictLocked()
	}
	m := newRateMeter(samples, sample)
	sh.m[sk] = m
	return m
}

// sweepLocked drops the sensors idle for span. sh.mu held.
func (sh *quotaShard) sweepLocked(now, span int64) {
	for k, m := range sh.m {
		if m.idleSince(now, span) {
			delete(sh.m, k)
		}
	}
	sh.lastSweep = now
}

// evictLocked drops the least recently active of a few sensors, taken
// from where map iteration happens to start (random). sh.mu held.
func (sh *quotaShard) evictLocked() {
	var victim sensorKey
	oldest, n := int64(0), 0
	for k, m := range sh.m {
		if last := m.lastActive(); n == 0 || last < oldest {
			victim, oldest = k, last
		}
		if n++; n == quotaEvictSample {
			break
		}
	}
	if n > 0 {
		delete(sh.m, victim)
	}
}

// len is the number of sensors kept.
func (qm *quotaMeters) len() int {
	n := 0
	for i := range qm.shards {
		sh := &qm.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// lookup is sk's sensor if it exists (tests).
func (qm *quotaMeters) lookup(sk sensorKey) *rateMeter {
	sh := &qm.shards[maphash.Comparable(qm.seed, sk)%qm.used]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[sk]
}

// produceThrottle records a produce request's bytes and returns how long
// to throttle its connection (0: within the quota).
func (h *Handler) produceThrottle(t *quotaTable, r *request) time.Duration {
	m, quota := h.meter(t, r, quotaProduce)
	if m == nil {
		return 0
	}
	now := monoNow()
	m.record(now, float64(len(r.nr.Frame)))
	return m.throttle(now, quota, m.span())
}

// fetchThrottle checks r against its consumer quota before the fetch is
// served: over the quota it returns the throttle (answer empty), else the
// sensor that counts the records the fetch sends (nil without a quota).
func (h *Handler) fetchThrottle(t *quotaTable, r *request) (*rateMeter, time.Duration) {
	m, quota := h.meter(t, r, quotaFetch)
	if m == nil {
		return nil, 0
	}
	if d := m.throttle(monoNow(), quota, m.span()); d > 0 {
		return nil, d
	}
	return m, 0
}

// meterRequest picks r's request-time sensor (request_percentage), at
// Serve once the header is parsed; nil for exempt requests and without a
// quota. Set before any goroutine sees r.
func (h *Handler) meterRequest(r *request) {
	t := h.quotaTab.Load()
	if t == nil || t.levels[quotaRequest] == 0 || r.exempt || quotaExemptKeys[r.key] {
		return
	}
	r.reqMeter, r.reqQuota = h.meter(t, r, quotaRequest)
}

// workStart starts timing a piece of work on r for its request-time
// sensor; 0 when r has none.
func (r *request) workStart() int64 {
	if r.reqMeter == nil {
		return 0
	}
	return monoNow()
}

// workEnd charges the work timed since start (workStart) to r's
// request-time sensor: time as a percentage of one thread, over a second.
func (r *request) workEnd(start int64) {
	if m := r.reqMeter; m != nil && start != 0 {
		now := monoNow()
		m.record(now, float64(now-start)*nanosToPercent)
	}
}

// nanosToPercent turns ns of work into percent-seconds, so a sensor's rate
// per second is a percentage of one thread (Kafka's request-time unit).
const nanosToPercent = 100 / float64(time.Second)

// requestThrottle is r's request-time throttle now: the time at its
// request_percentage that pays back the excess, at most one sample long
// (Kafka caps it at quota.window.size.seconds). 0 within the quota.
func (r *request) requestThrottle() time.Duration {
	m := r.reqMeter
	if m == nil {
		return 0
	}
	return m.throttle(monoNow(), r.reqQuota, time.Duration(m.sample))
}

// setThrottle folds r's request-time throttle into r.throttleMs (which
// already holds any byte-rate throttle: the longest wins, as in Kafka)
// and writes it into msg's throttle_time_ms. Called by the goroutine that
// answers r, just before msg is encoded.
func (r *request) setThrottle(msg kmsg.Response) {
	if ms := throttleMillis(r.requestThrottle()); ms > r.throttleMs {
		r.throttleMs = ms
	}
	if r.throttleMs > 0 {
		if s, ok := msg.(kmsg.SetThrottleResponse); ok {
			s.SetThrottle(r.throttleMs)
		}
	}
}

// monoNow is a monotonic clock in ns, never 0 (0 marks an unused sample).
func monoNow() int64 { return int64(time.Since(clockBase)) + 1 }

var clockBase = time.Now()

// rateMeter measures a rate over a window of samples, as Kafka's Rate
// with a SampledStat: the rate is the window's total over the time since
// its oldest sample began, counted as at least all samples but one, so a
// new sensor does not read a burst as a huge rate. Times are monoNow ns.
// Guarded by mu.
type rateMeter struct {
	mu     sync.Mutex
	sample int64 // ns
	cur    int
	s      []meterSample
}

type meterSample struct {
	start int64 // 0: unused
	v     float64
}

func newRateMeter(samples int, sample time.Duration) *rateMeter {
	return &rateMeter{sample: int64(sample), s: make([]meterSample, samples)}
}

// span is the whole window.
func (m *rateMeter) span() time.Duration { return time.Duration(int64(len(m.s)) * m.sample) }

// record adds v at now.
func (m *rateMeter) record(now int64, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := &m.s[m.cur]
	if c.start == 0 {
		c.start = now
	} else if now-c.start >= m.sample {
		m.cur = (m.cur + 1) % len(m.s)
		m.s[m.cur] = meterSample{start: now}
	}
	m.s[m.cur].v += v
}

// throttle is how long to wait at quota (per second) so the rate comes
// back to it: (rate - quota) / quota * window, capped at maxThrottle (as
// Kafka's ClientQuotaManager computes it). 0 within the quota.
func (m *rateMeter) throttle(now int64, quota float64, maxThrottle time.Duration) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	span := int64(len(m.s)) * m.sample
	var total float64
	oldest := now
	for i := range m.s {
		s := &m.s[i]
		if s.start == 0 {
			continue
		}
		if now-s.start >= span {
			*s = meterSample{} // expired
			continue
		}
		total += s.v
		oldest = min(oldest, s.start)
	}
	elapsed := max(now-oldest, int64(len(m.s)-1)*m.sample)
	rate := total / (float64(elapsed) / float64(time.Second))
	if rate <= quota {
		return 0
	}
	d := time.Duration((rate - quota) / quota * float64(elapsed))
	return min(d, maxThrottle)
}

// idleSince reports whether nothing was recorded in the last span.
func (m *rateMeter) idleSince(now, span int64) bool {
	return now-m.lastActive() >= span
}

// lastActive is the start of the newest sample (0 when none).
func (m *rateMeter) lastActive() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.s[m.cur].start
}

// throttleMillis is d as throttle_time_ms, rounded up so a throttle is
// never reported as 0.
func throttleMillis(d time.Duration) int32 {
	return int32((d + time.Millisecond - 1) / time.Millisecond)
}
