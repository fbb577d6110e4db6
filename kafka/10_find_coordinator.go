package kafka

// FindCoordinator (key 10), versions 0-6 (v6, KIP-932, adds key type 2, a
// share group, answered INVALID_REQUEST below: klite has no share groups).
//
// Behaviour: this broker coordinates every group: the answer is our node id
// and advertised address. v4+ batches keys (KIP-699), one entry per key.
// Key type 0 is a group; an empty group id still gets the coordinator, as
// in Kafka (the group APIs then answer INVALID_GROUP_ID).
//
// Differences from Apache Kafka: transactions are not implemented, so key
// type 1 (a transactional id) answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
// the same fatal answer InitProducerId gives a transactional id (see
// 22_init_producer_id.go): clients stop with a clear error instead of
// retrying. Any other key type answers INVALID_REQUEST. Without a group
// coordinator, COORDINATOR_NOT_AVAILABLE.
//
// ACLs (-authorizer): DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED, per key).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const findCoordinatorKey = 10

func init() { register(findCoordinatorKey, 0, 6, (*Handler).findCoordinator) }

func (h *Handler) findCoordinator(r *request) {
	req := kmsg.NewPtrFindCoordinatorRequest()
	if !h.parse(r, req) {
		return
	}
	ln := h.listenerOf(r.nr.Conn)
	resp := kmsg.NewPtrFindCoordinatorResponse()
	resp.Version = r.version
	code := int16(0)
	switch {
	case req.CoordinatorType == 1:
		code = kerr.TransactionalIDAuthorizationFailed.Code
	case req.CoordinatorType != 0:
		code = kerr.InvalidRequest.Code
	case h.cfg.Groups == nil:
		code = noCoordinator
	}
	fill := func(errCode *int16, msg **string, node *int32, host *string, port *int32) {
		*node, *host, *port = -1, "", -1
		if code != 0 {
			*errCode = code
			if e := kerr.ErrorForCode(code); e != nil {
				*msg = strp(e.Error())
			}
			return
		}
		*node, *host, *port = h.cfg.NodeID, ln.Host, ln.Port
	}
	// DESCRIBE on the group (Kafka's table); code is per key from here.
	shared := code
	check := func(key string) {
		code = shared
		if code == 0 && !h.groupAllowed(r, acl.OpDescribe, key) {
			code = groupAuthFailed
		}
	}
	if r.version < 4 {
		check(req.CoordinatorKey)
		fill(&resp.ErrorCode, &resp.ErrorMessage, &resp.NodeID, &resp.Host, &resp.Port)
		r.respond(resp)
		return
	}
	for _, key := range req.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		check(key)
		fill(&c.ErrorCode, &c.ErrorMessage, &c.NodeID, &c.Host, &c.Port)
		resp.Coordinators = append(resp.Coordinators, c)
	}
	r.respond(resp)
}
