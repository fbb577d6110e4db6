package main

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestLimits checks the connection limits of the real binary: -max-conns
// closes connections past the cap, -idle-timeout closes silent ones, and the
// broker serves clients again once connections go away.
func TestLimits(t *testing.T) {
	const maxConns = 20
	b := startBroker(t, "-max-conns", "20", "-idle-timeout", "1s")

	apiVersions := func(c net.Conn, corr int32) error {
		if _, err := c.Write(reqFrame(18, 0, corr, false, nil)); err != nil {
			return err
		}
		_, err := readFrame(c)
		return err
	}

	var conns []net.Conn
	for i := 0; i < maxConns; i++ {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := apiVersions(c, int32(i)); err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, maxConns, err)
		}
		conns = append(conns, c)
	}
	// One past the cap is accepted and closed at once.
	extra, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if err := apiVersions(extra, 99); err == nil {
		t.Fatalf("connection %d served with -max-conns %d", maxConns+1, maxConns)
	}

	// Silent connections are closed after -idle-timeout: each read ends in
	// EOF (or reset) rather than the read deadline.
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("idle connection %d still open after 30s with -idle-timeout 1s", i)
		}
		if err == nil {
			t.Fatalf("idle connection %d got unexpected bytes", i)
		}
		if !errors.Is(err, io.EOF) {
			t.Logf("idle connection %d: %v", i, err)
		}
	}

	// The slots are free again.
	waitFor(t, 30*time.Second, "a new connection to be served", func() bool {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			return false
		}
		defer c.Close()
		return apiVersions(c, 7) == nil
	})
	b.stop()
}

// TestNodeIDZero checks that -node-id 0, a common broker id, is what
// Metadata reports.
func TestNodeIDZero(t *testing.T) {
	b := startBroker(t, "-node-id", "0")
	md, err := kadm.NewClient(newFranz(t, b.addr)).BrokerMetadata(testContext(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].NodeID != 0 || md.Controller != 0 {
		t.Errorf("metadata with -node-id 0: brokers %+v controller %d, want node 0", md.Brokers, md.Controller)
	}
	b.stop()
}
