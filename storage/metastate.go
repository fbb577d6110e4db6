package storage

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// metaState is the store's metadata as a model with indexes, so that one
// change costs the same however many topics exist. Both the metadata log's
// replay (at open) and the writers (before they append the record) change
// it through apply, one code path, so the model a writer validates against
// is exactly what replaying the log rebuilds.
//
// Guarded by Store.metaMu. It runs ahead of the durable state by the
// records queued and not yet fsynced: validation sees every change already
// accepted, readers see only the published table.
type metaState struct {
	shards      int
	nextPartKey uint32
	pidLimit    int64
	acls        map[ACL]struct{}                   // ACLs (acls.go), made by the first change; their snapshot size is in bytes
	quotas      map[QuotaEntity]map[string]float64 // client quotas (quotas.go), made by the first change; their snapshot size is in bytes
	topics      map[string]*metaTopic
	keys        map[uint32]keyRef
	// collide maps a topic name with '.' read as '_' to the topic that
	// holds it (Kafka refuses names that collide so).
	collide    map[string]string
	partitions int64 // total partitions of all topics
	// bytes bounds from above the size of the topics (and credentials)
	// in a snapshot (topicBytes of each), so that changes past the
	// snapshot limit are refused before they are made.
	bytes int64
	// creds are the SASL users' SCRAM credentials (users.go).
	creds map[credKey]*ScramCredential
	// brokerCfgs are the dynamic broker configs by resource name
	// (brokerconfigs.go), made by the first change.
	brokerCfgs map[string]map[string]string
}

// keyRef locates a partition key in its topic.
type keyRef struct {
	t *metaTopic
	i int
}

func (r keyRef) part() *metaPartition { return &r.t.Partitions[r.i] }

// Metadata log record operations. Part of the on-disk format.
const (
	opCreateTopic   = 1 // Topic (with its partitions)
	opDeleteTopic   = 2 // Name
	opAddPartitions = 3 // Name, Partitions (appended)
	opSetConfigs    = 4 // Name, Configs (replace; empty clears)
	opLogStarts     = 5 // Moves: [key, log start], each only grows
	opNextMins      = 6 // Moves: [key, next_min], each only grows
	opProducerIDs   = 7 // Limit: ids below it may have been handed out
	// SASL users (users.go).
	opSetCredential    = 8 // Credential (add or replace its user's for its mechanism)
	opDeleteCredential = 9 // Name (the user), Mechanism
)

// metaRecord is one metadata change (JSON inside a CRC-framed log frame,
// see metalog.go). Part of the on-disk format.
type metaRecord struct {
	Op         int               `json:"op"`
	Topic      *metaTopic        `json:"topic,omitempty"`
	ACLs       []ACL             `json:"acls,omitempty"`   // opCreateACLs, opDeleteACLs (acls.go)
	Quotas     []Quota           `json:"quotas,omitempty"` // opSetQuotas (quotas.go)
	Name       string            `json:"name,omitempty"`
	Configs    map[string]string `json:"configs,omitempty"`
	Partitions []metaPartition   `json:"partitions,omitempty"`
	Moves      [][2]int64        `json:"moves,omitempty"`
	Limit      int64             `json:"limit,omitempty"`
	Credential *ScramCredential  `json:"credential,omitempty"`
	Mechanism  int8              `json:"mechanism,omitempty"`
}

// collisionKey is name with every '.' read as '_': Kafka refuses a topic
// whose key equals another topic's (their metric names would clash).
func collisionKey(name string) string { return strings.ReplaceAll(name, ".", "_") }

func newMetaState(shards int) *metaState {
	return &metaState{shards: shards, topics: map[string]*metaTopic{}, keys: map[uint32]keyRef{}, collide: map[string]string{},
		creds: map[credKey]*ScramCredential{}}
}

// stateFromFile builds the model from a snapshot (or the old meta.json).
func stateFromFile(m *metaFile) (*metaState, error) {
	st := newMetaState(m.Shards)
	st.nextPartKey = m.NextPartKey
	st.pidLimit = m.ProducerIDLimit
	if err := st.apply(&metaRecord{Op: opCreateACLs, ACLs: m.ACLs}); err != nil {
		return nil, err
	}
	if err := st.apply(&metaRecord{Op: opSetQuotas, Quotas: m.Quotas}); err != nil {
		return nil, err
	}
	for i := range m.Topics {
		mt := m.Topics[i]
		mt.Partitions = slices.Clone(mt.Partitions)
		mt.Configs = maps.Clone(mt.Configs)
		if err := st.apply(&metaRecord{Op: opCreateTopic, Topic: &mt}); err != nil {
			return nil, err
		}
	}
	for i := range m.Users {
		if err := st.apply(&metaRecord{Op: opSetCredential, Credential: &m.Users[i]}); err != nil {
			return nil, err
		}
	}
	for name, cs := range m.BrokerConfigs {
		st.applyBrokerConfigs(&metaRecord{Op: opSetBrokerConfigs, Name: name, Configs: cs})
	}
	return st, nil
}

// file is the model as a snapshot: a copy, topics sorted by name.
func (st *metaState) file() *metaFile {
	m := &metaFile{Version: metaVersion, Shards: st.shards, NextPartKey: st.nextPartKey, ProducerIDLimit: st.pidLimit,
		Topics: make([]metaTopic, 0, len(st.topics))}
	m.ACLs = st.aclList()
	m.Quotas = st.quotaList()
	for _, t := range st.topics {
		c := *t
		c.Configs = maps.Clone(t.Configs)
		c.Partitions = slices.Clone(t.Partitions)
		m.Topics = append(m.Topics, c)
	}
	slices.SortFunc(m.Topics, func(a, b metaTopic) int { return cmp.Compare(a.Name, b.Name) })
	m.Users = st.credentials()
	m.BrokerConfigs = st.brokerConfigsCopy()
	return m
}

// apply makes one change. An error means the record does not fit the
// state: from a writer a bug, from the log corruption.
func (st *metaState) apply(r *metaRecord) error {
	switch r.Op {
	case opCreateACLs, opDeleteACLs:
		st.applyACLs(r)
	case opSetQuotas:
		st.applyQuotas(r)
	case opSetBrokerConfigs:
		st.applyBrokerConfigs(r)
	case opCreateTopic:
		t := r.Topic
		if t == nil || t.Name == "" {
			return fmt.Errorf("create without a topic name")
		}
		if st.topics[t.Name] != nil {
			return fmt.Errorf("create of existing topic %q", t.Name)
		}
		if _, err := parseTopicID(t.ID); err != nil {
			return err
		}
		if err := st.checkNewKeys(t.Partitions); err != nil {
			return err
		}
		if len(t.Configs) == 0 {
			t.Configs = nil
		}
		st.topics[t.Name] = t
		st.collide[collisionKey(t.Name)] = t.Name
		st.addKeys(t, 0)
		st.bytes += topicBytes(t)
	case opDeleteTopic:
		t := st.topics[r.Name]
		if t == nil {
			return fmt.Errorf("delete of missing topic %q", r.Name)
		}
		delete(st.topics, r.Name)
		if st.collide[collisionKey(r.Name)] == r.Name {
			delete(st.collide, collisionKey(r.Name))
		}
		for _, mp := range t.Partitions {
			delete(st.keys, mp.Key)
		}
		st.partitions -= int64(len(t.Partitions))
		st.bytes -= topicBytes(t)
	case opAddPartitions:
		t := st.topics[r.Name]
		if t == nil {
			return fmt.Errorf("partitions added to missing topic %q", r.Name)
		}
		if err := st.checkNewKeys(r.Partitions); err != nil {
			return err
		}
		from := len(t.Partitions)
		t.Partitions = append(t.Partitions, r.Partitions...)
		st.addKeys(t, from)
		st.bytes += int64(len(r.Partitions)) * partitionJSONBytes
	case opSetConfigs:
		t := st.topics[r.Name]
		if t == nil {
			return fmt.Errorf("configs of missing topic %q", r.Name)
		}
		st.bytes += configsBytes(r.Configs) - configsBytes(t.Configs)
		t.Configs = maps.Clone(r.Configs)
		if len(t.Configs) == 0 {
			t.Configs = nil
		}
	case opLogStarts, opNextMins:
		// Keys of deleted topics are skipped: a move may be queued just
		// before the delete.
		for _, mv := range r.Moves {
			ref, ok := st.keys[uint32(mv[0])]
			if !ok {
				continue
			}
			mp := ref.part()
			if r.Op == opLogStarts {
				mp.LogStart = max(mp.LogStart, mv[1])
			} else {
				mp.NextMin = max(mp.NextMin, mv[1])
			}
		}
	case opProducerIDs:
		st.pidLimit = max(st.pidLimit, r.Limit)
	case opSetCredential, opDeleteCredential:
		return st.applyCredential(r)
	default:
		return fmt.Errorf("unknown metadata operation %d", r.Op)
	}
	return nil
}

// growth is how much r would add to st.bytes (0 when it adds nothing).
func (st *metaState) growth(r *metaRecord) int64 {
	switch r.Op {
	case opCreateACLs:
		return st.aclGrowth(r.ACLs)
	case opSetQuotas:
		return max(0, st.quotaGrowth(r.Quotas))
	case opSetBrokerConfigs:
		return max(0, st.brokerConfigsGrowth(r))
	case opCreateTopic:
		if r.Topic != nil {
			return topicBytes(r.Topic)
		}
	case opAddPartitions:
		return int64(len(r.Partitions)) * partitionJSONBytes
	case opSetCredential:
		if r.Credential != nil {
			return credentialBytes(r.Credential)
		}
	case opSetConfigs:
		if t := st.topics[r.Name]; t != nil {
			return configsBytes(r.Configs) - configsBytes(t.Configs)
		}
	}
	return 0
}

// Upper bounds of a snapshot's JSON (metaFile), for metaState.bytes.
const (
	// topicJSONBytes: a topic's fields but its name, configs and
	// partitions.
	topicJSONBytes = 96
	// partitionJSONBytes: one metaPartition with every field at its
	// largest.
	partitionJSONBytes = 100
	// metaFileJSONBytes: the snapshot's fields but its topics.
	metaFileJSONBytes = 256
)

func topicBytes(t *metaTopic) int64 {
	return topicJSONBytes + jsonStringBytes(t.Name) + configsBytes(t.Configs) + int64(len(t.Partitions))*partitionJSONBytes
}

func configsBytes(m map[string]string) int64 {
	var n int64
	for k, v := range m {
		n += 6 + jsonStringBytes(k) + jsonStringBytes(v)
	}
	return n
}

// jsonStringBytes bounds the length of s encoded by encoding/json: it
// writes an ASCII byte as itself or, escaped, as at most 6 bytes (\u003c),
// and an invalid UTF-8 byte as the 6 bytes of \ufffd.
func jsonStringBytes(s string) int64 {
	n := int64(len(s)) + 2
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			n += 5
		}
	}
	return n
}

func (st *metaState) checkNewKeys(mps []metaPartition) error {
	for _, mp := range mps {
		if _, ok := st.keys[mp.Key]; ok {
			return fmt.Errorf("partition key %d reused", mp.Key)
		}
		if mp.Shard < 0 || mp.Shard >= st.shards {
			return fmt.Errorf("partition key %d in shard %d of %d", mp.Key, mp.Shard, st.shards)
		}
	}
	return nil
}

func (st *metaState) addKeys(t *metaTopic, from int) {
	for i := from; i < len(t.Partitions); i++ {
		k := t.Partitions[i].Key
		st.keys[k] = keyRef{t, i}
		st.nextPartKey = max(st.nextPartKey, k+1)
	}
	st.partitions += int64(len(t.Partitions) - from)
}

// newPartitions assigns n new partitions keys (never reused) and shards,
// round-robin by key so every topic's partitions spread over the shards.
// The keys are taken when the record is applied.
func (st *metaState) newPartitions(n int32) []metaPartition {
	out := make([]metaPartition, n)
	for i := range out {
		key := st.nextPartKey + uint32(i)
		out[i] = metaPartition{Key: key, Shard: int(key % uint32(st.shards))}
	}
	return out
}
