package vfs

import (
	"errors"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// TmpSuffix is appended to a file's name while WriteFile writes it. A
// store that lists its directory ignores (or removes) names ending in it.
const TmpSuffix = ".tmp"

// WriteFile durably replaces the file name with data: it writes data to
// name+TmpSuffix, syncs it, renames it over name and syncs name's
// directory.
//
// When WriteFile returns nil, name holds exactly data, and so does a crash
// at any later point. When it fails, or the machine crashes while it runs,
// name holds either its previous contents (nothing, if it did not exist)
// or data, never a mix or a torn write. A temporary file may be left
// behind; it is removed on failure when possible and overwritten by the
// next WriteFile of name. Callers serialize WriteFile calls for one name,
// and the directory must exist durably (see MkdirAllSync).
func WriteFile(fs FS, name string, data []byte) error {
	return writeFile(fs, name, data, false)
}

// WritePrivateFile is WriteFile for a secret: on a file system that keeps
// permissions (OSFS) the file is made readable and writable by its owner
// only (0600) before any of data is written to it.
func WritePrivateFile(fs FS, name string, data []byte) error {
	return writeFile(fs, name, data, true)
}

// chmoder is a File whose permissions can be set (OSFS's).
type chmoder interface{ Chmod(os.FileMode) error }

func writeFile(fs FS, name string, data []byte, private bool) error {
	tmp := name + TmpSuffix
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if c, ok := f.(chmoder); ok && private {
		err = c.Chmod(0o600)
	}
	if err == nil {
		_, err = f.WriteAt(data, 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, name)
	}
	if err == nil {
		err = fs.SyncDir(path.Dir(path.Clean(name)))
	}
	if err != nil {
		_ = fs.Remove(tmp)
	}
	return err
}

// MkdirAllSync creates dir and any missing parents, then syncs the parent
// of every directory on the path, so that once it returns nil dir exists
// after a crash. Every parent is synced, not only those of directories this
// call created: one created by a process killed before it synced is there
// but not yet durable. Each sync may cost a disk cache flush, so call it
// once per directory tree, not per file. A parent whose file system cannot
// sync directories (EINVAL: a read-only root such as squashfs above a
// mounted data directory) is skipped; nothing can be created there.
// Files later created in dir still need a SyncDir(dir) (WriteFile does it).
func MkdirAllSync(fs FS, dir string) error {
	dir = path.Clean(dir)
	if err := fs.MkdirAll(dir); err != nil {
		return err
	}
	for d := dir; ; {
		parent := path.Dir(d)
		if parent == d {
			return nil
		}
		if err := fs.SyncDir(parent); err != nil && !errors.Is(err, unix.EINVAL) {
			return err
		}
		d = parent
	}
}

// ReadFile returns the whole contents of the file name.
func ReadFile(fs FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f)
}

// ReadAll returns the whole contents of the open file f, as long as Size
// says it is; a shorter read is an error.
func ReadAll(f File) ([]byte, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	n, err := f.ReadAt(b, 0)
	if n == len(b) {
		return b, nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}
