package kafka

// Produce (key 0), versions 0-13 advertised, 3-13 served.
//
// v3 is the first version carrying record batch v2 (magic 2), the only format
// klite stores. v0-2 are advertised only because librdkafka before 2.3
// (Debian's kcat among them) decides whether it may compress from the
// advertised minimum and sends gzip, snappy and lz4 batches uncompressed when
// Produce v0 is missing (KAFKA-18659); Kafka 4.x advertises v0 for that
// reason and answers a v0-2 request with UNSUPPORTED_VERSION on every
// partition, in a normal response (acks=0: the connection is closed, as for
// any failed acks=0 produce). So does klite. v13 names topics by ID (KIP-516) and answers UNKNOWN_TOPIC_ID.
// v10-v12 add KIP-951 leader hints (only sent with NOT_LEADER_OR_FOLLOWER,
// which a single broker never returns) and KIP-890 implicit transaction
// membership (transactions are rejected, see below).
//
// Behaviour, per partition, as Apache Kafka validates (ProduceRequest and
// LogValidator):
//   - exactly one batch per partition (v3+), magic 2, else INVALID_RECORD;
//   - a batch whose framing or CRC-32C is wrong: CORRUPT_MESSAGE;
//   - count/lastOffsetDelta mismatch, empty batch, client-sent control batch:
//     INVALID_RECORD; timestamp type LogAppendTime set by a producer:
//     INVALID_TIMESTAMP; unknown codec: CORRUPT_MESSAGE; zstd before v7:
//     UNSUPPORTED_COMPRESSION_TYPE (KIP-110);
//   - batch larger than the topic's max.message.bytes (or the broker's):
//     MESSAGE_TOO_LARGE;
//   - every record of the batch parsed (storage.ValidateRecords): lengths,
//     varints, offset deltas 0..n-1, key/value/header lengths, header keys
//     not null, no bytes left over in a record or after the last, exactly
//     the declared count. A record that does not parse: INVALID_RECORD, with
//     v8+ record errors (KIP-467) naming it and an error message;
//   - compressed batches are decompressed for that check, streaming: a body
//     that does not decompress (bad stream, checksum, truncation):
//     CORRUPT_MESSAGE; one that decompresses past
//     Config.MaxDecompressedBatchBytes: MESSAGE_TOO_LARGE (on which Java
//     producers split the batch);
//   - a record without a key on a compacted topic (cleanup.policy has
//     compact): INVALID_RECORD with the record named;
//   - a producer id with a negative base sequence: INVALID_RECORD;
//   - transactional batches: with a transaction coordinator
//     (Config.TxnVerifier), a request without a transactional id answers
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka does, and the
//     coordinator must have the partition in the ongoing transaction of the
//     request's transactional id, whose producer id and epoch the batch
//     must carry (KIP-890 part 1: a late produce cannot join a transaction
//     that ended; another client cannot write into it), else its code
//     (INVALID_PRODUCER_ID_MAPPING, INVALID_TXN_STATE,
//     INVALID_PRODUCER_EPOCH). An admitted batch holds the transaction's
//     end until its append has an outcome, so no marker can overtake it.
//     Without one, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
//     which every client treats as fatal rather than retrying. Storage then
//     opens the producer's transaction on the partition (storage/txn.go).
//
// Validation only reads: the stored batch is the producer's bytes.
//
// Where it runs: produce is served on the connection's event loop. Header and
// CRC checks, and the record walk of uncompressed batches holding few records
// (inlineValidateRecords), run there: they cost about what the CRC does.
// A request with a compressed batch or more records is validated on a
// bounded set of goroutines (Handler.produceRunner), in arrival order; its appends, and those of every later produce on the
// same connection, wait until the earlier ones have been issued, so a
// connection's batches reach storage in request order (idempotent producers
// pipeline up to five requests per partition).
// A batch of such a request whose connection has closed before its
// validation starts, or before its append (asked in request order, so the
// appended requests of a connection are a prefix of them), is dropped,
// acks=0 included: the client saw no answer, as if the bytes never arrived. Kafka
// would still append it; here validation can cost 10,000 times the bytes
// sent, so work left by closed connections must drain at once.
//
// acks must be -1, 0 or 1 (else INVALID_REQUIRED_ACKS on every partition).
// acks=-1 appends durably (answered after the fsync covering the batch);
// acks=0 gets no response, and, as in Kafka, a closed connection when any
// partition failed so the client refreshes its metadata. The records are
// not copied out of the request frame: the frame is only released (by
// responding) after every append's done callback ran, acks=0 included.
//
// Differences from Apache Kafka: an unknown topic answers
// UNKNOWN_TOPIC_OR_PARTITION and is not created (Kafka does not create
// topics on produce either; clients learn partition counts from Metadata,
// which is where auto-creation happens). Kafka rewrites a compressed batch
// whose inner offsets are not 0..n-1, and answers a body that does not
// decompress with UNKNOWN_SERVER_ERROR; klite stores bytes as sent, so it
// refuses the first (INVALID_RECORD) and names the second CORRUPT_MESSAGE.
// Kafka leaves record errors empty when a record does not parse at all;
// klite names the record. Key, value and header value lengths below -1 are
// refused (Kafka reads them as null; consumers disagree). No timestamp bound
// checks (message.timestamp.*.max.ms). LogAppendTime topics are stamped by
// storage at append time. Timeout is ignored (the append finishes
// regardless, as in Kafka). Internal topics (__consumer_offsets,
// __transaction_state) answer INVALID_TOPIC_EXCEPTION, as Kafka answers a
// client appending to one.
//
// ACLs (-authorizer): WRITE on each topic (TOPIC_AUTHORIZATION_FAILED, checked before the
// topic's existence) and, for a transactional id, WRITE on it
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/netloop"
	"github.com/klite/klite/storage"
)

const produceKey = 0

func init() { register(produceKey, 0, 13, (*Handler).produce) }

// produceMinServed is the first Produce version served; older ones are
// advertised but refused (see the top of this file).
const produceMinServed = 3

// codecZstd is the record batch compression id of zstd.
const codecZstd = 4

// Error messages (v8+), package-level so that pointing at them allocates nothing.
var (
	msgOneBatch      = "Produce requests with version 3+ must contain exactly one record batch per partition"
	msgMagic         = "Produce requests with version 3+ may only contain record batches with magic version 2"
	msgTooLarge      = "The record batch is larger than max.message.bytes"
	msgTransactional = "Transactional batches need a transactional id and a transaction coordinator"
	msgControl       = "Clients may not write control batches"
	msgTxnNoPID      = "A transactional batch needs a producer id"
	msgCodec         = "Unknown compression codec"
	msgZstd          = "zstd compression requires produce version 7 or later"
	msgAppendTime    = "Producers may not set the LogAppendTime timestamp type"
	msgSequence      = "A batch with a producer id needs a base sequence of 0 or more"
)

// inlineValidateRecords: a request whose batches are uncompressed and hold
// at most this many records in all is validated on the event loop. The
// record walk costs about 50 ns per small record (BenchmarkValidateRecords),
// so the loop spends at most ~50 µs on it, what the CRC of a 1 MiB batch
// costs; more records, or any decompression, go to a goroutine.
const inlineValidateRecords = 1024

// produce is one produce request in flight.
type produce struct {
	h    *Handler
	r    *request
	resp kmsg.ProduceResponse
	acks int16
	// pending counts appends not yet done, plus one held by the issuing code
	// until every append has been issued.
	pending atomic.Int32
	failed  atomic.Bool // some partition failed (acks=0 closes the connection)
	// later holds the partitions validated and appended off the event loop.
	later []produceBatch
}

// produceBatch is one partition's batch that passed the header checks.
type produceBatch struct {
	topic     string
	partition int32
	records   []byte
	hdr       storage.BatchHeader
	rp        *kmsg.ProduceResponseTopicPartition
	// keyRequired: the topic is compacted, every record needs a key.
	keyRequired bool
	// txnDone, for a transactional batch, tells the transaction
	// coordinator the append has its outcome (see TxnVerifier).
	txnDone func()
}

// settled runs b's txnDone once.
func (b *produceBatch) settled() {
	if b.txnDone != nil {
		b.txnDone()
		b.txnDone = nil
	}
}

func (h *Handler) produce(r *request) {
	p := &produce{h: h, r: r}
	req := kmsg.ProduceRequest{Version: r.version}
	// Unsafe: Records and names alias the frame, which stays ours until we
	// respond, after every append has copied its batch (done ran).
	if err := req.UnsafeReadFrom(r.body); err != nil {
		h.protocolError(r, "malformed request body")
		return
	}
	p.acks = req.Acks
	if p.acks == 0 {
		// Kafka exempts acks=0 from request_percentage: no response
		// carries a throttle. (Byte rates still mute the connection.)
		r.reqMeter = nil
	}
	p.resp = kmsg.ProduceResponse{Version: r.version}
	p.resp.Default()
	if t := h.quotaTab.Load(); t != nil {
		r.throttleMs = throttleMillis(h.produceThrottle(t, r))
		p.resp.ThrottleMillis = r.throttleMs
	}

	total := 0
	for i := range req.Topics {
		total += len(req.Topics[i].Partitions)
	}
	// One allocation for every partition's response slot.
	slots := make([]kmsg.ProduceResponseTopicPartition, total)
	p.resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	p.pending.Store(int32(total) + 1)

	// Off the loop when validation is heavy, or when an earlier produce of
	// this connection is still off the loop (order). Serve runs on the
	// connection's loop, so the check and the store below cannot race with
	// another request of the same connection.
	conn := r.nr.Conn.ID
	var prev, mine chan struct{}
	h.produceMu.Lock()
	prev = h.produceTail[conn]
	if prev != nil || validateOffLoop(&req) {
		mine = make(chan struct{})
		h.produceTail[conn] = mine
		p.later = make([]produceBatch, 0, total)
	}
	h.produceMu.Unlock()

	validAcks := req.Acks == -1 || req.Acks == 0 || req.Acks == 1
	txnDenied := req.TransactionID != nil && !h.authorized(r, acl.OpWrite, acl.ResourceTransactionalID, *req.TransactionID)
	txnVerifier := h.cfg.TxnVerifier
	if req.TransactionID == nil {
		txnVerifier = nil // a transactional batch without an id is refused
	}
	for ti := range req.Topics {
		t := &req.Topics[ti]
		rt := &p.resp.Topics[ti]
		rt.Default()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		rt.Partitions, slots = slots[:len(t.Partitions):len(t.Partitions)], slots[len(t.Partitions):]

		var info storage.TopicInfo
		var found bool
		unknown := kerr.UnknownTopicOrPartition.Code
		if r.version >= 13 {
			info, found = h.topicByID(storage.TopicID(t.TopicID)) // internal ones too: refused below
			unknown = kerr.UnknownTopicID.Code
		} else {
			info, found = h.st.Topic(t.Topic)
		}
		name := t.Topic
		if r.version >= 13 {
			name = info.Name
		}
		// Kafka authorizes before it looks for the topic (an unknown
		// topic is not revealed); an unknown topic ID stays unknown.
		denied := (found || r.version < 13) && !h.authorized(r, acl.OpWrite, acl.ResourceTopic, name)
		if found && internalTopic(info.Name) || r.version < 13 && internalTopic(t.Topic) {
			// Kafka's ReplicaManager: clients may not append to internal
			// topics (checked before the topic's existence).
			found, unknown = false, kerr.InvalidTopicException.Code
		}
		maxBytes := h.maxMessageBytes()
		compacted := false
		if found {
			maxBytes = h.topicMaxMessageBytes(&info)
			compacted = h.compactPolicy(info.Configs)
		}

		for pi := range t.Partitions {
			tp := &t.Partitions[pi]
			rp := &rt.Partitions[pi]
			rp.Default()
			rp.Partition = tp.Partition
			switch {
			case r.version < produceMinServed:
				p.fail(rp, kerr.UnsupportedVersion.Code, nil)
			case !validAcks:
				p.fail(rp, kerr.InvalidRequiredAcks.Code, nil)
			case txnDenied:
				p.fail(rp, kerr.TransactionalIDAuthorizationFailed.Code, nil)
			case denied:
				p.fail(rp, kerr.TopicAuthorizationFailed.Code, nil)
			case !found:
				p.fail(rp, unknown, nil)
			case !partitionOK(&info, tp.Partition):
				p.fail(rp, kerr.UnknownTopicOrPartition.Code, nil)
			default:
				hdr, code, msg := h.checkBatch(r.version, tp.Records, maxBytes, txnVerifier != nil)
				var txnDone func()
				if code == 0 && hdr.Transactional() {
					code, txnDone = txnVerifier.VerifyTxnPartition(*req.TransactionID, hdr.ProducerID, hdr.ProducerEpoch, info.Name, tp.Partition)
				}
				if code != 0 {
					p.fail(rp, code, msg)
					break
				}
				b := produceBatch{topic: info.Name, partition: tp.Partition, records: tp.Records, hdr: hdr, rp: rp, keyRequired: compacted, txnDone: txnDone}
				if mine != nil {
					p.later = append(p.later, b)
					continue
				}
				// Inline: the batch's bytes are still in cache from the CRC.
				p.validateAndAppend(&b)
				continue
			}
			p.doneOne()
		}
	}
	if mine == nil {
		p.doneOne() // every append issued
		return
	}
	// A task waits for prev only after its own validation, and prev was
	// queued before it (FIFO), so prev is running or done: the bounded
	// runner cannot deadlock on it.
	h.produceRunner.submit(func() {
		defer h.recoverTo(r)
		defer h.releaseProduceTail(conn, mine)
		// Validation and issuing the appends are charged to
		// request_percentage; waiting for prev is not.
		start := r.workStart()
		for i := range p.later {
			b := &p.later[i]
			if p.r.nr.Context().Err() != nil {
				// The connection closed while this request was queued:
				// nobody is left to answer, so neither validate
				// nor append. Otherwise a client that pipelines batches
				// costly to decompress and disconnects, over and over,
				// queues unbounded CPU work ahead of every other producer.
				p.fail(b.rp, kerr.NetworkException.Code, nil)
				b.rp = nil
				b.settled()
				p.doneOne()
				continue
			}
			if err := storage.ValidateRecords(b.records, &b.hdr, h.cfg.MaxDecompressedBatchBytes, b.keyRequired); err != nil {
				p.failRecords(b, err)
				b.rp = nil
				b.settled()
				p.doneOne()
			}
		}
		r.workEnd(start)
		if prev != nil {
			<-prev
		}
		start = r.workStart()
		defer func() { r.workEnd(start) }()
		// Asked again in request order (after the previous produce
		// decided): the check above can see the connection open for a
		// request while an earlier one, started first, saw it closed.
		// A closed connection stays closed, so what is appended is always
		// a prefix of the connection's requests, never one with a gap.
		gone := p.r.nr.Context().Err() != nil
		for i := range p.later {
			b := &p.later[i]
			switch {
			case b.rp == nil:
			case gone:
				p.fail(b.rp, kerr.NetworkException.Code, nil)
				b.settled()
				p.doneOne()
			default:
				p.append(b)
			}
		}
		p.doneOne() // every append issued
	})
}

// validateOffLoop reports whether the request's records are too costly to
// validate on the event loop: a compressed batch, or many records.
func validateOffLoop(req *kmsg.ProduceRequest) bool {
	records := 0
	for ti := range req.Topics {
		for pi := range req.Topics[ti].Partitions {
			hdr, err := storage.ParseBatchHeader(req.Topics[ti].Partitions[pi].Records)
			if err != nil {
				continue // refused by the header checks
			}
			if hdr.Compression() != 0 {
				return true
			}
			if records += int(max(hdr.NumRecords, 0)); records > inlineValidateRecords {
				return true
			}
		}
	}
	return false
}

// releaseProduceTail marks this connection's deferred produce as issued and
// forgets the connection when no later one is queued behind it.
func (h *Handler) releaseProduceTail(conn uint64, mine chan struct{}) {
	close(mine)
	h.produceMu.Lock()
	if h.produceTail[conn] == mine {
		delete(h.produceTail, conn)
	}
	h.produceMu.Unlock()
}

// validateAndAppend validates b's records and appends it, or fails its
// partition.
func (p *produce) validateAndAppend(b *produceBatch) {
	if err := storage.ValidateRecords(b.records, &b.hdr, p.h.cfg.MaxDecompressedBatchBytes, b.keyRequired); err != nil {
		p.failRecords(b, err)
		b.settled()
		p.doneOne()
		return
	}
	p.append(b)
}

// append issues b's append; its done callback finishes the partition.
func (p *produce) append(b *produceBatch) {
	rp := b.rp
	txnDone := b.txnDone
	b.txnDone = nil
	p.h.st.Append(b.topic, b.partition, b.records, p.acks == -1, func(res storage.AppendResult) {
		if txnDone != nil {
			txnDone()
		}
		if res.Err != nil {
			p.fail(rp, p.h.errCode(res.Err), nil)
		} else {
			rp.BaseOffset = res.BaseOffset
			rp.LogAppendTime = res.LogAppendTime
			rp.LogStartOffset = res.LogStartOffset
		}
		p.doneOne()
	})
}

// failRecords fails a partition whose records did not validate: the code
// for err, an error message, and (v8+, KIP-467) the record at fault. The
// client is told; the operator gets a sampled Warn (a producer bug or a
// hostile client), since a refused batch is otherwise invisible here.
func (p *produce) failRecords(b *produceBatch, err error) {
	rp := b.rp
	p.h.warn.Warn().
		Uint64("conn", p.r.nr.Conn.ID).
		Bytes("client_id", p.r.clientID).
		Str("topic", b.topic).
		Int32("partition", b.partition).
		Err(err).
		Msg("kafka: produce refused a batch whose records do not validate")
	var re *storage.RecordError
	if !errors.As(err, &re) {
		p.fail(rp, p.h.errCode(err), nil)
		return
	}
	msg := re.Reason
	if re.Index >= 0 {
		msg = fmt.Sprintf("record %d of the batch is invalid: %s", re.Index, re.Reason)
	}
	p.fail(rp, p.h.errCode(err), &msg)
	if re.Index >= 0 {
		er := kmsg.NewProduceResponseTopicPartitionErrorRecord()
		er.RelativeOffset = re.Index
		er.ErrorMessage = &re.Reason
		rp.ErrorRecords = []kmsg.ProduceResponseTopicPartitionErrorRecord{er}
	}
}

// fail sets a partition error. Each slot is written by one goroutine only.
func (p *produce) fail(rp *kmsg.ProduceResponseTopicPartition, code int16, msg *string) {
	rp.ErrorCode = code
	rp.BaseOffset = -1
	rp.LogAppendTime = -1
	rp.LogStartOffset = -1
	rp.ErrorMessage = msg
	p.failed.Store(true)
}

// doneOne counts one finished partition; the last one answers. The atomic
// decrement orders every slot write before the encoding.
func (p *produce) doneOne() {
	if p.pending.Add(-1) != 0 {
		return
	}
	if p.acks == 0 {
		if p.failed.Load() {
			p.r.close()
		} else {
			p.r.complete(netloop.Response{})
		}
		return
	}
	p.r.respond(&p.resp)
}

// checkBatch validates the framing and header of one produce partition's
// batch (records are ValidateRecords'): it returns the header, and 0 or a
// Kafka error code (and a message for v8+).
// Transactional batches pass only when txnOK (a coordinator will verify them).
func (h *Handler) checkBatch(version int16, records []byte, maxBytes int64, txnOK bool) (hdr storage.BatchHeader, code int16, msg *string) {
	// Magic sits at byte 16 in both the v2 batch and the legacy message
	// layouts: check it first so old formats get INVALID_RECORD, not
	// CORRUPT_MESSAGE.
	if len(records) > 16 && records[16] != 2 {
		return hdr, kerr.InvalidRecord.Code, &msgMagic
	}
	batch, rest, err := storage.NextBatch(records)
	if err != nil {
		if len(records) == 0 {
			return hdr, kerr.InvalidRecord.Code, &msgOneBatch
		}
		return hdr, h.errCode(err), nil
	}
	if len(rest) != 0 {
		return hdr, kerr.InvalidRecord.Code, &msgOneBatch
	}
	if int64(len(batch)) > maxBytes {
		return hdr, kerr.MessageTooLarge.Code, &msgTooLarge
	}
	hdr, err = storage.ValidateBatch(batch)
	if err != nil {
		return hdr, h.errCode(err), nil
	}
	switch c := hdr.Compression(); {
	case c > codecZstd || c < 0:
		return hdr, kerr.CorruptMessage.Code, &msgCodec
	case c == codecZstd && version < 7:
		return hdr, kerr.UnsupportedCompressionType.Code, &msgZstd
	}
	switch {
	case hdr.Control():
		return hdr, kerr.InvalidRecord.Code, &msgControl
	case hdr.Transactional() && hdr.ProducerID < 0:
		return hdr, kerr.InvalidRecord.Code, &msgTxnNoPID
	case hdr.Transactional() && !txnOK:
		return hdr, kerr.TransactionalIDAuthorizationFailed.Code, &msgTransactional
	case hdr.LogAppendTime():
		return hdr, kerr.InvalidTimestamp.Code, &msgAppendTime
	case hdr.Idempotent() && hdr.BaseSequence < 0:
		return hdr, kerr.InvalidRecord.Code, &msgSequence
	}
	return hdr, 0, nil
}
