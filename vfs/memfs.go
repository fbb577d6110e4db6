package vfs

import (
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
)

// MemFS is an in-memory FS for tests that models what survives a crash:
// file contents survive up to their last Sync, and names (creations,
// renames, removals of files, creations of directories) up to the last
// SyncDir of the directory holding them; a name survives only if its
// directory does. Writes made after the last Sync may survive whole, in
// part (torn, by 512-byte sectors) or not at all; see CrashClone.
//
// Paths are cleaned with path.Clean; "/" and "." always exist durably.
type MemFS struct {
	mu          sync.Mutex
	dirs        map[string]bool     // live directories
	durableDirs map[string]bool     // directories whose entry in their parent is durable
	live        map[string]*memNode // the namespace as the process sees it
	durable     map[string]*memNode // the namespace as the disk has it
}

// NewMemFS returns an empty MemFS.
func NewMemFS() *MemFS {
	m := &MemFS{dirs: map[string]bool{}, durableDirs: map[string]bool{}, live: map[string]*memNode{}, durable: map[string]*memNode{}}
	for _, root := range []string{"/", "."} {
		m.dirs[root], m.durableDirs[root] = true, true
	}
	return m
}

// durableDir reports whether dir survives a crash: its entry and those of
// all its parents are durable. Callers hold mu.
func (m *MemFS) durableDir(dir string) bool {
	for d := dir; ; d = path.Dir(d) {
		if !m.durableDirs[d] {
			return false
		}
		if path.Dir(d) == d {
			return true
		}
	}
}

var _ FS = (*MemFS)(nil)

type memOp struct {
	off  int64
	data []byte // nil: a size change to off (truncate or allocate)
}

type memNode struct {
	mu      sync.RWMutex
	data    []byte  // what readers see
	synced  []byte  // what the disk has for sure
	pending []memOp // unsynced writes and size changes, in order
}

// CrashMode says what happens to unsynced writes in CrashClone.
type CrashMode int

const (
	// CrashDropUnsynced loses every write made after the last Sync.
	CrashDropUnsynced CrashMode = iota
	// CrashKeepUnsynced keeps every unsynced write, as if the kernel had
	// written all dirty pages back just before the crash.
	CrashKeepUnsynced
	// CrashTorn keeps each unsynced write whole, not at all, or torn (a
	// random subset of its 512-byte sectors), chosen by the seed.
	CrashTorn
)

// CrashClone returns the file system as it would be found after a power
// loss now: the durable namespace (names whose directory was synced since
// they changed, in directories that survive), each file holding its synced
// bytes plus whatever of its unsynced writes mode lets through. The
// receiver is left unchanged and may keep being used.
func (m *MemFS) CrashClone(mode CrashMode, seed uint64) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c := NewMemFS()
	for d := range m.durableDirs {
		if m.durableDir(d) {
			c.dirs[d], c.durableDirs[d] = true, true
		}
	}
	// A file reachable under two durable names after renames is cloned
	// once per name; the store never relies on hard links. Map order is
	// random, so names are visited sorted for the seed to decide alone.
	names := make([]string, 0, len(m.durable))
	for name := range m.durable {
		if c.dirs[path.Dir(name)] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		n := m.durable[name]
		n.mu.RLock()
		data := append([]byte(nil), n.synced...)
		for _, op := range n.pending {
			keep := mode == CrashKeepUnsynced || (mode == CrashTorn && rng.IntN(3) != 0)
			if !keep {
				continue
			}
			if op.data == nil {
				data = resize(data, op.off)
				continue
			}
			torn := mode == CrashTorn && rng.IntN(2) == 0
			for s := int64(0); s < int64(len(op.data)); s += 512 {
				e := min(s+512, int64(len(op.data)))
				if torn && rng.IntN(2) == 0 {
					continue
				}
				data = writeAtGrow(data, op.data[s:e], op.off+s)
			}
		}
		n.mu.RUnlock()
		nn := &memNode{data: data, synced: append([]byte(nil), data...)}
		c.durable[name] = nn
		c.live[name] = nn
	}
	return c
}

func resize(b []byte, n int64) []byte {
	if n <= int64(len(b)) {
		return b[:n]
	}
	return append(b, make([]byte, n-int64(len(b)))...)
}

func writeAtGrow(b, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[off:], p)
	return b
}

func memClean(name string) string { return path.Clean(name) }

func (m *MemFS) Create(name string) (File, error) {
	name = memClean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[path.Dir(name)] {
		return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrNotExist}
	}
	if n, ok := m.live[name]; ok {
		n.mu.Lock()
		n.data = n.data[:0]
		n.pending = append(n.pending, memOp{off: 0})
		n.mu.Unlock()
		return &memFile{n: n, name: name}, nil
	}
	n := &memNode{}
	m.live[name] = n
	return &memFile{n: n, name: name}, nil
}

func (m *MemFS) open(name string, ro bool) (File, error) {
	name = memClean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.live[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{n: n, name: name, ro: ro}, nil
}

func (m *MemFS) OpenRW(name string) (File, error) { return m.open(name, false) }
func (m *MemFS) Open(name string) (File, error)   { return m.open(name, true) }

func (m *MemFS) Remove(name string) error {
	name = memClean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.live[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(m.live, name)
	return nil
}

func (m *MemFS) Rename(oldname, newname string) error {
	oldname, newname = memClean(oldname), memClean(newname)
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.live[oldname]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	delete(m.live, oldname)
	m.live[newname] = n
	return nil
}

func (m *MemFS) MkdirAll(dir string) error {
	dir = memClean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := dir; ; d = path.Dir(d) {
		m.dirs[d] = true
		if d == "/" || d == "." {
			break
		}
	}
	return nil
}

func (m *MemFS) List(dir string) ([]string, error) {
	dir = memClean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[dir] {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: fs.ErrNotExist}
	}
	var names []string
	for name := range m.live {
		if path.Dir(name) == dir {
			names = append(names, path.Base(name))
		}
	}
	for d := range m.dirs {
		if d != dir && path.Dir(d) == dir {
			names = append(names, path.Base(d))
		}
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir makes the live names directly in dir (files and directories)
// durable, and the removals there.
func (m *MemFS) SyncDir(dir string) error {
	dir = memClean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[dir] {
		return &fs.PathError{Op: "sync", Path: dir, Err: fs.ErrNotExist}
	}
	for d := range m.dirs {
		if d != dir && path.Dir(d) == dir {
			m.durableDirs[d] = true
		}
	}
	for name := range m.durable {
		if path.Dir(name) == dir {
			if _, ok := m.live[name]; !ok {
				delete(m.durable, name)
			}
		}
	}
	for name, n := range m.live {
		if path.Dir(name) == dir {
			m.durable[name] = n
		}
	}
	return nil
}

// Files returns the live file names under dir (recursively), sorted; a
// test helper.
func (m *MemFS) Files(dir string) []string {
	dir = memClean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var names []string
	for name := range m.live {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// ReadFile returns a copy of a live file's contents; a test helper.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	f, err := m.Open(name)
	if err != nil {
		return nil, err
	}
	n := f.(*memFile).n
	n.mu.RLock()
	defer n.mu.RUnlock()
	return append([]byte(nil), n.data...), nil
}

type memFile struct {
	n      *memNode
	name   string
	ro     bool
	closed bool // not synchronized: closing while using is a caller bug
}

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	if f.closed {
		return 0, os.ErrClosed
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	f.n.mu.RLock()
	defer f.n.mu.RUnlock()
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.n.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(b []byte, off int64) (int, error) {
	if f.closed {
		return 0, os.ErrClosed
	}
	if f.ro || off < 0 {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrPermission}
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.data = writeAtGrow(f.n.data, b, off)
	f.n.pending = append(f.n.pending, memOp{off: off, data: append([]byte(nil), b...)})
	return len(b), nil
}

func (f *memFile) Sync() error {
	if f.closed {
		return os.ErrClosed
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.synced = append(f.n.synced[:0], f.n.data...)
	f.n.pending = f.n.pending[:0]
	return nil
}

func (f *memFile) Size() (int64, error) {
	if f.closed {
		return 0, os.ErrClosed
	}
	f.n.mu.RLock()
	defer f.n.mu.RUnlock()
	return int64(len(f.n.data)), nil
}

func (f *memFile) Truncate(size int64) error {
	if f.closed {
		return os.ErrClosed
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.data = resize(f.n.data, size)
	f.n.pending = append(f.n.pending, memOp{off: size})
	return nil
}

// DropCache does nothing: memory files have no page cache.
func (f *memFile) DropCache(off, n int64) error {
	if f.closed {
		return os.ErrClosed
	}
	return nil
}

func (f *memFile) Allocate(off, n int64) error {
	if f.closed {
		return os.ErrClosed
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if end := off + n; end > int64(len(f.n.data)) {
		f.n.data = resize(f.n.data, end)
		f.n.pending = append(f.n.pending, memOp{off: end})
	}
	return nil
}

func (f *memFile) Fd() uintptr { return NoFd }

func (f *memFile) Close() error {
	if f.closed {
		return os.ErrClosed
	}
	f.closed = true
	return nil
}
