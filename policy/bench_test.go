package policy_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/treaty-dev/treaty/policy"
)

// benchText is a partner's policy set of n permits and 2n forbids with conditions on the
// principal's parents, the resource's properties and the context: the request below passes every
// forbid and matches one permit, so every policy is evaluated.
func benchText(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "@id(\"read-%d\") permit(principal in Partner::\"acme\", action == Action::\"orders:read%d\", resource) when { resource.tier == \"gold\" };\n", i, i)
		fmt.Fprintf(&b, "forbid(principal in Integration::\"other%d\", action, resource) unless { context.source_ip.isInRange(ip(\"10.0.0.0/8\")) };\n", i)
		fmt.Fprintf(&b, "forbid(principal, action, resource == Api::\"api%d\") when { context.hour < 6 || context.environment == \"dev\" };\n", i)
	}
	return b.String()
}

// benchProperties are the request's resource properties: they come with the request, so the
// benchmark does not count building them.
var (
	benchProperties = map[string]any{"tier": "gold", "region": "eu"}
	benchSourceIP   = netip.MustParseAddr("10.1.2.3")
)

func benchInput() policy.Input {
	return policy.Input{
		Partner: "acme", Integration: "billing", Workload: "w1", Action: "orders:read0", Resource: "orders-api",
		Properties: benchProperties, SourceIP: benchSourceIP,
		Environment: "production", Now: monday10,
	}
}

// partnerText is the set bench/opa gives its conditioned partners: two forbids, a network and
// environment condition and business hours, both of which the bench request passes.
const partnerText = `@id("network")
forbid (principal in Partner::"acme", action, resource)
unless { context.source_ip.isInRange(ip("10.0.0.0/8")) && context.environment == "production" };

@id("business-hours")
forbid (principal in Partner::"acme", action, resource)
unless { context.hour >= 8 && context.hour < 18 };
`

// BenchmarkEvaluate compares Treaty's Evaluate, given a new Input on every call as the PDP gives
// it (so the context, entities and resource attributes are derived on every call), with
// cedar-go's Authorize on the same policies with entities and context built once beforehand.
// Both evaluate every policy: set=partner is bench/opa's set (two forbids, neither matching, so
// Treaty allows and cedar-go, with no permit, denies with no reason), set=mixed-N has N permits
// and 2N forbids with resource properties too.
func BenchmarkEvaluate(b *testing.B) {
	sets := []struct {
		name, text  string
		cedarAllows bool
	}{
		{"partner", partnerText, false},
		{"mixed-3", benchText(1), true},
		{"mixed-39", benchText(13), true},
	}
	for _, set := range sets {
		s, err := policy.Parse("acme", set.text)
		if err != nil {
			b.Fatal(err)
		}
		base := benchInput()
		if r := s.Evaluate(&base); !r.Allow {
			b.Fatalf("bench request denied: %v", r.Reasons)
		}
		b.Run(fmt.Sprintf("set=%s/engine=treaty", set.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				in := benchInput()
				if !s.Evaluate(&in).Allow {
					b.Fatal("denied")
				}
			}
		})

		ps, err := cedar.NewPolicySetFromBytes("", []byte(set.text))
		if err != nil {
			b.Fatal(err)
		}
		workload := cedar.NewEntityUID("Workload", "w1")
		integ := cedar.NewEntityUID("Integration", "billing")
		partner := cedar.NewEntityUID("Partner", "acme")
		api := cedar.NewEntityUID("Api", "orders-api")
		ip, _ := types.ParseIPAddr("10.1.2.3")
		entities := cedar.EntityMap{
			workload: {UID: workload, Parents: cedar.NewEntityUIDSet(integ, partner)},
			integ:    {UID: integ, Parents: cedar.NewEntityUIDSet(partner)},
			partner:  {UID: partner},
			api:      {UID: api, Attributes: cedar.NewRecord(cedar.RecordMap{"tier": cedar.String("gold"), "region": cedar.String("eu")})},
		}
		req := cedar.Request{
			Principal: workload, Action: cedar.NewEntityUID("Action", "orders:read0"), Resource: api,
			Context: cedar.NewRecord(cedar.RecordMap{
				"source_ip": ip, "environment": cedar.String("production"), "time": cedar.NewDatetime(monday10),
				"hour": cedar.Long(10), "weekday": cedar.Long(1), "unix": cedar.Long(monday10.Unix()),
			}),
		}
		if d, diag := cedar.Authorize(ps, entities, req); (d == cedar.Allow) != set.cedarAllows || len(diag.Errors) > 0 {
			b.Fatalf("cedar-go decided %v, %+v", d, diag)
		}
		b.Run(fmt.Sprintf("set=%s/engine=cedar-go", set.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d, _ := cedar.Authorize(ps, entities, req); (d == cedar.Allow) != set.cedarAllows {
					b.Fatal("cedar-go changed its mind")
				}
			}
		})
	}
}
