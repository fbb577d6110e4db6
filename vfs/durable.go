package vfs

import "path"

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
	tmp := name + TmpSuffix
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if _, err = f.WriteAt(data, 0); err == nil {
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
// after a crash. Syncing a directory that did not change costs little, and
// the file-system interface cannot tell which directories were created.
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
		if err := fs.SyncDir(parent); err != nil {
			return err
		}
		d = parent
	}
}
