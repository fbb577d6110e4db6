package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListOffsets -4 (earliest local, v8+) answers storage's local start, the
// first offset the WAL holds, which tiering moves apart from the log start
// (-2); never below the log start.
func TestListOffsetsEarliestLocal(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 1, nil)
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 2, maxTs: 1000})) // offsets 0-1
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 3, maxTs: 3000})) // 2-4
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 1, maxTs: 2000})) // 5
	p := hs.st.topics["t"].parts[0]

	ask := func(ts int64) kmsg.ListOffsetsResponseTopicPartition {
		t.Helper()
		resp := roundTrip[*kmsg.ListOffsetsResponse](hs, listOffsetsReq(8, "t", ts))
		return resp.Topics[0].Partitions[0]
	}
	cases := []struct {
		name                 string
		logStart, localStart int64
		earliest, local      int64
	}{
		{"all local", 0, 0, 0, 0},
		{"tiered below 5", 0, 5, 0, 5},
		{"log start moved, still tiered below 5", 2, 5, 2, 5},
		{"nothing local: the high watermark", 2, 6, 2, 6},
		{"log start past the local start", 6, 5, 6, 6},
	}
	for _, c := range cases {
		p.logStart, p.localStart = c.logStart, c.localStart
		for _, q := range []struct{ ts, want int64 }{{offsetEarliest, c.earliest}, {offsetEarliestLocal, c.local}} {
			rp := ask(q.ts)
			if rp.ErrorCode != 0 || rp.Offset != q.want || rp.Timestamp != -1 || rp.LeaderEpoch != leaderEpoch {
				t.Errorf("%s: ListOffsets %d: offset %d ts %d epoch %d err %d, want offset %d ts -1 epoch %d",
					c.name, q.ts, rp.Offset, rp.Timestamp, rp.LeaderEpoch, rp.ErrorCode, q.want, leaderEpoch)
			}
		}
	}
}
