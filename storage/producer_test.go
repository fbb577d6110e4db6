package storage

import (
	"errors"
	"math"
	"testing"

	"github.com/klite/klite/vfs"
)

func TestIdempotentProducer(t *testing.T) {
	type step struct {
		pid      int64
		epoch    int16
		seq      int32
		records  int
		wantErr  error
		wantBase int64 // checked when wantErr is nil
	}
	const pid = 7
	cases := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{
			{pid, 0, 0, 2, nil, 0}, {pid, 0, 2, 3, nil, 2}, {pid, 0, 5, 1, nil, 5},
		}},
		{"duplicate of last", []step{
			{pid, 0, 0, 2, nil, 0}, {pid, 0, 2, 3, nil, 2}, {pid, 0, 2, 3, nil, 2}, {pid, 0, 5, 1, nil, 5},
		}},
		{"duplicate within last five", []step{
			{pid, 0, 0, 1, nil, 0}, {pid, 0, 1, 1, nil, 1}, {pid, 0, 2, 1, nil, 2}, {pid, 0, 3, 1, nil, 3},
			{pid, 0, 4, 1, nil, 4}, {pid, 0, 0, 1, nil, 0}, {pid, 0, 5, 1, nil, 5},
			// seq 0 has now left the window: neither a duplicate nor next.
			{pid, 0, 0, 1, ErrOutOfOrderSequence, 0},
		}},
		{"gap", []step{
			{pid, 0, 0, 2, nil, 0}, {pid, 0, 5, 1, ErrOutOfOrderSequence, 0}, {pid, 0, 2, 1, nil, 2},
		}},
		{"old epoch", []step{
			{pid, 3, 0, 1, nil, 0}, {pid, 2, 1, 1, ErrInvalidProducerEpoch, 0}, {pid, 3, 1, 1, nil, 1},
		}},
		{"new epoch must start at zero", []step{
			{pid, 0, 0, 1, nil, 0}, {pid, 1, 4, 1, ErrOutOfOrderSequence, 0}, {pid, 1, 0, 1, nil, 1},
			// the old epoch's duplicate is no longer recognised
			{pid, 0, 0, 1, ErrInvalidProducerEpoch, 0},
		}},
		{"unknown producer accepts any sequence", []step{
			{pid, 5, 1234, 2, nil, 0}, {pid, 5, 1236, 1, nil, 2},
		}},
		{"sequence wraps to zero", []step{
			{pid, 0, math.MaxInt32 - 1, 2, nil, 0}, {pid, 0, 0, 3, nil, 2}, {pid, 0, 3, 1, nil, 5},
		}},
		{"wrapping batch", []step{
			{pid, 0, math.MaxInt32, 3, nil, 0}, {pid, 0, math.MaxInt32, 3, nil, 0}, {pid, 0, 2, 1, nil, 3},
		}},
		{"non-idempotent skips checks", []step{
			{-1, 0, 0, 1, nil, 0}, {-1, 0, 0, 1, nil, 1},
		}},
		{"producers are independent", []step{
			{pid, 0, 0, 1, nil, 0}, {pid + 1, 0, 9, 1, nil, 1}, {pid, 0, 1, 1, nil, 2}, {pid + 1, 0, 9, 1, nil, 1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t, testConfig(vfs.NewMemFS()))
			defer s.Close()
			mustCreate(t, s, "t", 1)
			for i, st := range tc.steps {
				b := makeBatch(batchSpec{records: st.records, pid: st.pid, epoch: st.epoch, seq: st.seq})
				r := appendWait(t, s, "t", 0, b, true)
				if st.wantErr != nil {
					if !errors.Is(r.Err, st.wantErr) {
						t.Fatalf("step %d: err %v, want %v", i, r.Err, st.wantErr)
					}
					continue
				}
				if r.Err != nil || r.BaseOffset != st.wantBase {
					t.Fatalf("step %d: %+v, want base %d", i, r, st.wantBase)
				}
			}
		})
	}
}

// TestIdempotentMultiBatch: a request's batches are admitted all or none.
func TestIdempotentMultiBatch(t *testing.T) {
	s := mustOpen(t, testConfig(vfs.NewMemFS()))
	defer s.Close()
	mustCreate(t, s, "t", 1)
	two := append(makeBatch(batchSpec{pid: 1, seq: 0, records: 2}), makeBatch(batchSpec{pid: 1, seq: 2, records: 2})...)
	if r := appendWait(t, s, "t", 0, two, true); r.Err != nil || r.BaseOffset != 0 {
		t.Fatalf("first: %+v", r)
	}
	if r := appendWait(t, s, "t", 0, two, true); r.Err != nil || r.BaseOffset != 0 {
		t.Fatalf("duplicate: %+v", r)
	}
	bad := append(makeBatch(batchSpec{pid: 1, seq: 4}), makeBatch(batchSpec{pid: 1, seq: 9})...)
	if r := appendWait(t, s, "t", 0, bad, true); !errors.Is(r.Err, ErrOutOfOrderSequence) {
		t.Fatalf("gap in second batch: %+v", r)
	}
	// Nothing of the rejected request was recorded: seq 4 is still next.
	if r := appendWait(t, s, "t", 0, makeBatch(batchSpec{pid: 1, seq: 4}), true); r.Err != nil || r.BaseOffset != 4 {
		t.Fatalf("after rejected: %+v", r)
	}
}

// TestDedupSurvivesReopen: producer state comes back from checkpoints and
// the WAL tail, after a clean close and after a crash.
func TestDedupSurvivesReopen(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := "close"
		if crash {
			name = "crash"
		}
		t.Run(name, func(t *testing.T) {
			fsys := vfs.NewMemFS()
			cfg := testConfig(fsys)
			s := mustOpen(t, cfg)
			mustCreate(t, s, "t", 2)
			// Enough to roll segments, so state comes from a checkpoint
			// snapshot plus the replayed tail.
			var last [2]AppendResult
			var seq [2]int32
			for i := 0; i < 90; i++ {
				p := int32(i % 2)
				b := makeBatch(batchSpec{records: 2, pid: 42, epoch: 3, seq: seq[p], value: make([]byte, 1500)})
				last[p] = appendWait(t, s, "t", p, b, true)
				if last[p].Err != nil {
					t.Fatal(last[p].Err)
				}
				seq[p] += 2
			}
			if s.Stats().SegmentsRoll == 0 {
				t.Fatal("no segment rolled")
			}
			eventually(t, "a checkpoint", func() bool { return countSuffix(fsys.Files("/data"), idxSuffix) > 0 })
			reopenCfg := cfg
			if crash {
				reopenCfg.FS = fsys.CrashClone(vfs.CrashDropUnsynced, 1)
				defer s.Close()
			} else {
				s.Close()
			}
			s2 := mustOpen(t, reopenCfg)
			defer s2.Close()
			if rs := s2.Stats().Recovery; rs.FromCheckpoint == 0 {
				t.Fatalf("no checkpoint used: %+v", rs)
			}
			for p := int32(0); p < 2; p++ {
				b := makeBatch(batchSpec{records: 2, pid: 42, epoch: 3, seq: seq[p] - 2, value: make([]byte, 1500)})
				r := appendWait(t, s2, "t", p, b, true)
				if r.Err != nil || r.BaseOffset != last[p].BaseOffset {
					t.Fatalf("retry after reopen: %+v, want base %d", r, last[p].BaseOffset)
				}
				b = makeBatch(batchSpec{records: 1, pid: 42, epoch: 3, seq: seq[p]})
				if r := appendWait(t, s2, "t", p, b, true); r.Err != nil || r.BaseOffset != last[p].BaseOffset+2 {
					t.Fatalf("next after reopen: %+v", r)
				}
				b = makeBatch(batchSpec{records: 1, pid: 42, epoch: 2, seq: seq[p] + 1})
				if r := appendWait(t, s2, "t", p, b, true); !errors.Is(r.Err, ErrInvalidProducerEpoch) {
					t.Fatalf("old epoch after reopen: %+v", r)
				}
			}
		})
	}
}

// TestProducersWhileAppending: Producers reads the writer's producer state
// while appends change it (run with -race): each answer is a state the
// producer was in, its last sequence never goes back, and the last answer
// has the last batch.
func TestProducersWhileAppending(t *testing.T) {
	cfg := testConfig(vfs.NewMemFS())
	cfg.Shards = 2
	s := mustOpen(t, cfg)
	defer s.Close()
	mustCreate(t, s, "p", 2)
	const batches = 200
	done := make(chan error, 1)
	go func() {
		for i := range batches {
			ch := make(chan AppendResult, 1)
			s.Append("p", int32(i%2), makeBatch(batchSpec{records: 1, pid: 9, seq: int32(i / 2)}), false, func(r AppendResult) { ch <- r })
			if r := <-ch; r.Err != nil {
				done <- r.Err
				return
			}
		}
		done <- nil
	}()
	last := [2]int32{-1, -1}
	check := func() {
		for _, pp := range s.Producers("p", []int32{0, 1}) {
			if pp.Err != nil || len(pp.Producers) > 1 {
				t.Fatalf("partition %d: %+v", pp.Partition, pp)
			}
			if len(pp.Producers) == 0 {
				continue
			}
			pr := pp.Producers[0]
			if pr.ID != 9 || pr.LastSequence < last[pp.Partition] || pr.TxnStart != -1 {
				t.Fatalf("partition %d: %+v after last sequence %d", pp.Partition, pr, last[pp.Partition])
			}
			last[pp.Partition] = pr.LastSequence
		}
	}
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			check()
			if last != [2]int32{batches/2 - 1, batches/2 - 1} {
				t.Fatalf("last sequences %v, want %d on both", last, batches/2-1)
			}
			return
		default:
			check()
		}
	}
}
