package main

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Without -authorizer the ACL APIs answer SECURITY_DISABLED, as Kafka does.
func TestACLsSecurityDisabled(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, 30*time.Second)
	res, err := adm.CreateACLs(ctx, kadm.NewACLs().Topics("t").Allow("User:a").Operations(kadm.OpRead))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !errors.Is(res[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("CreateACLs without -authorizer: %+v, want SECURITY_DISABLED", res)
	}
	desc, err := adm.DescribeACLs(ctx, kadm.NewACLs().AnyResource().Allow().AllowHosts().Deny().DenyHosts().Operations())
	if err != nil || len(desc) != 1 || !errors.Is(desc[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("DescribeACLs without -authorizer: %+v, %v, want SECURITY_DISABLED", desc, err)
	}
}

// ACLs created through kadm and sarama are described and deleted with
// filters, and are back after kill -9 and a restart.
func TestACLsDurableWithClients(t *testing.T) {
	b := startBroker(t, "-authorizer", "-super-users", "User:ANONYMOUS")
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)

	create := func(builder *kadm.ACLBuilder) {
		t.Helper()
		res, err := adm.CreateACLs(ctx, builder)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("create %s %s on %s: %v %s", r.Principal, r.Operation, r.Name, r.Err, r.ErrMessage)
			}
		}
	}
	create(kadm.NewACLs().Topics("orders", "payments").Allow("User:alice").Operations(kadm.OpRead, kadm.OpWrite))
	create(kadm.NewACLs().Topics("team.").ResourcePatternType(kadm.ACLPatternPrefixed).Allow("User:bob").Operations(kadm.OpAll))
	create(kadm.NewACLs().Groups("g1").Deny("User:eve").DenyHosts("10.1.2.3").Operations(kadm.OpRead))

	// sarama's ClusterAdmin (older request versions) creates one more.
	sc, err := sarama.NewClient([]string{b.addr}, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sadm, err := sarama.NewClusterAdminFromClient(sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := sadm.CreateACLs([]*sarama.ResourceAcls{{
		Resource: sarama.Resource{ResourceType: sarama.AclResourceCluster, ResourceName: "kafka-cluster", ResourcePatternType: sarama.AclPatternLiteral},
		Acls:     []*sarama.Acl{{Principal: "User:ops", Host: "*", Operation: sarama.AclOperationDescribe, PermissionType: sarama.AclPermissionAllow}},
	}}); err != nil {
		t.Fatalf("sarama CreateACLs: %v", err)
	}
	const total = 4 + 1 + 1 + 1

	count := func(builder *kadm.ACLBuilder) int {
		t.Helper()
		res, err := adm.DescribeACLs(ctx, builder)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("describe: %v", r.Err)
			}
			n += len(r.Described)
		}
		return n
	}
	all := func() *kadm.ACLBuilder {
		return kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Allow().AllowHosts().Deny().DenyHosts().Operations()
	}
	check := func(when string) {
		t.Helper()
		if n := count(all()); n != total {
			t.Fatalf("%s: %d ACLs, want %d", when, n, total)
		}
		if n := count(kadm.NewACLs().Topics("team.orders").ResourcePatternType(kadm.ACLPatternMatch).Allow().AllowHosts().Deny().DenyHosts().Operations()); n != 1 {
			t.Fatalf("%s: MATCH team.orders: %d ACLs, want 1", when, n)
		}
		if n := count(kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Allow("User:alice").AllowHosts().Operations()); n != 4 {
			t.Fatalf("%s: alice: %d ACLs, want 4", when, n)
		}
		list, err := sadm.ListAcls(sarama.AclFilter{ResourceType: sarama.AclResourceAny, ResourcePatternTypeFilter: sarama.AclPatternAny,
			Operation: sarama.AclOperationAny, PermissionType: sarama.AclPermissionAny})
		if err != nil {
			t.Fatalf("%s: sarama ListAcls: %v", when, err)
		}
		n := 0
		for _, r := range list {
			n += len(r.Acls)
		}
		if n != total {
			t.Fatalf("%s: sarama lists %d ACLs, want %d", when, n, total)
		}
	}
	check("after create")

	b.kill9()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	check("after kill -9 and restart")

	// Delete alice's WRITE ACLs with kadm and the group one with sarama.
	del, err := adm.DeleteACLs(ctx, kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Allow("User:alice").AllowHosts().Operations(kadm.OpWrite))
	if err != nil {
		t.Fatal(err)
	}
	if len(del) != 1 || del[0].Err != nil || len(del[0].Deleted) != 2 {
		t.Fatalf("delete alice WRITE: %+v", del)
	}
	sc2, err := sarama.NewClient([]string{b.addr}, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer sc2.Close()
	sadm, err = sarama.NewClusterAdminFromClient(sc2)
	if err != nil {
		t.Fatal(err)
	}
	g := "g1"
	matched, err := sadm.DeleteACL(sarama.AclFilter{ResourceType: sarama.AclResourceGroup, ResourceName: &g, ResourcePatternTypeFilter: sarama.AclPatternLiteral,
		Operation: sarama.AclOperationAny, PermissionType: sarama.AclPermissionAny}, false)
	if err != nil || len(matched) != 1 {
		t.Fatalf("sarama DeleteACL g1: %d matched, %v", len(matched), err)
	}
	if n := count(all()); n != total-3 {
		t.Fatalf("after deletes: %d ACLs, want %d", n, total-3)
	}

	b.kill9()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	if n := count(all()); n != total-3 {
		t.Fatalf("after deletes, kill -9 and restart: %d ACLs, want %d", n, total-3)
	}
}

// A real client is refused (TOPIC_AUTHORIZATION_FAILED) on a topic that has
// ACLs for someone else, and allowed once CreateAcls grants its principal
// WRITE and READ. -allow-everyone-if-no-acl keeps the cluster (no ACLs) open,
// so the same anonymous client may create topics and ACLs. The grants
// survive a restart.
func TestACLsEnforcedFranz(t *testing.T) {
	b := startBroker(t, "-authorizer", "-allow-everyone-if-no-acl")
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)
	const topic = "secret"
	createTopic(t, adm, topic, 1)
	grant := func(builder *kadm.ACLBuilder) {
		t.Helper()
		res, err := adm.CreateACLs(ctx, builder)
		if err != nil || len(res) == 0 || res[0].Err != nil {
			t.Fatalf("CreateACLs: %v %+v", err, res)
		}
	}
	grant(kadm.NewACLs().Topics(topic).Allow("User:alice").Operations(kadm.OpAll))

	produce := func() error {
		cl := newFranz(t, b.addr, kgo.RecordRetries(1), kgo.RecordDeliveryTimeout(10*time.Second))
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
	}
	if err := produce(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce without an ACL: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	grant(kadm.NewACLs().Topics(topic).Allow("User:ANONYMOUS").Operations(kadm.OpWrite))
	if err := produce(); err != nil {
		t.Fatalf("produce after CreateAcls granted WRITE: %v", err)
	}

	consume := func() error {
		cl := newFranz(t, b.addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		for {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				return err
			}
			for _, e := range fs.Errors() {
				return e.Err
			}
			if fs.NumRecords() > 0 {
				return nil
			}
		}
	}
	if err := consume(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("consume without READ: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	grant(kadm.NewACLs().Topics(topic).Allow("User:ANONYMOUS").Operations(kadm.OpRead))
	if err := consume(); err != nil {
		t.Fatalf("consume after CreateAcls granted READ: %v", err)
	}

	b.kill9()
	b.restart()
	if err := produce(); err != nil {
		t.Fatalf("produce after restart: %v", err)
	}
	// Deleting the grant refuses again.
	if _, err := kadm.NewClient(newFranz(t, b.addr)).DeleteACLs(ctx, kadm.NewACLs().Topics(topic).Allow("User:ANONYMOUS").AllowHosts().Operations(kadm.OpWrite)); err != nil {
		t.Fatal(err)
	}
	if err := produce(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce after DeleteAcls: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}

// ACLs are in the bucket's metadata snapshot: a broker restored from the
// bucket onto an empty -wal directory (disaster recovery) enforces them.
func TestACLsDisasterRecovery(t *testing.T) {
	endpoint := startS3(t)
	b := startBroker(t, tierFlags(endpoint, "-authorizer", "-super-users", "User:ANONYMOUS")...)
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, 2*time.Minute)
	createTopic(t, adm, "dr-acl", 1)
	res, err := adm.CreateACLs(ctx, kadm.NewACLs().Topics("dr-acl").ResourcePatternType(kadm.ACLPatternPrefixed).
		Allow("User:alice").Deny("User:eve").Operations(kadm.OpRead, kadm.OpWrite))
	if err != nil || len(res) != 4 {
		t.Fatalf("CreateACLs: %v %+v", err, res)
	}
	b.stop() // the final snapshot
	if err := os.RemoveAll(b.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b.restart()
	if !b.log.contains("restored from the bucket") {
		t.Fatal("no restore logged")
	}
	adm = kadm.NewClient(newFranz(t, b.addr))
	desc, err := adm.DescribeACLs(ctx, kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Allow().AllowHosts().Deny().DenyHosts().Operations())
	if err != nil || len(desc) != 1 || desc[0].Err != nil || len(desc[0].Described) != 4 {
		t.Fatalf("ACLs after the restore: %v %+v", err, desc)
	}
	b.stop()
}

// connCounter counts a kgo client's connections opened and closed.
type connCounter struct{ opened, closed atomic.Int64 }

func (c *connCounter) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		c.opened.Add(1)
	}
}

func (c *connCounter) OnBrokerDisconnect(kgo.BrokerMetadata, net.Conn) { c.closed.Add(1) }

// TestACLChangesOnOneConnectionFranz: the broker caches ACL decisions per
// connection; a franz-go producer that keeps its connections sees WRITE
// refused, granted by CreateAcls, refused again after DeleteAcls, granted
// again and then refused by a DENY, each on its next produce, and the
// client never reconnects in between.
func TestACLChangesOnOneConnectionFranz(t *testing.T) {
	b := startBroker(t, "-authorizer", "-allow-everyone-if-no-acl")
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)
	const topic = "cached"
	createTopic(t, adm, topic, 1)
	change := func(create bool, builder *kadm.ACLBuilder) {
		t.Helper()
		if create {
			res, err := adm.CreateACLs(ctx, builder)
			if err != nil || len(res) != 1 || res[0].Err != nil {
				t.Fatalf("CreateACLs: %v %+v", err, res)
			}
			return
		}
		res, err := adm.DeleteACLs(ctx, builder)
		if err != nil || len(res) != 1 || res[0].Err != nil || len(res[0].Deleted) != 1 {
			t.Fatalf("DeleteACLs: %v %+v", err, res)
		}
	}
	// Some ACL on the topic (so it is not open to all), and DESCRIBE for
	// the producer, so it learns the partitions and sends the produce.
	change(true, kadm.NewACLs().Topics(topic).Allow("User:alice").Operations(kadm.OpAll))
	change(true, kadm.NewACLs().Topics(topic).Allow("User:ANONYMOUS").Operations(kadm.OpDescribe))
	write := func() *kadm.ACLBuilder {
		return kadm.NewACLs().Topics(topic).Allow("User:ANONYMOUS").AllowHosts("*").Operations(kadm.OpWrite)
	}
	denyWrite := kadm.NewACLs().Topics(topic).Deny("User:ANONYMOUS").DenyHosts("*").Operations(kadm.OpWrite)

	conns := &connCounter{}
	cl := newFranz(t, b.addr, kgo.WithHooks(conns), kgo.RecordRetries(1), kgo.RecordDeliveryTimeout(10*time.Second))
	produce := func() error { return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr() }
	expect := func(step string, allowed bool) {
		t.Helper()
		for i := 0; i < 2; i++ { // the second answered from the broker's cache
			err := produce()
			if allowed && err != nil || !allowed && !errors.Is(err, kerr.TopicAuthorizationFailed) {
				t.Fatalf("%s: produce %d: %v, want allowed %v", step, i, err, allowed)
			}
		}
	}
	expect("without WRITE", false)
	opened := conns.opened.Load()
	change(true, write())
	expect("after CreateAcls granted WRITE", true)
	change(false, write())
	expect("after DeleteAcls took WRITE back", false)
	change(true, write())
	expect("after WRITE was granted again", true)
	change(true, denyWrite)
	expect("after a DENY of WRITE", false)
	if n, c := conns.opened.Load(), conns.closed.Load(); n != opened || c != 0 {
		t.Fatalf("the producer reconnected: %d connections opened (%d after the first produce), %d closed", n, opened, c)
	}
}
