package kafka

import (
	"container/list"
	"errors"
	"hash/maphash"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/klite/klite/storage"
)

// maxUnknownLogged bounds the distinct unknown errors remembered for
// log-once; past it the least recently seen is forgotten (and logged again
// should it recur).
const maxUnknownLogged = 256

// errCode maps a storage (or batch validation) error to a Kafka error code.
// This is the only place that does so. Unknown errors become
// UNKNOWN_SERVER_ERROR and are logged once per distinct message.
func (h *Handler) errCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, storage.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, storage.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, storage.ErrTopicCollision):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, storage.ErrPartitionLimit), errors.Is(err, storage.ErrMetadataFull):
		// Kafka (KRaft) refuses creates past its partition limits with
		// POLICY_VIOLATION (KAFKA-17870); klite its metadata size limit too.
		return kerr.PolicyViolation.Code
	case errors.Is(err, storage.ErrInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, storage.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, storage.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, storage.ErrUnknownProducerID):
		return kerr.UnknownProducerID.Code
	case errors.Is(err, storage.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, storage.ErrConcurrentTxns):
		return kerr.ConcurrentTransactions.Code
	case errors.Is(err, storage.ErrStorage), errors.Is(err, storage.ErrClosed):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, storage.ErrLogFull):
		// The WAL is at -wal-max-bytes: retriable in every client, and the
		// operator has an error in the log.
		return kerr.KafkaStorageError.Code
	case errors.Is(err, storage.ErrTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, storage.ErrBusy):
		// The shard's queue is full: nothing was written, and every client
		// retries REQUEST_TIMED_OUT after a backoff.
		return kerr.RequestTimedOut.Code
	case errors.Is(err, storage.ErrBatchCRC),
		errors.Is(err, storage.ErrBatchTooShort),
		errors.Is(err, storage.ErrBatchLength):
		return kerr.CorruptMessage.Code
	case errors.Is(err, storage.ErrBatchMagic),
		errors.Is(err, storage.ErrBatchCount),
		errors.Is(err, storage.ErrBatchEmpty),
		errors.Is(err, storage.ErrRecordInvalid):
		return kerr.InvalidRecord.Code
	case errors.Is(err, storage.ErrRecordsCorrupt), errors.Is(err, storage.ErrBatchCodec):
		return kerr.CorruptMessage.Code
	case errors.Is(err, storage.ErrRecordsTooLarge):
		// Java producers split the batch and retry on this code.
		return kerr.MessageTooLarge.Code
	}
	h.logUnknown(err)
	return kerr.UnknownServerError.Code
}

func (h *Handler) logUnknown(err error) {
	if h.unknownLogged.first(err.Error()) {
		h.log.Error().Err(err).Msg("kafka: unmapped storage error answered as UNKNOWN_SERVER_ERROR")
	}
}

// logOnce remembers the max most recently seen distinct messages (by a
// 64-bit hash of their text, so long messages cost no more), so a message
// that keeps recurring is logged once however many others come and go, and
// memory stays bounded however many distinct messages there are.
type logOnce struct {
	max  int
	seed maphash.Seed

	mu    sync.Mutex
	seen  map[uint64]*list.Element // value: the hash; guarded by mu
	order list.List                // front: most recently seen; guarded by mu
}

func newLogOnce(max int) *logOnce {
	return &logOnce{max: max, seed: maphash.MakeSeed(), seen: make(map[uint64]*list.Element, max)}
}

// first reports whether msg is not among the remembered messages, and
// remembers it as the most recent.
func (l *logOnce) first(msg string) bool {
	h := maphash.String(l.seed, msg)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.seen[h]; ok {
		l.order.MoveToFront(e)
		return false
	}
	if l.order.Len() >= l.max {
		oldest := l.order.Back()
		delete(l.seen, oldest.Value.(uint64))
		l.order.Remove(oldest)
	}
	l.seen[h] = l.order.PushFront(h)
	return true
}

// errMessage is err's text for an ErrorMessage field: without the storage
// sentinel's own text where a detail follows it.
func errMessage(err error) string {
	msg := err.Error()
	for _, e := range []error{storage.ErrTopicCollision, storage.ErrPartitionLimit, storage.ErrMetadataFull} {
		if errors.Is(err, e) {
			if rest, ok := strings.CutPrefix(msg, e.Error()+": "); ok && rest != "" {
				return strings.ToUpper(rest[:1]) + rest[1:]
			}
		}
	}
	return msg
}

// strp returns a pointer to s, for optional error messages. Pass package-level
// strings on hot paths so nothing is allocated.
func strp(s string) *string { return &s }
