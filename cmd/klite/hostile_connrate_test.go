package main

import (
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestHostileConnectionRatePerIP: with -max-connection-creation-rate-per-ip,
// an address opening connections in a loop gets a second's worth at once
// and then the rate; the rest are closed before they are served, and
// counted (klite_connections_closed_total{reason="conn_rate"}). Another
// address is served meanwhile. What is checked is an upper bound the token
// bucket cannot exceed whatever the machine's speed (a second's worth plus
// the rate times the time taken), and that the cap closed some.
func TestHostileConnectionRatePerIP(t *testing.T) {
	const (
		rate  = 5
		tries = 100
	)
	b := startBroker(t, "-max-connection-creation-rate-per-ip", "5", "-http-addr", "127.0.0.1:0")
	served := func(ip string) bool {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req := kmsg.NewPtrApiVersionsRequest()
		if _, err := c.Write(reqFrame(req.Key(), req.Version, 1, req.IsFlexible(), req.AppendTo(nil))); err != nil {
			return false // closed already
		}
		_, err = readFrame(c)
		return err == nil
	}
	start := time.Now()
	n := 0
	for range tries {
		if served("127.0.0.2") {
			n++
		}
	}
	took := time.Since(start)
	if most := rate + int(took.Seconds()*rate) + 1; n > most {
		t.Fatalf("%d of %d connections from one address served in %v: more than the %d the cap allows", n, tries, took, most)
	}
	if n == tries {
		t.Fatalf("all %d connections served", tries)
	}
	if !served("127.0.0.3") {
		t.Fatal("a connection from another address was not served")
	}
	fams := scrape(t, b.httpAddr())
	closed, _ := metricValue(fams, "klite_connections_closed_total", "reason", "conn_rate")
	if int(closed) != tries-n {
		t.Fatalf("klite_connections_closed_total{reason=conn_rate} %v, want %d", closed, tries-n)
	}
	t.Logf("%d of %d served in %v", n, tries, took)
}
