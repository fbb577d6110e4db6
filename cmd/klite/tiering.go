package main

// Tiered storage wiring (-s3-bucket): the S3 store, the cold read path the
// storage layer uses, the uploader and the metadata snapshots, and disaster
// recovery of an empty -wal dir from the bucket. main.go calls these in
// order; everything here only connects tier, storage and group.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/klite/klite/group"
	"github.com/klite/klite/storage"
	"github.com/klite/klite/tier"
	"github.com/klite/klite/tier/s3store"
	"github.com/klite/klite/vfs"
)

const (
	// restoreTimeout bounds disaster recovery's bucket reads (the SDK
	// retries each request on its own within it).
	restoreTimeout = 10 * time.Minute
	// manifestLoaders is how many partition manifests recovery loads at once.
	manifestLoaders = 16
	// restoreMarker sits in -wal while a restore from the bucket runs; a
	// broker that finds it knows the directory holds a partial restore.
	restoreMarker = "restore.pending"
)

// tiering is the S3 side of the broker; nil fields when -s3-bucket is empty.
type tiering struct {
	store    *s3store.Store
	reader   *tier.Reader
	uploader *tier.Uploader
	cold     *tier.Cold
	snaps    *tier.SnapshotLoop
	src      *lateSource
	log      zerolog.Logger
	// owner is the claim on the bucket prefix (tierowner.go): checked
	// before every write, released at a clean stop.
	owner     *tier.Owner
	clusterID string // set by claim; goes into the metadata snapshots

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// lateSource is the uploader's view of the store, which is opened after
// the uploader exists (storage needs Cold, Cold needs the uploader). It is
// set before the uploader runs; until then the uploader only serves
// manifests, which do not touch it.
type lateSource struct{ tier.Source }

// newTiering builds the S3 client and the tier components.
func newTiering(cfg Config, root zerolog.Logger) (*tiering, error) {
	s3, err := s3store.New(context.Background(), s3store.Config{
		Bucket:   cfg.S3Bucket,
		Prefix:   cfg.S3Prefix,
		Endpoint: cfg.S3Endpoint, // path-style when set
		Region:   cfg.S3Region,
		// Credentials: the AWS default chain (AccessKey empty).
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	instance, err := loadInstanceID(vfs.OSFS{}, cfg.WALDir)
	if err != nil {
		return nil, err
	}
	t := &tiering{store: s3, src: &lateSource{}, log: component(root, "klite"), owner: tier.NewOwner(s3, instance, root)}
	t.reader = tier.NewReader(tier.ReaderConfig{Store: s3, CacheBytes: cfg.S3CacheBytes})
	t.uploader = tier.NewUploader(tier.UploaderConfig{
		Store:       s3,
		Source:      t.src,
		Log:         root,
		ObjectBytes: cfg.S3ObjectBytes,
		Interval:    cfg.S3FlushInterval,
		Owner:       t.owner,
	})
	t.cold = tier.NewCold(tier.ColdConfig{Uploader: t.uploader, Reader: t.reader, Log: root})
	return t, nil
}

// coldLog is t's storage.ColdLog, or nil (not a typed nil) without S3.
func (t *tiering) coldLog() storage.ColdLog {
	if t == nil {
		return nil
	}
	return t.cold
}

// kick starts an upload round now (a segment was sealed); nil without S3.
func (t *tiering) kick() {
	if t != nil {
		t.uploader.Kick()
	}
}

// freshDir reports whether dir holds no storage metadata yet. A restore
// marker left by an interrupted restore is an error: the directory holds
// part of a restore that must not be mistaken for the broker's state.
func freshDir(dir string) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, restoreMarker)); err == nil {
		return false, fmt.Errorf("%s: a restore from the bucket was interrupted; empty the -wal directory but for %s (this broker's claim on the bucket) and start again",
			filepath.Join(dir, restoreMarker), instanceIDFile)
	}
	inited, err := storage.Initialized(dir)
	return !inited && err == nil, err
}

// restorePlan is what disaster recovery loaded from the bucket.
type restorePlan struct {
	snap *tier.MetaSnapshot
	next map[tier.Partition]int64 // each partition's manifest NextOffset
}

// loadRestore reads the newest metadata snapshot and every partition's
// manifest. nil, nil: the bucket has no snapshot (a new deployment).
func (t *tiering) loadRestore(ctx context.Context) (*restorePlan, error) {
	snap, ok, err := tier.LoadSnapshot(ctx, t.store)
	if err != nil {
		return nil, fmt.Errorf("load metadata snapshot: %w", err)
	}
	if !ok {
		return nil, nil
	}
	var parts []tier.Partition
	for _, st := range snap.Topics {
		for p := range st.Partitions {
			parts = append(parts, tier.Partition{Topic: st.Name, TopicID: st.ID, Partition: p})
		}
	}
	plan := &restorePlan{snap: snap, next: make(map[tier.Partition]int64, len(parts))}
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, manifestLoaders)
	var wg sync.WaitGroup
	for _, p := range parts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			m, err := tier.LoadManifest(ctx, t.store, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = fmt.Errorf("load manifest of %s/%d: %w", p.Topic, p.Partition, err)
				}
				return
			}
			if m.Seq > 0 {
				plan.next[p] = m.NextOffset()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return plan, nil
}

// markRestore creates (on) or removes the restore marker in dir, durably:
// the marker must be on disk before the restore writes anything, and gone
// for good once the restore is complete.
func markRestore(fsys vfs.FS, dir string, on bool) error {
	name := filepath.Join(dir, restoreMarker)
	if on {
		return vfs.WriteFile(fsys, name, nil)
	}
	if err := fsys.Remove(name); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}

// restore rebuilds an empty store and the committed offsets (into the
// group coordinator's directory, before it opens) from plan, and logs what
// came back.
func restore(plan *restorePlan, store *storage.Store, groups group.Config, log zerolog.Logger, started time.Time) error {
	if err := store.Restore(plan.snap, plan.next); err != nil {
		return fmt.Errorf("restore topics: %w", err)
	}
	if len(plan.snap.Offsets) > 0 {
		if err := group.ImportOffsets(groups, plan.snap.Offsets); err != nil {
			return fmt.Errorf("restore committed offsets: %w", err)
		}
	}
	var partitions int
	var records int64
	for _, st := range plan.snap.Topics {
		partitions += int(st.Partitions)
		for p := range st.Partitions {
			next := plan.next[tier.Partition{Topic: st.Name, TopicID: st.ID, Partition: p}]
			start := int64(0)
			if int(p) < len(st.LogStart) {
				start = st.LogStart[p]
			}
			records += max(next-start, 0)
		}
	}
	log.Info().
		Int("topics", len(plan.snap.Topics)).
		Int("partitions", partitions).
		Int64("records", records).
		Int("group_offsets_bytes", len(plan.snap.Offsets)).
		Dur("took", time.Since(started)).
		Msg("restored from the bucket")
	return nil
}

// start runs the uploader and the snapshot loop on store; the snapshot
// holds store's metadata and groups' committed offsets.
func (t *tiering) start(store *storage.Store, groups *group.Coordinator, root zerolog.Logger) {
	t.src.Source = store
	t.snaps = tier.NewSnapshotLoop(tier.SnapshotLoopConfig{
		Store:    t.store,
		Uploader: t.uploader,
		Provider: func() (tier.MetaSnapshot, error) {
			snap := store.Snapshot()
			offsets, err := groups.ExportOffsets()
			if err != nil {
				return tier.MetaSnapshot{}, err
			}
			snap.Offsets = offsets
			snap.ClusterID = t.clusterID
			return snap, nil
		},
		Log:   root,
		Owner: t.owner,
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.wg.Add(2)
	go func() { defer t.wg.Done(); t.uploader.Run(ctx) }()
	go func() { defer t.wg.Done(); t.snaps.Run(ctx) }()
}

// stop ends the background loops, then uploads what is still local-only
// and publishes a last snapshot, within timeout. Call it before the group
// coordinator and the store close. A failure is logged: the data is safe
// on local disk and the next start uploads it.
func (t *tiering) stop(timeout time.Duration) {
	if t.cancel == nil {
		return
	}
	t.cancel()
	t.wg.Wait()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := t.uploader.UploadAll(ctx)
	if err == nil {
		_, err = t.snaps.PublishNow(ctx)
	}
	if errors.Is(err, tier.ErrNotOwner) {
		t.log.Error().Err(err).Msg("no final upload: another broker owns the bucket prefix; what was not uploaded stays in -wal only")
		return
	}
	if err != nil {
		t.log.Warn().Err(err).Dur("took", time.Since(start)).Msg("final upload to the bucket incomplete; the rest goes up at the next start")
		return
	}
	// Released only when the bucket holds everything: a broker on a new
	// -wal may then claim the prefix without -s3-take-over.
	if err := t.owner.Release(ctx); err != nil {
		t.log.Warn().Err(err).Msg("final upload to the bucket done; releasing the bucket prefix failed")
		return
	}
	t.log.Info().Dur("took", time.Since(start)).Msg("final upload to the bucket done; bucket prefix released")
}

// stopNow ends the background loops without a final upload (a failed
// start).
func (t *tiering) stopNow() {
	if t != nil && t.cancel != nil {
		t.cancel()
		t.wg.Wait()
	}
}

// close stops Cold's background work; after the store is closed.
func (t *tiering) close() {
	if t != nil {
		t.cold.Close()
	}
}

// closeErr is close as a closer (serve's stack).
func (t *tiering) closeErr() error {
	t.close()
	return nil
}
