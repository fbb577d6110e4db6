package kafka

// Request metrics: a latency histogram per API and error counts, kept in
// stripes chosen by connection id so event loops rarely share a cache
// line, summed when the metrics endpoint asks (RequestMetrics). netloop
// reports each written response (netloop.Observer); the request's API key,
// error code and whether it long-polled travel in netloop.Request.Tag.

import (
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/internal/hist"
	"github.com/klite/klite/netloop"
)

// RequestBounds are the buckets of the request latency histogram, in
// nanoseconds: 100 µs to about 52 s, doubling.
var RequestBounds = hist.Exp(100_000, 2, 20)

// reqStripes is the number of counter stripes (a power of two).
const reqStripes = 8

// Tag layout: API key in bits 0-15, the response's error code in bits
// 16-29 (codes are far below 2^14), bit 30 set once the key is known to
// be a registered API (0 is Produce's key), bit 31 when a fetch long-polled.
const (
	tagErrShift = 16
	tagErrMask  = 1<<14 - 1
	tagKnown    = 1 << 30
	tagPolled   = 1 << 31
)

type reqStripe struct {
	dur  [maxAPIKey + 1]*hist.Hist // nil for unregistered keys
	mu   sync.Mutex
	errs map[errKey]uint64 // guarded by mu: responses with an error code
	_    [64]byte          // keep stripes off each other's cache lines
}

type errKey struct{ key, code int16 }

type reqMetrics struct {
	stripes [reqStripes]reqStripe
	// slowNanos is SlowRequest (0: off); slow is the log for it, rate-limited.
	slowNanos int64
	slowSkip  atomic.Int64 // slow requests not logged since the last line
	slowLast  atomic.Int64 // nanotime of the last slow-request line
}

// slowLogEvery is the least time between two slow-request lines; the
// next line says how many were skipped.
const slowLogEvery = time.Second

func (m *reqMetrics) init() {
	for i := range m.stripes {
		st := &m.stripes[i]
		st.errs = make(map[errKey]uint64)
		for k, a := range apis {
			if a != nil {
				st.dur[k] = hist.New(RequestBounds)
			}
		}
	}
}

// Written implements netloop.Observer: it runs on the event loop after a
// response was written.
func (h *Handler) Written(nr *netloop.Request, took time.Duration) {
	tag := nr.Tag
	if tag&tagKnown == 0 {
		return // closed before its API was known: nothing to count
	}
	key := int16(tag & 0xffff)
	if key < 0 || key > maxAPIKey {
		return
	}
	st := &h.reqs.stripes[nr.Conn.ID&(reqStripes-1)]
	d := st.dur[key]
	if d == nil {
		return
	}
	d.Observe(int64(took))
	if code := int16(tag >> tagErrShift & tagErrMask); code != 0 {
		if code == tagErrMask {
			code = -1 // UNKNOWN_SERVER_ERROR
		}
		st.mu.Lock()
		st.errs[errKey{key, code}]++
		st.mu.Unlock()
	}
	if slow := h.reqs.slowNanos; slow > 0 && int64(took) > slow && tag&tagPolled == 0 {
		h.slowRequest(nr, key, took)
	}
}

// slowRequest logs a request slower than SlowRequest, at most once per
// slowLogEvery (with how many were skipped since the last line).
func (h *Handler) slowRequest(nr *netloop.Request, key int16, took time.Duration) {
	now := time.Now().UnixNano()
	last := h.reqs.slowLast.Load()
	if now-last < int64(slowLogEvery) || !h.reqs.slowLast.CompareAndSwap(last, now) {
		h.reqs.slowSkip.Add(1)
		return
	}
	var clientID []byte
	if f := nr.Frame; len(f) >= requestHeaderBytes+2 {
		n := int(int16(uint16(f[requestHeaderBytes])<<8 | uint16(f[requestHeaderBytes+1])))
		if n > 0 && len(f) >= requestHeaderBytes+2+n {
			clientID = f[requestHeaderBytes+2 : requestHeaderBytes+2+n]
		}
	}
	h.log.Warn().Str("api", kmsg.NameForKey(key)).Bytes("client_id", clientID).
		Stringer("remote", nr.Conn.Remote).Uint64("conn", nr.Conn.ID).Dur("took", took).
		Int64("skipped", h.reqs.slowSkip.Swap(0)).Msg("slow request")
}

// RequestMetrics is the request counters summed over stripes.
type RequestMetrics struct {
	// Latency is per API key (only keys served), nanoseconds.
	Latency map[int16]hist.Snapshot
	// Errors counts responses with a non-zero error code by key and code;
	// the rest of Latency[key]'s count answered without an error.
	Errors map[[2]int16]uint64
}

// RequestMetrics sums the stripes.
func (h *Handler) RequestMetrics() RequestMetrics {
	m := RequestMetrics{Latency: map[int16]hist.Snapshot{}, Errors: map[[2]int16]uint64{}}
	for i := range h.reqs.stripes {
		st := &h.reqs.stripes[i]
		for k, d := range st.dur {
			if d != nil {
				m.Latency[int16(k)] = m.Latency[int16(k)].Add(d.Snapshot())
			}
		}
		st.mu.Lock()
		for ek, n := range st.errs {
			m.Errors[[2]int16{ek.key, ek.code}] += n
		}
		st.mu.Unlock()
	}
	return m
}

// tag returns r's netloop tag: its key, error code and poll bit.
func (r *request) tag() uint32 {
	code := uint32(r.errCode)
	if r.errCode < 0 || code > tagErrMask {
		code = tagErrMask // -1, UNKNOWN_SERVER_ERROR
	}
	t := uint32(uint16(r.key)) | code<<tagErrShift | tagKnown
	if r.polled {
		t |= tagPolled
	}
	return t
}

// noteErr records code as the response's error unless one is recorded.
func (r *request) noteErr(code int16) {
	if r.errCode == 0 {
		r.errCode = code
	}
}

// errField is, per API key, the index of the response's top-level
// ErrorCode field (-1: none), found once by reflection so respond reads
// it without a lookup.
var errField = func() (f [maxAPIKey + 1]int) {
	for k := range f {
		f[k] = -1
		resp := kmsg.ResponseForKey(int16(k))
		if resp == nil {
			continue
		}
		if sf, ok := reflect.TypeOf(resp).Elem().FieldByName("ErrorCode"); ok && sf.Type.Kind() == reflect.Int16 && len(sf.Index) == 1 {
			f[k] = sf.Index[0]
		}
	}
	return f
}()

// respErr notes msg's error: the top-level code, else for Produce and
// Fetch the first partition's that has one.
func (r *request) respErr(msg kmsg.Response) {
	if r.errCode != 0 {
		return
	}
	switch m := msg.(type) {
	case *kmsg.ProduceResponse:
		for i := range m.Topics {
			for _, p := range m.Topics[i].Partitions {
				if p.ErrorCode != 0 {
					r.errCode = p.ErrorCode
					return
				}
			}
		}
		return
	case *kmsg.FetchResponse:
		fetchErr(r, m)
		return
	}
	if r.key >= 0 && r.key <= maxAPIKey && errField[r.key] >= 0 {
		r.errCode = int16(reflect.ValueOf(msg).Elem().Field(errField[r.key]).Int())
	}
}

func fetchErr(r *request, m *kmsg.FetchResponse) {
	if m.ErrorCode != 0 {
		r.noteErr(m.ErrorCode)
		return
	}
	for i := range m.Topics {
		for _, p := range m.Topics[i].Partitions {
			if p.ErrorCode != 0 {
				r.noteErr(p.ErrorCode)
				return
			}
		}
	}
}
