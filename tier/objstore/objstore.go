// Package objstore is the object-store contract of klite's tier: the
// narrow API (put, ranged get, head, list, delete) the tier needs, its
// options and its errors. It imports nothing heavy, so the tier and each
// store implementation (tier.MemStore, tier/s3store) depend on it without
// depending on each other.
package objstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Implementations wrap them so callers test with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("objstore: object not found")
	// ErrExists: a conditional put (PutOptions.IfNoneMatch) found the key
	// already present; the object was not written.
	ErrExists = errors.New("objstore: object exists")
	// ErrRange: a ranged get asked for bytes past the end of the object.
	ErrRange = errors.New("objstore: range not satisfiable")
)

// Info describes one stored object.
type Info struct {
	Key  string
	Size int64
	// ETag as the store reports it (opaque; quoted for S3).
	ETag string
	// Modified is the last-modified time (second precision on S3).
	Modified time.Time
}

// PutOptions modify a Put.
type PutOptions struct {
	// IfNoneMatch makes the put conditional on the key not existing
	// (If-None-Match: *). A put that loses returns ErrExists. Used for
	// manifest versions so two writers can never both publish version N.
	IfNoneMatch bool
}

// Store is the narrow object API the tier needs. Keys are plain
// strings ('/' separated); implementations add no prefix of their own
// beyond what they were configured with.
//
// All methods are safe for concurrent use. Errors are ErrNotFound,
// ErrExists, ErrRange, a context error, or an opaque store error that
// retries (if any) have already given up on.
type Store interface {
	// Put stores size bytes read from body under key, replacing any
	// object there unless opts.IfNoneMatch. body must be seekable (the
	// S3 client rewinds it to sign and to retry); a body that is also an
	// io.ReaderAt is read concurrently for multipart uploads without
	// buffering.
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) error
	// GetRange reads len(p) bytes of key starting at off into p: all of
	// them or an error (ErrRange if the object is shorter). One request.
	GetRange(ctx context.Context, key string, off int64, p []byte) error
	// Head returns key's size and metadata.
	Head(ctx context.Context, key string) (Info, error)
	// List calls fn for every key with the prefix, in key (byte) order,
	// starting after startAfter ("" for all). fn returning an error stops
	// the listing and List returns that error.
	List(ctx context.Context, prefix, startAfter string, fn func(Info) error) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}
