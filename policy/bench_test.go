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

func benchInput() policy.Input {
	return policy.Input{
		Partner: "acme", Integration: "billing", Workload: "w1", Action: "orders:read0", Resource: "orders-api",
		Properties: map[string]any{"tier": "gold", "region": "eu"}, SourceIP: netip.MustParseAddr("10.1.2.3"),
		Environment: "production", Now: monday10,
	}
}

// BenchmarkEvaluate compares Treaty's Evaluate, which builds the entities and context from an
// Input on every call, with cedar-go's Authorize on the same policies with entities and context
// built once beforehand.
func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{1, 13} { // 3 and 39 policies
		text := benchText(n)
		s, err := policy.Parse("acme", text)
		if err != nil {
			b.Fatal(err)
		}
		base := benchInput()
		if r := s.Evaluate(&base); !r.Allow {
			b.Fatalf("bench request denied: %v", r.Reasons)
		}
		b.Run(fmt.Sprintf("policies=%d/treaty", s.Len()), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				in := base
				if !s.Evaluate(&in).Allow {
					b.Fatal("denied")
				}
			}
		})

		ps, err := cedar.NewPolicySetFromBytes("", []byte(text))
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
		b.Run(fmt.Sprintf("policies=%d/cedar", s.Len()), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d, _ := cedar.Authorize(ps, entities, req); d != cedar.Allow {
					b.Fatal("denied")
				}
			}
		})
	}
}
