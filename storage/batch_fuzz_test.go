package storage

import (
	"testing"
)

// FuzzValidateBatch: ValidateBatch and NextBatch never panic on any input;
// NextBatch never returns more than its input, and splits it exactly
// (batch + rest == input); a batch ValidateBatch accepts is exactly one
// batch by NextBatch's framing too.
func FuzzValidateBatch(f *testing.F) {
	f.Add(makeBatch(batchSpec{}))
	f.Add(makeBatch(batchSpec{records: 3, value: []byte("hello"), pid: 5, seq: 7}))
	f.Add(append(makeBatch(batchSpec{records: 2}), makeBatch(batchSpec{})...))
	f.Add([]byte{})
	f.Add(make([]byte, BatchHeaderBytes))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ValidateBatch(b)
		if err == nil {
			if h.Size() != len(b) || h.Magic != 2 {
				t.Fatalf("accepted batch with size %d of %d bytes, magic %d", h.Size(), len(b), h.Magic)
			}
			batch, rest, err := NextBatch(b)
			if err != nil || len(batch) != len(b) || len(rest) != 0 {
				t.Fatalf("valid batch framed as %d+%d, %v", len(batch), len(rest), err)
			}
		}
		for rest := b; len(rest) > 0; {
			batch, next, err := NextBatch(rest)
			if err != nil {
				break
			}
			if len(batch) < BatchHeaderBytes || len(batch)+len(next) != len(rest) {
				t.Fatalf("NextBatch split %d into %d+%d", len(rest), len(batch), len(next))
			}
			_, _ = ValidateBatch(batch)
			rest = next
		}
	})
}
