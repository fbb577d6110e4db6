package tier

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// ErrNotOwner: another broker instance owns the bucket prefix (or this
// broker released it). Uploads, manifest publishes, snapshots and
// deletions stop; it is never retried.
var ErrNotOwner = errors.New("tier: bucket prefix owned by another broker")

// OwnerKey is the key of the owner record, under the store's prefix.
//
// One broker writes a bucket prefix. Manifest versions are fenced
// (If-None-Match) but data objects and the metadata snapshot are not: a
// second broker on the same prefix would replace the first's objects under
// its manifests and its snapshots. So the prefix has an owner, a random
// instance id the broker keeps in its WAL dir:
//
//   - Claim at startup: no record, a put with If-None-Match (two brokers
//     starting at once cannot both create it); a record of this instance
//     (a restart), claimed again; a record another instance released at a
//     clean stop, claimed (a new WAL dir after a clean stop, or another
//     broker of the same cluster); a record another instance holds, refused
//     unless TakeOver (disaster recovery after that broker died: an empty
//     WAL dir alone cannot tell a disaster from a second broker started by
//     mistake on the same prefix). Every claim reads the record back. A
//     claim that cannot reach the store is made by the first Check.
//   - Check before each data object put, manifest publish, snapshot and
//     deletion: a record that is no longer this instance's (another broker
//     took over) stops all of them for good, logged at Error.
//   - Release at a clean stop, after the final upload and snapshot.
//
// Record format (part of the bucket format, big-endian):
//
//	| magic "KLTB" u32 | version u8 =1 | state u8 (1 held, 2 released) | 0 u16 | instance id [16] |
//	| claimed at unix ms i64 | cluster id length u16 | cluster id | CRC-32C u32 of everything before |
const OwnerKey = "owner"

const (
	ownerMagic    = 0x4b4c5442 // "KLTB"
	ownerVersion  = 1
	ownerHeld     = 1
	ownerReleased = 2
	maxOwnerBytes = 4 << 10
)

// OwnerRecord is the decoded owner object.
type OwnerRecord struct {
	Instance  [16]byte
	ClusterID string
	Released  bool
	Claimed   time.Time
}

func (r OwnerRecord) String() string {
	state := "held"
	if r.Released {
		state = "released"
	}
	return fmt.Sprintf("instance %s of cluster %q, %s since %s", hex.EncodeToString(r.Instance[:]), r.ClusterID, state,
		r.Claimed.UTC().Format(time.RFC3339))
}

func encodeOwner(r OwnerRecord) []byte {
	b := binary.BigEndian.AppendUint32(nil, ownerMagic)
	state := byte(ownerHeld)
	if r.Released {
		state = ownerReleased
	}
	b = append(b, ownerVersion, state, 0, 0)
	b = append(b, r.Instance[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Claimed.UnixMilli()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.ClusterID)))
	b = append(b, r.ClusterID...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func decodeOwner(b []byte) (OwnerRecord, error) {
	const fixed = 4 + 4 + 16 + 8 + 2
	if len(b) < fixed+4 || crc32.Checksum(b[:len(b)-4], crcTable) != binary.BigEndian.Uint32(b[len(b)-4:]) ||
		binary.BigEndian.Uint32(b) != ownerMagic || b[4] != ownerVersion || (b[5] != ownerHeld && b[5] != ownerReleased) ||
		int(binary.BigEndian.Uint16(b[fixed-2:])) != len(b)-fixed-4 {
		return OwnerRecord{}, fmt.Errorf("%w: owner record", ErrCorrupt)
	}
	var r OwnerRecord
	r.Released = b[5] == ownerReleased
	copy(r.Instance[:], b[8:24])
	r.Claimed = time.UnixMilli(int64(binary.BigEndian.Uint64(b[24:])))
	r.ClusterID = string(b[fixed : len(b)-4])
	return r, nil
}

// ReadOwner returns the bucket prefix's owner record; ErrNotFound when it
// has none.
func ReadOwner(ctx context.Context, s ObjectStore) (OwnerRecord, error) {
	b, err := Get(ctx, s, OwnerKey, maxOwnerBytes)
	if err != nil {
		return OwnerRecord{}, err
	}
	return decodeOwner(b)
}

func putOwner(ctx context.Context, s ObjectStore, r OwnerRecord, opts PutOptions) error {
	if len(r.ClusterID) > maxClusterIDBytes {
		return fmt.Errorf("tier: cluster id of %d bytes", len(r.ClusterID))
	}
	b := encodeOwner(r)
	return s.Put(ctx, OwnerKey, newBytesReader(b), int64(len(b)), opts)
}

// ClaimOptions are the circumstances of a Claim.
type ClaimOptions struct {
	ClusterID string // recorded; a released prefix of another cluster is refused unless Fresh
	// Fresh: the broker has no local state (an empty WAL dir), so a
	// prefix another instance released may be of any cluster.
	Fresh bool
	// TakeOver claims the prefix even though another instance holds it:
	// the operator says that broker is gone (disaster recovery after a
	// crash). The old owner, if it still runs, stops at its next check.
	TakeOver bool
}

// Owner is this broker's claim on its bucket prefix. Safe for concurrent
// use; a nil *Owner checks nothing (tests, tools).
type Owner struct {
	store    ObjectStore
	instance [16]byte
	log      zerolog.Logger // rate-limited: Check runs before every publish
	info     zerolog.Logger

	mu   sync.Mutex   // serialises claims
	opts ClaimOptions // guarded by mu; set by Claim
	// claimed is set (atomic) once a claim succeeded; until then Check
	// claims first (a start while the bucket was unreachable).
	claimed atomic.Bool
	// lost is set (atomic) once the record named another instance: every
	// later Check fails without a request.
	lost atomic.Bool
	// released is set (atomic) by Release: later Checks fail quietly.
	released atomic.Bool
	// size is the length of this instance's record once written (atomic),
	// so a check is one ranged GET.
	size atomic.Int64
}

// NewOwner returns the owner handle of instance (this broker's id, kept
// across restarts) for store's prefix; Claim makes it the owner.
func NewOwner(store ObjectStore, instance [16]byte, log zerolog.Logger) *Owner {
	return &Owner{store: store, instance: instance, log: warnLogger(log, 3), info: log.With().Str("component", "tier").Logger()}
}

// Claim makes this broker the owner of the store's prefix at startup (see
// OwnerKey), or returns an error wrapping ErrNotOwner that says whose it
// is and what to do. Any other error (the bucket unreachable) leaves the
// claim to the first Check, with the same opts: a broker with local data
// may start while S3 is down, and claims before it writes.
func (o *Owner) Claim(ctx context.Context, opts ClaimOptions) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.opts = opts
	err := o.claim(ctx)
	if errors.Is(err, ErrNotOwner) {
		o.lost.Store(true)
	}
	return err
}

// claim does Claim's work. o.mu held.
func (o *Owner) claim(ctx context.Context) error {
	opts := o.opts
	mine := OwnerRecord{Instance: o.instance, ClusterID: opts.ClusterID, Claimed: time.Now()}
	for range 3 {
		cur, err := ReadOwner(ctx, o.store)
		switch {
		case errors.Is(err, ErrNotFound):
			err = putOwner(ctx, o.store, mine, PutOptions{IfNoneMatch: true})
			if errors.Is(err, ErrExists) {
				continue // another broker created it meanwhile: look at it
			}
		case err != nil:
			return fmt.Errorf("tier: read the bucket owner record: %w", err)
		case cur.Instance == o.instance:
			err = putOwner(ctx, o.store, mine, PutOptions{})
		case cur.Released && (opts.Fresh || cur.ClusterID == "" || cur.ClusterID == opts.ClusterID):
			o.info.Info().Str("previous", cur.String()).Msg("tier: claiming a bucket prefix its previous owner released")
			err = putOwner(ctx, o.store, mine, PutOptions{})
		case cur.Released:
			return fmt.Errorf("%w: the bucket prefix was released by %s, but this broker's local state is of cluster %q; "+
				"give this broker its own -s3-prefix", ErrNotOwner, cur, opts.ClusterID)
		case opts.TakeOver:
			o.info.Warn().Str("previous", cur.String()).
				Msg("tier: taking over the bucket prefix from another broker instance (-s3-take-over); that broker, if it still runs, stops uploading at its next check")
			err = putOwner(ctx, o.store, mine, PutOptions{})
		default:
			return fmt.Errorf("%w: the bucket prefix is owned by %s; this broker is instance %s. "+
				"Two brokers must not share a bucket and prefix: give this broker its own -s3-prefix. "+
				"If the owner is gone for good (disaster recovery after a crash), start this broker once with -s3-take-over",
				ErrNotOwner, cur, hex.EncodeToString(o.instance[:]))
		}
		if err != nil {
			return fmt.Errorf("tier: write the bucket owner record: %w", err)
		}
		o.size.Store(int64(len(encodeOwner(mine))))
		// Read back: of two brokers claiming at once, the later write wins
		// and the other learns it here (or at its first Check).
		if err := o.verify(ctx); err != nil {
			return err
		}
		o.claimed.Store(true)
		return nil
	}
	return fmt.Errorf("%w: the owner record keeps changing; another broker is claiming the prefix", ErrNotOwner)
}

// Check verifies that the record still names this instance and is held
// (claiming first if Claim could not reach the store). A transient store
// error is returned as is; a record of another instance stops this owner
// for good (ErrNotOwner now and on every later call), logged at Error
// (rate-limited).
func (o *Owner) Check(ctx context.Context) error {
	if o == nil {
		return nil
	}
	if o.released.Load() {
		return fmt.Errorf("%w: released at shutdown", ErrNotOwner)
	}
	if o.lost.Load() {
		return o.lostErr("")
	}
	if !o.claimed.Load() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.lost.Load() {
			return o.lostErr("")
		}
		if !o.claimed.Load() {
			err := o.claim(ctx)
			if errors.Is(err, ErrNotOwner) && !o.lost.Swap(true) {
				o.log.Error().Err(err).Msg("tier: this broker cannot claim its bucket prefix; uploads, manifests and metadata snapshots stop")
			}
			return err
		}
	}
	return o.verify(ctx)
}

// verify reads the record and compares it with this instance: one ranged
// GET of the size this instance's record has, and only when that is not
// it, a HEAD and GET of whatever is there.
func (o *Owner) verify(ctx context.Context) error {
	if n := o.size.Load(); n > 0 {
		b := make([]byte, n)
		if o.store.GetRange(ctx, OwnerKey, 0, b) == nil {
			if cur, err := decodeOwner(b); err == nil && cur.Instance == o.instance && !cur.Released {
				return nil
			}
		}
	}
	cur, err := ReadOwner(ctx, o.store)
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("tier: read the bucket owner record: %w", err)
	}
	if err == nil && cur.Instance == o.instance && !cur.Released {
		return nil
	}
	what := "deleted"
	if err == nil {
		what = "now " + cur.String()
	} else if errors.Is(err, ErrCorrupt) {
		what = "unreadable"
	}
	o.lost.Store(true)
	return o.lostErr(what)
}

func (o *Owner) lostErr(what string) error {
	o.log.Error().Str("instance", hex.EncodeToString(o.instance[:])).Str("owner", what).
		Msg("tier: this broker no longer owns its bucket prefix: another broker writes there. Uploads, manifests and " +
			"metadata snapshots stop; acknowledged data stays on the local disk. Stop one of the brokers: give each its own " +
			"-s3-prefix; restart this one with -s3-take-over only if the other is gone")
	if what == "" {
		return ErrNotOwner
	}
	return fmt.Errorf("%w: the owner record is %s", ErrNotOwner, what)
}

// Release marks the record released (a clean stop, after the final upload
// and snapshot), so that a broker on a new WAL dir may claim the prefix
// without -s3-take-over. A record no longer ours is left alone.
func (o *Owner) Release(ctx context.Context) error {
	if o == nil {
		return nil
	}
	if err := o.Check(ctx); err != nil {
		return err
	}
	o.released.Store(true) // nothing is written after a release
	o.mu.Lock()
	cluster := o.opts.ClusterID
	o.mu.Unlock()
	return putOwner(ctx, o.store, OwnerRecord{Instance: o.instance, ClusterID: cluster, Released: true, Claimed: time.Now()}, PutOptions{})
}
