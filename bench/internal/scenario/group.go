package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/bench/internal/stats"
)

// Consumer group scenarios (issue 4): rebalance time of a classic group,
// standalone OffsetCommit throughput and latency against the disk's
// fdatasync, and group consumption against plain assigned-partition fetch.
//
// Their sizes follow -duration, the knob that tells the modes apart: the full
// run (5 s by default) uses the sizes, -quick (2 s) smaller ones,
// and the live test (1 s) tiny ones; see groupSizesFor.

const (
	groupStepTimeout    = time.Minute            // one rebalance or one backlog pass, at most
	rebalanceHeartbeat  = 100 * time.Millisecond // members' heartbeat interval
	commitWarmupMax     = 500 * time.Millisecond // unmeasured time per committer level
	commitWindowMin     = time.Second            // measured time per committer level, at least
	groupFetchMaxWait   = 500 * time.Millisecond // as tail-fetch's consumers
	groupFetchPartBytes = 8 << 20                // as tail-fetch's consumers
	groupSettleNote     = "includes the broker's initial rebalance delay (group.initial.rebalance.delay.ms, 3 s by default, " +
		"and again for as long as members keep arriving, as Kafka does)"
)

// groupSizes are the scenario sizes of one mode.
type groupSizes struct {
	members, partitions, reps int     // group-rebalance
	committers                []int   // group-commit levels
	consumers                 int     // group-consume, both sides
	backlogPerSec             float64 // group-consume backlog bytes per second of -duration
}

func groupSizesFor(cfg Config) groupSizes {
	switch {
	case cfg.Duration >= 4*time.Second: // full
		return groupSizes{members: 50, partitions: 100, reps: 5, committers: []int{1, 16, 64}, consumers: 4, backlogPerSec: 100e6}
	case cfg.Duration > time.Second: // -quick
		return groupSizes{members: 20, partitions: 40, reps: 3, committers: []int{1, 16, 64}, consumers: 4, backlogPerSec: 100e6}
	default: // live test
		return groupSizes{members: 4, partitions: 8, reps: 2, committers: []int{1, 4}, consumers: 2, backlogPerSec: 8e6}
	}
}

// ---- group-rebalance ----

// groupRebalance: a settled classic group of kgo consumers, then one more
// member joins (and later leaves); time until every member holds its new
// assignment.
type groupRebalance struct{}

func (s *groupRebalance) Name() string { return "group-rebalance" }

func (s *groupRebalance) Describe(cfg Config) string {
	z := groupSizesFor(cfg)
	return fmt.Sprintf("Rebalance time of a classic consumer group: %d franz-go consumers (cooperative-sticky, the client's "+
		"default, so a join takes two rebalance rounds: the owners revoke, then the newcomer is assigned) subscribed to "+
		"a topic of %d partitions settle; then one more member joins, %d times. The join time runs from creating the "+
		"new client until every member's OnPartitionsAssigned/Revoked callbacks have left %d members each owning at "+
		"least one partition and every partition owned exactly once. The leave time is the same for the newcomer "+
		"closing (LeaveGroup) until the %d remaining members cover every partition again. Existing members learn of a "+
		"rebalance on their next heartbeat, so the heartbeat interval (%s) is the floor the times are compared "+
		"with; a cooperative join costs about two (members that give up nothing in the first round hear of the "+
		"second one on a heartbeat too). Full kgo clients rather than raw-protocol members: idle clients cost little CPU here (50 take well under a core), and the "+
		"callbacks are what an application waits for. Settle time %s.",
		z.members, z.partitions, z.reps, z.members+1, z.members, rebalanceHeartbeat, groupSettleNote)
}

func (s *groupRebalance) Settings(cfg Config) []report.KV {
	z := groupSizesFor(cfg)
	return []report.KV{
		{Key: "members", Value: fmt.Sprint(z.members)},
		{Key: "partitions", Value: fmt.Sprint(z.partitions)},
		{Key: "joins per run", Value: fmt.Sprint(z.reps)},
		{Key: "balancer", Value: "cooperative-sticky"},
		{Key: "heartbeat interval", Value: rebalanceHeartbeat.String()},
	}
}

func (s *groupRebalance) Close() error { return nil }

// ownership tracks which member owns which partitions, from the callbacks,
// and signals when an expected shape is reached.
type ownership struct {
	mu         sync.Mutex
	partitions int
	owned      map[int]map[int32]bool // member -> partitions; guarded by mu
	want       int                    // members expected; guarded by mu
	done       chan struct{}          // closed when the shape is reached; guarded by mu
	doneAt     time.Time              // guarded by mu
}

func (o *ownership) update(member int, parts []int32, add bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	set := o.owned[member]
	if set == nil {
		return // already closed
	}
	for _, p := range parts {
		if add {
			set[p] = true
		} else {
			delete(set, p)
		}
	}
	o.check()
}

func (o *ownership) join(member int) {
	o.mu.Lock()
	o.owned[member] = map[int32]bool{}
	o.mu.Unlock()
}

func (o *ownership) leave(member int) {
	o.mu.Lock()
	delete(o.owned, member)
	o.check()
	o.mu.Unlock()
}

// expect arms the signal for want members covering every partition.
func (o *ownership) expect(want int) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.want, o.done = want, make(chan struct{})
	o.check()
	return o.done
}

// check is called with mu held.
func (o *ownership) check() {
	if o.done == nil || len(o.owned) != o.want {
		return
	}
	seen := make(map[int32]bool, o.partitions)
	for _, set := range o.owned {
		if len(set) == 0 {
			return
		}
		for p := range set {
			if seen[p] {
				return
			}
			seen[p] = true
		}
	}
	if len(seen) != o.partitions {
		return
	}
	o.doneAt = time.Now()
	close(o.done)
	o.done = nil
}

func (o *ownership) wait(ctx context.Context, ch <-chan struct{}, what string) (time.Time, error) {
	t := time.NewTimer(groupStepTimeout)
	defer t.Stop()
	select {
	case <-ch:
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.doneAt, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-t.C:
		o.mu.Lock()
		defer o.mu.Unlock()
		return time.Time{}, fmt.Errorf("scenario: %s: group not settled after %s (%d members known, want %d)",
			what, groupStepTimeout, len(o.owned), o.want)
	}
}

func (s *groupRebalance) Run(ctx context.Context, env *Env) (res Result, err error) {
	z := groupSizesFor(env.Cfg)
	b, err := env.Brokers.Broker(ctx, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	topic := topicName(s.Name(), env)
	if err := createTopic(ctx, b.Addr, topic, z.partitions); err != nil {
		return res, err
	}
	groupID := topic + "-g"
	own := &ownership{partitions: z.partitions, owned: map[int]map[int32]bool{}}
	newMember := func(i int) (*kgo.Client, error) {
		own.join(i)
		set := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
			return func(_ context.Context, _ *kgo.Client, m map[string][]int32) { own.update(i, m[topic], add) }
		}
		return kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ClientID(fmt.Sprintf("klite-bench-m%d", i)),
			kgo.ConsumerGroup(groupID), kgo.ConsumeTopics(topic),
			kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.HeartbeatInterval(rebalanceHeartbeat),
			kgo.OnPartitionsAssigned(set(true)), kgo.OnPartitionsRevoked(set(false)), kgo.OnPartitionsLost(set(false)),
			kgo.FetchMaxWait(groupFetchMaxWait))
	}
	var members []*kgo.Client
	defer func() {
		for _, cl := range members {
			cl.Close()
		}
	}()
	// Poll so that the clients run their group loops; an empty topic gives
	// nothing back.
	pollCtx, stopPolls := context.WithCancel(ctx)
	defer stopPolls()
	poll := func(cl *kgo.Client) {
		for pollCtx.Err() == nil && !cl.PollFetches(pollCtx).IsClientClosed() {
		}
	}

	label := progressLabel(s.Name(), env)
	settled := own.expect(z.members)
	start := time.Now()
	for i := 0; i < z.members; i++ {
		cl, err := newMember(i)
		if err != nil {
			return res, err
		}
		members = append(members, cl)
		go poll(cl)
	}
	env.Progress.Update("%s: %d members joining", label, z.members)
	at, err := own.wait(ctx, settled, "initial join")
	if err != nil {
		return res, err
	}
	settle := at.Sub(start)
	env.Progress.Logf("%s: %d members settled in %s", label, z.members, settle.Round(time.Millisecond))

	joins, leaves := make([]float64, 0, z.reps), make([]float64, 0, z.reps)
	for r := 0; r < z.reps; r++ {
		id := z.members + r
		joined := own.expect(z.members + 1)
		t0 := time.Now()
		cl, err := newMember(id)
		if err != nil {
			return res, err
		}
		go poll(cl)
		at, err := own.wait(ctx, joined, "join")
		if err != nil {
			cl.Close()
			return res, err
		}
		join := at.Sub(t0)

		left := own.expect(z.members)
		t0 = time.Now()
		cl.Close()
		own.leave(id)
		if at, err = own.wait(ctx, left, "leave"); err != nil {
			return res, err
		}
		leave := at.Sub(t0)
		joins, leaves = append(joins, join.Seconds()), append(leaves, leave.Seconds())
		env.Progress.Update("%s: join %d/%d: %s, leave %s", label, r+1, z.reps,
			join.Round(time.Millisecond), leave.Round(time.Millisecond))
	}
	js, ls := stats.Summarize(joins), stats.Summarize(leaves)
	hb := report.Limit{Key: "heartbeat-interval", Label: "heartbeat interval", Value: rebalanceHeartbeat.Seconds()}
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "join", Label: fmt.Sprintf("join rebalance, median of %d", len(joins)), Unit: report.Seconds,
			Value: js.Median, Limits: []report.Limit{hb}},
		report.Metric{Key: "join-min", Label: "join rebalance, fastest", Unit: report.Seconds, Value: js.Min},
		report.Metric{Key: "join-max", Label: "join rebalance, slowest", Unit: report.Seconds, Value: js.Max},
		report.Metric{Key: "leave", Label: fmt.Sprintf("leave rebalance, median of %d", len(leaves)), Unit: report.Seconds,
			Value: ls.Median, Limits: []report.Limit{hb}},
		report.Metric{Key: "leave-max", Label: "leave rebalance, slowest", Unit: report.Seconds, Value: ls.Max},
		report.Metric{Key: "settle", Label: fmt.Sprintf("first settle of %d members", z.members), Unit: report.Seconds,
			Value: settle.Seconds()},
	)
	return res, nil
}

// ---- group-commit ----

// groupCommit: standalone OffsetCommits (generation -1, no membership) from
// N concurrent committers, each on its own connection and group.
type groupCommit struct{}

func (s *groupCommit) Name() string { return "group-commit" }

func (s *groupCommit) Describe(cfg Config) string {
	z := groupSizesFor(cfg)
	return fmt.Sprintf("OffsetCommit throughput and latency: for each of %v concurrent committers, every committer "+
		"(its own franz-go client, connection and group) sends raw OffsetCommit requests for one partition in a "+
		"closed loop, one in flight, generation -1 (a standalone commit: no group membership). %s unmeasured, then "+
		"%s measured per level. A commit is acknowledged only once it is durable, so latency is compared with the "+
		"disk's fdatasync measured in the same round; commits/s above 1/fdatasync shows commits sharing a sync.",
		z.committers, commitWarmup(cfg), commitWindow(cfg))
}

func (s *groupCommit) Settings(cfg Config) []report.KV {
	z := groupSizesFor(cfg)
	return []report.KV{
		{Key: "committers", Value: fmt.Sprint(z.committers)},
		{Key: "partitions per commit", Value: "1"},
		{Key: "measured / warmup per level", Value: fmt.Sprintf("%s / %s", commitWindow(cfg), commitWarmup(cfg))},
	}
}

func (s *groupCommit) Close() error { return nil }

func commitWarmup(cfg Config) time.Duration { return min(cfg.Warmup/2, commitWarmupMax) }
func commitWindow(cfg Config) time.Duration { return max(cfg.Duration/2, commitWindowMin) }

func (s *groupCommit) Run(ctx context.Context, env *Env) (res Result, err error) {
	z := groupSizesFor(env.Cfg)
	b, err := env.Brokers.Broker(ctx, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	topic := topicName(s.Name(), env)
	partitions := slices.Max(z.committers)
	if err := createTopic(ctx, b.Addr, topic, partitions); err != nil {
		return res, err
	}
	for _, n := range z.committers {
		lv, err := s.level(ctx, env, b, topic, n)
		if err != nil {
			return res, fmt.Errorf("%d committers: %w", n, err)
		}
		secs := lv.window.Seconds()
		res.Metrics = append(res.Metrics,
			report.Metric{Key: fmt.Sprintf("commits-%d", n), Label: fmt.Sprintf("%d committers: commits", n),
				Unit: report.RecordsPerSec, Value: float64(lv.commits) / secs},
			report.Metric{Key: fmt.Sprintf("p50-%d", n), Label: fmt.Sprintf("%d committers: p50", n), Unit: report.Seconds,
				Value:  lv.lat.Quantile(50).Seconds(),
				Limits: []report.Limit{{Key: report.LimitFsyncP50, Label: "disk p50 fdatasync", Value: env.Limits.FsyncP50.Seconds()}}},
			report.Metric{Key: fmt.Sprintf("p99-%d", n), Label: fmt.Sprintf("%d committers: p99", n), Unit: report.Seconds,
				Value:  lv.lat.Quantile(99).Seconds(),
				Limits: []report.Limit{{Key: report.LimitFsyncP99, Label: "disk p99 fdatasync", Value: env.Limits.FsyncP99.Seconds()}}},
		)
		if b.PID > 0 {
			res.Metrics = append(res.Metrics, report.Metric{Key: fmt.Sprintf("broker-cpu-%d", n),
				Label: fmt.Sprintf("%d committers: broker CPU", n), Unit: report.Cores, Value: lv.brokerCPU.Seconds() / secs})
		}
		res.Metrics = append(res.Metrics, report.Metric{Key: fmt.Sprintf("client-cpu-%d", n),
			Label: fmt.Sprintf("%d committers: bench client CPU", n), Unit: report.Cores, Value: lv.clientCPU.Seconds() / secs})
		if lv.errs > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d, %d committers: %d commit errors, first: %v", env.Round, n, lv.errs, lv.firstErr))
		}
	}
	return res, nil
}

type commitLevel struct {
	window    time.Duration
	commits   int64
	lat       *stats.Hist
	brokerCPU time.Duration
	clientCPU time.Duration
	errs      int64
	firstErr  error
}

func (s *groupCommit) level(ctx context.Context, env *Env, b *Broker, topic string, n int) (commitLevel, error) {
	lv := commitLevel{lat: stats.NewHist()}
	var clients []*kgo.Client
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for i := 0; i < n; i++ {
		// Kafka 4.0's versions: the raw commit names its topic, and
		// OffsetCommit v10 names topics by id instead.
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ClientID(fmt.Sprintf("klite-bench-commit%d", i)),
			kgo.MaxVersions(kversion.V4_0_0()))
		if err != nil {
			return lv, err
		}
		clients = append(clients, cl)
	}
	var (
		measuring, stopping atomic.Bool
		commits, errs       atomic.Int64
		errOnce             sync.Once
		firstErr            error
		wg                  sync.WaitGroup
	)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	group := fmt.Sprintf("%s-n%d", topic, n)
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := kmsg.NewPtrOffsetCommitRequest()
			req.Group = fmt.Sprintf("%s-c%d", group, i)
			req.Generation = -1
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition = int32(i)
			rp.LeaderEpoch = -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			for off := int64(1); runCtx.Err() == nil; off++ {
				req.Topics[0].Partitions[0].Offset = off
				t0 := time.Now()
				resp, err := req.RequestWith(runCtx, cl)
				d := time.Since(t0)
				if err == nil {
					err = commitErr(resp)
				}
				if err != nil {
					if stopping.Load() {
						return
					}
					errs.Add(1)
					errOnce.Do(func() { firstErr = err })
					if sleepCtx(runCtx, 10*time.Millisecond) != nil {
						return
					}
					continue
				}
				if measuring.Load() {
					commits.Add(1)
					lv.lat.Record(d)
				}
			}
		}()
	}
	label := progressLabel(s.Name(), env)
	env.Progress.Update("%s: %d committers warming up", label, n)
	if err := sleepCtx(ctx, commitWarmup(env.Cfg)); err != nil {
		return lv, err
	}
	cpu0, client0 := pidCPU(b.PID), pidCPU(os.Getpid())
	measuring.Store(true)
	t0 := time.Now()
	end := t0.Add(commitWindow(env.Cfg))
	for time.Now().Before(end) {
		if err := sleepCtx(ctx, min(progressEvery, time.Until(end))); err != nil {
			return lv, err
		}
		env.Progress.Update("%s: %d committers: %s commits/s, p99 %s", label, n,
			report.Format(report.RecordsPerSec, float64(commits.Load())/time.Since(t0).Seconds()), lv.lat.Quantile(99))
	}
	measuring.Store(false)
	lv.window = time.Since(t0)
	lv.brokerCPU, lv.clientCPU = pidCPU(b.PID)-cpu0, pidCPU(os.Getpid())-client0
	stopping.Store(true)
	stop()
	wg.Wait()
	lv.commits, lv.errs, lv.firstErr = commits.Load(), errs.Load(), firstErr
	return lv, nil
}

// pidCPU is a process's CPU time so far, 0 without a pid or when it cannot
// be read.
func pidCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	d, err := proc.CPU(pid)
	if err != nil {
		return 0
	}
	return d
}

// commitErr is the first error code in an OffsetCommit response.
func commitErr(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

// ---- group-consume ----

// groupConsume: the same backlog read by plain consumers with assigned
// partitions and by a consumer group of as many members.
type groupConsume struct{}

func (s *groupConsume) Name() string { return "group-consume" }

func (s *groupConsume) Describe(cfg Config) string {
	z := groupSizesFor(cfg)
	return fmt.Sprintf("Group consumption against plain fetch: a backlog of %s (%d B records, %d partitions, acks=all) is "+
		"read from the start once by %d plain consumers with assigned partitions (ConsumePartitions, split evenly) "+
		"and once by a classic consumer group of %d franz-go members (cooperative-sticky, autocommit every 5 s, the "+
		"client's defaults), in alternating order by round, after one unmeasured plain pass. Records/s runs from having partitions (creating the clients; for the group, its "+
		"first assignment) to the last record, so the group's join is apart: the join time counts from creating the "+
		"clients and %s.",
		report.Format(report.Bytes, consumeBacklog(cfg)), cfg.RecordSize, cfg.Partitions, z.consumers, z.consumers, groupSettleNote)
}

func (s *groupConsume) Settings(cfg Config) []report.KV {
	z := groupSizesFor(cfg)
	return []report.KV{
		{Key: "backlog", Value: report.Format(report.Bytes, consumeBacklog(cfg))},
		{Key: "record size", Value: fmt.Sprintf("%d B", cfg.RecordSize)},
		{Key: "partitions", Value: fmt.Sprint(cfg.Partitions)},
		{Key: "consumers (plain / group members)", Value: fmt.Sprintf("%d / %d", z.consumers, z.consumers)},
	}
}

func (s *groupConsume) Close() error { return nil }

func consumeBacklog(cfg Config) float64 {
	return groupSizesFor(cfg).backlogPerSec * cfg.Duration.Seconds()
}

func (s *groupConsume) Run(ctx context.Context, env *Env) (res Result, err error) {
	z := groupSizesFor(env.Cfg)
	b, err := env.Brokers.Broker(ctx, s.Name())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	topic := topicName(s.Name(), env)
	if err := createTopic(ctx, b.Addr, topic, env.Cfg.Partitions); err != nil {
		return res, err
	}
	env.Progress.Update("%s: writing the backlog", progressLabel(s.Name(), env))
	records := int64(consumeBacklog(env.Cfg)) / int64(env.Cfg.RecordSize)
	if err := produceBacklog(ctx, env.Cfg, b.Addr, topic, records); err != nil {
		return res, err
	}
	ends, err := endOffsets(ctx, b.Addr, topic, records)
	if err != nil {
		return res, err
	}

	// One unmeasured pass first (the first read of fresh segments was
	// markedly slower on either side), then the two in alternating order by
	// round, so that neither always follows the other.
	if _, err := s.pass(ctx, env, b.Addr, topic, ends, z.consumers, ""); err != nil {
		return res, fmt.Errorf("warm-up: %w", err)
	}
	var plain, grp consumePass
	for i := range 2 {
		group := ""
		if (i+env.Round)%2 == 0 {
			group = topic + "-g"
		}
		p, err := s.pass(ctx, env, b.Addr, topic, ends, z.consumers, group)
		if err != nil {
			return res, fmt.Errorf("%s: %w", p.kind, err)
		}
		if group == "" {
			plain = p
		} else {
			grp = p
		}
	}
	pr, gr := plain.rate(), grp.rate()
	res.Metrics = append(res.Metrics,
		report.Metric{Key: "plain-records", Label: "plain consumers: records", Unit: report.RecordsPerSec, Value: pr},
		report.Metric{Key: "group-records", Label: "group members: records", Unit: report.RecordsPerSec, Value: gr},
		report.Metric{Key: "group-vs-plain", Label: "group / plain records/s", Unit: report.Fraction, Value: gr / pr},
		report.Metric{Key: "plain-throughput", Label: "plain consumers: throughput", Unit: report.BytesPerSec,
			Value: float64(plain.bytes) / plain.window().Seconds(), Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "group-throughput", Label: "group members: throughput", Unit: report.BytesPerSec,
			Value: float64(grp.bytes) / grp.window().Seconds(), Limits: []report.Limit{loopback(env.Limits)}},
		report.Metric{Key: "plain-first", Label: "plain consumers: time to first record", Unit: report.Seconds, Value: plain.first.Sub(plain.start).Seconds()},
		report.Metric{Key: "group-join", Label: "group members: join (to first assignment)", Unit: report.Seconds, Value: grp.assigned.Sub(grp.start).Seconds()},
		report.Metric{Key: "group-first", Label: "group members: time to first record", Unit: report.Seconds, Value: grp.first.Sub(grp.start).Seconds()},
		report.Metric{Key: "group-assigned-first", Label: "group members: first assignment to first record (offset fetch, reset, fetch)",
			Unit: report.Seconds, Value: grp.first.Sub(grp.assigned).Seconds()},
		report.Metric{Key: "backlog-records", Label: "backlog records", Unit: report.Count, Value: float64(records)},
	)
	for _, p := range []consumePass{plain, grp} {
		if p.dups > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d: %s read %d records twice (a rebalance moved partitions "+
				"before their offsets were committed); records/s counts each record once", env.Round, p.kind, p.dups))
		}
		if p.errs > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d: %s: %d fetch errors, first: %v", env.Round, p.kind, p.errs, p.firstErr))
		}
	}
	return res, nil
}

// produceBacklog writes records records with acks=all over
// Config.Producers clients and returns once every one is acknowledged.
// acks=all because a broker may keep acks=1 data from readers until it is
// synced (klite's high watermark moves at fdatasync).
func produceBacklog(ctx context.Context, cfg Config, addr, topic string, records int64) error {
	popts, err := producerOpts(cfg, "all", fillBatchBytes)
	if err != nil {
		return err
	}
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	for i := 0; i < cfg.Producers; i++ {
		n := records / int64(cfg.Producers)
		if int64(i) < records%int64(cfg.Producers) {
			n++
		}
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ClientID(fmt.Sprintf("klite-bench-p%d", i)),
			kgo.DefaultProduceTopic(topic)}, popts...)...)
		if err != nil {
			fail(err)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.Close()
			p := payload{size: cfg.RecordSize}
			for j := int64(0); j < n && ctx.Err() == nil; j++ {
				cl.Produce(ctx, &kgo.Record{Value: p.next()}, func(_ *kgo.Record, err error) {
					if err != nil {
						fail(err)
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("scenario: writing the backlog: %w", firstErr)
	}
	return ctx.Err()
}

// endOffsets are the topic's high watermarks by partition, once they sum to
// records (all of them visible to readers).
func endOffsets(ctx context.Context, addr, topic string, records int64) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
	defer cancel()
	for {
		ends, err := listEnds(ctx, addr, topic)
		sum := sumEnds(ends)
		if err == nil && sum >= records {
			return ends, nil
		}
		if sleepCtx(ctx, 50*time.Millisecond) != nil {
			return nil, fmt.Errorf("scenario: %s: end offsets sum to %d, %d records acknowledged: %w",
				topic, sum, records, errors.Join(ctx.Err(), err))
		}
	}
}

type consumePass struct {
	kind                 string
	start, first, last   time.Time
	assigned             time.Time // group: the first assignment; plain: start
	records, bytes, dups int64     // records and bytes counted once each
	errs                 int64
	firstErr             error
}

// window runs from having partitions to the last record: a first fetch can
// hold most of a small backlog, so it counts.
func (p consumePass) window() time.Duration { return max(p.last.Sub(p.assigned), time.Microsecond) }
func (p consumePass) rate() float64         { return float64(p.records) / p.window().Seconds() }

// pass reads the whole backlog (up to ends) with n clients: assigned
// partitions when group is empty, else members of group. A record at an
// offset already read counts as a duplicate, not again.
func (s *groupConsume) pass(ctx context.Context, env *Env, addr, topic string, ends map[int32]int64, n int, group string) (consumePass, error) {
	p := consumePass{kind: "plain consumers"}
	if group != "" {
		p.kind = "group members"
	}
	var clients []*kgo.Client
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	var (
		mu      sync.Mutex          // guards p, next and behind
		next    = map[int32]int64{} // next new offset per partition; guarded by mu
		behind  = 0                 // partitions not read to their end; guarded by mu
		wg      sync.WaitGroup
		allRead = make(chan struct{})
	)
	for part, end := range ends {
		if end > 0 {
			behind++
		}
		next[part] = 0
	}
	if behind == 0 {
		return p, fmt.Errorf("empty backlog")
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	p.start = time.Now()
	if group == "" {
		p.assigned = p.start
	}
	for i := 0; i < n; i++ {
		opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.ClientID(fmt.Sprintf("klite-bench-gc%d", i)),
			kgo.FetchMaxWait(groupFetchMaxWait), kgo.FetchMaxPartitionBytes(groupFetchPartBytes)}
		if group == "" {
			parts := map[int32]kgo.Offset{}
			for q := i; q < len(ends); q += n {
				parts[int32(q)] = kgo.NewOffset().At(0)
			}
			if len(parts) == 0 {
				continue
			}
			opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
		} else {
			opts = append(opts, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
					mu.Lock()
					if p.assigned.IsZero() {
						p.assigned = time.Now()
					}
					mu.Unlock()
				}))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return p, err
		}
		clients = append(clients, cl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				fs := cl.PollFetches(runCtx)
				if runCtx.Err() != nil || fs.IsClientClosed() {
					return
				}
				now := time.Now()
				mu.Lock()
				fs.EachError(func(_ string, _ int32, err error) {
					p.errs++
					if p.firstErr == nil {
						p.firstErr = err
					}
				})
				fs.EachPartition(func(fp kgo.FetchTopicPartition) {
					if len(fp.Records) == 0 {
						return
					}
					if p.first.IsZero() {
						p.first = now
					}
					nx := next[fp.Partition]
					for _, r := range fp.Records {
						if r.Offset < nx {
							p.dups++
							continue
						}
						nx = r.Offset + 1
						p.records++
						p.bytes += int64(len(r.Value))
					}
					if was := next[fp.Partition]; was < ends[fp.Partition] && nx >= ends[fp.Partition] {
						if behind--; behind == 0 {
							p.last = now
							close(allRead)
						}
					}
					next[fp.Partition] = nx
				})
				mu.Unlock()
			}
		}()
	}
	label := progressLabel(s.Name(), env)
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	deadline := time.NewTimer(groupStepTimeout)
	defer deadline.Stop()
	for {
		select {
		case <-allRead:
			stop()
			wg.Wait()
			return p, nil
		case <-tick.C:
			mu.Lock()
			env.Progress.Update("%s: %s: %d records read", label, p.kind, p.records)
			mu.Unlock()
		case <-deadline.C:
			stop()
			wg.Wait()
			return p, fmt.Errorf("%d partitions not read to their end in %s", behind, groupStepTimeout) // goroutines are done: no lock
		case <-ctx.Done():
			stop()
			wg.Wait()
			return p, ctx.Err()
		}
	}
}
