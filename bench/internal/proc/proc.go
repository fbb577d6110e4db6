// Package proc reads what the kernel knows about a process (CPU time, RSS)
// and about the machine (CPU model, memory, filesystem, kernel), from /proc.
package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (the kernel fixes it for
// user space regardless of CONFIG_HZ).
const clockTicks = 100

// Usage is a process's cumulative CPU time and its current resident set.
type Usage struct {
	CPU      time.Duration // utime + stime
	RSSBytes int64         // VmRSS
}

// Read returns pid's usage now.
func Read(pid int) (Usage, error) {
	cpu, err := CPU(pid)
	if err != nil {
		return Usage{}, err
	}
	rss, err := RSS(pid)
	if err != nil {
		return Usage{}, err
	}
	return Usage{CPU: cpu, RSSBytes: rss}, nil
}

// CPU returns utime+stime of pid from /proc/<pid>/stat.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads fields 14 and 15 (utime, stime). The command name in
// field 2 is in parentheses and may hold spaces, so count from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc: malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc: short stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc: bad utime/stime %q %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// RSS returns VmRSS of pid in bytes from /proc/<pid>/status.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return statusKB(b, "VmRSS:")
}

// statusKB returns the "<key> <n> kB" line of a status or meminfo file in bytes.
func statusKB(b []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		f := strings.Fields(line[len(key):])
		if len(f) == 0 {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc: bad %s %q", key, f[0])
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("proc: no %s", key)
}

// Sampler polls a process's RSS while a scenario runs and keeps the peak.
type Sampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	peakRSS int64 // guarded by mu
	last    Usage // guarded by mu
	err     error // guarded by mu
}

// StartSampler polls pid every interval until Stop.
func StartSampler(pid int, interval time.Duration) *Sampler {
	s := &Sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *Sampler) sample() {
	u, err := Read(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	s.last = u
	s.peakRSS = max(s.peakRSS, u.RSSBytes)
}

// Last returns the latest sample.
func (s *Sampler) Last() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Stop ends polling, takes a final sample and returns the peak RSS and the
// first read error, if any (the process may have exited).
func (s *Sampler) Stop() (peakRSS int64, err error) {
	close(s.stop)
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakRSS, s.err
}

// SystemBusy returns the CPU time all CPUs have spent not idle since boot,
// from the first line of /proc/stat (user, nice, system, irq, softirq,
// steal; idle and iowait excluded). Less a scenario's broker and client CPU,
// it is what other work on a shared machine took.
func SystemBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseSystemBusy(b)
}

func parseSystemBusy(b []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("proc: malformed /proc/stat")
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc: bad /proc/stat field %q", v)
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// LoadAvg returns /proc/loadavg's first three fields as written.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// PeakRSS returns VmHWM of pid in bytes: the highest RSS since it started.
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return statusKB(b, "VmHWM:")
}

// WriteBytes returns write_bytes of pid from /proc/<pid>/io: the bytes the
// process caused to be sent to the storage layer.
func WriteBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("proc: no write_bytes in /proc/%d/io", pid)
}
