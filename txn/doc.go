// Package txn is klite's transaction coordinator (KIP-98): it gives
// transactional ids their producer id and epoch (InitProducerId, with the
// fencing of KIP-360 and the epoch bump at every end of KIP-890), records the
// partitions and groups of each transaction (AddPartitionsToTxn,
// AddOffsetsToTxn), checks transactional offset commits (TxnOffsetCommit)
// and ends transactions (EndTxn): it writes a COMMIT or ABORT marker to
// every partition of the transaction through the partition log, resolves the
// transaction's pending offsets in the group coordinator, then records the
// transaction complete. A transaction open longer than its timeout is
// aborted by the coordinator, so a vanished producer cannot hold read_committed
// consumers behind the last stable offset.
//
// # State machine (Kafka's TransactionState)
//
//	Empty ──AddPartitions/AddOffsets──▶ Ongoing ──EndTxn──▶ PrepareCommit ──markers──▶ CompleteCommit
//	  ▲                                   │    └───EndTxn──▶ PrepareAbort  ──markers──▶ CompleteAbort
//	  │                                   └──InitProducerId / timeout: epoch fence ──▶ PrepareAbort
//	  └─────────────── InitProducerId (epoch bump) ◀── Complete*, Empty
//
// PrepareEpochFence and Dead are Kafka's transient states: here the epoch
// fence is recorded as PrepareAbort with the bumped epoch in one write, and a
// transactional id that expires is removed from the log (Dead) in one write.
// While a transaction is in Prepare* its markers are being written; requests
// for it answer CONCURRENT_TRANSACTIONS, which clients retry.
//
// # Durability
//
// Every state change is written to the store (the group coordinator's
// offsets log, records of type 8: see group/txnstate.go) and fdatasynced
// before the request that caused it is answered and before the change is
// visible to other requests. The store holds one record per transactional
// id; its snapshots bound it. On start, transactions found in Prepare*
// finish their markers and offsets; ongoing ones are aborted at their
// timeout (their start time is durable).
//
// Why the offsets log: transactional offsets must be durable in the group
// coordinator's log before the transaction may commit (Kafka keeps them in
// __consumer_offsets), and they must be resolved before the transaction is
// recorded complete. With the coordinator's state in the same log, one
// fdatasync'd sequence orders both, group commit shares its fsyncs, and the
// log's compaction, torn-tail repair and corruption checks apply unchanged.
//
// # State encoding (part of the on-disk format, big-endian)
//
//	version u8 = 1, producer id i64, last producer id i64, epoch i16,
//	last epoch i16, timeout ms i32, state u8, start ms i64, update ms i64,
//	next producer id i64 (-1: none), count u32 x (topic u16 length + bytes,
//	partition i32), count u32 x group (u16 length + bytes), then zero or
//	more chunks appended since (Store.AppendTxn): tag u8 = 1, count u32 x
//	(topic, partition) as above: partitions added to the ongoing
//	transaction, so adding one partition at a time writes each once.
//
// # Concurrency
//
// One mutex guards every transaction; a transaction with a write in flight
// is marked pending and its requests answer CONCURRENT_TRANSACTIONS. Store
// callbacks run on the store's writer goroutine and never block; marker
// writing runs on a goroutine per ending transaction.
package txn
