package group

// Offset commits and fetches, offset deletion and retention.

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit handles an OffsetCommit request. done runs after the commit
// is durable (or has failed).
func (c *Coordinator) OffsetCommit(req *kmsg.OffsetCommitRequest, done func(*kmsg.OffsetCommitResponse)) {
	resp := kmsg.NewPtrOffsetCommitResponse()
	resp.Version = req.Version
	resp.Topics = make([]kmsg.OffsetCommitResponseTopic, len(req.Topics))
	for i, t := range req.Topics {
		rt := &resp.Topics[i]
		rt.Default()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		rt.Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rt.Partitions[j].Default()
			rt.Partitions[j].Partition = p.Partition
		}
	}
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	c.submit(func() { c.commit(req, instance, resp, done) })
}

func (c *Coordinator) commit(req *kmsg.OffsetCommitRequest, instance string, resp *kmsg.OffsetCommitResponse, done func(*kmsg.OffsetCommitResponse)) {
	g := c.groups[req.Group]
	code := int16(0)
	created := false
	switch {
	case len(req.Group) > maxGroupIDBytes:
		code = kerr.InvalidGroupID.Code // old ListGroups and OffsetFetch could not name it
	case g == nil && req.Generation < 0 && c.groupsFull():
		code = kerr.PolicyViolation.Code
	case g == nil && req.Generation < 0:
		// A group that uses Kafka only to store offsets.
		g = newGroup(req.Group, time.Now())
		created = true
	case g == nil:
		code = kerr.IllegalGeneration.Code
	case g.cg != nil:
		code = validateConsumerCommit(g.cg, req)
	default:
		code = c.validateCommit(g, req.Generation, req.MemberID, instance)
	}

	now := nowMs()
	expire := int64(0)
	if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis >= 0 {
		expire = now + req.RetentionTimeMillis
	}
	var entries []commitEntry
	var slots []*int16
	for i := range req.Topics {
		t := &req.Topics[i]
		parts, known := c.cfg.Topics(t.Topic)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			slot := &resp.Topics[i].Partitions[j].ErrorCode
			switch {
			case !known || p.Partition < 0 || p.Partition >= parts:
				*slot = kerr.UnknownTopicOrPartition.Code
			case code != 0:
				*slot = code
			case p.Metadata != nil && len(*p.Metadata) > c.cfg.MaxMetadataBytes:
				*slot = kerr.OffsetMetadataTooLarge.Code
			default:
				o := Offset{Offset: p.Offset, LeaderEpoch: -1, CommitMs: now, ExpireMs: expire}
				if req.Version >= 6 {
					o.LeaderEpoch = p.LeaderEpoch
				}
				if p.Metadata != nil {
					o.Metadata = *p.Metadata
				}
				entries = append(entries, commitEntry{TP{t.Topic, p.Partition}, o})
				slots = append(slots, slot)
			}
		}
	}
	if len(entries) == 0 {
		done(resp)
		return
	}
	if created {
		c.groups[req.Group] = g
	}
	// A commit of many partitions takes several bounded records, written
	// together under one write marker (all or none after a crash).
	c.offs.submit(&logOp{
		rec:   commitRecords(nil, req.Group, entries),
		apply: applyCommit(req.Group, entries),
		done: func(err error) {
			failCommit(slots, err)
			done(resp)
		},
	})
}

// failCommit sets every partition's answer after the offsets log failed
// to write a commit (err nil: nothing to do). Kafka answers a failed append
// of the offsets topic with NOT_COORDINATOR: the client finds the
// coordinator again.
func failCommit(slots []*int16, err error) {
	if err == nil {
		return
	}
	code := kerr.NotCoordinator.Code
	if errors.Is(err, ErrRecordTooLarge) {
		code = kerr.UnknownServerError.Code // cannot happen: fields are checked before
	}
	for _, s := range slots {
		*s = code
	}
}

// validateCommit is Kafka's validateOffsetCommit plus its state checks.
func (c *Coordinator) validateCommit(g *group, gen int32, id, instance string) int16 {
	if g.state == stateDead {
		return kerr.CoordinatorNotAvailable.Code
	}
	if gen >= 0 || id != "" || instance != "" {
		if code := g.validateMember(id, instance); code != 0 {
			return code
		}
		if gen != g.generation {
			return kerr.IllegalGeneration.Code
		}
	} else if g.state != stateEmpty {
		return kerr.UnknownMemberID.Code // only members commit to a live group
	}
	switch g.state {
	case stateCompleting:
		return kerr.RebalanceInProgress.Code
	case stateStable, statePreparing:
		if m := g.members[id]; m != nil {
			c.schedule(m.hb, time.Now().Add(m.session))
		}
	}
	return 0
}

// OffsetFetch handles an OffsetFetch request: one group (v0-7) or several
// (v8+). A null topic list (v2+) fetches every committed offset.
func (c *Coordinator) OffsetFetch(req *kmsg.OffsetFetchRequest, done func(*kmsg.OffsetFetchResponse)) {
	c.submit(func() {
		resp := kmsg.NewPtrOffsetFetchResponse()
		resp.Version = req.Version
		if req.Version < 8 {
			var want map[string][]int32
			var order []string
			if req.Topics != nil {
				want = make(map[string][]int32)
				for _, t := range req.Topics {
					if _, ok := want[t.Topic]; !ok {
						order = append(order, t.Topic)
					}
					want[t.Topic] = append(want[t.Topic], t.Partitions...)
				}
			}
			for _, t := range c.fetchGroup(req.Group, req.Topics != nil, order, want, req.RequireStable) {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = t.topic
				for _, p := range t.parts {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.partition, p.offset, p.epoch, p.metadata, p.err
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			done(resp)
			return
		}
		for _, rg := range req.Groups {
			var want map[string][]int32
			var order []string
			if rg.Topics != nil {
				want = make(map[string][]int32)
				for _, t := range rg.Topics {
					if _, ok := want[t.Topic]; !ok {
						order = append(order, t.Topic)
					}
					want[t.Topic] = append(want[t.Topic], t.Partitions...)
				}
			}
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group = rg.Group
			if cg := c.groups[rg.Group]; cg != nil && cg.cg != nil {
				if g.ErrorCode = validateConsumerFetch(cg.cg, rg.MemberID, rg.MemberEpoch); g.ErrorCode != 0 {
					resp.Groups = append(resp.Groups, g)
					continue
				}
			}
			for _, t := range c.fetchGroup(rg.Group, rg.Topics != nil, order, want, req.RequireStable) {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.Topic = t.topic
				for _, p := range t.parts {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.partition, p.offset, p.epoch, p.metadata, p.err
					rt.Partitions = append(rt.Partitions, rp)
				}
				g.Topics = append(g.Topics, rt)
			}
			resp.Groups = append(resp.Groups, g)
		}
		done(resp)
	})
}

type fetchedTopic struct {
	topic string
	parts []fetchedPartition
}

type fetchedPartition struct {
	partition int32
	offset    int64
	epoch     int32
	metadata  *string
	err       int16
}

// fetchGroup answers one group's fetch: the listed partitions (-1 for those
// never committed) or, when !listed, every committed offset. With stable
// (require_stable, KIP-447), a partition with a transactional offset pending
// answers UNSTABLE_OFFSET_COMMIT, so the client retries once the
// transaction ends.
func (c *Coordinator) fetchGroup(name string, listed bool, order []string, want map[string][]int32, stable bool) []fetchedTopic {
	offs := c.offs.offsets(name)
	unstable := func(fp *fetchedPartition, tp TP) {
		if stable && c.offs.pendingTxn(name, tp) {
			fp.offset, fp.epoch, fp.err = -1, -1, kerr.UnstableOffsetCommit.Code
		}
	}
	var out []fetchedTopic
	if listed {
		for _, topic := range order {
			ft := fetchedTopic{topic: topic}
			for _, p := range want[topic] {
				fp := fetchedPartition{partition: p, offset: -1, epoch: -1, metadata: strp("")}
				if o, ok := offs[TP{topic, p}]; ok {
					fp.offset, fp.epoch, fp.metadata = o.Offset, o.LeaderEpoch, strp(o.Metadata)
				}
				unstable(&fp, TP{topic, p})
				ft.parts = append(ft.parts, fp)
			}
			out = append(out, ft)
		}
		return out
	}
	byTopic := make(map[string]int)
	for tp, o := range offs {
		i, ok := byTopic[tp.Topic]
		if !ok {
			i = len(out)
			byTopic[tp.Topic] = i
			out = append(out, fetchedTopic{topic: tp.Topic})
		}
		fp := fetchedPartition{tp.Partition, o.Offset, o.LeaderEpoch, strp(o.Metadata), 0}
		unstable(&fp, tp)
		out[i].parts = append(out[i].parts, fp)
	}
	return out
}

func strp(s string) *string { return &s }

// OffsetDelete handles an OffsetDelete request (KIP-496).
func (c *Coordinator) OffsetDelete(req *kmsg.OffsetDeleteRequest, done func(*kmsg.OffsetDeleteResponse)) {
	c.submit(func() {
		resp := kmsg.NewPtrOffsetDeleteResponse()
		resp.Version = req.Version
		g := c.groups[req.Group]
		switch {
		case req.Group == "":
			resp.ErrorCode = kerr.InvalidGroupID.Code
		case g == nil:
			resp.ErrorCode = kerr.GroupIDNotFound.Code
		case g.state == stateDead:
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		case g.state != stateEmpty && g.protocolType != "consumer":
			resp.ErrorCode = kerr.NonEmptyGroup.Code
		}
		if resp.ErrorCode != 0 {
			done(resp)
			return
		}
		subscribed := g.subscribedTopics()
		var tps []TP
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetDeleteResponseTopic()
			rt.Topic = t.Topic
			parts, known := c.cfg.Topics(t.Topic)
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetDeleteResponseTopicPartition()
				rp.Partition = p.Partition
				switch {
				case !known || p.Partition < 0 || p.Partition >= parts:
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case g.state != stateEmpty && (subscribed == nil || subscribed[t.Topic]):
					rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
				default:
					tps = append(tps, TP{t.Topic, p.Partition})
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		if len(tps) == 0 {
			done(resp)
			return
		}
		c.offs.submit(&logOp{
			rec:   deleteOffsetsRecord(req.Group, tps),
			apply: applyDeleteOffsets(req.Group, tps),
			done: func(err error) {
				if err != nil {
					resp.ErrorCode = kerr.NotCoordinator.Code
					resp.Topics = nil
				}
				done(resp)
			},
		})
	})
}

// subscribedTopics decodes the members' consumer-protocol subscriptions; nil
// when one does not decode (then every topic counts as subscribed, as in
// Kafka).
func (g *group) subscribedTopics() map[string]bool {
	out := make(map[string]bool)
	if g.cg != nil {
		for t := range g.cg.topics {
			out[t] = true
		}
		return out
	}
	for _, m := range g.members {
		var meta kmsg.ConsumerMemberMetadata
		md := m.metadata(g.protocol)
		if md == nil && len(m.protocols) > 0 {
			md = m.protocols[0].metadata
		}
		if err := meta.ReadFrom(md); err != nil {
			return nil
		}
		for _, t := range meta.Topics {
			out[t] = true
		}
	}
	return out
}

// expireOffsets runs every RetentionCheckInterval: offsets of groups without
// members expire OffsetsRetention after the group became empty (KIP-211),
// or after their commit for groups that only store offsets, or at the
// expiry a v2-4 commit asked for. Empty groups left without offsets are
// removed.
func (c *Coordinator) expireOffsets() {
	defer c.schedule(c.retain, time.Now().Add(c.cfg.RetentionCheckInterval))
	now := time.Now()
	nowMs := now.UnixMilli()
	retention := c.cfg.OffsetsRetention.Milliseconds()
	for name, g := range c.groups {
		if g.state != stateEmpty || (g.cg != nil && len(g.cg.ghosts) > 0) || c.offs.hasPendingTxn(name) {
			continue // a transaction's pending offsets keep the group until it ends
		}
		offs := c.offs.offsets(name)
		var expired []TP
		for tp, o := range offs {
			var at int64
			switch {
			case o.ExpireMs > 0:
				at = o.ExpireMs
			case g.protocolType != "":
				at = g.stateSince.UnixMilli() + retention
			default:
				at = o.CommitMs + retention
			}
			if nowMs >= at {
				expired = append(expired, tp)
			}
		}
		if len(expired) > 0 {
			c.offs.submit(&logOp{
				rec:   deleteOffsetsRecord(name, expired),
				apply: applyDeleteOffsets(name, expired),
				done:  func(error) {},
			})
		}
		if len(expired) == len(offs) {
			c.dropGroup(g)
		}
	}
}

// dropGroup removes an Empty group and records its removal.
func (c *Coordinator) dropGroup(g *group) {
	c.forget(g)
	c.offs.submit(&logOp{
		rec:   deleteGroupRecord(g.name),
		apply: applyDeleteGroup(g.name),
		done:  func(error) {},
	})
}

// forget marks g Dead and removes it with its timers.
func (c *Coordinator) forget(g *group) {
	g.transition(stateDead)
	delete(c.groups, g.name)
	if g.joinT != nil {
		c.cancel(g.joinT)
	}
	if g.syncT != nil {
		c.cancel(g.syncT)
	}
	for _, t := range g.pending {
		c.cancel(t)
	}
}
