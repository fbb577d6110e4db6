package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// FS is every file operation the store performs. The store never touches
// the os package directly, so tests can inject faults (FaultFS) and
// simulate crashes (MemFS.CrashClone).
type FS interface {
	// Create creates or truncates name for reading and writing.
	Create(name string) (File, error)
	// OpenRW opens an existing file for reading and writing.
	OpenRW(name string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	MkdirAll(dir string) error
	// List returns the names (not paths) of the entries in dir, sorted.
	List(dir string) ([]string, error)
	// SyncDir makes renames, creations and removals in dir durable,
	// including new subdirectories (see MkdirAllSync).
	SyncDir(dir string) error
}

// File is an open file. Writes are positional (pwrite): the store tracks
// positions itself, and readers share the file with the writer.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes written data durable (fdatasync: file size and data, not
	// timestamps).
	Sync() error
	// Size is the file's current length.
	Size() (int64, error)
	Truncate(size int64) error
	// Allocate reserves [off, off+n) on disk so later writes there do not
	// fail with ENOSPC. The reserved range reads as zeros.
	Allocate(off, n int64) error
	// DropCache tells the kernel that [off, off+n) will not be read soon,
	// so its clean cached pages can be freed (posix_fadvise DONTNEED).
	// Advisory: the data stays in the file.
	DropCache(off, n int64) error
	// Fd is the kernel descriptor for sendfile, or ^uintptr(0) when there
	// is none (in-memory files).
	Fd() uintptr
	Close() error
}

// NoFd is what File.Fd returns for files without a kernel descriptor.
const NoFd = ^uintptr(0)

// OSFS is the FS of the operating system.
type OSFS struct{}

var _ FS = OSFS{}

func (OSFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f, fd: f.Fd()}, nil
}

func (OSFS) OpenRW(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f, fd: f.Fd()}, nil
}

func (OSFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f, fd: f.Fd()}, nil
}

func (OSFS) Remove(name string) error             { return os.Remove(name) }
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (OSFS) MkdirAll(dir string) error            { return os.MkdirAll(dir, 0o755) }

func (OSFS) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// osFile caches the descriptor: (*os.File).Fd would switch the file to
// blocking mode on every call, and sendfile asks for it on every fetch.
type osFile struct {
	f  *os.File
	fd uintptr
}

func (f *osFile) ReadAt(b []byte, off int64) (int, error)  { return f.f.ReadAt(b, off) }
func (f *osFile) Chmod(mode os.FileMode) error             { return f.f.Chmod(mode) }
func (f *osFile) WriteAt(b []byte, off int64) (int, error) { return f.f.WriteAt(b, off) }
func (f *osFile) Truncate(size int64) error                { return f.f.Truncate(size) }
func (f *osFile) Fd() uintptr                              { return f.fd }
func (f *osFile) Close() error                             { return f.f.Close() }

func (f *osFile) Sync() error {
	for {
		err := unix.Fdatasync(int(f.fd))
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func (f *osFile) Size() (int64, error) {
	st, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (f *osFile) DropCache(off, n int64) error {
	return unix.Fadvise(int(f.fd), off, n, unix.FADV_DONTNEED)
}

func (f *osFile) Allocate(off, n int64) error {
	for {
		err := unix.Fallocate(int(f.fd), 0, off, n)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
