package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"sort"

	"github.com/klite/klite/tier"
)

// Metadata snapshot and disaster recovery: Snapshot describes the store
// for the bucket (tier.MetaSnapshot), Restore rebuilds an empty store from
// one. See their method docs and tier/doc.go.

// ErrNotEmpty: Restore runs only on a store without topics.
var ErrNotEmpty = errors.New("storage: restore needs a store without topics")

// Producer snapshot (tier.MetaSnapshot.Producers). Part of the bucket
// format; big-endian. Partitions are named by topic ID and number (keys
// are local to a data directory):
//
//	| magic "KLPS" u32 | version u8 =2 | 0 u8 | 0 u16 | producer id limit i64 | entries u32 |
//	| entry: topic ID [16] | partition i32 | pid i64 | epoch i16 | n u8 | flags u8 | lastMs i64 |
//	|        [txnFirst i64 when flags has producerTxnOpen] |
//	|        n x (firstSeq i32 | lastSeq i32 | base i64 | last i64), oldest first |
//	| aborted u32 | aborted x (topic ID [16] | partition i32 | pid i64 | first i64 | last i64) |
//	| CRC-32C u32 of everything before |
//
// Version 1 (before transactions) has flags 0 and no aborted section; both
// decode. The aborted transactions are the partitions' aborted index
// (txn.go) at or above their log starts, so read_committed reads of the
// tiered data still skip aborted records after a restore.
//
// The producer id limit is the first id the snapshotting store never
// handed out: a restored store continues above it, so new producers never
// collide with restored state.
const (
	prodSnapMagic      = 0x4B4C5053 // "KLPS"
	prodSnapVersion    = 2
	prodSnapVersion1   = 1
	prodSnapHeader     = 20
	prodSnapEntryFixed = 16 + 4 + 8 + 2 + 2 + 8
	prodSnapBatchBytes = 24
	prodSnapAborted    = 16 + 4 + 8 + 8 + 8
)

var errProducerSnapshot = errors.New("storage: bad producer snapshot")

// snapProducer is one producer's state on one partition.
type snapProducer struct {
	topic TopicID
	part  int32
	pid   int64
	e     producerEntry
}

// snapAborted is one aborted transaction of a partition.
type snapAborted struct {
	topic TopicID
	part  int32
	AbortedTxn
}

func encodeProducerSnapshot(limit int64, ps []snapProducer, aborted []snapAborted) []byte {
	be := binary.BigEndian
	b := make([]byte, prodSnapHeader, prodSnapHeader+len(ps)*(prodSnapEntryFixed+2*prodSnapBatchBytes)+4)
	be.PutUint32(b[0:], prodSnapMagic)
	b[4] = prodSnapVersion
	be.PutUint64(b[8:], uint64(limit))
	be.PutUint32(b[16:], uint32(len(ps)))
	for i := range ps {
		sp := &ps[i]
		b = append(b, sp.topic[:]...)
		b = be.AppendUint32(b, uint32(sp.part))
		b = be.AppendUint64(b, uint64(sp.pid))
		b = be.AppendUint16(b, uint16(sp.e.epoch))
		var flags uint8
		if sp.e.txnOpen {
			flags |= producerTxnOpen
		}
		b = append(b, sp.e.n, flags)
		b = be.AppendUint64(b, uint64(sp.e.lastMs))
		if sp.e.txnOpen {
			b = be.AppendUint64(b, uint64(sp.e.txnFirst))
		}
		for k := 0; k < int(sp.e.n); k++ {
			pb := &sp.e.b[(int(sp.e.head)+k)%producerBatchesKept]
			b = be.AppendUint32(b, uint32(pb.firstSeq))
			b = be.AppendUint32(b, uint32(pb.lastSeq))
			b = be.AppendUint64(b, uint64(pb.base))
			b = be.AppendUint64(b, uint64(pb.last))
		}
	}
	b = be.AppendUint32(b, uint32(len(aborted)))
	for _, a := range aborted {
		b = append(b, a.topic[:]...)
		b = be.AppendUint32(b, uint32(a.part))
		b = be.AppendUint64(b, uint64(a.ProducerID))
		b = be.AppendUint64(b, uint64(a.FirstOffset))
		b = be.AppendUint64(b, uint64(a.LastOffset))
	}
	return be.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeProducerSnapshot decodes Producers; empty input is no producers.
func decodeProducerSnapshot(b []byte) (limit int64, ps []snapProducer, aborted []snapAborted, err error) {
	if len(b) == 0 {
		return 0, nil, nil, nil
	}
	be := binary.BigEndian
	if len(b) < prodSnapHeader+4 {
		return 0, nil, nil, errProducerSnapshot
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != be.Uint32(b[len(b)-4:]) {
		return 0, nil, nil, fmt.Errorf("%w: CRC mismatch", errProducerSnapshot)
	}
	version := body[4]
	if be.Uint32(body) != prodSnapMagic || (version != prodSnapVersion && version != prodSnapVersion1) {
		return 0, nil, nil, fmt.Errorf("%w: magic or version", errProducerSnapshot)
	}
	limit = int64(be.Uint64(body[8:]))
	n := int(be.Uint32(body[16:]))
	rest := body[prodSnapHeader:]
	if limit < 0 || n > len(rest)/prodSnapEntryFixed {
		return 0, nil, nil, errProducerSnapshot
	}
	ps = make([]snapProducer, 0, n)
	for range n {
		if len(rest) < prodSnapEntryFixed {
			return 0, nil, nil, errProducerSnapshot
		}
		var sp snapProducer
		copy(sp.topic[:], rest)
		sp.part = int32(be.Uint32(rest[16:]))
		sp.pid = int64(be.Uint64(rest[20:]))
		sp.e.epoch = int16(be.Uint16(rest[28:]))
		nb, flags := int(rest[30]), rest[31]
		sp.e.lastMs = int64(be.Uint64(rest[32:]))
		rest = rest[prodSnapEntryFixed:]
		if flags&^producerTxnOpen != 0 || (version == prodSnapVersion1 && flags != 0) {
			return 0, nil, nil, errProducerSnapshot
		}
		if flags&producerTxnOpen != 0 {
			if len(rest) < 8 {
				return 0, nil, nil, errProducerSnapshot
			}
			sp.e.txnOpen, sp.e.txnFirst = true, int64(be.Uint64(rest))
			rest = rest[8:]
		}
		if nb > producerBatchesKept || len(rest) < nb*prodSnapBatchBytes || sp.part < 0 || sp.pid < 0 {
			return 0, nil, nil, errProducerSnapshot
		}
		for k := range nb {
			r := rest[k*prodSnapBatchBytes:]
			sp.e.push(producerBatch{firstSeq: int32(be.Uint32(r)), lastSeq: int32(be.Uint32(r[4:])),
				base: int64(be.Uint64(r[8:])), last: int64(be.Uint64(r[16:]))})
		}
		rest = rest[nb*prodSnapBatchBytes:]
		ps = append(ps, sp)
	}
	if version >= prodSnapVersion {
		if len(rest) < 4 {
			return 0, nil, nil, errProducerSnapshot
		}
		na := int(be.Uint32(rest))
		rest = rest[4:]
		if na > len(rest)/prodSnapAborted {
			return 0, nil, nil, errProducerSnapshot
		}
		aborted = make([]snapAborted, na)
		for i := range aborted {
			a := &aborted[i]
			copy(a.topic[:], rest)
			a.part = int32(be.Uint32(rest[16:]))
			a.AbortedTxn = AbortedTxn{ProducerID: int64(be.Uint64(rest[20:])), FirstOffset: int64(be.Uint64(rest[28:])),
				LastOffset: int64(be.Uint64(rest[36:]))}
			if a.part < 0 {
				return 0, nil, nil, errProducerSnapshot
			}
			rest = rest[prodSnapAborted:]
		}
	}
	if len(rest) != 0 {
		return 0, nil, nil, errProducerSnapshot
	}
	return limit, ps, aborted, nil
}

// restoreAborted installs a snapshot's aborted transactions into the
// restored partitions: those with data below the restored log end and a
// marker at or above the log start.
func restoreAborted(byID map[TopicID]*topic, aborted []snapAborted) {
	for _, a := range aborted {
		t := byID[a.topic]
		if t == nil || a.part >= int32(len(t.parts)) {
			continue
		}
		p := t.parts[a.part]
		if a.FirstOffset >= p.hwm.Load() || a.LastOffset < p.logStart.Load() {
			continue
		}
		tx := p.txnState()
		tx.mu.Lock()
		tx.addAborted(a.AbortedTxn)
		tx.mu.Unlock()
	}
}

// onWriter runs fn on sh's writer goroutine, between group commits (the
// producer state is the writer's alone), and waits for it.
func (sh *shard) onWriter(fn func()) error {
	done := make(chan struct{})
	select {
	case sh.calls <- func() { fn(); close(done) }:
	case <-sh.stop:
		return ErrClosed
	}
	<-done
	return nil
}

// Snapshot describes the store for the bucket: topics with IDs, configs
// and log starts, and the idempotent producer state (Offsets is left to
// the group coordinator). A shard that is closing contributes no
// producers.
func (s *Store) Snapshot() tier.MetaSnapshot {
	tab := s.table.Load()
	var snap tier.MetaSnapshot
	for _, t := range tab.byName {
		st := tier.SnapshotTopic{Name: t.info.Name, ID: t.info.ID, Partitions: int32(len(t.parts)),
			Configs: maps.Clone(t.info.Configs), LogStart: make([]int64, len(t.parts))}
		for i, p := range t.parts {
			st.LogStart[i] = p.logStart.Load()
		}
		snap.Topics = append(snap.Topics, st)
	}
	sort.Slice(snap.Topics, func(i, j int) bool { return snap.Topics[i].Name < snap.Topics[j].Name })
	snap.ACLs = encodeACLs(s.ACLs())

	pms := make([]producerMap, len(s.shards))
	for i, sh := range s.shards {
		_ = sh.onWriter(func() { pms[i] = sh.producers.clone() })
	}
	s.pidMu.Lock()
	limit := s.pidDurable // every id handed out is below it
	s.pidMu.Unlock()
	var ps []snapProducer
	var aborted []snapAborted
	s.metaMu.Lock()
	for _, t := range tab.byName {
		for _, p := range t.parts {
			tx := p.txns.Load()
			if tx == nil || p.deleted.Load() {
				continue
			}
			logStart := p.logStart.Load()
			tx.mu.Lock()
			for _, a := range tx.aborted {
				if a.LastOffset >= logStart {
					aborted = append(aborted, snapAborted{topic: t.info.ID, part: p.num, AbortedTxn: a})
				}
			}
			tx.mu.Unlock()
		}
	}
	for _, m := range pms {
		for k, e := range m {
			p := s.byKey[k.key]
			if p == nil || p.deleted.Load() {
				continue
			}
			ps = append(ps, snapProducer{topic: p.t.info.ID, part: p.num, pid: k.pid, e: *e})
		}
	}
	s.metaMu.Unlock()
	slices.SortFunc(ps, func(a, b snapProducer) int {
		if c := bytes.Compare(a.topic[:], b.topic[:]); c != 0 {
			return c
		}
		if a.part != b.part {
			return int(a.part - b.part)
		}
		return int(max(-1, min(1, a.pid-b.pid)))
	})
	snap.Producers = encodeProducerSnapshot(limit, ps, aborted)
	snap.Users = encodeCredentials(s.ScramCredentials())
	snap.Quotas = encodeQuotas(s.Quotas())
	s.metaMu.Lock()
	snap.BrokerConfigs = encodeBrokerConfigs(s.mstate.brokerConfigsCopy())
	s.metaMu.Unlock()
	return snap
}

// Restore rebuilds a store opened on an empty Dir from a metadata snapshot
// (disaster recovery): it creates snap's topics with their IDs and
// configs and loads snap.Producers. next holds each partition's tiered end
// (its manifest's NextOffset; 0 when absent). Each partition's log
// continues at
// max(next[p], its log start), where the log start is the snapshot's,
// raised to the manifest's when Config.Cold is set; everything below is
// marked uploaded. The result is in the metadata log before Restore returns, so
// a restart without the bucket keeps it. Restored producer state lives in
// memory until the shard seals a segment (its checkpoint keeps it): a
// restart before that forgets it, which only weakens duplicate detection
// for producers that were in flight during the disaster. Call it before
// serving clients.
func (s *Store) Restore(snap *tier.MetaSnapshot, next map[tier.Partition]int64) error {
	if snap == nil {
		return errors.New("storage: restore: no snapshot")
	}
	acls, err := decodeACLs(snap.ACLs)
	if err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	limit, prods, aborted, err := decodeProducerSnapshot(snap.Producers)
	if err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	creds, err := decodeCredentials(snap.Users)
	if err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	quotas, err := decodeQuotas(snap.Quotas)
	if err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	brokerCfgs, err := decodeBrokerConfigs(snap.BrokerConfigs)
	if err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	names, ids := map[string]bool{}, map[TopicID]bool{}
	for _, st := range snap.Topics {
		if st.Name == "" || names[st.Name] || ids[st.ID] {
			return fmt.Errorf("storage: restore: topic %q (id %x) empty or repeated", st.Name, st.ID)
		}
		if st.Partitions <= 0 || st.Partitions > s.cfg.MaxPartitions {
			return fmt.Errorf("%w: restore: topic %q has %d", ErrInvalidPartitions, st.Name, st.Partitions)
		}
		names[st.Name], ids[st.ID] = true, true
	}
	// Log starts: the snapshot's, at least the tier's (its retention may
	// have run after the snapshot was taken).
	starts := map[tier.Partition]int64{}
	for _, st := range snap.Topics {
		for i := range st.Partitions {
			tp := tier.Partition{Topic: st.Name, TopicID: st.ID, Partition: i}
			if int(i) < len(st.LogStart) {
				starts[tp] = max(0, st.LogStart[i])
			}
			if s.cfg.Cold == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), coldReadTimeout)
			m, err := s.cfg.Cold.Manifest(ctx, tp)
			cancel()
			if err != nil {
				return fmt.Errorf("storage: restore: manifest of %s/%d: %w", st.Name, i, err)
			}
			if m != nil { // empty (all retained, or restarted past its end): nothing below NextOffset
				starts[tp] = max(starts[tp], m.LogStartOffset)
			}
		}
	}

	// Every topic is one create record carrying its log starts and
	// next_mins; the last record's apply builds and publishes them all.
	var perShard []map[producerKey]*producerEntry
	var restoredTopics map[TopicID]*topic
	err = s.commit(func() (*metaWait, error) {
		if s.isClosed() {
			return nil, ErrClosed
		}
		if len(s.table.Load().byName) > 0 || len(s.mstate.topics) > 0 {
			return nil, ErrNotEmpty
		}
		var total int64
		for _, st := range snap.Topics {
			total += int64(st.Partitions)
		}
		if err := s.checkTotal(total); err != nil {
			return nil, err
		}
		if len(acls) > 0 {
			if _, err := s.changeLocked(&metaRecord{Op: opCreateACLs, ACLs: acls}, nil); err != nil {
				return nil, err
			}
		}
		type restored struct {
			st  *tier.SnapshotTopic
			mps []metaPartition
		}
		var all []restored
		for i := range snap.Topics {
			st := &snap.Topics[i]
			mt := &metaTopic{Name: st.Name, ID: TopicID(st.ID).String(), Configs: maps.Clone(st.Configs)}
			mt.Partitions = s.mstate.newPartitions(st.Partitions)
			for i := range mt.Partitions {
				tp := tier.Partition{Topic: st.Name, TopicID: st.ID, Partition: int32(i)}
				ls := starts[tp]
				mt.Partitions[i].LogStart, mt.Partitions[i].NextMin = ls, max(next[tp], ls) // nothing readable below the log start: continue at it
			}
			all = append(all, restored{st, slices.Clone(mt.Partitions)})
			if _, err := s.changeLocked(&metaRecord{Op: opCreateTopic, Topic: mt}, nil); err != nil {
				return nil, err
			}
		}
		for i := range creds {
			if _, err := s.changeLocked(&metaRecord{Op: opSetCredential, Credential: &creds[i]}, nil); err != nil {
				return nil, err
			}
		}
		if len(quotas) > 0 {
			if _, err := s.changeLocked(&metaRecord{Op: opSetQuotas, Quotas: quotas}, nil); err != nil {
				return nil, err
			}
		}
		for name, cs := range brokerCfgs {
			if _, err := s.changeLocked(&metaRecord{Op: opSetBrokerConfigs, Name: name, Configs: cs}, func(*tableDraft) func() {
				s.publishBrokerConfig(name, cs)
				return nil
			}); err != nil {
				return nil, err
			}
		}
		return s.changeLocked(&metaRecord{Op: opProducerIDs, Limit: max(s.mstate.pidLimit, limit)}, func(d *tableDraft) func() {
			byID := map[TopicID]*topic{}
			for _, r := range all {
				t, err := s.buildTopic(r.st.Name, TopicID(r.st.ID).String(), r.st.Configs, r.mps)
				if err != nil {
					panic(err) // ids were checked above, shards made by newPartitions
				}
				for i, p := range t.parts {
					// Not yet published, so no append can reach the
					// writer: setting its fields here happens before any
					// use there.
					nx := r.mps[i].NextMin
					p.next = nx
					p.hwm.Store(nx)
					p.tieredEnd.Store(nx)
				}
				d.put(t)
				byID[t.info.ID] = t
			}
			// Producer state, per shard, for the new partitions. Batches
			// past the restored log end are not in it: forget them, so a
			// retry of one is written again instead of being acknowledged
			// as a duplicate.
			perShard = make([]map[producerKey]*producerEntry, len(s.shards))
			for _, sp := range prods {
				t := byID[sp.topic]
				if t == nil || sp.part >= int32(len(t.parts)) {
					continue
				}
				p := t.parts[sp.part]
				e := &producerEntry{epoch: sp.e.epoch, lastMs: sp.e.lastMs}
				if sp.e.txnOpen && sp.e.txnFirst < p.next {
					// Its data is in the bucket; the coordinator ends it.
					e.txnOpen, e.txnFirst = true, sp.e.txnFirst
				}
				for k := 0; k < int(sp.e.n); k++ {
					if pb := sp.e.b[(int(sp.e.head)+k)%producerBatchesKept]; pb.last < p.next {
						e.push(pb)
					}
				}
				i := p.sh.id
				if perShard[i] == nil {
					perShard[i] = map[producerKey]*producerEntry{}
				}
				perShard[i][producerKey{pid: sp.pid, key: p.key}] = e
			}
			restoredTopics = byID
			return nil
		})
	})
	if err != nil {
		if !errors.Is(err, ErrNotEmpty) && !errors.Is(err, ErrClosed) {
			s.log.Error().Err(err).Msg("persisting restored metadata failed")
		}
		return err
	}
	s.pidMu.Lock()
	s.nextPID = max(s.nextPID, limit)
	s.pidDurable = max(s.pidDurable, limit)
	s.pidMu.Unlock()

	// Outside metaMu: the writer may be waiting on work that takes it.
	for i, m := range perShard {
		if len(m) == 0 {
			continue
		}
		sh := s.shards[i]
		if err := sh.onWriter(func() { maps.Copy(sh.producers, m) }); err != nil {
			return err
		}
		sh.installTxns(m, nil)
	}
	restoreAborted(restoredTopics, aborted)
	s.log.Info().Int("topics", len(snap.Topics)).Int("producers", len(prods)).Msg("restored from metadata snapshot")
	return nil
}
