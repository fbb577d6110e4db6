package kafka

// ListOffsets by timestamp and by -3 (max timestamp) answer with the exact
// record, as Kafka does: storage finds the batch (its index holds batches,
// not records); the batch's records are then read to find the first record
// whose timestamp is >= the target, or, for -3, the first whose timestamp is
// the batch's maxTimestamp (KAFKA-16310). In a LogAppendTime batch every
// record carries the batch's time, so that is its first record.

import (
	"github.com/klite/klite/storage"
)

// exactRecord returns the offset and timestamp of the first record of the
// batch based at base whose timestamp satisfies match. ok is false when the
// batch cannot be read or no record matches; the caller then keeps the
// batch's answer.
func (h *Handler) exactRecord(topic string, partition int32, base int64, match func(ts int64) bool) (off, ts int64, ok bool) {
	res := h.st.Read(topic, partition, base, 1)
	defer res.Release()
	if res.Err != nil || len(res.Chunks) == 0 {
		return 0, 0, false
	}
	c := res.Chunks[0]
	var hdr [storage.BatchHeaderBytes]byte
	if c.Len < int64(len(hdr)) {
		return 0, 0, false
	}
	if n, _ := c.File.ReadAt(hdr[:], c.Off); n < len(hdr) {
		return 0, 0, false
	}
	bh, err := storage.ParseBatchHeader(hdr[:])
	if err != nil || bh.BaseOffset != base || bh.Size() < len(hdr) || int64(bh.Size()) > c.Len {
		return 0, 0, false
	}
	batch := make([]byte, bh.Size())
	if n, _ := c.File.ReadAt(batch, c.Off); n < len(batch) {
		return 0, 0, false
	}
	off, ts = -1, -1
	err = storage.RecordTimestamps(batch, h.cfg.MaxDecompressedBatchBytes, func(delta int32, t int64) bool {
		if match(t) {
			off, ts = base+int64(delta), t
			return false
		}
		return true
	})
	if err != nil || off < 0 {
		return 0, 0, false
	}
	return off, ts, true
}
