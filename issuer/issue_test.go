package issuer_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/token"
)

func TestIssueRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		edit  func(r *issuer.Request)
		want  fail.Kind
		msg   string
	}{
		{name: "no scopes", edit: func(r *issuer.Request) { r.Scopes = nil }, want: fail.Invalid, msg: "at least one scope"},
		{name: "malformed scope", edit: func(r *issuer.Request) { r.Scopes = []string{"invoices read"} }, want: fail.Invalid, msg: "not a valid scope"},
		{name: "no audience", edit: func(r *issuer.Request) { r.Audience = "" }, want: fail.Invalid, msg: "audience is required"},
		{name: "negative ttl", edit: func(r *issuer.Request) { r.TTL = -time.Second }, want: fail.Invalid, msg: "ttl must not be negative"},
		{name: "sub-second ttl", edit: func(r *issuer.Request) { r.TTL = time.Millisecond }, want: fail.Invalid, msg: "at least one second"},
		{name: "scope outside ceiling", edit: func(r *issuer.Request) { r.Scopes = []string{"invoices:read", "admin"} },
			want: fail.Denied, msg: `scope "admin" is outside the ceiling of integration "acme-billing"`},
		{name: "audience not listed", edit: func(r *issuer.Request) { r.Audience = "https://evil.test" },
			want: fail.Denied, msg: `audience "https://evil.test" is not one integration "acme-billing" lists`},
		{name: "workload suspended", setup: func(e *env) {
			e.dir.edit(func(d *directory) { w := d.workloads[workload]; w.Active = false; d.workloads[workload] = w })
		}, want: fail.Denied, msg: `workload "acme-billing-sync" is not active`},
		{name: "integration suspended", setup: func(e *env) {
			e.dir.edit(func(d *directory) {
				i := d.integrations[integration]
				i.Active = false
				d.integrations[integration] = i
			})
		}, want: fail.Denied, msg: `integration "acme-billing" is not active`},
		{name: "partner suspended", setup: func(e *env) {
			e.dir.edit(func(d *directory) { p := d.partners[partner]; p.Active = false; d.partners[partner] = p })
		}, want: fail.Denied, msg: `partner "acme" is not active`},
		{name: "contract ended", setup: func(e *env) {
			e.dir.edit(func(d *directory) {
				p := d.partners[partner]
				p.ContractEnd = time.Now().Add(-time.Hour)
				d.partners[partner] = p
			})
		}, want: fail.Denied, msg: `the contract of partner "acme" ended`},
		{name: "no contract end", setup: func(e *env) {
			e.dir.edit(func(d *directory) { p := d.partners[partner]; p.ContractEnd = time.Time{}; d.partners[partner] = p })
		}, want: fail.Denied, msg: "no contract end"},
		{name: "registry down", setup: func(e *env) { e.dir.edit(func(d *directory) { d.err = errPeerDown }) },
			want: fail.Unavailable},
		{name: "registry fault", setup: func(e *env) { e.dir.edit(func(d *directory) { d.err = errors.New("unusable key") }) },
			want: fail.Internal, msg: "registry lookup of the client"},
		{name: "decision point denies", setup: func(e *env) {
			e.authz.set(func(a *authorizer) { a.deny[workload] = []string{"workload_blocked", "policy_forbid"} })
		}, want: fail.Denied, msg: "issuance denied: workload_blocked, policy_forbid"},
		{name: "decision point syncing", setup: func(e *env) {
			e.authz.set(func(a *authorizer) { a.deny[workload] = []string{"syncing"} })
		}, want: fail.Unavailable, msg: "catching up"},
		{name: "decision point stale", setup: func(e *env) {
			e.authz.set(func(a *authorizer) { a.deny[workload] = []string{"stale"} })
		}, want: fail.Unavailable, msg: "catching up"},
		{name: "decision point down", setup: func(e *env) { e.authz.set(func(a *authorizer) { a.err = errors.New("dial tcp: refused") }) },
			want: fail.Unavailable, msg: "decision point could not be asked"},
		{name: "decision point behind min sequence", edit: func(r *issuer.Request) { r.MinSequence = 1 << 40 },
			want: fail.Unavailable, msg: "catching up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			req := e.request()
			if tc.edit != nil {
				tc.edit(&req)
			}
			_, err := e.iss.Issue(context.Background(), req)
			wantKind(t, err, tc.want)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not say %q", err, tc.msg)
			}
			if n := len(mustList(t, e.iss, issuer.Filter{})); n != 0 {
				t.Fatalf("a refused request left %d credentials in the inventory", n)
			}
		})
	}
}

func TestTTLCaps(t *testing.T) {
	tests := []struct {
		name        string
		requested   time.Duration
		integration time.Duration
		maxTTL      time.Duration // Config.MaxCredentialTTL
		contract    time.Duration // from now
		want        time.Duration // 0: up to the contract end
	}{
		{name: "default", want: issuer.DefaultTTL},
		{name: "request", requested: 2 * time.Minute, want: 2 * time.Minute},
		{name: "integration cap", requested: 3 * time.Hour, want: time.Hour},
		{name: "integration lower cap", requested: 20 * time.Minute, integration: 10 * time.Minute, want: 10 * time.Minute},
		{name: "deployment cap", requested: time.Hour, maxTTL: 30 * time.Minute, want: 30 * time.Minute},
		{name: "contract end", requested: time.Hour, contract: 90 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *issuer.Config) { c.MaxCredentialTTL = tc.maxTTL })
			end := time.Now().Add(90 * 24 * time.Hour)
			if tc.contract != 0 {
				end = time.Now().Add(tc.contract)
			}
			e.dir.edit(func(d *directory) {
				p := d.partners[partner]
				p.ContractEnd = end
				d.partners[partner] = p
				if tc.integration != 0 {
					i := d.integrations[integration]
					i.MaxTTL = tc.integration
					d.integrations[integration] = i
				}
			})
			req := e.request()
			req.TTL = tc.requested
			c := e.issue(req).Credential
			if c.IssueTime.Nanosecond() != 0 || c.ExpireTime.Nanosecond() != 0 {
				t.Fatalf("times are not whole seconds: %v, %v", c.IssueTime, c.ExpireTime)
			}
			if tc.want != 0 {
				if got := c.ExpireTime.Sub(c.IssueTime); got != tc.want {
					t.Fatalf("lifetime = %s, want %s", got, tc.want)
				}
				return
			}
			if want := end.UTC().Truncate(time.Second); !c.ExpireTime.Equal(want) {
				t.Fatalf("expire time = %v, want the contract end %v", c.ExpireTime, want)
			}
		})
	}
}

func TestMintedToken(t *testing.T) {
	e := newEnv(t)
	req := e.request()
	req.Scopes = []string{"reports:read", "invoices:read", "reports:read"}
	req.Audience = "https://other.acme.test"
	req.TTL = 10 * time.Minute
	out := e.issue(req)
	c := out.Credential

	// Verify with the key as the feed published it, the algorithm pinned.
	published, ok := e.rlog.State().SigningKey(c.Kid)
	if !ok {
		t.Fatalf("key %s is not in the feed", c.Kid)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(published.JWK); err != nil || !jwk.IsPublic() {
		t.Fatalf("published JWK is not a public key (%v)", err)
	}
	tok, err := jwt.ParseSigned(out.Token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	h := tok.Headers[0]
	if h.Algorithm != "EdDSA" || h.KeyID != c.Kid || h.ExtraHeaders["typ"] != token.Type {
		t.Fatalf("header = alg %s kid %s typ %v, want EdDSA %s %s", h.Algorithm, h.KeyID, h.ExtraHeaders["typ"], c.Kid, token.Type)
	}
	var got token.Claims
	if err := tok.Claims(jwk.Key, &got); err != nil {
		t.Fatalf("token does not verify with the published key: %v", err)
	}
	if c.Sequence == 0 || c.Sequence < e.activeKey().PublishedSequence {
		t.Fatalf("tsq %d is not at or after the key's publication %d", c.Sequence, e.activeKey().PublishedSequence)
	}
	want := token.Claims{
		Issuer: issuerURL, Subject: workload, ClientID: workload, Partner: partner, Integration: integration,
		Scope: "reports:read invoices:read", Audience: "https://other.acme.test",
		IssuedAt: c.IssueTime.Unix(), Expiry: c.IssueTime.Add(10 * time.Minute).Unix(), ID: c.ID, Sequence: c.Sequence,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("claims (-want +got):\n%s", diff)
	}
	if len(c.ID) != 22 { // 128 bits, base64url without padding
		t.Fatalf("jti %q is not 128 random bits", c.ID)
	}
	if time.Since(c.IssueTime) > time.Minute || time.Until(c.IssueTime) > time.Second {
		t.Fatalf("iat %v is not now", c.IssueTime)
	}

	// The decision point was asked about exactly this credential, at or after the key's sequence.
	calls := e.authz.requests()
	last := calls[len(calls)-1]
	if last.WorkloadID != workload || last.Kid != c.Kid || last.Audience != req.Audience ||
		strings.Join(last.Scopes, " ") != want.Scope || last.MinSequence != e.activeKey().PublishedSequence {
		t.Fatalf("authorizer was asked %+v", last)
	}
	// A token whose claims were edited does not verify.
	parts := strings.Split(out.Token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	payload = []byte(strings.Replace(string(payload), want.Scope, "admin", 1))
	forged, err := jwt.ParseSigned(parts[0]+"."+base64.RawURLEncoding.EncodeToString(payload)+"."+parts[2], []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	if forged.Claims(jwk.Key, &got) == nil {
		t.Fatal("a token with edited claims verified")
	}
}

func TestMinSequenceIsPassedOn(t *testing.T) {
	e := newEnv(t)
	key := e.activeKey()
	// A later write lands in the feed; a request naming its sequence must be decided at or after it.
	seqs, err := e.rlog.Publish(context.Background(), []*treatyv1.PublishEntry{{RequestId: "registry-1", Event: &treatyv1.Event{
		Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{
			PartnerId: partner, State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, ContractEndTime: timestamppb.New(time.Now().Add(time.Hour)),
		}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if seqs[0] <= key.PublishedSequence {
		t.Fatalf("write landed at %d, not after the key's %d", seqs[0], key.PublishedSequence)
	}
	for _, min := range []uint64{0, seqs[0]} {
		req := e.request()
		req.MinSequence = min
		c := e.issue(req).Credential
		calls := e.authz.requests()
		want := max(min, key.PublishedSequence)
		if got := calls[len(calls)-1].MinSequence; got != want {
			t.Fatalf("request MinSequence %d: asked with %d, want %d", min, got, want)
		}
		if c.Sequence < want {
			t.Fatalf("tsq %d is before %d", c.Sequence, want)
		}
	}
}

func mustList(t *testing.T, iss *issuer.Issuer, f issuer.Filter) []issuer.Credential {
	t.Helper()
	var all []issuer.Credential
	token := ""
	for {
		page, next, err := iss.ListCredentials(f, 2, token)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 {
			t.Fatalf("page of %d, want at most 2", len(page))
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		token = next
	}
}

func ids(cs []issuer.Credential) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func TestInventory(t *testing.T) {
	e := newEnv(t)
	issueAs := func(id string, ttl time.Duration) issuer.Credential {
		req := e.request()
		req.Assertion, req.TTL = e.assertion(id), ttl
		if id == "globex-bot" {
			req.Scopes = []string{"crm:read"}
		}
		return e.issue(req).Credential
	}
	a := issueAs(workload, time.Minute)
	b := issueAs(sibling, time.Hour)
	c := issueAs("globex-bot", time.Hour)
	d := issueAs(workload, time.Hour)

	got, err := e.iss.Credential(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Fatalf("Credential (-issued +stored):\n%s", diff)
	}
	_, err = e.iss.Credential("no-such-jti")
	wantKind(t, err, fail.NotFound)

	tests := []struct {
		name   string
		filter issuer.Filter
		want   []issuer.Credential
	}{
		{"all, newest first", issuer.Filter{}, []issuer.Credential{d, c, b, a}},
		{"by partner", issuer.Filter{PartnerID: partner}, []issuer.Credential{d, b, a}},
		{"by other partner", issuer.Filter{PartnerID: "globex"}, []issuer.Credential{c}},
		{"by workload", issuer.Filter{WorkloadID: workload}, []issuer.Credential{d, a}},
		{"by workload and partner", issuer.Filter{PartnerID: partner, WorkloadID: sibling}, []issuer.Credential{b}},
		{"workload of another partner", issuer.Filter{PartnerID: "globex", WorkloadID: sibling}, nil},
		{"unknown partner", issuer.Filter{PartnerID: "acm"}, nil}, // a prefix of acme
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(ids(tc.want), ids(mustList(t, e.iss, tc.filter))); diff != "" {
				t.Fatalf("ids (-want +got):\n%s", diff)
			}
		})
	}

	// Two minutes on, a has expired: live-only listings leave it out.
	e.clock.Advance(2 * time.Minute)
	if diff := cmp.Diff(ids([]issuer.Credential{d, b}), ids(mustList(t, e.iss, issuer.Filter{PartnerID: partner, LiveOnly: true}))); diff != "" {
		t.Fatalf("live ids (-want +got):\n%s", diff)
	}

	// The inventory survives a restart.
	e.reopen()
	if diff := cmp.Diff(ids([]issuer.Credential{d, c, b, a}), ids(mustList(t, e.iss, issuer.Filter{}))); diff != "" {
		t.Fatalf("ids after restart (-want +got):\n%s", diff)
	}
	for _, bad := range []struct {
		size  int
		token string
		field string
	}{{-1, "", "page_size"}, {10, "!!", "page_token"}, {10, "AAAA", "page_token"}} {
		_, _, err := e.iss.ListCredentials(issuer.Filter{}, bad.size, bad.token)
		wantKind(t, err, fail.Invalid)
		if f := err.(*fail.Error).Field; f != bad.field {
			t.Errorf("field = %q, want %q", f, bad.field)
		}
	}
}
