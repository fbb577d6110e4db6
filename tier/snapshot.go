package tier

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// MetaSnapshot is what the bucket holds besides the partitions' manifests
// so a broker on an empty disk can rebuild itself: topics with their IDs,
// configs and log starts, the idempotent producer state and the committed
// group offsets. It is published under meta/ with PublishVersion after the
// manifests it describes (so it never names data that is not there).
// Producers and Offsets are opaque here: storage and group encode them.
type MetaSnapshot struct {
	// ClusterID is the broker's cluster id: disaster recovery keeps it, so
	// tools that key on it (monitoring, MirrorMaker, Connect) see the same
	// cluster. Empty in version 1 snapshots.
	ClusterID string
	Topics    []SnapshotTopic
	Producers []byte
	Offsets   []byte
	// ACLs are the access control lists, opaque (the store's encoding).
	// Empty in snapshots before version 3.
	ACLs []byte
	// Users are the SASL users' SCRAM credentials, opaque here (storage
	// encodes them). Empty in snapshots before version 4.
	Users []byte
	// Quotas are the client quotas, opaque here (the store's encoding).
	// Empty in snapshots before version 5.
	Quotas []byte
	// BrokerConfigs are the dynamic broker configs, opaque here (the
	// store's encoding). Empty in snapshots before version 6.
	BrokerConfigs []byte
}

// SnapshotTopic is one topic of a MetaSnapshot.
type SnapshotTopic struct {
	Name       string
	ID         [16]byte
	Partitions int32
	Configs    map[string]string
	LogStart   []int64 // per partition
}

// Snapshot format (part of the bucket format, big-endian; a change means a
// new version byte):
//
//	| magic "KLTS" u32 | version u8 =2 | flags u8 =0 | 0 u16 | topic count u32 |
//	| topics: name length u16 | name | ID [16] | partitions i32 | config count u32 |
//	|         configs, sorted by key: key length u16 | key | value length u32 | value |
//	|         log start count u32 (<= partitions) | log starts i64 |
//	| producers length u32 | producers | offsets length u32 | offsets |
//	| cluster id length u16 | cluster id |                 (version 2 on; absent in 1)
//	| ACLs length u32 | ACLs |                             (version 3 on)
//	| users length u32 | users |                           (version 4 on)
//	| quotas length u32 | quotas |                         (version 5 on)
//	| broker configs length u32 | broker configs |         (version 6 on)
//	| CRC-32C u32 of everything before |
//
// Version 1 snapshots (no cluster id), 2 (no ACLs), 3 (no users), 4
// (no quotas) and 5 (no broker configs) still decode.
const (
	snapshotMagic          = 0x4b4c5453 // "KLTS"
	snapshotVersion        = 6
	snapshotVersion1       = 1 // without the cluster id
	maxClusterIDBytes      = 1 << 10
	maxSnapshotTopics      = 1 << 20
	maxSnapshotPartitions  = 1 << 20 // per topic
	maxSnapshotConfigs     = 1 << 12 // per topic
	maxSnapshotConfigKey   = 1 << 10
	maxSnapshotConfigValue = 1 << 20
	// snapshotTopicMinBytes is the smallest encoded topic: the decoder
	// checks counts against the bytes left before allocating.
	snapshotTopicMinBytes = 2 + 16 + 4 + 4 + 4
	// keepSnapshotVersions is how many snapshot versions stay in the bucket.
	keepSnapshotVersions = 3
)

// EncodeSnapshot encodes s; limits are checked as DecodeSnapshot does.
func EncodeSnapshot(s *MetaSnapshot) ([]byte, error) {
	if len(s.Topics) > maxSnapshotTopics {
		return nil, fmt.Errorf("tier: snapshot of %d topics", len(s.Topics))
	}
	for _, blob := range [...][]byte{s.Producers, s.Offsets, s.ACLs, s.Users, s.Quotas, s.BrokerConfigs} {
		if int64(len(blob)) > maxVersionBytes/4 {
			return nil, errors.New("tier: snapshot producer, offset, ACL, user, quota or broker config state too large")
		}
	}
	b := binary.BigEndian.AppendUint32(nil, snapshotMagic)
	b = append(b, snapshotVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Topics)))
	for i := range s.Topics {
		t := &s.Topics[i]
		if len(t.Name) == 0 || len(t.Name) > maxTopicNameBytes || t.Partitions < 0 || t.Partitions > maxSnapshotPartitions ||
			len(t.Configs) > maxSnapshotConfigs || len(t.LogStart) > int(t.Partitions) {
			return nil, fmt.Errorf("tier: snapshot topic %q out of limits", t.Name)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(t.Name)))
		b = append(b, t.Name...)
		b = append(b, t.ID[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(t.Partitions))
		b = binary.BigEndian.AppendUint32(b, uint32(len(t.Configs)))
		keys := make([]string, 0, len(t.Configs))
		for k := range t.Configs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := t.Configs[k]
			if len(k) == 0 || len(k) > maxSnapshotConfigKey || len(v) > maxSnapshotConfigValue {
				return nil, fmt.Errorf("tier: snapshot topic %q config %q out of limits", t.Name, k)
			}
			b = binary.BigEndian.AppendUint16(b, uint16(len(k)))
			b = append(b, k...)
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(t.LogStart)))
		for _, o := range t.LogStart {
			b = binary.BigEndian.AppendUint64(b, uint64(o))
		}
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Producers)))
	b = append(b, s.Producers...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Offsets)))
	b = append(b, s.Offsets...)
	if len(s.ClusterID) > maxClusterIDBytes {
		return nil, fmt.Errorf("tier: snapshot cluster id of %d bytes", len(s.ClusterID))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.ClusterID)))
	b = append(b, s.ClusterID...)
	for _, blob := range s.trailing() {
		b = binary.BigEndian.AppendUint32(b, uint32(len(*blob)))
		b = append(b, *blob...)
	}
	if int64(len(b))+4 > maxVersionBytes {
		return nil, fmt.Errorf("tier: snapshot of %d bytes", len(b))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable)), nil
}

// DecodeSnapshot checks and decodes an encoded snapshot. Every count is
// checked against its limit and the bytes left before anything is
// allocated for it.
func DecodeSnapshot(b []byte) (*MetaSnapshot, error) {
	if len(b) < 12+4+4+4 {
		return nil, fmt.Errorf("%w: snapshot of %d bytes", ErrCorrupt, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: snapshot CRC mismatch", ErrCorrupt)
	}
	if binary.BigEndian.Uint32(body) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad snapshot magic", ErrCorrupt)
	}
	version := body[4]
	if version < snapshotVersion1 || version > snapshotVersion {
		return nil, fmt.Errorf("%w: snapshot version %d", ErrCorrupt, body[4])
	}
	d := snapDec{b: body[8:]}
	n := d.u32()
	if n > maxSnapshotTopics || int64(n)*snapshotTopicMinBytes > int64(len(d.b)) {
		return nil, fmt.Errorf("%w: snapshot topic count %d", ErrCorrupt, n)
	}
	s := &MetaSnapshot{Topics: make([]SnapshotTopic, n)}
	for i := range s.Topics {
		t := &s.Topics[i]
		t.Name = string(d.take(int(d.u16())))
		copy(t.ID[:], d.take(16))
		t.Partitions = int32(d.u32())
		nc := d.u32()
		if d.bad || len(t.Name) == 0 || len(t.Name) > maxTopicNameBytes || t.Partitions < 0 ||
			t.Partitions > maxSnapshotPartitions || nc > maxSnapshotConfigs || int64(nc)*6 > int64(len(d.b)) {
			return nil, fmt.Errorf("%w: snapshot topic %d header", ErrCorrupt, i)
		}
		if nc > 0 {
			t.Configs = make(map[string]string, nc)
		}
		prev := ""
		for range nc {
			k := string(d.take(int(d.u16())))
			vn := d.u32()
			if vn > maxSnapshotConfigValue {
				d.bad = true
			}
			v := string(d.take(int(vn)))
			if d.bad || len(k) == 0 || len(k) > maxSnapshotConfigKey || k <= prev {
				return nil, fmt.Errorf("%w: snapshot topic %q configs", ErrCorrupt, t.Name)
			}
			t.Configs[k], prev = v, k
		}
		nl := d.u32()
		if d.bad || nl > uint32(t.Partitions) || int64(nl)*8 > int64(len(d.b)) {
			return nil, fmt.Errorf("%w: snapshot topic %q log starts", ErrCorrupt, t.Name)
		}
		if nl > 0 {
			t.LogStart = make([]int64, nl)
			for j := range t.LogStart {
				t.LogStart[j] = int64(d.u64())
			}
		}
	}
	if pn := d.u32(); !d.bad && pn > 0 {
		s.Producers = slices.Clone(d.take(int(pn)))
	}
	if on := d.u32(); !d.bad && on > 0 {
		s.Offsets = slices.Clone(d.take(int(on)))
	}
	if version >= 2 {
		if n := d.u16(); n > maxClusterIDBytes {
			d.bad = true
		} else {
			s.ClusterID = string(d.take(int(n)))
		}
	}
	for i, blob := range s.trailing() {
		if int(version) < 3+i {
			break // written before this blob was added
		}
		if n := d.u32(); !d.bad && n > 0 {
			*blob = slices.Clone(d.take(int(n)))
		}
	}
	if d.bad || len(d.b) != 0 {
		return nil, fmt.Errorf("%w: snapshot body malformed", ErrCorrupt)
	}
	return s, nil
}

// trailing are the blobs that follow the cluster id, in encoding order:
// the one at index i was added in version 3+i (so older versions end
// before it). A new blob goes at the end with the next version.
func (s *MetaSnapshot) trailing() [4]*[]byte {
	return [...]*[]byte{&s.ACLs, &s.Users, &s.Quotas, &s.BrokerConfigs}
}

// snapDec reads big-endian fields; a short read sets bad and yields zeros.
type snapDec struct {
	b   []byte
	bad bool
}

func (d *snapDec) take(n int) []byte {
	if d.bad || n < 0 || n > len(d.b) {
		d.bad = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *snapDec) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *snapDec) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *snapDec) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// PublishSnapshot writes snap as the next version under SnapshotDir
// (after the newest in the bucket) and keeps the newest
// keepSnapshotVersions. It returns the version's sequence number.
func PublishSnapshot(ctx context.Context, store ObjectStore, snap *MetaSnapshot) (uint64, error) {
	seq, err := latestSeq(ctx, store, SnapshotDir)
	if err != nil {
		return 0, err
	}
	return seq + 1, publishSnapshotSeq(ctx, store, snap, seq+1)
}

func publishSnapshotSeq(ctx context.Context, store ObjectStore, snap *MetaSnapshot, seq uint64) error {
	b, err := EncodeSnapshot(snap)
	if err != nil {
		return err
	}
	return PublishVersion(ctx, store, SnapshotDir, seq, b, keepSnapshotVersions)
}

// LoadSnapshot reads the newest snapshot; false when the bucket has none.
func LoadSnapshot(ctx context.Context, store ObjectStore) (*MetaSnapshot, bool, error) {
	seq, body, err := LatestVersion(ctx, store, SnapshotDir)
	if err != nil || body == nil {
		return nil, false, err
	}
	s, err := DecodeSnapshot(body)
	if err != nil {
		return nil, false, fmt.Errorf("tier: snapshot %s: %w", versionKey(SnapshotDir, seq), err)
	}
	return s, true, nil
}

// SnapshotLoop defaults; each is overridable in SnapshotLoopConfig.
const (
	defaultSnapshotInterval   = time.Minute
	defaultSnapshotBackoff    = time.Second
	defaultSnapshotMaxBackoff = time.Minute
)

// SnapshotLoopConfig configures a SnapshotLoop.
type SnapshotLoopConfig struct {
	Store ObjectStore
	// Uploader, if set, triggers a snapshot after every upload round (or
	// retention) that published a manifest.
	Uploader *Uploader
	// Provider returns the broker's current metadata (required). It is
	// called after the manifests it may describe are published.
	Provider func() (MetaSnapshot, error)
	// Interval: a snapshot is written at least this often (committed
	// offsets change without uploads).
	Interval time.Duration
	// Backoff..MaxBackoff pace retries after a failed publish.
	Backoff    time.Duration
	MaxBackoff time.Duration
	Log        zerolog.Logger
	// Owner, if set, is checked before every publish (see Uploader).
	Owner *Owner
}

// SnapshotLoop publishes metadata snapshots: after each upload round that
// published anything, and at least every Interval.
type SnapshotLoop struct {
	cfg  SnapshotLoopConfig
	warn zerolog.Logger

	mu  sync.Mutex // serialises publishes
	seq uint64     // guarded by mu: last published; 0 = look it up
}

// NewSnapshotLoop returns a loop; Run drives it.
func NewSnapshotLoop(cfg SnapshotLoopConfig) *SnapshotLoop {
	if cfg.Interval <= 0 {
		cfg.Interval = defaultSnapshotInterval
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = defaultSnapshotBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = defaultSnapshotMaxBackoff
	}
	return &SnapshotLoop{cfg: cfg, warn: warnLogger(cfg.Log, 3)}
}

// PublishNow takes a snapshot from the provider and publishes it
// (shutdown calls it for a final one). It returns the version's seq.
func (l *SnapshotLoop) PublishNow(ctx context.Context) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	snap, err := l.cfg.Provider()
	if err != nil {
		return 0, fmt.Errorf("tier: snapshot provider: %w", err)
	}
	if err := l.cfg.Owner.Check(ctx); err != nil {
		return 0, err
	}
	if l.seq == 0 {
		if l.seq, err = latestSeq(ctx, l.cfg.Store, SnapshotDir); err != nil {
			return 0, err
		}
	}
	if err := publishSnapshotSeq(ctx, l.cfg.Store, &snap, l.seq+1); err != nil {
		if errors.Is(err, ErrExists) {
			l.seq = 0 // someone else wrote one: look again next time
		}
		return 0, err
	}
	l.seq++
	return l.seq, nil
}

// Run publishes until ctx ends. A failed publish is retried with backoff.
func (l *SnapshotLoop) Run(ctx context.Context) {
	var published <-chan struct{}
	if l.cfg.Uploader != nil {
		published = l.cfg.Uploader.Published()
	}
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	wait := l.cfg.Backoff
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-published:
		}
		for {
			_, err := l.PublishNow(ctx)
			if err == nil || ctx.Err() != nil || errors.Is(err, ErrNotOwner) { // Owner logs that at Error
				wait = l.cfg.Backoff
				break
			}
			l.warn.Warn().Err(err).Dur("retry_in", wait).Msg("tier: metadata snapshot failed; retrying")
			if !sleepJittered(ctx, wait) {
				return
			}
			wait = min(2*wait, l.cfg.MaxBackoff)
		}
	}
}
