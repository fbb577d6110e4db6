package main

// Hostile clients against the real binary, with the broker's memory read
// from /proc/PID/status. Each bound is the broker's resident memory before
// the attack plus what the configured caps let the attack hold, generously;
// without the caps (or with the leak they close) the same attack holds
// several times more.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const mib = 1 << 20

// raceBroker: the broker runs under the race detector, which multiplies its
// memory and slows it severalfold. The memory tests then run a smaller
// attack for the detector's sake and only log the figures.
var raceBroker = os.Getenv("KLITE_TEST_RACE") != ""

// checkPeak fails the test when peak is above bound, unless the broker runs
// under the race detector.
func checkPeak(t *testing.T, what string, peak, bound int64) {
	t.Helper()
	if peak <= bound {
		return
	}
	if raceBroker {
		t.Logf("%s %d MiB above %d MiB, not checked under the race detector", what, peak/mib, bound/mib)
		return
	}
	t.Errorf("%s %d MiB above %d MiB", what, peak/mib, bound/mib)
}

// scaled returns n, or n/div under the race detector.
func scaled(n, div int) int {
	if raceBroker {
		return max(1, n/div)
	}
	return n
}

// procMem is what /proc/PID/status says about a process's memory, in bytes.
type procMem struct {
	rss  int64 // VmRSS: resident now
	hwm  int64 // VmHWM: peak resident
	data int64 // VmData: private writable mappings (Go's mapped heap), resident or not
}

// memStatus reads a process's memory figures.
func memStatus(t testing.TB, pid int) procMem {
	t.Helper()
	var m procMem
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = kb << 10
		case "VmHWM:":
			m.hwm = kb << 10
		case "VmData:":
			m.data = kb << 10
		}
	}
	if m.rss == 0 || m.hwm == 0 || m.data == 0 {
		t.Fatalf("no VmRSS/VmHWM/VmData in /proc/%d/status", pid)
	}
	return m
}

// fetchFrame encodes a Fetch v12 request for partition 0 of topic, listed
// copies times, as one size-prefixed frame.
func fetchFrame(topic string, copies int, offset int64, maxWaitMs int32, corr int32) []byte {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWaitMs, 1, 50*mib
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	for range copies {
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition, p.FetchOffset, p.PartitionMaxBytes = 0, offset, mib
		ft.Partitions = append(ft.Partitions, p)
	}
	req.Topics = append(req.Topics, ft)
	return reqFrame(1, 12, corr, true, req.AppendTo(nil))
}

// fetchBarrier sends a fetch that does not wait and reads its answer.
func fetchBarrier(t testing.TB, addr, topic string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(fetchFrame(topic, 1, 0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	if _, err := readFrameMax(c, 64*mib); err != nil {
		t.Fatalf("barrier fetch: %v", err)
	}
}

// waitServing waits until a fresh connection is served: the broker has
// worked through what the attack sent before it.
func waitServing(t testing.TB, addr string) {
	t.Helper()
	waitFor(t, 2*time.Minute, "the broker to serve a new connection", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		if _, err := c.Write(reqFrame(18, 0, 1, false, nil)); err != nil {
			return false
		}
		_, err = readFrame(c)
		return err == nil
	})
}

// TestMemoryAbandonedLongPolls: 24,000 long-poll fetches (240 connections,
// 100 each: the in-flight cap) on an empty partition, whose connections then
// close, sixteen times over (384,000 in all). A fetch must be dropped when
// its connection closes: the broker holds one round of them, not sixteen.
// The wait cap is set far above the test's length so that only the close
// frees them.
func TestMemoryAbandonedLongPolls(t *testing.T) {
	const conns, perConn = 240, 100
	rounds := scaled(16, 8)
	// A waiting fetch costs about 2 KiB (request, parsed fetch, watcher,
	// timer; the frame is given back once parsed); 12 KiB each covers the
	// garbage collector's headroom and a round whose closes are still being
	// handled when the next arrives.
	const perFetch = 12 << 10
	b := startBroker(t, "-max-fetch-wait", "1h", "-max-inflight-requests", strconv.Itoa(perConn))
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), "abandoned", 1)
	pid := b.cmd.Process.Pid
	base := memStatus(t, pid).rss

	var frames []byte
	for i := range perConn {
		frames = append(frames, fetchFrame("abandoned", 1, 0, 3_600_000, int32(i))...)
	}
	for range rounds {
		cs := make([]net.Conn, 0, conns)
		for range conns {
			cs = append(cs, sendFrames(t, b.addr, frames))
		}
		for _, c := range cs {
			c.Close()
		}
		// Fetches are read in arrival order by a bounded set of workers:
		// one sent now is answered once those before it have been handled.
		fetchBarrier(t, b.addr, "abandoned")
	}
	bound := base + conns*perConn*perFetch
	m := memStatus(t, pid)
	t.Logf("RSS before %d MiB, after %d MiB, peak %d MiB; bound %d MiB (%d fetches abandoned)",
		base/mib, m.rss/mib, m.hwm/mib, bound/mib, conns*perConn*rounds)
	checkPeak(t, "peak RSS (abandoned long polls kept?)", m.hwm, int64(bound))
	b.stop()
}

// TestMemoryDuplicatePartitions: long-poll fetches that list one partition
// 20,000 times, 100 per connection (the in-flight cap) on four connections.
// Kafka serves a partition listed twice once (its fetch data is a map keyed
// by partition), so each waits with one watcher and its response names the
// partition once; and the frame (644 KiB) is given back once parsed, so the
// frames held stay under -max-queued-request-bytes.
func TestMemoryDuplicatePartitions(t *testing.T) {
	const copies, conns = 20_000, 4
	perConn := scaled(100, 10)
	const queued = 32 * mib
	b := startBroker(t, "-max-queued-request-bytes", strconv.Itoa(queued))
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), "dups", 1)
	pid := b.cmd.Process.Pid
	base := memStatus(t, pid).rss

	// Each waits 2 s on the empty partition; a connection's 100 are parsed
	// long before the first times out, so they all wait at once.
	frame := fetchFrame("dups", copies, 0, 2000, 1)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", b.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			go func() {
				for range perConn {
					if _, err := c.Write(frame); err != nil {
						return // the read below reports it
					}
				}
			}()
			for range perConn {
				c.SetReadDeadline(time.Now().Add(2 * time.Minute))
				resp, err := readFrameMax(c, 256*mib)
				if err != nil {
					errs <- err
					return
				}
				var fr kmsg.FetchResponse
				fr.Version = 12
				if err := fr.ReadFrom(resp[5:]); err != nil { // correlation id, header tags
					errs <- err
					return
				}
				if n := len(fr.Topics); n != 1 || len(fr.Topics[0].Partitions) != 1 {
					n = 0
					for _, t := range fr.Topics {
						n += len(t.Partitions)
					}
					errs <- fmt.Errorf("response names %d partitions for one partition listed %d times, want 1", n, copies)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	// Frames under the cap (passed by at most one frame per connection),
	// parsed copies of them, and 64 MiB for the runtime.
	frames := int64(queued + conns*len(frame))
	bound := base + 3*frames + 64*mib
	m := memStatus(t, pid)
	t.Logf("RSS before %d MiB, after %d MiB, peak %d MiB; bound %d MiB (frame %d KiB)",
		base/mib, m.rss/mib, m.hwm/mib, bound/mib, len(frame)>>10)
	for err := range errs {
		t.Error(err)
	}
	checkPeak(t, "peak RSS", m.hwm, bound)
	b.stop()
}

// readFrameMax reads one response frame of at most limit bytes.
func readFrameMax(c net.Conn, limit uint32) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > limit {
		return nil, fmt.Errorf("response frame of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return b, err
}

// TestMemorySizePrefixTrickle: many connections each announce a 100 MiB
// request and then send its bytes slowly, a few KiB at a time, round after
// round. What a connection costs must follow the bytes it has sent: the
// broker must not take a 100 MiB buffer (a 128 MiB pooled one) per size
// prefix. Pages never written are not resident, so RSS alone barely shows
// such a buffer; the heap the process maps for it (VmData) does, and so
// does the garbage collector, which paces itself on that heap. Both are
// bounded: RSS by the bytes sent, VmData by them plus the
// -max-queued-request-bytes cap.
func TestMemorySizePrefixTrickle(t *testing.T) {
	const conns, sent = 40, 256 << 10
	rounds := scaled(4, 2)
	const queued = 16 * mib
	b := startBroker(t, "-max-queued-request-bytes", strconv.Itoa(queued))
	pid := b.cmd.Process.Pid
	base := memStatus(t, pid)

	chunk := bytes.Repeat([]byte{0x5a}, 4<<10)
	peakData := base.data
	for round := range rounds {
		cs := make([]net.Conn, 0, conns)
		for range conns {
			cs = append(cs, sendFrames(t, b.addr, sizePrefix(100*mib)))
		}
		for n := 0; n < sent; n += len(chunk) {
			for _, c := range cs {
				if _, err := c.Write(chunk); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
		waitServing(t, b.addr) // every chunk sent so far has been read
		peakData = max(peakData, memStatus(t, pid).data)
		for _, c := range cs {
			c.Close()
		}
	}
	waitServing(t, b.addr)
	// Every byte sent may be held (in a growing frame buffer, or unparsed in
	// gnet's buffer while the connection waits for the cap), twice over for
	// buffer growth, plus the runtime's 64 MiB.
	held := int64(2*conns*sent + 64*mib)
	m := memStatus(t, pid)
	t.Logf("RSS before %d MiB, after %d MiB, peak %d MiB; heap mapped (VmData) before %d MiB, peak %d MiB; bounds %d MiB and %d MiB",
		base.rss/mib, m.rss/mib, m.hwm/mib, base.data/mib, peakData/mib, (base.rss+held)/mib, (base.data+held+queued)/mib)
	checkPeak(t, "peak RSS", m.hwm, base.rss+held)
	checkPeak(t, "heap mapped (size prefixes reserve memory?)", peakData, base.data+held+queued)
	b.stop()
}

// TestMemoryStalledPartialFrames: a few connections each send most of a
// large frame (together past -max-queued-request-bytes) and then stall, as
// a client that trickles a byte now and then would. Frames still being
// read must not hold every other connection back: before the fix no new
// frame was admitted anywhere until those completed or their connections
// closed (the idle timeout, 10 minutes, which a trickle defeats), so the
// whole broker stopped serving after 32 MiB from one client. Their bytes
// are bounded per connection (the frame size cap), and RSS by what was sent.
func TestMemoryStalledPartialFrames(t *testing.T) {
	const conns, sent = 4, 8 * mib
	const queued = 16 * mib
	b := startBroker(t, "-max-queued-request-bytes", strconv.Itoa(queued))
	pid := b.cmd.Process.Pid
	base := memStatus(t, pid)
	chunk := bytes.Repeat([]byte{0x5a}, 256<<10)
	for range conns {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(sizePrefix(64 * mib)); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < sent; n += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitServing(t, b.addr)
	// Every byte sent may be held, twice over for buffer growth, plus the
	// runtime's 64 MiB.
	bound := base.rss + 2*conns*sent + 64*mib
	m := memStatus(t, pid)
	t.Logf("RSS before %d MiB, after %d MiB, peak %d MiB; bound %d MiB", base.rss/mib, m.rss/mib, m.hwm/mib, bound/mib)
	checkPeak(t, "peak RSS", m.hwm, int64(bound))
	b.stop()
}

// sendFrames dials addr and writes b (whole request frames, or a prefix of
// one) on the new connection, which it returns open.
func sendFrames(t testing.TB, addr string, b []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}
