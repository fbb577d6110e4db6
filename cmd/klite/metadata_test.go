package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Many clients create topics (CreateTopics and Metadata auto-create) while
// others read Metadata: a topic is shown whole or not at all. Once a
// client's create succeeded, every Metadata answer, on any connection, has
// the topic with all its partitions; no answer ever holds a topic without
// error and with no partitions.
func TestConcurrentCreatesAndMetadata(t *testing.T) {
	const creators, perCreator, readers = 8, 12, 4
	b := startBroker(t)
	ctx := testContext(t, 2*time.Minute)

	var acked sync.Map // topic -> partitions, once its create succeeded
	var stop atomic.Bool
	var rwg sync.WaitGroup
	var reads atomic.Int64
	for r := range readers {
		cl := newFranz(t, b.addr)
		rwg.Go(func() {
			for !stop.Load() {
				var names []string
				acked.Range(func(k, _ any) bool { names = append(names, k.(string)); return len(names) < 50 })
				req := kmsg.NewPtrMetadataRequest()
				if r%2 == 1 {
					for _, n := range names {
						rt := kmsg.NewMetadataRequestTopic()
						rt.Topic = kmsg.StringPtr(n)
						req.Topics = append(req.Topics, rt)
					}
				} // else: null list, all topics
				resp, err := req.RequestWith(ctx, cl)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("reader %d: %v", r, err)
					}
					return
				}
				reads.Add(1)
				seen := map[string]bool{}
				for _, rt := range resp.Topics {
					name := *rt.Topic
					seen[name] = true
					want, ok := acked.Load(name)
					switch {
					case rt.ErrorCode == 0 && len(rt.Partitions) == 0:
						t.Errorf("reader %d: topic %s without error and without partitions", r, name)
					case ok && (rt.ErrorCode != 0 || int32(len(rt.Partitions)) != want.(int32)):
						t.Errorf("reader %d: created topic %s: error %d, %d partitions, want %d", r, name, rt.ErrorCode, len(rt.Partitions), want)
					}
				}
				// Topics acked before the request went out are in a full listing.
				for _, n := range names {
					if r%2 == 0 && !seen[n] {
						t.Errorf("reader %d: created topic %s missing from the listing", r, n)
					}
				}
			}
		})
	}

	var cwg sync.WaitGroup
	for c := range creators {
		cl := newFranz(t, b.addr)
		adm := kadm.NewClient(cl)
		check := newFranz(t, b.addr) // another connection
		cwg.Go(func() {
			for i := range perCreator {
				name := fmt.Sprintf("c%d-t%d", c, i)
				parts := int32(1 + (c+i)%4)
				if i%3 == 2 {
					// Auto-create through Metadata, answered complete.
					req := kmsg.NewPtrMetadataRequest()
					req.AllowAutoTopicCreation = true
					rt := kmsg.NewMetadataRequestTopic()
					rt.Topic = kmsg.StringPtr(name)
					req.Topics = append(req.Topics, rt)
					resp, err := req.RequestWith(ctx, cl)
					if err != nil {
						t.Errorf("auto-create %s: %v", name, err)
						return
					}
					got := resp.Topics[0]
					if got.ErrorCode != 0 || len(got.Partitions) == 0 {
						t.Errorf("auto-create %s: error %d, %d partitions", name, got.ErrorCode, len(got.Partitions))
						return
					}
					parts = int32(len(got.Partitions))
				} else {
					resp, err := adm.CreateTopic(ctx, parts, 1, nil, name)
					if err == nil {
						err = resp.Err
					}
					if err != nil {
						t.Errorf("create %s: %v", name, err)
						return
					}
				}
				acked.Store(name, parts)
				md, err := kadm.NewClient(check).Metadata(ctx, name)
				if err != nil {
					t.Errorf("metadata %s: %v", name, err)
					return
				}
				if td := md.Topics[name]; td.Err != nil || int32(len(td.Partitions)) != parts {
					t.Errorf("right after its create, topic %s: %v, %d partitions, want %d", name, td.Err, len(td.Partitions), parts)
				}
			}
		})
	}
	cwg.Wait()
	stop.Store(true)
	rwg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no Metadata read ran")
	}
	t.Logf("%d Metadata reads beside %d creates", reads.Load(), creators*perCreator)
}

// Topic names that collide once '.' is read as '_', internal topics, and
// the broker-wide partition cap, answered as Kafka answers them.
func TestTopicNameRulesAndPartitionCap(t *testing.T) {
	b := startBroker(t, "-max-partitions", "10")
	cl := newFranz(t, b.addr)
	adm := kadm.NewClient(cl)
	ctx := testContext(t, 30*time.Second)

	createTopic(t, adm, "a.b", 2)
	createErr := func(name string, parts int32) (int16, string) {
		t.Helper()
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, parts, 1
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		msg := ""
		if m := resp.Topics[0].ErrorMessage; m != nil {
			msg = *m
		}
		return resp.Topics[0].ErrorCode, msg
	}
	if code, msg := createErr("a_b", 1); code != kerr.InvalidTopicException.Code || msg != "Topic 'a_b' collides with existing topic: a.b" {
		t.Fatalf("colliding create: %d %q", code, msg)
	}
	if code, _ := createErr("__consumer_offsets", 1); code != kerr.InvalidRequest.Code {
		t.Fatalf("create __consumer_offsets: %d", code)
	}
	if code, _ := createErr("__transaction_state", 1); code != kerr.InvalidRequest.Code {
		t.Fatalf("create __transaction_state: %d", code)
	}

	// Delete of an internal topic.
	dresp, err := adm.DeleteTopics(ctx, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	if d := dresp["__consumer_offsets"]; !errorIs(d.Err, kerr.InvalidRequest) {
		t.Fatalf("delete __consumer_offsets: %v", d.Err)
	}

	// Produce to an internal topic.
	preq := kmsg.NewPtrProduceRequest()
	preq.Acks = -1
	preq.TimeoutMillis = 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "__transaction_state"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = []byte{0} // never validated: the topic is refused first
	pt.Partitions = append(pt.Partitions, pp)
	preq.Topics = append(preq.Topics, pt)
	// By name: Produce v13 names topics by ID.
	presp, err := preq.RequestWith(ctx, newFranz(t, b.addr, kgo.MaxVersions(kversion.V3_7_0())))
	if err != nil {
		t.Fatal(err)
	}
	if code := presp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Fatalf("produce to __transaction_state: %d", code)
	}

	// The cap: 2 partitions exist, 10 allowed.
	if code, msg := createErr("big", 9); code != kerr.PolicyViolation.Code || msg == "" {
		t.Fatalf("create past the cap: %d %q", code, msg)
	}
	// ValidateOnly answers what a create would.
	if r, err := adm.ValidateCreateTopics(ctx, 9, 1, nil, "big"); err != nil || !errorIs(r["big"].Err, kerr.PolicyViolation) {
		t.Fatalf("validate-only create past the cap: %v %v", r["big"].Err, err)
	}
	if r, err := adm.ValidateCreateTopics(ctx, 1, 1, nil, "a_b"); err != nil || !errorIs(r["a_b"].Err, kerr.InvalidTopicException) {
		t.Fatalf("validate-only colliding create: %v %v", r["a_b"].Err, err)
	}
	if r, err := adm.ValidateCreatePartitions(ctx, 9, "a.b"); err != nil || !errorIs(r["a.b"].Err, kerr.PolicyViolation) {
		t.Fatalf("validate-only grow past the cap: %v %v", r["a.b"].Err, err)
	}
	createTopic(t, adm, "fits", 8)
	if _, err := adm.CreatePartitions(ctx, 1, "fits"); err != nil {
		t.Fatal(err)
	}
	cresp, err := adm.CreatePartitions(ctx, 1, "a.b") // 3 on a.b: 11 in all
	if err != nil {
		t.Fatal(err)
	}
	if r := cresp["a.b"]; !errorIs(r.Err, kerr.PolicyViolation) {
		t.Fatalf("grow past the cap: %v", r.Err)
	}
	md := kmsg.NewPtrMetadataRequest()
	md.AllowAutoTopicCreation = true
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("auto")
	md.Topics = append(md.Topics, mt)
	mresp, err := md.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := mresp.Topics[0].ErrorCode; code != kerr.PolicyViolation.Code {
		t.Fatalf("auto-create past the cap: %d", code)
	}
	// Auto-create of a colliding name, and of an internal one.
	md.Topics[0].Topic = kmsg.StringPtr("a_b")
	md.Topics = append(md.Topics, kmsg.NewMetadataRequestTopic())
	md.Topics[1].Topic = kmsg.StringPtr("__consumer_offsets")
	if mresp, err = md.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if code := mresp.Topics[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Fatalf("auto-create of a colliding name: %d", code)
	}
	// The internal topic is described, never created as a user topic.
	if co := mresp.Topics[1]; co.ErrorCode != 0 || !co.IsInternal || len(co.Partitions) != 50 {
		t.Fatalf("metadata of __consumer_offsets: %+v", co)
	}
}

func errorIs(err error, want *kerr.Error) bool {
	ke, ok := err.(*kerr.Error)
	return ok && ke.Code == want.Code
}
