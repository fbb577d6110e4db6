package storage

import (
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/klite/klite/vfs"
)

// Prealloc says how new segment files are prepared (in the background,
// before the writer needs them). See doc.go for the measurements.
type Prealloc int

const (
	// PreallocZeroFill reserves the space with fallocate and then writes
	// zeros over it and fsyncs, so later writes overwrite allocated,
	// initialised blocks and fdatasync has no extent metadata to commit.
	// The first segment of a new shard is only reserved (Open does not
	// wait for zeros), and a roll takes the next segment as far as its
	// zero-fill got.
	PreallocZeroFill Prealloc = iota
	// PreallocFallocate only reserves the space (unwritten extents).
	PreallocFallocate
	// PreallocNone grows the file by appending.
	PreallocNone
)

// Defaults and limits, in one place.
const (
	DefaultSegmentBytes  = 256 << 20
	DefaultMaxGroupBytes = 4 << 20
	DefaultMaxChunkBytes = 128 << 10
	DefaultMaxQueueBytes = 64 << 20
	DefaultMaxPartitions = 100_000
	// DefaultMaxTotalPartitions caps the partitions of all topics.
	DefaultMaxTotalPartitions = 1_000_000
	DefaultProducerExpiry     = 24 * time.Hour // Kafka's producer.id.expiration.ms
	// MaxFsyncLinger caps Config.FsyncLinger: waiting longer than this for
	// company only adds latency.
	MaxFsyncLinger  = 100 * time.Millisecond
	minSegmentBytes = 64 << 10
	// groupsInFlight bounds the groups written but not yet fsynced per
	// shard; the writer waits for the syncer beyond it.
	groupsInFlight = 64
	// fsyncWarnAfter: slower fsyncs are logged at Warn, and so is a Close
	// still waiting for WAL I/O after it.
	fsyncWarnAfter = time.Second
	// maxUnsyncedBytes bounds how far the writer runs ahead of the fsynced
	// prefix of the active segment. Part of the on-disk format: recovery
	// looks for torn bytes only this far past the last whole chunk (see
	// doc.go), so it must never shrink without a format change.
	maxUnsyncedBytes = 32 << 20
	maxShards        = 1024
)

// Config configures a Store. Zero values take the defaults.
type Config struct {
	// Dir holds the metadata (meta-*.snap, meta-*.log) and one shard-NNN
	// directory per shard.
	Dir string
	// Shards is the number of WAL writers (default GOMAXPROCS). It is fixed
	// when Dir is first used; later values are ignored (logged).
	Shards int
	// SegmentBytes is the size of a WAL segment file (default 256 MiB,
	// minimum 64 KiB). A produce partition larger than a segment fails
	// with ErrTooLarge.
	SegmentBytes int64
	// FsyncLinger, when set, lets the syncer wait up to this long after the
	// first write of a group commit to gather more writes into the same
	// fdatasync. Default 0: the pipelined syncer already batches whatever
	// arrived while the previous fdatasync ran. Values up to 2ms are
	// sensible; at most MaxFsyncLinger (100ms) is accepted.
	FsyncLinger time.Duration
	// Prealloc chooses how segments are preallocated (default zero-fill).
	Prealloc Prealloc
	// MaxGroupBytes bounds the bytes of one group commit write (default
	// 4 MiB, at most SegmentBytes and 32 MiB). A single larger append is
	// written alone.
	MaxGroupBytes int
	// MaxChunkBytes closes a partition's chunk within a group commit once
	// it holds this many bytes (default 128 KiB). Bigger chunks mean fewer
	// file ranges per fetch; smaller ones less walking to find a batch
	// inside a chunk. A single append is never split.
	MaxChunkBytes int
	// MaxQueueBytes bounds the batch bytes (plus 128 per append) queued in
	// a shard and not yet written (default 64 MiB). Append never blocks:
	// once a shard's queue holds this much, appends to its partitions fail
	// at once with ErrBusy until the writer catches up.
	MaxQueueBytes int64
	// MaxPartitions bounds the partitions of one topic (default 100000).
	MaxPartitions int32
	// MaxTotalPartitions bounds the partitions of all topics together
	// (default 1000000): CreateTopic and CreatePartitions past it fail
	// with ErrPartitionLimit.
	MaxTotalPartitions int64
	// ProducerExpiry drops idempotent producer state idle this long, when a
	// segment is sealed (default 24h).
	ProducerExpiry time.Duration
	// FS does all file I/O (default OSFS).
	FS vfs.FS
	// Logger is the store's logger; a "component" field is added.
	Logger zerolog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time

	// Cold is the tiered log (nil: local only). See ColdLog.
	Cold ColdLog
	// OnSeal, when set, runs (on a store goroutine; it must not block)
	// after a segment is sealed, so the uploader can start on a full
	// segment at once instead of at its next flush interval.
	OnSeal func()
	// RetentionCheckInterval is how often retention runs (default 5 min,
	// Kafka's log.retention.check.interval.ms; negative disables).
	RetentionCheckInterval time.Duration
	// RetentionMs and RetentionBytes are the defaults for topics without
	// retention.ms / retention.bytes (default 7 days and -1; -1 means
	// unlimited, 0 means not set here: take the default).
	RetentionMs    int64
	RetentionBytes int64
	// NodeID is the broker's id: its own dynamic broker configs (stored
	// under the id in decimal) come before the cluster-wide default ones.
	NodeID int32
	// MaxWALBytes caps the bytes of WAL segment files (0: no cap).
	MaxWALBytes int64
	// HotBytes: with Cold, uploaded segments are kept locally while the
	// WAL holds at most this many bytes (default 1 GiB).
	HotBytes int64
	// CacheBytes bounds the newest WAL bytes kept in the page cache (split
	// evenly over the shards); older ones are dropped once durable
	// (pagecache.go). 0 keeps everything: the kernel decides.
	CacheBytes int64
	// CompactionInterval is how often compaction looks for partitions of
	// cleanup.policy=compact topics to clean (0: never; see compact.go;
	// with Cold the bucket's copy is cleaned, compacttier.go).
	CompactionInterval time.Duration
	// CompactionBytesPerSec bounds the bytes a compaction pass reads per
	// second (0: unbounded).
	CompactionBytesPerSec int64
	// CompactionMapKeys bounds the keys of one cleaning's offset map
	// (default 1Mi, about 50 MB); a partition with more distinct keys in
	// its dirty part is cleaned over several passes.
	CompactionMapKeys int
	// CompactionMinRollInterval is the floor of compaction's forced rolls
	// (segment.ms, max.compaction.lag.ms): a shard's active segment is
	// rolled for them only once it has been active this long (0: no
	// floor). The shard's segments are shared by all its partitions, so
	// without one a topic with segment.ms=1 would roll it every pass.
	CompactionMinRollInterval time.Duration

	// Trace, when set, is called with every step of the WAL's work
	// (trace.go), on the store's goroutines: it must not block.
	Trace func(TraceEvent)

	// unsyncedBytes is maxUnsyncedBytes; tests lower it. Recovery with a
	// value smaller than the writer had is unsafe.
	unsyncedBytes int64
	// metaLogBytes is minMetaLogBytes; tests lower it to snapshot often.
	metaLogBytes int64
	// metaSnapBytes is maxMetaSnapBytes; tests lower it.
	metaSnapBytes int64
}

func (c *Config) applyDefaults() error {
	if c.Dir == "" {
		return errors.New("storage: Config.Dir is required")
	}
	if c.Shards <= 0 {
		c.Shards = runtime.GOMAXPROCS(0)
	}
	if c.Shards > maxShards {
		return fmt.Errorf("storage: Shards %d over %d", c.Shards, maxShards)
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.SegmentBytes < minSegmentBytes || c.SegmentBytes > 1<<32 {
		return fmt.Errorf("storage: SegmentBytes %d outside [%d, 4 GiB]", c.SegmentBytes, minSegmentBytes)
	}
	if c.FsyncLinger < 0 || c.FsyncLinger > MaxFsyncLinger {
		return fmt.Errorf("storage: FsyncLinger %v outside [0, %v]", c.FsyncLinger, MaxFsyncLinger)
	}
	if c.Prealloc < PreallocZeroFill || c.Prealloc > PreallocNone {
		return fmt.Errorf("storage: unknown Prealloc %d", c.Prealloc)
	}
	if c.MaxGroupBytes <= 0 {
		c.MaxGroupBytes = DefaultMaxGroupBytes
	}
	if c.unsyncedBytes <= 0 {
		c.unsyncedBytes = maxUnsyncedBytes
	}
	if c.metaLogBytes <= 0 {
		c.metaLogBytes = minMetaLogBytes
	}
	if c.metaSnapBytes <= 0 || c.metaSnapBytes > maxMetaSnapBytes {
		c.metaSnapBytes = maxMetaSnapBytes
	}
	c.MaxGroupBytes = int(min(int64(c.MaxGroupBytes), c.SegmentBytes, c.unsyncedBytes))
	if c.MaxChunkBytes <= 0 {
		c.MaxChunkBytes = DefaultMaxChunkBytes
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if c.MaxPartitions <= 0 {
		c.MaxPartitions = DefaultMaxPartitions
	}
	if c.MaxTotalPartitions <= 0 {
		c.MaxTotalPartitions = DefaultMaxTotalPartitions
	}
	if c.ProducerExpiry <= 0 {
		c.ProducerExpiry = DefaultProducerExpiry
	}
	if c.FS == nil {
		c.FS = vfs.OSFS{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RetentionCheckInterval == 0 {
		c.RetentionCheckInterval = DefaultRetentionCheckInterval
	}
	if c.RetentionMs == 0 {
		c.RetentionMs = DefaultRetentionMs
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = -1
	}
	if c.HotBytes <= 0 {
		c.HotBytes = DefaultHotBytes
	}
	if c.CompactionMapKeys <= 0 {
		c.CompactionMapKeys = DefaultCompactionMapKeys
	}
	if c.MaxWALBytes < 0 {
		c.MaxWALBytes = 0
	}
	return nil
}

// Store is klite's log: topics, partitions and their record batches in
// sharded write-ahead logs. All methods are safe for concurrent use.
//
// Log start: every partition has a log start offset (persisted in the
// store's metadata), the first offset readable locally or from the tier.
// It only moves forward: retention (retention.ms by batch max timestamp,
// retention.bytes over the whole log, local and tiered), DeleteRecords.
// Reads, ListOffsets and Fetch below it get ErrOffsetOutOfRange; Offsets
// reports it. A read at or above the log start but below the first offset
// the WAL still holds (LocalStart) goes to Config.Cold; its bytes come back
// as a Chunk whose File is in memory (Fd() == ^uintptr(0)).
//
// Local segments: a sealed segment is deleted once every chunk in it is
// below its partition's log start, or (with Cold) below its tiered end
// (Uploaded) while the WAL holds more than Config.HotBytes. Uploaded data
// is kept locally up to HotBytes as a read cache; expired data is freed at
// the next retention pass. With MaxWALBytes set, an append that would take
// the WAL past it fails with ErrLogFull when nothing can be freed.
type Store struct {
	cfg Config
	log zerolog.Logger
	fs  vfs.FS

	// metaMu guards mstate, byKey and table writes; it is never held
	// across I/O (metacommit.go).
	metaMu sync.Mutex
	mstate *metaState
	byKey  map[uint32]*partition
	table  atomic.Pointer[topicTable] // copy on write; readers load it
	mlog   metaLog
	// brokerCfgs are the durable dynamic broker configs (brokerconfigs.go),
	// published after each change; readers load them.
	brokerCfgs atomic.Pointer[brokerConfigSet]

	// Producer ids: those below pidDurable are reserved in the metadata
	// log; a reservation runs ahead, so InitProducerID rarely waits.
	pidMu        sync.Mutex    // guards the three below; taken before metaMu
	nextPID      int64         // next id to hand out
	pidDurable   int64         // ids below it are reserved durably
	pidReserving chan struct{} // closed when the reservation in flight ends

	shards []*shard

	// walBytes is the size of the open WAL segment files (atomic); see
	// MaxWALBytes.
	walBytes atomic.Int64
	maint    maintenance // retention and segment freeing (retention.go)
	comp     compState   // log compaction (compact.go)

	closeMu sync.RWMutex // never held while blocking
	closed  bool         // guarded by closeMu

	stats    counters
	wal      walActivity   // the WAL's fdatasyncs, for segment preparation
	recovery RecoveryStats // set by Open
}

// topic is immutable once published in the table: SetTopicConfigs and
// CreatePartitions publish a new topic sharing the same partitions.
type topic struct {
	info  TopicInfo
	parts []*partition
}

type topicTable struct {
	byName map[string]*topic
	byID   map[TopicID]*topic
}

// partition is one topic partition's state.
type partition struct {
	// t is the topic as this partition was built: its name and ID are
	// stable, its configs and partition count may be outdated.
	t   *topic
	num int32
	key uint32 // stable, never reused: chunks carry it
	sh  *shard

	logAppendTime atomic.Bool // message.timestamp.type; SetTopicConfigs changes it

	// Writer goroutine only (recovery before it starts).
	next       int64 // next offset to assign
	gen        uint64
	head, tail *appendReq

	// logStart is the first readable offset (local or tiered), persisted
	// in the metadata; it only grows. tieredEnd: offsets below it are in the
	// bucket under a published manifest (Uploaded); not persisted.
	logStart  atomic.Int64
	tieredEnd atomic.Int64
	// nextMin is the metadata's next_min: no offset below it is ever assigned
	// again (segments with chunks below it may be gone). Guarded by metaMu.
	nextMin int64

	// comp is the compacted file (compact.go): offsets below its end
	// are read there. Published by compaction, read by anyone.
	comp atomic.Pointer[compacted]

	// Published by the syncer, read by anyone.
	idx     chunkIndex
	hwm     atomic.Int64
	deleted atomic.Bool
	failed  atomic.Bool // recovery found corruption: ErrStorage

	// Transactions (txn.go), published by the syncer: firstOpen is the
	// first offset of the earliest open transaction (MaxInt64: none);
	// txns is nil until the partition sees one.
	firstOpen atomic.Int64
	txns      atomic.Pointer[partTxns]

	wmu sync.Mutex // guards watchers, nextW, wclosed
	// watchers by id: a map, so cancelling one of many (long polls whose
	// connections closed) costs O(1), not a scan.
	watchers map[uint64]watcher
	nextW    uint64
	wclosed  bool
	nwatch   atomic.Int32 // len(watchers), read without wmu

	// Metrics (atomic): records and batch bytes published by the syncer
	// (its goroutine only adds), bytes returned by reads.
	recordsIn, bytesIn, bytesOut atomic.Int64
}

type watcher struct {
	after int64
	fn    func()
}

// Open opens (creating if needed) the store in cfg.Dir and recovers it.
func Open(cfg Config) (*Store, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, fs: cfg.FS, log: cfg.Logger.With().Str("component", "storage").Logger(), byKey: map[uint32]*partition{}}
	s.comp.seed1, s.comp.seed2 = maphash.MakeSeed(), maphash.MakeSeed()
	if err := vfs.MkdirAllSync(s.fs, cfg.Dir); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	mo, err := openMeta(s.fs, cfg.Dir, cfg.Shards, s.log, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("storage: metadata: %w", err)
	}
	st := mo.state
	if st.shards != cfg.Shards {
		s.log.Info().Int("configured", cfg.Shards).Int("shards", st.shards).Msg("shard count is fixed by the data directory")
	}
	s.mstate = st
	s.publishBrokerConfigs()
	s.nextPID, s.pidDurable = st.pidLimit, st.pidLimit

	s.shards = make([]*shard, st.shards)
	for i := range s.shards {
		s.shards[i] = newShard(s, i)
		s.shards[i].cache.budget = cfg.CacheBytes / int64(st.shards)
	}
	tab := &topicTable{byName: map[string]*topic{}, byID: map[TopicID]*topic{}}
	for _, mt := range st.topics {
		t, err := s.buildTopic(mt.Name, mt.ID, mt.Configs, mt.Partitions)
		if err != nil {
			_ = mo.log.Close()
			return nil, err
		}
		tab.byName[t.info.Name] = t
		tab.byID[t.info.ID] = t
	}
	s.table.Store(tab)

	if err := s.recover(); err != nil {
		_ = mo.log.Close()
		for _, sh := range s.shards {
			sh.closeSegments()
		}
		return nil, err
	}
	s.startMetaLog(mo)
	for _, sh := range s.shards {
		sh.start()
	}
	// Reserve the first block of producer ids now, so the first
	// InitProducerID does not wait for it.
	s.pidMu.Lock()
	ch, err := s.reservePIDsLocked()
	s.pidMu.Unlock()
	if err == nil {
		<-ch
	}
	if limit := cfg.MaxWALBytes; limit > 0 && limit < int64(len(s.shards)+1)*cfg.SegmentBytes {
		s.log.Warn().Int64("max_wal_bytes", limit).Int64("segment_bytes", cfg.SegmentBytes).Int("shards", len(s.shards)).
			Msg("MaxWALBytes leaves no room for a shard to roll to a new segment: appends fail with ErrLogFull once a segment fills")
	}
	s.startMaintenance()
	s.startCompaction()
	return s, nil
}

// buildTopic builds a topic and its partitions (registered in byKey;
// metaMu held or Open).
func (s *Store) buildTopic(name, id string, configs map[string]string, mps []metaPartition) (*topic, error) {
	tid, err := parseTopicID(id)
	if err != nil {
		return nil, err
	}
	t := &topic{info: TopicInfo{Name: name, ID: tid, Partitions: int32(len(mps)), Configs: maps.Clone(configs)}}
	if t.info.Configs == nil {
		t.info.Configs = map[string]string{}
	}
	t.parts = make([]*partition, 0, len(mps))
	if err := s.addPartitions(t, mps); err != nil {
		return nil, err
	}
	return t, nil
}

// addPartitions builds t's partitions numbered len(t.parts) on from mps.
func (s *Store) addPartitions(t *topic, mps []metaPartition) error {
	lat := logAppendTime(t.info.Configs)
	for _, mp := range mps {
		num := int32(len(t.parts))
		if mp.Shard < 0 || mp.Shard >= len(s.shards) {
			return fmt.Errorf("storage: topic %q partition %d in shard %d of %d", t.info.Name, num, mp.Shard, len(s.shards))
		}
		p := &partition{t: t, num: num, key: mp.Key, sh: s.shards[mp.Shard], nextMin: mp.NextMin}
		p.logAppendTime.Store(lat)
		p.logStart.Store(mp.LogStart)
		p.firstOpen.Store(math.MaxInt64)
		t.parts = append(t.parts, p)
		s.byKey[mp.Key] = p
	}
	return nil
}

func logAppendTime(configs map[string]string) bool {
	return configs["message.timestamp.type"] == "LogAppendTime"
}

// Close stops accepting appends and fails those not yet written with
// ErrClosed (queued ones at once, on this goroutine). It waits for the I/O
// already issued: the group being written and the fdatasync of every
// written group, whose appends then complete as usual. It abandons the
// preparation of a next segment, fires all watchers and closes the files
// (segments still referenced by reads close on their last Release).
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.closeMu.Unlock()

	for _, sh := range s.shards {
		sh.closeQueue()
	}
	waited := make(chan struct{})
	go func() {
		for _, sh := range s.shards {
			sh.wait()
		}
		close(waited)
	}()
	slow := time.NewTimer(fsyncWarnAfter)
	select {
	case <-waited:
	case <-slow.C:
		s.log.Warn().Dur("took", fsyncWarnAfter).Msg("close is waiting for WAL writes and fdatasyncs in progress")
		<-waited
	}
	slow.Stop()
	s.stopMaintenance()
	s.closeCompacted()
	s.stopMetaLog()
	var err error
	for _, sh := range s.shards {
		if sh.failed.Load() {
			err = ErrStorage
		}
	}
	for _, t := range s.table.Load().byName {
		for _, p := range t.parts {
			p.fireAll(true)
		}
	}
	for _, sh := range s.shards {
		sh.closeSegments()
	}
	s.log.Info().Msg("closed")
	return err
}

func (s *Store) now() time.Time { return s.cfg.Now() }

func (s *Store) lookup(name string, part int32) (*partition, error) {
	t := s.table.Load().byName[name]
	if t == nil || part < 0 || part >= int32(len(t.parts)) {
		return nil, ErrUnknownTopic
	}
	return t.parts[part], nil
}

// CreateTopic creates a topic with a new random topic id. It fails with
// ErrTopicExists, ErrTopicCollision (another topic's name equals this one
// with '.' read as '_'), ErrInvalidPartitions, ErrPartitionLimit or
// ErrMetadataFull. The topic appears to readers whole, once it is durable,
// never before.
func (s *Store) CreateTopic(name string, partitions int32, configs map[string]string) (TopicInfo, error) {
	id, err := newTopicID()
	if err != nil {
		return TopicInfo{}, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	var info TopicInfo
	err = s.commit(func() (*metaWait, error) {
		if err := s.checkCreateLocked(name, partitions); err != nil {
			return nil, err
		}
		st := s.mstate
		configs := maps.Clone(configs)
		mps := st.newPartitions(partitions)
		mt := &metaTopic{Name: name, ID: id.String(), Configs: maps.Clone(configs), Partitions: slices.Clone(mps)}
		return s.changeLocked(&metaRecord{Op: opCreateTopic, Topic: mt}, func(d *tableDraft) func() {
			t, err := s.buildTopic(name, id.String(), configs, mps)
			if err != nil {
				panic(err) // the id was made here and the shards by newPartitions
			}
			d.put(t)
			info = t.info
			return func() {
				s.log.Info().Str("topic", name).Int32("partitions", partitions).Str("topic_id", id.String()).Msg("topic created")
			}
		})
	})
	if err != nil {
		return TopicInfo{}, err
	}
	return info, nil
}

// CheckCreate answers what CreateTopic(name, partitions) would answer but
// for a disk failure, and changes nothing (ValidateOnly).
func (s *Store) CheckCreate(name string, partitions int32) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	return s.checkCreateLocked(name, partitions)
}

func (s *Store) checkCreateLocked(name string, partitions int32) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty topic name", ErrUnknownTopic)
	case partitions <= 0 || partitions > s.cfg.MaxPartitions:
		return ErrInvalidPartitions
	case s.isClosed():
		return ErrClosed
	case s.mstate.topics[name] != nil:
		return ErrTopicExists
	}
	if other, ok := s.mstate.collide[collisionKey(name)]; ok {
		return fmt.Errorf("%w: topic '%s' collides with existing topic: %s", ErrTopicCollision, name, other)
	}
	return s.checkTotal(int64(partitions))
}

// CheckGrow answers what CreatePartitions(name, count) would answer but
// for a disk failure, and changes nothing (ValidateOnly).
func (s *Store) CheckGrow(name string, count int32) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	return s.checkGrowLocked(name, count)
}

func (s *Store) checkGrowLocked(name string, count int32) error {
	if err := s.changingTopic(name); err != nil {
		return err
	}
	have := int32(len(s.mstate.topics[name].Partitions))
	if count <= have || count > s.cfg.MaxPartitions {
		return ErrInvalidPartitions
	}
	return s.checkTotal(int64(count - have))
}

// checkTotal fails when n more partitions would pass MaxTotalPartitions.
// metaMu must be held.
func (s *Store) checkTotal(n int64) error {
	if have := s.mstate.partitions; have+n > s.cfg.MaxTotalPartitions {
		return fmt.Errorf("%w: %d partitions exist and %d more would pass the broker's limit of %d", ErrPartitionLimit, have, n, s.cfg.MaxTotalPartitions)
	}
	return nil
}

// DeleteTopic removes a topic. Its bytes stay in the shared segments; its
// partition keys are never reused, so nothing of it comes back.
func (s *Store) DeleteTopic(name string) error {
	return s.commit(func() (*metaWait, error) {
		if err := s.changingTopic(name); err != nil {
			return nil, err
		}
		return s.changeLocked(&metaRecord{Op: opDeleteTopic, Name: name}, func(d *tableDraft) func() {
			t := d.cur().byName[name]
			d.remove(t)
			for _, p := range t.parts {
				delete(s.byKey, p.key)
				p.deleted.Store(true)
			}
			return func() {
				for _, p := range t.parts {
					p.fireAll(false)
					s.dropCompacted(p, nil)
					if s.cfg.Cold != nil {
						s.cfg.Cold.Forget(tierPart(p))
					}
				}
				s.maybeFree()
				s.log.Info().Str("topic", name).Msg("topic deleted")
			}
		})
	})
}

// SetTopicConfigs replaces a topic's explicitly set configs with configs
// (nil or empty clears them) and persists them before returning. Values
// are stored as given: the protocol layer validates them. Appends pick up
// message.timestamp.type from the next group commit on. It publishes a new
// TopicInfo; earlier snapshots are unchanged. It fails with
// ErrUnknownTopic, or ErrMetadataFull when the configs would make the
// metadata larger than a snapshot may be.
func (s *Store) SetTopicConfigs(name string, configs map[string]string) error {
	configs = maps.Clone(configs)
	return s.commit(func() (*metaWait, error) {
		if err := s.changingTopic(name); err != nil {
			return nil, err
		}
		return s.changeLocked(&metaRecord{Op: opSetConfigs, Name: name, Configs: configs}, func(d *tableDraft) func() {
			t := d.cur().byName[name]
			nt := &topic{info: t.info, parts: t.parts}
			nt.info.Configs = maps.Clone(configs)
			if nt.info.Configs == nil {
				nt.info.Configs = map[string]string{}
			}
			lat := logAppendTime(nt.info.Configs)
			for _, p := range nt.parts {
				p.logAppendTime.Store(lat)
			}
			d.put(nt)
			return func() { s.log.Info().Str("topic", name).Msg("topic configs set") }
		})
	})
}

// CreatePartitions grows a topic to count partitions and persists that
// before returning. New partitions get new keys (never reused) and shards
// as in CreateTopic, and start empty at offset 0. It fails with
// ErrUnknownTopic, ErrInvalidPartitions when count is not above the
// current count or is above MaxPartitions, ErrPartitionLimit or
// ErrMetadataFull. It publishes a new TopicInfo; earlier snapshots are
// unchanged.
func (s *Store) CreatePartitions(name string, count int32) (TopicInfo, error) {
	var info TopicInfo
	err := s.commit(func() (*metaWait, error) {
		if err := s.checkGrowLocked(name, count); err != nil {
			return nil, err
		}
		st := s.mstate
		have := int32(len(st.topics[name].Partitions))
		added := st.newPartitions(count - have)
		return s.changeLocked(&metaRecord{Op: opAddPartitions, Name: name, Partitions: slices.Clone(added)}, func(d *tableDraft) func() {
			t := d.cur().byName[name]
			nt := &topic{info: t.info, parts: slices.Clip(t.parts)}
			if err := s.addPartitions(nt, added); err != nil {
				panic(err) // shards come from newPartitions
			}
			nt.info.Partitions = int32(len(nt.parts))
			d.put(nt)
			info = nt.info
			return func() { s.log.Info().Str("topic", name).Int32("partitions", count).Msg("topic partitions added") }
		})
	})
	if err != nil {
		return TopicInfo{}, err
	}
	return info, nil
}

// changingTopic checks that the topic called name exists in the model
// (changes queued included) and the store is open. metaMu must be held.
func (s *Store) changingTopic(name string) error {
	if s.isClosed() {
		return ErrClosed
	}
	if s.mstate.topics[name] == nil {
		return ErrUnknownTopic
	}
	return nil
}

func (s *Store) isClosed() bool {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	return s.closed
}

// Topics lists the topics sorted by name.
func (s *Store) Topics() []TopicInfo {
	tab := s.table.Load()
	out := make([]TopicInfo, 0, len(tab.byName))
	for _, t := range tab.byName {
		out = append(out, t.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic returns the named topic's current TopicInfo, or false.
func (s *Store) Topic(name string) (TopicInfo, bool) {
	t := s.table.Load().byName[name]
	if t == nil {
		return TopicInfo{}, false
	}
	return t.info, true
}

// TopicByID returns the current TopicInfo of the topic with id, or false.
func (s *Store) TopicByID(id TopicID) (TopicInfo, bool) {
	t := s.table.Load().byID[id]
	if t == nil {
		return TopicInfo{}, false
	}
	return t.info, true
}

// InitProducerID allocates a producer id that is never handed out again,
// with epoch 0. Ids are reserved in blocks ahead of use: it waits for the
// metadata log only when a burst has used up a block before the next one
// was durable.
func (s *Store) InitProducerID() (int64, int16, error) {
	s.pidMu.Lock()
	defer s.pidMu.Unlock()
	for s.nextPID >= s.pidDurable {
		ch, err := s.reservePIDsLocked()
		if err != nil {
			return -1, -1, err
		}
		s.pidMu.Unlock()
		<-ch
		s.pidMu.Lock()
	}
	id := s.nextPID
	s.nextPID++
	if s.pidDurable-s.nextPID < producerIDBlock/2 {
		_, _ = s.reservePIDsLocked() // a failure shows at the next call
	}
	return id, 0, nil
}

// reservePIDsLocked starts reserving the next block of producer ids
// unless a reservation is in flight; the channel closes when it ends
// (check pidDurable again then). pidMu must be held.
func (s *Store) reservePIDsLocked() (chan struct{}, error) {
	if s.pidReserving != nil {
		return s.pidReserving, nil
	}
	limit := max(s.nextPID, s.pidDurable) + producerIDBlock
	s.metaMu.Lock()
	var w *metaWait
	err := ErrClosed
	if !s.isClosed() {
		w, err = s.changeLocked(&metaRecord{Op: opProducerIDs, Limit: limit}, nil)
	}
	s.metaMu.Unlock()
	if err != nil {
		s.log.Error().Err(err).Msg("persisting producer id block failed")
		return nil, err
	}
	ch := make(chan struct{})
	s.pidReserving = ch
	go func() {
		err := <-w.done
		s.pidMu.Lock()
		if err == nil {
			s.pidDurable = max(s.pidDurable, limit)
		}
		s.pidReserving = nil
		s.pidMu.Unlock()
		close(ch)
	}()
	return ch, nil
}

// Append appends the batches of one produce partition: the validated,
// concatenated v2 batches (kafka has checked magic, length, CRC, counts).
// The store copies them before done runs, so the caller may reuse the
// buffer once done has been called.
//
// done runs exactly once, on a store goroutine, and must not block: after
// the write when durable is false (acks 0/1), after the fdatasync that
// covers it when durable is true (acks=all). The high watermark only moves
// past data once it is fsynced.
//
// Append never blocks (the kafka layer calls it on a netloop event loop).
// When the append fails at once (unknown partition, store closed, batch
// larger than a segment, ErrBusy because the shard already queues
// Config.MaxQueueBytes), done runs on the caller's goroutine before Append
// returns. Appends still queued or not yet written when Close runs fail
// with ErrClosed (the queued ones on Close's goroutine); appends already
// written complete after their fsync.
func (s *Store) Append(topic string, partition int32, batches []byte, durable bool, done func(AppendResult)) {
	p, err := s.lookup(topic, partition)
	switch {
	case err != nil:
	case p.failed.Load() || p.sh.failed.Load():
		err = ErrStorage
	case int64(len(batches))+chunkHeaderBytes > s.cfg.SegmentBytes:
		err = ErrTooLarge
	case len(batches) < BatchHeaderBytes:
		err = ErrBatchTooShort
	}
	if err != nil {
		done(failResult(err))
		return
	}
	r := reqPool.Get().(*appendReq)
	r.p, r.data, r.durable, r.done = p, batches, durable, done
	if s.cfg.Trace != nil {
		r.queued = time.Now()
	}
	if err := p.sh.enqueue(r); err != nil {
		putReq(r)
		if err == ErrBusy {
			s.stats.busy.Add(1)
		}
		done(failResult(err))
	}
}

// Offsets returns the log start offset and the high watermark.
func (s *Store) Offsets(topic string, partition int32) (int64, int64, error) {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return -1, -1, err
	}
	if p.failed.Load() {
		return -1, -1, ErrStorage
	}
	// Log start first: it is never above the high watermark of its time,
	// and that only grows.
	start := p.logStart.Load()
	return start, p.hwm.Load(), nil
}

// Watch calls fn once (on a store goroutine; it must not block) as soon as
// the high watermark exceeds after, or the partition is deleted, or the
// store closes; at once, on the caller's goroutine, if that is already
// true. cancel stops it if it has not run.
func (s *Store) Watch(topic string, partition int32, after int64, fn func()) (cancel func()) {
	p, err := s.lookup(topic, partition)
	if err != nil {
		fn()
		return func() {}
	}
	p.wmu.Lock()
	// Count first, then check: the syncer stores the high watermark and
	// then reads nwatch, so one of the two sees the other.
	p.nwatch.Add(1)
	if p.hwm.Load() > after || p.deleted.Load() || p.wclosed {
		p.nwatch.Add(-1)
		p.wmu.Unlock()
		fn()
		return func() {}
	}
	id := p.nextW
	p.nextW++
	if p.watchers == nil {
		p.watchers = make(map[uint64]watcher)
	}
	p.watchers[id] = watcher{after: after, fn: fn}
	p.wmu.Unlock()
	return func() {
		p.wmu.Lock()
		defer p.wmu.Unlock()
		if _, ok := p.watchers[id]; ok {
			delete(p.watchers, id)
			p.nwatch.Add(-1)
		}
	}
}

// fire runs the watchers the current high watermark satisfies.
func (p *partition) fire() {
	if p.nwatch.Load() == 0 {
		return
	}
	var stack [16]func()
	due := stack[:0]
	hwm := p.hwm.Load()
	p.wmu.Lock()
	for id, w := range p.watchers {
		if w.after < hwm {
			due = append(due, w.fn)
			delete(p.watchers, id)
		}
	}
	p.nwatch.Store(int32(len(p.watchers)))
	p.wmu.Unlock()
	for i, fn := range due {
		fn()
		due[i] = nil
	}
}

// fireAll runs every watcher (partition deleted, or store closed).
func (p *partition) fireAll(closing bool) {
	p.wmu.Lock()
	ws := p.watchers
	p.watchers = nil
	p.nwatch.Store(0)
	if closing {
		p.wclosed = true
	}
	p.wmu.Unlock()
	for _, w := range ws {
		w.fn()
	}
}

// Stats are the store's counters, for metrics.
type Stats struct {
	Appends      int64 // append requests completed
	AppendBytes  int64 // batch bytes written
	Groups       int64 // group commit writes
	Fsyncs       int64
	FsyncTime    time.Duration
	Reads        int64
	ReadBytes    int64
	SegmentsRoll int64
	Busy         int64 // appends refused with ErrBusy (shard queue full)
	// UnsyncedWaits counts writes that waited for an fdatasync because
	// the writer was maxUnsyncedBytes ahead of the synced prefix.
	UnsyncedWaits int64
	// WALBytes is the size of the WAL segment files (see MaxWALBytes);
	// SegmentsDeleted counts segments freed by retention, DeleteRecords,
	// deleted topics and uploads; LogFull counts appends refused with
	// ErrLogFull.
	WALBytes        int64
	SegmentsDeleted int64
	LogFull         int64
	FailedShards    int
	Recovery        RecoveryStats
}

// RecoveryStats describe what Open recovered.
type RecoveryStats struct {
	Segments         int   // segment files found
	FromCheckpoint   int   // segments whose index came from a checkpoint
	Scanned          int   // segments scanned chunk by chunk
	Chunks           int   // chunks recovered
	Bytes            int64 // batch bytes recovered
	TornBytes        int64 // bytes cut off torn tails (kept aside)
	FailedPartitions int
	Took             time.Duration
}

type counters struct {
	appends, appendBytes, groups, fsyncs, fsyncNanos, reads, readBytes, rolls, busy, unsyncedWaits atomic.Int64
	segsDeleted, logFull                                                                           atomic.Int64
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() Stats {
	st := Stats{
		Appends: s.stats.appends.Load(), AppendBytes: s.stats.appendBytes.Load(), Groups: s.stats.groups.Load(),
		Fsyncs: s.stats.fsyncs.Load(), FsyncTime: time.Duration(s.stats.fsyncNanos.Load()),
		Reads: s.stats.reads.Load(), ReadBytes: s.stats.readBytes.Load(), SegmentsRoll: s.stats.rolls.Load(),
		Busy: s.stats.busy.Load(), UnsyncedWaits: s.stats.unsyncedWaits.Load(),
		WALBytes: s.walBytes.Load(), SegmentsDeleted: s.stats.segsDeleted.Load(), LogFull: s.stats.logFull.Load(),
		Recovery: s.recovery,
	}
	for _, sh := range s.shards {
		if sh.failed.Load() {
			st.FailedShards++
		}
	}
	return st
}
