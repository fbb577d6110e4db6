package netloop

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"time"

	"github.com/rs/zerolog"
)

// Defaults, in one place. Zero values in Config take these.
const (
	// DefaultMaxFrameBytes is Kafka's socket.request.max.bytes (100 MiB).
	DefaultMaxFrameBytes int32 = 100 << 20
	// DefaultMaxInflightRequests caps requests per connection that were read
	// and whose responses are not yet written.
	DefaultMaxInflightRequests = 100
	// DefaultMaxInflightBytes caps the frame bytes of those requests.
	DefaultMaxInflightBytes int64 = 128 << 20
	// DefaultMaxOutboundBytes caps completed responses waiting to be written.
	DefaultMaxOutboundBytes int64 = 64 << 20
	// DefaultIdleTimeout is Kafka's connections.max.idle.ms (10 minutes), for
	// callers to put in Config.IdleTimeout (whose zero value disables it).
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultMaxQueuedRequestBytes caps request bytes held in memory across
	// all connections (Kafka's queued.max.request.bytes, unbounded there by
	// default). 512 MiB is five largest frames, far above what producers on
	// a single node keep in flight, and small beside this machine class's RAM.
	DefaultMaxQueuedRequestBytes int64 = 512 << 20
	// defaultInboundSlackBytes is what MaxInboundBufferedBytes allows above
	// MaxFrameBytes by default: one whole pending frame plus some pipelining.
	defaultInboundSlackBytes int64 = 8 << 20
	// DefaultHandshakeTimeout bounds a TLS handshake from accept to its
	// end, so a silent or slow client cannot hold one open.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxHandshakes caps TLS handshakes in progress server-wide; more
	// wait (their deadline running) for one to finish.
	DefaultMaxHandshakes = 256
)

// ListenerConfig is one address to listen on.
type ListenerConfig struct {
	// Addr is "host:port"; port 0 picks a free port (see Server.Addrs).
	Addr string
	// TLS, when set, makes connections on this listener speak TLS: a
	// handshake first, then frames inside TLS records. nil is plaintext.
	// netloop clones it and raises MinVersion to TLS 1.2.
	TLS *tls.Config
}

// Config configures a Server. Every limit is per connection unless it says otherwise.
type Config struct {
	// Addr is "host:port" to listen on; port 0 picks a free port (see Server.Addr).
	// Ignored when Listeners is set.
	Addr string
	// Listeners, when set, are the addresses to listen on, all served by the
	// same event loops; ConnInfo.Listener is the index of a connection's.
	Listeners []ListenerConfig
	// HandshakeTimeout closes a TLS connection whose handshake has not
	// finished this long after accept. 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxHandshakes caps TLS handshakes in progress at once, server-wide;
	// each runs on a goroutine of its own. 0 means DefaultMaxHandshakes.
	MaxHandshakes int
	// Loops is the number of event loops; 0 means GOMAXPROCS.
	Loops int
	// MaxFrameBytes is the largest request frame accepted; a larger (or
	// negative) size prefix closes the connection. 0 means DefaultMaxFrameBytes.
	MaxFrameBytes int32
	// MaxInflightRequests caps requests read from a connection whose responses
	// are not yet fully written. At the cap netloop stops reading frames from
	// that connection. 0 means DefaultMaxInflightRequests.
	MaxInflightRequests int
	// MaxInflightBytes caps the frame bytes of those requests. One frame is
	// always admitted when none is in flight, whatever its size.
	// 0 means DefaultMaxInflightBytes.
	MaxInflightBytes int64
	// MaxOutboundBytes caps bytes of completed responses not yet written (the
	// peer reads slower than the handler answers). Past it netloop stops
	// reading frames from that connection until the queue drains.
	// 0 means DefaultMaxOutboundBytes.
	MaxOutboundBytes int64
	// MaxQueuedRequestBytes caps the request bytes held in memory by the
	// whole server (Kafka's queued.max.request.bytes): frame buffers, counted
	// as they fill, until released. Past it (counting whole frames only:
	// frames being read are bounded per connection) no loop starts a new
	// frame until bytes are released. A frame is admitted whenever the
	// count is below the cap and then always read to its end, so a frame as large as the
	// cap still goes through (see budget). 0 means
	// DefaultMaxQueuedRequestBytes; negative means no cap.
	MaxQueuedRequestBytes int64
	// MaxInboundBufferedBytes caps bytes a peer may send that netloop has not
	// parsed because the connection is held back by the caps above. gnet keeps
	// reading the socket regardless, so past this the connection is closed.
	// 0 means MaxFrameBytes + 8 MiB.
	MaxInboundBufferedBytes int64
	// IdleTimeout closes a connection that has neither read nor written a byte
	// for this long (Kafka's connections.max.idle.ms). A peer that stops
	// reading its responses makes no write progress and is closed too.
	// 0 disables it (see DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxConns caps open connections for the whole server; a client past the
	// cap is accepted and closed at once. 0 means no cap.
	MaxConns int
	// MaxConnCreationRatePerIP caps new connections per second from one
	// client address (an IPv6 /64): KIP-612's connection_creation_rate for
	// IPs. A connection past it is accepted and closed at once
	// (CloseConnRate). 0 means no cap.
	MaxConnCreationRatePerIP float64
	// Logger receives lifecycle logs (Info), per-connection logs (Debug) and
	// sampled protocol violations (Warn).
	Logger zerolog.Logger
}

// withDefaults fills zero values and validates the result.
func (c Config) withDefaults() (Config, error) {
	if len(c.Listeners) == 0 {
		c.Listeners = []ListenerConfig{{Addr: c.Addr}}
	} else {
		c.Listeners = slices.Clone(c.Listeners)
	}
	for i := range c.Listeners {
		if t := c.Listeners[i].TLS; t != nil {
			t = t.Clone()
			t.MinVersion = max(t.MinVersion, tls.VersionTLS12)
			c.Listeners[i].TLS = t
		}
	}
	c.Addr = c.Listeners[0].Addr
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxHandshakes == 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.Loops == 0 {
		c.Loops = runtime.GOMAXPROCS(0)
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.MaxInflightRequests == 0 {
		c.MaxInflightRequests = DefaultMaxInflightRequests
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if c.MaxOutboundBytes == 0 {
		c.MaxOutboundBytes = DefaultMaxOutboundBytes
	}
	if c.MaxQueuedRequestBytes == 0 {
		c.MaxQueuedRequestBytes = DefaultMaxQueuedRequestBytes
	}
	if c.MaxInboundBufferedBytes == 0 {
		c.MaxInboundBufferedBytes = int64(c.MaxFrameBytes) + defaultInboundSlackBytes
	}
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	for _, l := range c.Listeners {
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			errs = append(errs, fmt.Errorf("netloop: addr %q: %w", l.Addr, err))
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"loops", int64(c.Loops)},
		{"max frame bytes", int64(c.MaxFrameBytes)},
		{"max inflight requests", int64(c.MaxInflightRequests)},
		{"max inflight bytes", c.MaxInflightBytes},
		{"max outbound bytes", c.MaxOutboundBytes},
		{"max inbound buffered bytes", c.MaxInboundBufferedBytes},
		{"max handshakes", int64(c.MaxHandshakes)},
		{"handshake timeout", int64(c.HandshakeTimeout)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("netloop: %s %d < 0", f.name, f.v))
		}
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("netloop: idle timeout %v < 0", c.IdleTimeout))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("netloop: max conns %d < 0", c.MaxConns))
	}
	if c.MaxConnCreationRatePerIP < 0 {
		errs = append(errs, fmt.Errorf("netloop: max connection creation rate per IP %v < 0", c.MaxConnCreationRatePerIP))
	}
	return errors.Join(errs...)
}

// tickInterval is how often idle connections are looked for: a fraction of
// the timeout, so a connection is closed within about 1.25x IdleTimeout.
func (c Config) tickInterval() time.Duration {
	return min(max(c.IdleTimeout/4, 5*time.Millisecond), time.Second)
}
