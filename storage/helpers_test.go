package storage

import (
	"encoding/binary"
	"hash/crc32"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klite/klite/vfs"
)

// batchSpec describes a test record batch.
type batchSpec struct {
	records int
	value   []byte // every record's value
	pid     int64  // -1: not idempotent
	epoch   int16
	seq     int32
	ts      int64 // first timestamp; record i has ts+i
	txn     bool  // transactional (attributes bit 0x10)
}

// makeBatch assembles a v2 record batch with a correct CRC-32C.
func makeBatch(sp batchSpec) []byte {
	if sp.records == 0 {
		sp.records = 1
	}
	var recs []byte
	for i := 0; i < sp.records; i++ {
		var body []byte
		body = append(body, 0)                     // attributes
		body = binary.AppendVarint(body, int64(i)) // timestamp delta
		body = binary.AppendVarint(body, int64(i)) // offset delta
		body = binary.AppendVarint(body, -1)       // key: null
		body = binary.AppendVarint(body, int64(len(sp.value)))
		body = append(body, sp.value...)
		body = binary.AppendVarint(body, 0) // headers
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	b := make([]byte, BatchHeaderBytes, BatchHeaderBytes+len(recs))
	be := binary.BigEndian
	be.PutUint64(b[batchBaseOffsetAt:], 0)
	be.PutUint32(b[batchLengthAt:], uint32(BatchHeaderBytes-batchLengthOverhead+len(recs)))
	be.PutUint32(b[batchLeaderEpochAt:], 0)
	b[batchMagicAt] = 2
	var attrs uint16
	if sp.txn {
		attrs = attrTransactional
	}
	be.PutUint16(b[batchAttributesAt:], attrs)
	be.PutUint32(b[batchLastOffsetDeltaAt:], uint32(sp.records-1))
	be.PutUint64(b[batchFirstTimestampAt:], uint64(sp.ts))
	be.PutUint64(b[batchMaxTimestampAt:], uint64(sp.ts+int64(sp.records-1)))
	pid := sp.pid
	if pid == 0 {
		pid = -1
	}
	be.PutUint64(b[batchProducerIDAt:], uint64(pid))
	epoch, seq := sp.epoch, sp.seq
	if pid < 0 {
		epoch, seq = -1, -1
	}
	be.PutUint16(b[batchProducerEpochAt:], uint16(epoch))
	be.PutUint32(b[batchBaseSequenceAt:], uint32(seq))
	be.PutUint32(b[batchRecordCountAt:], uint32(sp.records))
	b = append(b, recs...)
	be.PutUint32(b[batchCRCAt:], crc32.Checksum(b[batchAttributesAt:], castagnoli))
	return b
}

// valueID is an 8-byte value naming a record uniquely in crash tests.
func valueID(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func testConfig(fsys vfs.FS) Config {
	return Config{Dir: "/data", FS: fsys, Shards: 2, SegmentBytes: 64 << 10}
}

func mustOpen(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustCreate(t testing.TB, s *Store, name string, parts int32) TopicInfo {
	t.Helper()
	ti, err := s.CreateTopic(name, parts, nil)
	if err != nil {
		t.Fatalf("CreateTopic(%s): %v", name, err)
	}
	return ti
}

const waitFor = 10 * time.Second

// appendWait appends and waits for the result.
func appendWait(t testing.TB, s *Store, topic string, part int32, data []byte, durable bool) AppendResult {
	t.Helper()
	ch := make(chan AppendResult, 1)
	s.Append(topic, part, data, durable, func(r AppendResult) { ch <- r })
	select {
	case r := <-ch:
		return r
	case <-time.After(waitFor):
		t.Fatalf("append to %s/%d did not complete", topic, part)
		return AppendResult{}
	}
}

// eventually waits for cond with a deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitGroup waits for wg with a deadline.
func waitGroup(t testing.TB, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// readBatch is one batch read back from the store.
type readBatch struct {
	base    int64
	records int
	values  [][]byte
	raw     []byte
}

// readAllBatches reads a partition from offset 0 to the high watermark.
func readAllBatches(t testing.TB, s *Store, topic string, part int32) []readBatch {
	t.Helper()
	out := readBatches(t, s, topic, part, 0, 1<<20)
	for i := range out {
		out[i].values = batchValues(out[i].raw)
	}
	return out
}

// readBatches reads a partition's batches from off to the high watermark,
// maxBytes per Read, dropping those of the first read that end below off.
func readBatches(t testing.TB, s *Store, topic string, part int32, off, maxBytes int64) []readBatch {
	t.Helper()
	var out []readBatch
	for {
		res := s.Read(topic, part, off, maxBytes)
		if res.Err != nil {
			t.Fatalf("Read(%s/%d@%d): %v", topic, part, off, res.Err)
		}
		if len(res.Chunks) == 0 {
			res.Release()
			return out
		}
		var sum int64
		for _, c := range res.Chunks {
			b := make([]byte, c.Len)
			if _, err := c.File.ReadAt(b, c.Off); err != nil {
				t.Fatalf("ReadAt: %v", err)
			}
			sum += c.Len
			for len(b) > 0 {
				batch, rest, err := NextBatch(b)
				if err != nil {
					t.Fatalf("NextBatch: %v", err)
				}
				h, err := ValidateBatch(batch)
				if err != nil {
					t.Fatalf("ValidateBatch at %d: %v", h.BaseOffset, err)
				}
				if last := h.BaseOffset + int64(h.LastOffsetDelta); last >= off {
					out = append(out, readBatch{base: h.BaseOffset, records: int(h.NumRecords), raw: batch})
					off = last + 1
				}
				b = rest
			}
		}
		if sum != res.Bytes {
			t.Fatalf("Bytes %d, chunks sum %d", res.Bytes, sum)
		}
		res.Release()
	}
}

// batchValues decodes the record values of a makeBatch batch.
func batchValues(batch []byte) [][]byte {
	var vals [][]byte
	b := batch[BatchHeaderBytes:]
	for len(b) > 0 {
		l, n := binary.Varint(b)
		rec := b[n : n+int(l)]
		b = b[n+int(l):]
		rec = rec[1:]
		for range 3 { // timestamp delta, offset delta, key length (-1)
			_, n := binary.Varint(rec)
			rec = rec[n:]
		}
		vl, n := binary.Varint(rec)
		vals = append(vals, rec[n:n+int(vl)])
	}
	return vals
}

// ackLog records acknowledged appends concurrently.
type ackLog struct {
	mu   sync.Mutex
	acks map[uint64]int64 // value id -> base offset
}

func (a *ackLog) add(id uint64, base int64) {
	a.mu.Lock()
	a.acks[id] = base
	a.mu.Unlock()
}

func (a *ackLog) snapshot() map[uint64]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := make(map[uint64]int64, len(a.acks))
	for k, v := range a.acks {
		c[k] = v
	}
	return c
}

type timeT = time.Time

func timeUnixMilli(ms int64) time.Time { return time.UnixMilli(ms) }

func timeAfter() <-chan time.Time { return time.After(waitFor) }

func countSuffix(names []string, suffix string) int {
	n := 0
	for _, name := range names {
		if strings.HasSuffix(name, suffix) {
			n++
		}
	}
	return n
}
