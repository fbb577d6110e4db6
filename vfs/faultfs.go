package vfs

import (
	"errors"
	"path"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// OpKind names a file system operation FaultFS can fail.
type OpKind int

const (
	OpCreate OpKind = iota
	OpOpen
	OpRemove
	OpRename
	OpMkdir
	OpList
	OpSyncDir
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpAllocate
	OpClose
)

var opNames = [...]string{"create", "open", "remove", "rename", "mkdir", "list", "syncdir", "read", "write", "sync", "truncate", "allocate", "close"}

func (k OpKind) String() string {
	if int(k) < len(opNames) {
		return opNames[k]
	}
	return "op?"
}

// Op describes one operation about to run on a FaultFS.
type Op struct {
	Kind OpKind
	Name string // path of the file or directory
	Off  int64  // reads and writes
	Len  int    // reads and writes
}

// ShortWrite, returned by an injector for a write, makes the write store
// only its first N bytes and then fail with Err (a torn or partial write,
// as when the disk fills mid-write).
type ShortWrite struct {
	N   int
	Err error
}

func (e *ShortWrite) Error() string { return "short write: " + e.Err.Error() }
func (e *ShortWrite) Unwrap() error { return e.Err }

// ErrInjected is the default injected failure.
var ErrInjected = errors.New("vfs: injected fault")

// ErrNoSpace is ENOSPC, for injecting a full disk.
var ErrNoSpace error = unix.ENOSPC

// FaultFS wraps an FS and consults an injector before each operation: a
// non-nil error fails the operation without running it (or, for a
// *ShortWrite, after running part of it). After, when set, sees each
// operation's outcome, which tests use to observe ordering (for example
// that a durable ack never precedes its fsync).
//
// An open file's operations carry its current path: a Rename renames the
// files open under the old name too, so a segment prepared as .wal.prep
// and renamed into place is seen as .wal.
type FaultFS struct {
	FS FS

	mu     sync.Mutex
	inject func(Op) error
	after  func(Op, error)
	open   map[*faultFile]struct{} // guarded by mu
	counts [len(opNames)]atomic.Int64
}

// NewFaultFS wraps inner with no faults set.
func NewFaultFS(inner FS) *FaultFS { return &FaultFS{FS: inner} }

var _ FS = (*FaultFS)(nil)

// SetInjector sets the function consulted before every operation; nil
// clears it.
func (f *FaultFS) SetInjector(fn func(Op) error) {
	f.mu.Lock()
	f.inject = fn
	f.mu.Unlock()
}

// SetAfter sets the function told each operation's outcome.
func (f *FaultFS) SetAfter(fn func(Op, error)) {
	f.mu.Lock()
	f.after = fn
	f.mu.Unlock()
}

// Count is how many operations of kind have been attempted.
func (f *FaultFS) Count(kind OpKind) int64 { return f.counts[kind].Load() }

// FailNth returns an injector that fails the nth (1-based) operation of
// kind whose path matches the glob pattern ("" matches all) with err.
func FailNth(kind OpKind, pattern string, n int64, err error) func(Op) error {
	var seen atomic.Int64
	return func(op Op) error {
		if op.Kind != kind || !MatchBase(pattern, op.Name) {
			return nil
		}
		if seen.Add(1) == n {
			return err
		}
		return nil
	}
}

// FailFrom is like FailNth but fails the nth and every later match.
func FailFrom(kind OpKind, pattern string, n int64, err error) func(Op) error {
	var seen atomic.Int64
	return func(op Op) error {
		if op.Kind != kind || !MatchBase(pattern, op.Name) {
			return nil
		}
		if seen.Add(1) >= n {
			return err
		}
		return nil
	}
}

// MatchBase reports whether the base name of name matches the glob
// pattern (path.Match); "" matches every name.
func MatchBase(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, path.Base(name))
	return ok
}

func (f *FaultFS) before(op Op) error {
	f.counts[op.Kind].Add(1)
	f.mu.Lock()
	fn := f.inject
	f.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(op)
}

func (f *FaultFS) done(op Op, err error) {
	f.mu.Lock()
	fn := f.after
	f.mu.Unlock()
	if fn != nil {
		fn(op, err)
	}
}

func (f *FaultFS) run(op Op, fn func() error) error {
	err := f.before(op)
	if err == nil {
		err = fn()
	}
	f.done(op, err)
	return err
}

func (f *FaultFS) wrap(name string, file File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	ff := &faultFile{fs: f, f: file}
	ff.name.Store(&name)
	f.mu.Lock()
	if f.open == nil {
		f.open = map[*faultFile]struct{}{}
	}
	f.open[ff] = struct{}{}
	f.mu.Unlock()
	return ff, nil
}

func (f *FaultFS) Create(name string) (File, error) {
	var file File
	err := f.run(Op{Kind: OpCreate, Name: name}, func() (err error) { file, err = f.FS.Create(name); return })
	return f.wrap(name, file, err)
}

func (f *FaultFS) OpenRW(name string) (File, error) {
	var file File
	err := f.run(Op{Kind: OpOpen, Name: name}, func() (err error) { file, err = f.FS.OpenRW(name); return })
	return f.wrap(name, file, err)
}

func (f *FaultFS) Open(name string) (File, error) {
	var file File
	err := f.run(Op{Kind: OpOpen, Name: name}, func() (err error) { file, err = f.FS.Open(name); return })
	return f.wrap(name, file, err)
}

func (f *FaultFS) Remove(name string) error {
	return f.run(Op{Kind: OpRemove, Name: name}, func() error { return f.FS.Remove(name) })
}

func (f *FaultFS) Rename(oldname, newname string) error {
	err := f.run(Op{Kind: OpRename, Name: newname}, func() error { return f.FS.Rename(oldname, newname) })
	if err == nil {
		f.mu.Lock()
		for ff := range f.open {
			if *ff.name.Load() == oldname {
				ff.name.Store(&newname)
			}
		}
		f.mu.Unlock()
	}
	return err
}

func (f *FaultFS) MkdirAll(dir string) error {
	return f.run(Op{Kind: OpMkdir, Name: dir}, func() error { return f.FS.MkdirAll(dir) })
}

func (f *FaultFS) List(dir string) ([]string, error) {
	var names []string
	err := f.run(Op{Kind: OpList, Name: dir}, func() (err error) { names, err = f.FS.List(dir); return })
	return names, err
}

func (f *FaultFS) SyncDir(dir string) error {
	return f.run(Op{Kind: OpSyncDir, Name: dir}, func() error { return f.FS.SyncDir(dir) })
}

type faultFile struct {
	fs   *FaultFS
	f    File
	name atomic.Pointer[string] // current path; Rename updates it
}

func (f *faultFile) ReadAt(b []byte, off int64) (n int, err error) {
	op := Op{Kind: OpRead, Name: *f.name.Load(), Off: off, Len: len(b)}
	err = f.fs.run(op, func() (err error) { n, err = f.f.ReadAt(b, off); return })
	return n, err
}

func (f *faultFile) WriteAt(b []byte, off int64) (n int, err error) {
	op := Op{Kind: OpWrite, Name: *f.name.Load(), Off: off, Len: len(b)}
	err = f.fs.before(op)
	var sw *ShortWrite
	switch {
	case err == nil:
		n, err = f.f.WriteAt(b, off)
	case errors.As(err, &sw):
		n, _ = f.f.WriteAt(b[:min(max(sw.N, 0), len(b))], off)
		err = sw.Err
	}
	f.fs.done(op, err)
	return n, err
}

func (f *faultFile) Sync() error {
	return f.fs.run(Op{Kind: OpSync, Name: *f.name.Load()}, f.f.Sync)
}

func (f *faultFile) Size() (int64, error) { return f.f.Size() }

func (f *faultFile) Truncate(size int64) error {
	return f.fs.run(Op{Kind: OpTruncate, Name: *f.name.Load(), Off: size}, func() error { return f.f.Truncate(size) })
}

func (f *faultFile) Allocate(off, n int64) error {
	return f.fs.run(Op{Kind: OpAllocate, Name: *f.name.Load(), Off: off, Len: int(n)}, func() error { return f.f.Allocate(off, n) })
}

// DropCache passes through: it changes no data, so there is nothing to fault.
func (f *faultFile) DropCache(off, n int64) error { return f.f.DropCache(off, n) }

func (f *faultFile) Fd() uintptr { return f.f.Fd() }

func (f *faultFile) Close() error {
	f.fs.mu.Lock()
	delete(f.fs.open, f)
	f.fs.mu.Unlock()
	return f.fs.run(Op{Kind: OpClose, Name: *f.name.Load()}, f.f.Close)
}
