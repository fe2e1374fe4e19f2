package policy_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/policy"
)

// monday10 is Monday 2026-11-30 10:15:00 UTC.
var monday10 = time.Date(2026, 11, 30, 10, 15, 0, 0, time.UTC)

func input() *policy.Input {
	return &policy.Input{
		Partner: "acme", Integration: "billing", Workload: "w1",
		Action: "orders:read", Resource: "orders-api",
		Properties:  map[string]any{"tier": "gold", "level": float64(3), "tags": []any{"eu", "pci"}, "owner": map[string]any{"team": "pay"}},
		SourceIP:    netip.MustParseAddr("10.1.2.3"),
		Environment: "production",
		Now:         monday10,
	}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		edit   func(*policy.Input)
		allow  bool
		reason string
	}{
		{"empty set allows", ``, nil, true, "policy_allow:acme"},
		{"forbid-only set, nothing matches", `forbid(principal, action == Action::"orders:write", resource);`, nil, true, "policy_allow:acme"},
		{"forbid matches", `forbid(principal, action == Action::"orders:read", resource);`, nil, false, "policy_forbid:acme:policy0"},
		{"forbid named by @id", `@id("no-reads") forbid(principal, action, resource);`, nil, false, "policy_forbid:acme:no-reads"},
		{"permit matches", `@id("reads") permit(principal, action == Action::"orders:read", resource);`, nil, true, "policy_permit:acme:reads"},
		{"permits exist, none matches", `permit(principal, action == Action::"orders:write", resource);`, nil, false, "policy_no_permit:acme"},
		{"forbid beats permit", "permit(principal, action, resource);\nforbid(principal, action, resource);", nil, false, "policy_forbid:acme:policy1"},
		{"first forbid in text order", "forbid(principal, action, resource);\n@id(\"b\") forbid(principal, action, resource);", nil, false, "policy_forbid:acme:policy0"},
		{"principal in partner", `permit(principal in Partner::"acme", action, resource);`, nil, true, "policy_permit:acme:policy0"},
		{"principal in integration", `forbid(principal in Integration::"billing", action, resource);`, nil, false, "policy_forbid:acme:policy0"},
		{"principal in other integration", `forbid(principal in Integration::"other", action, resource);`, nil, true, "policy_allow:acme"},
		{"integration in partner", `forbid(principal, action, resource) when { Integration::"billing" in Partner::"acme" };`, nil, false, "policy_forbid:acme:policy0"},
		{"principal is workload", `permit(principal is Workload, action, resource);`, nil, true, "policy_permit:acme:policy0"},
		{"principal equals workload", `forbid(principal == Workload::"w1", action, resource);`, nil, false, "policy_forbid:acme:policy0"},
		{"resource equals api", `permit(principal, action, resource == Api::"orders-api");`, nil, true, "policy_permit:acme:policy0"},
		{"action in set", `permit(principal, action in [Action::"orders:write", Action::"orders:read"], resource);`, nil, true, "policy_permit:acme:policy0"},
		{"resource string property", `forbid(principal, action, resource) when { resource.tier == "gold" };`, nil, false, "policy_forbid:acme:policy0"},
		{"resource long property from float", `forbid(principal, action, resource) when { resource.level > 2 };`, nil, false, "policy_forbid:acme:policy0"},
		{"resource set property", `forbid(principal, action, resource) when { resource.tags.contains("pci") };`, nil, false, "policy_forbid:acme:policy0"},
		{"resource record property", `permit(principal, action, resource) when { resource.owner.team == "pay" };`, nil, true, "policy_permit:acme:policy0"},
		{"resource has", `forbid(principal, action, resource) when { resource has secret };`, nil, true, "policy_allow:acme"},
		{"decimal property", `forbid(principal, action, resource) when { resource.ratio.greaterThan(decimal("0.5")) };`,
			func(in *policy.Input) { in.Properties = map[string]any{"ratio": 0.75} }, false, "policy_forbid:acme:policy0"},
		{"erroring forbid denies", `forbid(principal, action, resource) when { resource.tier < 3 };`, nil, false, "policy_error:acme:policy0"},
		{"erroring permit denies", "permit(principal, action, resource);\n@id(\"bad\") permit(principal, action, resource) when { resource.tier < 3 };", nil, false, "policy_error:acme:bad"},
		{"missing attribute errors", `forbid(principal, action, resource) when { resource.missing == 1 };`, nil, false, "policy_error:acme:policy0"},
		{"unconvertible property errors", `forbid(principal, action, resource) when { resource.odd == 1 };`,
			func(in *policy.Input) { in.Properties = map[string]any{"odd": struct{}{}} }, false, "policy_error:acme:policy0"},
		{"matching forbid named before an error", "forbid(principal, action, resource) when { resource.tier < 3 };\n@id(\"f\") forbid(principal, action, resource);", nil, false, "policy_forbid:acme:f"},
		{"source ip in range", `permit(principal, action, resource) when { context.source_ip.isInRange(ip("10.0.0.0/8")) };`, nil, true, "policy_permit:acme:policy0"},
		{"source ip out of range", `permit(principal, action, resource) when { context.source_ip.isInRange(ip("192.168.0.0/16")) };`, nil, false, "policy_no_permit:acme"},
		{"unknown source ip: has is false", `permit(principal, action, resource) when { context has source_ip };`,
			func(in *policy.Input) { in.SourceIP = netip.Addr{} }, false, "policy_no_permit:acme"},
		{"unknown source ip: reading it denies", `forbid(principal, action, resource) unless { context.source_ip.isInRange(ip("10.0.0.0/8")) };`,
			func(in *policy.Input) { in.SourceIP = netip.Addr{} }, false, "policy_error:acme:policy0"},
		{"ipv4-mapped source ip", `permit(principal, action, resource) when { context.source_ip.isInRange(ip("10.0.0.0/8")) };`,
			func(in *policy.Input) { in.SourceIP = netip.MustParseAddr("::ffff:10.1.2.3") }, true, "policy_permit:acme:policy0"},
		{"environment", `forbid(principal, action, resource) when { context.environment != "production" };`, nil, true, "policy_allow:acme"},
		{"environment differs", `forbid(principal, action, resource) when { context.environment != "production" };`,
			func(in *policy.Input) { in.Environment = "staging" }, false, "policy_forbid:acme:policy0"},
		{"inside hours", `forbid(principal, action, resource) unless { context.hour >= 8 && context.hour < 18 };`, nil, true, "policy_allow:acme"},
		{"outside hours", `forbid(principal, action, resource) unless { context.hour >= 8 && context.hour < 18 };`,
			func(in *policy.Input) { in.Now = monday10.Add(10 * time.Hour) }, false, "policy_forbid:acme:policy0"},
		{"weekday", `forbid(principal, action, resource) when { context.weekday == 0 || context.weekday == 6 };`, nil, true, "policy_allow:acme"},
		{"weekend", `forbid(principal, action, resource) when { context.weekday == 0 || context.weekday == 6 };`,
			func(in *policy.Input) { in.Now = monday10.Add(-24 * time.Hour) }, false, "policy_forbid:acme:policy0"},
		{"unix", `forbid(principal, action, resource) when { context.unix >= 1796040000 };`, nil, true, "policy_allow:acme"},
		{"datetime", `forbid(principal, action, resource) when { context.time < datetime("2026-11-30") };`, nil, true, "policy_allow:acme"},
		{"datetime after", `forbid(principal, action, resource) when { context.time > datetime("2026-11-30T10:00:00Z") };`, nil, false, "policy_forbid:acme:policy0"},
		{"whole context", `forbid(principal, action, resource) when { context == {} };`, nil, true, "policy_allow:acme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := policy.Parse("acme", tt.text)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			in := input()
			if tt.edit != nil {
				tt.edit(in)
			}
			got := s.Evaluate(in)
			want := policy.Result{Allow: tt.allow, Reasons: []string{tt.reason}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Evaluate (-want +got):\n%s", diff)
			}
			// A second evaluation on the same Input reuses what the first built.
			if diff := cmp.Diff(want, s.Evaluate(in)); diff != "" {
				t.Errorf("second Evaluate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvaluateSharedInput(t *testing.T) {
	// A live set that reads nothing and a shadow that reads the context and the resource share an
	// Input: the second must still see what it reads.
	live, err := policy.Parse("acme", `permit(principal, action, resource);`)
	if err != nil {
		t.Fatal(err)
	}
	shadow, err := policy.Parse("acme", `forbid(principal, action, resource) when { context.environment == "production" && resource.tier == "gold" };`)
	if err != nil {
		t.Fatal(err)
	}
	in := input()
	if r := live.Evaluate(in); !r.Allow {
		t.Fatalf("live: %v", r)
	}
	if r := shadow.Evaluate(in); r.Allow {
		t.Fatalf("shadow allowed: %v", r)
	}
}

func TestWithID(t *testing.T) {
	s, err := policy.Parse("acme", `@id("x") forbid(principal, action, resource);`)
	if err != nil {
		t.Fatal(err)
	}
	v := s.WithID("acme@3")
	if got := v.Evaluate(input()).Reasons; !cmp.Equal(got, []string{"policy_forbid:acme@3:x"}) {
		t.Errorf("WithID reasons = %v", got)
	}
	if got := s.Evaluate(input()).Reasons; !cmp.Equal(got, []string{"policy_forbid:acme:x"}) {
		t.Errorf("original changed: %v", got)
	}
	if v.ID() != "acme@3" || v.Partner() != "acme" || v.Len() != 1 || v.Text() != s.Text() {
		t.Errorf("accessors: %q %q %d", v.ID(), v.Partner(), v.Len())
	}
	b := policy.Broken("acme", "garbage").WithID("acme@4")
	if got := b.Evaluate(input()); got.Allow || !cmp.Equal(got.Reasons, []string{"policy_invalid:acme@4"}) {
		t.Errorf("Broken: %v", got)
	}
	var nilSet *policy.Set
	if !nilSet.Evaluate(input()).Allow {
		t.Error("a nil set must allow")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       string // substring of the message
	}{
		{"syntax", "permit(principal, action, resource);\nforbid(principal, action, resource)\nwhen { resource.x < };", `line 3, column 22: invalid primary at ";"`},
		{"typo in scope", "permit(principal, action, resource);\n\n  permit(principal, actoin, resource);", "line 3, column 27"},
		{"unterminated string", `permit(principal, action, resource) when { "abc`, "line 1, column 44: literal not terminated"},
		{"template slot", `permit(principal == ?principal, action, resource);`, "line 1, column 22"},
		{"unknown principal type", "\n  permit(principal == User::\"alice\", action, resource);", `line 2, column 3: the principal cannot be User::"alice" (use Workload, Integration, Partner)`},
		{"principal is unknown type", `permit(principal is User, action, resource);`, "the principal cannot be of type User"},
		{"action type", `permit(principal, action == Scope::"x", resource);`, `the action cannot be Scope::"x"`},
		{"action not a scope", `permit(principal, action == Action::"has space", resource);`, `Action::"has space" is not a valid scope`},
		{"action in set", `permit(principal, action in [Action::"a", Action::""], resource);`, `Action::"" is not a valid scope`},
		{"resource type", `permit(principal, action, resource == Workload::"w");`, `the resource cannot be Workload::"w" (use Api)`},
		{"resource is", `permit(principal, action, resource is Partner);`, "the resource cannot be of type Partner"},
		{"namespaced type", `permit(principal, action, resource) when { principal in Treaty::Partner::"acme" };`, "unknown entity type Treaty::Partner"},
		{"is unknown type", `permit(principal, action, resource) when { resource is User };`, "unknown entity type User"},
		{"is in unknown type", `permit(principal, action, resource) when { principal is User in Partner::"acme" };`, "unknown entity type User"},
		{"another partner in scope", `permit(principal in Partner::"globex", action, resource);`, `Partner::"globex" is another partner: this policy set belongs to partner "acme"`},
		{"another partner in condition", `forbid(principal, action, resource) unless { principal in Partner::"globex" };`, `Partner::"globex" is another partner`},
		{"bad action literal in condition", `forbid(principal, action, resource) when { action == Action::"a b" };`, "is not a valid scope"},
		{"unknown context attribute", `forbid(principal, action, resource) when { context.ip == "x" };`, `context.ip: the context has no attribute "ip"`},
		{"unknown context has", `forbid(principal, action, resource) when { context has ip };`, `context has ip: the context has no attribute "ip"`},
		{"principal attribute", `forbid(principal, action, resource) when { principal.name == "x" };`, "principal.name: the principal has no attributes"},
		{"action attribute", `forbid(principal, action, resource) when { action has x };`, "action has x: the action has no attributes"},
		{"duplicate id", "@id(\"a\") permit(principal, action, resource);\n@id(\"a\") forbid(principal, action, resource);", `line 2, column 1: policy id "a" is used by the policy at line 1 too`},
		{"bad id", `@id("a:b") permit(principal, action, resource);`, "@id may hold only printable ASCII"},
		{"empty id", `@id("") permit(principal, action, resource);`, "@id must be 1 to 128 characters"},
		{"too large", strings.Repeat(" ", policy.MaxTextBytes+1), "at most 262144 are accepted"},
		{"too many", strings.Repeat("permit(principal, action, resource);\n", policy.MaxPolicies+1), "at most 1000 are accepted"},
		{"several problems in one policy", `permit(principal == User::"a", action == Action::"", resource);`, `User::"a" (use Workload, Integration, Partner); Action::"" is not a valid scope`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.Parse("acme", tt.text)
			var fe *fail.Error
			if !errors.As(err, &fe) || fe.Kind != fail.Invalid || fe.Field != "text" {
				t.Fatalf("Parse error = %v, want a fail.Invalid error on field text", err)
			}
			if !strings.Contains(fe.Msg, tt.want) {
				t.Errorf("message %q does not contain %q", fe.Msg, tt.want)
			}
		})
	}
}
