package scenario

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
)

// hostileMemory: a fresh klite with its default limits against clients that
// try to make it hold memory, one kind after another, reading the broker's
// peak RSS (VmHWM) after each:
//   - abandoned long polls: rounds of connections that each send as many
//     long-poll fetches as the in-flight cap lets in, on an empty
//     partition, and close;
//   - duplicate partitions: long polls listing one partition 20,000 times;
//   - size prefixes: connections that announce 100 MiB requests and send a
//     trickle of their bytes.
//
// A fetch that does not wait, sent after each round, is answered once the
// fetches before it have been handled (the broker reads them in order), so
// every round is in memory before the next one starts.
type hostileMemory struct{}

// hostileShape is how hard each kind pushes.
type hostileShape struct {
	abandonRounds, abandonConns, abandonPerConn int
	dupConns, dupPerConn, dupCopies             int
	prefixRounds, prefixConns, prefixSent       int
}

func hostileShapeFor(cfg Config) hostileShape {
	if cfg.Quick {
		return hostileShape{4, 120, 100, 2, 50, 20_000, 2, 20, 128 << 10}
	}
	return hostileShape{16, 240, 100, 4, 100, 20_000, 4, 40, 256 << 10}
}

// hostileInflight is klite's default -max-inflight-requests: more fetches
// per connection would only wait unread.
const hostileInflight = 100

func (s *hostileMemory) Name() string { return "hostile-memory" }

func (s *hostileMemory) Describe(cfg Config) string {
	h := hostileShapeFor(cfg)
	return fmt.Sprintf("Hostile clients against a fresh klite with default limits; peak RSS is VmHWM from /proc/<pid>/status after each kind. "+
		"Abandoned long polls: %d rounds of %d connections x %d fetches on an empty partition, closed at once. "+
		"Duplicate partitions: %d connections x %d long polls (2 s) listing one partition %d times. "+
		"Size prefixes: %d rounds of %d connections announcing 100 MiB and sending %d KiB of it.",
		h.abandonRounds, h.abandonConns, h.abandonPerConn, h.dupConns, h.dupPerConn, h.dupCopies,
		h.prefixRounds, h.prefixConns, h.prefixSent>>10)
}

func (s *hostileMemory) Settings(cfg Config) []report.KV {
	h := hostileShapeFor(cfg)
	return []report.KV{
		{Key: "abandoned long polls", Value: fmt.Sprint(h.abandonRounds * h.abandonConns * h.abandonPerConn)},
		{Key: "partition listings per fetch", Value: fmt.Sprint(h.dupCopies)},
		{Key: "100 MiB prefixes", Value: fmt.Sprint(h.prefixRounds * h.prefixConns)},
	}
}

func (s *hostileMemory) Close() error { return nil }

func (s *hostileMemory) Run(ctx context.Context, env *Env) (Result, error) {
	var res Result
	m := env.Brokers.Managed()
	if m == nil {
		return res, ErrNeedsManaged
	}
	dir := m.NewWALDir(s.Name())
	p, err := m.Start(ctx, dir)
	if err != nil {
		m.Cleanup(dir)
		return res, err
	}
	err = s.attack(ctx, env, p.Addr, p.PID, &res)
	_, serr := p.Stop(syscall.SIGTERM)
	if err != nil {
		return res, fmt.Errorf("%w; log tail:\n%s", err, p.LogTail())
	}
	if serr != nil {
		return res, fmt.Errorf("%w; log tail:\n%s", serr, p.LogTail())
	}
	m.Cleanup(dir)
	return res, nil
}

func (s *hostileMemory) attack(ctx context.Context, env *Env, addr string, pid int, res *Result) error {
	h := hostileShapeFor(env.Cfg)
	const topic = "hostile"
	if err := createTopic(ctx, addr, topic, 1); err != nil {
		return err
	}
	rss0, err := proc.RSS(pid)
	if err != nil {
		return err
	}
	res.Metrics = append(res.Metrics, report.Metric{Key: "rss-0", Label: "broker RSS before", Unit: report.Bytes, Value: float64(rss0)})
	peak := func(key, label string) error {
		v, err := proc.PeakRSS(pid)
		if err != nil {
			return err
		}
		res.Metrics = append(res.Metrics, report.Metric{Key: key, Label: label, Unit: report.Bytes, Value: float64(v)})
		env.Progress.Logf("%s %s: %s", progressLabel(s.Name(), env), label, report.Format(report.Bytes, float64(v)))
		return nil
	}

	// Abandoned long polls.
	var polls []byte
	for i := range min(h.abandonPerConn, hostileInflight) {
		polls = append(polls, hostileFetch(topic, 1, 3_600_000, int32(i))...)
	}
	for range h.abandonRounds {
		conns := make([]net.Conn, 0, h.abandonConns)
		for range h.abandonConns {
			c, err := dialCtx(ctx, addr)
			if err != nil {
				closeAll(conns)
				return err
			}
			conns = append(conns, c)
			if _, err := c.Write(polls); err != nil {
				closeAll(conns)
				return err
			}
		}
		closeAll(conns)
		if err := hostileBarrier(ctx, addr, topic); err != nil {
			return err
		}
	}
	if err := peak("peak-abandoned", "peak RSS after abandoned long polls"); err != nil {
		return err
	}

	// Duplicate partitions.
	dup := hostileFetch(topic, h.dupCopies, 2000, 1)
	var wg sync.WaitGroup
	errs := make(chan error, h.dupConns)
	for range h.dupConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- hostileDupConn(ctx, addr, dup, min(h.dupPerConn, hostileInflight))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return fmt.Errorf("duplicate partitions: %w", err)
		}
	}
	if err := peak("peak-duplicates", "peak RSS after duplicate-partition long polls"); err != nil {
		return err
	}

	// Size prefixes and a trickle.
	chunk := bytes.Repeat([]byte{0x5a}, 4<<10)
	prefix := binary.BigEndian.AppendUint32(nil, 100<<20)
	for range h.prefixRounds {
		conns := make([]net.Conn, 0, h.prefixConns)
		for range h.prefixConns {
			c, err := dialCtx(ctx, addr)
			if err != nil {
				closeAll(conns)
				return err
			}
			conns = append(conns, c)
			if _, err := c.Write(prefix); err != nil {
				closeAll(conns)
				return err
			}
		}
		for n := 0; n < h.prefixSent; n += len(chunk) {
			for _, c := range conns {
				if _, err := c.Write(chunk); err != nil {
					closeAll(conns)
					return err
				}
			}
		}
		if err := hostileBarrier(ctx, addr, topic); err != nil {
			closeAll(conns)
			return err
		}
		closeAll(conns)
	}
	if err := peak("peak-prefixes", "peak RSS after 100 MiB size prefixes"); err != nil {
		return err
	}
	if err := hostileBarrier(ctx, addr, topic); err != nil {
		return fmt.Errorf("broker not serving after the attack: %w", err)
	}
	rss, err := proc.RSS(pid)
	if err != nil {
		return err
	}
	res.Metrics = append(res.Metrics, report.Metric{Key: "rss-after", Label: "broker RSS after", Unit: report.Bytes, Value: float64(rss)})
	return nil
}

// hostileFetch is a Fetch v12 frame for partition 0 of topic, listed copies
// times, waiting up to maxWaitMs for a byte.
func hostileFetch(topic string, copies int, maxWaitMs, corr int32) []byte {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWaitMs, 1, 50<<20
	t := kmsg.NewFetchRequestTopic()
	t.Topic = topic
	for range copies {
		p := kmsg.NewFetchRequestTopicPartition()
		p.PartitionMaxBytes = 1 << 20
		t.Partitions = append(t.Partitions, p)
	}
	req.Topics = append(req.Topics, t)
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 0) // size, set below
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.Version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 7)
	b = append(b, "hostile"...)
	b = append(b, 0) // no header tags
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// hostileBarrier sends a fetch that does not wait and reads its answer.
func hostileBarrier(ctx context.Context, addr, topic string) error {
	c, err := dialCtx(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(hostileFetch(topic, 1, 0, 1)); err != nil {
		return err
	}
	_, err = hostileRead(c, 2*time.Minute)
	return err
}

// hostileDupConn sends n duplicate-partition long polls and reads their answers.
func hostileDupConn(ctx context.Context, addr string, frame []byte, n int) error {
	c, err := dialCtx(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		for range n {
			if _, err := c.Write(frame); err != nil {
				return
			}
		}
	}()
	for range n {
		if _, err := hostileRead(c, 2*time.Minute); err != nil {
			return err
		}
	}
	return nil
}

func hostileRead(c net.Conn, wait time.Duration) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 256<<20 {
		return nil, errors.New("response frame above 256 MiB")
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return b, err
}

func dialCtx(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}
