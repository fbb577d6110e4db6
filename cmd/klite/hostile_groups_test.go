package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
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

// groupFloodWorker owns some groups and commits, deletes offsets of, and
// deletes them, one request at a time. acked is each group's committed
// offsets after its last acknowledged request; pending what the unanswered
// one would make.
type groupFloodWorker struct {
	groups  []string
	acked   map[string]map[int32]int64
	pending map[string]map[int32]int64
	ops     atomic.Int64 // read by the test while the worker runs
}

const floodTopic, floodParts = "gflood", 8

func (w *groupFloodWorker) run(ctx context.Context, t *testing.T, cl *kgo.Client, rng *rand.Rand) {
	meta := strings.Repeat("m", 4096)
	for ctx.Err() == nil {
		g := w.groups[rng.IntN(len(w.groups))]
		cur := w.acked[g]
		next := map[int32]int64{}
		for p, o := range cur {
			next[p] = o
		}
		var req kmsg.Request
		switch n := rng.IntN(10); {
		case n == 0 && len(cur) > 0:
			r := kmsg.NewPtrDeleteGroupsRequest()
			r.Groups = []string{g}
			next = map[int32]int64{}
			req = r
		case n == 1 && len(cur) > 0:
			r := kmsg.NewPtrOffsetDeleteRequest()
			r.Group = g
			rt := kmsg.NewOffsetDeleteRequestTopic()
			rt.Topic = floodTopic
			for p := range cur {
				if rng.IntN(2) == 0 {
					rp := kmsg.NewOffsetDeleteRequestTopicPartition()
					rp.Partition = p
					rt.Partitions = append(rt.Partitions, rp)
					delete(next, p)
				}
			}
			r.Topics = append(r.Topics, rt)
			req = r
		default:
			r := kmsg.NewPtrOffsetCommitRequest()
			r.Group, r.Generation = g, -1
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = floodTopic
			for p := int32(0); p < floodParts; p++ {
				if rng.IntN(2) == 0 {
					continue
				}
				rp := kmsg.NewOffsetCommitRequestTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = p, rng.Int64N(1<<40), -1
				rp.Metadata = kmsg.StringPtr(meta)
				rt.Partitions = append(rt.Partitions, rp)
				next[p] = rp.Offset
			}
			r.Topics = append(r.Topics, rt)
			req = r
		}
		resp, err := cl.Request(ctx, req)
		if err != nil {
			w.pending[g] = next
			return
		}
		var errs []error
		switch resp := resp.(type) {
		case *kmsg.DeleteGroupsResponse:
			errs = append(errs, kerr.ErrorForCode(resp.Groups[0].ErrorCode))
		case *kmsg.OffsetDeleteResponse:
			errs = append(errs, kerr.ErrorForCode(resp.ErrorCode))
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					errs = append(errs, kerr.ErrorForCode(rp.ErrorCode))
				}
			}
		case *kmsg.OffsetCommitResponse:
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					errs = append(errs, kerr.ErrorForCode(rp.ErrorCode))
				}
			}
		}
		for _, err := range errs {
			if err != nil {
				t.Errorf("%s on group of %d bytes: %v", kmsg.NameForKey(req.Key()), len(g), err)
				return
			}
		}
		w.acked[g] = next
		w.ops.Add(1)
	}
}

// Many connections commit offsets (4 KiB metadata, group ids up to the
// 32767-byte limit), delete offsets and delete groups at once; the broker is
// killed with SIGKILL in the middle. After restart every acknowledged commit
// and delete is there, and each unanswered one whole or absent.
func TestGroupFloodKill9(t *testing.T) {
	workers, groupsPer, rounds, perRound := 10, 4, envInt("KLITE_FLOOD_ROUNDS", 3), envInt("KLITE_FLOOD_OPS", 20)
	b := startBroker(t)
	createTopic(t, kadm.NewClient(newFranz(t, b.addr)), floodTopic, floodParts)
	ws := make([]*groupFloodWorker, workers)
	for i := range ws {
		w := &groupFloodWorker{acked: map[string]map[int32]int64{}, pending: map[string]map[int32]int64{}}
		for j := range groupsPer {
			g := fmt.Sprintf("g%d-%d-", i, j)
			if j == 0 {
				g += strings.Repeat("x", 32767-len(g)) // the longest group id
			} else if j == 1 {
				g += strings.Repeat("y", 1000*i)
			}
			w.groups = append(w.groups, g)
		}
		ws[i] = w
	}
	for round := range rounds {
		// Kafka 4.0's versions: the raw requests name topics, and
		// OffsetCommit/OffsetFetch v10 name them by topic id instead.
		if !floodRound(t, b, ws, round, perRound, "commits", kgo.MaxVersions(kversion.V4_0_0())) {
			return
		}
		ctx := testContext(t, time.Minute)
		cl := newFranz(t, b.addr, kgo.MaxVersions(kversion.V4_0_0()))
		total := 0
		for _, w := range ws {
			total += int(w.ops.Load())
			for _, g := range w.groups {
				r := kmsg.NewPtrOffsetFetchRequest()
				r.Group = g
				resp, err := r.RequestWith(ctx, cl)
				if err != nil {
					t.Fatal(err)
				}
				have := map[int32]int64{}
				for _, rt := range resp.Topics {
					for _, rp := range rt.Partitions {
						if rp.Offset >= 0 {
							have[rp.Partition] = rp.Offset
						}
					}
				}
				same := func(m map[int32]int64) bool {
					if len(m) != len(have) {
						return false
					}
					for p, o := range m {
						if have[p] != o {
							return false
						}
					}
					return true
				}
				p, isPending := w.pending[g]
				switch {
				case same(w.acked[g]):
				case isPending && same(p):
					w.acked[g] = have
				default:
					t.Errorf("round %d: group of %d bytes after restart: %v; acked %v, pending %v", round, len(g), have, w.acked[g], p)
				}
				delete(w.pending, g)
			}
		}
		t.Logf("round %d: %d acknowledged group changes so far", round, total)
		if t.Failed() {
			return
		}
	}
}

// Group ids are at most 32767 bytes, the longest string ListGroups v0-2,
// DescribeGroups v0-4 and OffsetFetch v0-5 carry: a commit or join with a
// longer one is INVALID_GROUP_ID, and a group at the limit is listed to an
// old (ListGroups v2) client. Before, one commit with a 40000-byte group id
// made every old client's ListGroups answer a frame it could not parse.
func TestGroupIDLimit(t *testing.T) {
	b := startBroker(t)
	cl := newFranz(t, b.addr)
	adm := kadm.NewClient(cl)
	ctx := testContext(t, 30*time.Second)
	createTopic(t, adm, "gid", 1)
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "gid", Partition: 0, At: 1, LeaderEpoch: -1})
	for _, size := range []int{40000, 32767} {
		resp, err := adm.CommitOffsets(ctx, strings.Repeat("g", size), offs)
		if err != nil {
			t.Fatal(err)
		}
		want := error(nil)
		if size > 32767 {
			want = kerr.InvalidGroupID
		}
		if err := resp.Error(); err != want {
			t.Fatalf("commit with a %d-byte group id: %v, want %v", size, err, want)
		}
	}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis = strings.Repeat("j", 40000), "consumer", 30000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	jresp, err := join.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(jresp.ErrorCode); err != kerr.InvalidGroupID {
		t.Fatalf("join with a 40000-byte group id: %v, want INVALID_GROUP_ID", err)
	}
	old := newFranz(t, b.addr, kgo.MaxVersions(kversion.V2_0_0()))
	l, err := kmsg.NewPtrListGroupsRequest().RequestWith(ctx, old)
	if err != nil {
		t.Fatalf("ListGroups v2: %v", err)
	}
	if len(l.Groups) != 1 || len(l.Groups[0].Group) != 32767 {
		t.Fatalf("ListGroups v2: %d groups, want the one of 32767 bytes", len(l.Groups))
	}
}

// floodWorker is one client of a flood test: run works until the broker is
// gone or ctx ends, done counts its operations so far (read while it runs).
type floodWorker interface {
	run(ctx context.Context, t *testing.T, cl *kgo.Client, rng *rand.Rand)
	done() int64
}

func (w *groupFloodWorker) done() int64 { return w.ops.Load() }

// floodRound runs every worker on its own client (no retries: a request
// the broker never answered is the worker's to record as pending) until
// each has done perRound more operations, kills the broker with SIGKILL,
// waits for the workers and restarts it. False: the test failed meanwhile.
func floodRound[W floodWorker](t *testing.T, b *broker, ws []W, round, perRound int, what string, opts ...kgo.Opt) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	var wg sync.WaitGroup
	// Also when waitFor fails the test: no worker may report after it ended.
	defer func() { cancel(); wg.Wait() }()
	opts = append([]kgo.Opt{kgo.RequestRetries(0), kgo.RetryTimeout(time.Second)}, opts...)
	for i, w := range ws {
		cl := newFranz(t, b.addr, opts...)
		rng := rand.New(rand.NewPCG(uint64(round), uint64(i)))
		wg.Go(func() { w.run(ctx, t, cl, rng) })
	}
	waitFor(t, time.Minute, what, func() bool {
		for _, w := range ws {
			if w.done() < int64(perRound*(round+1)) {
				return false
			}
		}
		return true
	})
	b.kill9()
	wg.Wait()
	if t.Failed() {
		return false
	}
	b.restart()
	return true
}
