package group

// The consumer group protocol (KIP-848): ConsumerGroupHeartbeat and
// ConsumerGroupDescribe, as Apache Kafka 4.x's GroupMetadataManager runs
// them. The broker assigns; members reconcile incrementally.
//
// Epochs: the group epoch is bumped by every change of membership or of the
// resolved subscriptions; the target assignment is recomputed at once, so
// the assignment epoch follows it. Each member moves towards its target in
// steps: partitions it must give up are first removed from its assignment
// (its epoch stays), and only once it reports, in a heartbeat's
// TopicPartitions, that it no longer owns them is it moved to the target
// epoch. A partition is given to a member only when no other member owns it
// (assigned or pending revocation), so no partition has two owners.
//
// Differences from Apache Kafka:
//   - Group and member state live in memory only: after a restart members
//     get UNKNOWN_MEMBER_ID and rejoin with epoch 0 (committed offsets are
//     durable). A heartbeat with epoch > 0 for a group that does not exist
//     answers UNKNOWN_MEMBER_ID (Kafka: GROUP_ID_NOT_FOUND), because here
//     that happens after a restart, where rejoining is the right recovery.
//   - No online migration between the classic and consumer protocols: a
//     consumer heartbeat for a non-empty classic group answers
//     GROUP_ID_NOT_FOUND, a classic JoinGroup for a non-empty consumer group
//     INCONSISTENT_GROUP_PROTOCOL (Kafka with group.consumer.migration.policy
//     =disabled). Empty groups change type.
//   - Regular expressions are Go's RE2, not RE2/J; they must match a whole
//     topic name, as Java's Matcher.matches(). RE2/J's possessive and
//     Java-only classes (\p{javaLowerCase}) are rejected as
//     INVALID_REGULAR_EXPRESSION, as is one longer than MaxRegexBytes
//     (Kafka has no such bound). As in Kafka, a regex costly to match is
//     resolved in the background: until then it resolves to its previous
//     matches (none at first). regex.go has the cache.
//   - Subscriptions are re-resolved (new topics, regex matches, partition
//     counts) every TopicRefreshInterval and on each join or subscription
//     change, not on every metadata change.
//   - Rack ids are recorded, not used by the assignors.

import (
	"crypto/rand"
	"encoding/base64"
	"maps"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

// maxLoggedString is the longest string the offsets log stores (u16 length).
const maxLoggedString = 1<<16 - 1

// maxGroupIDBytes bounds group ids and group instance ids: the longest
// string the non-flexible versions of ListGroups (v0-2), DescribeGroups
// (v0-4) and OffsetFetch (v0-5) carry (an int16 length). A longer id, once
// a group had it, made every such response a frame no client could parse,
// for every client listing or describing groups.
const maxGroupIDBytes = 1<<15 - 1

// Member epochs with a meaning (ConsumerGroupHeartbeat).
const (
	epochJoin        = 0
	epochLeave       = -1
	epochStaticLeave = -2
)

type memberState int8

const (
	memberStable     memberState = iota
	memberUnrevoked              // waiting for the member to revoke partitions
	memberUnreleased             // waiting for other members to release partitions
)

// cmember is one member of a consumer group. Loop only.
type cmember struct {
	id, instanceID, rackID string
	clientID, clientHost   string

	epoch, prevEpoch int32
	state            memberState
	rebalance        time.Duration

	topics   []string // subscribed names, sorted
	regex    string   // "" when none
	assignor string   // "" when the member has no preference
	resolved []string

	assigned assignment // what the member may own now
	revoking assignment // assigned before, must be revoked

	session *timer
	revokeT *timer
}

// consumerGroup is the consumer-protocol state of a group. Loop only.
type consumerGroup struct {
	epoch       int32
	targetEpoch int32
	assignor    string
	members     map[string]*cmember
	static      map[string]string // instance id -> member id
	target      map[string]assignment
	owners      map[TP]string                // partition -> member owning it (assigned or revoking)
	topics      map[string]storage.TopicInfo // the resolved subscriptions' topics
	// ids names every topic id members may report owning: the resolved
	// topics and those still assigned or being revoked.
	ids map[[16]byte]string

	// ghosts are members from before a restart (their ids are logged,
	// their assignments are not): until each has heard it is unknown,
	// rejoined, or its session expired, it may still own any partition,
	// so no partition is newly handed out.
	ghosts map[string]*ghost
}

type ghost struct {
	instance string
	expire   *timer
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{
		assignor: assignors[0],
		members:  make(map[string]*cmember),
		static:   make(map[string]string),
		target:   make(map[string]assignment),
		owners:   make(map[TP]string),
		topics:   make(map[string]storage.TopicInfo),
		ids:      make(map[[16]byte]string),
		ghosts:   make(map[string]*ghost),
	}
}

// restoreConsumerGroup brings back a consumer group whose members were
// logged as present: they are ghosts until they show up or time out.
func (c *Coordinator) restoreConsumerGroup(g *group, members map[string]string, now time.Time) {
	g.cg = newConsumerGroup()
	g.protocolType = "consumer"
	for id, instance := range members {
		gh := &ghost{instance: instance}
		gh.expire = newTimer(func() { c.dropGhost(g, id) })
		g.cg.ghosts[id] = gh
		c.schedule(gh.expire, now.Add(c.cfg.ConsumerSessionTimeout))
	}
	c.armReresolve()
}

// dropGhost forgets a member from before the restart, durably.
func (c *Coordinator) dropGhost(g *group, id string) {
	if g.cg == nil {
		return
	}
	gh := g.cg.ghosts[id]
	if gh == nil {
		return
	}
	c.cancel(gh.expire)
	delete(g.cg.ghosts, id)
	c.logMember(g.name, id, gh.instance, false)
}

// logMember records a member joining or leaving; not awaited (only the
// restart grace depends on it).
func (c *Coordinator) logMember(group, id, instance string, present bool) {
	c.offs.submit(&logOp{
		rec:   memberRecord(group, id, instance, present),
		apply: applyMember(group, id, instance, present),
		done:  func(error) {},
	})
}

// stateName is the group state as Kafka names it.
func (cg *consumerGroup) stateName() string {
	switch {
	case len(cg.members) == 0:
		return "Empty"
	case cg.targetEpoch != cg.epoch:
		return "Assigning"
	}
	for _, m := range cg.members {
		if m.epoch != cg.targetEpoch || m.state != memberStable {
			return "Reconciling"
		}
	}
	return "Stable"
}

// hbArgs is a parsed ConsumerGroupHeartbeat.
type hbArgs struct {
	req                  *kmsg.ConsumerGroupHeartbeatRequest
	clientID, clientHost string
	owned                assignment // nil when TopicPartitions is null
	joined               []byte     // member records to make durable before answering
	applies              []func(*logState)
}

// logJoin queues a member record that must be durable before the answer:
// a member is only told its assignment once a restart would remember it.
func (a *hbArgs) logJoin(group, id, instance string) {
	a.joined = append(a.joined, memberRecord(group, id, instance, true)...)
	a.applies = append(a.applies, applyMember(group, id, instance, true))
}

type hbResult struct {
	err     *kerr.Error
	msg     string
	member  *cmember
	epoch   int32
	include bool // send the assignment

	assignment *kmsg.ConsumerGroupHeartbeatResponseAssignment
}

// ConsumerGroupHeartbeat handles a ConsumerGroupHeartbeat request (KIP-848).
func (c *Coordinator) ConsumerGroupHeartbeat(clientID, clientHost string, req *kmsg.ConsumerGroupHeartbeatRequest, done func(*kmsg.ConsumerGroupHeartbeatResponse)) {
	a := hbArgs{req: req, clientID: clientID, clientHost: clientHost}
	respond := func(r hbResult) {
		resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
		resp.Version = req.Version
		if r.err != nil {
			resp.ErrorCode = r.err.Code
			if r.msg != "" {
				resp.ErrorMessage = strp(r.msg)
			}
			done(resp)
			return
		}
		resp.MemberID = strp(r.member.id)
		resp.MemberEpoch = r.epoch
		resp.HeartbeatIntervalMillis = int32(c.cfg.ConsumerHeartbeatInterval.Milliseconds())
		if r.include {
			resp.Assignment = r.assignment
		}
		done(resp)
	}
	if err, msg := validateHeartbeat(req); err != nil {
		respond(hbResult{err: err, msg: msg})
		return
	}
	if rx := req.SubscribedTopicRegex; rx != nil && *rx != "" {
		if len(*rx) > c.cfg.MaxRegexBytes {
			respond(hbResult{err: kerr.InvalidRegularExpression, msg: "SubscribedTopicRegex of " + strconv.Itoa(len(*rx)) + " bytes is longer than the broker's limit of " + strconv.Itoa(c.cfg.MaxRegexBytes) + " bytes."})
			return
		}
		// Compiled here, off the loop, once per distinct regex (the cache).
		if _, err := c.regexes.compile(*rx); err != nil {
			respond(hbResult{err: kerr.InvalidRegularExpression, msg: "SubscribedTopicRegex " + *rx + " is not a valid regular expression: " + err.Error()})
			return
		}
	}
	c.submit(func() {
		if c.cfg.TopicList == nil {
			respond(hbResult{err: kerr.UnsupportedVersion})
			return
		}
		r := c.heartbeat848(&a)
		if r.err == nil && r.include {
			r.assignment = responseAssignment(c.groups[req.Group].cg, r.member)
		}
		if len(a.joined) == 0 {
			respond(r)
			return
		}
		applies := a.applies
		c.offs.submit(&logOp{
			rec: a.joined,
			apply: func(st *logState) {
				for _, f := range applies {
					f(st)
				}
			},
			done: func(err error) {
				if err != nil {
					// As Kafka answers a failed append of the group's records.
					r = hbResult{err: kerr.NotCoordinator}
				}
				respond(r)
			},
		})
	})
}

// validateHeartbeat is Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid.
func validateHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest) (*kerr.Error, string) {
	bad := func(msg string) (*kerr.Error, string) { return kerr.InvalidRequest, msg }
	switch {
	case req.Group == "":
		return bad("GroupId can't be empty.")
	case req.InstanceID != nil && *req.InstanceID == "":
		return bad("InstanceId can't be empty.")
	case req.RackID != nil && *req.RackID == "":
		return bad("RackId can't be empty.")
	case req.Version >= 1 && req.MemberID == "":
		return bad("MemberId can't be empty.")
	case len(req.Group) > maxGroupIDBytes || (req.InstanceID != nil && len(*req.InstanceID) > maxGroupIDBytes):
		return bad("GroupId and InstanceId must be at most 32767 bytes.")
	case len(req.MemberID) > maxLoggedString:
		// The offsets log stores it with a u16 length (klite's limit).
		return bad("MemberId must be at most 65535 bytes.")
	}
	switch e := req.MemberEpoch; {
	case e > 0 || e == epochLeave:
		if req.MemberID == "" {
			return bad("MemberId can't be empty.")
		}
	case e == epochJoin:
		if req.RebalanceTimeoutMillis == -1 {
			return bad("RebalanceTimeoutMs must be provided in first request.")
		}
		if req.Topics == nil || len(req.Topics) > 0 {
			return bad("TopicPartitions must be empty when (re-)joining.")
		}
		if req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil {
			return bad("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
		}
	case e == epochStaticLeave:
		if req.MemberID == "" {
			return bad("MemberId can't be empty.")
		}
		if req.InstanceID == nil {
			return bad("InstanceId can't be null.")
		}
	default:
		return bad("MemberEpoch is invalid.")
	}
	if req.ServerAssignor != nil && !slices.Contains(assignors, *req.ServerAssignor) {
		return kerr.UnsupportedAssignor, "ServerAssignor " + *req.ServerAssignor + " is not supported. Supported assignors: uniform, range."
	}
	return nil, ""
}

// consumerGroupFor finds or (for a join) creates the consumer group name;
// an empty classic group becomes a consumer group.
func (c *Coordinator) consumerGroupFor(name string, create bool) (*group, *kerr.Error, string) {
	g := c.groups[name]
	if g == nil {
		if !create {
			return nil, kerr.GroupIDNotFound, "Consumer group " + name + " not found."
		}
		if c.groupsFull() {
			return nil, kerr.PolicyViolation, "The broker holds its most groups (-group-max-count)."
		}
		g = newGroup(name, time.Now())
		c.groups[name] = g
	}
	if g.cg == nil {
		if !create || len(g.members) > 0 || len(g.pending) > 0 || g.state != stateEmpty {
			return nil, kerr.GroupIDNotFound, "Group " + name + " is not a consumer group."
		}
		g.cg = newConsumerGroup()
		g.protocolType, g.protocol, g.leader = "consumer", "", ""
		c.armReresolve()
	}
	return g, nil, ""
}

func (c *Coordinator) heartbeat848(a *hbArgs) hbResult {
	req := a.req
	fail := func(err *kerr.Error, msg string) hbResult { return hbResult{err: err, msg: msg} }
	if req.MemberEpoch == epochLeave || req.MemberEpoch == epochStaticLeave {
		return c.leave848(*a)
	}
	if req.MemberEpoch > 0 {
		if g := c.groups[req.Group]; g == nil || (g.cg == nil && g.state == stateEmpty && len(g.members) == 0) {
			// Kafka: GROUP_ID_NOT_FOUND. Here the member is what was lost
			// (group state is not all durable): have it rejoin.
			return fail(kerr.UnknownMemberID, "Member "+req.MemberID+" is not a member of group "+req.Group+".")
		}
	}
	g, err, msg := c.consumerGroupFor(req.Group, req.MemberEpoch == epochJoin)
	if err != nil {
		return fail(err, msg)
	}
	cg := g.cg
	if gh := cg.ghosts[req.MemberID]; gh != nil && req.MemberID != "" {
		// A member from before the restart: it learns it is unknown and
		// drops its partitions, or it is rejoining and owns nothing.
		c.dropGhost(g, req.MemberID)
		if req.MemberEpoch != epochJoin {
			return fail(kerr.UnknownMemberID, "Member "+req.MemberID+" is not a member of group "+req.Group+".")
		}
	}
	if req.InstanceID != nil && req.MemberEpoch == epochJoin {
		for id, gh := range cg.ghosts {
			if gh.instance == *req.InstanceID {
				c.dropGhost(g, id) // the static instance restarted
			}
		}
	}
	if req.Topics != nil {
		a.owned = c.ownedByName(cg, req.Topics)
	}
	id := req.MemberID
	var m *cmember
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	switch {
	case req.MemberEpoch == epochJoin && instance != "":
		if id == "" {
			id = newUUID()
		}
		cur := cg.members[cg.static[instance]]
		switch {
		case cur == nil:
		case cur.id == id:
			m = cur
		case cur.epoch != epochStaticLeave:
			return fail(kerr.UnreleasedInstanceID, "Static member "+cur.id+" with instance id "+instance+" is not released.")
		default:
			// The restarted instance takes its predecessor's place and
			// assignment (KIP-848 static membership).
			m = c.replaceStatic(g, cur, id)
			a.logJoin(g.name, id, instance)
		}
	case req.MemberEpoch == epochJoin:
		if id == "" {
			id = newUUID() // v0: the broker names the member
		}
		m = cg.members[id]
	case instance != "":
		cur := cg.members[cg.static[instance]]
		if cur == nil {
			return fail(kerr.UnknownMemberID, "Instance id "+instance+" is unknown.")
		}
		if cur.id != id {
			return fail(kerr.FencedInstanceID, "Static member "+id+" with instance id "+instance+" was fenced by member "+cur.id+".")
		}
		m = cur
	default:
		m = cg.members[id]
		if m == nil {
			return fail(kerr.UnknownMemberID, "Member "+id+" is not a member of group "+req.Group+".")
		}
	}
	if m != nil && req.MemberEpoch != epochJoin {
		if req.MemberEpoch > m.epoch {
			return fail(kerr.FencedMemberEpoch, "The consumer group member has a greater member epoch than the one known by the coordinator.")
		}
		if req.MemberEpoch < m.epoch && (req.MemberEpoch != m.prevEpoch || a.owned == nil || !subset(a.owned, m.assigned)) {
			return fail(kerr.FencedMemberEpoch, "The consumer group member has a smaller member epoch than the one known by the coordinator.")
		}
	}
	before := epochAndAssigned{}
	isNew := m == nil
	if isNew {
		if len(cg.members) >= c.cfg.MaxGroupSize {
			return fail(kerr.GroupMaxSizeReached, "The consumer group has reached its maximum capacity of "+strconv.Itoa(c.cfg.MaxGroupSize)+" members.")
		}
		m = &cmember{id: id, instanceID: instance, assigned: assignment{}, revoking: assignment{}}
		mm := m
		m.session = newTimer(func() { c.expire848(g, mm, "session timeout") })
		m.revokeT = newTimer(func() { c.expire848(g, mm, "revocation timeout") })
		cg.members[id] = m
		if instance != "" {
			cg.static[instance] = id
		}
		a.logJoin(g.name, id, instance)
		if g.state == stateEmpty {
			g.transition(stateStable)
		}
	} else {
		before = epochAndAssigned{m.epoch, m.assigned.clone(), true}
	}
	if req.MemberEpoch == epochJoin {
		a.owned = assignment{} // a (re)joining member owns nothing
		if m.epoch == epochStaticLeave {
			m.epoch = m.prevEpoch // the static member is back
		}
	}
	m.clientID, m.clientHost = a.clientID, a.clientHost
	changed := isNew
	if req.RackID != nil {
		m.rackID = *req.RackID
	}
	if req.RebalanceTimeoutMillis > 0 {
		m.rebalance = min(time.Duration(req.RebalanceTimeoutMillis)*time.Millisecond, maxTimeout)
	}
	if req.SubscribedTopicNames != nil {
		ts := slices.Clone(req.SubscribedTopicNames)
		sort.Strings(ts)
		ts = slices.Compact(ts)
		if !slices.Equal(ts, m.topics) {
			m.topics, changed = ts, true
		}
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != m.regex {
		m.regex, changed = *req.SubscribedTopicRegex, true
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.assignor {
		m.assignor, changed = *req.ServerAssignor, true
	}
	c.schedule(m.session, time.Now().Add(c.cfg.ConsumerSessionTimeout))
	if changed && !c.resolve(g, c.cfg.TopicList()) && isNew {
		c.bump(g) // membership changed even if the subscriptions resolve the same
	}
	c.reconcile(cg, m, a.owned)
	full := req.MemberEpoch == epochJoin || req.Topics != nil || req.SubscribedTopicNames != nil || req.SubscribedTopicRegex != nil
	include := full || !before.ok || before.epoch != m.epoch || !before.assigned.equal(m.assigned)
	return hbResult{member: m, epoch: m.epoch, include: include}
}

type epochAndAssigned struct {
	epoch    int32
	assigned assignment
	ok       bool
}

// replaceStatic moves a released static member's state to its new id.
func (c *Coordinator) replaceStatic(g *group, old *cmember, id string) *cmember {
	cg := g.cg
	c.cancel(old.session)
	c.cancel(old.revokeT)
	delete(cg.members, old.id)
	m := *old
	m.id = id
	nm := &m
	nm.session = newTimer(func() { c.expire848(g, nm, "session timeout") })
	nm.revokeT = newTimer(func() { c.expire848(g, nm, "revocation timeout") })
	nm.epoch = old.prevEpoch
	if old.epoch != epochStaticLeave {
		nm.epoch = old.epoch
	}
	nm.prevEpoch = nm.epoch
	cg.members[id] = nm
	cg.static[old.instanceID] = id
	c.logMember(g.name, old.id, old.instanceID, false)
	if t, ok := cg.target[old.id]; ok {
		delete(cg.target, old.id)
		cg.target[id] = t
	}
	for tp, owner := range cg.owners {
		if owner == old.id {
			cg.owners[tp] = id
		}
	}
	if nm.state == memberUnrevoked {
		c.schedule(nm.revokeT, time.Now().Add(nm.rebalance))
	}
	return nm
}

func (c *Coordinator) leave848(a hbArgs) hbResult {
	req := a.req
	g := c.groups[req.Group]
	if g == nil || g.cg == nil {
		msg := "Consumer group " + req.Group + " not found."
		if g != nil {
			msg = "Group " + req.Group + " is not a consumer group."
		}
		return hbResult{err: kerr.GroupIDNotFound, msg: msg}
	}
	cg := g.cg
	if cg.ghosts[req.MemberID] != nil {
		c.dropGhost(g, req.MemberID)
		return hbResult{member: &cmember{id: req.MemberID}, epoch: req.MemberEpoch}
	}
	var m *cmember
	if req.InstanceID != nil {
		m = cg.members[cg.static[*req.InstanceID]]
		if m == nil {
			return hbResult{err: kerr.UnknownMemberID, msg: "Instance id " + *req.InstanceID + " is unknown."}
		}
		if m.id != req.MemberID {
			return hbResult{err: kerr.FencedInstanceID, msg: "Static member " + req.MemberID + " with instance id " + *req.InstanceID + " was fenced by member " + m.id + "."}
		}
	} else if m = cg.members[req.MemberID]; m == nil {
		return hbResult{err: kerr.UnknownMemberID, msg: "Member " + req.MemberID + " is not a member of group " + req.Group + "."}
	}
	if req.MemberEpoch == epochStaticLeave {
		// The static member keeps its place and assignment until its
		// session times out or its instance rejoins.
		if m.epoch != epochStaticLeave {
			m.prevEpoch = m.epoch
		}
		m.epoch = epochStaticLeave
		c.cancel(m.revokeT)
		return hbResult{member: m, epoch: epochStaticLeave}
	}
	c.removeMember848(g, m)
	return hbResult{member: m, epoch: epochLeave}
}

// expire848 fences a member whose session or revocation deadline passed.
func (c *Coordinator) expire848(g *group, m *cmember, why string) {
	if g.cg == nil || g.cg.members[m.id] != m {
		return
	}
	c.log.Debug().Str("group", g.name).Str("member", m.id).Str("reason", why).Msg("consumer group member fenced")
	c.removeMember848(g, m)
}

func (c *Coordinator) removeMember848(g *group, m *cmember) {
	cg := g.cg
	c.cancel(m.session)
	c.cancel(m.revokeT)
	delete(cg.members, m.id)
	delete(cg.target, m.id)
	c.logMember(g.name, m.id, m.instanceID, false)
	if m.instanceID != "" && cg.static[m.instanceID] == m.id {
		delete(cg.static, m.instanceID)
	}
	for tp, owner := range cg.owners {
		if owner == m.id {
			delete(cg.owners, tp)
		}
	}
	if len(cg.members) == 0 {
		g.transition(stateEmpty)
	}
	c.resolve(g, nil)
	c.bump(g)
}

// resolve recomputes every member's resolved subscription against topics
// (nil: the group's known topics, for removals) and bumps the group epoch
// when anything an assignor sees changed.
func (c *Coordinator) resolve(g *group, topics []storage.TopicInfo) bool {
	cg := g.cg
	if topics != nil {
		c.regexes.list(topics)
	} else {
		topics = make([]storage.TopicInfo, 0, len(cg.topics))
		for _, t := range cg.topics {
			topics = append(topics, t)
		}
	}
	byName := make(map[string]storage.TopicInfo, len(topics))
	for _, t := range topics {
		byName[t.Name] = t
	}
	next := make(map[string]storage.TopicInfo)
	changed := false
	for _, m := range cg.members {
		var res []string
		for _, t := range m.topics {
			if info, ok := byName[t]; ok {
				res = append(res, t)
				next[t] = info
			}
		}
		if m.regex != "" {
			for _, name := range c.regexMatches(m.regex) {
				if info, ok := byName[name]; ok {
					res = append(res, name)
					next[name] = info
				}
			}
		}
		sort.Strings(res)
		res = slices.Compact(res)
		if !slices.Equal(res, m.resolved) {
			m.resolved, changed = res, true
		}
	}
	if len(next) != len(cg.topics) {
		changed = true
	} else {
		for name, t := range next {
			if old, ok := cg.topics[name]; !ok || old.ID != t.ID || old.Partitions != t.Partitions {
				changed = true
				break
			}
		}
	}
	cg.topics = next
	if len(cg.ids) > len(next) {
		owned := make(map[string]bool)
		for tp := range cg.owners {
			owned[tp.Topic] = true
		}
		for id, name := range cg.ids {
			if _, ok := next[name]; !ok && !owned[name] {
				delete(cg.ids, id)
			}
		}
	}
	for name, t := range next {
		cg.ids[t.ID] = name
	}
	if changed {
		c.bump(g)
	}
	return changed
}

// bump starts a new group epoch and computes its target assignment.
func (c *Coordinator) bump(g *group) {
	cg := g.cg
	cg.epoch++
	cg.assignor = cg.chooseAssignor()
	spec := assignSpec{
		members:    make(map[string][]string, len(cg.members)),
		partitions: make(map[string]int32, len(cg.topics)),
		previous:   cg.target,
	}
	for id, m := range cg.members {
		spec.members[id] = m.resolved
	}
	for name, t := range cg.topics {
		spec.partitions[name] = t.Partitions
	}
	cg.target = runAssignor(cg.assignor, spec)
	cg.targetEpoch = cg.epoch
}

// chooseAssignor is the assignor most members ask for; ties and no
// preference go to the first in the supported list (Kafka's default).
func (cg *consumerGroup) chooseAssignor() string {
	votes := make(map[string]int)
	for _, m := range cg.members {
		if m.assignor != "" {
			votes[m.assignor]++
		}
	}
	best := assignors[0]
	for _, a := range assignors {
		if votes[a] > votes[best] {
			best = a
		}
	}
	return best
}

// reconcile moves m towards its target (Kafka's CurrentAssignmentBuilder).
// owned is what the member reported owning (nil: not reported).
func (c *Coordinator) reconcile(cg *consumerGroup, m *cmember, owned assignment) {
	if m.epoch == epochStaticLeave {
		return
	}
	switch m.state {
	case memberStable:
		if m.epoch == cg.targetEpoch {
			return
		}
	case memberUnrevoked:
		if owned == nil || ownsAny(owned, m.revoking) {
			return // still revoking
		}
		c.release(cg, m, m.revoking)
		m.revoking = assignment{}
		c.cancel(m.revokeT)
	}
	c.computeNext(cg, m, owned)
}

func (c *Coordinator) computeNext(cg *consumerGroup, m *cmember, owned assignment) {
	target := cg.target[m.id]
	kept, revoke, next := assignment{}, assignment{}, assignment{}
	for t, ps := range m.assigned {
		for _, p := range ps {
			if target.has(t, p) {
				kept.add(t, p)
				next.add(t, p)
			} else {
				revoke.add(t, p)
			}
		}
	}
	unreleased := false
	for t, ps := range target {
		for _, p := range ps {
			if m.assigned.has(t, p) {
				continue
			}
			if owner := cg.owners[TP{t, p}]; (owner != "" && owner != m.id) || len(cg.ghosts) > 0 {
				unreleased = true
				continue
			}
			next.add(t, p)
		}
	}
	if revoke.count() > 0 {
		if owned == nil || ownsAny(owned, revoke) {
			// Revoke first; the epoch stays until the member confirms.
			m.assigned, m.revoking = kept, revoke
			m.prevEpoch = m.epoch
			m.state = memberUnrevoked
			c.schedule(m.revokeT, time.Now().Add(max(m.rebalance, time.Millisecond)))
			return
		}
		c.release(cg, m, revoke)
	}
	for t, ps := range next {
		for _, p := range ps {
			cg.owners[TP{t, p}] = m.id
		}
	}
	m.assigned = next
	if m.epoch != cg.targetEpoch {
		m.prevEpoch, m.epoch = m.epoch, cg.targetEpoch
	}
	m.state = memberStable
	if unreleased {
		m.state = memberUnreleased
	}
}

func (c *Coordinator) release(cg *consumerGroup, m *cmember, a assignment) {
	for t, ps := range a {
		for _, p := range ps {
			if cg.owners[TP{t, p}] == m.id {
				delete(cg.owners, TP{t, p})
			}
		}
	}
}

func ownsAny(owned, a assignment) bool {
	for t, ps := range a {
		for _, p := range ps {
			if owned.has(t, p) {
				return true
			}
		}
	}
	return false
}

func subset(a, b assignment) bool {
	for t, ps := range a {
		for _, p := range ps {
			if !b.has(t, p) {
				return false
			}
		}
	}
	return true
}

// ownedByName converts reported TopicPartitions to names; unknown topic ids
// are dropped (the topic is gone, so is ownership of it).
func (c *Coordinator) ownedByName(cg *consumerGroup, ts []kmsg.ConsumerGroupHeartbeatRequestTopic) assignment {
	out := assignment{}
	for _, t := range ts {
		name, ok := cg.ids[t.TopicID]
		if !ok {
			continue
		}
		for _, p := range t.Partitions {
			out.add(name, p)
		}
	}
	return out
}

func responseAssignment(cg *consumerGroup, m *cmember) *kmsg.ConsumerGroupHeartbeatResponseAssignment {
	a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	names := slices.Sorted(maps.Keys(m.assigned))
	for _, t := range names {
		info, ok := cg.topics[t]
		if !ok {
			continue
		}
		at := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		at.TopicID = info.ID
		at.Partitions = slices.Clone(m.assigned[t])
		a.Topics = append(a.Topics, at)
	}
	return &a
}

// armReresolve starts the periodic subscription refresh if it is not armed.
func (c *Coordinator) armReresolve() {
	if c.reresolve == nil {
		c.reresolve = newTimer(c.reresolveAll)
	}
	if !c.reresolve.armed() {
		c.schedule(c.reresolve, time.Now().Add(c.cfg.TopicRefreshInterval))
	}
}

// reresolveAll re-resolves every non-empty consumer group's subscriptions
// against one topic listing: new topics, regex matches, added partitions
// and deleted topics start a new group epoch.
func (c *Coordinator) reresolveAll() {
	var topics []storage.TopicInfo
	any := false
	for _, g := range c.groups {
		if g.cg == nil {
			continue
		}
		any = true
		if len(g.cg.members) == 0 {
			continue
		}
		if topics == nil && c.cfg.TopicList != nil {
			topics = c.cfg.TopicList()
			if topics == nil {
				topics = []storage.TopicInfo{}
			}
		}
		if topics != nil {
			c.resolve(g, topics)
		}
	}
	if any {
		c.schedule(c.reresolve, time.Now().Add(c.cfg.TopicRefreshInterval))
	}
}

// ConsumerGroupDescribe handles a ConsumerGroupDescribe request.
func (c *Coordinator) ConsumerGroupDescribe(req *kmsg.ConsumerGroupDescribeRequest, done func(*kmsg.ConsumerGroupDescribeResponse)) {
	c.submit(func() {
		resp := kmsg.NewPtrConsumerGroupDescribeResponse()
		resp.Version = req.Version
		for _, name := range req.Groups {
			dg := kmsg.NewConsumerGroupDescribeResponseGroup()
			dg.Group = name
			dg.AuthorizedOperations = authorizedOperationsOmitted
			g := c.groups[name]
			switch {
			case name == "":
				dg.ErrorCode = kerr.InvalidGroupID.Code
			case g == nil || g.state == stateDead:
				dg.ErrorCode, dg.ErrorMessage = kerr.GroupIDNotFound.Code, strp("Group "+name+" not found.")
			case g.cg == nil:
				dg.ErrorCode, dg.ErrorMessage = kerr.GroupIDNotFound.Code, strp("Group "+name+" is not a consumer group.")
			default:
				cg := g.cg
				dg.State, dg.Epoch, dg.AssignmentEpoch, dg.AssignorName = cg.stateName(), cg.epoch, cg.targetEpoch, cg.assignor
				ids := slices.Sorted(maps.Keys(cg.members))
				for _, id := range ids {
					m := cg.members[id]
					dm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
					dm.MemberID, dm.MemberEpoch, dm.ClientID, dm.ClientHost = m.id, m.epoch, m.clientID, m.clientHost
					if m.instanceID != "" {
						dm.InstanceID = strp(m.instanceID)
					}
					if m.rackID != "" {
						dm.RackID = strp(m.rackID)
					}
					dm.SubscribedTopics = slices.Clone(m.topics)
					if dm.SubscribedTopics == nil {
						dm.SubscribedTopics = []string{}
					}
					if m.regex != "" {
						dm.SubscribedTopicRegex = strp(m.regex)
					}
					dm.Assignment = c.describeAssignment(cg, m.assigned)
					dm.TargetAssignment = c.describeAssignment(cg, cg.target[id])
					dm.MemberType = 1 // consumer protocol
					dg.Members = append(dg.Members, dm)
				}
			}
			resp.Groups = append(resp.Groups, dg)
		}
		done(resp)
	})
}

func (c *Coordinator) describeAssignment(cg *consumerGroup, a assignment) kmsg.Assignment {
	out := kmsg.NewAssignment()
	names := slices.Sorted(maps.Keys(a))
	for _, t := range names {
		tp := kmsg.NewAssignmentTopicPartition()
		tp.Topic = t
		tp.TopicID = cg.topics[t].ID
		tp.Partitions = slices.Clone(a[t])
		out.TopicPartitions = append(out.TopicPartitions, tp)
	}
	return out
}

// newUUID is a random UUID in Kafka's base64url form (Uuid.toString).
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validateConsumerCommit is Kafka's ConsumerGroup.validateOffsetCommit: a
// commit without a member epoch is allowed only while the group is empty;
// members commit with OffsetCommit v9+ and their current epoch.
func validateConsumerCommit(cg *consumerGroup, req *kmsg.OffsetCommitRequest) int16 {
	if req.Generation < 0 && len(cg.members) == 0 {
		return 0
	}
	m := cg.members[req.MemberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case req.Version < 9:
		return kerr.UnsupportedVersion.Code
	case req.Generation != m.epoch:
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}

// validateConsumerFetch is Kafka's ConsumerGroup.validateOffsetFetch
// (OffsetFetch v9+): a fetch naming a member must carry its current epoch.
func validateConsumerFetch(cg *consumerGroup, memberID *string, epoch int32) int16 {
	if memberID == nil && epoch < 0 {
		return 0
	}
	id := ""
	if memberID != nil {
		id = *memberID
	}
	m := cg.members[id]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case epoch != m.epoch:
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}
