package storage

import "golang.org/x/sys/unix"

// PartitionBytes returns the bytes of the partition's batches the WAL holds
// from its log start on: Kafka's local log size, which DescribeLogDirs
// reports. Data only in the bucket is not counted (Kafka's log dirs do not
// count remote segments either); a chunk partly below the log start counts
// whole, as Kafka counts a segment until it is deleted. A compacted
// partition's cleaned prefix counts what its compacted file holds.
func (s *Store) PartitionBytes(topic string, partition int32) (int64, error) {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return 0, err
	}
	if p.failed.Load() {
		return 0, ErrStorage
	}
	logStart := p.logStart.Load()
	var n int64
	from := logStart
	if c := p.comp.Load(); c != nil {
		// The compacted file's runs from the log start, then the WAL's
		// chunks above its cleaned end (compact.go).
		for _, e := range c.entries[c.from(logStart):] {
			n += e.length
		}
		from = max(from, c.end)
	}
	v := p.idx.view()
	i := v.from(from)
	if i >= v.n {
		return n, nil
	}
	return n + v.at(v.n-1).cumBytes - v.at(i).cumBytes + v.at(i).length, nil
}

// VolumeBytes returns the total size of the file system holding the WAL
// directory and the bytes an unprivileged writer may still use there
// (statfs: blocks and available blocks times the block size).
func (s *Store) VolumeBytes() (total, usable int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.cfg.Dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize, nil
}

// LatestTiered returns the highest offset of p in the bucket (Kafka's
// highest offset in remote storage, ListOffsets -5, KIP-1005), or -1 when
// nothing is tiered yet or the store has no tier (Config.Cold). After a
// restart it is -1 until the uploader has reported the partition's
// manifest (Uploaded), which it does before it frees anything it covers.
func (s *Store) LatestTiered(topic string, partition int32) (int64, error) {
	p, err := s.lookup(topic, partition)
	if err != nil {
		return -1, err
	}
	if p.failed.Load() {
		return -1, ErrStorage
	}
	if s.cfg.Cold == nil {
		return -1, nil
	}
	return p.tieredEnd.Load() - 1, nil
}
