package kafka

// ListOffsets (key 2), versions 1-10.
//
// Behaviour per partition, by Timestamp:
//   - -1 latest: the high watermark; -2 earliest: the log start offset;
//   - -3 max timestamp (v7+, KIP-734): the first record carrying the
//     largest timestamp, inside the batch storage reports
//     (list_offsets_exact.go);
//   - -4 earliest local (v8+, KIP-405): the local log start, the first
//     offset the WAL holds: at least the log start, the high watermark
//     when the WAL holds none of the partition, the log start without
//     tiering (storage.Store.LocalStart);
//   - -5 latest tiered (v9+, KIP-1005): the highest offset in the bucket
//     (storage.Store.LatestTiered), -1 without tiering or before anything
//     is uploaded, with timestamp -1;
//   - anything else: the first record whose timestamp is >= it, with that
//     timestamp (inside the first batch whose maxTimestamp is >= it), or
//     offset -1 / timestamp -1 when there is none.
//
// Timestamps are -1 for -1/-2/-4 answers, as in Kafka. LeaderEpoch (v4+) is 0
// with an offset, -1 without. CurrentLeaderEpoch above 0 answers
// UNKNOWN_LEADER_EPOCH (KIP-320). A partition listed twice answers
// INVALID_REQUEST, as in Kafka. IsolationLevel (v2+) read_committed answers
// -1 with the last stable offset (KIP-98: the first offset of the earliest
// open transaction, else the high watermark), and a timestamp or max
// timestamp lookup whose answer is at or past it with -1, as Kafka does
// (only offsets a read_committed consumer could fetch count).
//
// Differences from Apache Kafka: v0 (offset lists by segment) is not
// served; Kafka 4 dropped it too. TimeoutMillis (v10,
// KIP-1075) is ignored: no lookup here waits on a remote fetch queue. v11
// (-6 earliest pending upload, Kafka 4.2) is not served.
//
// ACLs (-authorizer): DESCRIBE on each topic (TOPIC_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
)

const listOffsetsKey = 2

func init() { register(listOffsetsKey, 1, 10, (*Handler).listOffsets) }

// Special ListOffsets timestamps.
const (
	offsetLatest        = -1
	offsetEarliest      = -2
	offsetMaxTimestamp  = -3 // v7+
	offsetEarliestLocal = -4 // v8+
	offsetLatestTiered  = -5 // v9+
)

func (h *Handler) listOffsets(r *request) {
	req := kmsg.NewPtrListOffsetsRequest()
	if !h.parse(r, req) {
		return
	}
	// OffsetForTime may read a time index from disk.
	h.asyncRead(r, func() { r.respond(h.listOffsetsResponse(r.version, req, h.topicAuthz(r))) })
}

func (h *Handler) listOffsetsResponse(version int16, req *kmsg.ListOffsetsRequest, allowed topicAllowed) *kmsg.ListOffsetsResponse {
	resp := kmsg.NewPtrListOffsetsResponse()
	resp.Version = version
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		t := &req.Topics[ti]
		rt := &resp.Topics[ti]
		rt.Default()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, len(t.Partitions))
		info, found := h.topic(t.Topic) // internal ones too: an empty log
		denied := !allowed(acl.OpDescribe, t.Topic)
		var seen map[int32]int
		if len(t.Partitions) > 1 {
			seen = make(map[int32]int, len(t.Partitions))
			for _, p := range t.Partitions {
				seen[p.Partition]++
			}
		}
		for pi := range t.Partitions {
			p := &t.Partitions[pi]
			rp := &rt.Partitions[pi]
			rp.Default()
			rp.Partition = p.Partition
			switch {
			case seen[p.Partition] > 1:
				rp.ErrorCode = kerr.InvalidRequest.Code
			case denied:
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case !found || !partitionOK(&info, p.Partition):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case version >= 4 && p.CurrentLeaderEpoch > leaderEpoch:
				rp.ErrorCode = kerr.UnknownLeaderEpoch.Code
			default:
				h.listOffset(version, h.offsetsOf(&info), info.Name, p, rp, version >= 2 && req.IsolationLevel == 1)
			}
		}
	}
	return resp
}

func (h *Handler) listOffset(version int16, st offsetSource, topic string, p *kmsg.ListOffsetsRequestTopicPartition, rp *kmsg.ListOffsetsResponseTopicPartition, committed bool) {
	var off, ts int64 = -1, -1
	var err error
	lookup := false // a timestamp lookup: capped at the LSO for read_committed
	switch {
	case p.Timestamp == offsetLatest && committed:
		off, err = st.LastStableOffset(topic, p.Partition)
	case p.Timestamp == offsetLatest:
		_, off, err = st.Offsets(topic, p.Partition)
	case p.Timestamp == offsetEarliest:
		off, _, err = st.Offsets(topic, p.Partition)
	case p.Timestamp == offsetEarliestLocal && version >= 8:
		off, err = st.LocalStart(topic, p.Partition)
	case p.Timestamp == offsetLatestTiered && version >= 9:
		off, err = st.LatestTiered(topic, p.Partition)
	case p.Timestamp == offsetMaxTimestamp && version >= 7:
		off, ts, err = st.MaxTimestamp(topic, p.Partition)
		if err == nil && off >= 0 { // the exact record (list_offsets_exact.go)
			max := ts
			if o, t, ok := h.exactRecord(topic, p.Partition, off, func(t int64) bool { return t == max }); ok {
				off, ts = o, t
			}
		}
		lookup = true
	default:
		off, ts, err = st.OffsetForTime(topic, p.Partition, p.Timestamp)
		if err == nil && off >= 0 {
			if o, t, ok := h.exactRecord(topic, p.Partition, off, func(t int64) bool { return t >= p.Timestamp }); ok {
				off, ts = o, t
			}
		}
		lookup = true
	}
	if err == nil && lookup && committed && off >= 0 {
		var lso int64
		if lso, err = st.LastStableOffset(topic, p.Partition); err == nil && off >= lso {
			off, ts = -1, -1
		}
	}
	if err != nil {
		rp.ErrorCode = h.errCode(err)
		return
	}
	rp.Offset, rp.Timestamp = off, ts
	if off >= 0 {
		rp.LeaderEpoch = leaderEpoch
	} else {
		rp.Timestamp = -1
	}
}
