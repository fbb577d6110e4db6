package group

// Durable classic group membership. When the leader's SyncGroup completes a
// generation, the group's stable state (protocol, leader, every member with
// its subscription and assignment) is logged as one record, as Apache Kafka
// appends a group metadata record to __consumer_offsets; the SyncGroup
// answers wait for its fdatasync. On open a group whose newest record is for
// its current generation comes back Stable, so members keep heartbeating with
// their member id and generation and static members keep their slot.

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/klite/klite/internal/bin"
)

// classicRecordVersion is the layout version of a recClassic body (part of
// the on-disk format).
const classicRecordVersion = 1

// storedClassic is a classic group's state as of a completed generation.
type storedClassic struct {
	protocolType string
	generation   int32
	protocol     string
	leader       string
	members      []storedMember // empty: the generation ended with no members
}

type storedMember struct {
	id, instanceID       string
	clientID, clientHost string
	session, rebalance   time.Duration
	subscription         []byte // metadata for the chosen protocol
	assignment           []byte
}

func classicRecord(group string, s *storedClassic) []byte {
	var e enc
	e.u8(recClassic)
	e.str(group)
	e.u8(classicRecordVersion)
	e.str(s.protocolType)
	e.i32(s.generation)
	e.str(s.protocol)
	e.str(s.leader)
	e.u32(uint32(len(s.members)))
	for _, m := range s.members {
		e.str(m.id)
		e.str(m.instanceID)
		e.str(m.clientID)
		e.str(m.clientHost)
		e.i32(int32(m.session.Milliseconds()))
		e.i32(int32(m.rebalance.Milliseconds()))
		e.lstr(string(m.subscription))
		e.lstr(string(m.assignment))
	}
	return e.record()
}

func decodeClassic(d *bin.Reader) (*storedClassic, error) {
	if v := d.U8(); v != classicRecordVersion && !d.Bad {
		return nil, errors.New("group: unknown classic record version")
	}
	s := &storedClassic{protocolType: d.Str(), generation: d.I32(), protocol: d.Str(), leader: d.Str()}
	n := d.U32()
	if int(n) > len(d.B)/minMemberBytes {
		return nil, errors.New("group: bad count")
	}
	s.members = make([]storedMember, 0, n)
	for i := uint32(0); i < n && !d.Bad; i++ {
		m := storedMember{id: d.Str(), instanceID: d.Str(), clientID: d.Str(), clientHost: d.Str()}
		m.session = time.Duration(d.I32()) * time.Millisecond
		m.rebalance = time.Duration(d.I32()) * time.Millisecond
		m.subscription = []byte(d.LStr())
		m.assignment = []byte(d.LStr())
		s.members = append(s.members, m)
	}
	return s, nil
}

func applyClassic(group string, s *storedClassic) func(*logState) {
	return func(state *logState) {
		g := stored(state, group)
		g.protocolType, g.generation = s.protocolType, s.generation
		g.classic = s
		if len(s.members) == 0 {
			g.classic = nil
		}
	}
}

// snapshotClassic is the group's state to log once the leader's assignment
// is in; loop only.
func (g *group) snapshotClassic(assign map[string][]byte) *storedClassic {
	s := &storedClassic{protocolType: g.protocolType, generation: g.generation, protocol: g.protocol, leader: g.leader}
	for _, m := range g.members {
		s.members = append(s.members, storedMember{
			id: m.id, instanceID: m.instanceID, clientID: m.clientID, clientHost: m.clientHost,
			session: m.session, rebalance: m.rebalance,
			subscription: m.metadata(g.protocol), assignment: assign[m.id],
		})
	}
	return s
}

// fitsGroupRecord reports whether a joining member could be stored in its
// group's generation record: its strings within the log's u16 lengths and
// its largest protocol metadata, with a member's fixed fields, within
// MaxGroupMetadataBytes. Loop only.
func (c *Coordinator) fitsGroupRecord(a joinArgs) bool {
	const memberFixedBytes = 4*2 + 2*4 + 2*4 // strings' lengths, timeouts, byte strings' lengths
	strs := []string{a.ptype, a.instanceID, a.clientID, a.clientHost}
	for _, s := range strs {
		if len(s) > maxLoggedString {
			return false
		}
	}
	largest := 0
	for _, p := range a.protos {
		if len(p.name) > maxLoggedString {
			return false
		}
		largest = max(largest, len(p.metadata)+len(p.name))
	}
	size := recHeaderBytes + 1 + 2 + len(a.group) + 1 + 2 + len(a.ptype) + 4 + 2 + 2 + 4 + // record, group, generation, protocol, leader
		memberFixedBytes + 2*maxMemberIDBytes(a.clientID) + len(a.instanceID) + len(a.clientID) + len(a.clientHost) + largest
	return size <= c.cfg.MaxGroupMetadataBytes
}

// maxMemberIDBytes is the longest member id newMemberID makes for clientID.
func maxMemberIDBytes(clientID string) int { return len(clientID) + 1 + 36 }

// storeClassic logs s and runs then on the loop once the record is durable
// (err nil) or has failed. A generation over MaxGroupMetadataBytes fails
// with ErrRecordTooLarge, unwritten.
func (c *Coordinator) storeClassic(name string, s *storedClassic, then func(err error)) {
	rec := classicRecord(name, s)
	if rec == nil || len(rec) > c.cfg.MaxGroupMetadataBytes {
		if then != nil {
			then(ErrRecordTooLarge)
		}
		return
	}
	c.offs.submit(&logOp{
		rec:   rec,
		apply: applyClassic(name, s),
		done: func(err error) {
			if then != nil {
				c.submit(func() { then(err) })
			}
		},
	})
}

// completeSync is the leader's SyncGroup of a completing generation: log the
// assignment, then (as Kafka does after its group metadata append) hand it
// out and become Stable. A failed append fails the syncs and rebalances,
// with Kafka's codes: UNKNOWN_SERVER_ERROR for a generation too large to
// store (Kafka's MESSAGE_TOO_LARGE append), COORDINATOR_NOT_AVAILABLE for a
// failed write.
func (c *Coordinator) completeSync(g *group, assign map[string][]byte) {
	gen := g.generation
	c.storeClassic(g.name, g.snapshotClassic(assign), func(err error) {
		if g.state != stateCompleting || g.generation != gen || c.groups[g.name] != g {
			return // superseded: a rebalance or another sync got there first
		}
		if err != nil {
			code := kerr.CoordinatorNotAvailable.Code
			if errors.Is(err, ErrRecordTooLarge) {
				code = kerr.UnknownServerError.Code
				c.warn.Warn().Str("group", g.name).Int("limit", c.cfg.MaxGroupMetadataBytes).
					Msg("group: SyncGroup refused: the generation's metadata and assignments are over the group metadata limit")
			} else {
				c.warn.Error().Err(err).Str("group", g.name).Msg("group: storing the assignment failed")
			}
			c.propagateSyncError(g, code)
			c.prepareRebalance(g)
			c.tryCompleteJoin(g)
			return
		}
		for mid, mm := range g.members {
			mm.assignment = assign[mid] // members the leader left out get nothing
		}
		g.transition(stateStable)
		for _, mm := range g.members {
			if mm.sync != nil {
				mm.sync(syncResult{assignment: mm.assignment})
				mm.sync = nil
			}
		}
		if len(g.pendingSync) == 0 && g.syncT != nil {
			c.cancel(g.syncT)
		}
	})
}

// restoreClassic brings a group back Stable from its logged generation; each
// member's session starts now, so members that do not come back expire.
func (c *Coordinator) restoreClassic(g *group, s *storedClassic, now time.Time) {
	g.protocolType, g.generation, g.protocol = s.protocolType, s.generation, s.protocol
	for _, sm := range s.members {
		m := &member{
			id: sm.id, instanceID: sm.instanceID, clientID: sm.clientID, clientHost: sm.clientHost,
			session: sm.session, rebalance: sm.rebalance, ptype: s.protocolType,
			protocols:  []protocol{{name: s.protocol, metadata: sm.subscription}},
			assignment: sm.assignment,
		}
		m.hb = newTimer(func() { c.expireMember(g, m) })
		g.add(m)
		c.schedule(m.hb, now.Add(m.session))
	}
	if g.members[s.leader] != nil {
		g.leader = s.leader
	}
	g.transition(stateStable)
}
