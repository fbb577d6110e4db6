// Package group is klite's group coordinator: the classic consumer group
// protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) as Apache Kafka's
// GroupCoordinator runs it, the consumer group protocol of KIP-848
// (ConsumerGroupHeartbeat with server-side assignors, consumer.go and
// assign.go), committed offsets kept durably in an append-only log, and the
// admin views of groups (list, describe, delete). A group is of one type,
// classic or consumer; an empty group may change type.
//
// The coordinator speaks in kmsg request and response structs, not frames:
// the kafka package parses and encodes, this package decides. Using kmsg here
// saves a mirror of every request and response struct; the coordinator still
// knows nothing of framing or the connection.
//
// # Concurrency
//
// One goroutine (the coordinator loop) owns every group. Callers submit work
// with a callback and never wait: submission appends to a queue under a
// short mutex, so the network event loops are never blocked by group work.
// Session, rebalance, join-delay, sync and revocation timers, and the
// consumer groups' subscription refresh, live in one indexed heap driven by
// the same goroutine (one time.Timer for the earliest deadline), so
// thousands of members cost heap entries, not goroutines.
//
// Offset commits are validated on the loop, then handed to the offsets log,
// whose writer goroutine appends every commit queued since its last write
// with one pwrite and one fdatasync (group commit). A commit is applied to
// the in-memory offsets and acknowledged only after that fdatasync returns.
//
// # Layout
//
//	<Dir>/snapshot-<seq>            every live record as of the start of log-<seq> (vfs.WriteFile: tmp+fsync+rename+dir fsync)
//	<Dir>/log-<seq>                 writes appended since; the highest seq is the one being written
//	<Dir>/<file>.broken-<offset>    the bytes recovery cut from <file> at <offset> (a torn tail, or a repair);
//	                                a later cut at the same offset appends .1, .2, ...: no copy is overwritten
//
// Sequence numbers are zero-padded to 20 digits, so a name sort is the
// write order.
//
// # Record format (part of the on-disk format)
//
//	| body length u32 | CRC-32C(body) u32 | body |
//	body: type u8, then per type (strings are u16 length + bytes, big-endian):
//	  1 commit:        group, count u32, count x (topic, partition i32, offset i64,
//	                   leader epoch i32, metadata (u32 length), commit ms i64, expire ms i64)
//	  2 delete offsets: group, count u32, count x (topic, partition i32)
//	  3 delete group:   group
//	  4 group meta:     group, protocol type, generation i32
//	  5 member:         group, member id, instance id, present u8 (1 joined, 0 left):
//	                    consumer-protocol members (KIP-848), so that after a
//	                    restart their partitions are not handed out until they
//	                    have heard they are unknown or their session expired
//	  6 classic group: group, version u8 (1), protocol type, generation i32,
//	                    protocol, leader, count u32, count x (member id,
//	                    instance id, client id, client host, session ms i32,
//	                    rebalance ms i32, subscription (u32 length),
//	                    assignment (u32 length)); written when the leader's
//	                    SyncGroup completes a generation (count 0 when a
//	                    generation ends with no members). It replaces the
//	                    group's previous one; a later type 4 record for
//	                    another generation voids it. On open a group whose
//	                    type 6 record matches its generation comes back
//	                    Stable with those members, each session timer
//	                    starting afresh.
//	  7 write marker:   length u32, CRC-32C u32 of the records that follow
//	                    it; logs only, never nested.
//	  8 txn state:      transactional id, state (u32 length; package txn's
//	                    encoding; empty removes the id): the transaction
//	                    coordinator's durable state (txnstate.go)
//	  9 txn offsets:    group, producer id i64, count u32, count x (as in 1):
//	                    a TxnOffsetCommit's offsets, pending until the
//	                    transaction ends
//	 10 txn end:        group, producer id i64, commit u8: the producer's
//	                    pending offsets in the group are committed (1) or
//	                    dropped (0)
//	 11 txn append:     transactional id, bytes (u32 length) appended to
//	                    the id's type 8 state (partitions added to an
//	                    ongoing transaction); logs only: a snapshot holds
//	                    the whole state as a type 8 record
//
// A log is a sequence of writes. Each write (one pwrite and one fdatasync
// for every op queued since the last: group commit) is a type 7 marker
// followed by the records it covers; a large group commit takes one marker
// per ~64 MiB, and an op's records are never split across markers, so an op
// is recovered whole or not at all. Logs written before markers existed
// hold bare records, which are still read.
//
// A snapshot starts with the 8 bytes "KLGSNAP1" and holds bare records of
// types 1 to 6 and 8 to 9.
//
// Limits (the same when writing and when reading):
//   - A record body is at most MaxRecordBytes (64 MiB). The log refuses,
//     unwritten, an op whose records exceed it or hold a string over 65535
//     bytes (ErrRecordTooLarge), so nothing it acknowledges is unreadable.
//   - Commits, in the log, in snapshots and in exports, are split into
//     records of about 1 MiB; one offset's metadata is at most
//     MaxMetadataBytesLimit (16 MiB), so a commit of any size is readable.
//   - A classic generation (type 6) is at most Config.MaxGroupMetadataBytes
//     (default 1048588, Kafka's max.message.bytes of __consumer_offsets):
//     a SyncGroup that would exceed it, and a JoinGroup whose member alone
//     would, answer UNKNOWN_SERVER_ERROR, as Kafka answers a group metadata
//     append over its limit. Group ids and group instance ids over 32767
//     bytes are INVALID_GROUP_ID: the non-flexible versions of ListGroups,
//     DescribeGroups and OffsetFetch could not carry them.
//
// # Recovery
//
// Open loads the highest snapshot, replays every log whose seq is >= the
// snapshot's in order, and removes older files. The only damage it repairs
// on its own is a torn tail: in the log being written (the newest that
// holds anything: a compaction may have created an empty successor), a
// record or write that does not check (header cut short, length past the
// end of the file, CRC mismatch) with no intact write (a marker whose
// records' CRC checks) after it; when the bad write's own marker is intact,
// "after" starts where that marker says the write ends, since a write's
// records hold client-chosen bytes that could look like a write. That is
// what a crash during the last, unacknowledged write leaves; it is cut,
// with a Warn, and the cut bytes are kept in <file>.broken-<offset>.
//
// Anything else fails Open with ErrCorrupt, naming the file, the byte offset
// and what to do: a bad record followed by intact writes (a flipped byte mid
// file), a record whose CRC checks but whose body does not decode (an
// unknown record type), any bad record in an older log or in a snapshot
// (both are complete before anything newer is written). Acknowledged
// commits may lie beyond such a record, so the operator decides: restore
// the directory, or open once with Config.RepairLog (klite:
// -offsets-log-repair), which cuts the damaged file at the bad record,
// keeps the cut bytes in <file>.broken-<offset>, logs at Error, and goes on
// replaying the later files. Records after the cut in that file are lost.
//
// Invariants:
//   - A classic group becomes Stable, and its SyncGroups are answered, only
//     after its type 6 record is fdatasynced (Kafka's group metadata append).
//   - An OffsetCommit is answered only after its records are fdatasynced; a
//     failed write or fdatasync fails the waiting commits and every later one
//     (never retried).
//   - Every record the log acknowledges reads back on Open (write-time and
//     read-time limits are the same), and Open cuts on its own only what a
//     torn last write explains (damage confined to the last write of the
//     log being written looks the same, and is cut too).
//   - Group state is touched only on the coordinator loop.
//   - Client input never panics: unknown groups, members and generations are
//     Kafka error codes in the response.
package group
