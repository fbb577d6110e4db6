package tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrInjected is the error MemStore returns for an injected fault.
var ErrInjected = errors.New("tier: injected fault")

// Op names a MemStore operation for fault injection.
type Op uint8

const (
	OpPut Op = iota
	OpGet
	OpHead
	OpList
	OpDelete
	numOps
)

// MemStore is an in-memory ObjectStore for tests, with fault injection:
// FailNth fails a chosen call of an operation, Latency delays every call
// (honouring the context). Stored bytes are copied on Put; never aliased.
type MemStore struct {
	mu      sync.Mutex
	objects map[string]memObject // guarded by mu
	calls   [numOps]int          // guarded by mu: calls so far per Op
	fail    map[faultKey]error   // guarded by mu
	latency time.Duration        // guarded by mu
	down    error                // guarded by mu: every call fails with it (SetDown)
	seq     int64                // guarded by mu: etag source
}

type memObject struct {
	data     []byte
	etag     string
	modified time.Time
}

type faultKey struct {
	op Op
	n  int
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{objects: make(map[string]memObject), fail: make(map[faultKey]error)}
}

// FailNth makes the nth (1-based, counted from now) call of op return err
// (ErrInjected if nil) without touching the store.
func (m *MemStore) FailNth(op Op, n int, err error) {
	if err == nil {
		err = ErrInjected
	}
	m.mu.Lock()
	m.fail[faultKey{op, m.calls[op] + n}] = err
	m.mu.Unlock()
}

// SetDown makes every later call fail with err (the store is down) until
// SetDown(nil).
func (m *MemStore) SetDown(err error) {
	m.mu.Lock()
	m.down = err
	m.mu.Unlock()
}

// SetLatency delays every later call by d.
func (m *MemStore) SetLatency(d time.Duration) {
	m.mu.Lock()
	m.latency = d
	m.mu.Unlock()
}

// Calls returns how many calls of op have been made.
func (m *MemStore) Calls(op Op) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[op]
}

// Keys returns every stored key, sorted.
func (m *MemStore) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.objects))
	for k := range m.objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Corrupt flips byte i of key (tests of corruption detection).
func (m *MemStore) Corrupt(key string, i int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.objects[key]
	d := append([]byte(nil), o.data...)
	d[i] ^= 0xff
	o.data = d
	m.objects[key] = o
}

// enter counts the call and applies latency and injected faults.
func (m *MemStore) enter(ctx context.Context, op Op) error {
	m.mu.Lock()
	m.calls[op]++
	err := m.fail[faultKey{op, m.calls[op]}]
	delete(m.fail, faultKey{op, m.calls[op]})
	if err == nil {
		err = m.down
	}
	lat := m.latency
	m.mu.Unlock()
	if lat > 0 && !sleepCtx(ctx, lat) {
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	return ctx.Err()
}

func (m *MemStore) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) error {
	if err := m.enter(ctx, OpPut); err != nil {
		return err
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return err
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(body, data); err != nil {
		return fmt.Errorf("tier: put %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[key]; ok && opts.IfNoneMatch {
		return fmt.Errorf("tier: put %s: %w", key, ErrExists)
	}
	m.seq++
	m.objects[key] = memObject{data: data, etag: fmt.Sprintf("\"%d\"", m.seq), modified: time.Now()}
	return nil
}

func (m *MemStore) GetRange(ctx context.Context, key string, off int64, p []byte) error {
	if err := m.enter(ctx, OpGet); err != nil {
		return err
	}
	m.mu.Lock()
	o, ok := m.objects[key]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("tier: get %s: %w", key, ErrNotFound)
	}
	if off < 0 || off+int64(len(p)) > int64(len(o.data)) {
		return fmt.Errorf("tier: get %s [%d,+%d) of %d: %w", key, off, len(p), len(o.data), ErrRange)
	}
	copy(p, o.data[off:])
	return nil
}

func (m *MemStore) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := m.enter(ctx, OpHead); err != nil {
		return ObjectInfo{}, err
	}
	m.mu.Lock()
	o, ok := m.objects[key]
	m.mu.Unlock()
	if !ok {
		return ObjectInfo{}, fmt.Errorf("tier: head %s: %w", key, ErrNotFound)
	}
	return ObjectInfo{Key: key, Size: int64(len(o.data)), ETag: o.etag, Modified: o.modified}, nil
}

func (m *MemStore) List(ctx context.Context, prefix, startAfter string, fn func(ObjectInfo) error) error {
	if err := m.enter(ctx, OpList); err != nil {
		return err
	}
	m.mu.Lock()
	var infos []ObjectInfo
	for k, o := range m.objects {
		if strings.HasPrefix(k, prefix) && k > startAfter {
			infos = append(infos, ObjectInfo{Key: k, Size: int64(len(o.data)), ETag: o.etag, Modified: o.modified})
		}
	}
	m.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, info := range infos {
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

func (m *MemStore) Delete(ctx context.Context, key string) error {
	if err := m.enter(ctx, OpDelete); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.objects, key)
	m.mu.Unlock()
	return nil
}
