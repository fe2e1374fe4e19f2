package policy_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/policy"
)

// FuzzParse checks that no policy text makes Parse panic, that every error is an Invalid error on
// the text, and that whatever parses evaluates without panicking.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		``,
		`permit(principal, action, resource);`,
		`@id("x") forbid(principal in Partner::"acme", action == Action::"a:b", resource == Api::"api") when { resource.tier < 3 };`,
		`forbid(principal, action, resource) unless { context.source_ip.isInRange(ip("10.0.0.0/8")) && context.hour > 7 };`,
		`permit(principal is Workload in Integration::"i", action in [Action::"a"], resource is Api) when { context.time > datetime("2026-01-01") };`,
		`forbid(principal, action, resource) when { resource.tags.containsAny(["a", "b"]) || resource.x like "a*" };`,
		`permit(principal == ?principal, action, resource);`,
		`permit(principal, action, resource) when { "abc`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := policy.Parse("acme", text)
		if err != nil {
			var fe *fail.Error
			if !errors.As(err, &fe) || fe.Kind != fail.Invalid || fe.Field != "text" {
				t.Fatalf("Parse(%q) error %v is not Invalid on text", text, err)
			}
			return
		}
		r := s.Evaluate(input())
		if len(r.Reasons) != 1 {
			t.Fatalf("Evaluate gave reasons %v", r.Reasons)
		}
	})
}

// FuzzEvaluate evaluates a fixed set of policies that read properties and context on fuzzed
// property values and context: it must never panic, and a value that is not what a condition
// expects must deny, never allow.
func FuzzEvaluate(f *testing.F) {
	s, err := policy.Parse("acme", `
		@id("gold") permit(principal, action, resource) when { resource.tier == "gold" };
		@id("level") forbid(principal, action, resource) when { resource.level > 3 };
		@id("net") forbid(principal, action, resource) unless { context.source_ip.isInRange(ip("10.0.0.0/8")) };
		@id("tags") forbid(principal, action, resource) when { resource has tags && resource.tags.contains("blocked") };
	`)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("gold", 1.0, "ok", "10.0.0.1", "production", int64(0), true)
	f.Add("silver", 9.5, "blocked", "::1", "", int64(-1), false)
	f.Add("", -1e300, "", "bogus", "x", int64(1<<62), true)
	f.Fuzz(func(t *testing.T, tier string, level float64, tag, ip, env string, unix int64, asString bool) {
		props := map[string]any{"tier": tier, "level": level, "tags": []any{tag, level, map[string]any{"k": tag}}}
		if asString {
			props["level"] = tag
		}
		in := &policy.Input{
			Partner: "acme", Integration: "i", Workload: "w", Action: "a", Resource: "api",
			Properties: props, Environment: env, Now: time.Unix(unix%(1<<40), 0),
		}
		in.SourceIP, _ = netip.ParseAddr(ip)
		r := s.Evaluate(in)
		if len(r.Reasons) != 1 {
			t.Fatalf("reasons %v", r.Reasons)
		}
		if r.Allow {
			ok := tier == "gold" && !asString && level <= 3 && in.SourceIP.IsValid() && tag != "blocked"
			if !ok {
				t.Fatalf("allowed %+v: %v", props, r.Reasons)
			}
		}
	})
}
