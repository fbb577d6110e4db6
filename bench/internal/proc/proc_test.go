package proc

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses must not shift the fields.
	stat := "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 8 0 100 0 0\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := 4 * time.Second; got != want { // (250+150) ticks at 100 Hz
		t.Fatalf("cpu = %v, want %v", got, want)
	}
	if _, err := parseStatCPU([]byte("1234 (x) S 1")); err == nil {
		t.Error("short stat: want an error")
	}
}

func TestStatusKB(t *testing.T) {
	status := "Name:\tklite\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\n"
	got, err := statusKB([]byte(status), "VmRSS:")
	if err != nil || got != 12345<<10 {
		t.Fatalf("VmRSS = %d, %v; want %d", got, err, 12345<<10)
	}
	if _, err := statusKB([]byte(status), "VmSwap:"); err == nil {
		t.Error("missing key: want an error")
	}
}

func TestReadSelf(t *testing.T) {
	u, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.RSSBytes <= 0 {
		t.Errorf("own RSS = %d, want positive", u.RSSBytes)
	}
	s := StartSampler(os.Getpid(), time.Millisecond)
	peak, err := s.Stop()
	if err != nil || peak <= 0 {
		t.Errorf("sampler peak %d, err %v", peak, err)
	}
}

func TestMountOf(t *testing.T) {
	mi := "22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n" +
		"30 22 0:26 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw\n" +
		"31 22 0:27 / /tmp\\040x rw - xfs /dev/vdb rw\n"
	cases := []struct{ path, mount, fstype, src string }{
		{"/work/main", "/", "ext4", "/dev/vda"},
		{"/tmp/klite-bench-1", "/tmp", "tmpfs", "tmpfs"},
		{"/tmpfoo", "/", "ext4", "/dev/vda"},
		{"/tmp x/wal", "/tmp x", "xfs", "/dev/vdb"},
	}
	for _, c := range cases {
		m, f, s := mountOf([]byte(mi), c.path)
		if m != c.mount || f != c.fstype || s != c.src {
			t.Errorf("mountOf(%q) = %q %q %q, want %q %q %q", c.path, m, f, s, c.mount, c.fstype, c.src)
		}
	}
}

func TestDescribe(t *testing.T) {
	m := Describe(t.TempDir())
	if m.Cores < 1 || m.GoVersion == "" || m.MemBytes <= 0 || m.Kernel == "" || m.FSType == "" {
		t.Errorf("incomplete machine description: %+v", m)
	}
}

func TestParseSystemBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  100 10 50 9000 40 5 5 30 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
	got, err := parseSystemBusy([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * time.Second; got != want { // 100+10+50+5+5+30 = 200 ticks
		t.Fatalf("busy = %v, want %v", got, want)
	}
	if _, err := parseSystemBusy([]byte("intr 1 2 3\n")); err == nil {
		t.Error("no cpu line: want an error")
	}
	if _, err := SystemBusy(); err != nil {
		t.Errorf("SystemBusy on this machine: %v", err)
	}
	if LoadAvg() == "" {
		t.Error("LoadAvg on this machine: empty")
	}
}
