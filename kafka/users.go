package kafka

// SASL users: the SCRAM credentials (RFC 5802 section 3) the broker keeps
// instead of passwords, for SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 7677). PLAIN
// checks a password by deriving the same credential from it, so one store
// serves all three mechanisms and no password is kept in memory.

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sort"
	"sync"

	"github.com/klite/klite/storage"
)

// SASL mechanism names, as clients send them in SaslHandshake.
const (
	MechPlain      = "PLAIN"
	MechScram256   = "SCRAM-SHA-256"
	MechScram512   = "SCRAM-SHA-512"
	scramSaltBytes = 32
	// MinScramIterations and MaxScramIterations are Kafka's bounds for a
	// SCRAM credential's iteration count (AlterUserScramCredentials refuses
	// others); DefaultScramIterations is what users read from a file get.
	MinScramIterations     = 4096
	MaxScramIterations     = 16384
	DefaultScramIterations = 4096
)

// ScramMechanism is a SCRAM mechanism by its number in the Kafka protocol
// (AlterUserScramCredentials, DescribeUserScramCredentials).
type ScramMechanism int8

const (
	ScramSHA256 ScramMechanism = 1
	ScramSHA512 ScramMechanism = 2
)

// scramMechanisms are the mechanisms in protocol order.
var scramMechanisms = [...]ScramMechanism{ScramSHA256, ScramSHA512}

// Name is the SASL mechanism name; "" for an unknown number.
func (m ScramMechanism) Name() string {
	switch m {
	case ScramSHA256:
		return MechScram256
	case ScramSHA512:
		return MechScram512
	}
	return ""
}

func (m ScramMechanism) hash() func() hash.Hash {
	if m == ScramSHA512 {
		return sha512.New
	}
	return sha256.New
}

// ScramCredential is what the broker keeps of one user's password for one
// mechanism: enough to verify a client's proof and prove itself back, never
// enough to log in as the user.
type ScramCredential struct {
	Mechanism  ScramMechanism
	Iterations int32
	Salt       []byte
	StoredKey  []byte // H(HMAC(SaltedPassword, "Client Key"))
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// NewScramCredential derives the credential of a password with a fresh
// random salt.
func NewScramCredential(m ScramMechanism, password string, iterations int32) (ScramCredential, error) {
	salt := make([]byte, scramSaltBytes)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails
	salted, err := pbkdf2.Key(m.hash(), password, salt, int(iterations), m.hash()().Size())
	if err != nil {
		return ScramCredential{}, err
	}
	return ScramCredentialFromSalted(m, salt, salted, iterations), nil
}

// ScramCredentialFromSalted derives the credential from a salted password
// (Hi(password, salt, iterations)), as AlterUserScramCredentials sends it.
func ScramCredentialFromSalted(m ScramMechanism, salt, salted []byte, iterations int32) ScramCredential {
	h := m.hash()
	ck := hmac.New(h, salted)
	ck.Write([]byte("Client Key"))
	stored := h()
	stored.Write(ck.Sum(nil))
	sk := hmac.New(h, salted)
	sk.Write([]byte("Server Key"))
	return ScramCredential{
		Mechanism:  m,
		Iterations: iterations,
		Salt:       append([]byte(nil), salt...),
		StoredKey:  stored.Sum(nil),
		ServerKey:  sk.Sum(nil),
	}
}

// Users is the set of SASL users with their SCRAM credentials. Safe for
// concurrent use.
type Users struct {
	mu    sync.RWMutex
	users map[string]*[len(scramMechanisms)]*ScramCredential // by name; index mechanism-1; guarded by mu

	// fakeKey seeds the made-up credentials of unknown users (see fake):
	// random per process until SetFakeSecret gives the broker's kept one;
	// guarded by mu.
	fakeKey [32]byte
	// shapes are the iteration counts and salt lengths of the users'
	// credentials, per mechanism (index mechanism-1), in name order: an
	// unknown user's made-up credential takes one of them. Rebuilt on
	// first use after a change (nil then); guarded by mu.
	shapes *[len(scramMechanisms)][]credShape
	// plainShapes are, per user in name order, the mechanism and shape of
	// the credential PLAIN checks against (fakePlain); rebuilt with shapes.
	plainShapes []plainShape
}

type plainShape struct {
	mech  ScramMechanism
	shape credShape
}

// credShape is what a SCRAM server-first message shows of a credential
// besides the salt's bytes.
type credShape struct {
	iterations int32
	saltLen    int
}

// FakeSecretBytes is the size of the secret SetFakeSecret takes.
const FakeSecretBytes = 32

// SetFakeSecret sets the key unknown users' made-up credentials are
// derived from. The broker keeps one (<wal>/sasl.secret), so an unknown
// name gets the same salt before and after a restart, as a real user does.
func (u *Users) SetFakeSecret(secret [FakeSecretBytes]byte) {
	u.mu.Lock()
	u.fakeKey = secret
	u.mu.Unlock()
}

// NewUsers returns an empty set.
func NewUsers() *Users {
	u := &Users{users: make(map[string]*[len(scramMechanisms)]*ScramCredential)}
	_, _ = rand.Read(u.fakeKey[:])
	return u
}

// ErrBadUsersFile is returned for a line of a users file that is not
// "user:password".
var ErrBadUsersFile = errors.New("kafka: users file: want user:password lines")

// AddPassword gives name credentials for both SCRAM mechanisms, derived
// from password (as -sasl-users-file users are added).
func (u *Users) AddPassword(name, password string, iterations int32) error {
	if name == "" {
		return ErrBadUsersFile
	}
	for _, m := range scramMechanisms {
		c, err := NewScramCredential(m, password, iterations)
		if err != nil {
			return fmt.Errorf("kafka: user %q: %w", name, err)
		}
		u.Set(name, c)
	}
	return nil
}

// Set adds or replaces name's credential for c.Mechanism.
func (u *Users) Set(name string, c ScramCredential) {
	u.mu.Lock()
	defer u.mu.Unlock()
	cs := u.users[name]
	if cs == nil {
		cs = new([len(scramMechanisms)]*ScramCredential)
		u.users[name] = cs
	}
	cs[c.Mechanism-1] = &c
	u.shapes = nil
}

// Delete removes name's credential for m; false when there was none.
func (u *Users) Delete(name string, m ScramMechanism) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	cs := u.users[name]
	if cs == nil || m < ScramSHA256 || m > ScramSHA512 || cs[m-1] == nil {
		return false
	}
	cs[m-1] = nil
	u.shapes = nil
	if cs[0] == nil && cs[1] == nil {
		delete(u.users, name)
	}
	return true
}

// Get returns name's credential for m.
func (u *Users) Get(name string, m ScramMechanism) (ScramCredential, bool) {
	if m < ScramSHA256 || m > ScramSHA512 {
		return ScramCredential{}, false
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	if cs := u.users[name]; cs != nil && cs[m-1] != nil {
		return *cs[m-1], true
	}
	return ScramCredential{}, false
}

// Names lists the users, sorted.
func (u *Users) Names() []string {
	u.mu.RLock()
	names := make([]string, 0, len(u.users))
	for n := range u.users {
		names = append(names, n)
	}
	u.mu.RUnlock()
	sort.Strings(names)
	return names
}

// credential is the credential a SCRAM exchange for name runs against. An
// unknown user gets a made-up credential, stable per name, whose proof no
// client can produce (RFC 5802 section 5.1's advice): the exchange then
// fails at the same step, with the same answer, as a wrong password, so a
// client cannot learn which users exist.
func (u *Users) credential(name string, m ScramMechanism) ScramCredential {
	if c, ok := u.Get(name, m); ok {
		return c
	}
	return u.fake(name, m)
}

// fake is name's made-up credential for m. Everything a server-first
// message shows of it follows the real users' credentials: the iteration
// count and salt length are those of one of them (picked by a keyed hash
// of the name, so unknown names spread over the real users' shapes as the
// users do), and the salt is a keyed hash of the name (stable per name,
// across restarts with a kept secret). So a client cannot tell an unknown
// name from a known one by the answer to its first message.
func (u *Users) fake(name string, m ScramMechanism) ScramCredential {
	u.mu.Lock()
	key := u.fakeKey
	shapes := u.shapesLocked()[m-1]
	u.mu.Unlock()
	derive := fakeDeriver(key, m, name)
	shape := credShape{DefaultScramIterations, scramSaltBytes}
	if len(shapes) > 0 {
		pick := binary.BigEndian.Uint64(derive("shape", 8))
		shape = shapes[pick%uint64(len(shapes))]
	}
	return fakeCredential(derive, m, shape)
}

// fakePlain is the made-up credential a PLAIN check of unknown name runs
// against: the mechanism and shape of the credential a known user's check
// uses (its strongest, see preparePlain), picked as fake picks, so the
// key derivation costs what a known user's does.
func (u *Users) fakePlain(name string) ScramCredential {
	u.mu.Lock()
	key := u.fakeKey
	u.shapesLocked()
	plain := u.plainShapes
	u.mu.Unlock()
	if len(plain) == 0 {
		return u.fake(name, ScramSHA512)
	}
	pick := binary.BigEndian.Uint64(fakeDeriver(key, ScramSHA512, name)("plain", 8))
	p := plain[pick%uint64(len(plain))]
	return fakeCredential(fakeDeriver(key, p.mech, name), p.mech, p.shape)
}

// fakeDeriver returns the keyed hash made-up credentials are derived with.
func fakeDeriver(key [FakeSecretBytes]byte, m ScramMechanism, name string) func(label string, n int) []byte {
	return func(label string, n int) []byte {
		mac := hmac.New(sha512.New, key[:])
		fmt.Fprintf(mac, "%s\x00%d\x00%s", label, m, name)
		out := mac.Sum(nil)
		for len(out) < n { // a salt longer than one digest
			mac.Write(out[len(out)-mac.Size():])
			out = mac.Sum(out)
		}
		return out[:n]
	}
}

func fakeCredential(derive func(string, int) []byte, m ScramMechanism, shape credShape) ScramCredential {
	size := m.hash()().Size()
	return ScramCredential{
		Mechanism:  m,
		Iterations: shape.iterations,
		Salt:       derive("salt", shape.saltLen),
		StoredKey:  derive("stored", size),
		ServerKey:  derive("server", size),
	}
}

// shapesLocked returns the users' credential shapes, rebuilding them after
// a change. mu held.
func (u *Users) shapesLocked() *[len(scramMechanisms)][]credShape {
	if u.shapes != nil {
		return u.shapes
	}
	names := make([]string, 0, len(u.users))
	for n := range u.users {
		names = append(names, n)
	}
	sort.Strings(names)
	shapes := new([len(scramMechanisms)][]credShape)
	var plain []plainShape // new: a fakePlain may still read the old one
	for _, n := range names {
		var strongest *ScramCredential
		for i, c := range u.users[n] {
			if c != nil {
				shapes[i] = append(shapes[i], credShape{c.Iterations, len(c.Salt)})
				strongest = c // scramMechanisms: weakest first
			}
		}
		if strongest != nil {
			plain = append(plain, plainShape{strongest.Mechanism, credShape{strongest.Iterations, len(strongest.Salt)}})
		}
	}
	u.shapes, u.plainShapes = shapes, plain
	return shapes
}

// verifyPlain reports whether password is name's, checked against the
// strongest SCRAM credential name has. An unknown user costs the same key
// derivation as a known one, so timing does not tell them apart either.
func (u *Users) verifyPlain(name, password string) bool {
	return u.preparePlain(name, []byte(password)).verify()
}

// plainCheck is a PLAIN password check made ready to run: the credential
// the password is checked against, and the password as the key derivation
// needs it. It holds a few hundred bytes whatever the client sent, so a
// check may wait in a queue without keeping the client's frame.
type plainCheck struct {
	cred  ScramCredential
	found bool   // cred is name's, not made up
	key   []byte // the password, or its hash when longer than a hash block
}

// preparePlain looks up name's credential (a made-up one for an unknown
// name) and reduces password to at most one hash block: HMAC hashes a key
// longer than its block before use (RFC 2104), so the PBKDF2 result is
// the same. The cost is one hash over the password, proportional to the
// bytes the client sent; the key derivation itself is left to verify.
func (u *Users) preparePlain(name string, password []byte) plainCheck {
	var p plainCheck
	for _, m := range []ScramMechanism{ScramSHA512, ScramSHA256} {
		if p.cred, p.found = u.Get(name, m); p.found {
			break
		}
	}
	if !p.found {
		p.cred = u.fakePlain(name)
	}
	h := p.cred.Mechanism.hash()()
	if len(password) > h.BlockSize() {
		h.Write(password)
		p.key = h.Sum(nil)
	} else {
		p.key = bytes.Clone(password)
	}
	return p
}

// verify runs the key derivation (PBKDF2: milliseconds of CPU) and
// reports whether the password is the user's.
func (p plainCheck) verify() bool {
	c := p.cred
	h := c.Mechanism.hash()
	salted, err := pbkdf2.Key(h, string(p.key), c.Salt, int(c.Iterations), h().Size())
	if err != nil {
		return false
	}
	got := ScramCredentialFromSalted(c.Mechanism, c.Salt, salted, c.Iterations)
	return hmac.Equal(got.StoredKey, c.StoredKey) && p.found
}

// Verify reports whether password derives c.
func (c ScramCredential) Verify(password string) bool {
	h := c.Mechanism.hash()
	salted, err := pbkdf2.Key(h, password, c.Salt, int(c.Iterations), h().Size())
	if err != nil {
		return false
	}
	return hmac.Equal(ScramCredentialFromSalted(c.Mechanism, c.Salt, salted, c.Iterations).StoredKey, c.StoredKey)
}

// UserStore keeps SASL users durably (storage.Store implements it): a
// change returns once it is fsynced.
type UserStore interface {
	ScramCredentials() []storage.ScramCredential
	SetScramCredential(storage.ScramCredential) error
	DeleteScramCredential(user string, mechanism int8) error
}

func (c ScramCredential) stored(user string) storage.ScramCredential {
	return storage.ScramCredential{User: user, Mechanism: int8(c.Mechanism), Iterations: c.Iterations,
		Salt: c.Salt, StoredKey: c.StoredKey, ServerKey: c.ServerKey}
}

// Load adds the credentials kept in a UserStore.
func (u *Users) Load(cs []storage.ScramCredential) {
	for _, c := range cs {
		m := ScramMechanism(c.Mechanism)
		if m.Name() == "" {
			continue
		}
		u.Set(c.User, ScramCredential{Mechanism: m, Iterations: c.Iterations, Salt: c.Salt, StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
}

// Seed makes sure name has credentials for both mechanisms derived from
// password, in u and durably in st (when st is set): a user from
// -sasl-users-file. Credentials that already match the password are kept
// (a restart writes nothing); others are replaced.
func (u *Users) Seed(st UserStore, name, password string, iterations int32) error {
	if name == "" {
		return ErrBadUsersFile
	}
	for _, m := range scramMechanisms {
		if c, ok := u.Get(name, m); ok && c.Verify(password) {
			continue
		}
		c, err := NewScramCredential(m, password, iterations)
		if err != nil {
			return fmt.Errorf("kafka: user %q: %w", name, err)
		}
		if st != nil {
			if err := st.SetScramCredential(c.stored(name)); err != nil {
				return fmt.Errorf("kafka: user %q: %w", name, err)
			}
		}
		u.Set(name, c)
	}
	return nil
}
