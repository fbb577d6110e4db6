// Package tier keeps klite's sealed log data in an object store (S3), so
// the bucket alone describes every partition's older data, and serves cold
// reads from it.
//
// # Pieces
//
//	store.go     ObjectStore (= objstore.Store): Put (seekable body; If-None-Match), ranged Get, Head, List, Delete
//	objstore/    the object-store contract alone, so stores need not import tier
//	s3store/     s3store.Store: aws-sdk-go-v2, custom endpoint + path style, standard retryer,
//	             multipart; only cmd/klite, the bench and tests import it, so tier, storage,
//	             group and kafka do not link the SDK (s3store's TestSDKStaysInLeaf)
//	memstore.go  MemStore: in memory, fault injection (FailNth, SetLatency) for unit tests
//	format.go    data object: batches + index footer (IndexEntry, Trailer)
//	manifest.go  Manifest per partition; versioned objects + forward-only pointer
//	uploader.go  Source (implemented by storage), Uploader (flush interval, backoff), Retain
//	rewrite.go   Rewrite: compaction's replacement of a prefix by sparse objects; CleanOrphans
//	reader.go    Reader: ranged GETs of exact entries, read-ahead, byte-bounded LRU (cache.go)
//	cold.go      Cold: storage.ColdLog over Uploader+Reader; background Retain/Forget
//	snapshot.go  MetaSnapshot format, PublishSnapshot/LoadSnapshot, SnapshotLoop
//	owner.go     Owner: one broker instance per bucket prefix (claim, check, release)
//	verify.go    checks of every batch read back (CRC-32C, offsets, lengths)
//	s3fault/     fault-injecting reverse proxy for tests (503 SlowDown, reset, delay)
//
// # Bucket layout
//
//	<prefix>topics/<topic>-<topic id hex>/<partition>/data/<base:020d>-<last:020d>.klo   data objects
//	<prefix>topics/<topic>-<topic id hex>/<partition>/data/<base:020d>-<last:020d>-g<gen:010d>.klo  compacted (generation gen)
//	<prefix>topics/<topic>-<topic id hex>/<partition>/manifest/v/<seq:020d>             manifest versions
//	<prefix>topics/<topic>-<topic id hex>/<partition>/manifest/current                 pointer (a hint)
//	<prefix>meta/v/<seq:020d>, <prefix>meta/current                                    metadata snapshot
//	<prefix>owner                                                                      owner record (owner.go)
//
// Zero-padded numbers make a name sort an offset (or version) sort. The
// topic ID keeps a recreated topic's objects apart from its predecessor's.
// Formats are drawn in format.go and manifest.go; all are big-endian and
// CRC-32C protected, and a change means a new version byte.
//
// # Invariants
//
//   - Order of writes for one partition: data object (its index is a
//     footer, so data and index appear in one PUT), then manifest version
//     N+1 (If-None-Match: two writers cannot both publish N+1), then the
//     pointer, then Source.Uploaded. A crash anywhere leaves the newest
//     manifest referencing only complete objects; an object uploaded but
//     never published is an orphan, overwritten by the retry (same key,
//     same bytes) or removed by a listing GC.
//   - The pointer only moves forward and is only a hint: LoadManifest
//     lists versions after it and takes the newest.
//   - A manifest's objects are contiguous in offsets; each object's index
//     entries are contiguous in offsets and bytes. Decoders check all of
//     it, so readers binary-search without further checks.
//   - Retention publishes the shorter manifest before deleting objects.
//   - Compaction (rewrite.go) puts new objects under keys no manifest
//     used before (a new generation), publishes the manifest that swaps
//     them in for a prefix, then deletes the replaced objects. Objects
//     only lose records, never change one at an offset, so old and new
//     manifests read the same surviving records. Objects with Gen > 0 are
//     version 2 (sparse: entries contiguous in offsets and bytes, batches
//     inside with gaps); a manifest is version 2 only once it references
//     one, so never-compacted buckets stay readable by older binaries.
//     Unreferenced objects below a manifest's end (a crash between put and
//     publish, or publish and delete) are deleted before the partition's
//     next rewrite.
//   - The tiered log is contiguous from LogStartOffset: Retain past
//     NextOffset restarts it empty there, Sealed offers nothing below the
//     log start (and re-queues Retain); an upload that takes p's lock
//     before a pending restart fails that one round with ErrGap.
//   - Local data is released (Source.Uploaded) only after the manifest that
//     references it is published.
//   - Cached buffers are immutable and never reused; a slice returned by
//     Reader.Read stays valid after eviction.
//   - Nothing read back is trusted: every span a GET fetches is checked
//     (verify.go) before it is cached or served, so a batch at an offset
//     other than its index entry says, or failing its CRC-32C, is
//     ErrCorrupt and never reaches a client. Cold logs and counts every
//     failed read (Cold.Stats).
//   - One writer per prefix: every data put, manifest publish, snapshot
//     and deletion is preceded by Owner.Check; a broker that lost the
//     prefix writes nothing more (ErrNotOwner).
//   - A metadata snapshot is published only after the manifests it may
//     describe (SnapshotLoop runs after upload rounds); the newest
//     keepSnapshotVersions versions are kept.
//
// # Flush interval
//
// Source.Sealed offers everything durable (fsynced, below the high
// watermark), the active segment's recent data included. Every
// UploaderConfig.Interval, and on Kick, Run uploads all of it for every
// partition, cutting objects at ObjectBytes: data stays local-only for
// about one Interval at most, and only a round's last object per
// partition is smaller than the target. A partition with nothing new
// costs a Sealed call and no request once its manifest is loaded; the
// first load (at startup) reports the manifest's end to Source.Uploaded,
// since storage does not persist it. While the store fails, Run retries
// rounds with backoff doubling up to MaxBackoff (Warn logs are sampled);
// each partition keeps its manifest, so nothing is lost or redone beyond
// the object that failed.
//
// # Cold (storage.ColdLog)
//
// Manifest and Read go through the uploader's published manifest (nil
// when the bucket has none for p); a read that meets an object deleted by
// retention meanwhile retries once with the newer manifest (which has
// the offset below its log start, or the object is lost: storage answers
// OFFSET_OUT_OF_RANGE only below the partition's log start, else
// KAFKA_STORAGE_ERROR). Failed reads are logged and counted
// (Cold.Stats). OffsetForTime
// takes the first object whose MaxTimestamp >= ts, then the first index
// entry whose MaxTimestamp >= ts (at or above the log start), then walks
// that chunk's batch headers: the answer is a batch, as locally. Retain
// and Forget return at once; one worker per partition does the work,
// Retain calls coalescing (largest offset wins), failures retried with
// backoff until Close. Forget deletes the pointer, the manifest versions
// oldest first, then the data objects.
//
// # Ownership and disaster recovery
//
// The owner record names one broker instance (a random id the broker
// keeps in its WAL dir). A restart on the same WAL dir keeps the prefix.
// A clean stop releases it after the final upload and snapshot, so a
// broker on an empty WAL dir (disaster recovery after a clean stop, a
// move) claims it on its own. After a crash the record is still held: an
// empty WAL dir cannot tell a replacement from a second broker started by
// mistake on the same prefix, so the operator says so (cmd: -s3-take-over,
// ClaimOptions.TakeOver). A taken-over broker that still runs finds the
// record changed at its next check and stops writing, logging at Error.
// Check and put are not atomic (S3 has no compare-and-swap on a second
// key), so this detects a second writer within one check; it is no
// standby protocol.
//
// # Metadata snapshot
//
// MetaSnapshot (format in snapshot.go, big-endian, CRC-32C, every count
// bounded on decode) carries topics with IDs, configs and log starts,
// storage's producer state and group.Coordinator.ExportOffsets, both
// opaque here, and the cluster id (restored by disaster recovery, so
// tools that key on it see the same cluster). SnapshotLoop publishes one after every upload round or
// retention that published a manifest (Uploader.Published) and at least
// every Interval; PublishNow writes a final one at shutdown. Disaster
// recovery: LoadSnapshot, then LoadManifest per partition,
// storage.Restore, group.ImportOffsets, then open the coordinator.
//
// # Integration plan (storage, cmd)
//
// storage implements Source over its chunk index: Partitions() lists live
// partitions; Sealed(p, from, maxBytes) walks p's chunkIndex from the chunk
// starting at from, returning chunks below the high watermark (fsynced,
// never changing again; the active segment's included) with the segment's
// file as io.ReaderAt, and pins those segments (a reference count checked
// by retention) until release. Uploaded(p, end) records a per-partition
// "tiered end" (not persisted: the uploader reports it again after a
// restart); a sealed segment may be deleted locally once every partition
// with chunks in it has a tiered end past them, and local retention by time
// or size then only needs to cover the hot set.
//
// Reads: Store.Read checks the local chunk index first; an offset below the
// local log start but inside Uploader.Manifest(p) goes to Reader.Read, and
// the bytes go out with an ordinary write instead of sendfile (netloop
// needs an in-memory payload kind for this if it has none). Read may return a
// batch that starts before the requested offset, as a local read does.
// ListOffsets/OffsetForTime use the manifest's MaxTimestamp per object and
// the index's MaxTimestamp per entry (a Reader method to add). The tier's
// LogStartOffset becomes the partition's log start; DeleteRecords and
// retention.ms/bytes call Uploader.Retain.
//
// Metadata snapshot: see above; cmd builds the provider from
// storage.Store.Snapshot plus group.Coordinator.ExportOffsets, and on an
// empty WAL dir with -s3-bucket restores from LoadSnapshot before opening.
//
// Flags (cmd): -s3-bucket, -s3-prefix, -s3-endpoint (path style implied),
// -s3-region map onto s3store.Config; credentials come from the standard chain
// (AccessKey empty). Uploader.Run runs in the background; storage calls
// Kick when it seals a segment.
//
// Not done yet: singleflight for concurrent misses of the same range, a
// listing GC for orphans of partitions that are never compacted, metrics
// export of ReaderStats and upload lag.
package tier
