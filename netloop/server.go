package netloop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// ErrStarted is returned by Start when the server was started before.
var ErrStarted = errors.New("netloop: server already started")

// Server runs gnet event loops that read frames, hand them to a Handler and
// write the responses back in order.
type Server struct {
	cfg  Config
	h    Handler
	obs  Observer // h as an Observer, or nil
	log  zerolog.Logger
	warn zerolog.Logger // sampled, for protocol violations
	// tlsWarn is sampled apart, so a storm of failed handshakes does not
	// hide other violations (nor they it).
	tlsWarn zerolog.Logger
	hs      handshakes
	// tlsStates shares ConnInfo.TLS between connections whose state is the same.
	tlsStates tlsStates

	st     counters
	nextID atomic.Uint64
	mem    budget // MaxQueuedRequestBytes

	eng      gnet.Engine   // set in OnBoot
	addrs    []net.Addr    // bound address per listener, set in OnBoot before booted closes
	booted   chan struct{} // closed once listening
	runDone  chan struct{} // closed when gnet.Run returns
	runErr   error         // gnet.Run's result, read after runDone
	started  atomic.Bool
	stopOnce sync.Once
	stopErr  error

	draining atomic.Bool    // Stop was called: refuse conns, read no more frames
	connRate *connRate      // MaxConnCreationRatePerIP; nil without one
	rateWarn zerolog.Logger // sampled apart, for connections closed by connRate

	mu      sync.Mutex // guards conns and drained
	conns   map[uint64]*conn
	drained chan struct{} // closed when draining and no conn is left
}

// New checks cfg, fills its defaults and returns a Server ready to Start.
func New(cfg Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("netloop: nil handler")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With().Str("component", "netloop").Logger()
	s := &Server{
		cfg:     cfg,
		h:       h,
		log:     log,
		warn:    log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute}),
		tlsWarn: log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute}),
		hs:      handshakes{max: cfg.MaxHandshakes},
		booted:  make(chan struct{}),
		runDone: make(chan struct{}),
		conns:   make(map[uint64]*conn),
		drained: make(chan struct{}),
	}
	s.obs, _ = h.(Observer)
	if cfg.MaxConnCreationRatePerIP > 0 {
		s.connRate = newConnRate(cfg.MaxConnCreationRatePerIP)
		s.rateWarn = log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute})
	}
	s.mem.max = max(cfg.MaxQueuedRequestBytes, 0)
	return s, nil
}

// Start binds the address and starts the event loops. It returns once the
// socket is listening; Addr then names the bound address.
func (s *Server) Start() error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	opts := []gnet.Option{
		gnet.WithNumEventLoop(s.cfg.Loops),
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{s.log.With().Str("lib", "gnet").Logger()}),
	}
	if s.cfg.IdleTimeout > 0 {
		opts = append(opts, gnet.WithTicker(true))
	}
	go func() {
		defer close(s.runDone)
		s.runErr = gnet.Rotate(&events{s: s}, gnetAddrs(s.cfg.Listeners), opts...)
	}()
	select {
	case <-s.booted:
		if s.addrs == nil {
			<-s.runDone
			return errors.New("netloop: cannot read the bound address")
		}
		for i, a := range s.addrs {
			s.log.Info().Str("addr", a.String()).Int("listener", i).Bool("tls", s.cfg.Listeners[i].TLS != nil).
				Int("loops", s.cfg.Loops).Msg("listening")
			if s.cfg.Listeners[i].TLS != nil && !tlsBufs.ok && !tlsBufsWarned.Swap(true) {
				s.log.Warn().Str("go", runtime.Version()).
					Msg("crypto/tls's buffers are not where netloop expects them: idle TLS connections keep theirs (several KiB each)")
			}
		}
		return nil
	case <-s.runDone:
		if s.runErr == nil {
			return errors.New("netloop: gnet stopped while starting")
		}
		return fmt.Errorf("netloop: %w", s.runErr)
	}
}

// gnetAddrs names the listeners for gnet.Rotate. gnet finds a listener to
// duplicate by the address string it was given (Engine.DupListener), so
// repeated strings ("127.0.0.1:0" twice) are made distinct by zeros in
// front of the port, which name the same port.
func gnetAddrs(ls []ListenerConfig) []string {
	out := make([]string, len(ls))
	seen := make(map[string]bool, len(ls))
	for i, l := range ls {
		host, port, _ := net.SplitHostPort(l.Addr) // validated
		a := net.JoinHostPort(host, port)
		for seen[a] {
			port = "0" + port
			a = net.JoinHostPort(host, port)
		}
		seen[a] = true
		out[i] = "tcp://" + a
	}
	return out
}

// Addr returns the first listener's bound address (with the real port when
// it asked for port 0), or nil before Start.
func (s *Server) Addr() net.Addr {
	if a := s.Addrs(); len(a) > 0 {
		return a[0]
	}
	return nil
}

// Addrs returns the bound address of each listener, in Config.Listeners'
// order, or nil before Start.
func (s *Server) Addrs() []net.Addr {
	select {
	case <-s.booted:
		return s.addrs
	default:
		return nil
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := s.st.snapshot()
	st.RequestBytes = s.mem.used.Load()
	return st
}

// Stop stops gracefully: new connections are refused, no further frames are
// read, requests already handed to the handler are answered and their
// responses written, then connections close. When ctx ends first, the
// remaining connections are closed at once and ctx's error is returned.
// Stop is safe to call more than once; later calls return the first result.
func (s *Server) Stop(ctx context.Context) error {
	if !s.started.Load() {
		return nil
	}
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	select {
	case <-s.booted:
	case <-s.runDone:
		return s.runErr
	}
	start := time.Now()
	s.mu.Lock()
	s.draining.Store(true)
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	if len(s.conns) == 0 {
		close(s.drained)
	}
	s.mu.Unlock()
	s.log.Info().Stringer("addr", s.addrs[0]).Int("conns", len(conns)).Msg("stopping")

	// Each loop stops reading frames and closes its connections as their
	// last responses go out.
	for _, c := range conns {
		c.schedule()
	}
	var err error
	select {
	case <-s.drained:
	case <-ctx.Done():
		err = ctx.Err()
	}

	// Stop the engine; it closes whatever is left. Engine.Stop polls every
	// 500 ms for the end, so wait for gnet.Run to return instead.
	stopCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.eng.Stop(stopCtx) }()
	<-s.runDone
	if s.runErr != nil && err == nil {
		err = fmt.Errorf("netloop: %w", s.runErr)
	}
	st := s.Stats()
	s.log.Info().Stringer("addr", s.addrs[0]).Dur("took", time.Since(start)).
		Int64("conns_total", st.ConnsAccepted).Int64("frames", st.Frames).Err(err).Msg("stopped")
	return err
}

// register adds c unless the server is stopping or at MaxConns.
func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() || (s.cfg.MaxConns > 0 && len(s.conns) >= s.cfg.MaxConns) {
		return false
	}
	s.conns[c.info.ID] = c
	return true
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.conns, c.info.ID)
	if len(s.conns) == 0 && s.draining.Load() {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
	s.mu.Unlock()
}

// events implements gnet.EventHandler for a Server.
type events struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (e *events) OnBoot(eng gnet.Engine) gnet.Action {
	s := e.s
	s.eng = eng
	defer close(s.booted)
	addrs := make([]net.Addr, len(s.cfg.Listeners))
	for i, a := range gnetAddrs(s.cfg.Listeners) {
		fd, err := eng.DupListener("tcp", strings.TrimPrefix(a, "tcp://"))
		if err != nil {
			s.log.Error().Err(err).Str("addr", a).Msg("dup listener")
			return gnet.Shutdown
		}
		sa, err := unix.Getsockname(fd)
		unix.Close(fd)
		if err != nil {
			s.log.Error().Err(err).Msg("getsockname")
			return gnet.Shutdown
		}
		if addrs[i] = sockaddrTCP(sa); addrs[i] == nil {
			s.log.Error().Msgf("unexpected listener address %T", sa)
			return gnet.Shutdown
		}
	}
	s.addrs = addrs
	return gnet.None
}

func sockaddrTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}

// listenerOf finds the listener a connection came in on from its local
// address: gnet says only which address a listener was asked for. Loop only.
func (s *Server) listenerOf(gc gnet.Conn) int {
	if len(s.addrs) == 1 {
		return 0
	}
	sa, err := unix.Getsockname(gc.Fd())
	if err != nil {
		return 0
	}
	local := sockaddrTCP(sa)
	if local == nil {
		return 0
	}
	match := -1
	for i, a := range s.addrs {
		b := a.(*net.TCPAddr)
		if b.Port != local.Port {
			continue
		}
		if b.IP.Equal(local.IP) {
			return i
		}
		if b.IP.IsUnspecified() && match < 0 {
			match = i
		}
	}
	return max(match, 0)
}

func (e *events) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := e.s
	s.st.connsAccepted.Add(1)
	ln := s.listenerOf(gc)
	c := newConn(s, gc, ln)
	if !s.connRate.allow(c.info.Remote, time.Now()) {
		s.st.closes[CloseConnRate].Add(1)
		s.rateWarn.Warn().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).
			Float64("max_per_second", s.cfg.MaxConnCreationRatePerIP).Msg("connection creation rate of the address exceeded, closing")
		return nil, gnet.Close
	}
	if !s.register(c) {
		s.st.closes[CloseRefused].Add(1)
		s.log.Debug().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).Msg("refused")
		return nil, gnet.Close
	}
	gc.SetContext(c)
	s.st.connsOpen.Add(1)
	s.log.Debug().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).Int("listener", ln).Msg("open")
	if cfg := s.cfg.Listeners[ln].TLS; cfg != nil {
		c.startTLS(cfg)
	}
	if o, ok := s.h.(Opener); ok {
		o.ConnOpened(Conn{c})
	}
	return nil, gnet.None
}

func (e *events) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*conn)
	if c == nil {
		return gnet.Close
	}
	c.active.Store(true)
	c.pump()
	if c.closing {
		return gnet.Close
	}
	return gnet.None
}

func (e *events) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*conn)
	if c == nil {
		return gnet.None // refused in OnOpen
	}
	gc.SetContext(nil)
	c.onClose(err)
	return gnet.None
}

// OnTick runs on gnet's ticker goroutine, not on a loop, and touches only
// atomics, ticker-owned fields and goroutine-safe gnet calls. A connection is
// idle when no tick has seen it active for IdleTimeout: never early, at most
// one tick late, however late the ticks run.
func (e *events) OnTick() (time.Duration, gnet.Action) {
	s := e.s
	now := time.Now().UnixNano()
	limit := now - int64(s.cfg.IdleTimeout)
	var idle []*conn
	s.mu.Lock()
	for _, c := range s.conns {
		if c.active.Swap(false) {
			c.seenActive = now
		} else if c.seenActive < limit {
			idle = append(idle, c)
		}
	}
	s.mu.Unlock()
	for _, c := range idle {
		c.closeAsync(CloseIdle)
	}
	return s.cfg.tickInterval(), gnet.None
}

// gnetLogger sends gnet's own logs to zerolog. gnet's Info lines (engine
// launch) go to Debug: netloop logs its own lifecycle.
type gnetLogger struct{ l zerolog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) { g.l.Debug().Msgf(format, args...) }
func (g gnetLogger) Infof(format string, args ...any)  { g.l.Debug().Msgf(format, args...) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.l.Warn().Msgf(format, args...) }
func (g gnetLogger) Errorf(format string, args ...any) { g.l.Error().Msgf(format, args...) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.l.Error().Msgf(format, args...) }
