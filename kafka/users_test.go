package kafka

import (
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

// memUserStore is a UserStore that can be made to fail.
type memUserStore struct {
	creds map[string]storage.ScramCredential
	fail  error
}

func (m *memUserStore) ScramCredentials() []storage.ScramCredential { return nil }

func (m *memUserStore) SetScramCredential(c storage.ScramCredential) error {
	if m.fail != nil {
		return m.fail
	}
	m.creds[c.User+"/"+string(rune('0'+c.Mechanism))] = c
	return nil
}

func (m *memUserStore) DeleteScramCredential(user string, mech int8) error {
	if m.fail != nil {
		return m.fail
	}
	delete(m.creds, user+"/"+string(rune('0'+mech)))
	return nil
}

func TestAlterDescribeUserScram(t *testing.T) {
	st := &memUserStore{creds: map[string]storage.ScramCredential{}}
	hs := newHarness(t, func(c *Config) { c.UserStore = st })
	upsert := func(name string, mech int8, iters int32) kmsg.AlterUserSCRAMCredentialsRequestUpsertion {
		u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		u.Name, u.Mechanism, u.Iterations, u.Salt, u.SaltedPassword = name, mech, iters, []byte("salt"), make([]byte, 32)
		return u
	}
	alter := func(ups []kmsg.AlterUserSCRAMCredentialsRequestUpsertion, dels ...kmsg.AlterUserSCRAMCredentialsRequestDeletion) map[string]int16 {
		req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
		req.Upsertions, req.Deletions = ups, dels
		resp := roundTrip[*kmsg.AlterUserSCRAMCredentialsResponse](hs, req)
		out := map[string]int16{}
		for _, r := range resp.Results {
			out[r.User] = r.ErrorCode
		}
		return out
	}
	got := alter([]kmsg.AlterUserSCRAMCredentialsRequestUpsertion{upsert("carol", 1, 4096), upsert("carol", 2, 16384), upsert("dave", 2, 4095), upsert("", 1, 4096)})
	if got["carol"] != 0 || got["dave"] != kerr.UnacceptableCredential.Code || got[""] != kerr.UnacceptableCredential.Code {
		t.Fatalf("alter: %v", got)
	}
	if len(st.creds) != 2 {
		t.Fatalf("store holds %d credentials, want carol's 2", len(st.creds))
	}
	for key, c := range st.creds {
		if c.Iterations < MinScramIterations || len(c.StoredKey) == 0 || len(c.ServerKey) == 0 || string(c.Salt) != "salt" {
			t.Errorf("stored %s: %+v", key, c)
		}
	}

	// A failed durable write changes nothing in memory and reports the error.
	st.fail = storage.ErrStorage
	if got := alter([]kmsg.AlterUserSCRAMCredentialsRequestUpsertion{upsert("erin", 1, 4096)}); got["erin"] != kerr.KafkaStorageError.Code {
		t.Fatalf("alter with a failing store: %v", got)
	}
	if _, ok := hs.h.cfg.Users.Get("erin", ScramSHA256); ok {
		t.Fatal("erin in memory although her credential was not stored")
	}
	st.fail = nil

	describe := func(names ...string) map[string]*kmsg.DescribeUserSCRAMCredentialsResponseResult {
		req := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
		for _, n := range names {
			u := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
			u.Name = n
			req.Users = append(req.Users, u)
		}
		resp := roundTrip[*kmsg.DescribeUserSCRAMCredentialsResponse](hs, req)
		out := map[string]*kmsg.DescribeUserSCRAMCredentialsResponseResult{}
		for i := range resp.Results {
			out[resp.Results[i].User] = &resp.Results[i]
		}
		return out
	}
	all := describe()
	if c := all["carol"]; len(all) != 1 || c == nil || len(c.CredentialInfos) != 2 || c.CredentialInfos[1].Iterations != 16384 {
		t.Fatalf("describe all: %+v", all)
	}
	some := describe("carol", "nobody", "nobody")
	if some["nobody"].ErrorCode != kerr.DuplicateResource.Code || some["carol"].ErrorCode != 0 {
		t.Fatalf("describe twice: %+v", some)
	}
	if r := describe("nobody")["nobody"]; r.ErrorCode != kerr.ResourceNotFound.Code {
		t.Fatalf("describe nobody: %v", kerr.ErrorForCode(r.ErrorCode))
	}

	// Delete one mechanism; the user stays with the other. Deleting it
	// twice in one request is DUPLICATE_RESOURCE and does nothing.
	del := func(name string, mech int8) kmsg.AlterUserSCRAMCredentialsRequestDeletion {
		d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
		d.Name, d.Mechanism = name, mech
		return d
	}
	if got := alter(nil, del("carol", 1), del("carol", 1)); got["carol"] != kerr.DuplicateResource.Code {
		t.Fatalf("double delete: %v", got)
	}
	if got := alter(nil, del("carol", 1)); got["carol"] != 0 {
		t.Fatalf("delete: %v", got)
	}
	if got := alter(nil, del("carol", 1)); got["carol"] != kerr.ResourceNotFound.Code {
		t.Fatalf("delete again: %v", got)
	}
	if c := describe("carol")["carol"]; len(c.CredentialInfos) != 1 || c.CredentialInfos[0].Mechanism != 2 {
		t.Fatalf("after deleting SHA-256: %+v", c)
	}
	if len(st.creds) != 1 {
		t.Fatalf("store holds %d credentials, want 1", len(st.creds))
	}
}

// TestVerifyPlainLongPasswords: PLAIN checks reduce a password longer than
// a hash block to its hash before the key derivation (so a queued check
// holds little); the answer must be the one the whole password gives,
// for users with SHA-512 credentials and for users with SHA-256 only.
func TestVerifyPlainLongPasswords(t *testing.T) {
	u := NewUsers()
	for _, n := range []int{1, 63, 64, 65, 127, 128, 129, 1000} {
		pass := strings.Repeat("p", n-1) + "!"
		both, only256 := "both-"+strconv.Itoa(n), "sha256-"+strconv.Itoa(n)
		if err := u.AddPassword(both, pass, MinScramIterations); err != nil {
			t.Fatal(err)
		}
		c, err := NewScramCredential(ScramSHA256, pass, MinScramIterations)
		if err != nil {
			t.Fatal(err)
		}
		u.Set(only256, c)
		for _, name := range []string{both, only256} {
			if !u.verifyPlain(name, pass) {
				t.Errorf("%s: the %d-byte password is refused", name, n)
			}
			if u.verifyPlain(name, pass[:n-1]+"?") {
				t.Errorf("%s: a wrong %d-byte password is accepted", name, n)
			}
		}
	}
}
