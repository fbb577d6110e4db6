package storage

import (
	"slices"
	"testing"
)

// FuzzMarkerCommit: reading a control batch's marker type never panics on
// any input, and every marker MarkerBatch builds reads back as built.
func FuzzMarkerCommit(f *testing.F) {
	f.Add(MarkerBatch(1, 2, true, 3, 4), int64(1), int16(2), true, int32(3))
	f.Add(MarkerBatch(9, 0, false, -1, 0), int64(9), int16(0), false, int32(0))
	f.Add(makeBatch(batchSpec{records: 2}), int64(0), int16(0), false, int32(0))
	f.Add([]byte{}, int64(0), int16(0), false, int32(0))
	f.Fuzz(func(t *testing.T, b []byte, pid int64, epoch int16, commit bool, coordEpoch int32) {
		_, _ = MarkerCommit(b)
		m := MarkerBatch(pid, epoch, commit, coordEpoch, 0)
		h, err := ValidateBatch(m)
		if err != nil || h.ProducerID != pid || h.ProducerEpoch != epoch || !h.Control() {
			t.Fatalf("built marker: %+v, %v", h, err)
		}
		if got, ok := MarkerCommit(m); !ok || got != commit {
			t.Fatalf("marker read back as %v, %v; built %v", got, ok, commit)
		}
	})
}

// FuzzTxnDecoders: the index checkpoint (with its aborted section) and the
// bucket's producer snapshot decoders never panic on any input, and what
// they accept encodes back to what decodes the same.
func FuzzTxnDecoders(f *testing.F) {
	prod, np := encodeProducers(producerMap{{pid: 1, key: 2}: {epoch: 3, txnOpen: true, txnFirst: 9}})
	f.Add(encodeCheckpoint(7, []ckEntry{{key: 2, last: 4, pos: 40, length: 100}}, prod, np,
		[]ckAborted{{key: 2, AbortedTxn: AbortedTxn{1, 2, 3}}}))
	f.Add(encodeCheckpoint(7, nil, nil, 0, nil))
	f.Add(encodeProducerSnapshot(10, []snapProducer{{part: 1, pid: 4, e: producerEntry{epoch: 1, txnOpen: true, txnFirst: 5}}},
		[]snapAborted{{part: 1, AbortedTxn: AbortedTxn{4, 1, 2}}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if ck, err := decodeCheckpoint(b, 7); err == nil {
			prod, np := encodeProducers(ck.producers)
			again, err := decodeCheckpoint(encodeCheckpoint(7, ck.entries, prod, np, ck.aborted), 7)
			if err != nil || !slices.Equal(again.entries, ck.entries) || !slices.Equal(again.aborted, ck.aborted) ||
				len(again.producers) != len(ck.producers) {
				t.Fatalf("checkpoint does not round trip: %v", err)
			}
		}
		if limit, ps, ab, err := decodeProducerSnapshot(b); err == nil && len(b) > 0 {
			l2, ps2, ab2, err := decodeProducerSnapshot(encodeProducerSnapshot(limit, ps, ab))
			if err != nil || l2 != limit || len(ps2) != len(ps) || !slices.Equal(ab2, ab) {
				t.Fatalf("producer snapshot does not round trip: %v", err)
			}
		}
	})
}
