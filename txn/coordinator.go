package txn

import (
	"errors"
	"math"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

// Defaults follow Apache Kafka's broker defaults.
const (
	DefaultMaxTimeout         = 15 * time.Minute   // transaction.max.timeout.ms
	DefaultAbortCheckInterval = 10 * time.Second   // transaction.abort.timed.out.transaction.cleanup.interval.ms
	DefaultIDExpiration       = 7 * 24 * time.Hour // transactional.id.expiration.ms
	// DefaultMaxIDs bounds the transactional ids the coordinator keeps
	// (about 400 B of memory each with its state: BenchmarkIDMemory); Kafka has no
	// such bound, but one client inventing ids must not grow the broker
	// without end.
	DefaultMaxIDs = 100_000
	// DefaultMaxGroups bounds the groups one transaction may add
	// (AddOffsetsToTxn): each is resolved at its end and carried in every
	// rewrite of its state.
	DefaultMaxGroups = 1000
	// MaxIDBytes bounds transactional ids and the group ids of
	// AddOffsetsToTxn: the longest string the non-flexible versions of
	// the admin APIs carry (an int16 length), and within the u16 length
	// of the state encoding (a longer group id made the state undecodable
	// and the broker unable to start).
	MaxIDBytes = 1<<15 - 1
	// retryBackoff paces a marker or offsets write that failed for a reason
	// that may pass (a full shard queue, a closing store).
	retryBackoff = 100 * time.Millisecond
)

// Log is the partition log as the coordinator needs it. *storage.Store
// implements it.
type Log interface {
	// InitProducerID allocates a producer id that is never handed out again.
	InitProducerID() (id int64, epoch int16, err error)
	// WriteTxnMarker appends a COMMIT or ABORT control batch for producer
	// pid at epoch to topic/partition, durable before done.
	WriteTxnMarker(topic string, partition int32, pid int64, epoch int16, commit bool, coordinatorEpoch int32, done func(storage.AppendResult))
}

// Store keeps the coordinator's state and the transactions' offsets
// durably. *group.Coordinator implements it (in its offsets log). Every
// callback runs after the fdatasync, must not block, and runs exactly once.
type Store interface {
	// PutTxn records a transactional id's state; nil removes the id.
	PutTxn(id string, state []byte, done func(error))
	// AppendTxn appends delta to the id's recorded state.
	AppendTxn(id string, delta []byte, done func(error))
	// Txns returns every recorded state.
	Txns() map[string][]byte
	// TxnOffsetCommit stores a transaction's offsets, pending.
	TxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest, done func(*kmsg.TxnOffsetCommitResponse))
	// EndTxnOffsets commits or drops pid's pending offsets in group.
	EndTxnOffsets(group string, pid int64, commit bool, done func(error))
}

// Config configures the coordinator. Zero durations take the defaults.
type Config struct {
	Log   Log   // required
	Store Store // required
	// MaxTimeout is the longest transaction timeout a producer may ask for
	// (transaction.max.timeout.ms); longer ones answer
	// INVALID_TRANSACTION_TIMEOUT.
	MaxTimeout time.Duration
	// AbortCheckInterval is how often transactions past their timeout are
	// looked for and aborted, and expired transactional ids removed.
	AbortCheckInterval time.Duration
	// IDExpiration removes a transactional id with no transaction open
	// that has not been used this long (transactional.id.expiration.ms).
	IDExpiration time.Duration
	// MaxIDs bounds the transactional ids kept: an InitProducerId for a
	// new one beyond it answers POLICY_VIOLATION.
	MaxIDs int
	// MaxGroups bounds the groups of one transaction: an AddOffsetsToTxn
	// beyond it answers POLICY_VIOLATION.
	MaxGroups int
	Logger    zerolog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxTimeout <= 0 {
		c.MaxTimeout = DefaultMaxTimeout
	}
	if c.AbortCheckInterval <= 0 {
		c.AbortCheckInterval = DefaultAbortCheckInterval
	}
	if c.IDExpiration <= 0 {
		c.IDExpiration = DefaultIDExpiration
	}
	if c.MaxIDs <= 0 {
		c.MaxIDs = DefaultMaxIDs
	}
	if c.MaxGroups <= 0 {
		c.MaxGroups = DefaultMaxGroups
	}
}

// txn is one transactional id.
type txn struct {
	id  string
	rec record // durable state; guarded by Coordinator.mu, replaced whole
	// pending: a write for this id is in flight; requests answer
	// CONCURRENT_TRANSACTIONS until it lands. Guarded by mu.
	pending bool
	// inflight counts the TxnOffsetCommits and transactional produce
	// batches admitted and not yet stored; the end of the transaction
	// waits for them before writing markers and resolving the groups'
	// pending offsets. Add only under mu while the transaction is Ongoing.
	inflight sync.WaitGroup
}

// Coordinator is the transaction coordinator.
type Coordinator struct {
	cfg  Config
	log  zerolog.Logger
	warn zerolog.Logger

	mu    sync.RWMutex
	byID  map[string]*txn // guarded by mu
	byPID map[int64]*txn  // current producer id -> its transactional id; guarded by mu

	stop   chan struct{}
	wg     sync.WaitGroup // the timeout loop and the goroutines finishing transactions
	closed bool           // guarded by mu

	now func() time.Time // tests move the clock
}

// Open loads the transactions from cfg.Store, resumes the ones found in
// PrepareCommit/PrepareAbort, and starts the timeout loop.
func Open(cfg Config) (*Coordinator, error) {
	cfg.setDefaults()
	if cfg.Log == nil || cfg.Store == nil {
		return nil, errors.New("txn: Config.Log and Config.Store are required")
	}
	log := cfg.Logger.With().Str("component", "txn").Logger()
	c := &Coordinator{
		cfg:   cfg,
		log:   log,
		warn:  log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute}),
		byID:  make(map[string]*txn),
		byPID: make(map[int64]*txn),
		stop:  make(chan struct{}),
		now:   time.Now,
	}
	var resume []*txn
	for id, b := range cfg.Store.Txns() {
		r, err := decodeRecord(b)
		if err != nil {
			return nil, errors.Join(err, errors.New("txn: transactional id "+id))
		}
		t := &txn{id: id, rec: r}
		c.byID[id] = t
		c.byPID[r.pid] = t
		if r.state.preparing() {
			resume = append(resume, t)
		}
	}
	for _, t := range resume {
		c.log.Info().Str("transactional_id", t.id).Str("state", t.rec.state.String()).Msg("txn: finishing a transaction after restart")
		t.pending = true
		c.finish(t, t.rec, nil)
	}
	c.wg.Add(1)
	go c.timeouts()
	return c, nil
}

// Close stops the timeout loop and waits for transactions being finished
// (their markers) to stop; one interrupted is finished on the next Open.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	return nil
}

// persist writes t's next state; t must be pending (set under mu by the
// caller). On success the state becomes t's, then done runs (from the
// store's writer goroutine; without the lock). t stays pending after a
// successful write when stay is set (its transaction is being finished).
func (c *Coordinator) persist(t *txn, next record, stay bool, done func(error)) {
	c.cfg.Store.PutTxn(t.id, next.encode(), func(err error) {
		c.mu.Lock()
		t.pending = stay && err == nil
		if err == nil {
			if t.rec.pid != next.pid && c.byPID[t.rec.pid] == t {
				delete(c.byPID, t.rec.pid)
			}
			t.rec = next
			c.byPID[next.pid] = t
		}
		c.mu.Unlock()
		done(err)
	})
}

// persistParts records that tps were added to t's ongoing transaction,
// next being its state with them: only tps are written (Store.AppendTxn).
// t must be pending. A record's other fields do not change while Ongoing
// but its update time, which only idle ids (not Ongoing) use.
func (c *Coordinator) persistParts(t *txn, next record, tps []TP, done func(error)) {
	c.cfg.Store.AppendTxn(t.id, partsChunk(tps), func(err error) {
		c.mu.Lock()
		t.pending = false
		if err == nil {
			t.rec = next
		}
		c.mu.Unlock()
		done(err)
	})
}

// timeouts aborts transactions open longer than their timeout and removes
// expired transactional ids, every AbortCheckInterval.
func (c *Coordinator) timeouts() {
	defer c.wg.Done()
	tick := time.NewTicker(c.cfg.AbortCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
			c.abortTimedOut()
			c.expireIDs()
		}
	}
}

// abortTimedOut aborts every Ongoing transaction past its timeout, with the
// epoch bumped (Kafka's prepareFenceProducerEpoch) so the producer, if it
// comes back, is fenced instead of adding to a transaction that is gone.
func (c *Coordinator) abortTimedOut() {
	nowMs := c.now().UnixMilli()
	c.mu.Lock()
	var due []*txn
	for _, t := range c.byID {
		if t.rec.state == Ongoing && !t.pending && nowMs > t.rec.startMs+int64(t.rec.timeoutMs) {
			t.pending = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		next := c.fenced(t.rec, nowMs)
		c.log.Info().Str("transactional_id", t.id).Int64("producer_id", next.pid).Msg("txn: aborting a transaction past its timeout")
		c.persist(t, next, true, func(err error) {
			if err != nil {
				c.log.Warn().Err(err).Str("transactional_id", t.id).Msg("txn: cannot record the abort of a timed-out transaction; retrying at the next check")
				return
			}
			c.finish(t, next, nil)
		})
	}
}

// fenced is r aborted with its epoch bumped, as Kafka's
// prepareFenceProducerEpoch: the last epoch a producer is given is 32766
// (epochExhausted), and its fence takes 32767, so even that producer is
// fenced; the next InitProducerId then rotates the producer id. Only at
// 32767 itself (a fence whose write failed, retried) the epoch stays.
func (c *Coordinator) fenced(r record, nowMs int64) record {
	next := r
	if r.epoch < math.MaxInt16 {
		next.epoch = r.epoch + 1
	}
	next.state = PrepareAbort
	next.updateMs = nowMs
	return next
}

// expireIDs removes transactional ids without an open transaction unused
// for IDExpiration.
func (c *Coordinator) expireIDs() {
	nowMs := c.now().UnixMilli()
	exp := c.cfg.IDExpiration.Milliseconds()
	c.mu.Lock()
	var due []*txn
	for _, t := range c.byID {
		if (t.rec.state == Empty || t.rec.state.complete()) && !t.pending && nowMs > t.rec.updateMs+exp {
			t.pending = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		c.cfg.Store.PutTxn(t.id, nil, func(err error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			t.pending = false
			if err == nil {
				delete(c.byID, t.id)
				if c.byPID[t.rec.pid] == t {
					delete(c.byPID, t.rec.pid)
				}
				t.rec.state = Dead
			}
		})
	}
}
