package kafka

// Enforcement of producer_byte_rate and consumer_byte_rate (KIP-13, with
// KIP-219's throttling): bytes are measured per sensor in a window of
// Config.QuotaWindowSamples samples of Config.QuotaWindow each, as Kafka's
// quota.window.num and quota.window.size.seconds. A produce that brings
// its sensor over the quota is served and answered at once with
// throttle_time_ms, the time at the quota that pays back the excess, and
// netloop mutes the connection that long. A fetch whose sensor is already
// over the quota is answered at once with no data and the throttle (Kafka
// answers a throttled fetch empty too); other fetches count the bytes of
// their response. Which quota applies is KIP-55's resolution order, each
// key on its own; its sensor is per user and/or client id as that entity
// names them, so default quotas apply to each user or client apart.
//
// Differs from Kafka: a fetch is checked before it is served rather than
// after, so one fetch response may pass the quota before the throttle
// starts; request_percentage is stored but not enforced.

import (
	"strings"
	"sync"
	"time"

	"github.com/klite/klite/storage"
)

// Sensor kinds: which rate a sensor measures.
const (
	quotaProduce int8 = iota
	quotaFetch
)

// quotaTable is an immutable copy of the byte-rate quotas, swapped whole
// when quotas change; nil (no table) when no byte-rate quota exists, so
// produce and fetch pay one atomic load without quotas.
type quotaTable struct {
	m map[storage.QuotaEntity]map[string]float64
}

// sensorKey names one sensor: the user and client id the matched quota
// entity names (empty for a component it does not have).
type sensorKey struct {
	kind         int8
	user, client string
}

// quotaMeters holds the sensors. Guarded by mu.
type quotaMeters struct {
	mu        sync.Mutex
	m         map[sensorKey]*rateMeter
	lastSweep time.Time
}

// rebuildQuotaTable publishes the byte-rate quotas for enforcement;
// quotas.mu is held (or the handler is being built).
func (h *Handler) rebuildQuotaTable() {
	t := &quotaTable{m: map[storage.QuotaEntity]map[string]float64{}}
	for e, v := range h.quotas.m {
		_, produce := v[quotaProducerByteRate]
		_, consume := v[quotaConsumerByteRate]
		if produce || consume {
			t.m[e] = v
		}
	}
	if len(t.m) == 0 {
		h.quotaTab.Store(nil)
		return
	}
	h.quotaTab.Store(t)
}

// resolve finds the quota of key for user and client by KIP-55's order,
// most specific first, and the sensor it is measured in.
func (t *quotaTable) resolve(key string, user, client string) (float64, sensorKey, bool) {
	order := [...]storage.QuotaEntity{
		{User: user, ClientID: client},
		{User: user, ClientDefault: true},
		{User: user},
		{UserDefault: true, ClientID: client},
		{UserDefault: true, ClientDefault: true},
		{UserDefault: true},
		{ClientID: client},
		{ClientDefault: true},
	}
	for i, e := range order {
		if (user == "" && i < 3) || (client == "" && i%3 == 0) {
			continue // names are never empty: no such entity
		}
		if v, ok := t.m[e][key]; ok {
			sk := sensorKey{}
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
	key := quotaProducerByteRate
	if kind == quotaFetch {
		key = quotaConsumerByteRate
	}
	quota, sk, ok := t.resolve(key, quotaUser(h.principal(r)), string(r.clientID))
	if !ok {
		return nil, 0
	}
	sk.kind = kind
	qm := &h.quotaMeters
	now := time.Now()
	qm.mu.Lock()
	defer qm.mu.Unlock()
	if qm.m == nil {
		qm.m = map[sensorKey]*rateMeter{}
	}
	// Sensors idle for a whole window measure nothing: drop them, once a
	// window, so client ids that come and go do not pile up.
	if span := h.quotaSpan(); now.Sub(qm.lastSweep) > span {
		for k, m := range qm.m {
			if m.idleSince(now, span) {
				delete(qm.m, k)
			}
		}
		qm.lastSweep = now
	}
	m := qm.m[sk]
	if m == nil {
		m = newRateMeter(h.cfg.QuotaWindowSamples, h.cfg.QuotaWindow)
		qm.m[sk] = m
	}
	return m, quota
}

func (h *Handler) quotaSpan() time.Duration {
	return time.Duration(h.cfg.QuotaWindowSamples) * h.cfg.QuotaWindow
}

// produceThrottle records a produce request's bytes and returns how long
// to throttle its connection (0: within the quota).
func (h *Handler) produceThrottle(t *quotaTable, r *request) time.Duration {
	m, quota := h.meter(t, r, quotaProduce)
	if m == nil {
		return 0
	}
	now := time.Now()
	m.record(now, float64(len(r.nr.Frame)))
	return m.throttle(now, quota)
}

// rateMeter measures a rate over a window of samples, as Kafka's Rate
// with a SampledStat: the rate is the window's total over the time since
// its oldest sample began, counted as at least all samples but one, so a
// new sensor does not read a burst as a huge rate. Guarded by mu.
type rateMeter struct {
	mu     sync.Mutex
	sample time.Duration
	starts []time.Time // start of each sample; zero: unused
	vals   []float64
	cur    int
}

func newRateMeter(samples int, sample time.Duration) *rateMeter {
	return &rateMeter{sample: sample, starts: make([]time.Time, samples), vals: make([]float64, samples)}
}

// record adds v at now.
func (m *rateMeter) record(now time.Time, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.starts[m.cur].IsZero() {
		m.starts[m.cur] = now
	} else if now.Sub(m.starts[m.cur]) >= m.sample {
		m.cur = (m.cur + 1) % len(m.starts)
		m.starts[m.cur], m.vals[m.cur] = now, 0
	}
	m.vals[m.cur] += v
}

// throttle is how long to wait at quota (per second) so the rate comes
// back to it: (rate - quota) / quota * window, capped at the whole window
// (as Kafka's ClientQuotaManager computes it). 0 within the quota.
func (m *rateMeter) throttle(now time.Time, quota float64) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	span := time.Duration(len(m.starts)) * m.sample
	var total float64
	oldest := now
	for i, s := range m.starts {
		if s.IsZero() {
			continue
		}
		if now.Sub(s) >= span {
			m.starts[i], m.vals[i] = time.Time{}, 0 // expired
			continue
		}
		total += m.vals[i]
		if s.Before(oldest) {
			oldest = s
		}
	}
	elapsed := max(now.Sub(oldest), time.Duration(len(m.starts)-1)*m.sample)
	rate := total / elapsed.Seconds()
	if rate <= quota {
		return 0
	}
	d := time.Duration((rate - quota) / quota * float64(elapsed))
	return min(d, span)
}

// idleSince reports whether nothing was recorded in the last span.
func (m *rateMeter) idleSince(now time.Time, span time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.starts {
		if !s.IsZero() && now.Sub(s) < span {
			return false
		}
	}
	return true
}

// fetchThrottle checks r against its consumer quota before the fetch is
// served: over the quota it returns the throttle (answer empty), else the
// sensor that counts the records the fetch sends (nil without a quota).
func (h *Handler) fetchThrottle(t *quotaTable, r *request) (*rateMeter, time.Duration) {
	m, quota := h.meter(t, r, quotaFetch)
	if m == nil {
		return nil, 0
	}
	if d := m.throttle(time.Now(), quota); d > 0 {
		return nil, d
	}
	return m, 0
}

// throttleMillis is d as throttle_time_ms, rounded up so a throttle is
// never reported as 0.
func throttleMillis(d time.Duration) int32 {
	return int32((d + time.Millisecond - 1) / time.Millisecond)
}
