package group

// The classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), as
// Apache Kafka's GroupCoordinator runs it: the same states, the same checks
// in the same order, the same error codes. Every function here runs on the
// coordinator loop.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup handles a JoinGroup request; done runs once, from the
// coordinator's goroutine, possibly after the rebalance completes.
// clientHost is the peer's address as Kafka shows it ("/127.0.0.1").
func (c *Coordinator) JoinGroup(clientID, clientHost string, req *kmsg.JoinGroupRequest, done func(*kmsg.JoinGroupResponse)) {
	v := req.Version
	respond := func(r joinResult) {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Version = v
		resp.ErrorCode = r.err
		resp.Generation = r.generation
		resp.MemberID = r.memberID
		resp.LeaderID = r.leader
		resp.SkipAssignment = r.skip
		resp.Members = r.members
		if r.err != 0 && v >= 7 {
			resp.Generation = -1
		} else {
			pt, p := r.protocolType, r.protocol
			resp.ProtocolType, resp.Protocol = &pt, &p
			if v >= 7 && !r.hasProtocol {
				resp.Protocol = nil
			}
		}
		if r.err != 0 {
			resp.Generation = -1
		}
		done(resp)
	}
	protos := make([]protocol, len(req.Protocols))
	for i, p := range req.Protocols {
		protos[i] = protocol{name: p.Name, metadata: append([]byte{}, p.Metadata...)}
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if v == 0 {
		rebalance = session // v0 has no rebalance timeout
	}
	if rebalance <= 0 {
		rebalance = session
	}
	rebalance = min(rebalance, maxTimeout)
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	a := joinArgs{
		group: req.Group, memberID: req.MemberID, instanceID: instance, hasInstance: req.InstanceID != nil,
		clientID: clientID, clientHost: clientHost, session: session, rebalance: rebalance,
		ptype: req.ProtocolType, protos: protos, version: v, respond: respond,
	}
	c.submit(func() { c.join(a) })
}

type joinArgs struct {
	group, memberID, instanceID string
	hasInstance                 bool
	clientID, clientHost        string
	session, rebalance          time.Duration
	ptype                       string
	protos                      []protocol
	version                     int16
	respond                     func(joinResult)
}

func (c *Coordinator) join(a joinArgs) {
	fail := func(code int16) { a.respond(joinResult{err: code, memberID: a.memberID}) }
	if a.group == "" {
		fail(kerr.InvalidGroupID.Code)
		return
	}
	if a.session < c.cfg.MinSessionTimeout || a.session > c.cfg.MaxSessionTimeout {
		fail(kerr.InvalidSessionTimeout.Code)
		return
	}
	if a.hasInstance && a.instanceID == "" {
		fail(kerr.InvalidGroupID.Code) // Kafka rejects an empty group.instance.id as invalid
		return
	}
	if len(a.group) > maxGroupIDBytes || len(a.instanceID) > maxGroupIDBytes {
		fail(kerr.InvalidGroupID.Code) // old ListGroups and DescribeGroups could not name it
		return
	}
	if !c.fitsGroupRecord(a) {
		// The member alone would make the group's generation record larger
		// than Kafka's group metadata record may be; Kafka answers a failed
		// group metadata append with UNKNOWN_SERVER_ERROR.
		c.warn.Warn().Str("group", a.group).Str("client_id", a.clientID).
			Msg("group: JoinGroup refused: member metadata over the group metadata limit")
		fail(kerr.UnknownServerError.Code)
		return
	}
	g := c.groups[a.group]
	unknown := a.memberID == ""
	if g == nil {
		if !unknown {
			fail(kerr.UnknownMemberID.Code)
			return
		}
		if c.groupsFull() {
			fail(kerr.PolicyViolation.Code)
			return
		}
		g = newGroup(a.group, time.Now())
		c.groups[a.group] = g
	}
	if g.cg != nil {
		if len(g.cg.members) > 0 {
			// No online migration to the classic protocol (Kafka with
			// group.consumer.migration.policy=disabled).
			fail(kerr.InconsistentGroupProtocol.Code)
			return
		}
		g.cg = nil // an empty consumer group becomes a classic group
		g.protocolType = ""
	}
	if g.members[a.memberID] == nil && len(g.members) >= c.cfg.MaxGroupSize {
		fail(kerr.GroupMaxSizeReached.Code)
		return
	}
	if !g.supports(a.ptype, a.protos) {
		fail(kerr.InconsistentGroupProtocol.Code)
		return
	}
	if unknown {
		c.newMemberJoin(g, a)
	} else {
		c.currentMemberJoin(g, a)
	}
	if g.state == statePreparing {
		c.tryCompleteJoin(g)
	}
}

func (c *Coordinator) newMemberJoin(g *group, a joinArgs) {
	if g.state == stateDead {
		a.respond(joinResult{err: kerr.CoordinatorNotAvailable.Code})
		return
	}
	id := newMemberID(a.clientID)
	if a.hasInstance {
		c.staticJoin(g, id, a)
		return
	}
	if a.version >= 4 {
		// KIP-394: hand out the id and expect a join with it within the
		// session timeout; until then the member is pending.
		t := newTimer(nil)
		t.fn = func() {
			if g.pending[id] == t {
				delete(g.pending, id)
				if g.state == statePreparing {
					c.tryCompleteJoin(g)
				}
			}
		}
		g.pending[id] = t
		c.schedule(t, time.Now().Add(a.session))
		a.respond(joinResult{err: kerr.MemberIDRequired.Code, memberID: id})
		return
	}
	c.addMemberAndRebalance(g, id, a)
}

func (c *Coordinator) staticJoin(g *group, id string, a joinArgs) {
	oldID, known := g.static[a.instanceID]
	if !known || g.members[oldID] == nil {
		c.addMemberAndRebalance(g, id, a)
		return
	}
	// The instance restarted (or a second copy of it runs): the new join
	// takes the slot and fences the old member id (KIP-345).
	m := g.members[oldID]
	prevLeader := g.leader
	if m.join != nil {
		m.join(joinResult{err: kerr.FencedInstanceID.Code, memberID: oldID})
		m.join = nil
	}
	if m.sync != nil {
		m.sync(syncResult{err: kerr.FencedInstanceID.Code})
		m.sync = nil
	}
	delete(g.members, oldID)
	m.id = id
	g.members[id] = m
	g.static[a.instanceID] = id
	if g.leader == oldID {
		g.leader = id
	}
	if g.pendingSync[oldID] {
		delete(g.pendingSync, oldID)
		g.pendingSync[id] = true
	}
	m.session, m.rebalance = a.session, a.rebalance
	m.setProtocols(a.protos)
	m.clientID, m.clientHost = a.clientID, a.clientHost
	m.join, m.joinV = a.respond, a.version
	c.schedule(m.hb, time.Now().Add(m.session))

	switch g.state {
	case stateStable:
		if g.selectProtocol() == g.protocol {
			// Nothing changes for the group: answer with the current
			// generation. Before v9 the old leader id is returned, so a
			// rejoining leader does not run a trivial assignment; v9+ tells
			// it to skip assignment instead (KIP-814).
			r := joinResult{memberID: id, generation: g.generation, protocolType: g.protocolType,
				protocol: g.protocol, hasProtocol: true, leader: prevLeader}
			if a.version >= 9 {
				r.leader = g.leader
				if g.leader == id {
					r.skip = true
					r.members = g.memberList()
				}
			}
			m.join = nil
			a.respond(r)
			return
		}
		c.prepareRebalance(g)
	case stateCompleting:
		c.prepareRebalance(g)
	}
}

func (c *Coordinator) addMemberAndRebalance(g *group, id string, a joinArgs) {
	m := &member{
		id: id, instanceID: a.instanceID, clientID: a.clientID, clientHost: a.clientHost,
		session: a.session, rebalance: a.rebalance, protocols: a.protos, ptype: a.ptype,
		join: a.respond, joinV: a.version, isNew: true,
	}
	m.hb = newTimer(func() { c.expireMember(g, m) })
	if g.state == statePreparing && g.generation == 0 {
		g.newMemberAdded = true
	}
	g.add(m)
	c.schedule(m.hb, time.Now().Add(newMemberJoinTimeout))
	c.maybePrepareRebalance(g)
}

func (c *Coordinator) currentMemberJoin(g *group, a joinArgs) {
	if g.state == stateDead {
		a.respond(joinResult{err: kerr.CoordinatorNotAvailable.Code, memberID: a.memberID})
		return
	}
	if t := g.pending[a.memberID]; t != nil {
		c.cancel(t)
		delete(g.pending, a.memberID)
		c.addMemberAndRebalance(g, a.memberID, a)
		return
	}
	if code := g.validateMember(a.memberID, a.instanceID); code != 0 {
		a.respond(joinResult{err: code, memberID: a.memberID})
		return
	}
	m := g.members[a.memberID]
	current := func(withMembers bool) {
		r := joinResult{memberID: m.id, generation: g.generation, protocolType: g.protocolType,
			protocol: g.protocol, hasProtocol: true, leader: g.leader}
		if withMembers {
			r.members = g.memberList()
		}
		c.schedule(m.hb, time.Now().Add(m.session))
		a.respond(r)
	}
	switch g.state {
	case statePreparing:
		c.updateMemberAndRebalance(g, m, a)
	case stateCompleting:
		if m.matches(a.protos) {
			// A retry of a join whose response was lost: answer again.
			current(g.leader == m.id)
		} else {
			c.updateMemberAndRebalance(g, m, a)
		}
	case stateStable:
		if g.leader == m.id || !m.matches(a.protos) {
			c.updateMemberAndRebalance(g, m, a)
		} else {
			current(false)
		}
	default:
		a.respond(joinResult{err: kerr.UnknownMemberID.Code, memberID: a.memberID})
	}
}

func (c *Coordinator) updateMemberAndRebalance(g *group, m *member, a joinArgs) {
	if m.join != nil {
		// A second join while one is parked: the client gave up on the
		// first; it must not hang forever.
		m.join(joinResult{err: kerr.RebalanceInProgress.Code, memberID: m.id})
	}
	m.session, m.rebalance = a.session, a.rebalance
	m.setProtocols(a.protos)
	m.join, m.joinV = a.respond, a.version
	c.maybePrepareRebalance(g)
}

// validateMember is Kafka's validateCurrentMember.
func (g *group) validateMember(id, instance string) int16 {
	if instance != "" {
		if cur, ok := g.static[instance]; ok && cur != id {
			return kerr.FencedInstanceID.Code
		}
	}
	if g.members[id] == nil {
		return kerr.UnknownMemberID.Code
	}
	return 0
}

func (c *Coordinator) maybePrepareRebalance(g *group) {
	switch g.state {
	case stateStable, stateCompleting, stateEmpty:
		c.prepareRebalance(g)
	}
}

func (c *Coordinator) prepareRebalance(g *group) {
	if g.state == stateCompleting {
		c.propagateSyncError(g, kerr.RebalanceInProgress.Code)
	}
	if g.syncT != nil {
		c.cancel(g.syncT)
	}
	clear(g.pendingSync)
	if g.joinT == nil {
		g.joinT = newTimer(func() { c.joinTimerFired(g) })
	}
	now := time.Now()
	if g.state == stateEmpty && c.cfg.InitialRebalanceDelay > 0 {
		g.initialPhase = true
		g.newMemberAdded = false
		g.initialLeft = max(g.rebalanceTimeout()-c.cfg.InitialRebalanceDelay, 0)
		c.schedule(g.joinT, now.Add(c.cfg.InitialRebalanceDelay))
	} else {
		g.initialPhase = false
		c.schedule(g.joinT, now.Add(g.rebalanceTimeout()))
	}
	g.transition(statePreparing)
}

func (c *Coordinator) joinTimerFired(g *group) {
	if g.state != statePreparing {
		return
	}
	if g.initialPhase && g.newMemberAdded && g.initialLeft > 0 {
		// Members keep arriving: wait once more (InitialDelayedJoin).
		g.newMemberAdded = false
		d := min(c.cfg.InitialRebalanceDelay, g.initialLeft)
		g.initialLeft -= d
		c.schedule(g.joinT, time.Now().Add(d))
		return
	}
	c.completeJoin(g)
}

func (c *Coordinator) tryCompleteJoin(g *group) {
	if g.state == statePreparing && !g.initialPhase && g.allJoined() {
		c.completeJoin(g)
	}
}

// completeJoin is Kafka's onCompleteJoin.
func (c *Coordinator) completeJoin(g *group) {
	if g.joinT != nil {
		c.cancel(g.joinT)
	}
	g.initialPhase = false
	for id, m := range g.members {
		if m.join == nil && !m.static() {
			c.cancel(m.hb)
			g.remove(id)
		}
	}
	if !g.electJoinedLeader() && len(g.members) > 0 {
		// Only static members that did not rejoin: wait for them (or for
		// their sessions to expire).
		c.schedule(g.joinT, time.Now().Add(g.rebalanceTimeout()))
		return
	}
	g.generation++
	if len(g.members) == 0 {
		g.protocol = ""
		g.transition(stateEmpty)
		// An empty generation: no members come back after a restart.
		c.storeClassic(g.name, &storedClassic{protocolType: g.protocolType, generation: g.generation}, nil)
		return
	}
	g.protocol = g.selectProtocol()
	g.transition(stateCompleting)
	c.storeMeta(g)
	now := time.Now()
	for _, m := range g.members {
		r := joinResult{memberID: m.id, generation: g.generation, protocolType: g.protocolType,
			protocol: g.protocol, hasProtocol: true, leader: g.leader}
		if m.id == g.leader {
			r.members = g.memberList()
		}
		if m.join != nil {
			m.join(r)
			m.join = nil
		}
		m.isNew = false
		c.schedule(m.hb, now.Add(m.session))
		g.pendingSync[m.id] = true
	}
	if g.syncT == nil {
		g.syncT = newTimer(func() { c.syncTimerFired(g) })
	}
	c.schedule(g.syncT, now.Add(g.rebalanceTimeout()))
}

func (g *group) electJoinedLeader() bool {
	if l := g.members[g.leader]; l != nil && l.join != nil {
		return true
	}
	for id, m := range g.members {
		if m.join != nil {
			g.leader = id
			return true
		}
	}
	return false
}

// syncTimerFired expels members that never sent SyncGroup after a join.
func (c *Coordinator) syncTimerFired(g *group) {
	if (g.state != stateCompleting && g.state != stateStable) || len(g.pendingSync) == 0 {
		return
	}
	for id := range g.pendingSync {
		if m := g.members[id]; m != nil {
			c.cancel(m.hb)
			if m.join != nil {
				m.join(joinResult{err: kerr.UnknownMemberID.Code, memberID: id})
			}
		}
		g.remove(id)
	}
	c.prepareRebalance(g)
	c.tryCompleteJoin(g)
}

// storeMeta records the group's protocol type and generation; not awaited
// (Kafka keeps it so a reloaded group continues its generations).
func (c *Coordinator) storeMeta(g *group) {
	c.offs.submit(&logOp{
		rec:   groupMetaRecord(g.name, g.protocolType, g.generation),
		apply: applyGroupMeta(g.name, g.protocolType, g.generation),
		done:  func(error) {},
	})
}

func (c *Coordinator) propagateSyncError(g *group, code int16) {
	for _, m := range g.members {
		m.assignment = nil
		if m.sync != nil {
			m.sync(syncResult{err: code})
			m.sync = nil
		}
	}
}

// expireMember runs when a member's session (or new-member join) timer fires.
func (c *Coordinator) expireMember(g *group, m *member) {
	if g.members[m.id] != m {
		return
	}
	if !m.isNew && (m.join != nil || m.sync != nil) {
		// Parked in a join or sync: alive by definition.
		c.schedule(m.hb, time.Now().Add(m.session))
		return
	}
	c.log.Debug().Str("group", g.name).Str("member", m.id).Msg("session expired")
	c.removeMember(g, m)
}

// removeMember is Kafka's removeMemberAndUpdateGroup.
func (c *Coordinator) removeMember(g *group, m *member) {
	if m.join != nil {
		m.join(joinResult{err: kerr.UnknownMemberID.Code})
		m.join = nil
	}
	if m.sync != nil {
		m.sync(syncResult{err: kerr.UnknownMemberID.Code})
		m.sync = nil
	}
	c.cancel(m.hb)
	g.remove(m.id)
	switch g.state {
	case stateStable, stateCompleting:
		c.prepareRebalance(g)
		c.tryCompleteJoin(g)
	case statePreparing:
		c.tryCompleteJoin(g)
	}
}

// SyncGroup handles a SyncGroup request; the leader's carries the assignment.
func (c *Coordinator) SyncGroup(req *kmsg.SyncGroupRequest, done func(*kmsg.SyncGroupResponse)) {
	v := req.Version
	var ptype, proto *string
	if req.ProtocolType != nil {
		s := *req.ProtocolType
		ptype = &s
	}
	if req.Protocol != nil {
		s := *req.Protocol
		proto = &s
	}
	assign := make(map[string][]byte, len(req.GroupAssignment))
	for _, a := range req.GroupAssignment {
		assign[a.MemberID] = append([]byte{}, a.MemberAssignment...)
	}
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	name, id, gen := req.Group, req.MemberID, req.Generation
	c.submit(func() {
		g := c.groups[name]
		respond := func(r syncResult) {
			resp := kmsg.NewPtrSyncGroupResponse()
			resp.Version = v
			resp.ErrorCode = r.err
			resp.MemberAssignment = r.assignment
			if r.err == 0 && v >= 5 && g != nil {
				pt, p := g.protocolType, g.protocol
				resp.ProtocolType, resp.Protocol = &pt, &p
			}
			done(resp)
		}
		if name == "" {
			respond(syncResult{err: kerr.InvalidGroupID.Code})
			return
		}
		c.sync(g, id, instance, gen, ptype, proto, assign, respond)
	})
}

func (c *Coordinator) sync(g *group, id, instance string, gen int32, ptype, proto *string, assign map[string][]byte, respond func(syncResult)) {
	if g == nil {
		respond(syncResult{err: kerr.UnknownMemberID.Code})
		return
	}
	if g.state == stateDead {
		respond(syncResult{err: kerr.CoordinatorNotAvailable.Code})
		return
	}
	if code := g.validateMember(id, instance); code != 0 {
		respond(syncResult{err: code})
		return
	}
	if gen != g.generation {
		respond(syncResult{err: kerr.IllegalGeneration.Code})
		return
	}
	if (ptype != nil && *ptype != g.protocolType) || (proto != nil && *proto != g.protocol) {
		respond(syncResult{err: kerr.InconsistentGroupProtocol.Code})
		return
	}
	m := g.members[id]
	switch g.state {
	case stateEmpty:
		respond(syncResult{err: kerr.UnknownMemberID.Code})
	case statePreparing:
		respond(syncResult{err: kerr.RebalanceInProgress.Code})
	case stateCompleting:
		if m.sync != nil {
			m.sync(syncResult{err: kerr.RebalanceInProgress.Code})
		}
		m.sync = respond
		delete(g.pendingSync, id)
		c.schedule(m.hb, time.Now().Add(m.session))
		if id != g.leader {
			return
		}
		c.completeSync(g, assign)
	case stateStable:
		delete(g.pendingSync, id)
		if len(g.pendingSync) == 0 && g.syncT != nil {
			c.cancel(g.syncT)
		}
		c.schedule(m.hb, time.Now().Add(m.session))
		respond(syncResult{assignment: m.assignment})
	}
}

// Heartbeat handles a Heartbeat request.
func (c *Coordinator) Heartbeat(req *kmsg.HeartbeatRequest, done func(*kmsg.HeartbeatResponse)) {
	v := req.Version
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	name, id, gen := req.Group, req.MemberID, req.Generation
	c.submit(func() {
		resp := kmsg.NewPtrHeartbeatResponse()
		resp.Version = v
		resp.ErrorCode = c.heartbeat(name, id, instance, gen)
		done(resp)
	})
}

func (c *Coordinator) heartbeat(name, id, instance string, gen int32) int16 {
	if name == "" {
		return kerr.InvalidGroupID.Code
	}
	g := c.groups[name]
	if g == nil {
		return kerr.UnknownMemberID.Code
	}
	if g.state == stateDead {
		return kerr.CoordinatorNotAvailable.Code
	}
	if code := g.validateMember(id, instance); code != 0 {
		return code
	}
	m := g.members[id]
	switch g.state {
	case stateEmpty:
		return kerr.UnknownMemberID.Code
	case statePreparing:
		c.schedule(m.hb, time.Now().Add(m.session))
		return kerr.RebalanceInProgress.Code
	default: // Completing, Stable
		if gen != g.generation {
			return kerr.IllegalGeneration.Code
		}
		c.schedule(m.hb, time.Now().Add(m.session))
		return 0
	}
}

// LeaveGroup handles a LeaveGroup request: one member (v0-2) or a batch,
// by member id or by instance id (v3+, KIP-345).
func (c *Coordinator) LeaveGroup(req *kmsg.LeaveGroupRequest, done func(*kmsg.LeaveGroupResponse)) {
	v := req.Version
	type leaving struct {
		id, instance string
		hasInstance  bool
	}
	var ls []leaving
	if v < 3 {
		ls = append(ls, leaving{id: req.MemberID})
	} else {
		for _, m := range req.Members {
			l := leaving{id: m.MemberID}
			if m.InstanceID != nil {
				l.instance, l.hasInstance = *m.InstanceID, true
			}
			ls = append(ls, l)
		}
	}
	name := req.Group
	c.submit(func() {
		resp := kmsg.NewPtrLeaveGroupResponse()
		resp.Version = v
		codes := make([]int16, len(ls))
		g := c.groups[name]
		switch {
		case name == "":
			resp.ErrorCode = kerr.InvalidGroupID.Code
		case g == nil:
			for i := range codes {
				codes[i] = kerr.UnknownMemberID.Code
			}
		case g.state == stateDead:
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		default:
			for i, l := range ls {
				codes[i] = c.leave(g, l.id, l.instance)
			}
		}
		if v < 3 {
			if resp.ErrorCode == 0 && len(codes) == 1 {
				resp.ErrorCode = codes[0]
			}
		} else if resp.ErrorCode == 0 {
			for i, l := range ls {
				rm := kmsg.NewLeaveGroupResponseMember()
				rm.MemberID = l.id
				if l.hasInstance {
					s := l.instance
					rm.InstanceID = &s
				}
				rm.ErrorCode = codes[i]
				resp.Members = append(resp.Members, rm)
			}
		}
		done(resp)
	})
}

func (c *Coordinator) leave(g *group, id, instance string) int16 {
	if id == "" {
		// Administrative removal by instance id.
		cur, ok := g.static[instance]
		if instance == "" || !ok || g.members[cur] == nil {
			return kerr.UnknownMemberID.Code
		}
		c.removeMember(g, g.members[cur])
		return 0
	}
	if t := g.pending[id]; t != nil {
		c.cancel(t)
		delete(g.pending, id)
		if g.state == statePreparing {
			c.tryCompleteJoin(g)
		}
		return 0
	}
	if code := g.validateMember(id, instance); code != 0 {
		return code
	}
	c.removeMember(g, g.members[id])
	return 0
}
