package kafka

// DescribeProducers (key 61), version 0 (KIP-664), the only version Kafka
// 4.x has.
//
// Behaviour: per requested partition, the producers storage keeps state for
// (idempotent and transactional): producer id and epoch, the last sequence
// of the epoch (-1 when a marker bumped it since), the last timestamp and
// the first offset of the producer's open transaction (-1 when none), which
// is what kafka-transactions.sh find-hanging looks for. Checks per topic, in
// Kafka's order: an invalid name is INVALID_TOPIC_EXCEPTION, then the ACL,
// then an unknown topic UNKNOWN_TOPIC_OR_PARTITION; a partition the topic
// does not have is UNKNOWN_TOPIC_OR_PARTITION, a failed one
// KAFKA_STORAGE_ERROR. A partition listed more than once is answered once
// (Kafka answers every copy; clients key the answers by partition): the
// response stays within the producer state plus the request's size.
//
// Differences from Apache Kafka: LastTimestamp is the broker's time of the
// producer's last batch or marker (what klite keeps to expire producers),
// where Kafka shows the batch's max timestamp. CoordinatorEpoch is -1:
// klite has one coordinator, which writes every marker with epoch 0, and its
// producer state does not keep it. The internal topics have no log here, so
// their partitions answer no producers.
//
// ACLs (-authorizer): READ on each topic, as Kafka (TOPIC_AUTHORIZATION_FAILED
// for its partitions, whether the topic exists or not).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const describeProducersKey = 61

func init() { register(describeProducersKey, 0, 0, (*Handler).describeProducers) }

func (h *Handler) describeProducers(r *request) {
	req := kmsg.NewPtrDescribeProducersRequest()
	if !h.parse(r, req) {
		return
	}
	resp := kmsg.NewPtrDescribeProducersResponse()
	resp.Version = r.version
	resp.Topics = make([]kmsg.DescribeProducersResponseTopic, len(req.Topics))
	var lookups []int // topics whose partitions storage answers
	type topicPartition struct {
		topic string
		part  int32
	}
	seen := make(map[topicPartition]bool)
	for i, t := range req.Topics {
		rt := &resp.Topics[i]
		rt.Default()
		rt.Topic = t.Topic
		code, msg := int16(0), ""
		info, found := h.topic(t.Topic)
		switch {
		case !validTopicName(t.Topic):
			code, msg = kerr.InvalidTopicException.Code, "Topic name \""+t.Topic+"\" is illegal"
		case !h.authorized(r, acl.OpRead, acl.ResourceTopic, t.Topic):
			code = kerr.TopicAuthorizationFailed.Code
		case !found:
			code = kerr.UnknownTopicOrPartition.Code
		}
		rt.Partitions = make([]kmsg.DescribeProducersResponseTopicPartition, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			if seen[topicPartition{t.Topic, p}] {
				continue
			}
			seen[topicPartition{t.Topic, p}] = true
			rt.Partitions = append(rt.Partitions, kmsg.NewDescribeProducersResponseTopicPartition())
			rp := &rt.Partitions[len(rt.Partitions)-1]
			rp.Partition, rp.ErrorCode = p, code
			if code == 0 && !partitionOK(&info, p) {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			if msg != "" {
				rp.ErrorMessage = &msg
			}
		}
		if code == 0 && !internalTopic(t.Topic) {
			lookups = append(lookups, i)
		}
	}
	if len(lookups) == 0 {
		r.respond(resp)
		return
	}
	// Storage visits each shard's writer goroutine: off the event loop.
	h.asyncRead(r, func() {
		for _, i := range lookups {
			h.fillProducers(&resp.Topics[i])
		}
		r.respond(resp)
	})
}

// fillProducers asks storage for the producers of rt's partitions that
// have no error yet.
func (h *Handler) fillProducers(rt *kmsg.DescribeProducersResponseTopic) {
	var parts []int32
	var at []int
	for j := range rt.Partitions {
		if rt.Partitions[j].ErrorCode == 0 {
			parts = append(parts, rt.Partitions[j].Partition)
			at = append(at, j)
		}
	}
	if len(parts) == 0 {
		return
	}
	for k, pp := range h.st.Producers(rt.Topic, parts) {
		rp := &rt.Partitions[at[k]]
		if pp.Err != nil {
			rp.ErrorCode = h.errCode(pp.Err)
			continue
		}
		rp.ActiveProducers = make([]kmsg.DescribeProducersResponseTopicPartitionActiveProducer, len(pp.Producers))
		for n, p := range pp.Producers {
			ap := &rp.ActiveProducers[n]
			ap.Default()
			ap.ProducerID, ap.ProducerEpoch = p.ID, int32(p.Epoch)
			ap.LastSequence, ap.LastTimestamp = p.LastSequence, p.LastTimestamp
			ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = -1, p.TxnStart
		}
	}
}
