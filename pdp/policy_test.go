package pdp_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
)

func policyEvent(mode treatyv1.PolicyMode, version uint64, text string) *treatyv1.Event {
	pc := &treatyv1.PolicyChanged{PartnerId: "acme", Mode: mode, Version: version, Text: text}
	if text != "" {
		pc.PolicyId = feed.PolicyID("acme", version)
	}
	return &treatyv1.Event{Change: &treatyv1.Event_PolicyChanged{PolicyChanged: pc}}
}

const (
	liveMode   = treatyv1.PolicyMode_POLICY_MODE_LIVE
	shadowMode = treatyv1.PolicyMode_POLICY_MODE_SHADOW
)

// TestCheckPolicies publishes policy sets through the real revoker log and checks the PDP's
// decisions after each step.
func TestCheckPolicies(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	tok := e.token(t, nil)
	type want struct {
		action string
		req    func(*pdp.CheckRequest)
		reason string
	}
	steps := []struct {
		name     string
		events   []*treatyv1.Event
		policyID string
		checks   []want
	}{
		{name: "no policies: the grants decide", checks: []want{{action: "read", reason: pdp.ReasonGranted}, {action: "write", reason: pdp.ReasonGranted}}},
		{
			name:     "a live forbid narrows",
			events:   []*treatyv1.Event{policyEvent(liveMode, 1, `@id("no-writes") forbid(principal in Partner::"acme", action == Action::"write", resource);`)},
			policyID: "acme@1",
			checks:   []want{{action: "read", reason: pdp.ReasonGranted}, {action: "write", reason: "policy_forbid:acme@1:no-writes"}},
		},
		{
			name: "permits make an allow list; policies never grant beyond the grants",
			events: []*treatyv1.Event{policyEvent(liveMode, 2,
				`@id("reads") permit(principal, action in [Action::"read", Action::"admin"], resource == Api::"api");`)},
			policyID: "acme@2",
			checks: []want{
				{action: "read", reason: pdp.ReasonGranted},
				{action: "write", reason: "policy_no_permit:acme@2"},
				{action: "admin", reason: pdp.ReasonScopeMissing},
			},
		},
		{
			name: "context and resource properties",
			events: []*treatyv1.Event{policyEvent(liveMode, 3, "@id(\"office\") forbid(principal, action, resource) unless { context.source_ip.isInRange(ip(\"10.0.0.0/8\")) };\n"+
				"@id(\"prod\") forbid(principal, action, resource) when { context has environment && context.environment == \"dev\" };\n"+
				"@id(\"tier\") forbid(principal, action, resource) when { resource has tier && resource.tier < 3 };")},
			policyID: "acme@3",
			checks: []want{
				{action: "read", req: func(r *pdp.CheckRequest) { r.Context.SourceIP = netip.MustParseAddr("10.9.9.9") }, reason: pdp.ReasonGranted},
				{action: "read", req: func(r *pdp.CheckRequest) { r.Context.SourceIP = netip.MustParseAddr("192.0.2.1") }, reason: "policy_forbid:acme@3:office"},
				{action: "read", reason: "policy_error:acme@3:office"}, // no source IP: reading it errors, and errors deny
				{action: "read", req: func(r *pdp.CheckRequest) {
					r.Context.SourceIP, r.Context.Environment = netip.MustParseAddr("10.0.0.1"), "dev"
				}, reason: "policy_forbid:acme@3:prod"},
				{action: "read", req: func(r *pdp.CheckRequest) {
					r.Context.SourceIP, r.Properties = netip.MustParseAddr("10.0.0.1"), map[string]any{"tier": float64(2)}
				}, reason: "policy_forbid:acme@3:tier"},
				// An erroring forbid still blocks: the tier is a string here.
				{action: "read", req: func(r *pdp.CheckRequest) {
					r.Context.SourceIP, r.Properties = netip.MustParseAddr("10.0.0.1"), map[string]any{"tier": "gold"}
				}, reason: "policy_error:acme@3:tier"},
			},
		},
		{
			name:   "removing the live set leaves the grants",
			events: []*treatyv1.Event{policyEvent(liveMode, 0, "")},
			checks: []want{{action: "write", reason: pdp.ReasonGranted}},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if len(st.events) > 0 {
				pdptest.Publish(t, e.log, st.events...)
			}
			for _, c := range st.checks {
				req := pdp.CheckRequest{Token: tok, Action: c.action, Resource: "api", MinSequence: e.log.Head()}
				if c.req != nil {
					c.req(&req)
				}
				d, err := e.pdp.Check(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				if got := reason(t, d); got != c.reason {
					t.Errorf("%s %+v: reason %s, want %s", c.action, req.Context, got, c.reason)
				}
				if c.reason != pdp.ReasonScopeMissing && d.PolicyID != st.policyID {
					t.Errorf("PolicyID = %q, want %q", d.PolicyID, st.policyID)
				}
			}
		})
	}
}

func TestCheckShadowPolicy(t *testing.T) {
	logs := &logtest.Buffer{}
	e := newEnv(t, pdp.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	tok := e.token(t, nil)
	pdptest.Publish(t, e.log,
		policyEvent(liveMode, 1, `forbid(principal, action == Action::"admin", resource);`),
		policyEvent(shadowMode, 2, `@id("no-writes") forbid(principal, action == Action::"write", resource);`),
	)
	// The shadow agrees on read and disagrees on write, without changing the answer.
	if got := reason(t, e.check(t, tok, "read", "api")); got != pdp.ReasonGranted {
		t.Fatalf("read: %s", got)
	}
	if n := e.pdp.ShadowDisagreements(); n != 0 {
		t.Fatalf("disagreements after an agreeing decision: %d", n)
	}
	d := e.check(t, tok, "write", "api")
	if got := reason(t, d); got != pdp.ReasonGranted || d.PolicyID != "acme@1" {
		t.Fatalf("write: %s under %s, want granted under acme@1", got, d.PolicyID)
	}
	if n := e.pdp.ShadowDisagreements(); n != 1 {
		t.Fatalf("disagreements = %d, want 1", n)
	}
	out := logs.String()
	for _, s := range []string{"shadow policy disagrees", "partner=acme", "live_policy=acme@1", "shadow_policy=acme@2",
		"live_allow=true", "shadow_allow=false", "policy_forbid:acme@2:no-writes"} {
		if !strings.Contains(out, s) {
			t.Errorf("log lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, tok) || strings.Contains(out, strings.Split(tok, ".")[2]) {
		t.Error("the log holds the token")
	}

	// Promotion: the shadow's text goes live and the shadow is cleared, as the registry does it.
	pdptest.Publish(t, e.log,
		policyEvent(liveMode, 3, `@id("no-writes") forbid(principal, action == Action::"write", resource);`),
		policyEvent(shadowMode, 0, ""),
	)
	d = e.check(t, tok, "write", "api")
	if got := reason(t, d); got != "policy_forbid:acme@3:no-writes" || d.PolicyID != "acme@3" {
		t.Fatalf("after promotion: %s under %s", got, d.PolicyID)
	}
	if n := e.pdp.ShadowDisagreements(); n != 1 {
		t.Errorf("disagreements after promotion = %d, want still 1", n)
	}
}

func TestPolicyFeedRefusesBadText(t *testing.T) {
	log := newLog(t)
	_, err := log.Publish(context.Background(), []*treatyv1.PublishEntry{{RequestId: "bad-policy",
		Event: policyEvent(liveMode, 1, "permit(principal, action, resource);\nforbid(principal action, resource);")}})
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("publish of a bad policy: %v, want a refusal naming line 2", err)
	}
}

// BenchmarkCheckWithPolicies is BenchmarkCheck for a partner with a live and a shadow set.
func BenchmarkCheckWithPolicies(b *testing.B) {
	e := newEnv(b, pdp.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	pdptest.Publish(b, e.log,
		policyEvent(liveMode, 1, `forbid(principal, action, resource) unless { context.source_ip.isInRange(ip("10.0.0.0/8")) };
			permit(principal in Partner::"acme", action == Action::"read", resource) when { resource.tier == "gold" };`),
		policyEvent(shadowMode, 2, `forbid(principal, action, resource) when { context.hour < 0 };`))
	req := pdp.CheckRequest{Token: e.token(b, nil), Action: "read", Resource: "api", MinSequence: e.log.Head(),
		Properties: map[string]any{"tier": "gold"}, Context: pdp.RequestContext{SourceIP: netip.MustParseAddr("10.1.1.1")}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d, err := e.pdp.Check(ctx, req); err != nil || !d.Allow {
			b.Fatalf("Check = %+v, %v", d, err)
		}
	}
}
