package kafka

import "github.com/klite/klite/netloop"

// TLSPrincipal is the principal of a client that proved itself with a TLS
// client certificate (mTLS, -tls-client-ca): "User:" and the subject's
// common name, as issue 11 specifies (Apache Kafka's default mapping would
// use the whole distinguished name). It is "" when the connection has no
// verified client certificate: a plaintext listener, or TLS without
// client authentication.
func TLSPrincipal(ci netloop.ConnInfo) string {
	if ci.TLS == nil || len(ci.TLS.VerifiedChains) == 0 || len(ci.TLS.PeerCertificates) == 0 {
		return ""
	}
	return "User:" + ci.TLS.PeerCertificates[0].Subject.CommonName
}
