package txn

import (
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

// fakeStore keeps states in memory; its callbacks run on their own
// goroutine, as the offsets log's do.
type fakeStore struct {
	mu      sync.Mutex
	txns    map[string][]byte
	ended   []string // "group/pid/commit"
	fail    error
	offset  int // TxnOffsetCommits stored
	appends int // AppendTxns stored
	written int // state bytes written (PutTxn and AppendTxn)
}

func newFakeStore() *fakeStore { return &fakeStore{txns: make(map[string][]byte)} }

func (s *fakeStore) PutTxn(id string, state []byte, done func(error)) {
	s.mu.Lock()
	err := s.fail
	if err == nil {
		s.written += len(state)
		if state == nil {
			delete(s.txns, id)
		} else {
			s.txns[id] = state
		}
	}
	s.mu.Unlock()
	go done(err)
}

func (s *fakeStore) AppendTxn(id string, delta []byte, done func(error)) {
	s.mu.Lock()
	err := s.fail
	if err == nil {
		if cur, ok := s.txns[id]; ok {
			s.txns[id] = append(cur, delta...)
		}
		s.appends++
		s.written += len(delta)
	}
	s.mu.Unlock()
	go done(err)
}

func (s *fakeStore) Txns() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.txns)
}

func (s *fakeStore) TxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest, done func(*kmsg.TxnOffsetCommitResponse)) {
	s.mu.Lock()
	s.offset++
	s.mu.Unlock()
	go done(TxnOffsetCommitError(req, 0))
}

func (s *fakeStore) EndTxnOffsets(group string, pid int64, commit bool, done func(error)) {
	s.mu.Lock()
	s.ended = append(s.ended, group+"/"+itoa(pid)+"/"+map[bool]string{true: "commit", false: "abort"}[commit])
	s.mu.Unlock()
	go done(nil)
}

func itoa(v int64) string { return string(rune('0' + v)) }

type marker struct {
	tp     TP
	pid    int64
	epoch  int16
	commit bool
}

// fakeLog hands out producer ids and records markers; hold blocks marker
// writes until released.
type fakeLog struct {
	mu      sync.Mutex
	nextPID int64
	markers []marker
	hold    chan struct{}
	errs    []error // returned by the next marker writes, in order
	// idHold, when set, holds InitProducerID after it signals idAsked.
	idHold, idAsked chan struct{}
}

func (l *fakeLog) InitProducerID() (int64, int16, error) {
	l.mu.Lock()
	hold, asked := l.idHold, l.idAsked
	l.mu.Unlock()
	if hold != nil {
		asked <- struct{}{}
		<-hold
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextPID++
	return l.nextPID, 0, nil
}

func (l *fakeLog) WriteTxnMarker(topic string, partition int32, pid int64, epoch int16, commit bool, _ int32, done func(storage.AppendResult)) {
	go func() {
		l.mu.Lock()
		hold := l.hold
		l.mu.Unlock()
		if hold != nil {
			<-hold
		}
		l.mu.Lock()
		var err error
		if len(l.errs) > 0 {
			err, l.errs = l.errs[0], l.errs[1:]
		}
		if err == nil {
			l.markers = append(l.markers, marker{TP{topic, partition}, pid, epoch, commit})
		}
		l.mu.Unlock()
		done(storage.AppendResult{Err: err})
	}()
}

func (l *fakeLog) written() []marker {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]marker(nil), l.markers...)
}

func open(t testing.TB, lg *fakeLog, st *fakeStore) *Coordinator {
	t.Helper()
	c, err := Open(Config{Log: lg, Store: st, AbortCheckInterval: time.Hour, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type pidEpoch struct {
	pid   int64
	epoch int16
	code  int16
}

func initPID(c *Coordinator, id string, timeoutMs int32, pid int64, epoch int16) pidEpoch {
	ch := make(chan pidEpoch, 1)
	c.InitProducerID(id, timeoutMs, pid, epoch, func(p int64, e int16, code int16) { ch <- pidEpoch{p, e, code} })
	return <-ch
}

func addParts(c *Coordinator, id string, pid int64, epoch int16, tps ...TP) int16 {
	ch := make(chan int16, 1)
	c.AddPartitions(id, pid, epoch, tps, func(code int16) { ch <- code })
	return <-ch
}

func addOffsets(c *Coordinator, id string, pid int64, epoch int16, group string) int16 {
	ch := make(chan int16, 1)
	c.AddOffsets(id, pid, epoch, group, func(code int16) { ch <- code })
	return <-ch
}

func endTxn(c *Coordinator, id string, pid int64, epoch int16, commit, bump bool) pidEpoch {
	return <-endTxnAsync(c, id, pid, epoch, commit, bump)
}

// endTxnAsync: EndTxn answers once the markers are written.
func endTxnAsync(c *Coordinator, id string, pid int64, epoch int16, commit, bump bool) chan pidEpoch {
	ch := make(chan pidEpoch, 1)
	go c.EndTxn(id, pid, epoch, commit, bump, func(p int64, e int16, code int16) { ch <- pidEpoch{p, e, code} })
	return ch
}

// waitDurable waits for id's durable state to be want (pending or not).
func waitDurable(t testing.TB, c *Coordinator, id string, want State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.RLock()
		tx := c.byID[id]
		ok := tx != nil && tx.rec.state == want
		c.mu.RUnlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %v", id, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitState waits for id to reach state (markers are written after EndTxn
// answers).
func waitState(t testing.TB, c *Coordinator, id string, want State) record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.RLock()
		tx := c.byID[id]
		var r record
		var pending bool
		if tx != nil {
			r, pending = tx.rec, tx.pending
		}
		c.mu.RUnlock()
		if tx != nil && r.state == want && !pending {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: state %v (pending %v), want %v", id, r.state, pending, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// verify is VerifyTxnPartition's code, the admitted batch settled at once.
func verify(c *Coordinator, id string, pid int64, epoch int16, topic string, partition int32) int16 {
	code, done := c.VerifyTxnPartition(id, pid, epoch, topic, partition)
	if done != nil {
		done()
	}
	return code
}

func codeName(c int16) string {
	if c == 0 {
		return "NONE"
	}
	return kerr.ErrorForCode(c).Error()
}

func expect(t *testing.T, what string, got, want int16) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: %s, want %s", what, codeName(got), codeName(want))
	}
}

var a0, a1 = TP{"a", 0}, TP{"a", 1}

func TestCommitWritesMarkersAndOffsets(t *testing.T) {
	lg, st := &fakeLog{}, newFakeStore()
	c := open(t, lg, st)
	p := initPID(c, "tx", 60000, -1, -1)
	if p.code != 0 || p.epoch != 0 {
		t.Fatalf("init: %+v", p)
	}
	expect(t, "verify before add", verify(c, "tx", p.pid, p.epoch, "a", 0), errInvalidState)
	expect(t, "add", addParts(c, "tx", p.pid, p.epoch, a1, a0, a0), 0)
	expect(t, "add again", addParts(c, "tx", p.pid, p.epoch, a0), 0)
	expect(t, "add offsets", addOffsets(c, "tx", p.pid, p.epoch, "g"), 0)
	expect(t, "verify", verify(c, "tx", p.pid, p.epoch, "a", 1), 0)
	expect(t, "verify other partition", verify(c, "tx", p.pid, p.epoch, "a", 2), errInvalidState)
	expect(t, "verify old epoch", verify(c, "tx", p.pid, p.epoch-1, "a", 1), errBadEpoch)
	code, parts := c.VerifyPartitions("tx", p.pid, p.epoch, []TP{a0, {"b", 0}})
	if code != 0 || parts[0] != 0 || parts[1] != errInvalidState {
		t.Fatalf("verify-only: %d %v", code, parts)
	}
	r := c.byID["tx"].rec
	if r.state != Ongoing || len(r.parts) != 2 || len(r.groups) != 1 || r.startMs <= 0 {
		t.Fatalf("ongoing record %+v", r)
	}
	e := endTxn(c, "tx", p.pid, p.epoch, true, false)
	if e.code != 0 || e.pid != p.pid || e.epoch != p.epoch {
		t.Fatalf("end: %+v", e)
	}
	expect(t, "verify after end", verify(c, "tx", p.pid, p.epoch, "a", 1), errInvalidState)
	r = waitState(t, c, "tx", CompleteCommit)
	if len(r.parts) != 0 {
		t.Fatalf("complete record keeps partitions: %+v", r)
	}
	m := lg.written()
	if len(m) != 2 || !m[0].commit || m[0].pid != p.pid || m[0].epoch != p.epoch {
		t.Fatalf("markers %+v", m)
	}
	if len(st.ended) != 1 || st.ended[0] != "g/"+itoa(p.pid)+"/commit" {
		t.Fatalf("offsets ended: %v", st.ended)
	}
	// A retried EndTxn after completion succeeds; the other outcome does not.
	expect(t, "end retry", endTxn(c, "tx", p.pid, p.epoch, true, false).code, 0)
	expect(t, "abort after commit", endTxn(c, "tx", p.pid, p.epoch, false, false).code, errInvalidState)
}

// The error codes of each transition, as Kafka's TransactionCoordinator
// answers them.
func TestTransitionErrors(t *testing.T) {
	lg, st := &fakeLog{}, newFakeStore()
	c := open(t, lg, st)
	expect(t, "timeout above max", initPID(c, "tx", int32(DefaultMaxTimeout.Milliseconds())+1, -1, -1).code, errBadTimeout)
	expect(t, "timeout zero", initPID(c, "tx", 0, -1, -1).code, errBadTimeout)
	expect(t, "add to unknown id", addParts(c, "nope", 1, 0, a0), errBadMapping)
	expect(t, "end unknown id", endTxn(c, "nope", 1, 0, true, false).code, errBadMapping)
	p := initPID(c, "tx", 1000, -1, -1)
	expect(t, "end Empty", endTxn(c, "tx", p.pid, p.epoch, true, false).code, errInvalidState)
	expect(t, "abort Empty (v<5)", endTxn(c, "tx", p.pid, p.epoch, false, false).code, errInvalidState)
	expect(t, "add wrong pid", addParts(c, "tx", p.pid+100, p.epoch, a0), errBadMapping)
	expect(t, "add wrong epoch", addParts(c, "tx", p.pid, p.epoch+1, a0), errFenced)
	expect(t, "add", addParts(c, "tx", p.pid, p.epoch, a0), 0)
	expect(t, "end wrong epoch", endTxn(c, "tx", p.pid, p.epoch+1, true, false).code, errFenced)
	expect(t, "end wrong pid", endTxn(c, "tx", p.pid+100, p.epoch, true, false).code, errBadMapping)

	// Markers held: the transaction stays in PrepareCommit.
	hold := make(chan struct{})
	lg.mu.Lock()
	lg.hold = hold
	lg.mu.Unlock()
	commit := endTxnAsync(c, "tx", p.pid, p.epoch, true, false)
	waitDurable(t, c, "tx", PrepareCommit)
	select {
	case r := <-commit:
		t.Fatalf("EndTxn answered before its markers: %+v", r)
	default:
	}
	expect(t, "commit again while preparing", endTxn(c, "tx", p.pid, p.epoch, true, false).code, errConcurrent)
	expect(t, "abort while preparing commit", endTxn(c, "tx", p.pid, p.epoch, false, false).code, errConcurrent)
	expect(t, "add while preparing", addParts(c, "tx", p.pid, p.epoch, a1), errConcurrent)
	expect(t, "init while preparing", initPID(c, "tx", 1000, -1, -1).code, errConcurrent)
	close(hold)
	expect(t, "commit", (<-commit).code, 0)
	waitState(t, c, "tx", CompleteCommit)

	// Store failure: NOT_COORDINATOR, state unchanged.
	st.mu.Lock()
	st.fail = errors.New("disk")
	st.mu.Unlock()
	expect(t, "add with failed store", addParts(c, "tx", p.pid, p.epoch, a1), kerr.NotCoordinator.Code)
	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	if c.byID["tx"].rec.state != CompleteCommit {
		t.Fatal("state changed by a failed write")
	}
}

// Zombie fencing: a second InitProducerId for the id aborts the first
// producer's open transaction with a bumped epoch and fences it.
func TestInitProducerIDFencesOngoing(t *testing.T) {
	lg, st := &fakeLog{}, newFakeStore()
	c := open(t, lg, st)
	p1 := initPID(c, "tx", 60000, -1, -1)
	expect(t, "add", addParts(c, "tx", p1.pid, p1.epoch, a0), 0)
	expect(t, "second producer's init", initPID(c, "tx", 60000, -1, -1).code, errConcurrent)
	waitState(t, c, "tx", CompleteAbort)
	p2 := initPID(c, "tx", 60000, -1, -1)
	if p2.code != 0 || p2.pid != p1.pid || p2.epoch != p1.epoch+2 {
		t.Fatalf("second init: %+v after %+v", p2, p1)
	}
	m := lg.written()
	if len(m) != 1 || m[0].commit || m[0].epoch != p1.epoch+1 {
		t.Fatalf("fence markers %+v", m)
	}
	expect(t, "zombie add", addParts(c, "tx", p1.pid, p1.epoch, a1), errFenced)
	expect(t, "zombie end", endTxn(c, "tx", p1.pid, p1.epoch, true, false).code, errFenced)
	expect(t, "zombie verify", verify(c, "tx", p1.pid, p1.epoch, "a", 0), errBadEpoch)
	expect(t, "new producer add", addParts(c, "tx", p2.pid, p2.epoch, a1), 0)
}

// KIP-360: a producer recovering with its id and epoch gets the next epoch;
// a retry of that bump the same one; a stale epoch is fenced.
func TestInitProducerIDRecovery(t *testing.T) {
	c := open(t, &fakeLog{}, newFakeStore())
	// A new id with an id and epoch the coordinator never gave (a state
	// lost): a fresh producer id, epoch 0.
	p := initPID(c, "tx", 1000, 42, 3)
	if p.code != 0 || p.epoch != 0 {
		t.Fatalf("recovery on new id: %+v", p)
	}
	b := initPID(c, "tx", 1000, p.pid, p.epoch)
	if b.code != 0 || b.pid != p.pid || b.epoch != 1 {
		t.Fatalf("bump: %+v", b)
	}
	if r := initPID(c, "tx", 1000, p.pid, p.epoch); r.code != 0 || r.epoch != 1 {
		t.Fatalf("retry of the bump: %+v", r)
	}
	expect(t, "other producer id", initPID(c, "tx", 1000, p.pid+50, 1).code, errFenced)
	expect(t, "stale epoch", initPID(c, "tx", 1000, p.pid, 7).code, errFenced)
	if n := initPID(c, "tx", 1000, -1, -1); n.code != 0 || n.epoch != 2 {
		t.Fatalf("plain init: %+v", n)
	}
}

// KIP-890 part 2 (EndTxn v5): every end bumps the epoch and returns it; a
// retry with the epoch before succeeds; an abort with nothing open bumps.
func TestEndTxnBumpsEpoch(t *testing.T) {
	lg := &fakeLog{}
	c := open(t, lg, newFakeStore())
	p := initPID(c, "tx", 60000, -1, -1)
	expect(t, "add", addParts(c, "tx", p.pid, p.epoch, a0), 0)
	e := endTxn(c, "tx", p.pid, p.epoch, true, true)
	if e.code != 0 || e.pid != p.pid || e.epoch != p.epoch+1 {
		t.Fatalf("end: %+v", e)
	}
	waitState(t, c, "tx", CompleteCommit)
	if m := lg.written(); len(m) != 1 || m[0].epoch != p.epoch+1 {
		t.Fatalf("markers carry the new epoch: %+v", m)
	}
	if r := endTxn(c, "tx", p.pid, p.epoch, true, true); r.code != 0 || r.epoch != e.epoch {
		t.Fatalf("retry: %+v", r)
	}
	expect(t, "old epoch add", addParts(c, "tx", p.pid, p.epoch, a0), errFenced)
	a := endTxn(c, "tx", e.pid, e.epoch, false, true)
	if a.code != 0 || a.epoch != e.epoch+1 {
		t.Fatalf("abort with nothing open: %+v", a)
	}
	waitState(t, c, "tx", CompleteAbort)
	expect(t, "commit with nothing open", endTxn(c, "tx", a.pid, a.epoch, true, true).code, errInvalidState)
}

// A transaction open past its timeout is aborted by the coordinator, with
// the epoch bumped so the producer is fenced.
func TestTimeoutAborts(t *testing.T) {
	lg, st := &fakeLog{}, newFakeStore()
	c := open(t, lg, st)
	now := time.Now()
	c.now = func() time.Time { return now }
	p := initPID(c, "tx", 1000, -1, -1)
	expect(t, "add", addParts(c, "tx", p.pid, p.epoch, a0), 0)
	expect(t, "add offsets", addOffsets(c, "tx", p.pid, p.epoch, "g"), 0)
	c.abortTimedOut()
	if c.byID["tx"].rec.state != Ongoing {
		t.Fatal("aborted before its timeout")
	}
	now = now.Add(1001 * time.Millisecond)
	c.abortTimedOut()
	waitState(t, c, "tx", CompleteAbort)
	if m := lg.written(); len(m) != 1 || m[0].commit || m[0].epoch != p.epoch+1 {
		t.Fatalf("markers %+v", m)
	}
	if len(st.ended) != 1 || st.ended[0] != "g/"+itoa(p.pid)+"/abort" {
		t.Fatalf("offsets: %v", st.ended)
	}
	expect(t, "producer after timeout", endTxn(c, "tx", p.pid, p.epoch, true, false).code, errFenced)
	// An unused id expires.
	now = now.Add(DefaultIDExpiration + time.Second)
	c.expireIDs()
	deadline := time.Now().Add(10 * time.Second)
	for len(st.Txns()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("expired id not removed")
		}
		time.Sleep(time.Millisecond)
	}
}

// After a restart, a transaction found in PrepareCommit writes its markers
// and resolves its offsets, then completes; its producer id stays fenced
// where it was.
func TestRestartFinishesPrepared(t *testing.T) {
	lg, st := &fakeLog{hold: make(chan struct{})}, newFakeStore()
	c, err := Open(Config{Log: lg, Store: st, AbortCheckInterval: time.Hour, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	p := initPID(c, "tx", 60000, -1, -1)
	expect(t, "add", addParts(c, "tx", p.pid, p.epoch, a0, a1), 0)
	expect(t, "add offsets", addOffsets(c, "tx", p.pid, p.epoch, "g"), 0)
	commit := endTxnAsync(c, "tx", p.pid, p.epoch, true, false)
	waitDurable(t, c, "tx", PrepareCommit)
	// "Crash": the markers never land; the store holds PrepareCommit.
	saved := st.Txns()
	close(lg.hold) // let the first coordinator's held writes go so Close returns
	expect(t, "commit", (<-commit).code, 0)
	c.Close()
	lg2, st2 := &fakeLog{nextPID: 100}, newFakeStore()
	st2.txns = saved
	c2 := open(t, lg2, st2)
	waitState(t, c2, "tx", CompleteCommit)
	if m := lg2.written(); len(m) != 2 || !m[0].commit || m[0].pid != p.pid {
		t.Fatalf("markers after restart: %+v", m)
	}
	if len(st2.ended) != 1 {
		t.Fatalf("offsets after restart: %v", st2.ended)
	}
	if n := initPID(c2, "tx", 60000, -1, -1); n.code != 0 || n.pid != p.pid || n.epoch != p.epoch+1 {
		t.Fatalf("init after restart: %+v", n)
	}
}

// A marker write that fails for a reason that may pass is retried; one for
// a deleted partition is skipped.
func TestMarkerRetry(t *testing.T) {
	lg := &fakeLog{errs: []error{storage.ErrBusy, storage.ErrUnknownTopic}}
	c := open(t, lg, newFakeStore())
	p := initPID(c, "tx", 60000, -1, -1)
	expect(t, "add", addParts(c, "tx", p.pid, p.epoch, a0), 0)
	expect(t, "abort", endTxn(c, "tx", p.pid, p.epoch, false, false).code, 0)
	waitState(t, c, "tx", CompleteAbort)
	if m := lg.written(); len(m) != 0 {
		t.Fatalf("markers %+v (busy, then unknown topic: none written)", m)
	}
}

// TxnOffsetCommit needs the group in the ongoing transaction.
func TestTxnOffsetCommitChecks(t *testing.T) {
	st := newFakeStore()
	c := open(t, &fakeLog{}, st)
	p := initPID(c, "tx", 60000, -1, -1)
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = "tx", "g", p.pid, p.epoch
	tt := kmsg.NewTxnOffsetCommitRequestTopic()
	tt.Topic, tt.Partitions = "a", []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5}}
	req.Topics = append(req.Topics, tt)
	commit := func() int16 {
		ch := make(chan *kmsg.TxnOffsetCommitResponse, 1)
		c.TxnOffsetCommit(req, func(r *kmsg.TxnOffsetCommitResponse) { ch <- r })
		return (<-ch).Topics[0].Partitions[0].ErrorCode
	}
	expect(t, "group not added", commit(), errInvalidState)
	expect(t, "add offsets", addOffsets(c, "tx", p.pid, p.epoch, "g"), 0)
	expect(t, "commit", commit(), 0)
	req.ProducerEpoch--
	expect(t, "old epoch", commit(), errFenced)
	req.ProducerEpoch, req.ProducerID = p.epoch, p.pid+9
	expect(t, "other pid", commit(), errBadMapping)
	if st.offset != 1 {
		t.Fatalf("store got %d commits", st.offset)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := record{pid: 7, lastPid: -1, epoch: 3, lastEpoch: 2, timeoutMs: 9000, state: PrepareCommit, startMs: 11, updateMs: 12, nextPid: -1,
		parts: []TP{a0, a1, {"b", 9}}, groups: []string{"g", "h"}}
	b := r.encode()
	got, err := decodeRecord(b)
	if err != nil || got.pid != 7 || got.state != PrepareCommit || len(got.parts) != 3 || got.parts[2] != (TP{"b", 9}) || got.groups[1] != "h" || got.timeoutMs != 9000 {
		t.Fatalf("%+v %v", got, err)
	}
	for n := range len(b) {
		if _, err := decodeRecord(b[:n]); err == nil {
			t.Fatalf("truncated to %d decoded", n)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add((&record{pid: 1, parts: []TP{a0}, groups: []string{"g"}}).encode())
	f.Add(append((&record{pid: 1, parts: []TP{a1}, groups: []string{"g"}}).encode(), partsChunk([]TP{a0, a1})...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		// Whatever decodes encodes back to the same bytes, unless it
		// carried appended chunks, which decode merged into the
		// partitions: then the encoding of what decoded is a fixed point.
		enc := r.encode()
		if len(enc) == len(b) && string(enc) != string(b) {
			t.Fatalf("re-encoding differs")
		}
		r2, err := decodeRecord(enc)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if string(r2.encode()) != string(enc) {
			t.Fatalf("re-encoding is not a fixed point")
		}
	})
}
