package kafka

import (
	"fmt"
	"net"
	"testing"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/netloop"
)

// BenchmarkAuthorizedProduce is the check Produce makes per topic with the
// authorizer on and 10,000 ACLs, with and without a host-specific ACL
// (which makes the check format the client's address).
func BenchmarkAuthorizedProduce(b *testing.B) {
	for _, hosts := range []bool{false, true} {
		b.Run(fmt.Sprintf("host-acls=%v", hosts), func(b *testing.B) {
			a := acl.New(acl.Config{})
			var bs []acl.Binding
			for i := range 10000 {
				bs = append(bs, acl.Binding{ResourceType: acl.ResourceTopic, Name: fmt.Sprintf("topic-%d", i), Pattern: acl.PatternLiteral,
					Principal: fmt.Sprintf("User:u%d", i%100), Host: "*", Operation: acl.OpWrite, Permission: acl.PermissionAllow})
			}
			bs = append(bs, allowACL(acl.ResourceTopic, "hot", acl.OpWrite))
			if hosts {
				bs = append(bs, acl.Binding{ResourceType: acl.ResourceTopic, Name: "hot", Pattern: acl.PatternLiteral,
					Principal: anonymous, Host: "10.9.9.9", Operation: acl.OpWrite, Permission: acl.PermissionDeny})
			}
			a.Add(bs...)
			h := &Handler{cfg: Config{Authorizer: a, Listeners: []Listener{{Protocol: Plaintext}}}}
			nr := netloop.NewRequest(nil, netloop.ConnInfo{ID: 1, Remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}}, func(netloop.Response) {})
			r := &request{nr: nr}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !h.authorized(r, acl.OpWrite, acl.ResourceTopic, "hot") {
					b.Fatal("refused")
				}
			}
		})
	}
}
