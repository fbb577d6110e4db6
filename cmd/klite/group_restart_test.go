package main

// Classic group membership survives a broker crash: after kill -9 and a
// restart the members keep their member ids and generation and go on
// consuming without a rebalance (Kafka reloads group metadata from
// __consumer_offsets; klite from its offsets log).

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

func TestGroupMembershipSurvivesKill9(t *testing.T) {
	b := startBroker(t, cgFlags...)
	adm := kadm.NewClient(newFranz(t, b.addr))
	const topic, group = "gr", "gr-group"
	createTopic(t, adm, topic, cgParts)
	produceCGRecords(t, b.addr, topic, 0, 600)
	s := newCGSeen()
	c1, _ := cgFranzMember(t, b.addr, group, topic, s)
	c2, _ := cgFranzMember(t, b.addr, group, topic, s)
	waitCGSeen(t, s, 600)

	type meta struct {
		id  string
		gen int32
	}
	metas := func() [2]meta {
		id1, g1 := c1.GroupMetadata()
		id2, g2 := c2.GroupMetadata()
		return [2]meta{{id1, g1}, {id2, g2}}
	}
	stable := func(a *kadm.Client) bool {
		ctx := testContext(t, 10*time.Second)
		d, err := a.DescribeGroups(ctx, group)
		if err != nil || d[group].State != "Stable" || len(d[group].Members) != 2 {
			return false
		}
		m := metas()
		ids := map[string]bool{}
		for _, dm := range d[group].Members {
			ids[dm.MemberID] = true
		}
		return ids[m[0].id] && ids[m[1].id] && m[0].gen == m[1].gen && m[0].gen > 0
	}
	waitFor(t, cgWait, "a stable group of two", func() bool { return stable(adm) })
	before := metas()

	b.kill9()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	produceCGRecords(t, b.addr, topic, 600, 600)
	waitCGSeen(t, s, 1200)
	waitFor(t, cgWait, "the group stable after the restart", func() bool { return stable(adm) })
	if after := metas(); after != before {
		t.Errorf("members changed across the restart: before %+v, after %+v", before, after)
	}
	s.mu.Lock()
	for k := range s.owners {
		if int32(k[0]) > before[0].gen {
			t.Errorf("partition %d assigned in generation %d after the restart (was %d)", k[1], k[0], before[0].gen)
		}
	}
	s.mu.Unlock()
	s.check(t, 1200)
}
