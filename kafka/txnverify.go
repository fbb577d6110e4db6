package kafka

// TxnVerifier is what produce asks before a transactional batch is
// appended (KIP-890 part 1): the transaction coordinator implements it.
// Kafka.Config.TxnVerifier nil means no coordinator: transactional batches
// are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as before
// transactions existed.
type TxnVerifier interface {
	// VerifyTxnPartition reports whether transactional id id's producer
	// is pid at epoch with an ongoing transaction that contains
	// topic/partition: 0, or the Kafka error code to answer the partition
	// with (INVALID_PRODUCER_ID_MAPPING when id's producer is another;
	// INVALID_TXN_STATE when the partition was not added;
	// INVALID_PRODUCER_EPOCH for an old epoch). On 0 the batch is admitted
	// and done must be called exactly once when its append has an outcome
	// (written or failed): the transaction's end waits for it. Called on
	// the produce path, often on an event loop: it must be cheap and must
	// not block.
	VerifyTxnPartition(id string, pid int64, epoch int16, topic string, partition int32) (code int16, done func())
}
