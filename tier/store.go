package tier

import (
	"context"
	"errors"

	"github.com/klite/klite/tier/objstore"
)

// The object-store contract lives in tier/objstore (so store
// implementations need not import tier); these names keep it in tier's
// vocabulary.
type (
	// ObjectStore is objstore.Store: put, ranged get, head, list, delete.
	ObjectStore = objstore.Store
	// ObjectInfo is objstore.Info.
	ObjectInfo = objstore.Info
	// PutOptions is objstore.PutOptions.
	PutOptions = objstore.PutOptions
)

// Sentinel errors. Stores wrap them so callers test with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = objstore.ErrNotFound
	// ErrExists: a conditional put (PutOptions.IfNoneMatch) found the key
	// already present; the object was not written.
	ErrExists = objstore.ErrExists
	// ErrRange: a ranged get asked for bytes past the end of the object.
	ErrRange = objstore.ErrRange
	// ErrCorrupt: an object failed its magic, version, length or CRC checks.
	ErrCorrupt = errors.New("tier: corrupt object")
)

// Get reads a whole object (small objects: manifests, pointers).
// maxBytes bounds the allocation; a larger object is ErrCorrupt.
func Get(ctx context.Context, s ObjectStore, key string, maxBytes int64) ([]byte, error) {
	info, err := s.Head(ctx, key)
	if err != nil {
		return nil, err
	}
	if info.Size > maxBytes {
		return nil, errors.Join(ErrCorrupt, errors.New("tier: "+key+" larger than limit"))
	}
	p := make([]byte, info.Size)
	if len(p) == 0 {
		return p, nil
	}
	if err := s.GetRange(ctx, key, 0, p); err != nil {
		return nil, err
	}
	return p, nil
}
