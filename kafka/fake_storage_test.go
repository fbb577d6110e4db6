package kafka

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"sync"

	"github.com/klite/klite/storage"
)

// fakeStore is an in-memory Storage for handler unit tests only. It follows
// the contract on storage.Store's methods: whole batches, KIP-74 first batch, Watch
// firing at once when already satisfied, done on another goroutine.
type fakeStore struct {
	mu      sync.Mutex
	topics  map[string]*fakeTopic
	nextPID int64

	appendErr   error // returned by Append when set
	createErr   error // returned by CreateTopic when set
	maxTotal    int64 // partitions of all topics (0: no cap)
	watchers    int   // live watchers, for tests that wait on them
	watchSignal chan struct{}
	appendSync  bool // run done on the caller's goroutine
}

type fakeTopic struct {
	info  storage.TopicInfo
	parts []*fakePart
}

type fakePart struct {
	file     *memFile
	batches  []fakeBatch
	logStart int64
	// localStart simulates tiering: the first offset "in the WAL" when
	// above logStart (LocalStart); tests set it.
	localStart int64
	hwm        int64
	watches    map[int]fakeWatch
	nextW      int
	// Transactions: open ones by producer id (first offset), aborted ones
	// in marker order, producer epochs as the markers saw them.
	open    map[int64]int64
	aborted []storage.AbortedTxn
	epochs  map[int64]int16
	seqs    map[int64]int32 // last sequence of the epoch, -1 after a bump
}

type fakeBatch struct {
	base, last int64
	pos, size  int64
	maxTs      int64
}

type fakeWatch struct {
	after int64
	fn    func()
}

func newFakeStore() *fakeStore {
	return &fakeStore{topics: map[string]*fakeTopic{}, nextPID: 1000, watchSignal: make(chan struct{}, 1)}
}

// memFile is a SendFile without a descriptor.
type memFile struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off < 0 || off > int64(len(m.buf)) {
		return 0, io.EOF
	}
	n := copy(p, m.buf[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) Fd() uintptr { return ^uintptr(0) }

func (s *fakeStore) CreateTopic(name string, partitions int32, configs map[string]string) (storage.TopicInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.createErr != nil {
		return storage.TopicInfo{}, s.createErr
	}
	if err := s.checkCreateLocked(name, partitions); err != nil {
		return storage.TopicInfo{}, err
	}
	t := &fakeTopic{info: storage.TopicInfo{Name: name, Partitions: partitions, Configs: configs}}
	_, _ = rand.Read(t.info.ID[:])
	for range partitions {
		t.parts = append(t.parts, &fakePart{file: &memFile{}, watches: map[int]fakeWatch{}})
	}
	s.topics[name] = t
	return t.info, nil
}

func (s *fakeStore) CheckCreate(name string, partitions int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkCreateLocked(name, partitions)
}

func (s *fakeStore) checkCreateLocked(name string, partitions int32) error {
	if _, ok := s.topics[name]; ok {
		return storage.ErrTopicExists
	}
	if partitions <= 0 {
		return storage.ErrInvalidPartitions
	}
	for other := range s.topics {
		if strings.ReplaceAll(other, ".", "_") == strings.ReplaceAll(name, ".", "_") {
			return fmt.Errorf("%w: topic '%s' collides with existing topic: %s", storage.ErrTopicCollision, name, other)
		}
	}
	return s.checkTotal(int64(partitions))
}

func (s *fakeStore) CheckGrow(name string, count int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.topics[name]
	if !ok {
		return storage.ErrUnknownTopic
	}
	if count <= t.info.Partitions {
		return storage.ErrInvalidPartitions
	}
	return s.checkTotal(int64(count - t.info.Partitions))
}

// checkTotal applies maxTotal (0: no cap) as storage applies
// MaxTotalPartitions.
func (s *fakeStore) checkTotal(n int64) error {
	var have int64
	for _, t := range s.topics {
		have += int64(t.info.Partitions)
	}
	if s.maxTotal > 0 && have+n > s.maxTotal {
		return fmt.Errorf("%w: %d partitions exist and %d more would pass the broker's limit of %d", storage.ErrPartitionLimit, have, n, s.maxTotal)
	}
	return nil
}

func (s *fakeStore) SetTopicConfigs(name string, configs map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.createErr != nil {
		return s.createErr
	}
	t, ok := s.topics[name]
	if !ok {
		return storage.ErrUnknownTopic
	}
	t.info.Configs = maps.Clone(configs)
	if t.info.Configs == nil {
		t.info.Configs = map[string]string{}
	}
	return nil
}

func (s *fakeStore) CreatePartitions(name string, count int32) (storage.TopicInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.createErr != nil {
		return storage.TopicInfo{}, s.createErr
	}
	t, ok := s.topics[name]
	if !ok {
		return storage.TopicInfo{}, storage.ErrUnknownTopic
	}
	if count <= t.info.Partitions {
		return storage.TopicInfo{}, storage.ErrInvalidPartitions
	}
	if err := s.checkTotal(int64(count - t.info.Partitions)); err != nil {
		return storage.TopicInfo{}, err
	}
	for range count - t.info.Partitions {
		t.parts = append(t.parts, &fakePart{file: &memFile{}, watches: map[int]fakeWatch{}})
	}
	t.info.Partitions = count
	return t.info, nil
}

func (s *fakeStore) DeleteTopic(name string) error {
	s.mu.Lock()
	t, ok := s.topics[name]
	if !ok {
		s.mu.Unlock()
		return storage.ErrUnknownTopic
	}
	delete(s.topics, name)
	var fire []func()
	for _, p := range t.parts {
		for id, w := range p.watches {
			fire = append(fire, w.fn)
			delete(p.watches, id)
			s.watchers--
		}
	}
	s.mu.Unlock()
	for _, fn := range fire {
		fn()
	}
	return nil
}

func (s *fakeStore) Topics() []storage.TopicInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.TopicInfo
	for _, t := range s.topics {
		out = append(out, t.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *fakeStore) Topic(name string) (storage.TopicInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.topics[name]
	if !ok {
		return storage.TopicInfo{}, false
	}
	return t.info, true
}

func (s *fakeStore) TopicByID(id storage.TopicID) (storage.TopicInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.topics {
		if t.info.ID == id {
			return t.info, true
		}
	}
	return storage.TopicInfo{}, false
}

func (s *fakeStore) part(topic string, partition int32) (*fakePart, error) {
	t, ok := s.topics[topic]
	if !ok || partition < 0 || int(partition) >= len(t.parts) {
		return nil, storage.ErrUnknownTopic
	}
	return t.parts[partition], nil
}

func (s *fakeStore) Append(topic string, partition int32, batches []byte, durable bool, done func(storage.AppendResult)) {
	res, fire := s.append(topic, partition, batches)
	run := func() {
		for _, fn := range fire {
			fn()
		}
		done(res)
	}
	if s.appendSync {
		run()
	} else {
		go run()
	}
}

func (s *fakeStore) append(topic string, partition int32, batches []byte) (storage.AppendResult, []func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.appendErr != nil {
		return storage.AppendResult{Err: s.appendErr}, nil
	}
	p, err := s.part(topic, partition)
	if err != nil {
		return storage.AppendResult{Err: err}, nil
	}
	res := storage.AppendResult{BaseOffset: p.hwm, LogAppendTime: -1, LogStartOffset: p.logStart}
	rest := batches
	for len(rest) > 0 {
		b, r, err := storage.NextBatch(rest)
		if err != nil {
			return storage.AppendResult{Err: err}, nil
		}
		rest = r
		h, err := storage.ValidateBatch(b)
		if err != nil {
			return storage.AppendResult{Err: err}, nil
		}
		if err := p.txnAppend(b, &h); err != nil {
			return storage.AppendResult{Err: err}, nil
		}
		cp := append([]byte(nil), b...)
		storage.SetBaseOffset(cp, p.hwm)
		p.file.mu.Lock()
		pos := int64(len(p.file.buf))
		p.file.buf = append(p.file.buf, cp...)
		p.file.mu.Unlock()
		p.batches = append(p.batches, fakeBatch{base: p.hwm, last: p.hwm + int64(h.LastOffsetDelta), pos: pos, size: int64(len(cp)), maxTs: h.MaxTimestamp})
		p.hwm += int64(h.LastOffsetDelta) + 1
	}
	var fire []func()
	for id, w := range p.watches {
		if p.hwm > w.after {
			fire = append(fire, w.fn)
			delete(p.watches, id)
			s.watchers--
		}
	}
	return res, fire
}

// txnAppend applies a batch to the transaction state (one batch of a
// request: the handlers send one), as storage does.
func (p *fakePart) txnAppend(b []byte, h *storage.BatchHeader) error {
	if h.ProducerID < 0 {
		return nil
	}
	if p.open == nil {
		p.open, p.epochs, p.seqs = map[int64]int64{}, map[int64]int16{}, map[int64]int32{}
	}
	e, ok := p.epochs[h.ProducerID]
	if ok && h.ProducerEpoch < e {
		return storage.ErrInvalidProducerEpoch
	}
	if !ok || h.ProducerEpoch > e {
		p.seqs[h.ProducerID] = -1
	}
	p.epochs[h.ProducerID] = h.ProducerEpoch
	if !h.Control() {
		p.seqs[h.ProducerID] = h.BaseSequence + h.LastOffsetDelta
		if _, ok := p.open[h.ProducerID]; h.Transactional() && !ok {
			p.open[h.ProducerID] = p.hwm
		}
		return nil
	}
	commit, ok := storage.MarkerCommit(b)
	if !ok {
		return storage.ErrInvalidTxnMarker
	}
	first, wasOpen := p.open[h.ProducerID]
	delete(p.open, h.ProducerID)
	if wasOpen && !commit {
		p.aborted = append(p.aborted, storage.AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: p.hwm})
	}
	return nil
}

// lso is the partition's last stable offset. s.mu held.
func (p *fakePart) lso() int64 {
	l := p.hwm
	for _, first := range p.open {
		l = min(l, first)
	}
	return max(l, p.logStart)
}

func (s *fakeStore) Read(topic string, partition int32, offset int64, maxBytes int64) storage.ReadResult {
	return s.read(topic, partition, offset, maxBytes, false)
}

func (s *fakeStore) ReadCommitted(topic string, partition int32, offset int64, maxBytes int64) storage.ReadResult {
	return s.read(topic, partition, offset, maxBytes, true)
}

func (s *fakeStore) read(topic string, partition int32, offset int64, maxBytes int64, committed bool) storage.ReadResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.part(topic, partition)
	if err != nil {
		return storage.ReadResult{Err: err}
	}
	res := storage.ReadResult{HighWatermark: p.hwm, LastStableOffset: p.lso(), LogStartOffset: p.logStart}
	if offset < p.logStart || offset > p.hwm {
		res.Err = storage.ErrOffsetOutOfRange
		return res
	}
	end := p.hwm
	if committed {
		end = res.LastStableOffset
	}
	for _, b := range p.batches {
		if b.last < offset {
			continue
		}
		if b.base >= end {
			break
		}
		if len(res.Chunks) > 0 && res.Bytes+b.size > maxBytes {
			break
		}
		// One chunk per batch, to exercise multi-part splicing.
		res.Chunks = append(res.Chunks, storage.Chunk{File: p.file, Off: b.pos, Len: b.size})
		res.Bytes += b.size
	}
	return res
}

func (s *fakeStore) Offsets(topic string, partition int32) (int64, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.part(topic, partition)
	if err != nil {
		return 0, 0, err
	}
	return p.logStart, p.hwm, nil
}

func (s *fakeStore) LocalStart(topic string, partition int32) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.part(topic, partition)
	if err != nil {
		return -1, err
	}
	return max(p.logStart, p.localStart), nil
}

func (s *fakeStore) OffsetForTime(topic string, partition int32, ts int64) (int64, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.part(topic, partition)
	if err != nil {
		return 0, 0, err
	}
	for _, b := range p.batches {
		if b.maxTs >= ts {
			return b.base, b.maxTs, nil
		}
	}
	return -1, -1, nil
}

func (s *fakeStore) MaxTimestamp(topic string, partition int32) (int64, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.part(topic, partition)
	if err != nil {
		return 0, 0, err
	}
	off, ts := int64(-1), int64(-1)
	for _, b := range p.batches {
		if b.maxTs > ts {
			off, ts = b.last, b.maxTs
		}
	}
	return off, ts, nil
}

func (s *fakeStore) Watch(topic string, partition int32, after int64, fn func()) func() {
	s.mu.Lock()
	p, err := s.part(topic, partition)
	if err != nil || p.hwm > after {
		s.mu.Unlock()
		fn()
		return func() {}
	}
	id := p.nextW
	p.nextW++
	p.watches[id] = fakeWatch{after: after, fn: fn}
	s.watchers++
	s.mu.Unlock()
	select {
	case s.watchSignal <- struct{}{}:
	default:
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := p.watches[id]; ok {
			delete(p.watches, id)
			s.watchers--
		}
	}
}

func (s *fakeStore) InitProducerID() (int64, int16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.appendErr != nil && errors.Is(s.appendErr, storage.ErrStorage) {
		return 0, 0, s.appendErr
	}
	s.nextPID++
	return s.nextPID, 0, nil
}

// DeleteRecords moves the log start up to offset (-1: the high watermark),
// as storage does: never backwards, past the high watermark refused.
func (s *fakeStore) DeleteRecords(topic string, partition int32, offset int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.appendErr != nil {
		return 0, s.appendErr
	}
	p, err := s.part(topic, partition)
	if err != nil {
		return 0, err
	}
	if offset == -1 {
		offset = p.hwm
	}
	if offset < 0 || offset > p.hwm {
		return 0, storage.ErrOffsetOutOfRange
	}
	p.logStart = max(p.logStart, offset)
	return p.logStart, nil
}

func (s *fakeStore) WriteTxnMarker(topic string, partition int32, pid int64, epoch int16, commit bool, coordinatorEpoch int32, done func(storage.AppendResult)) {
	s.Append(topic, partition, storage.MarkerBatch(pid, epoch, commit, coordinatorEpoch, 0), true, done)
}

func (s *fakeStore) LastStableOffset(topic string, partition int32) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.part(topic, partition)
	if err != nil {
		return -1, err
	}
	return p.lso(), nil
}

func (s *fakeStore) AbortedTxns(topic string, partition int32, from, to int64) ([]storage.AbortedTxn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.part(topic, partition)
	if err != nil {
		return nil, err
	}
	var out []storage.AbortedTxn
	for _, a := range p.aborted {
		if a.LastOffset >= from && a.FirstOffset < to {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FirstOffset < out[j].FirstOffset })
	return out, nil
}

func (s *fakeStore) Producers(topic string, partitions []int32) []storage.PartitionProducers {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]storage.PartitionProducers, len(partitions))
	for i, num := range partitions {
		out[i].Partition = num
		p, err := s.part(topic, num)
		if err != nil {
			out[i].Err = err
			continue
		}
		for pid, epoch := range p.epochs {
			pr := storage.Producer{ID: pid, Epoch: epoch, LastSequence: p.seqs[pid], LastTimestamp: 1, TxnStart: -1}
			if first, ok := p.open[pid]; ok {
				pr.TxnStart = first
			}
			out[i].Producers = append(out[i].Producers, pr)
		}
		sort.Slice(out[i].Producers, func(a, b int) bool { return out[i].Producers[a].ID < out[i].Producers[b].ID })
	}
	return out
}

func (s *fakeStore) watcherCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.watchers
}

var _ Storage = (*fakeStore)(nil)

func (s *fakeStore) PartitionBytes(topic string, partition int32) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.part(topic, partition)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, b := range p.batches {
		if b.last >= p.logStart {
			n += b.size
		}
	}
	return n, nil
}

// VolumeBytes reports a fixed 1 GiB volume with 256 MiB usable.
func (s *fakeStore) VolumeBytes() (int64, int64, error) { return 1 << 30, 256 << 20, nil }

// LatestTiered: the fake tiers nothing.
func (s *fakeStore) LatestTiered(topic string, partition int32) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.part(topic, partition); err != nil {
		return -1, err
	}
	return -1, nil
}
