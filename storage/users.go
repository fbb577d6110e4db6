package storage

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// SASL users: the SCRAM credentials the protocol layer manages with
// AlterUserScramCredentials, kept in the metadata (snapshot and log) so
// they are durable and fsynced before the change is acknowledged, and in
// the bucket's metadata snapshot (tier.MetaSnapshot.Users) so disaster
// recovery brings them back. storage stores them as given; the protocol
// layer derives and checks them. Never a password: a salt, an iteration
// count, and the stored and server keys of RFC 5802.

// ErrUnknownCredential: a deletion of a credential that does not exist.
var ErrUnknownCredential = errors.New("storage: unknown SCRAM credential")

// ScramCredential is one user's credential for one mechanism (1
// SCRAM-SHA-256, 2 SCRAM-SHA-512, the Kafka protocol's numbers). Part of
// the on-disk format (JSON; byte slices in base64).
type ScramCredential struct {
	User       string `json:"user"`
	Mechanism  int8   `json:"mechanism"`
	Iterations int32  `json:"iterations"`
	Salt       []byte `json:"salt"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

type credKey struct {
	user string
	mech int8
}

// credentialBytes bounds a credential's JSON in a snapshot.
func credentialBytes(c *ScramCredential) int64 {
	return 96 + jsonStringBytes(c.User) + 2*int64(len(c.Salt)+len(c.StoredKey)+len(c.ServerKey))
}

// ScramCredentials returns every stored credential, sorted by user and
// mechanism.
func (s *Store) ScramCredentials() []ScramCredential {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	return s.mstate.credentials()
}

// SetScramCredential adds or replaces c (its user and mechanism) and
// returns once it is durable. ErrMetadataFull when the metadata would
// pass its size limit.
func (s *Store) SetScramCredential(c ScramCredential) error {
	if c.User == "" || c.Mechanism <= 0 {
		return fmt.Errorf("%w: SCRAM credential without user or mechanism", ErrStorage)
	}
	return s.commit(func() (*metaWait, error) {
		if s.isClosed() {
			return nil, ErrClosed
		}
		return s.changeLocked(&metaRecord{Op: opSetCredential, Credential: &c}, nil)
	})
}

// DeleteScramCredential removes user's credential for mechanism and
// returns once that is durable; ErrUnknownCredential when there is none.
func (s *Store) DeleteScramCredential(user string, mechanism int8) error {
	return s.commit(func() (*metaWait, error) {
		if s.isClosed() {
			return nil, ErrClosed
		}
		if _, ok := s.mstate.creds[credKey{user, mechanism}]; !ok {
			return nil, ErrUnknownCredential
		}
		return s.changeLocked(&metaRecord{Op: opDeleteCredential, Name: user, Mechanism: mechanism}, nil)
	})
}

func (st *metaState) credentials() []ScramCredential {
	out := make([]ScramCredential, 0, len(st.creds))
	for _, c := range st.creds {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b ScramCredential) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Mechanism, b.Mechanism))
	})
	return out
}

// applyCredential is apply for the credential operations.
func (st *metaState) applyCredential(r *metaRecord) error {
	switch r.Op {
	case opSetCredential:
		c := r.Credential
		if c == nil || c.User == "" || c.Mechanism <= 0 {
			return fmt.Errorf("credential record without user or mechanism")
		}
		k := credKey{c.User, c.Mechanism}
		if old := st.creds[k]; old != nil {
			st.bytes -= credentialBytes(old)
		}
		cc := *c
		st.creds[k] = &cc
		st.bytes += credentialBytes(&cc)
	case opDeleteCredential:
		k := credKey{r.Name, r.Mechanism}
		old := st.creds[k]
		if old == nil {
			return fmt.Errorf("delete of missing credential %q/%d", r.Name, r.Mechanism)
		}
		delete(st.creds, k)
		st.bytes -= credentialBytes(old)
	}
	return nil
}

// encodeCredentials is the bucket form of the credentials
// (tier.MetaSnapshot.Users): the JSON array of ScramCredential.
func encodeCredentials(cs []ScramCredential) []byte {
	if len(cs) == 0 {
		return nil
	}
	b, _ := json.Marshal(cs) // plain data: cannot fail
	return b
}

func decodeCredentials(b []byte) ([]ScramCredential, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var cs []ScramCredential
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("storage: snapshot users: %w", err)
	}
	for _, c := range cs {
		if c.User == "" || c.Mechanism <= 0 {
			return nil, errors.New("storage: snapshot users: credential without user or mechanism")
		}
	}
	return cs, nil
}
