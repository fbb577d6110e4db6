package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/klite/klite/bench/internal/broker"
)

// ErrNeedsManaged means a scenario has to start and stop the broker itself
// (idle RSS, restart) and the benchmark points at an external broker.
var ErrNeedsManaged = errors.New("scenario: needs a broker the benchmark starts (run without -brokers)")

// SkipError means a scenario cannot run here (the broker lacks the feature
// it measures, a tool it needs is missing): the run reports the reason and
// goes on without it, as for ErrNeedsManaged.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "scenario: skipped: " + e.Reason }

// Broker is a broker one scenario run talks to.
type Broker struct {
	Addr string
	PID  int // 0 when its process cannot be read (external without -broker-pid)
	stop func() error
	proc *broker.Process // nil for an external broker
}

// Stop ends the run's use of the broker: a managed one is stopped with
// SIGTERM and its WAL removed; an external one is left alone.
func (b *Broker) Stop() error {
	if b.stop == nil {
		return nil
	}
	return b.stop()
}

// Launcher hands out brokers.
type Launcher interface {
	// Broker returns a broker for one run named name.
	Broker(ctx context.Context, name string) (*Broker, error)
	// Managed returns the launcher of klite processes, or nil when the
	// benchmark points at an external broker.
	Managed() *Managed
}

// External is a broker the benchmark does not run.
type External struct {
	Addr string
	PID  int // optional: lets the benchmark read its CPU and RSS
}

func (e *External) Broker(context.Context, string) (*Broker, error) {
	return &Broker{Addr: e.Addr, PID: e.PID}, nil
}

func (e *External) Managed() *Managed { return nil }

// Managed starts klite processes, each on a fresh WAL directory under Dir.
type Managed struct {
	Binary    string
	Dir       string   // scratch root; WAL dirs and broker logs go here
	ExtraArgs []string // passed to every broker after the standard flags
	// KeepLogs keeps the broker logs of successful runs.
	KeepLogs bool

	seq atomic.Int64

	flagsOnce sync.Once
	flags     map[string]bool // what Binary -h lists; set by flagsOnce
	flagsErr  error
}

// MissingFlags returns those of names (without the dash) the broker's -h
// does not list.
func (m *Managed) MissingFlags(ctx context.Context, names ...string) ([]string, error) {
	m.flagsOnce.Do(func() { m.flags, m.flagsErr = broker.Flags(ctx, m.Binary) })
	if m.flagsErr != nil {
		return nil, m.flagsErr
	}
	var missing []string
	for _, n := range names {
		if !m.flags[n] {
			missing = append(missing, "-"+n)
		}
	}
	return missing, nil
}

// NewWALDir returns a fresh, not yet existing WAL directory path for name.
func (m *Managed) NewWALDir(name string) string {
	return filepath.Join(m.Dir, fmt.Sprintf("%s-%d", name, m.seq.Add(1)))
}

// Start runs klite on walDir and waits for its ready line.
func (m *Managed) Start(ctx context.Context, walDir string) (*broker.Process, error) {
	return m.StartWith(ctx, walDir, nil, nil)
}

// StartWith is Start with a scenario's own flags (before ExtraArgs, so the
// user's -broker-args win) and environment.
func (m *Managed) StartWith(ctx context.Context, walDir string, args, env []string) (*broker.Process, error) {
	return broker.Start(ctx, broker.Options{
		Binary:    m.Binary,
		WALDir:    walDir,
		LogPath:   walDir + ".log",
		ExtraArgs: append(slices.Clone(args), m.ExtraArgs...),
		Env:       env,
	})
}

// Cleanup removes a WAL directory and, unless KeepLogs, its log.
func (m *Managed) Cleanup(walDir string) {
	os.RemoveAll(walDir)
	if !m.KeepLogs {
		os.Remove(walDir + ".log")
	}
}

func (m *Managed) Broker(ctx context.Context, name string) (*Broker, error) {
	return m.BrokerWith(ctx, name, nil, nil)
}

// BrokerWith is Broker with a scenario's own flags and environment (see
// StartWith): a fresh klite on its own WAL, stopped and removed by Stop.
func (m *Managed) BrokerWith(ctx context.Context, name string, args, env []string) (*Broker, error) {
	dir := m.NewWALDir(name)
	p, err := m.StartWith(ctx, dir, args, env)
	if err != nil {
		m.Cleanup(dir)
		return nil, err
	}
	return &Broker{Addr: p.Addr, PID: p.PID, proc: p, stop: func() error {
		// The WAL goes whatever the exit: a broker that crashed or exited
		// badly would otherwise leave its data (GBs for an aged one).
		defer m.Cleanup(dir)
		if _, err := p.Stop(syscall.SIGTERM); err != nil {
			return fmt.Errorf("%w; log tail:\n%s", err, p.LogTail())
		}
		return nil
	}}, nil
}

func (m *Managed) Managed() *Managed { return m }

// LongLived hands one broker to every run of the scenarios that measure a
// broker that has been running for a while (produce-sweep, produce-steady,
// produce-aged-cpu): a fresh broker per run hides whatever builds up over
// gigabytes (segments, indexes, maps, heap). The broker comes from the
// inner launcher once; runs get it without a stop, so it outlives them.
// The harness calls Release where the broker's lifetime ends (after the
// group's last scenario in a round, or at the end of the benchmark):
// a managed klite is then stopped with SIGTERM and its WAL removed.
//
// With perRun (-long-lived off) every run gets a fresh broker instead,
// stopped at the end of the run as usual; each is still aged first.
type LongLived struct {
	inner  Launcher
	perRun bool

	mu   sync.Mutex // the harness runs one scenario at a time; this keeps the state honest anyway
	cur  *Broker    // the shared broker; nil before the first run and after Release. Guarded by mu.
	aged bool       // cur has taken the aging fill. Guarded by mu.
}

// NewLongLived returns a launcher that shares one broker of inner across
// runs, or, with perRun, starts a fresh one per run.
func NewLongLived(inner Launcher, perRun bool) *LongLived {
	return &LongLived{inner: inner, perRun: perRun}
}

// Broker returns the shared broker, starting it on first use. A shared
// broker that has exited is an error (with its log tail); the next call
// starts a new one.
func (l *LongLived) Broker(ctx context.Context, name string) (*Broker, error) {
	if l.perRun {
		return l.inner.Broker(ctx, name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur != nil && l.cur.proc != nil {
		select {
		case <-l.cur.proc.Exited():
			tail := l.cur.proc.LogTail()
			l.cur.Stop() // removes the WAL; the exit is the error that matters
			l.cur, l.aged = nil, false
			return nil, fmt.Errorf("scenario: the long-lived broker exited; log tail:\n%s", tail)
		default:
		}
	}
	if l.cur == nil {
		b, err := l.inner.Broker(ctx, "long-lived")
		if err != nil {
			return nil, err
		}
		l.cur, l.aged = b, false
	}
	return &Broker{Addr: l.cur.Addr, PID: l.cur.PID, proc: l.cur.proc}, nil
}

// Managed returns the inner launcher's Managed.
func (l *LongLived) Managed() *Managed { return l.inner.Managed() }

// age runs fill on the shared broker unless it has run on it already
// (per run: on every broker). fill's error leaves the broker not aged.
func (l *LongLived) age(fill func() error) error {
	if l.perRun {
		return fill()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.aged {
		return nil
	}
	if err := fill(); err != nil {
		return err
	}
	l.aged = true
	return nil
}

// Release ends the shared broker's lifetime: a managed one is stopped and
// its WAL removed. The next Broker call starts a new one.
func (l *LongLived) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil {
		return nil
	}
	b := l.cur
	l.cur, l.aged = nil, false
	return b.Stop()
}
