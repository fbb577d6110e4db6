package kafka

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/acl"
	"github.com/klite/klite/group"
	"github.com/klite/klite/storage"
	"github.com/klite/klite/txn"
)

// markerLog is the transaction coordinator's log in handler tests: ids
// from the harness's store, markers recorded.
type markerLog struct {
	st      **fakeStore
	mu      sync.Mutex
	markers []string // "topic/partition commit|abort"
}

func (l *markerLog) InitProducerID() (int64, int16, error) { return (*l.st).InitProducerID() }

func (l *markerLog) WriteTxnMarker(topic string, partition int32, _ int64, _ int16, commit bool, _ int32, done func(storage.AppendResult)) {
	l.mu.Lock()
	l.markers = append(l.markers, topic+"/"+string(rune('0'+partition))+" "+map[bool]string{true: "commit", false: "abort"}[commit])
	l.mu.Unlock()
	done(storage.AppendResult{})
}

// withTxns wires a real transaction coordinator, keeping its state in the
// harness's group coordinator (withGroups must come first).
func withTxns(t *testing.T, st **fakeStore, lg *markerLog) func(*Config) {
	return func(cfg *Config) {
		lg.st = st
		c, err := txn.Open(txn.Config{Log: lg, Store: cfg.Groups.(*group.Coordinator), Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cfg.Txns = c
	}
}

// authzOwnTests are APIs whose ACL checks have their own test, not a case
// of TestAuthzEveryAPI: ListTransactions leaves out the ids a principal may
// not describe (TestListTransactionsACL).
var authzOwnTests = []int16{listTransactionsKey}

func txnAuthzCases() []authzAPICase {
	txnW := []acl.Binding{allowACL(acl.ResourceTransactionalID, "tx", acl.OpWrite)}
	return []authzAPICase{
		{name: "FindCoordinator DESCRIBE transactional id", key: 10, want: txnAuthFailed,
			grant: []acl.Binding{allowACL(acl.ResourceTransactionalID, "tx", acl.OpDescribe)},
			req: func() kmsg.Request {
				r := kmsg.NewPtrFindCoordinatorRequest()
				r.Version, r.CoordinatorType, r.CoordinatorKey = 3, 1, "tx"
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.FindCoordinatorResponse).ErrorCode }},
		{name: "InitProducerId WRITE transactional id", key: 22, want: txnAuthFailed, grant: txnW,
			req: func() kmsg.Request {
				r := kmsg.NewPtrInitProducerIDRequest()
				r.Version, r.TransactionalID, r.TransactionTimeoutMillis = 4, strPtr("tx"), 1000
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode }},
		{name: "AddPartitionsToTxn WRITE transactional id", key: 24, want: txnAuthFailed, grant: txnW,
			pre: []acl.Binding{allowACL(acl.ResourceTopic, "t", acl.OpWrite)},
			req: func() kmsg.Request { return addPartitionsReq("tx", 1, 0, "t", 0) },
			code: func(r kmsg.Response) int16 {
				return r.(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode
			}},
		{name: "AddPartitionsToTxn WRITE topic", key: 24, want: topicAuthFailed, pre: txnW,
			grant: []acl.Binding{allowACL(acl.ResourceTopic, "t", acl.OpWrite)},
			req:   func() kmsg.Request { return addPartitionsReq("tx", 1, 0, "t", 0) },
			code: func(r kmsg.Response) int16 {
				return r.(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode
			}},
		{name: "AddPartitionsToTxn v4 CLUSTER_ACTION", key: 24, want: clusterAuthFailed,
			grant: []acl.Binding{allowACL(acl.ResourceCluster, acl.ClusterName, acl.OpClusterAction)},
			req: func() kmsg.Request {
				r := kmsg.NewPtrAddPartitionsToTxnRequest()
				r.Version = 4
				return r
			},
			code: func(r kmsg.Response) int16 { return r.(*kmsg.AddPartitionsToTxnResponse).ErrorCode }},
		{name: "AddOffsetsToTxn WRITE transactional id", key: 25, want: txnAuthFailed, grant: txnW,
			pre:  []acl.Binding{allowACL(acl.ResourceGroup, "g", acl.OpRead)},
			req:  func() kmsg.Request { return addOffsetsReq("tx", 1, 0, "g") },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode }},
		{name: "AddOffsetsToTxn READ group", key: 25, want: groupAuthFailed, pre: txnW,
			grant: []acl.Binding{allowACL(acl.ResourceGroup, "g", acl.OpRead)},
			req:   func() kmsg.Request { return addOffsetsReq("tx", 1, 0, "g") },
			code:  func(r kmsg.Response) int16 { return r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode }},
		{name: "DescribeTransactions DESCRIBE transactional id", key: 65, want: txnAuthFailed,
			grant: []acl.Binding{allowACL(acl.ResourceTransactionalID, "tx", acl.OpDescribe)},
			req: func() kmsg.Request {
				r := kmsg.NewPtrDescribeTransactionsRequest()
				r.TransactionalIDs = []string{"tx"}
				return r
			},
			code: func(r kmsg.Response) int16 {
				return r.(*kmsg.DescribeTransactionsResponse).TransactionStates[0].ErrorCode
			}},
		{name: "DescribeProducers READ topic", key: 61, want: topicAuthFailed,
			grant: []acl.Binding{allowACL(acl.ResourceTopic, "t", acl.OpRead)},
			req:   func() kmsg.Request { return describeProducersReq("t", 0) },
			code: func(r kmsg.Response) int16 {
				return r.(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0].ErrorCode
			}},
		{name: "EndTxn WRITE transactional id", key: 26, want: txnAuthFailed, grant: txnW,
			req:  func() kmsg.Request { return endTxnReq("tx", 1, 0, true, 3) },
			code: func(r kmsg.Response) int16 { return r.(*kmsg.EndTxnResponse).ErrorCode }},
		{name: "TxnOffsetCommit WRITE transactional id", key: 28, want: txnAuthFailed, grant: txnW,
			pre: []acl.Binding{allowACL(acl.ResourceGroup, "g", acl.OpRead), allowACL(acl.ResourceTopic, "t", acl.OpRead)},
			req: func() kmsg.Request { return txnCommitReq("tx", 1, 0, "g", 5) },
			code: func(r kmsg.Response) int16 {
				return r.(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
			}},
		{name: "TxnOffsetCommit READ group", key: 28, want: groupAuthFailed, pre: append(txnW, allowACL(acl.ResourceTopic, "t", acl.OpRead)),
			grant: []acl.Binding{allowACL(acl.ResourceGroup, "g", acl.OpRead)},
			req:   func() kmsg.Request { return txnCommitReq("tx", 1, 0, "g", 5) },
			code: func(r kmsg.Response) int16 {
				return r.(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
			}},
	}
}

func addPartitionsReq(id string, pid int64, epoch int16, topic string, parts ...int32) *kmsg.AddPartitionsToTxnRequest {
	r := kmsg.NewPtrAddPartitionsToTxnRequest()
	r.Version, r.TransactionalID, r.ProducerID, r.ProducerEpoch = 3, id, pid, epoch
	t := kmsg.NewAddPartitionsToTxnRequestTopic()
	t.Topic, t.Partitions = topic, parts
	r.Topics = append(r.Topics, t)
	return r
}

func addOffsetsReq(id string, pid int64, epoch int16, group string) *kmsg.AddOffsetsToTxnRequest {
	r := kmsg.NewPtrAddOffsetsToTxnRequest()
	r.Version, r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Group = 3, id, pid, epoch, group
	return r
}

func endTxnReq(id string, pid int64, epoch int16, commit bool, v int16) *kmsg.EndTxnRequest {
	r := kmsg.NewPtrEndTxnRequest()
	r.Version, r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = v, id, pid, epoch, commit
	return r
}

func txnCommitReq(id string, pid int64, epoch int16, group string, off int64) *kmsg.TxnOffsetCommitRequest {
	r := kmsg.NewPtrTxnOffsetCommitRequest()
	r.Version, r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Group = 3, id, pid, epoch, group
	r.Generation = -1
	t := kmsg.NewTxnOffsetCommitRequestTopic()
	t.Topic = "t"
	p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset = 0, off
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	return r
}

// A transaction through the handlers: FindCoordinator finds this broker,
// InitProducerId gives an id, partitions and a group join, the offset stays
// pending (UNSTABLE_OFFSET_COMMIT with require_stable) until EndTxn, whose
// markers reach every partition.
func TestTransactionAPIs(t *testing.T) {
	var st *fakeStore
	lg := &markerLog{}
	hs := newHarness(t, withGroups(t, &st), withTxns(t, &st, lg))
	st = hs.st
	hs.createTopic("t", 3, nil)

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorType, fc.CoordinatorKeys = 4, 1, []string{"tx"}
	if r := roundTrip[*kmsg.FindCoordinatorResponse](hs, fc); r.Coordinators[0].ErrorCode != 0 || r.Coordinators[0].NodeID != 1 {
		t.Fatalf("find coordinator: %+v", r.Coordinators)
	}
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.Version, ip.TransactionalID, ip.TransactionTimeoutMillis = 4, strPtr("tx"), 60000
	init := roundTrip[*kmsg.InitProducerIDResponse](hs, ip)
	if init.ErrorCode != 0 || init.ProducerEpoch != 0 {
		t.Fatalf("init: %+v", init)
	}
	ip.TransactionTimeoutMillis = int32(txn.DefaultMaxTimeout.Milliseconds()) + 1
	if r := roundTrip[*kmsg.InitProducerIDResponse](hs, ip); r.ErrorCode != kerr.InvalidTransactionTimeout.Code {
		t.Fatalf("timeout over max: %d", r.ErrorCode)
	}
	pid, epoch := init.ProducerID, init.ProducerEpoch

	// One unknown partition: nothing is added.
	ap := roundTrip[*kmsg.AddPartitionsToTxnResponse](hs, addPartitionsReq("tx", pid, epoch, "t", 0, 7))
	if c := ap.Topics[0].Partitions; c[0].ErrorCode != kerr.OperationNotAttempted.Code || c[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("add with unknown partition: %+v", c)
	}
	ap = roundTrip[*kmsg.AddPartitionsToTxnResponse](hs, addPartitionsReq("tx", pid, epoch, "t", 0, 1))
	if c := ap.Topics[0].Partitions; c[0].ErrorCode != 0 || c[1].ErrorCode != 0 {
		t.Fatalf("add: %+v", c)
	}
	old := addPartitionsReq("tx", pid, epoch-1, "t", 2)
	old.Version = 1
	if c := roundTrip[*kmsg.AddPartitionsToTxnResponse](hs, old).Topics[0].Partitions[0].ErrorCode; c != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("v1 fenced: %d", c)
	}
	// Verify-only (v4): in the transaction or not.
	vr := kmsg.NewPtrAddPartitionsToTxnRequest()
	vr.Version = 4
	vt := kmsg.NewAddPartitionsToTxnRequestTransaction()
	vt.TransactionalID, vt.ProducerID, vt.ProducerEpoch, vt.VerifyOnly = "tx", pid, epoch, true
	vt.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "t", Partitions: []int32{1, 2}}}
	vr.Transactions = append(vr.Transactions, vt)
	if c := roundTrip[*kmsg.AddPartitionsToTxnResponse](hs, vr).Transactions[0].Topics[0].Partitions; c[0].ErrorCode != 0 || c[1].ErrorCode != kerr.InvalidTxnState.Code {
		t.Fatalf("verify only: %+v", c)
	}

	if c := roundTrip[*kmsg.TxnOffsetCommitResponse](hs, txnCommitReq("tx", pid, epoch, "g", 5)).Topics[0].Partitions[0].ErrorCode; c != kerr.InvalidTxnState.Code {
		t.Fatalf("offset commit before AddOffsetsToTxn: %d", c)
	}
	if c := roundTrip[*kmsg.AddOffsetsToTxnResponse](hs, addOffsetsReq("tx", pid, epoch, "g")).ErrorCode; c != 0 {
		t.Fatalf("add offsets: %d", c)
	}
	if c := roundTrip[*kmsg.TxnOffsetCommitResponse](hs, txnCommitReq("tx", pid, epoch, "g", 5)).Topics[0].Partitions[0].ErrorCode; c != 0 {
		t.Fatalf("offset commit: %d", c)
	}
	fetch := func() kmsg.OffsetFetchResponseTopicPartition {
		r := kmsg.NewPtrOffsetFetchRequest()
		r.Version, r.Group, r.RequireStable = 7, "g", true
		r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
		return roundTrip[*kmsg.OffsetFetchResponse](hs, r).Topics[0].Partitions[0]
	}
	if p := fetch(); p.ErrorCode != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("require_stable while pending: %+v", p)
	}
	et := roundTrip[*kmsg.EndTxnResponse](hs, endTxnReq("tx", pid, epoch, true, 5))
	if et.ErrorCode != 0 || et.ProducerID != pid || et.ProducerEpoch != epoch+1 {
		t.Fatalf("end v5: %+v", et)
	}
	deadline := time.Now().Add(waitFor)
	for p := fetch(); p.ErrorCode != 0 || p.Offset != 5; p = fetch() {
		if time.Now().After(deadline) {
			t.Fatalf("offset after commit: %+v", p)
		}
		time.Sleep(time.Millisecond)
	}
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if len(lg.markers) != 2 || lg.markers[0] != "t/0 commit" || lg.markers[1] != "t/1 commit" {
		t.Fatalf("markers %v", lg.markers)
	}
}

// DescribeTransactions and ListTransactions show the coordinator's state;
// ListTransactions filters by state, producer id and duration, names
// unknown state filters, and leaves out ids the principal may not
// DESCRIBE.
func TestListTransactionsACL(t *testing.T) {
	var st *fakeStore
	lg := &markerLog{}
	hs := newHarness(t, withGroups(t, &st), withTxns(t, &st, lg), func(cfg *Config) {
		cfg.Authorizer = acl.New(acl.Config{})
		cfg.ACLStore = &memACLStore{set: map[storage.ACL]bool{}}
	})
	st = hs.st
	hs.createTopic("t", 3, nil)
	hs.h.cfg.Authorizer.Add(allowACL(acl.ResourceTransactionalID, "a", acl.OpWrite), allowACL(acl.ResourceTransactionalID, "b", acl.OpWrite),
		allowACL(acl.ResourceTopic, "t", acl.OpWrite))
	pids := map[string]int64{}
	for _, id := range []string{"a", "b", "hidden"} {
		done := make(chan struct{})
		hs.h.cfg.Txns.InitProducerID(id, 60000, -1, -1, func(pid int64, _ int16, code int16) {
			if code != 0 {
				t.Errorf("init %s: %d", id, code)
			}
			pids[id] = pid
			close(done)
		})
		<-done
	}
	if c := roundTrip[*kmsg.AddPartitionsToTxnResponse](hs, addPartitionsReq("a", pids["a"], 0, "t", 1, 2)).Topics[0].Partitions[0].ErrorCode; c != 0 {
		t.Fatalf("add: %d", c)
	}
	list := func(v int16, states []string, pidFilter []int64, minMs int64) *kmsg.ListTransactionsResponse {
		r := kmsg.NewPtrListTransactionsRequest()
		r.Version, r.StateFilters, r.ProducerIDFilters, r.DurationFilterMillis = v, states, pidFilter, minMs
		return roundTrip[*kmsg.ListTransactionsResponse](hs, r)
	}
	ids := func(r *kmsg.ListTransactionsResponse) (out []string) {
		for _, s := range r.TransactionStates {
			out = append(out, s.TransactionalID+":"+s.TransactionState)
		}
		return out
	}
	if got := ids(list(0, nil, nil, -1)); len(got) != 2 || got[0] != "a:Ongoing" || got[1] != "b:Empty" {
		t.Fatalf("list: %v", got)
	}
	r := list(0, []string{"Ongoing", "Bogus"}, nil, -1)
	if got := ids(r); len(got) != 1 || got[0] != "a:Ongoing" || len(r.UnknownStateFilters) != 1 || r.UnknownStateFilters[0] != "Bogus" {
		t.Fatalf("state filter: %v %v", got, r.UnknownStateFilters)
	}
	if got := ids(list(0, nil, []int64{pids["b"]}, -1)); len(got) != 1 || got[0] != "b:Empty" {
		t.Fatalf("producer id filter: %v", got)
	}
	if got := ids(list(1, nil, nil, 3_600_000)); len(got) != 0 {
		t.Fatalf("duration filter: %v", got)
	}
	hs.h.cfg.Authorizer.Add(allowACL(acl.ResourceTransactionalID, "hidden", acl.OpDescribe))
	if got := ids(list(0, nil, nil, -1)); len(got) != 3 {
		t.Fatalf("list after DESCRIBE granted: %v", got)
	}
	// v2 (KIP-1152): the pattern must match the whole id; it ANDs with the
	// other filters; one that does not compile or is too long is refused.
	byPattern := func(v int16, pat *string, states ...string) *kmsg.ListTransactionsResponse {
		r := kmsg.NewPtrListTransactionsRequest()
		r.Version, r.TransactionalIDPattern, r.StateFilters = v, pat, states
		return roundTrip[*kmsg.ListTransactionsResponse](hs, r)
	}
	for _, c := range []struct {
		v     int16
		pat   *string
		state []string
		want  string
	}{
		{v: 2, pat: strPtr("a|hid.*"), want: "[a:Ongoing hidden:Empty]"},
		{v: 2, pat: strPtr("hid"), want: "[]"},
		{v: 2, pat: strPtr(".*"), state: []string{"Empty"}, want: "[b:Empty hidden:Empty]"},
		{v: 2, pat: strPtr(""), want: "[a:Ongoing b:Empty hidden:Empty]"},
		{v: 2, pat: nil, want: "[a:Ongoing b:Empty hidden:Empty]"},
		{v: 1, pat: strPtr("nothing"), want: "[a:Ongoing b:Empty hidden:Empty]"}, // not on the wire before v2
	} {
		r := byPattern(c.v, c.pat, c.state...)
		if got := fmt.Sprint(ids(r)); r.ErrorCode != 0 || got != c.want {
			t.Fatalf("v%d pattern %v: %v (error %d), want %s", c.v, c.pat, got, r.ErrorCode, c.want)
		}
	}
	long := strings.Repeat("a", DefaultMaxTxnPatternBytes+1)
	for _, pat := range []string{"(", "a{2000}{2000}", long} {
		if r := byPattern(2, &pat); r.ErrorCode != kerr.InvalidRegularExpression.Code || len(r.TransactionStates) != 0 {
			t.Fatalf("pattern %.20q: error %d, %d listed", pat, r.ErrorCode, len(r.TransactionStates))
		}
	}
	d := kmsg.NewPtrDescribeTransactionsRequest()
	d.TransactionalIDs = []string{"a", "nope"}
	hs.h.cfg.Authorizer.Add(allowACL(acl.ResourceTransactionalID, "nope", acl.OpDescribe))
	dr := roundTrip[*kmsg.DescribeTransactionsResponse](hs, d)
	a := dr.TransactionStates[0]
	if a.ErrorCode != 0 || a.State != "Ongoing" || a.ProducerID != pids["a"] || a.TimeoutMillis != 60000 || a.StartTimestamp <= 0 ||
		len(a.Topics) != 1 || len(a.Topics[0].Partitions) != 2 {
		t.Fatalf("describe a: %+v", a)
	}
	if dr.TransactionStates[1].ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("describe unknown: %+v", dr.TransactionStates[1])
	}
}
