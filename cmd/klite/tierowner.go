package main

// Ownership of the bucket prefix (tier.OwnerKey) and the cluster id that
// disaster recovery keeps: this broker's instance id lives in the -wal dir,
// so a restart on the same dir keeps the prefix; a broker on another dir
// may claim it only after a clean stop released it, or with -s3-take-over.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"

	"github.com/klite/klite/tier"
	"github.com/klite/klite/vfs"
)

// instanceIDFile keeps this broker's instance id (32 hex digits) in -wal.
const instanceIDFile = "instance.id"

// loadInstanceID reads the instance id kept in dir, or makes and keeps a
// new one, durably: losing it after the bucket recorded it would lock the
// broker out of its own prefix.
func loadInstanceID(fsys vfs.FS, dir string) ([16]byte, error) {
	var id [16]byte
	b, err := vfs.ReadFile(fsys, filepath.Join(dir, instanceIDFile))
	if err == nil {
		raw, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(raw) != len(id) {
			return id, fmt.Errorf("%s: not an instance id (32 hex digits)", filepath.Join(dir, instanceIDFile))
		}
		copy(id[:], raw)
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return id, fmt.Errorf("read instance id: %w", err)
	}
	if _, err := rand.Read(id[:]); err != nil {
		return id, err
	}
	if err := vfs.WriteFile(fsys, filepath.Join(dir, instanceIDFile), []byte(hex.EncodeToString(id[:])+"\n")); err != nil {
		return id, fmt.Errorf("write instance id: %w", err)
	}
	return id, nil
}

// claim makes this broker the owner of its bucket prefix before it writes
// anything there or restores from it (fresh: -wal holds no store). It
// keeps clusterID for the metadata snapshots. A broker with local data
// starts while the bucket is unreachable (the tier claims before its first
// write); another broker's prefix always stops the start.
func (t *tiering) claim(ctx context.Context, cfg Config, clusterID string, fresh bool) error {
	t.clusterID = clusterID
	err := t.owner.Claim(ctx, tier.ClaimOptions{ClusterID: clusterID, Fresh: fresh, TakeOver: cfg.S3TakeOver})
	if err != nil && !fresh && !errors.Is(err, tier.ErrNotOwner) {
		t.log.Warn().Err(err).Msg("the bucket owner record could not be checked; uploads wait until this broker has claimed the bucket prefix")
		return nil
	}
	if err != nil {
		return fmt.Errorf("s3://%s/%s: %w", cfg.S3Bucket, cfg.S3Prefix, err)
	}
	return nil
}

// restoredClusterID returns the cluster id a restore from plan keeps: the
// snapshot's, written to -wal's cluster.id, unless -cluster-id says
// otherwise (then the flag wins, with a warning) or the snapshot predates
// it (then id, the one just generated, stays).
func restoredClusterID(cfg Config, plan *restorePlan, id string, log zerolog.Logger) (string, error) {
	snapID := plan.snap.ClusterID
	switch {
	case snapID == "" || snapID == id:
		return id, nil
	case cfg.ClusterID != "":
		log.Warn().Str("cluster_id", cfg.ClusterID).Str("restored_cluster_id", snapID).
			Msg("-cluster-id differs from the cluster id restored from the bucket; using -cluster-id")
		return id, nil
	}
	if err := vfs.WriteFile(vfs.OSFS{}, filepath.Join(cfg.WALDir, clusterIDFile), []byte(snapID+"\n")); err != nil {
		return "", fmt.Errorf("write restored cluster id: %w", err)
	}
	return snapID, nil
}
