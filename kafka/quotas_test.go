package kafka

import (
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/storage"
)

// memQuotaStore is an in-memory QuotaStore; fail makes changes fail.
type memQuotaStore struct {
	mu   sync.Mutex
	m    map[storage.QuotaEntity]map[string]float64
	sets int
	fail error
}

func (m *memQuotaStore) Quotas() []storage.Quota {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.Quota
	for e, v := range m.m {
		out = append(out, storage.Quota{Entity: e, Values: maps.Clone(v)})
	}
	return out
}

func (m *memQuotaStore) SetQuotas(qs []storage.Quota) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.sets++
	if m.m == nil {
		m.m = map[storage.QuotaEntity]map[string]float64{}
	}
	for _, q := range qs {
		if len(q.Values) == 0 {
			delete(m.m, q.Entity)
		} else {
			m.m[q.Entity] = maps.Clone(q.Values)
		}
	}
	return nil
}

// qc is a quota entity component for tests: "user=alice", "user" (the
// default) or "client-id=app".
type qc struct {
	typ  string
	name *string
}

func named(typ, name string) qc { return qc{typ, &name} }
func dflt(typ string) qc        { return qc{typ: typ} }

func alterEntry(ent []qc, ops ...kmsg.AlterClientQuotasRequestEntryOp) kmsg.AlterClientQuotasRequestEntry {
	e := kmsg.NewAlterClientQuotasRequestEntry()
	for _, c := range ent {
		ec := kmsg.NewAlterClientQuotasRequestEntryEntity()
		ec.Type, ec.Name = c.typ, c.name
		e.Entity = append(e.Entity, ec)
	}
	e.Ops = ops
	return e
}

func setOp(key string, v float64) kmsg.AlterClientQuotasRequestEntryOp {
	op := kmsg.NewAlterClientQuotasRequestEntryOp()
	op.Key, op.Value = key, v
	return op
}

func removeOp(key string) kmsg.AlterClientQuotasRequestEntryOp {
	op := kmsg.NewAlterClientQuotasRequestEntryOp()
	op.Key, op.Remove = key, true
	return op
}

func alterQuotas(hs *harness, validateOnly bool, entries ...kmsg.AlterClientQuotasRequestEntry) []int16 {
	hs.t.Helper()
	req := kmsg.NewPtrAlterClientQuotasRequest()
	req.Version, req.Entries, req.ValidateOnly = 1, entries, validateOnly
	resp := roundTrip[*kmsg.AlterClientQuotasResponse](hs, req)
	if len(resp.Entries) != len(entries) {
		hs.t.Fatalf("%d entries answered, want %d", len(resp.Entries), len(entries))
	}
	codes := make([]int16, len(entries))
	for i, e := range resp.Entries {
		codes[i] = e.ErrorCode
		if !reflect.DeepEqual(len(e.Entity), len(entries[i].Entity)) {
			hs.t.Fatalf("entry %d: entity not echoed", i)
		}
	}
	return codes
}

// describeQuotas answers the entities the filter matches, each as
// "user=alice,client-id=<default>: key=value ..." strings.
func describeQuotas(hs *harness, strict bool, comps ...kmsg.DescribeClientQuotasRequestComponent) (int16, []string) {
	hs.t.Helper()
	req := kmsg.NewPtrDescribeClientQuotasRequest()
	req.Version, req.Components, req.Strict = 1, comps, strict
	resp := roundTrip[*kmsg.DescribeClientQuotasResponse](hs, req)
	var out []string
	for _, e := range resp.Entries {
		s := ""
		for i, c := range e.Entity {
			if i > 0 {
				s += ","
			}
			name := "<default>"
			if c.Name != nil {
				name = *c.Name
			}
			s += c.Type + "=" + name
		}
		s += ":"
		for _, v := range e.Values {
			s += fmt.Sprintf(" %s=%g", v.Key, v.Value)
		}
		out = append(out, s)
	}
	return resp.ErrorCode, out
}

func comp(typ string, mt kmsg.QuotasMatchType, match *string) kmsg.DescribeClientQuotasRequestComponent {
	c := kmsg.NewDescribeClientQuotasRequestComponent()
	c.EntityType, c.MatchType, c.Match = typ, mt, match
	return c
}

func sp(s string) *string { return &s }

const (
	exact   = kmsg.QuotasMatchTypeExact
	deflt   = kmsg.QuotasMatchTypeDefault
	anyName = kmsg.QuotasMatchTypeAny
)

// Quotas set on every kind of entity are described by exact, default and
// any filters, strict or not, as Kafka matches them; a change is in the
// store before the answer and back in a new handler.
func TestClientQuotasAlterDescribe(t *testing.T) {
	store := &memQuotaStore{}
	hs := newHarness(t, func(c *Config) { c.QuotaStore = store })
	codes := alterQuotas(hs, false,
		alterEntry([]qc{named("user", "alice")}, setOp("producer_byte_rate", 1024)),
		alterEntry([]qc{dflt("user")}, setOp("consumer_byte_rate", 2048)),
		alterEntry([]qc{named("client-id", "app")}, setOp("request_percentage", 12.5)),
		alterEntry([]qc{dflt("client-id")}, setOp("producer_byte_rate", 1)),
		alterEntry([]qc{named("user", "alice"), named("client-id", "app")}, setOp("producer_byte_rate", 10), setOp("consumer_byte_rate", 20)),
		alterEntry([]qc{named("user", "bob"), dflt("client-id")}, setOp("consumer_byte_rate", 30)),
	)
	for i, c := range codes {
		if c != 0 {
			t.Fatalf("entry %d: error %v", i, kerr.ErrorForCode(c))
		}
	}
	if n := len(store.Quotas()); n != 6 {
		t.Fatalf("%d entities stored, want 6", n)
	}
	for _, tc := range []struct {
		name   string
		strict bool
		comps  []kmsg.DescribeClientQuotasRequestComponent
		want   []string
	}{
		{"all", false, nil, []string{
			"client-id=<default>: producer_byte_rate=1",
			"client-id=app: request_percentage=12.5",
			"user=<default>: consumer_byte_rate=2048",
			"user=alice: producer_byte_rate=1024",
			"user=alice,client-id=app: consumer_byte_rate=20 producer_byte_rate=10",
			"user=bob,client-id=<default>: consumer_byte_rate=30",
		}},
		{"strict empty", true, nil, nil},
		{"user alice", false, []kmsg.DescribeClientQuotasRequestComponent{comp("user", exact, sp("alice"))}, []string{
			"user=alice: producer_byte_rate=1024",
			"user=alice,client-id=app: consumer_byte_rate=20 producer_byte_rate=10",
		}},
		{"user alice strict", true, []kmsg.DescribeClientQuotasRequestComponent{comp("user", exact, sp("alice"))}, []string{
			"user=alice: producer_byte_rate=1024",
		}},
		{"user default", false, []kmsg.DescribeClientQuotasRequestComponent{comp("user", deflt, nil)}, []string{
			"user=<default>: consumer_byte_rate=2048",
		}},
		{"any user strict", true, []kmsg.DescribeClientQuotasRequestComponent{comp("user", anyName, nil)}, []string{
			"user=<default>: consumer_byte_rate=2048",
			"user=alice: producer_byte_rate=1024",
		}},
		{"any user any client", false, []kmsg.DescribeClientQuotasRequestComponent{comp("user", anyName, nil), comp("client-id", anyName, nil)}, []string{
			"user=alice,client-id=app: consumer_byte_rate=20 producer_byte_rate=10",
			"user=bob,client-id=<default>: consumer_byte_rate=30",
		}},
		{"client default", false, []kmsg.DescribeClientQuotasRequestComponent{comp("client-id", deflt, nil)}, []string{
			"client-id=<default>: producer_byte_rate=1",
			"user=bob,client-id=<default>: consumer_byte_rate=30",
		}},
		{"ip", false, []kmsg.DescribeClientQuotasRequestComponent{comp("ip", anyName, nil)}, nil},
		{"no such user", false, []kmsg.DescribeClientQuotasRequestComponent{comp("user", exact, sp("carol"))}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, got := describeQuotas(hs, tc.strict, tc.comps...)
			if code != 0 {
				t.Fatalf("error %v", kerr.ErrorForCode(code))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}

	// Remove one key, and all keys of another entity (it is gone).
	sets := store.sets
	codes = alterQuotas(hs, false,
		alterEntry([]qc{named("user", "alice"), named("client-id", "app")}, removeOp("producer_byte_rate")),
		alterEntry([]qc{dflt("client-id")}, removeOp("producer_byte_rate"), removeOp("consumer_byte_rate")),
	)
	if codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("removes: %v", codes)
	}
	if store.sets != sets+1 {
		t.Fatalf("%d store changes for one request, want 1", store.sets-sets)
	}
	want := []string{
		"client-id=app: request_percentage=12.5",
		"user=<default>: consumer_byte_rate=2048",
		"user=alice: producer_byte_rate=1024",
		"user=alice,client-id=app: consumer_byte_rate=20",
		"user=bob,client-id=<default>: consumer_byte_rate=30",
	}
	if _, got := describeQuotas(hs, false); !reflect.DeepEqual(got, want) {
		t.Fatalf("after removes: %q\nwant %q", got, want)
	}

	// A new handler on the same store starts with the same quotas.
	hs2 := newHarness(t, func(c *Config) { c.QuotaStore = store })
	if _, got := describeQuotas(hs2, false); !reflect.DeepEqual(got, want) {
		t.Fatalf("new handler: %q\nwant %q", got, want)
	}
}

// Bad entities, keys and values answer Kafka's errors per entry, and the
// valid entries of the same request are applied; validate_only changes
// nothing; a store failure fails the entries and changes nothing.
func TestClientQuotasAlterErrors(t *testing.T) {
	store := &memQuotaStore{}
	hs := newHarness(t, func(c *Config) { c.QuotaStore = store })
	inv := kerr.InvalidRequest.Code
	entries := []kmsg.AlterClientQuotasRequestEntry{
		alterEntry(nil, setOp("producer_byte_rate", 1)),
		alterEntry([]qc{named("user", "a"), named("user", "b")}, setOp("producer_byte_rate", 1)),
		alterEntry([]qc{named("group", "g")}, setOp("producer_byte_rate", 1)),
		alterEntry([]qc{named("user", "")}, setOp("producer_byte_rate", 1)),
		alterEntry([]qc{named("ip", "1.2.3.4")}, setOp("connection_creation_rate", 1)),
		alterEntry([]qc{named("user", "a")}, setOp("max_rate", 1)),
		alterEntry([]qc{named("user", "a")}, setOp("producer_byte_rate", 0)),
		alterEntry([]qc{named("user", "a")}, setOp("consumer_byte_rate", -5)),
		alterEntry([]qc{named("user", "a")}, setOp("producer_byte_rate", 1.5)),
		alterEntry([]qc{named("user", "a")}, setOp("request_percentage", 1.5)),
	}
	want := []int16{inv, inv, inv, inv, inv, inv, inv, inv, inv, 0}
	if got := alterQuotas(hs, true, entries...); !reflect.DeepEqual(got, want) {
		t.Fatalf("validate only: codes %v, want %v", got, want)
	}
	if _, got := describeQuotas(hs, false); got != nil || store.sets != 0 {
		t.Fatalf("validate only changed something: %q, %d store changes", got, store.sets)
	}
	store.fail = storage.ErrStorage
	if got := alterQuotas(hs, false, entries...); got[9] != kerr.KafkaStorageError.Code {
		t.Fatalf("store failure: codes %v, want KAFKA_STORAGE_ERROR last", got)
	}
	if _, got := describeQuotas(hs, false); got != nil {
		t.Fatalf("a failed change is visible: %q", got)
	}
	store.fail = nil
	if got := alterQuotas(hs, false, entries...); !reflect.DeepEqual(got, want) {
		t.Fatalf("codes %v, want %v", got, want)
	}
	if _, got := describeQuotas(hs, false); !reflect.DeepEqual(got, []string{"user=a: request_percentage=1.5"}) {
		t.Fatalf("after the change: %q", got)
	}
}

// Invalid describe filters answer Kafka's top-level errors.
func TestClientQuotasDescribeErrors(t *testing.T) {
	hs := newHarness(t)
	inv, unsup := kerr.InvalidRequest.Code, kerr.UnsupportedVersion.Code
	for _, tc := range []struct {
		name  string
		comps []kmsg.DescribeClientQuotasRequestComponent
		want  int16
	}{
		{"empty type", []kmsg.DescribeClientQuotasRequestComponent{comp("", anyName, nil)}, inv},
		{"twice", []kmsg.DescribeClientQuotasRequestComponent{comp("user", anyName, nil), comp("user", deflt, nil)}, inv},
		{"unknown type", []kmsg.DescribeClientQuotasRequestComponent{comp("group", anyName, nil)}, unsup},
		{"exact without match", []kmsg.DescribeClientQuotasRequestComponent{comp("user", exact, nil)}, inv},
		{"default with match", []kmsg.DescribeClientQuotasRequestComponent{comp("user", deflt, sp("a"))}, inv},
		{"any with match", []kmsg.DescribeClientQuotasRequestComponent{comp("user", anyName, sp("a"))}, inv},
		{"unknown match type", []kmsg.DescribeClientQuotasRequestComponent{comp("user", 7, nil)}, unsup},
		{"ip with user", []kmsg.DescribeClientQuotasRequestComponent{comp("ip", anyName, nil), comp("user", anyName, nil)}, inv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _ := describeQuotas(hs, false, tc.comps...); code != tc.want {
				t.Fatalf("error %v, want %v", kerr.ErrorForCode(code), kerr.ErrorForCode(tc.want))
			}
		})
	}
}
