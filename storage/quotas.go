package storage

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// QuotaEntity names what a client quota applies to, as Kafka's
// ClientQuotaEntity: a user, a client id, or both, each either a name or
// the default (Kafka's null name). Names are never empty (Kafka refuses
// them), so an empty name with its Default flag unset means the entity
// has no such component. Part of the on-disk format (JSON in the metadata
// log and snapshot).
type QuotaEntity struct {
	User          string `json:"user,omitempty"`
	UserDefault   bool   `json:"user_default,omitempty"`
	ClientID      string `json:"client_id,omitempty"`
	ClientDefault bool   `json:"client_default,omitempty"`
}

// HasUser and HasClientID report whether the entity has that component.
func (e QuotaEntity) HasUser() bool     { return e.User != "" || e.UserDefault }
func (e QuotaEntity) HasClientID() bool { return e.ClientID != "" || e.ClientDefault }

// Quota is one entity's quota values by Kafka's key (producer_byte_rate,
// ...). The store does not interpret keys or values.
type Quota struct {
	Entity QuotaEntity        `json:"entity"`
	Values map[string]float64 `json:"values"`
}

// Metadata log record operation of client quotas (beside metastate.go's;
// part of the on-disk format). 21 is left for quotas too.
const opSetQuotas = 20 // Quotas: each replaces its entity's values; none removes the entity

// maxQuotaRecordBytes bounds the quotas of one metadata record.
const maxQuotaRecordBytes = 1 << 20

// quotaJSONBytes bounds a quota's JSON but its names and keys;
// quotaValueBytes one value but its key.
const (
	quotaJSONBytes  = 112
	quotaValueBytes = 32
)

func quotaBytes(q *Quota) int64 {
	n := quotaJSONBytes + jsonStringBytes(q.Entity.User) + jsonStringBytes(q.Entity.ClientID)
	for k := range q.Values {
		n += quotaValueBytes + jsonStringBytes(k)
	}
	return n
}

// Quotas returns every client quota, sorted by entity. Changes not yet
// durable are included: call it when no change is in flight (at start).
func (s *Store) Quotas() []Quota {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	return s.mstate.quotaList()
}

// SetQuotas replaces the values of each quota's entity (a quota with no
// values removes its entity) and returns once the change is durable. It
// fails with ErrMetadataFull when the snapshot would pass its limit,
// ErrClosed or ErrStorage.
func (s *Store) SetQuotas(qs []Quota) error {
	if len(qs) == 0 {
		return nil
	}
	c := make([]Quota, len(qs))
	for i, q := range qs {
		c[i] = Quota{Entity: q.Entity, Values: maps.Clone(q.Values)}
	}
	qs = c
	return s.commit(func() (*metaWait, error) {
		if s.isClosed() {
			return nil, ErrClosed
		}
		// All or nothing: the size check of the whole change comes before
		// any record is queued.
		if g := s.mstate.quotaGrowth(qs); g > 0 && s.mstate.bytes+g > s.cfg.metaSnapBytes-metaFileJSONBytes {
			return nil, fmt.Errorf("%w: the metadata would pass %d bytes", ErrMetadataFull, s.cfg.metaSnapBytes)
		}
		var last *metaWait
		for len(qs) > 0 {
			n, size := 0, int64(0)
			for n < len(qs) && (n == 0 || size+quotaBytes(&qs[n]) <= maxQuotaRecordBytes) {
				size += quotaBytes(&qs[n])
				n++
			}
			w, err := s.changeLocked(&metaRecord{Op: opSetQuotas, Quotas: qs[:n]}, nil)
			if err != nil {
				return last, err
			}
			last, qs = w, qs[n:]
		}
		return last, nil
	})
}

func (st *metaState) applyQuotas(r *metaRecord) {
	if st.quotas == nil {
		st.quotas = map[QuotaEntity]map[string]float64{}
	}
	for _, q := range r.Quotas {
		if old, had := st.quotas[q.Entity]; had {
			st.bytes -= quotaBytes(&Quota{Entity: q.Entity, Values: old})
			delete(st.quotas, q.Entity)
		}
		if len(q.Values) > 0 {
			st.quotas[q.Entity] = maps.Clone(q.Values)
			st.bytes += quotaBytes(&q)
		}
	}
}

// quotaGrowth is what setting qs would add to st.bytes (negative when
// it shrinks).
func (st *metaState) quotaGrowth(qs []Quota) int64 {
	var n int64
	seen := map[QuotaEntity]int64{}
	for i := range qs {
		e := qs[i].Entity
		if prev, ok := seen[e]; ok {
			n -= prev
		} else if old, had := st.quotas[e]; had {
			n -= quotaBytes(&Quota{Entity: e, Values: old})
		}
		var add int64
		if len(qs[i].Values) > 0 {
			add = quotaBytes(&qs[i])
		}
		seen[e] = add
		n += add
	}
	return n
}

func (st *metaState) quotaList() []Quota {
	if len(st.quotas) == 0 {
		return nil
	}
	out := make([]Quota, 0, len(st.quotas))
	for e, v := range st.quotas {
		out = append(out, Quota{Entity: e, Values: maps.Clone(v)})
	}
	slices.SortFunc(out, func(x, y Quota) int {
		a, b := x.Entity, y.Entity
		return cmp.Or(strings.Compare(a.User, b.User), compareBool(a.UserDefault, b.UserDefault),
			strings.Compare(a.ClientID, b.ClientID), compareBool(a.ClientDefault, b.ClientDefault))
	})
	return out
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// encodeQuotas is the quotas of a bucket snapshot (tier.MetaSnapshot.Quotas):
// the JSON of the sorted list, nil for none.
func encodeQuotas(qs []Quota) []byte {
	if len(qs) == 0 {
		return nil
	}
	b, err := json.Marshal(qs)
	if err != nil {
		panic(err) // strings and finite numbers (AlterClientQuotas refuses others) always encode
	}
	return b
}

func decodeQuotas(b []byte) ([]Quota, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var qs []Quota
	if err := json.Unmarshal(b, &qs); err != nil {
		return nil, fmt.Errorf("snapshot quotas: %w", err)
	}
	for _, q := range qs {
		e := q.Entity
		if (!e.HasUser() && !e.HasClientID()) || (e.User != "" && e.UserDefault) || (e.ClientID != "" && e.ClientDefault) {
			return nil, fmt.Errorf("snapshot quotas: bad entity %+v", e)
		}
	}
	return qs, nil
}
