package storage

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
)

// Dynamic broker configs: what AlterConfigs and IncrementalAlterConfigs
// set on a BROKER resource, kept like topic configs (in the metadata log,
// fsynced before the change is acknowledged, in the snapshot and in the
// bucket's snapshot). They are stored per resource name: "" for the
// cluster-wide default, a broker id in decimal for one broker. The store
// does not interpret names or values, except that retention reads
// log.retention.ms, log.retention.bytes and log.cleanup.policy from them
// for topics that do not set their own (brokerDefault).

// Metadata log record operation of dynamic broker configs (beside
// metastate.go's; part of the on-disk format).
const opSetBrokerConfigs = 22 // Name (the resource), Configs (replace; empty clears)

// brokerConfigSet is the durable dynamic broker configs by resource name,
// published after each change is durable. Never changed once published.
type brokerConfigSet map[string]map[string]string

// BrokerConfigs returns the durable dynamic configs of broker resource
// name ("" the cluster-wide default); nil when none. The map must not be
// changed.
func (s *Store) BrokerConfigs(name string) map[string]string {
	if set := s.brokerCfgs.Load(); set != nil {
		return (*set)[name]
	}
	return nil
}

// SetBrokerConfigs replaces the dynamic configs of broker resource name
// (an empty map removes them) and returns once the change is durable and
// visible to BrokerConfigs and retention. It fails with ErrMetadataFull
// when the snapshot would pass its limit, ErrClosed or ErrStorage.
func (s *Store) SetBrokerConfigs(name string, configs map[string]string) error {
	configs = maps.Clone(configs)
	return s.commit(func() (*metaWait, error) {
		if s.isClosed() {
			return nil, ErrClosed
		}
		return s.changeLocked(&metaRecord{Op: opSetBrokerConfigs, Name: name, Configs: configs}, func(*tableDraft) func() {
			s.publishBrokerConfig(name, configs)
			return nil
		})
	})
}

// publishBrokerConfigs stores a copy of the model's broker configs for
// readers (at open, when nothing is queued).
func (s *Store) publishBrokerConfigs() {
	set := brokerConfigSet(s.mstate.brokerConfigsCopy())
	s.brokerCfgs.Store(&set)
}

// publishBrokerConfig publishes one durable change (configs is not changed
// after). The model may run ahead of it, so the change is applied to the
// published set, not copied from the model. metaMu must be held.
func (s *Store) publishBrokerConfig(name string, configs map[string]string) {
	var set brokerConfigSet
	if old := s.brokerCfgs.Load(); old != nil {
		set = maps.Clone(*old)
	}
	if set == nil {
		set = brokerConfigSet{}
	}
	if len(configs) == 0 {
		delete(set, name)
	} else {
		set[name] = configs
	}
	s.brokerCfgs.Store(&set)
}

// brokerDefault is dynamic broker config name in force: this broker's,
// then the cluster default; ok false when neither sets it.
func (s *Store) brokerDefault(name string) (v string, ok bool) {
	for _, res := range [...]string{strconv.Itoa(int(s.cfg.NodeID)), ""} {
		if v, ok := s.BrokerConfigs(res)[name]; ok {
			return v, true
		}
	}
	return "", false
}

// retentionDefault is a topic's default of a retention config when it
// does not set it: dynamic broker config broker (log.retention.ms,
// log.retention.bytes), else def (the static setting).
func (s *Store) retentionDefault(broker string, def int64) int64 {
	if v, ok := s.brokerDefault(broker); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return def
}

func (st *metaState) applyBrokerConfigs(r *metaRecord) {
	if old, ok := st.brokerCfgs[r.Name]; ok {
		st.bytes -= brokerConfigsBytes(r.Name, old)
		delete(st.brokerCfgs, r.Name)
	}
	if len(r.Configs) == 0 {
		return
	}
	if st.brokerCfgs == nil {
		st.brokerCfgs = map[string]map[string]string{}
	}
	st.brokerCfgs[r.Name] = maps.Clone(r.Configs)
	st.bytes += brokerConfigsBytes(r.Name, r.Configs)
}

// brokerConfigsBytes bounds one resource's configs in a snapshot.
func brokerConfigsBytes(name string, configs map[string]string) int64 {
	return 4 + jsonStringBytes(name) + configsBytes(configs)
}

func (st *metaState) brokerConfigsGrowth(r *metaRecord) int64 {
	var n int64
	if len(r.Configs) > 0 {
		n = brokerConfigsBytes(r.Name, r.Configs)
	}
	if old, ok := st.brokerCfgs[r.Name]; ok {
		n -= brokerConfigsBytes(r.Name, old)
	}
	return n
}

func (st *metaState) brokerConfigsCopy() map[string]map[string]string {
	if len(st.brokerCfgs) == 0 {
		return nil
	}
	out := make(map[string]map[string]string, len(st.brokerCfgs))
	for k, v := range st.brokerCfgs {
		out[k] = maps.Clone(v)
	}
	return out
}

// encodeBrokerConfigs is the broker configs of a bucket snapshot
// (tier.MetaSnapshot.BrokerConfigs): JSON by resource name, nil for none.
func encodeBrokerConfigs(m map[string]map[string]string) []byte {
	if len(m) == 0 {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // maps of strings always encode
	}
	return b
}

func decodeBrokerConfigs(b []byte) (map[string]map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("snapshot broker configs: %w", err)
	}
	return m, nil
}
