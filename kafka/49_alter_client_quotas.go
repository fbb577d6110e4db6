package kafka

// AlterClientQuotas (key 49), versions 0-1 (KIP-546).
//
// Behaviour: each entry sets or removes keys of one entity (user,
// client-id or both; a null name is the type's default). Keys are
// producer_byte_rate and consumer_byte_rate (whole numbers) and
// request_percentage; values must be above 0. Errors are per entry, with
// Kafka's (KRaft) messages: INVALID_REQUEST for an empty entity, a type
// named twice, an unknown type, an empty name, an unknown key or a bad
// value. Removing a key the entity lacks is no error; an entity left
// without keys is gone. validate_only checks and changes nothing. The
// valid entries' changes are made durable together before the answer.
// Needs ALTER_CONFIGS on the cluster (CLUSTER_AUTHORIZATION_FAILED per
// entry). Differs from Kafka: ip entities (connection_creation_rate) and
// controller_mutation_rate are not supported (INVALID_REQUEST).

import (
	"maps"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

const alterClientQuotasKey = 49

func init() { register(alterClientQuotasKey, 0, 1, (*Handler).alterClientQuotas) }

func (h *Handler) alterClientQuotas(r *request) {
	req := kmsg.NewPtrAlterClientQuotasRequest()
	if !h.parse(r, req) {
		return
	}
	r.respond(h.alterClientQuotasResponse(r, req))
}

func (h *Handler) alterClientQuotasResponse(r *request, req *kmsg.AlterClientQuotasRequest) *kmsg.AlterClientQuotasResponse {
	resp := kmsg.NewPtrAlterClientQuotasResponse()
	resp.Version = r.version
	for _, e := range req.Entries {
		re := kmsg.NewAlterClientQuotasResponseEntry()
		for _, c := range e.Entity {
			rc := kmsg.NewAlterClientQuotasResponseEntryEntity()
			rc.Type, rc.Name = c.Type, c.Name
			re.Entity = append(re.Entity, rc)
		}
		resp.Entries = append(resp.Entries, re)
	}
	set := func(i int, code int16, msg string) {
		resp.Entries[i].ErrorCode, resp.Entries[i].ErrorMessage = code, &msg
	}
	if !h.authorizedCluster(r, acl.OpAlterConfigs) {
		for i := range resp.Entries {
			set(i, kerr.ClusterAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Message)
		}
		return resp
	}

	h.quotas.mu.Lock()
	defer h.quotas.mu.Unlock()
	// pending is each entity's values after the valid entries so far, so
	// an entity named twice sees its earlier entry.
	pending := map[storage.QuotaEntity]map[string]float64{}
	var changes []storage.Quota
	var changed []int // entries whose change is in changes
	for i, e := range req.Entries {
		ent, code, msg := quotaEntity(e.Entity)
		if code == 0 {
			cur, ok := pending[ent]
			if !ok {
				cur = h.quotas.m[ent]
			}
			var next map[string]float64
			next, code, msg = applyQuotaOps(cur, e.Ops)
			if code == 0 && !maps.Equal(cur, next) {
				pending[ent] = next
				changes = append(changes, storage.Quota{Entity: ent, Values: next})
				changed = append(changed, i)
			}
		}
		if code != 0 {
			set(i, code, msg)
		}
	}
	if req.ValidateOnly || len(changes) == 0 {
		return resp
	}
	if h.cfg.QuotaStore != nil {
		if err := h.cfg.QuotaStore.SetQuotas(changes); err != nil {
			for _, i := range changed {
				set(i, h.errCode(err), err.Error())
			}
			return resp
		}
	}
	h.setQuotasLocked(changes)
	return resp
}

// quotaEntity validates an entity's components as Kafka (KRaft) does; a
// non-zero code is the error to answer.
func quotaEntity(cs []kmsg.AlterClientQuotasRequestEntryEntity) (e storage.QuotaEntity, code int16, msg string) {
	if len(cs) == 0 {
		return e, kerr.InvalidRequest.Code, "Invalid empty client quota entity"
	}
	for _, c := range cs {
		switch c.Type {
		case quotaEntityUser, quotaEntityClientID:
		case quotaEntityIP:
			return e, kerr.InvalidRequest.Code, "klite does not support ip quotas"
		default:
			return e, kerr.InvalidRequest.Code, "Unhandled client quota entity type: " + c.Type
		}
		if (c.Type == quotaEntityUser && e.HasUser()) || (c.Type == quotaEntityClientID && e.HasClientID()) {
			return e, kerr.InvalidRequest.Code, "Invalid empty client quota entity, duplicate entity entry " + c.Type
		}
		if c.Name != nil && *c.Name == "" {
			return e, kerr.InvalidRequest.Code, "Empty " + c.Type + " not supported"
		}
		isDefault, name := c.Name == nil, ""
		if c.Name != nil {
			name = *c.Name
		}
		if c.Type == quotaEntityUser {
			e.User, e.UserDefault = name, isDefault
		} else {
			e.ClientID, e.ClientDefault = name, isDefault
		}
	}
	return e, 0, ""
}

// applyQuotaOps returns cur (not changed) with ops made; a non-zero code
// is the error to answer. A later op on the same key wins, as in Kafka.
func applyQuotaOps(cur map[string]float64, ops []kmsg.AlterClientQuotasRequestEntryOp) (map[string]float64, int16, string) {
	next := maps.Clone(cur)
	if next == nil {
		next = map[string]float64{}
	}
	for _, op := range ops {
		if op.Remove {
			delete(next, op.Key)
			continue
		}
		integral, known := quotaKeyIntegral[op.Key]
		v := op.Value
		switch {
		case !known:
			return nil, kerr.InvalidRequest.Code, "Invalid configuration key " + op.Key
		case math.IsNaN(v) || math.IsInf(v, 0):
			return nil, kerr.InvalidRequest.Code, "Quota " + op.Key + " must be a finite number"
		case v <= 0:
			return nil, kerr.InvalidRequest.Code, "Quota " + op.Key + " must be greater than 0"
		case integral && v >= math.MaxInt64:
			return nil, kerr.InvalidRequest.Code, "Proposed value for " + op.Key + " is too large for a LONG."
		case integral && v != math.Trunc(v):
			return nil, kerr.InvalidRequest.Code, op.Key + " cannot be a fractional value."
		}
		next[op.Key] = v
	}
	return next, 0, ""
}
