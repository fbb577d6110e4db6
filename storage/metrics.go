package storage

import (
	"fmt"
	"time"

	"github.com/klite/klite/internal/hist"
)

// Metrics. The hot path only adds to atomics owned by one goroutine where
// it can (a partition's records and bytes in by its shard's syncer, the
// fsync and batch histograms by the syncer); everything is summed when
// the metrics endpoint asks, never on the way.

// FsyncBounds are the buckets of the fdatasync histogram, in nanoseconds:
// 50 µs to about 6.5 s, doubling.
var FsyncBounds = hist.Exp(50_000, 2, 18)

// BatchBounds are the buckets of the group-commit histogram: append
// requests acknowledged by one fdatasync, 1 to 4096, doubling.
var BatchBounds = hist.Exp(1, 2, 13)

// WALMetrics are the shards' histograms summed.
type WALMetrics struct {
	// Fsync is fdatasync durations in nanoseconds.
	Fsync hist.Snapshot
	// Batch is append requests per group commit (one fdatasync pass).
	Batch hist.Snapshot
}

// WALMetrics returns the fdatasync and group-commit histograms of all shards.
func (s *Store) WALMetrics() WALMetrics {
	var m WALMetrics
	for _, sh := range s.shards {
		m.Fsync = m.Fsync.Add(sh.fsyncHist.Snapshot())
		m.Batch = m.Batch.Add(sh.batchHist.Snapshot())
	}
	return m
}

// noteBatch counts the append requests one fdatasync pass acknowledges.
// Syncer only.
func (s *shard) noteBatch(batch []*group) {
	n := 0
	for _, g := range batch {
		n += len(g.reqs)
	}
	if n > 0 {
		s.batchHist.Observe(int64(n))
	}
}

// PartitionMetrics is one partition's counters for the metrics endpoint.
type PartitionMetrics struct {
	Topic     string
	Partition int32
	// RecordsIn and BytesIn count what was appended (batch bytes as
	// stored, published once durable); BytesOut what reads returned.
	RecordsIn, BytesIn, BytesOut int64
	HighWatermark, LogStart      int64
	// UploadPendingSince is the max timestamp (Unix ms) of the first chunk
	// at or above the tiered end, when the partition has acknowledged
	// records not yet in the bucket; 0 otherwise or without a bucket.
	UploadPendingSince int64
}

// EachPartition calls fn for every live partition, topics in no order. m
// is reused between calls: copy what is kept. It takes no lock the hot
// path takes; a scrape of 100k partitions costs a pass over them.
func (s *Store) EachPartition(fn func(m *PartitionMetrics)) {
	var m PartitionMetrics
	for _, t := range s.table.Load().byName {
		for _, p := range t.parts {
			if p.deleted.Load() {
				continue
			}
			hwm := p.hwm.Load()
			m = PartitionMetrics{Topic: t.info.Name, Partition: p.num,
				RecordsIn: p.recordsIn.Load(), BytesIn: p.bytesIn.Load(), BytesOut: p.bytesOut.Load(),
				HighWatermark: hwm, LogStart: p.logStart.Load()}
			if s.cfg.Cold != nil {
				if te := max(p.tieredEnd.Load(), m.LogStart); te < hwm {
					v := p.idx.view()
					if i := v.from(te); i >= v.first && i < v.n {
						m.UploadPendingSince = max(v.at(i).maxTs, 1)
					}
				}
			}
			fn(&m)
		}
	}
}

// TopicCount is the number of topics.
func (s *Store) TopicCount() int { return len(s.table.Load().byName) }

// walFullFor is how long after an append refused with ErrLogFull Health
// still reports the WAL full (while it is still over its cap).
const walFullFor = 2 * logFullEvery

// Health returns nil when every shard is writable, else why not: a shard
// failed after a disk error (offline until restart), or appends were
// refused with ErrLogFull lately and the WAL is still at its cap.
func (s *Store) Health() error {
	failed := 0
	for _, sh := range s.shards {
		if sh.failed.Load() {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d WAL shards offline after a disk error", failed, len(s.shards))
	}
	if last := s.maint.lastFull.Load(); last != 0 && time.Now().UnixNano()-last < int64(walFullFor) && s.overCap(s.walBytes.Load()) {
		return fmt.Errorf("WAL at its cap (%d of %d bytes) and nothing can be freed", s.walBytes.Load(), s.cfg.MaxWALBytes)
	}
	return nil
}

// MaxWALBytes is Config.MaxWALBytes (0: no cap).
func (s *Store) MaxWALBytes() int64 { return s.cfg.MaxWALBytes }
