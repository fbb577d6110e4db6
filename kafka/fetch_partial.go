package kafka

// Partial batches in fetch responses. Kafka reads a partition's log as a
// byte range (FileRecords.slice): when the first batch at the fetch offset
// is larger than what the response has left for the partition, and the
// partition is not the first with data (which KIP-74 lets overshoot), the
// response carries the first bytes of that batch, cut at the limit. Clients
// discard a truncated batch at the end of a partition's records (the
// protocol guide allows it; kgo, librdkafka, sarama and the Java consumer
// all do), and librdkafka grows its fetch size when a partition returns
// only a partial batch. klite sends the same bytes Kafka would in that
// case. After whole batches, Kafka also fills the rest of the limit with
// the start of the next batch; klite stops at the last whole batch there
// (the client would discard those bytes).

import "github.com/klite/klite/storage"

// truncateChunks cuts res's chunks to their first limit bytes (limit > 0).
func truncateChunks(res *storage.ReadResult, limit int64) {
	left := limit
	for i := range res.Chunks {
		c := &res.Chunks[i]
		if c.Len >= left {
			c.Len = left
			res.Chunks = res.Chunks[:i+1]
			break
		}
		left -= c.Len
	}
	res.Bytes = min(res.Bytes, limit)
}
