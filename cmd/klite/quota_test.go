package main

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Client quotas altered through kadm are described with filters, a
// validate-only alter changes nothing, bad keys are refused, and every
// acknowledged change is back after kill -9 and a restart.
func TestClientQuotasDurableKadm(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newFranz(t, b.addr))
	ctx := testContext(t, time.Minute)
	str := func(s string) *string { return &s }
	user := func(name *string) kadm.ClientQuotaEntityComponent {
		return kadm.ClientQuotaEntityComponent{Type: "user", Name: name}
	}
	client := func(name *string) kadm.ClientQuotaEntityComponent {
		return kadm.ClientQuotaEntityComponent{Type: "client-id", Name: name}
	}
	set := func(k string, v float64) kadm.AlterClientQuotaOp { return kadm.AlterClientQuotaOp{Key: k, Value: v} }
	alter := func(validate bool, entries ...kadm.AlterClientQuotaEntry) kadm.AlteredClientQuotas {
		t.Helper()
		f := adm.AlterClientQuotas
		if validate {
			f = adm.ValidateAlterClientQuotas
		}
		res, err := f(ctx, entries)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	describe := func(strict bool, comps ...kadm.DescribeClientQuotaComponent) []string {
		t.Helper()
		res, err := adm.DescribeClientQuotas(ctx, strict, comps)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, q := range res {
			out = append(out, q.Entity.String()+" "+kadmValues(q.Values))
		}
		return out
	}

	res := alter(false,
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(str("alice"))}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1<<20)}},
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(nil)}, Ops: []kadm.AlterClientQuotaOp{set("consumer_byte_rate", 2<<20)}},
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(str("alice")), client(str("app"))},
			Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 4096), set("request_percentage", 25.5)}},
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{client(nil)}, Ops: []kadm.AlterClientQuotaOp{set("consumer_byte_rate", 512)}},
	)
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("alter %s: %v %s", r.Entity, r.Err, r.ErrMessage)
		}
	}
	bad := alter(false, kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(str("bob"))}, Ops: []kadm.AlterClientQuotaOp{set("no_such_rate", 1)}})
	if bad[0].Err != kerr.InvalidRequest {
		t.Fatalf("unknown key: %v, want INVALID_REQUEST", bad[0].Err)
	}
	val := alter(true, kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(str("carol"))}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1)}})
	if val[0].Err != nil {
		t.Fatalf("validate only: %v", val[0].Err)
	}

	all := []string{
		"{client-id=<default>} consumer_byte_rate=512",
		"{user=<default>} consumer_byte_rate=2097152",
		"{user=alice} producer_byte_rate=1048576",
		"{user=alice, client-id=app} producer_byte_rate=4096 request_percentage=25.5",
	}
	check := func(when string) {
		t.Helper()
		if got := describe(false); !reflect.DeepEqual(got, all) {
			t.Fatalf("%s: all quotas %q\nwant %q", when, got, all)
		}
		if got, want := describe(true, kadm.DescribeClientQuotaComponent{Type: "user", MatchName: str("alice")}),
			[]string{"{user=alice} producer_byte_rate=1048576"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: strict user=alice: %q, want %q", when, got, want)
		}
		if got, want := describe(false, kadm.DescribeClientQuotaComponent{Type: "user", MatchType: 1}),
			[]string{"{user=<default>} consumer_byte_rate=2097152"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: user default: %q, want %q", when, got, want)
		}
	}
	check("after alter")
	b.kill9()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	check("after kill -9 and restart")

	// Removing the last key of an entity removes it, durably.
	res = alter(false, kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{client(nil)},
		Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Remove: true}}})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	all = all[1:]
	b.kill9()
	b.restart()
	adm = kadm.NewClient(newFranz(t, b.addr))
	check("after a remove, kill -9 and restart")
}

func kadmValues(vs kadm.ClientQuotaValues) string {
	s := ""
	for i, v := range vs {
		if i > 0 {
			s += " "
		}
		s += v.Key + "=" + strconv.FormatFloat(v.Value, 'f', -1, 64)
	}
	return s
}
