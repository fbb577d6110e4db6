package group

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/klite/klite/storage"
	"github.com/klite/klite/vfs"
)

// Defaults follow Apache Kafka's broker defaults.
const (
	DefaultMinSessionTimeout      = 6 * time.Second      // group.min.session.timeout.ms
	DefaultMaxSessionTimeout      = 30 * time.Minute     // group.max.session.timeout.ms
	DefaultInitialRebalanceDelay  = 3 * time.Second      // group.initial.rebalance.delay.ms
	DefaultOffsetsRetention       = 7 * 24 * time.Hour   // offsets.retention.minutes
	DefaultRetentionCheckInterval = 10 * time.Minute     // offsets.retention.check.interval.ms
	DefaultMaxMetadataBytes       = 4096                 // offset.metadata.max.bytes
	DefaultMaxGroupMetadataBytes  = 1048588              // __consumer_offsets' max.message.bytes (message.max.bytes)
	DefaultCompactBytes           = 64 << 20             // offsets log size that triggers a snapshot
	newMemberJoinTimeout          = 5 * time.Minute      // KIP-394: a new member must rejoin within this
	maxTimeout                    = 365 * 24 * time.Hour // clamp for client-given timeouts
	defaultMaxGroupSize           = int(^uint32(0) >> 1) // group.max.size: Int.MaxValue
	// DefaultMaxGroups bounds the groups kept (Kafka has no such bound):
	// a client committing offsets under ever new group ids, or joining
	// them, must not grow the broker without end.
	DefaultMaxGroups = 100_000

	DefaultConsumerSessionTimeout    = 45 * time.Second // group.consumer.session.timeout.ms
	DefaultConsumerHeartbeatInterval = 5 * time.Second  // group.consumer.heartbeat.interval.ms
	DefaultTopicRefreshInterval      = 5 * time.Second  // how often consumer groups re-resolve subscriptions
)

// Upper bounds of the configurable limits: what the offsets log reads back.
const (
	// MaxMetadataBytesLimit bounds Config.MaxMetadataBytes, so that one
	// committed offset always fits in one offsets log record.
	MaxMetadataBytesLimit = 16 << 20
	// MaxGroupMetadataBytesLimit bounds Config.MaxGroupMetadataBytes.
	MaxGroupMetadataBytesLimit = MaxRecordBytes
)

// TopicLookup answers how many partitions a topic has; ok is false for a
// topic that does not exist.
type TopicLookup func(topic string) (partitions int32, ok bool)

// Config configures the coordinator. Zero values take the defaults above.
type Config struct {
	Dir string // directory of the offsets log
	FS  vfs.FS // default vfs.OSFS{}

	Topics TopicLookup // required

	// TopicList lists every topic (name, id, partitions). The consumer
	// group protocol (KIP-848) needs it to resolve subscriptions and name
	// topics by id; without it ConsumerGroupHeartbeat answers
	// UNSUPPORTED_VERSION.
	TopicList func() []storage.TopicInfo

	ConsumerSessionTimeout    time.Duration
	ConsumerHeartbeatInterval time.Duration
	TopicRefreshInterval      time.Duration // subscriptions are re-resolved this often (new topics, regexes)
	// MaxRegexBytes bounds a ConsumerGroupHeartbeat's SubscribedTopicRegex;
	// a longer one answers INVALID_REGULAR_EXPRESSION (DefaultMaxRegexBytes).
	MaxRegexBytes int

	MinSessionTimeout     time.Duration
	MaxSessionTimeout     time.Duration
	InitialRebalanceDelay time.Duration // 0 is allowed (no delay) only through NoInitialDelay
	NoInitialDelay        bool
	MaxGroupSize          int
	// MaxGroups bounds the number of groups: a request that would create
	// one more (JoinGroup, ConsumerGroupHeartbeat, OffsetCommit,
	// TxnOffsetCommit) answers POLICY_VIOLATION. Groups leave when their
	// offsets expire (OffsetsRetention) or are deleted (DeleteGroups).
	MaxGroups              int
	OffsetsRetention       time.Duration
	RetentionCheckInterval time.Duration
	MaxMetadataBytes       int   // offset.metadata.max.bytes, at most MaxMetadataBytesLimit
	CompactBytes           int64 // offsets log size that triggers a snapshot

	// MaxGroupMetadataBytes bounds a classic group's stored generation
	// (every member's subscription and assignment, as one record), as
	// Kafka bounds its group metadata record by __consumer_offsets'
	// max.message.bytes: a join whose own metadata exceeds it, and a
	// SyncGroup whose generation would, answer UNKNOWN_SERVER_ERROR.
	// At most MaxGroupMetadataBytesLimit.
	MaxGroupMetadataBytes int

	// RepairLog opens an offsets log that does not read back by cutting
	// each damaged file at its first bad record (the cut bytes are kept in
	// <file>.broken-<offset>), instead of failing. Records after the cut in
	// that file are lost; later files are still replayed.
	RepairLog bool

	Logger zerolog.Logger
}

func (c *Config) setDefaults() {
	if c.FS == nil {
		c.FS = vfs.OSFS{}
	}
	if c.MinSessionTimeout <= 0 {
		c.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if c.MaxSessionTimeout <= 0 {
		c.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	if c.InitialRebalanceDelay <= 0 && !c.NoInitialDelay {
		c.InitialRebalanceDelay = DefaultInitialRebalanceDelay
	}
	if c.NoInitialDelay {
		c.InitialRebalanceDelay = 0
	}
	if c.MaxGroupSize <= 0 {
		c.MaxGroupSize = defaultMaxGroupSize
	}
	if c.MaxGroups <= 0 {
		c.MaxGroups = DefaultMaxGroups
	}
	if c.OffsetsRetention <= 0 {
		c.OffsetsRetention = DefaultOffsetsRetention
	}
	if c.RetentionCheckInterval <= 0 {
		c.RetentionCheckInterval = DefaultRetentionCheckInterval
	}
	if c.MaxMetadataBytes <= 0 {
		c.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if c.ConsumerSessionTimeout <= 0 {
		c.ConsumerSessionTimeout = DefaultConsumerSessionTimeout
	}
	if c.ConsumerHeartbeatInterval <= 0 {
		c.ConsumerHeartbeatInterval = DefaultConsumerHeartbeatInterval
	}
	if c.TopicRefreshInterval <= 0 {
		c.TopicRefreshInterval = DefaultTopicRefreshInterval
	}
	if c.MaxRegexBytes <= 0 {
		c.MaxRegexBytes = DefaultMaxRegexBytes
	}
	if c.CompactBytes <= 0 {
		c.CompactBytes = DefaultCompactBytes
	}
	if c.MaxGroupMetadataBytes <= 0 {
		c.MaxGroupMetadataBytes = DefaultMaxGroupMetadataBytes
	}
}

// check refuses limits the offsets log could not read back.
func (c *Config) check() error {
	if c.MaxMetadataBytes > MaxMetadataBytesLimit {
		return fmt.Errorf("group: MaxMetadataBytes %d over %d", c.MaxMetadataBytes, MaxMetadataBytesLimit)
	}
	if c.MaxGroupMetadataBytes > MaxGroupMetadataBytesLimit {
		return fmt.Errorf("group: MaxGroupMetadataBytes %d over %d", c.MaxGroupMetadataBytes, MaxGroupMetadataBytesLimit)
	}
	return nil
}

func (c *Config) logOptions() logOptions {
	return logOptions{compactBytes: c.CompactBytes, repair: c.RepairLog}
}

// Coordinator runs every group of the broker.
type Coordinator struct {
	cfg  Config
	log  zerolog.Logger
	warn zerolog.Logger
	offs *offsetsLog

	mu     sync.Mutex
	queue  []func() // guarded by mu
	closed bool     // guarded by mu
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}

	// Loop goroutine only.
	groups    map[string]*group
	timers    timerHeap
	clock     *time.Timer
	retain    *timer
	reresolve *timer // consumer groups' subscription refresh; armed while one exists
	regexes   regexCache
}

// Open recovers the offsets log in cfg.Dir and starts the coordinator.
func Open(cfg Config) (*Coordinator, error) {
	cfg.setDefaults()
	if cfg.Topics == nil {
		return nil, errors.New("group: Config.Topics is required")
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With().Str("component", "group").Logger()
	offs, err := openLog(cfg.FS, cfg.Dir, cfg.logOptions(), log)
	if err != nil {
		return nil, err
	}
	c := &Coordinator{
		cfg:    cfg,
		log:    log,
		warn:   log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute}),
		offs:   offs,
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		groups: make(map[string]*group),
		clock:  time.NewTimer(time.Hour),
	}
	// Groups known from the log come back Empty, keeping their protocol
	// type and generation, or Stable with their members when the log holds
	// their last completed generation (Kafka reloads them from
	// __consumer_offsets).
	now := time.Now()
	for name, sg := range offs.groups() {
		g := newGroup(name, now)
		g.protocolType, g.generation = sg.protocolType, sg.generation
		c.groups[name] = g
		if len(sg.members) > 0 {
			c.restoreConsumerGroup(g, sg.members, now)
		} else if sc := sg.classic; sc != nil && sc.generation == sg.generation && len(sc.members) > 0 {
			c.restoreClassic(g, sc, now)
		}
	}
	c.sweepDeletedTopics() // topic_offsets.go
	c.retain = newTimer(c.expireOffsets)
	c.schedule(c.retain, now.Add(cfg.RetentionCheckInterval))
	c.wake <- struct{}{} // arm the clock for the retention timer
	go c.run()
	return c, nil
}

// Close stops the loop (pending requests are dropped: netloop has stopped by
// then) and closes the offsets log after writing what is queued.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	<-c.done
	return c.offs.close()
}

// submit runs fn on the loop. It never blocks on group work.
func (c *Coordinator) submit(fn func()) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, fn)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Coordinator) run() {
	defer close(c.done)
	var batch []func()
	for {
		select {
		case <-c.wake:
		case <-c.clock.C:
		case <-c.stop:
			c.clock.Stop()
			return
		}
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		c.mu.Unlock()
		for i, fn := range batch {
			c.safely(fn)
			batch[i] = nil
		}
		c.fireTimers()
	}
}

// safely runs fn; a panic is logged, never fatal to the broker (client input
// must not crash it, and a bug in one group must not stop every group).
func (c *Coordinator) safely(fn func()) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error().Interface("panic", v).Msg("group: coordinator panic")
		}
	}()
	fn()
}

// fireTimers runs due timers and re-arms the clock for the next one.
func (c *Coordinator) fireTimers() {
	now := time.Now()
	for len(c.timers) > 0 && !c.timers[0].at.After(now) {
		t := c.timers.pop()
		c.safely(t.fn)
	}
	if !c.clock.Stop() {
		select {
		case <-c.clock.C:
		default:
		}
	}
	if len(c.timers) > 0 {
		c.clock.Reset(time.Until(c.timers[0].at))
	}
}

// schedule (re)arms t for at; loop only.
func (c *Coordinator) schedule(t *timer, at time.Time) { c.timers.set(t, at) }

// cancel disarms t; loop only.
func (c *Coordinator) cancel(t *timer) { c.timers.remove(t) }

func nowMs() int64 { return time.Now().UnixMilli() }

// groupsFull reports whether no group may be created (MaxGroups). Loop only.
func (c *Coordinator) groupsFull() bool {
	if len(c.groups) < c.cfg.MaxGroups {
		return false
	}
	c.warn.Warn().Int("limit", c.cfg.MaxGroups).Msg("group: a new group refused: -group-max-count reached")
	return true
}
