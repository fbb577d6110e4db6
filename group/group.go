package group

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// state is a classic group's state, named as Kafka names them in
// DescribeGroups and ListGroups.
type state int8

const (
	stateEmpty state = iota
	statePreparing
	stateCompleting
	stateStable
	stateDead
)

var stateNames = [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}

func (s state) String() string { return stateNames[s] }

type protocol struct {
	name     string
	metadata []byte
}

// joinResult is what a parked or immediate JoinGroup answers.
type joinResult struct {
	err          int16
	memberID     string
	generation   int32
	protocolType string
	protocol     string
	hasProtocol  bool
	leader       string
	skip         bool
	members      []kmsg.JoinGroupResponseMember
}

type syncResult struct {
	err        int16
	assignment []byte
}

// member is one member of a classic group. Loop only.
type member struct {
	id         string
	instanceID string // "" when dynamic
	clientID   string
	clientHost string
	session    time.Duration
	rebalance  time.Duration
	protocols  []protocol
	// protoIndex maps a protocol name to its first place in protocols,
	// built on first use for long lists; set protocols with setProtocols.
	protoIndex map[string]int
	assignment []byte

	join  func(joinResult) // a JoinGroup is parked
	joinV int16            // its version
	sync  func(syncResult) // a SyncGroup is parked
	isNew bool             // joined and not yet through a completed join (KIP-394)
	hb    *timer           // session (or new-member) expiry
	ptype string           // protocol type it joined with
}

func (m *member) static() bool { return m.instanceID != "" }

// matches reports whether protos are the member's current protocols.
func (m *member) matches(protos []protocol) bool {
	if len(protos) != len(m.protocols) {
		return false
	}
	for i := range protos {
		if protos[i].name != m.protocols[i].name || !bytes.Equal(protos[i].metadata, m.protocols[i].metadata) {
			return false
		}
	}
	return true
}

func (m *member) metadata(name string) []byte {
	if i, ok := m.protocolAt(name); ok {
		return m.protocols[i].metadata
	}
	return nil
}

// setProtocols replaces the member's protocols.
func (m *member) setProtocols(protos []protocol) {
	m.protocols, m.protoIndex = protos, nil
}

// protocolAt returns where name first is in the member's protocols: a
// scan for short lists, an index for long ones, so a member listing a
// million protocols costs a lookup, not a scan, per question.
func (m *member) protocolAt(name string) (int, bool) {
	const scanMax = 8
	if len(m.protocols) <= scanMax {
		for i, p := range m.protocols {
			if p.name == name {
				return i, true
			}
		}
		return 0, false
	}
	if m.protoIndex == nil {
		m.protoIndex = make(map[string]int, len(m.protocols))
		for i, p := range m.protocols {
			if _, dup := m.protoIndex[p.name]; !dup {
				m.protoIndex[p.name] = i
			}
		}
	}
	i, ok := m.protoIndex[name]
	return i, ok
}

// group is one classic group. Loop only.
type group struct {
	name         string
	state        state
	stateSince   time.Time
	protocolType string
	protocol     string // selected for the current generation
	generation   int32
	leader       string

	members     map[string]*member
	pending     map[string]*timer // member ids handed out with MEMBER_ID_REQUIRED
	static      map[string]string // instance id -> member id
	pendingSync map[string]bool   // members that must SyncGroup this generation

	joinT          *timer // initial delay, then rebalance timeout
	syncT          *timer // pending-sync deadline
	initialPhase   bool   // joinT is the initial delay (group.initial.rebalance.delay.ms)
	initialLeft    time.Duration
	newMemberAdded bool

	cg *consumerGroup // non-nil: a consumer-protocol group (KIP-848), consumer.go
}

func newGroup(name string, now time.Time) *group {
	return &group{
		name:        name,
		state:       stateEmpty,
		stateSince:  now,
		members:     make(map[string]*member),
		pending:     make(map[string]*timer),
		static:      make(map[string]string),
		pendingSync: make(map[string]bool),
	}
}

func (g *group) transition(s state) {
	g.state = s
	g.stateSince = time.Now()
}

func (g *group) add(m *member) {
	if len(g.members) == 0 {
		g.protocolType = m.ptype
	}
	g.members[m.id] = m
	if m.static() {
		g.static[m.instanceID] = m.id
	}
	if g.leader == "" {
		g.leader = m.id
	}
}

func (g *group) remove(id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	delete(g.members, id)
	delete(g.pendingSync, id)
	if m.static() && g.static[m.instanceID] == id {
		delete(g.static, m.instanceID)
	}
	if g.leader == id {
		g.leader = ""
		for other := range g.members {
			g.leader = other
			break
		}
	}
}

// supports is Kafka's supportsProtocols: an empty group takes any non-empty
// protocol type and list; otherwise the type must match and one protocol must
// be supported by every member.
func (g *group) supports(ptype string, protos []protocol) bool {
	if g.state == stateEmpty || len(g.members) == 0 {
		return ptype != "" && len(protos) > 0
	}
	if g.protocolType != ptype {
		return false
	}
	for _, p := range protos {
		if g.allSupport(p.name) {
			return true
		}
	}
	return false
}

// allSupport reports whether every member lists protocol name.
func (g *group) allSupport(name string) bool {
	for _, m := range g.members {
		if !m.hasProtocol(name) {
			return false
		}
	}
	return true
}

func (m *member) hasProtocol(name string) bool {
	_, ok := m.protocolAt(name)
	return ok
}

// selectProtocol picks among the protocols every member supports the one
// most members list first among them (Kafka's vote). Ties go to the
// leader's preference, so the choice is deterministic.
func (g *group) selectProtocol() string {
	var candidates []string
	var leader *member
	if l := g.members[g.leader]; l != nil {
		leader = l
	} else {
		for _, m := range g.members {
			leader = m
			break
		}
	}
	if leader == nil {
		return ""
	}
	isCandidate := map[string]bool{}
	for _, p := range leader.protocols {
		if !isCandidate[p.name] && g.allSupport(p.name) {
			candidates = append(candidates, p.name)
			isCandidate[p.name] = true
		}
	}
	votes := make(map[string]int, len(candidates))
	for _, m := range g.members {
		for _, p := range m.protocols {
			if isCandidate[p.name] {
				votes[p.name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func (g *group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalance)
	}
	return d
}

func (g *group) allJoined() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.join == nil {
			return false
		}
	}
	return true
}

// memberList is the member metadata the leader gets in its JoinGroup response.
func (g *group) memberList() []kmsg.JoinGroupResponseMember {
	out := make([]kmsg.JoinGroupResponseMember, 0, len(g.members))
	for _, m := range g.members {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		if m.static() {
			id := m.instanceID
			jm.InstanceID = &id
		}
		jm.ProtocolMetadata = m.metadata(g.protocol)
		out = append(out, jm)
	}
	return out
}

// newMemberID is clientID-UUID, as Kafka makes them.
func newMemberID(clientID string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return clientID + "-" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
