package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/klite/klite/internal/testcerts"
	"github.com/klite/klite/netloop"
)

func TestTLSPrincipal(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	cert, err := x509.ParseCertificate(ca.Client(t, "alice").TLS.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ci   netloop.ConnInfo
		want string
	}{
		{"plaintext", netloop.ConnInfo{}, ""},
		{"tls without client cert", netloop.ConnInfo{TLS: &tls.ConnectionState{}}, ""},
		{"unverified cert", netloop.ConnInfo{TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}}, ""},
		{"mtls", netloop.ConnInfo{TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert},
			VerifiedChains: [][]*x509.Certificate{{cert, ca.Cert}}}}, "User:alice"},
	} {
		if got := TLSPrincipal(c.ci); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
