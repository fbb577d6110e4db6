// Package storage is klite's log: topics and partitions stored as record
// batches in sharded write-ahead logs, group-committed with fdatasync.
//
// # Layout
//
//	<Dir>/meta.json                         topics, partition keys and shards, producer id block
//	<Dir>/shard-000/00000000000000000000.wal  segment 0 of shard 0
//	<Dir>/shard-000/00000000000000000000.idx  its index checkpoint (sealed segments only)
//	<Dir>/shard-000/00000000000000000001.wal  the active segment
//	<Dir>/shard-000/00000000000000000002.wal.prep  next segment being preallocated (deleted on open)
//	<Dir>/shard-000/00000000000000000001.wal.torn-<ns>  bytes cut off a torn tail by recovery
//
// Segment names are zero-padded sequence numbers, so a name sort is the
// write order. Each partition belongs to one shard for life (recorded in
// meta.json; the shard count is fixed when Dir is created) and is
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
// (key, offsets, position, length, max timestamp) and the shard's
// idempotent producer state at the end of it; see index.go and producer.go.
// meta.json and checkpoints are written to a temp file, fsynced, renamed
// and the directory fsynced.
//
// # Invariants
//
//   - A partition's offsets are contiguous from 0: each chunk starts at the
//     last one's end. Recovery fails a partition (ErrStorage) whose chunks
//     do not line up.
//   - The high watermark, what readers see, only moves past data once it is
//     fdatasynced; acks=all appends complete only after that fsync.
//   - A segment is fsynced before the next one is used (roll waits), so only
//     the newest segment of a shard can hold unsynced bytes. A torn tail
//     there is cut back to the last whole chunk (copied aside first, then
//     zeroed and fsynced); anything invalid in an older segment is
//     corruption and fails the shard's partitions loudly.
//   - Sealed segments never change. Chunk index entries below a published
//     length never change, so reads take no lock.
//   - A failed write or fsync takes the shard offline until restart; no
//     fsync is retried and nothing unsynced is ever acknowledged as durable.
//
// # Preallocation
//
// New segments are prepared in the background: fallocate (reserving space,
// so ENOSPC shows up before data is at stake), then zeros written over the
// whole file and fdatasynced. Later writes overwrite initialised blocks, so
// fdatasync flushes data only; with fallocate alone each write converts
// unwritten extents (a journal commit per fdatasync), and appending grows
// the file (also metadata). Measured on this machine's ext4 (virtual disk),
// pwrite + fdatasync in a loop, p50:
//
//	             4 KiB writes   64 KiB writes
//	append       217-256 us     264-307 us
//	fallocate    163-196 us     204-216 us
//	zero-filled   99-126 us     124-144 us
//
// Zero-filling costs one extra sequential write of each segment, off the hot
// path (about 0.2 s per 256 MiB here). Config.Prealloc selects the others.
package storage
