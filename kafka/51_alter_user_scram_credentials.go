package kafka

// AlterUserScramCredentials (key 51), version 0 (KIP-554).
//
// Behaviour: deletes and upserts SCRAM credentials; the client sends the
// salt and the salted password (Hi(password, salt, iterations)), never the
// password, and the broker keeps only the stored and server keys derived
// from them. There is one result per user named. A user's changes are
// checked together and none is made if one fails: an empty name or salt
// or salted password UNACCEPTABLE_CREDENTIAL; an iteration count outside
// 4096-16384 UNACCEPTABLE_CREDENTIAL; an unknown mechanism
// UNSUPPORTED_SASL_MECHANISM; the same user and mechanism twice
// DUPLICATE_RESOURCE; deleting a credential that does not exist
// RESOURCE_NOT_FOUND. Changes are durable (UserStore, fsynced) before the
// answer. Connections already authenticated stay so.
//
// Needs ALTER on the cluster: without it every user's result is
// CLUSTER_AUTHORIZATION_FAILED and nothing changes, as in Kafka.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

func init() { register(51, 0, 0, (*Handler).alterUserScram) }

// userAlteration is one user's changes in a request.
type userAlteration struct {
	name    string
	deletes []ScramMechanism
	upserts []ScramCredential
	code    int16
	msg     string
	seen    map[ScramMechanism]bool
}

func (a *userAlteration) fail(code int16, msg string) {
	if a.code == 0 {
		a.code, a.msg = code, msg
	}
}

func (h *Handler) alterUserScram(r *request) {
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	if !h.parse(r, req) {
		return
	}
	var order []*userAlteration
	byName := map[string]*userAlteration{}
	user := func(name string) *userAlteration {
		a := byName[name]
		if a == nil {
			a = &userAlteration{name: name, seen: map[ScramMechanism]bool{}}
			byName[name] = a
			order = append(order, a)
		}
		return a
	}
	mechanism := func(a *userAlteration, m int8) (ScramMechanism, bool) {
		sm := ScramMechanism(m)
		switch {
		case a.name == "":
			a.fail(kerr.UnacceptableCredential.Code, "Username must not be empty")
		case sm.Name() == "":
			a.fail(kerr.UnsupportedSaslMechanism.Code, "Unknown SCRAM mechanism")
		case a.seen[sm]:
			a.fail(kerr.DuplicateResource.Code, "A user credential cannot be altered twice in the same request")
		default:
			a.seen[sm] = true
			return sm, true
		}
		return 0, false
	}
	for _, d := range req.Deletions {
		a := user(d.Name)
		if m, ok := mechanism(a, d.Mechanism); ok {
			if _, exists := h.cfg.Users.Get(a.name, m); !exists {
				a.fail(kerr.ResourceNotFound.Code, "Attempt to delete a user credential that does not exist")
			}
			a.deletes = append(a.deletes, m)
		}
	}
	for _, u := range req.Upsertions {
		a := user(u.Name)
		m, ok := mechanism(a, u.Mechanism)
		switch {
		case !ok:
		case u.Iterations < MinScramIterations:
			a.fail(kerr.UnacceptableCredential.Code, "Too few iterations")
		case u.Iterations > MaxScramIterations:
			a.fail(kerr.UnacceptableCredential.Code, "Too many iterations")
		case len(u.Salt) == 0 || len(u.SaltedPassword) == 0:
			a.fail(kerr.UnacceptableCredential.Code, "Salt and salted password must not be empty")
		default:
			a.upserts = append(a.upserts, ScramCredentialFromSalted(m, u.Salt, u.SaltedPassword, u.Iterations))
		}
	}
	if !h.authorizedCluster(r, acl.OpAlter) {
		for _, a := range order {
			a.code, a.msg = kerr.ClusterAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Message
		}
	}
	h.async(r, func() {
		resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
		h.usersMu.Lock()
		for _, a := range order {
			if a.code == 0 {
				h.applyUserAlteration(a)
			}
			res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
			res.User, res.ErrorCode = a.name, a.code
			if a.code != 0 {
				res.ErrorMessage = kmsg.StringPtr(a.msg)
			}
			resp.Results = append(resp.Results, res)
		}
		h.usersMu.Unlock()
		r.respond(resp)
	})
}

// applyUserAlteration makes a's changes, durably first. usersMu held.
func (h *Handler) applyUserAlteration(a *userAlteration) {
	st := h.cfg.UserStore
	for _, m := range a.deletes {
		if st != nil {
			if err := st.DeleteScramCredential(a.name, int8(m)); err != nil && !errors.Is(err, storage.ErrUnknownCredential) {
				a.fail(h.errCode(err), err.Error())
				return
			}
		}
		h.cfg.Users.Delete(a.name, m)
	}
	for _, c := range a.upserts {
		if st != nil {
			if err := st.SetScramCredential(c.stored(a.name)); err != nil {
				a.fail(h.errCode(err), err.Error())
				return
			}
		}
		h.cfg.Users.Set(a.name, c)
	}
}
