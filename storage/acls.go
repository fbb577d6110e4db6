package storage

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ACL is one access control list entry as the metadata keeps it: the
// store keeps a set of them (equal values are one ACL) and does not
// interpret them. The numbers are Kafka's wire values (resource type,
// pattern type, operation, permission type). Part of the on-disk format
// (JSON in the metadata log and snapshot).
type ACL struct {
	ResourceType int8   `json:"rt"`
	Name         string `json:"name"`
	Pattern      int8   `json:"pattern"`
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    int8   `json:"op"`
	Permission   int8   `json:"perm"`
}

// Metadata log record operations of ACLs (beside metastate.go's; part of
// the on-disk format). 8-15 are left for other records.
const (
	opCreateACLs = 16 // ACLs added (present ones stay once)
	opDeleteACLs = 17 // ACLs removed (absent ones are skipped)
)

// maxACLRecordBytes bounds the ACLs of one metadata record.
const maxACLRecordBytes = 1 << 20

// aclJSONBytes bounds an ACL's JSON but its strings.
const aclJSONBytes = 96

func aclBytes(a *ACL) int64 {
	return aclJSONBytes + jsonStringBytes(a.Name) + jsonStringBytes(a.Principal) + jsonStringBytes(a.Host)
}

// ACLs returns every ACL accepted so far, sorted. Changes not yet durable
// are included: call it when no change is in flight (at start).
func (s *Store) ACLs() []ACL {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	return s.mstate.aclList()
}

// CreateACLs adds acls (ones already present stay once) and returns once
// the change is durable. It fails with ErrMetadataFull when the snapshot
// would pass its limit, ErrClosed or ErrStorage.
func (s *Store) CreateACLs(acls []ACL) error {
	return s.changeACLs(opCreateACLs, acls)
}

// DeleteACLs removes acls (absent ones are skipped) and returns once the
// change is durable.
func (s *Store) DeleteACLs(acls []ACL) error {
	return s.changeACLs(opDeleteACLs, acls)
}

func (s *Store) changeACLs(op int, acls []ACL) error {
	if len(acls) == 0 {
		return nil
	}
	acls = slices.Clone(acls)
	return s.commit(func() (*metaWait, error) {
		if s.isClosed() {
			return nil, ErrClosed
		}
		// All or nothing: the size check of the whole change comes before
		// any record is queued.
		if op == opCreateACLs {
			if g := s.mstate.aclGrowth(acls); g > 0 && s.mstate.bytes+g > s.cfg.metaSnapBytes-metaFileJSONBytes {
				return nil, fmt.Errorf("%w: the metadata would pass %d bytes", ErrMetadataFull, s.cfg.metaSnapBytes)
			}
		}
		var last *metaWait
		for len(acls) > 0 {
			// Records of at most maxACLRecordBytes stay far below the
			// frame limit.
			n, size := 0, int64(0)
			for n < len(acls) && (n == 0 || size+aclBytes(&acls[n]) <= maxACLRecordBytes) {
				size += aclBytes(&acls[n])
				n++
			}
			w, err := s.changeLocked(&metaRecord{Op: op, ACLs: acls[:n]}, nil)
			if err != nil {
				return last, err
			}
			last, acls = w, acls[n:]
		}
		return last, nil
	})
}

func (st *metaState) applyACLs(r *metaRecord) {
	if st.acls == nil {
		st.acls = map[ACL]struct{}{}
	}
	for _, a := range r.ACLs {
		_, had := st.acls[a]
		switch {
		case r.Op == opCreateACLs && !had:
			st.acls[a] = struct{}{}
			st.bytes += aclBytes(&a)
		case r.Op == opDeleteACLs && had:
			delete(st.acls, a)
			st.bytes -= aclBytes(&a)
		}
	}
}

// aclGrowth is what adding acls would add to st.bytes.
func (st *metaState) aclGrowth(acls []ACL) int64 {
	var n int64
	for i := range acls {
		if _, had := st.acls[acls[i]]; !had {
			n += aclBytes(&acls[i])
		}
	}
	return n
}

func (st *metaState) aclList() []ACL {
	if len(st.acls) == 0 {
		return nil
	}
	out := make([]ACL, 0, len(st.acls))
	for a := range st.acls {
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y ACL) int {
		return cmp.Or(cmp.Compare(x.ResourceType, y.ResourceType), cmp.Compare(x.Pattern, y.Pattern),
			strings.Compare(x.Name, y.Name), strings.Compare(x.Principal, y.Principal), strings.Compare(x.Host, y.Host),
			cmp.Compare(x.Operation, y.Operation), cmp.Compare(x.Permission, y.Permission))
	})
	return out
}

// encodeACLs is the ACLs of a bucket snapshot (tier.MetaSnapshot.ACLs):
// the JSON of the sorted list, nil for none.
func encodeACLs(acls []ACL) []byte {
	if len(acls) == 0 {
		return nil
	}
	b, err := json.Marshal(acls)
	if err != nil {
		panic(err) // plain strings and integers always encode
	}
	return b
}

func decodeACLs(b []byte) ([]ACL, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var acls []ACL
	if err := json.Unmarshal(b, &acls); err != nil {
		return nil, fmt.Errorf("snapshot ACLs: %w", err)
	}
	return acls, nil
}
