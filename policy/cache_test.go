package policy_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/treaty-dev/treaty/policy"
)

// oracle decides in with cedar-go alone, building the entities and the context from scratch as
// the package doc describes them: what Evaluate's caches must agree with.
func oracle(t *testing.T, ps *cedar.PolicySet, in policy.Input) bool {
	t.Helper()
	workload := cedar.NewEntityUID("Workload", types.String(in.Workload))
	integ := cedar.NewEntityUID("Integration", types.String(in.Integration))
	partner := cedar.NewEntityUID("Partner", types.String(in.Partner))
	api := cedar.NewEntityUID("Api", types.String(in.Resource))
	entities := cedar.EntityMap{
		workload: {UID: workload, Parents: cedar.NewEntityUIDSet(integ, partner)},
		integ:    {UID: integ, Parents: cedar.NewEntityUIDSet(partner)},
		partner:  {UID: partner},
		api:      {UID: api},
	}
	m := cedar.RecordMap{
		"time": cedar.NewDatetime(in.Now), "hour": cedar.Long(in.Now.UTC().Hour()),
		"weekday": cedar.Long(in.Now.UTC().Weekday()), "unix": cedar.Long(in.Now.Unix()),
	}
	if in.SourceIP.IsValid() {
		a := in.SourceIP.Unmap()
		m["source_ip"] = cedar.IPAddr(netip.PrefixFrom(a, a.BitLen()))
	}
	if in.Environment != "" {
		m["environment"] = cedar.String(in.Environment)
	}
	req := cedar.Request{
		Principal: workload, Action: cedar.NewEntityUID("Action", types.String(in.Action)), Resource: api,
		Context: cedar.NewRecord(m),
	}
	d, diag := cedar.Authorize(ps, entities, req)
	if len(diag.Errors) > 0 {
		return false // Treaty denies on any error
	}
	return d == cedar.Allow
}

// TestEvaluateCaches checks, from two goroutines at once, that the cached context records and
// parent sets, and the policies specialized for the set's partner, give the decisions that
// cedar-go gives with everything built per request: across hours,
// milliseconds, seconds, days before 1970, addresses, environments, integrations and a partner
// the set does not belong to.
func TestEvaluateCaches(t *testing.T) {
	texts := []string{
		`permit(principal, action, resource) unless { context.hour >= 8 && context.hour < 18 };`,
		`permit(principal, action, resource) when { context.weekday == 3 };`,
		`permit(principal, action, resource) when { context.unix >= 1796040001 };`,
		`permit(principal, action, resource) when { context.time >= datetime("2026-11-30T10:15:00.500Z") };`,
		`permit(principal, action, resource) when { context.time >= datetime("1969-12-31T23:00:00Z") && context.hour == 23 };`,
		`permit(principal, action, resource) when { context.source_ip.isInRange(ip("10.0.0.0/8")) };`,
		`permit(principal, action, resource) when { context has source_ip && context.environment == "production" };`,
		`permit(principal, action, resource) when { context.environment == "production" && context.hour < 12 };`,
		`permit(principal, action, resource) when { context == {time: context.time, hour: context.hour, weekday: context.weekday, unix: context.unix, environment: "production", source_ip: ip("10.1.2.3")} };`,
		`permit(principal in Integration::"billing", action, resource);`,
		`permit(principal in Partner::"acme", action, resource) when { Integration::"ledger" in Partner::"acme" };`,
		`permit(principal, action, resource) when { principal in Integration::"ledger" || principal == Workload::"w2" };`,
		// Scopes specialized for the set's own partner (see specialize), and a forbid among them.
		"permit(principal in Partner::\"acme\", action, resource) when { context.hour < 12 };\nforbid(principal in Partner::\"acme\", action, resource) when { context.environment == \"staging\" };",
		"permit(principal is Integration in Partner::\"acme\", action, resource);\npermit(principal is Workload in Partner::\"acme\", action, resource) when { context.weekday == 1 };",
	}
	times := []time.Time{
		monday10, monday10.Add(499 * time.Millisecond), monday10.Add(500 * time.Millisecond),
		monday10.Add(time.Second), monday10.Add(-15 * time.Minute), monday10.Add(-15*time.Minute - time.Millisecond),
		monday10.Add(8 * time.Hour), monday10.Add(48 * time.Hour), monday10.Add(7*time.Hour + 45*time.Minute),
		time.Unix(-1, 0), time.Unix(-3600, 0), time.Unix(-3601, 0), time.UnixMilli(-1), time.Unix(0, 0),
	}
	ips := []netip.Addr{{}, netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.168.1.1"),
		netip.MustParseAddr("::ffff:10.9.9.9"), netip.MustParseAddr("2001:db8::1")}
	envs := []string{"", "production", "staging"}
	whos := []struct{ partner, integration, workload string }{
		{"acme", "billing", "w1"}, {"acme", "ledger", "w2"}, {"acme", "ledger", "w3"}, {"globex", "billing", "w1"},
	}
	type check struct {
		set  *policy.Set
		in   policy.Input
		want bool
		name string
	}
	var checks []check
	for _, text := range texts {
		s, err := policy.Parse("acme", text)
		if err != nil {
			t.Fatalf("Parse(%s): %v", text, err)
		}
		ps, err := cedar.NewPolicySetFromBytes("", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		allows := 0
		for _, now := range times {
			for _, ip := range ips {
				for _, env := range envs {
					for _, who := range whos {
						in := policy.Input{Partner: who.partner, Integration: who.integration, Workload: who.workload,
							Action: "orders:read", Resource: "orders-api", SourceIP: ip, Environment: env, Now: now}
						want := oracle(t, ps, in)
						if want {
							allows++
						}
						checks = append(checks, check{s, in, want,
							fmt.Sprintf("%s with %s %v %q %+v", text, now.Format(time.RFC3339Nano), ip, env, who)})
					}
				}
			}
		}
		if allows == 0 || allows == len(times)*len(ips)*len(envs)*len(whos) {
			t.Errorf("%s: the oracle always decides the same (%d allows): the case tests nothing", text, allows)
		}
	}
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for range 3 {
				for i := range checks {
					if g == 1 {
						i = len(checks) - 1 - i // the goroutines visit the cases in opposite orders
					}
					c := checks[i]
					if got := c.set.Evaluate(&c.in).Allow; got != c.want {
						t.Errorf("%s: Evaluate allowed %v, cedar-go alone %v", c.name, got, c.want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
