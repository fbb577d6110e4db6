package proc

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine describes where a benchmark ran.
type Machine struct {
	CPUModel   string
	Cores      int // logical CPUs the OS reports
	MemBytes   int64
	Kernel     string
	GoVersion  string
	FSType     string // filesystem of the WAL directory
	FSDevice   string // its source device
	FSMount    string // its mount point
	WALDirNote string // the directory measured
}

// Describe collects the machine description; dir is the WAL directory.
// Missing pieces are left empty rather than failing the run.
func Describe(dir string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), WALDirNote: dir}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(b)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemBytes, _ = statusKB(b, "MemTotal:")
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	if abs, err := filepath.Abs(dir); err == nil {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
			m.FSMount, m.FSType, m.FSDevice = mountOf(b, abs)
		}
	}
	return m
}

func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// mountOf finds the mount holding path: the longest mount point that is a
// prefix of it. mountinfo lines: id parent maj:min root mountpoint opts
// [optional...] - fstype source superopts.
func mountOf(mountinfo []byte, path string) (mount, fstype, source string) {
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if !under(path, mp) || len(mp) < len(mount) {
			continue
		}
		sep := -1
		for i := 5; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		mount, fstype, source = mp, f[sep+1], f[sep+2]
	}
	return mount, fstype, source
}

func under(path, mp string) bool {
	if mp == "/" {
		return true
	}
	return path == mp || strings.HasPrefix(path, mp+"/")
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline and backslash.
func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}
