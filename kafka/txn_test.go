package kafka

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

const attrTxn = 0x10

// fakeVerifier is a TxnVerifier answering code for every partition, and
// recording what it was asked.
type fakeVerifier struct {
	mu    sync.Mutex
	code  int16
	asked []string
	// admitted and settled count the batches admitted and those whose
	// append had its outcome: equal once every produce answered.
	admitted, settled int
}

func (v *fakeVerifier) VerifyTxnPartition(id string, pid int64, epoch int16, topic string, partition int32) (int16, func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.asked = append(v.asked, topic)
	if v.code != 0 {
		return v.code, nil
	}
	v.admitted++
	return 0, func() {
		v.mu.Lock()
		v.settled++
		v.mu.Unlock()
	}
}

func txnProduceReq(txnID *string, topic string, partition int32, records []byte) *kmsg.ProduceRequest {
	req := produceReq(9, -1, topic, [16]byte{}, partition, records)
	req.TransactionID = txnID
	return req
}

// TestProduceTransactional: transactional batches need a coordinator and
// a transactional id, and the coordinator's word for the partition
// (KIP-890 part 1); what passes opens the transaction in storage.
func TestProduceTransactional(t *testing.T) {
	txnBatch := makeBatch(batchOpts{records: 2, attrs: attrTxn, producerID: 5})
	noPID := makeBatch(batchOpts{records: 1, attrs: attrTxn})
	id := strPtr("tx")
	cases := []struct {
		name     string
		verifier *fakeVerifier
		txnID    *string
		records  []byte
		want     int16
		asked    bool
	}{
		{"no coordinator", nil, id, txnBatch, kerr.TransactionalIDAuthorizationFailed.Code, false},
		{"no transactional id", &fakeVerifier{}, nil, txnBatch, kerr.TransactionalIDAuthorizationFailed.Code, false},
		{"partition not in the transaction", &fakeVerifier{code: kerr.InvalidTxnState.Code}, id, txnBatch, kerr.InvalidTxnState.Code, true},
		{"fenced", &fakeVerifier{code: kerr.InvalidProducerEpoch.Code}, id, txnBatch, kerr.InvalidProducerEpoch.Code, true},
		{"no producer id", &fakeVerifier{}, id, noPID, kerr.InvalidRecord.Code, false},
		{"verified", &fakeVerifier{}, id, txnBatch, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hs := newHarness(t, func(cfg *Config) {
				if c.verifier != nil {
					cfg.TxnVerifier = c.verifier
				}
			})
			hs.createTopic("t", 1, nil)
			resp := roundTrip[*kmsg.ProduceResponse](hs, txnProduceReq(c.txnID, "t", 0, c.records))
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != c.want {
				t.Fatalf("error %v, want %v", kerr.ErrorForCode(p.ErrorCode), kerr.ErrorForCode(c.want))
			}
			if c.verifier != nil && (len(c.verifier.asked) > 0) != c.asked {
				t.Fatalf("verifier asked %v, want asked=%v", c.verifier.asked, c.asked)
			}
			if v := c.verifier; v != nil && v.admitted != v.settled {
				// The transaction's end would wait for it forever.
				t.Fatalf("%d batches admitted, %d settled", v.admitted, v.settled)
			}
			lso, _ := hs.st.LastStableOffset("t", 0)
			_, hwm, _ := hs.st.Offsets("t", 0)
			if c.want != 0 {
				if hwm != 0 {
					t.Fatalf("refused batch stored (hwm %d)", hwm)
				}
				return
			}
			if hwm != 2 || lso != 0 {
				t.Fatalf("hwm %d, LSO %d; want 2 and the open transaction's 0", hwm, lso)
			}
		})
	}
}

// marker writes a transaction marker through the store and waits for it.
func (hs *harness) marker(topic string, partition int32, pid int64, commit bool) int64 {
	hs.t.Helper()
	ch := make(chan storage.AppendResult, 1)
	hs.st.WriteTxnMarker(topic, partition, pid, 0, commit, 0, func(r storage.AppendResult) { ch <- r })
	select {
	case r := <-ch:
		if r.Err != nil {
			hs.t.Fatalf("marker: %v", r.Err)
		}
		return r.BaseOffset
	case <-time.After(waitFor):
		hs.t.Fatal("marker not written")
		return -1
	}
}

// newTxnHarness is a harness whose coordinator admits every partition.
func newTxnHarness(t *testing.T) *harness {
	hs := newHarness(t, func(cfg *Config) { cfg.TxnVerifier = &fakeVerifier{} })
	hs.createTopic("t", 1, nil)
	hs.st.appendSync = true
	return hs
}

// produceTxn produces batch with a transactional id, failing on an error.
func (hs *harness) produceTxn(topic string, partition int32, batch []byte) int64 {
	hs.t.Helper()
	p := roundTrip[*kmsg.ProduceResponse](hs, txnProduceReq(strPtr("tx"), topic, partition, batch)).Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		hs.t.Fatalf("produce: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	return p.BaseOffset
}

// txnLog fills t/0 with: plain 0, pid 1 committed (1-2, marker 4), pid 2
// aborted (3, marker 5), plain 6, pid 3 open from 7, plain 8.
func txnLog(hs *harness) {
	txn := func(pid int64, records int) []byte {
		return makeBatch(batchOpts{records: records, attrs: attrTxn, producerID: pid})
	}
	hs.produceTxn("t", 0, makeBatch(batchOpts{records: 1}))
	hs.produceTxn("t", 0, txn(1, 2))
	hs.produceTxn("t", 0, txn(2, 1))
	hs.marker("t", 0, 1, true)
	hs.marker("t", 0, 2, false)
	hs.produceTxn("t", 0, makeBatch(batchOpts{records: 1}))
	hs.produceTxn("t", 0, txn(3, 1))
	hs.produceTxn("t", 0, makeBatch(batchOpts{records: 1}))
}

// batchBases lists the base offsets of the batches in b.
func batchBases(t *testing.T, b []byte) []int64 {
	t.Helper()
	var out []int64
	for len(b) > 0 {
		batch, rest, err := storage.NextBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := storage.ParseBatchHeader(batch)
		out = append(out, h.BaseOffset)
		b = rest
	}
	return out
}

// TestFetchReadCommitted: read_committed stops at the last stable offset
// and names the aborted transactions; read_uncommitted sees everything;
// both report the same LastStableOffset; every version from 4.
func TestFetchReadCommitted(t *testing.T) {
	for v := int16(4); v <= 18; v++ {
		hs := newTxnHarness(t)
		txnLog(hs)
		for _, iso := range []int8{0, 1} {
			req := fetchReq(hs, v, 0, 0, 1<<20, fetchPart{"t", 0, 0, 1 << 20})
			req.IsolationLevel = iso
			resp := roundTrip[*kmsg.FetchResponse](hs, req)
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != 0 || p.HighWatermark != 9 || p.LastStableOffset != 7 {
				t.Fatalf("v%d iso %d: error %d hwm %d LSO %d; want 9 and 7", v, iso, p.ErrorCode, p.HighWatermark, p.LastStableOffset)
			}
			got := batchBases(t, p.RecordBatches)
			want := []int64{0, 1, 3, 4, 5, 6, 7, 8}
			wantAborted := []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			if iso == 1 {
				want = []int64{0, 1, 3, 4, 5, 6}
				a := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				a.ProducerID, a.FirstOffset = 2, 3
				wantAborted = append(wantAborted, a)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("v%d iso %d: batches at %v, want %v", v, iso, got, want)
			}
			if p.AbortedTransactions == nil || !slices.EqualFunc(p.AbortedTransactions, wantAborted, func(a, b kmsg.FetchResponseTopicPartitionAbortedTransaction) bool {
				return a.ProducerID == b.ProducerID && a.FirstOffset == b.FirstOffset
			}) {
				t.Fatalf("v%d iso %d: aborted %+v, want %+v", v, iso, p.AbortedTransactions, wantAborted)
			}
		}
		// From past the aborted transaction's marker: nothing aborted left.
		req := fetchReq(hs, v, 0, 0, 1<<20, fetchPart{"t", 0, 6, 1 << 20})
		req.IsolationLevel = 1
		p := roundTrip[*kmsg.FetchResponse](hs, req).Topics[0].Partitions[0]
		if got := batchBases(t, p.RecordBatches); !slices.Equal(got, []int64{6}) || len(p.AbortedTransactions) != 0 {
			t.Fatalf("v%d from 6: batches %v aborted %+v", v, got, p.AbortedTransactions)
		}
	}
}

// TestFetchReadCommittedLongPoll: a read_committed fetch at the last stable
// offset waits (records past it do not answer it) and is answered once the
// open transaction commits.
func TestFetchReadCommittedLongPoll(t *testing.T) {
	hs := newTxnHarness(t)
	txnLog(hs)
	req := fetchReq(hs, 12, 60000, 1, 1<<20, fetchPart{"t", 0, 7, 1 << 20})
	req.IsolationLevel = 1
	p := hs.serveFrame(encodeRequest(req, testCorr))
	waitWatchers(t, hs, 1)
	if p.answered() {
		t.Fatal("answered with nothing stable")
	}
	// More data past the LSO wakes the poll, which finds nothing and waits again.
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 1})) // 9
	waitWatchers(t, hs, 1)
	if p.answered() {
		t.Fatal("answered with data past the LSO")
	}
	hs.marker("t", 0, 3, true) // 10
	resp := decodeBody[*kmsg.FetchResponse](t, req, assemble(t, p.wait(t)))
	rp := resp.Topics[0].Partitions[0]
	if got := batchBases(t, rp.RecordBatches); !slices.Equal(got, []int64{7, 8, 9, 10}) || rp.LastStableOffset != 11 {
		t.Fatalf("woken: batches %v LSO %d", got, rp.LastStableOffset)
	}
}

// TestListOffsetsIsolation: latest is the last stable offset for
// read_committed; a timestamp lookup at or past it finds nothing there.
func TestListOffsetsIsolation(t *testing.T) {
	hs := newTxnHarness(t)
	hs.produceTxn("t", 0, makeBatch(batchOpts{records: 1, maxTs: 1000}))                                // 0
	hs.produceTxn("t", 0, makeBatch(batchOpts{records: 1, maxTs: 2000, attrs: attrTxn, producerID: 4})) // 1, open
	hs.produceTxn("t", 0, makeBatch(batchOpts{records: 1, maxTs: 3000}))                                // 2
	cases := []struct {
		iso      int8
		ts, want int64
	}{
		{0, offsetLatest, 3},
		{1, offsetLatest, 1},
		{0, 1500, 1},
		{1, 1500, -1},
		{1, 500, 0},
		{1, offsetEarliest, 0},
	}
	for _, c := range cases {
		req := listOffsetsReq(7, "t", c.ts)
		req.IsolationLevel = c.iso
		rp := roundTrip[*kmsg.ListOffsetsResponse](hs, req).Topics[0].Partitions[0]
		if rp.ErrorCode != 0 || rp.Offset != c.want {
			t.Errorf("iso %d ts %d: offset %d error %d, want %d", c.iso, c.ts, rp.Offset, rp.ErrorCode, c.want)
		}
	}
}

// TestProduceTransactionalSettles: a transactional batch the coordinator
// admitted is settled whatever happens to it after (here its records fail
// validation off the event loop): the transaction's end waits for every
// admitted batch, so one never settled would hold the end forever.
func TestProduceTransactionalSettles(t *testing.T) {
	v := &fakeVerifier{}
	hs := newHarness(t, func(cfg *Config) { cfg.TxnVerifier = v })
	hs.createTopic("t", 1, nil)
	// The gzip bit over uncompressed records: admitted, then refused.
	bad := makeBatch(batchOpts{records: 1, attrs: attrTxn | 1, producerID: 5})
	p := roundTrip[*kmsg.ProduceResponse](hs, txnProduceReq(strPtr("tx"), "t", 0, bad)).Topics[0].Partitions[0]
	if p.ErrorCode == 0 {
		t.Fatal("a batch whose records do not decompress was stored")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.admitted != 1 || v.settled != 1 {
		t.Fatalf("%d batches admitted, %d settled; want 1 and 1", v.admitted, v.settled)
	}
}
