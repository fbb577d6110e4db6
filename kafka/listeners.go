package kafka

import "github.com/klite/klite/netloop"

// SecurityProtocol is a listener's Kafka security protocol
// (listener.security.protocol.map's values).
type SecurityProtocol string

const (
	Plaintext     SecurityProtocol = "PLAINTEXT"
	SSL           SecurityProtocol = "SSL"
	SASLPlaintext SecurityProtocol = "SASL_PLAINTEXT"
	SASLSSL       SecurityProtocol = "SASL_SSL"
)

// ParseSecurityProtocol accepts Kafka's four protocol names.
func ParseSecurityProtocol(s string) (SecurityProtocol, bool) {
	switch p := SecurityProtocol(s); p {
	case Plaintext, SSL, SASLPlaintext, SASLSSL:
		return p, true
	}
	return "", false
}

// SASL reports whether clients must authenticate with SASL first.
func (p SecurityProtocol) SASL() bool { return p == SASLPlaintext || p == SASLSSL }

// TLS reports whether the listener speaks TLS.
func (p SecurityProtocol) TLS() bool { return p == SSL || p == SASLSSL }

// Listener is one listener as clients see it: its protocol and the address
// Metadata and FindCoordinator give to clients that came in on it.
type Listener struct {
	Protocol SecurityProtocol
	Host     string
	Port     int32
}

// listenerOf is the listener a connection came in on. Connections carry
// the index of their listener (netloop.ConnInfo.Listener), in the order of
// Config.Listeners.
func (h *Handler) listenerOf(ci netloop.ConnInfo) Listener {
	if ci.Listener >= 0 && ci.Listener < len(h.cfg.Listeners) {
		return h.cfg.Listeners[ci.Listener]
	}
	return h.cfg.Listeners[0]
}
