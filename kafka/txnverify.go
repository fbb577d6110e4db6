package kafka

// TxnVerifier is what produce asks before a transactional batch is
// appended (KIP-890 part 1): the transaction coordinator implements it.
// Kafka.Config.TxnVerifier nil means no coordinator: transactional batches
// are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as before
// transactions existed.
type TxnVerifier interface {
	// VerifyTxnPartition reports whether producer pid at epoch has an
	// ongoing transaction that contains topic/partition: 0, or the Kafka
	// error code to answer the partition with (INVALID_TXN_STATE when the
	// partition was not added; INVALID_PRODUCER_EPOCH or PRODUCER_FENCED
	// for an old epoch). Called on the produce path, often on an event
	// loop: it must be cheap and must not block.
	VerifyTxnPartition(pid int64, epoch int16, topic string, partition int32) int16
}
