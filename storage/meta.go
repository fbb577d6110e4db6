package storage

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/klite/klite/vfs"
)

// Metadata (see doc.go): topics, their partitions' keys, shards, log
// starts and next_min, the shard count, and the producer id high-water
// mark. metaFile is the snapshot's payload (metalog.go) and was, before
// the metadata log, the whole of meta.json, which Open still reads once
// to convert a data directory.
const (
	metaName    = "meta.json"
	metaVersion = 1
	// producerIDBlock ids are reserved per metadata record, so ids never
	// repeat across restarts (the unused rest of a block is skipped).
	producerIDBlock = 1000
)

type metaFile struct {
	Version int `json:"version"`
	// ACLs are the access control lists (acls.go), sorted.
	ACLs []ACL `json:"acls,omitempty"`
	// Quotas are the client quotas (quotas.go), sorted by entity.
	Quotas []Quota `json:"quotas,omitempty"`
	// Shards is fixed when the directory is created: partitions stay in
	// the shard whose WAL holds their data.
	Shards          int         `json:"shards"`
	NextPartKey     uint32      `json:"next_partition_key"`
	ProducerIDLimit int64       `json:"producer_id_limit"`
	Topics          []metaTopic `json:"topics"`
	// Users are the SASL users' SCRAM credentials (users.go), sorted.
	Users []ScramCredential `json:"users,omitempty"`
	// BrokerConfigs are the dynamic broker configs by resource name
	// (brokerconfigs.go).
	BrokerConfigs map[string]map[string]string `json:"broker_configs,omitempty"`
}

type metaTopic struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Configs    map[string]string `json:"configs,omitempty"`
	Partitions []metaPartition   `json:"partitions"`
}

type metaPartition struct {
	Key   uint32 `json:"key"`
	Shard int    `json:"shard"`
	// LogStart is the partition's log start offset; it only grows.
	LogStart int64 `json:"log_start,omitempty"`
	// NextMin is a lower bound of the partition's next offset, raised past
	// a segment's chunks before the segment is deleted: a partition whose
	// chunks are all gone does not restart below it (see doc.go).
	NextMin int64 `json:"next_min,omitempty"`
}

func newTopicID() (TopicID, error) {
	var id TopicID
	if _, err := io.ReadFull(rand.Reader, id[:]); err != nil {
		return id, err
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id, nil
}

func (id TopicID) String() string { return hex.EncodeToString(id[:]) }

func parseTopicID(s string) (TopicID, error) {
	var id TopicID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("storage: bad topic id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// loadMeta reads meta.json; ok is false when it does not exist.
func loadMeta(fsys vfs.FS, dir string) (m metaFile, ok bool, err error) {
	f, err := fsys.Open(filepath.Join(dir, metaName))
	if errors.Is(err, fs.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	defer f.Close()
	b, err := vfs.ReadAll(f)
	if err != nil {
		return m, false, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, false, fmt.Errorf("storage: %s: %w", metaName, err)
	}
	if m.Version != metaVersion || m.Shards <= 0 {
		return m, false, fmt.Errorf("storage: %s: unsupported version %d or shards %d", metaName, m.Version, m.Shards)
	}
	return m, true, nil
}

// saveMeta writes m as the old meta.json (tests of the conversion).
func saveMeta(fsys vfs.FS, dir string, m *metaFile) error {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	return vfs.WriteFile(fsys, filepath.Join(dir, metaName), b)
}

// Initialized reports whether dir already holds a store (a metadata
// snapshot, or the old meta.json), so callers can tell a fresh directory
// without knowing the layout.
func Initialized(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if _, suf, ok := parseMetaName(e.Name()); (ok && suf == metaSnapSuffix) || e.Name() == metaName {
			return true, nil
		}
	}
	return false, nil
}
