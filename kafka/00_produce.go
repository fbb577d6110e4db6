package kafka

// Produce (key 0), versions 3-13.
//
// v3 is the first version carrying record batch v2 (magic 2), the only format
// klite stores. v13 names topics by ID (KIP-516) and answers UNKNOWN_TOPIC_ID.
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
//   - transactional batches: TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which is
//     what Kafka answers when a producer may not write transactionally (here:
//     transactions are not implemented yet), and which every client treats as
//     fatal rather than retrying.
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
// which is where auto-creation happens). No per-record validation (batches
// are opaque) and no timestamp bound checks (message.timestamp.*.max.ms).
// LogAppendTime topics are stamped by storage at append time. Timeout is
// ignored (the append finishes regardless, as in Kafka). Internal topics
// (__consumer_offsets, __transaction_state) answer INVALID_TOPIC_EXCEPTION,
// as Kafka answers a client appending to one.

import (
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/netloop"
	"github.com/klite/klite/storage"
)

const produceKey = 0

func init() { register(produceKey, 3, 13, (*Handler).produce) }

// codecZstd is the record batch compression id of zstd.
const codecZstd = 4

// Error messages (v8+), package-level so that pointing at them allocates nothing.
var (
	msgOneBatch      = "Produce requests with version 3+ must contain exactly one record batch per partition"
	msgMagic         = "Produce requests with version 3+ may only contain record batches with magic version 2"
	msgTooLarge      = "The record batch is larger than max.message.bytes"
	msgTransactional = "klite does not support transactions yet"
	msgControl       = "Clients may not write control batches"
	msgCodec         = "Unknown compression codec"
	msgZstd          = "zstd compression requires produce version 7 or later"
	msgAppendTime    = "Producers may not set the LogAppendTime timestamp type"
)

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
	p.resp = kmsg.ProduceResponse{Version: r.version}
	p.resp.Default()

	total := 0
	for i := range req.Topics {
		total += len(req.Topics[i].Partitions)
	}
	// One allocation for every partition's response slot.
	slots := make([]kmsg.ProduceResponseTopicPartition, total)
	p.resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	p.pending.Store(int32(total) + 1)

	validAcks := req.Acks == -1 || req.Acks == 0 || req.Acks == 1
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
			info, found = h.st.TopicByID(storage.TopicID(t.TopicID))
			unknown = kerr.UnknownTopicID.Code
		} else {
			info, found = h.st.Topic(t.Topic)
		}
		if found && internalTopic(info.Name) || r.version < 13 && internalTopic(t.Topic) {
			// Kafka's ReplicaManager: clients may not append to internal
			// topics (checked before the topic's existence).
			found, unknown = false, kerr.InvalidTopicException.Code
		}
		maxBytes := int64(h.cfg.MaxMessageBytes)
		if found {
			maxBytes = h.topicMaxMessageBytes(&info)
		}

		for pi := range t.Partitions {
			tp := &t.Partitions[pi]
			rp := &rt.Partitions[pi]
			rp.Default()
			rp.Partition = tp.Partition
			switch {
			case !validAcks:
				p.fail(rp, kerr.InvalidRequiredAcks.Code, nil)
			case !found:
				p.fail(rp, unknown, nil)
			case !partitionOK(&info, tp.Partition):
				p.fail(rp, kerr.UnknownTopicOrPartition.Code, nil)
			default:
				if code, msg := h.checkBatch(r.version, tp.Records, maxBytes); code != 0 {
					p.fail(rp, code, msg)
					break
				}
				h.st.Append(info.Name, tp.Partition, tp.Records, req.Acks == -1, func(res storage.AppendResult) {
					if res.Err != nil {
						p.fail(rp, h.errCode(res.Err), nil)
					} else {
						rp.BaseOffset = res.BaseOffset
						rp.LogAppendTime = res.LogAppendTime
						rp.LogStartOffset = res.LogStartOffset
					}
					p.doneOne()
				})
				continue
			}
			p.doneOne()
		}
	}
	p.doneOne() // every append issued
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

// checkBatch validates the records of one produce partition without decoding
// records: it returns 0 or a Kafka error code (and a message for v8+).
func (h *Handler) checkBatch(version int16, records []byte, maxBytes int64) (int16, *string) {
	// Magic sits at byte 16 in both the v2 batch and the legacy message
	// layouts: check it first so old formats get INVALID_RECORD, not
	// CORRUPT_MESSAGE.
	if len(records) > 16 && records[16] != 2 {
		return kerr.InvalidRecord.Code, &msgMagic
	}
	batch, rest, err := storage.NextBatch(records)
	if err != nil {
		if len(records) == 0 {
			return kerr.InvalidRecord.Code, &msgOneBatch
		}
		return h.errCode(err), nil
	}
	if len(rest) != 0 {
		return kerr.InvalidRecord.Code, &msgOneBatch
	}
	if int64(len(batch)) > maxBytes {
		return kerr.MessageTooLarge.Code, &msgTooLarge
	}
	hdr, err := storage.ValidateBatch(batch)
	if err != nil {
		return h.errCode(err), nil
	}
	switch c := hdr.Compression(); {
	case c > codecZstd || c < 0:
		return kerr.CorruptMessage.Code, &msgCodec
	case c == codecZstd && version < 7:
		return kerr.UnsupportedCompressionType.Code, &msgZstd
	}
	switch {
	case hdr.Control():
		return kerr.InvalidRecord.Code, &msgControl
	case hdr.Transactional():
		return kerr.TransactionalIDAuthorizationFailed.Code, &msgTransactional
	case hdr.LogAppendTime():
		return kerr.InvalidTimestamp.Code, &msgAppendTime
	}
	return 0, nil
}
