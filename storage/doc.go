// Package storage is klite's log: topics and partitions stored as record
// batches in sharded write-ahead logs, group-committed with fdatasync.
//
// # Layout
//
//	<Dir>/meta-00000000000000000007.snap      metadata snapshot, generation 7 (see Metadata)
//	<Dir>/meta-00000000000000000007.log       metadata changes since that snapshot
//	<Dir>/meta-00000000000000000007.log.torn-<ns>  a torn last frame cut off by Open
//	<Dir>/shard-000/00000000000000000000.wal  segment 0 of shard 0
//	<Dir>/shard-000/00000000000000000000.idx  its index checkpoint (sealed segments only)
//	<Dir>/shard-000/00000000000000000001.wal  the active segment
//	<Dir>/shard-000/00000000000000000002.wal.prep  next segment being prepared (deleted on open and on Close)
//	<Dir>/shard-000/00000000000000000001.wal.torn-<ns>  bytes cut off a torn tail by recovery
//	<Dir>/compacted/0000000007-00000000000000000003.klc  partition key 7's compacted prefix, generation 3
//
// Segment names are zero-padded sequence numbers, so a name sort is the
// write order. Each partition belongs to one shard for life (recorded in
// the metadata; the shard count is fixed when Dir is created) and is
// identified on disk by a uint32 partition key that is never reused, so a
// deleted and recreated topic can never pick up its predecessor's chunks.
//
// # Segment format
//
// A segment is a sequence of chunks, then zeros (preallocated space):
//
//	+--------------------------- chunk header (40 bytes, big-endian) ------------------------+
//	| magic "KLCH" u32 | version u8 =1 | flags u8 =0 | 0 u16 | partition key u32 |           |
//	| batch count u32 | base offset i64 | last offset i64 | batch bytes u32 | CRC-32C u32  |
//	+------------------------------------------------------------------------------------------+
//	| record batch v2 | record batch v2 | ...   (batch bytes; baseOffset rewritten in place)   |
//	+------------------------------------------------------------------------------------------+
//
// The header CRC covers the 36 bytes before it; each batch carries its own
// CRC-32C (attributes to end). A group commit writes one chunk per
// partition it touches (a new one each Config.MaxChunkBytes, never
// splitting an append), all with one pwrite, so the batches of a chunk are
// contiguous and a fetch sends them as one file range (sendfile). A read
// that starts inside a chunk finds its batch by walking the 12-byte
// baseOffset+length prefixes of the chunk's batches (32 KiB per pread).
//
// Index checkpoints (<segment>.idx) hold every chunk of a sealed segment
// (key, offsets, position, length, max timestamp), the shard's
// idempotent producer state at the end of it (with each producer's open
// transaction) and the shard's aborted transactions at or above their
// partitions' log starts; see index.go, producer.go and txn.go.
//
// # Transactions (txn.go)
//
// Transaction markers are control batches in the WAL like any batch. A
// partition's open transactions and its aborted-transaction index are
// rebuilt on recovery from the newest checkpoint plus the batch headers
// and markers of the segments after it; the last stable offset is
// published with the high watermark (opens before it moves, closes after),
// and the aborted index outlives the segments that held the markers
// (retention, tiering) until its entries fall below the log start.
// Metadata snapshots and checkpoints are written with vfs.WriteFile (a
// temp file, fsynced, renamed, the directory fsynced); Dir and the shard
// directories are made durable before anything is written in them
// (vfs.MkdirAllSync for Dir, one fsync of Dir for all shard directories).
//
// # Invariants
//
//   - A partition's chunks on disk are contiguous from the first one still
//     there: each starts at the last one's end. The only gaps allowed end
//     at or below the partition's next_min (metadata), which a freeing
//     pass raises past a deleted segment's chunks before unlinking it: an
//     older segment may outlive a newer one (kept for another partition),
//     so a partition's chunks can resume after a hole; what lies before
//     the hole is below the log start or tiered, and recovery drops it
//     from the index. Any other gap fails the partition (ErrStorage).
//   - A partition's next offset after recovery is max(end of its last
//     chunk, next_min, log start), so one whose chunks were all deleted
//     continues where its log ended, never at 0.
//   - The log start (metadata) only grows and never passes the high
//     watermark; reads, OffsetForTime and MaxTimestamp ignore data below
//     it.
//   - The high watermark, what readers see, only moves past data once it is
//     fdatasynced; acks=all appends complete only after that fsync.
//   - A segment is fsynced before the next one is used (roll waits), so only
//     the newest segment of a shard can hold unsynced bytes. A torn tail
//     there is cut back to the last whole chunk (copied aside first, then
//     zeroed and fsynced); anything invalid in an older segment is
//     corruption and fails the shard's partitions loudly.
//   - In the newest segment nothing is ever written at or past S+U, where S
//     is the end of its fsynced prefix and U is maxUnsyncedBytes (32 MiB, a
//     format constant): a write that would cross it waits for the syncer,
//     and a group larger than U goes out in pieces of at most U, each
//     fsynced before the next crosses the bound. Every byte from S+U to the
//     end of the file is as preparation left it: zeros.
//   - Sealed segments never change. Chunk index entries below a published
//     length never change, so reads take no lock. An index is trimmed from
//     the front by moving its first live entry (then dropping pages wholly
//     below it); readers search only from there.
//   - A failed write or fsync takes the shard offline until restart; no
//     fsync is retried and nothing unsynced is ever acknowledged as durable.
//
// # Retention and segment deletion (retention.go)
//
// Every Config.RetentionCheckInterval a pass moves each partition's log
// start past the whole chunks (and, with Config.Cold, tiered objects below
// the local data) that retention.ms (max timestamp older than now minus
// it, stopping at the first younger one) and retention.bytes (oldest
// first while the rest would still hold at least that, as in Kafka) let go; DeleteRecords
// moves it directly. All moves of a pass are records in one metadata log
// frame, durable before they are visible. A freeing pass then deletes each sealed segment
// every chunk of which is below its partition's log start or of a deleted
// partition, or, with Cold, only uploaded (below the tiered end) while the
// WAL holds more than Config.HotBytes (oldest first); and only while a
// newer segment of the shard has its checkpoint on disk, as that holds
// the producer state recovery would have read from the deleted ones.
// Order: next_min in the metadata log, then the chunk indexes are trimmed (no
// new read reaches the segment), then the .wal and the .idx are unlinked
// (an .idx without its .wal is removed on open). Reads pin segments by
// reference count before touching the file, so an unlinked segment stays
// open until the last one ends; nothing opens a segment by path after
// recovery. With Config.MaxWALBytes set, a writer that must roll while a
// new segment would pass the cap waits for one freeing pass (the event
// loop never waits: Append only queues) and fails the group with
// ErrLogFull when that freed too little.
//
// # Compaction (compact.go, compactfile.go, compactcodec.go)
//
// A partition of a cleanup.policy=compact topic has at most one compacted
// file, <Dir>/compacted/<key>-<gen>.klc, holding its cleaned prefix: the
// surviving batches below its cleaned end E. Reads below E go to that
// file, reads at or above E to the WAL, whose chunk index is trimmed below
// E; Fetch sees one log. E is always a chunk boundary, the end of a chunk
// that lay in a sealed segment, below the last stable offset and older
// than min.compaction.lag.ms: the active segment is never compacted. As
// Kafka rolls a partition's segment at segment.ms (and, KIP-354, at
// max.compaction.lag.ms), compaction rolls a shard's active segment once a
// compacted partition's first chunk in it is older than the smaller of
// the two, so a quiet shard's data becomes cleanable; but only once the
// segment has been active Config.CompactionMinRollInterval, as the shard's
// segments are shared by all its partitions (Kafka rolls per partition).
// Offsets stay sparse: survivors keep their original offsets; a batch all
// of whose records survive is copied byte for byte; one that loses some
// keeps its header (base offset, lastOffsetDelta, timestamps, producer
// fields, codec) and gets the surviving records, as the producer encoded
// them, recompressed with the same codec under a new length, count and
// CRC (as Kafka's cleaner does); a batch that loses all its records goes:
// producer state is in the WAL's index checkpoints, not in the batches.
// Aborted transactional batches are dropped. A tombstone survives
// delete.retention.ms from the cleaning that first wrote it into a
// compacted file (each run of batches in the file records that time),
// then goes at the next cleaning, which a due tombstone triggers by
// itself. A transaction marker (control batch) stays while data of its
// transaction is in the log; the cleaning that finds none left (all
// superseded, below the log start, or aborted and dropped) puts it in a
// run of markers stamped with that time, and it goes delete.retention.ms
// later, as Kafka's cleaner removes a marker once the delete horizon it
// set then (KIP-534) has passed. Kafka also keeps each producer's last
// batch for its producer state; ours is in the WAL's index checkpoints,
// so nothing is kept for it. The file's aborted section lists the
// aborted transactions whose ABORT markers it holds: on publishing and on
// Open it replaces the partition's aborted-transaction index below the
// cleaned end (the checkpoints may predate it), so an entry never
// outlives its marker (a read_committed consumer would otherwise treat
// the producer's later data as aborted). Entries whose data is gone but
// whose marker stays are harmless and stay with it.
//
// A cleaning writes generation g+1 from generation g and the dirty chunks
// (<name>.tmp, fsync, rename, fsync of the directory), then publishes it
// (readers switch; a reader holding g keeps its open file by reference
// count), trims the chunk index below the new E, removes g's file and
// kicks a freeing pass: a WAL segment goes once every chunk in it is below
// its partition's log start or cleaned end (and a newer segment has its
// checkpoint, as for retention). A crash at any point leaves g or g+1
// complete under its name; Open keeps each partition's newest generation
// and deletes older ones, temporary files and files of deleted
// partitions. A newest file that does not verify (header and index CRC)
// fails its partition loudly: segments below its E may be gone.
//
// Every cleaning rewrites the whole compacted file, as Kafka's cleaner
// recopies a log's segments from its start to the end of what its offset
// map covered at every cleaning. So a map (Config.CompactionMapKeys)
// smaller than the dirty part's distinct keys costs a rewrite per map's
// worth: on 16 MiB of batches over 10,000 keys, a 1,000-key map took 57
// passes writing 137 MB for a 2.9 MB file, 4,000 keys 12 passes and 30 MB,
// 16,000 keys one pass and 2.9 MB (BenchmarkCompactMapKeys). The map's
// 50 bytes a key are what keeps that away: the default 1Mi keys (50 MB)
// cleans in one pass an uncleaned part of up to about a million distinct
// keys.
//
// With cleanup.policy=compact,delete, retention.ms and retention.bytes
// count the compacted file's runs before the WAL's chunks.
//
// # Compaction of tiered data (compacttier.go, tier/rewrite.go)
//
// With Config.Cold the bucket's copy is compacted and the WAL is not: it
// keeps only HotBytes of uploaded data, and compaction only removes
// records, never changes one at an offset, so the WAL's uncompacted copy
// and the bucket's compacted copy of the same offsets are both valid
// views; a read below the WAL's first offset goes to the bucket, one
// above to the WAL, and a consumer may see both. The manifest's objects
// are a cleaned prefix (Gen > 0: sparse version 2 objects written by a
// cleaning) followed by objects as uploaded (Gen 0). A pass (the same
// pass, limits and throttle as above) takes as dirty the Gen 0 objects
// from the cleaned end on wholly below the last stable offset and older
// than min.compaction.lag.ms; it is due by min.cleanable.dirty.ratio
// (object data bytes), max.compaction.lag.ms, or a cleaned object whose
// tombstones passed delete.retention.ms. The offset map is built over
// whole dirty objects (one verified GET each; the map's key limit stops
// at an object boundary), then [log start, end of the last dirty object
// taken) is read again and each batch goes through cleanBatch into a
// tier.Rewrite, which puts objects of about the upload size as they fill
// and, on Commit, publishes the manifest with them in place of the old
// ones (under the partition's upload lock: uploads appended meanwhile and
// retention that cut the front are kept; retention past the range's end
// abandons the cleaning), then deletes the old objects. The range's last
// batch is always kept (whole if cleaning would empty it), so a read in a
// gap finds a later batch in the bucket. Each object records when its
// tombstones were first cleaned (tier.ObjectRef.CleanedAt); tombstones of
// different cleanings never share an object. A crash before the publish
// leaves the old manifest and unreferenced objects, one after it the new
// manifest and unreferenced old objects; both kinds are deleted before the
// partition's next cleaning (tier.Uploader.CleanOrphans).
//
// # Metadata (meta.go, metastate.go, metalog.go, metacommit.go)
//
// Topics (name, ID, configs), each partition's key, shard, log start and
// next_min, the next partition key, the shard count, the producer id
// limit, the SASL users' SCRAM credentials (users.go), the ACLs (acls.go)
// and the client quotas (quotas.go) live in a snapshot and a log of changes since it, both sequences
// of frames (big-endian; part of the format):
//
//	| magic "KLMD" u32 | payload length u32 | CRC-32C (Castagnoli) of payload u32 | payload |
//
// meta-<gen>.snap is one frame whose payload is the whole state as JSON
// (the format meta.json had). meta-<gen>.log holds one frame per group
// commit, its payload JSON records separated by '\n', each one change:
// create topic (with its partitions), delete topic, add partitions, set
// configs, log starts, next_mins (both [key, offset] pairs that only
// grow), producer id limit, set and delete a SCRAM credential, create and
// delete ACLs, set client quotas (record 20; 21 is reserved for quotas). A log frame is at most 16 MiB (a limit at read
// time too); a snapshot at most 1 GiB. Topic configs are client input of
// any size, so the model keeps an upper bound of its snapshot's size and a
// create, config change or partition add that would pass 1 GiB is refused
// (ErrMetadataFull), never made and then found unwritable.
//
// Writers apply a change to an indexed in-memory model under metaMu (so it
// is validated against every change accepted before it) and queue its
// record, without I/O; one committer writes all that is queued as one
// frame (more when it passes the 16 MiB frame limit), each with one write
// and fdatasynced before the next, and only then publishes the changes
// in log order, as one new topic table, and answers the writers. Readers
// (Metadata, produce, fetch) load the table and never wait; a topic is in
// it whole, with every partition, or not at all. Producer ids are reserved
// a block ahead, so InitProducerId does not wait either. A failed write or
// fdatasync is not retried: metadata changes fail until restart.
//
// Once the log holds as many bytes as the last snapshot (and at least 1
// MiB), the committer writes the model as snapshot gen+1 (temp, fsync,
// rename, fsync dir), creates log gen+1 (fsync dir) and removes gen's
// files. Bytes written per change are thus the record plus at most about
// as much again for snapshots, however many topics exist.
//
// Open loads the newest snapshot and replays its log. Each frame is
// fsynced before the next is written, so only the last frame can be torn:
// an invalid frame with no valid frame after it (and, when its header
// fits, nothing but zeros after its end) is cut, copied aside first; any
// other invalid frame, or a record that does not fit the state, fails Open
// with the file and offset. A missing log (a crash between the snapshot
// and its log) is created empty. A directory with only the old meta.json
// is converted: its content becomes snapshot 1, then meta.json is removed.
//
// # Recovery of the newest segment
//
// Recovery scans the newest segment chunk by chunk to the first one that
// is not whole and valid; call its start E. It then looks for non-zero
// bytes (a torn write) only in [E, max(E+40, D) + U), where D is the end a
// valid chunk header at E declares (none: 0), and cuts what it finds. That
// is enough: everything written lies below S+U, and S <= max(E+40, D). The
// bytes below S are durable and are exactly what was written, so every
// chunk wholly below S is valid and E is past it; if S > E+40, the header
// at E is durable and parses, and its chunk not being whole means S < D.
// So a zero-filled 256 MiB tail costs one window (at most U plus the chunk
// at E) to check, not the whole file. A sealed segment without a
// checkpoint is still read to its end: anything after its last chunk there
// is corruption.
//
// # Preallocation
//
// The next segment is prepared in the background, on its own goroutine,
// once the active one is a quarter full (so a store that writes little
// never pays for it): fallocate (reserving space, so ENOSPC shows up
// before data is at stake), then zeros written over the file in 256 KiB
// steps, each fdatasynced, only while no WAL fdatasync has run for 50 ms
// and at most 32 MiB/s for the whole store (prepgate.go): at full speed
// beside a busy writer the zeros doubled the disk's write load and held
// WAL fdatasyncs up by 50-300 ms, and on an idle WAL they took other
// writers' fdatasync p99 from about 1 ms to 23-30 ms. A busy store
// therefore mostly uses fallocated segments, an idle or lightly loaded
// one zero-filled ones. Later writes overwrite initialised
// blocks, so fdatasync flushes data only; with fallocate alone each write
// converts unwritten extents (a journal commit per fdatasync), and
// appending grows the file (also metadata). Measured on this machine's
// ext4 (virtual disk), pwrite + fdatasync in a loop, p50:
//
//	             4 KiB writes   64 KiB writes
//	append       217-256 us     264-307 us
//	fallocate    163-196 us     204-216 us
//	zero-filled   99-126 us     124-144 us
//
// Nothing waits for the zeros. The first segment of a new shard is only
// fallocated, so Open returns in milliseconds; a roll stops the zero-fill
// where it is, fsyncs, and uses the file (its unfilled rest is fallocated
// and reads as zeros, merely slower to write); Close abandons a
// preparation and deletes its file. Config.Prealloc selects the others.
//
// Written data stays in the page cache only while it is among the newest
// Config.CacheBytes of the store (pagecache.go): the syncer drops older
// durable ranges, so the cache does not grow with every byte written and
// new writes reuse warm pages (on a VM that returns free memory to its
// host, pages never touched cost a host fault each).
//
// # Appends, backpressure and Close
//
// Append never blocks: the kafka layer calls it on a netloop event loop,
// and blocking there would stall every connection of the loop. Appends go
// to a per-shard queue guarded by a mutex, counted in bytes; past
// Config.MaxQueueBytes they fail at once with ErrBusy, nothing written, for
// the client to retry (REQUEST_TIMED_OUT). Per-connection backpressure is
// netloop's (in-flight requests and bytes per connection). Close fails the
// appends not yet written with ErrClosed and waits only for I/O already
// issued (a group write and the fdatasyncs of written groups), so it
// cannot be held up by queued work, by a preparation or by a client.
package storage
