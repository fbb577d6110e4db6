package kafka

import (
	"errors"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/klite/klite/storage"
)

// maxUnknownLogged bounds the set of distinct unknown errors remembered for
// log-once.
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
	msg := err.Error()
	h.unknownMu.Lock()
	_, seen := h.unknownLogged[msg]
	if !seen && len(h.unknownLogged) < maxUnknownLogged {
		h.unknownLogged[msg] = struct{}{}
	}
	h.unknownMu.Unlock()
	if !seen {
		h.log.Error().Err(err).Msg("kafka: unmapped storage error answered as UNKNOWN_SERVER_ERROR")
	}
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
