package kafka

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// wantVersions is the advertised table; changing it is a decision, so the
// test spells it out.
var wantVersions = map[int16][2]int16{
	0:  {0, 13}, // Produce (v0-2 refused per request, KAFKA-18659)
	1:  {4, 18}, // Fetch
	2:  {1, 10}, // ListOffsets
	3:  {0, 13}, // Metadata
	8:  {0, 10}, // OffsetCommit
	9:  {0, 10}, // OffsetFetch
	10: {0, 6},  // FindCoordinator
	11: {0, 9},  // JoinGroup
	12: {0, 4},  // Heartbeat
	13: {0, 5},  // LeaveGroup
	14: {0, 5},  // SyncGroup
	15: {0, 6},  // DescribeGroups
	16: {0, 5},  // ListGroups
	17: {0, 1},  // SaslHandshake
	18: {0, 4},  // ApiVersions
	19: {0, 7},  // CreateTopics
	20: {0, 6},  // DeleteTopics
	21: {0, 2},  // DeleteRecords
	22: {0, 5},  // InitProducerId
	23: {2, 4},  // OffsetForLeaderEpoch
	24: {0, 5},  // AddPartitionsToTxn
	25: {0, 4},  // AddOffsetsToTxn
	26: {0, 5},  // EndTxn
	28: {0, 5},  // TxnOffsetCommit
	29: {0, 3},  // DescribeAcls
	30: {0, 3},  // CreateAcls
	31: {0, 3},  // DeleteAcls
	32: {0, 4},  // DescribeConfigs
	33: {0, 2},  // AlterConfigs
	35: {1, 4},  // DescribeLogDirs
	36: {0, 2},  // SaslAuthenticate
	37: {0, 3},  // CreatePartitions
	42: {0, 3},  // DeleteGroups
	43: {0, 2},  // ElectLeaders
	44: {0, 1},  // IncrementalAlterConfigs
	45: {0, 1},  // AlterPartitionReassignments
	46: {0, 0},  // ListPartitionReassignments
	47: {0, 0},  // OffsetDelete
	48: {0, 1},  // DescribeClientQuotas
	49: {0, 1},  // AlterClientQuotas
	50: {0, 0},  // DescribeUserScramCredentials
	51: {0, 0},  // AlterUserScramCredentials
	60: {0, 2},  // DescribeCluster
	61: {0, 0},  // DescribeProducers
	65: {0, 0},  // DescribeTransactions
	66: {0, 2},  // ListTransactions
	68: {0, 1},  // ConsumerGroupHeartbeat
	69: {0, 1},  // ConsumerGroupDescribe
	75: {0, 0},  // DescribeTopicPartitions
}

func TestApiVersions(t *testing.T) {
	hs := newHarness(t)
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "klite-test", "1.0.0"
		resp := roundTrip[*kmsg.ApiVersionsResponse](hs, req)
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d: error %d", v, resp.ErrorCode)
		}
		got := map[int16][2]int16{}
		for _, k := range resp.ApiKeys {
			got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
		}
		if len(got) != len(wantVersions) {
			t.Fatalf("v%d: advertised %v, want %v", v, got, wantVersions)
		}
		for k, want := range wantVersions {
			if got[k] != want {
				t.Fatalf("v%d: key %d advertised %v, want %v", v, k, got[k], want)
			}
		}
	}
}

func TestApiVersionsInvalidSoftwareName(t *testing.T) {
	hs := newHarness(t)
	for _, name := range []string{"", "-bad", "bad_name", "bad."} {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		req.ClientSoftwareName, req.ClientSoftwareVersion = name, "1.0"
		resp := roundTrip[*kmsg.ApiVersionsResponse](hs, req)
		if resp.ErrorCode != kerr.InvalidRequest.Code {
			t.Fatalf("name %q: error %d, want INVALID_REQUEST", name, resp.ErrorCode)
		}
	}
}

// A client newer than us: UNSUPPORTED_VERSION in the v0 layout and v0 header
// with our ApiKeys, whatever the body holds.
func TestApiVersionsUnsupportedFallback(t *testing.T) {
	hs := newHarness(t)
	for _, v := range []int16{5, 6, 127, 32767} {
		frame := kbin.AppendInt16(nil, apiVersionsKey)
		frame = kbin.AppendInt16(frame, v)
		frame = kbin.AppendInt32(frame, testCorr)
		frame = append(frame, 0xde, 0xad, 0xbe, 0xef) // unknown header/body
		resp := hs.serveFrame(frame).wait(t)
		if resp.Close {
			t.Fatalf("v%d: closed", v)
		}
		b := assemble(t, resp)
		if int32(binary.BigEndian.Uint32(b)) != testCorr {
			t.Fatalf("v%d: bad correlation id", v)
		}
		var body kmsg.ApiVersionsResponse
		body.Version = 0
		if err := body.ReadFrom(b[4:]); err != nil {
			t.Fatalf("v%d: decode v0 body: %v", v, err)
		}
		if body.ErrorCode != kerr.UnsupportedVersion.Code {
			t.Fatalf("v%d: error %d, want UNSUPPORTED_VERSION", v, body.ErrorCode)
		}
		found := false
		for _, k := range body.ApiKeys {
			if k.ApiKey == apiVersionsKey && k.MaxVersion == 4 {
				found = true
			}
		}
		if !found || len(body.ApiKeys) != len(wantVersions) {
			t.Fatalf("v%d: fallback ApiKeys %v", v, body.ApiKeys)
		}
	}
}

func TestUnknownKeyOrVersionCloses(t *testing.T) {
	hs := newHarness(t)
	cases := []struct {
		name         string
		key, version int16
	}{
		{"unknown key", 67, 0},  // AllocateProducerIds: controller only
		{"negative key", -1, 0}, //
		{"huge key", 3000, 0},   //
		{"produce v14", 0, 14},  //
		{"fetch v3", 1, 3},      //
		{"fetch v19", 1, 19},    //
		{"list offsets v0", 2, 0},
		{"metadata v14", 3, 14},
		{"negative version", 3, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A valid body where kmsg can encode one, so the close is
			// for the key or version, not a body that fails to parse.
			var frame []byte
			if probe := kmsg.RequestForKey(c.key); probe != nil && c.version >= 0 && c.version <= probe.MaxVersion() {
				frame = encodeRequest(sampleRequest(c.key, c.version), testCorr)
			} else {
				frame = kbin.AppendInt16(nil, c.key)
				frame = kbin.AppendInt16(frame, c.version)
				frame = kbin.AppendInt32(frame, testCorr)
				frame = kbin.AppendNullableString(frame, nil)
			}
			resp := hs.serveFrame(frame).wait(t)
			if !resp.Close || len(resp.Parts) != 0 {
				t.Fatalf("want a bare close, got %+v", resp)
			}
		})
	}
}

func TestGarbageFramesClose(t *testing.T) {
	hs := newHarness(t)
	frames := [][]byte{
		nil,
		{0},
		{0, 3, 0, 1, 0, 0, 0},             // header cut before the correlation id ends
		{0, 3, 0, 1, 0, 0, 0, 1},          // no client id
		{0, 3, 0, 1, 0, 0, 0, 1, 0, 9, 1}, // client id longer than the frame
		{0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0x80},      // flexible header, bad tag varint
		{0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 1, 1, 100}, // tag longer than the frame
	}
	for i, f := range frames {
		resp := hs.serveFrame(f).wait(t)
		if !resp.Close {
			t.Fatalf("frame %d: not closed", i)
		}
	}
}

// Every registered API at every advertised version: a valid request cut at
// every length either closes the connection or answers once, never panics.
func TestTruncatedBodiesNeverPanic(t *testing.T) {
	hs := newHarness(t)
	hs.createTopic("t", 2, nil)
	hs.produceTo("t", 0, makeBatch(batchOpts{records: 2, payload: 10}))
	for key, vr := range wantVersions {
		for v := vr[0]; v <= vr[1]; v++ {
			req := sampleRequest(key, v)
			full := encodeRequest(req, testCorr)
			for cut := 0; cut < len(full); cut++ {
				frame := append([]byte(nil), full[:cut]...)
				p := hs.serveFrame(frame)
				resp := p.wait(t)
				if resp.Release != nil {
					resp.Release()
				}
			}
		}
	}
}

// sampleRequest is a small valid request for key at version v.
func sampleRequest(key, v int16) kmsg.Request {
	req := kmsg.RequestForKey(key)
	req.SetVersion(v)
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		r.Acks = 1
		t := kmsg.NewProduceRequestTopic()
		t.Topic = "t"
		p := kmsg.NewProduceRequestTopicPartition()
		p.Records = makeBatch(batchOpts{records: 1, payload: 4})
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	case *kmsg.FetchRequest:
		r.MaxWaitMillis = 0
		t := kmsg.NewFetchRequestTopic()
		t.Topic = "t"
		p := kmsg.NewFetchRequestTopicPartition()
		p.PartitionMaxBytes = 1 << 20
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	case *kmsg.ListOffsetsRequest:
		t := kmsg.NewListOffsetsRequestTopic()
		t.Topic = "t"
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Timestamp = -1
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	case *kmsg.MetadataRequest:
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = strPtr("t")
		r.Topics = append(r.Topics, t)
	case *kmsg.ApiVersionsRequest:
		r.ClientSoftwareName, r.ClientSoftwareVersion = "klite-test", "1.0"
	case *kmsg.CreateTopicsRequest:
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic = "created"
		t.NumPartitions, t.ReplicationFactor = 1, 1
		r.Topics = append(r.Topics, t)
		r.ValidateOnly = true
	case *kmsg.DeleteTopicsRequest:
		r.TopicNames = []string{"nope"}
		dt := kmsg.NewDeleteTopicsRequestTopic()
		dt.Topic = strPtr("nope")
		r.Topics = append(r.Topics, dt)
	case *kmsg.DeleteRecordsRequest:
		t := kmsg.NewDeleteRecordsRequestTopic()
		t.Topic = "t"
		p := kmsg.NewDeleteRecordsRequestTopicPartition()
		p.Offset = 1
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	case *kmsg.InitProducerIDRequest:
	}
	return req
}

func TestErrCodeMapping(t *testing.T) {
	hs := newHarness(t)
	if got := hs.h.errCode(errUnmapped); got != kerr.UnknownServerError.Code {
		t.Fatalf("unmapped error: %d", got)
	}
	if got := hs.h.errCode(nil); got != 0 {
		t.Fatalf("nil: %d", got)
	}
}

type unmappedErr struct{}

func (unmappedErr) Error() string { return "something else" }

var errUnmapped error = unmappedErr{}

// pollCount is how many long polls the handler tracks.
func (h *Handler) pollCount() int { return len(h.allPolls()) }
