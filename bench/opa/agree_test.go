package opa

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/token"
)

// A sample is one request both engines decide: Treaty from a real token minted from the claims, OPA
// from the claims themselves.
type sample struct {
	name     string
	partner  int // the workload is (partner, integration)
	integ    int
	edit     func(w *world, c *token.Claims)
	action   string
	resource string
	ip, env  string
	hour     int // the decision points' clock, UTC, that day
	allow    bool
}

// samples covers every check both engines make, allows and denies, on grant and conditioned
// partners. The hour defaults to noon.
func (w *world) samples() []sample {
	g, c := w.pick(false), w.pick(true)
	const api, prod, inside = "api", "production", "10.1.2.3"
	return []sample{
		{name: "grant", partner: g, action: "read", resource: api, ip: inside, env: prod, allow: true},
		{name: "grant from anywhere", partner: g, action: "write", resource: api, ip: "192.0.2.1", env: "staging", allow: true},
		{name: "grant without context", partner: g, action: "read", resource: api, allow: true},
		{name: "grant admin", partner: g, integ: 2, action: "admin", resource: api, allow: true},
		{name: "grant second audience", partner: g, integ: 2, action: "read", resource: "billing",
			edit: func(_ *world, c *token.Claims) { c.Audience = "billing" }, allow: true},
		{name: "scope missing", partner: g, integ: 1, action: "write", resource: api},
		{name: "scope beyond ceiling", partner: g, integ: 1, action: "write", resource: api,
			edit: func(_ *world, c *token.Claims) { c.Scope = "read write" }},
		{name: "audience mismatch", partner: g, action: "read", resource: "billing"},
		{name: "audience not granted", partner: g, action: "read", resource: "billing",
			edit: func(_ *world, c *token.Claims) { c.Audience = "billing" }},
		{name: "expired", partner: g, action: "read", resource: api,
			edit: func(_ *world, c *token.Claims) { c.Expiry = noon.Add(-time.Second).Unix() }},
		{name: "revoked credential", partner: g, action: "read", resource: api,
			edit: func(_ *world, c *token.Claims) { c.ID = revokedJTI(3) }},
		{name: "partner blocked", partner: 7, action: "read", resource: api},
		{name: "partner restored", partner: 17, action: "read", resource: api, allow: true},
		{name: "issued before the restore", partner: 17, action: "read", resource: api,
			edit: func(_ *world, c *token.Claims) { c.Sequence = 1 }},
		{name: "partner suspended", partner: 5, action: "read", resource: api},
		{name: "contract ended", partner: 11, action: "read", resource: api},
		{name: "integration suspended", partner: 9, integ: 1, action: "read", resource: api},
		{name: "workload suspended", partner: 3, action: "read", resource: api},
		{name: "subject in another partner", partner: g, action: "read", resource: api,
			edit: func(_ *world, c *token.Claims) { c.Partner = partnerID(g + 1) }},
		{name: "unknown workload", partner: g, action: "read", resource: api,
			edit: func(_ *world, c *token.Claims) { c.Subject, c.ClientID = "nobody", "nobody" }},
		{name: "conditions hold", partner: c, action: "read", resource: api, ip: inside, env: prod, allow: true},
		{name: "conditions hold at opening", partner: c, action: "write", resource: api, ip: inside, env: prod, hour: 8, allow: true},
		{name: "conditions hold before closing", partner: c, action: "read", resource: api, ip: "10.255.0.1", env: prod, hour: 17, allow: true},
		{name: "conditions: outside the network", partner: c, action: "read", resource: api, ip: "192.168.1.1", env: prod},
		{name: "conditions: IPv6 source", partner: c, action: "read", resource: api, ip: "2001:db8::1", env: prod},
		{name: "conditions: wrong environment", partner: c, action: "read", resource: api, ip: inside, env: "staging"},
		{name: "conditions: no source address", partner: c, action: "read", resource: api, env: prod},
		{name: "conditions: no environment", partner: c, action: "read", resource: api, ip: inside},
		{name: "conditions: at closing", partner: c, action: "read", resource: api, ip: inside, env: prod, hour: 18},
		{name: "conditions: at night", partner: c, action: "read", resource: api, ip: inside, env: prod, hour: 3},
		{name: "conditions, then the grants", partner: c, integ: 1, action: "write", resource: api, ip: inside, env: prod},
	}
}

// agree decides every sample with both engines and fails the test if either is not the expected
// decision. It leaves the clock at noon.
func (w *world) agree(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	defer w.clock.Set(noon)
	for _, s := range w.samples() {
		hour := s.hour
		if hour == 0 {
			hour = 12
		}
		now := time.Date(noon.Year(), noon.Month(), noon.Day(), hour, 0, 0, 0, time.UTC)
		w.clock.Set(now)
		c := w.claims(s.partner, s.integ, now)
		if s.edit != nil {
			s.edit(w, &c)
		}
		var ip netip.Addr
		if s.ip != "" {
			ip = netip.MustParseAddr(s.ip)
		}
		d, err := w.pdp.Check(ctx, pdp.CheckRequest{
			Token: w.key.Mint(tb, c), Action: s.action, Resource: s.resource,
			Context: pdp.RequestContext{SourceIP: ip, Environment: s.env},
		})
		if err != nil {
			tb.Fatalf("%s: Treaty: %v", s.name, err)
		}
		allow, err := w.opa.allow(ctx, input(c, s.action, s.resource, s.ip, s.env, now.Unix()))
		if err != nil {
			tb.Fatalf("%s: OPA: %v", s.name, err)
		}
		if d.Allow != s.allow || allow != s.allow {
			tb.Errorf("%s: Treaty allow=%v (reasons %q), OPA allow=%v; want %v", s.name, d.Allow, d.Reasons, allow, s.allow)
		}
	}
}

// TestEnginesAgree checks that both engines make the same decisions on the same facts, so that
// the benchmark compares like with like.
func TestEnginesAgree(t *testing.T) {
	build(t, 1000).agree(t)
}
