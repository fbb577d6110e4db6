package kafka

// ACL enforcement: the helpers every API uses to check the operation Kafka
// requires on its resources (package acl decides), and the conversions
// between kmsg, acl and storage. With no Config.Authorizer every check
// passes and the ACL APIs answer SECURITY_DISABLED.

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/storage"
)

// ACLStore makes ACL changes durable. *storage.Store implements it.
type ACLStore interface {
	// ACLs are the stored ACLs, loaded into the Authorizer by New.
	ACLs() []storage.ACL
	CreateACLs([]storage.ACL) error
	DeleteACLs([]storage.ACL) error
}

// aclState is the handler's ACL state.
type aclState struct {
	// mu orders ACL changes: each is made durable and then applied to
	// the authorizer while mu is held, so the authorizer and the log
	// agree on the order.
	mu sync.Mutex
}

// loadACLs fills the authorizer from the store (at New).
func (h *Handler) loadACLs() {
	if h.cfg.Authorizer == nil || h.cfg.ACLStore == nil {
		return
	}
	stored := h.cfg.ACLStore.ACLs()
	bs := make([]acl.Binding, len(stored))
	for i, a := range stored {
		bs[i] = bindingFromStorage(a)
	}
	h.cfg.Authorizer.Replace(bs)
}

// authorized reports whether r's principal may perform op on the resource;
// always true without an authorizer. The decision is cached on the
// connection (conn_state.go) until the ACLs change.
func (h *Handler) authorized(r *request, op acl.Operation, rt acl.ResourceType, name string) bool {
	a := h.cfg.Authorizer
	if a == nil {
		return true
	}
	if id := h.identityOf(r); id != nil {
		return id.authorize(a, op, rt, name)
	}
	return a.Authorize(principalAnonymous, hostOf(r.nr.Conn), op, rt, name)
}

// authorizedUncached is authorized without the connection's cache, for
// checks over many resources at once (every topic of a Metadata answer,
// KIP-430 operation sets): they would evict the connection's hot decisions
// and allocate an entry each.
func (h *Handler) authorizedUncached(r *request, op acl.Operation, rt acl.ResourceType, name string) bool {
	a := h.cfg.Authorizer
	if a == nil {
		return true
	}
	if id := h.identityOf(r); id != nil {
		return a.Authorize(id.principal, id.host, op, rt, name)
	}
	return a.Authorize(principalAnonymous, hostOf(r.nr.Conn), op, rt, name)
}

// authorizedCluster is authorized on the cluster resource.
func (h *Handler) authorizedCluster(r *request, op acl.Operation) bool {
	return h.authorized(r, op, acl.ResourceCluster, acl.ClusterName)
}

// topicAllowed checks r's principal on topics; response builders that run
// without the request take it. It always allows without an authorizer.
type topicAllowed func(op acl.Operation, topic string) bool

func (h *Handler) topicAuthz(r *request) topicAllowed {
	return func(op acl.Operation, topic string) bool { return h.authorized(r, op, acl.ResourceTopic, topic) }
}

// configDenied is the error for a config resource r's principal may not
// op (DESCRIBE_CONFIGS or ALTER_CONFIGS): topics are checked on the topic,
// brokers and broker loggers on the cluster. 0 when allowed.
func (h *Handler) configDenied(r *request, op acl.Operation, typ kmsg.ConfigResourceType, name string) int16 {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		if !h.authorized(r, op, acl.ResourceTopic, name) {
			return kerr.TopicAuthorizationFailed.Code
		}
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
		if !h.authorizedCluster(r, op) {
			return kerr.ClusterAuthorizationFailed.Code
		}
	}
	return 0
}

// authorizedOps is the KIP-430 bit field of the operations in ops r's
// principal may perform on the resource (bit n for operation code n).
func (h *Handler) authorizedOps(r *request, rt acl.ResourceType, name string, ops []acl.Operation) int32 {
	var bits int32
	for _, op := range ops {
		if h.authorizedUncached(r, op, rt, name) {
			bits |= 1 << op
		}
	}
	return bits
}

// Operations reported in the KIP-430 authorized-operations fields, as
// Kafka reports them per resource type.
var (
	topicAuthOps   = []acl.Operation{acl.OpRead, acl.OpWrite, acl.OpCreate, acl.OpDelete, acl.OpAlter, acl.OpDescribe, acl.OpDescribeConfigs, acl.OpAlterConfigs}
	groupAuthOps   = []acl.Operation{acl.OpRead, acl.OpDelete, acl.OpDescribe}
	clusterAuthOps = []acl.Operation{acl.OpCreate, acl.OpAlter, acl.OpDescribe, acl.OpClusterAction, acl.OpDescribeConfigs, acl.OpAlterConfigs, acl.OpIdempotentWrite}
)

// peerHost is the client's IP address as ACL hosts name it: the
// connection's, formatted once, when its identity is made.
func peerHost(r *request) string {
	if r.cs != nil {
		if id := r.cs.ident.Load(); id != nil {
			return id.host
		}
	}
	return hostOf(r.nr.Conn)
}

func bindingFromStorage(a storage.ACL) acl.Binding {
	return acl.Binding{ResourceType: acl.ResourceType(a.ResourceType), Name: a.Name, Pattern: acl.PatternType(a.Pattern),
		Principal: a.Principal, Host: a.Host, Operation: acl.Operation(a.Operation), Permission: acl.Permission(a.Permission)}
}

func bindingToStorage(b acl.Binding) storage.ACL {
	return storage.ACL{ResourceType: int8(b.ResourceType), Name: b.Name, Pattern: int8(b.Pattern),
		Principal: b.Principal, Host: b.Host, Operation: int8(b.Operation), Permission: int8(b.Permission)}
}

func bindingsToStorage(bs []acl.Binding) []storage.ACL {
	out := make([]storage.ACL, len(bs))
	for i, b := range bs {
		out[i] = bindingToStorage(b)
	}
	return out
}

// aclFilter converts a DescribeAcls or DeleteAcls filter.
func aclFilter(rt kmsg.ACLResourceType, name *string, pt kmsg.ACLResourcePatternType, principal, host *string,
	op kmsg.ACLOperation, perm kmsg.ACLPermissionType) acl.Filter {
	return acl.Filter{ResourceType: acl.ResourceType(rt), Name: name, Pattern: acl.PatternType(pt),
		Principal: principal, Host: host, Operation: acl.Operation(op), Permission: acl.Permission(perm)}
}

// securityDisabledMsg is Kafka's message when no authorizer is configured.
const securityDisabledMsg = "No Authorizer is configured."
