package issuer_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/token"
)

func TestIssueRefusals(t *testing.T) {
	block := func(kind treatyv1.TargetKind, id string) func(e *env) (string, uint64) {
		return func(e *env) (string, uint64) { return workload, e.world.Revoke(kind, id) }
	}
	tests := []struct {
		name string
		// config changes the issuer's config before it starts.
		config func(t *testing.T, c *issuer.Config)
		// setup runs once the issuer is up, and returns the workload to issue as (empty: the
		// fixture workload) and the feed sequence its writes landed at (the request's MinSequence,
		// so the PDP decides on them).
		setup func(e *env) (as string, minSeq uint64)
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
		// The registry's API cannot suspend a workload or an integration yet (the lifecycle issue
		// adds it), so these two alter the real registry's answer.
		{name: "workload suspended", config: func(_ *testing.T, c *issuer.Config) {
			withDirectory(faultyDirectory{workload: func(w *issuer.Workload) { w.Active = false }})(c)
		}, want: fail.Denied, msg: `workload "acme-billing-sync" is not active`},
		{name: "integration suspended", config: func(_ *testing.T, c *issuer.Config) {
			withDirectory(faultyDirectory{integration: func(i *issuer.Integration) { i.Active = false }})(c)
		}, want: fail.Denied, msg: `integration "acme-billing" is not active`},
		{name: "partner suspended", setup: func(e *env) (string, uint64) { return workload, e.world.SuspendPartner(partner) },
			want: fail.Denied, msg: `partner "acme" is not active`},
		{name: "partner offboarded", setup: func(e *env) (string, uint64) { return workload, e.world.OffboardPartner(partner) },
			want: fail.Denied, msg: `partner "acme" is not active`},
		// The registry only takes contract ends in the future, so the issuer's clock moves past a
		// near one. The PDP's clock still says the contract runs: the issuer's own check refuses.
		{name: "contract ended", setup: func(e *env) (string, uint64) {
			id, seq := e.onboard("initech", time.Now().Add(time.Hour), time.Hour)
			e.clock.Advance(2 * time.Hour)
			return id, seq
		}, want: fail.Denied, msg: `the contract of partner "initech" ended`},
		// The registry refuses a partner without a contract end, and its gRPC Directory reads a
		// missing one as 1970 (ended); the issuer's own check is for other Directories.
		{name: "no contract end", config: func(_ *testing.T, c *issuer.Config) {
			withDirectory(faultyDirectory{partner: func(p *issuer.Partner) { p.ContractEnd = time.Time{} }})(c)
		}, want: fail.Denied, msg: "no contract end"},
		{name: "registry down", config: func(t *testing.T, c *issuer.Config) { c.Directory = issuertest.UnreachableDirectory(t) },
			want: fail.Unavailable, msg: "peer service unavailable"},
		// The gRPC Directory fails internally only when the registry hands back a workload key that
		// does not parse or match its key id, which the registry's own validation prevents.
		{name: "registry fault", config: func(_ *testing.T, c *issuer.Config) {
			withDirectory(faultyDirectory{err: errors.New("unusable key")})(c)
		}, want: fail.Internal, msg: "registry lookup of the client"},
		{name: "decision point denies: workload blocked", setup: block(treatyv1.TargetKind_TARGET_KIND_WORKLOAD, workload),
			want: fail.Denied, msg: "issuance denied: workload_blocked"},
		{name: "decision point denies: integration blocked", setup: block(treatyv1.TargetKind_TARGET_KIND_INTEGRATION, integration),
			want: fail.Denied, msg: "issuance denied: integration_blocked"},
		{name: "decision point denies: partner blocked", setup: block(treatyv1.TargetKind_TARGET_KIND_PARTNER, partner),
			want: fail.Denied, msg: "issuance denied: partner_blocked"},
		{name: "decision point syncing", setup: func(e *env) (string, uint64) {
			e.cfg.Authorizer = e.world.SyncingPDP(e.activeKey().PublishedSequence)
			e.reopen()
			return workload, 0
		}, want: fail.Unavailable, msg: "catching up"},
		{name: "decision point stale", setup: func(e *env) (string, uint64) {
			e.cfg.Authorizer = e.world.StalePDP(e.activeKey().PublishedSequence)
			e.reopen()
			return workload, 0
		}, want: fail.Unavailable, msg: "catching up"},
		{name: "decision point down", config: func(t *testing.T, c *issuer.Config) { c.Authorizer = issuertest.UnreachableAuthorizer(t) },
			want: fail.Unavailable, msg: "peer service unavailable"},
		// The PDP waits up to five seconds for a sequence it has not applied, then gives up.
		{name: "decision point behind min sequence", edit: func(r *issuer.Request) { r.MinSequence = 1 << 40 },
			want: fail.Unavailable, msg: "min_sequence 1099511627776 was not applied in time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has its own world and issuer
			var edits []func(*issuer.Config)
			if tc.config != nil {
				edits = append(edits, func(c *issuer.Config) { tc.config(t, c) })
			}
			e := newEnv(t, edits...)
			as, minSeq := workload, uint64(0)
			if tc.setup != nil {
				as, minSeq = tc.setup(e)
			}
			req := e.requestAs(as)
			req.MinSequence = minSeq
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

// TestBlockAndRestore pulls the kill switch on a workload, its integration and its partner, and
// lifts it again, through the real revoker: issuance is refused while a block is in force and
// allowed after the restore, at or after the restore's sequence; the real PDP then refuses the
// credential minted before the block and accepts the new one.
func TestBlockAndRestore(t *testing.T) {
	e := newEnv(t)
	for _, target := range []struct {
		kind    treatyv1.TargetKind
		id      string
		blocked string // the PDP's reason while the block is in force
		revoked string // and for a credential minted before the restore
	}{
		{treatyv1.TargetKind_TARGET_KIND_WORKLOAD, workload, "workload_blocked", "workload_revoked"},
		{treatyv1.TargetKind_TARGET_KIND_INTEGRATION, integration, "integration_blocked", "integration_revoked"},
		{treatyv1.TargetKind_TARGET_KIND_PARTNER, partner, "partner_blocked", "partner_revoked"},
	} {
		t.Run(target.id, func(t *testing.T) {
			before := e.issue(e.request())

			req := e.request()
			req.MinSequence = e.world.Revoke(target.kind, target.id)
			_, err := e.iss.Issue(context.Background(), req)
			wantKind(t, err, fail.Denied)
			if !strings.Contains(err.Error(), target.blocked) {
				t.Fatalf("error %q does not say %s", err, target.blocked)
			}

			restored := e.world.Restore(target.kind, target.id)
			req = e.request()
			req.MinSequence = restored
			after := e.issue(req)
			if after.Credential.Sequence < restored {
				t.Fatalf("tsq %d is before the restore at %d", after.Credential.Sequence, restored)
			}
			if got := e.world.Check(before.Token, "invoices:read", audience, restored); got != target.revoked {
				t.Errorf("credential minted before the block: PDP says %s, want %s", got, target.revoked)
			}
			if got := e.world.Check(after.Token, "invoices:read", audience, restored); got != "granted" {
				t.Errorf("credential minted after the restore: PDP says %s, want granted", got)
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
			t.Parallel() // each case has its own world and issuer
			e := newEnv(t, func(c *issuer.Config) { c.MaxCredentialTTL = tc.maxTTL })
			end := time.Now().Add(90 * 24 * time.Hour)
			if tc.contract != 0 {
				end = time.Now().Add(tc.contract)
			}
			integTTL := time.Hour
			if tc.integration != 0 {
				integTTL = tc.integration
			}
			// A partner of its own, with the case's contract end and integration cap.
			id, seq := e.onboard("initech", end, integTTL)
			req := e.requestAs(id)
			req.TTL, req.MinSequence = tc.requested, seq
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
	published, ok := e.world.State().SigningKey(c.Kid)
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
		Epoch: e.world.State().Epoch(), // the feed's epoch, which the PDP binds tsq to
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
	calls := e.calls.requests()
	last := calls[len(calls)-1]
	if last.WorkloadID != workload || last.Kid != c.Kid || last.Audience != req.Audience ||
		strings.Join(last.Scopes, " ") != want.Scope || last.MinSequence != e.activeKey().PublishedSequence {
		t.Fatalf("authorizer was asked %+v", last)
	}
	// The real PDP accepts the token for each of its scopes at its audience, and nothing else.
	for action, want := range map[string]string{"reports:read": "granted", "invoices:read": "granted", "invoices:write": "scope_missing"} {
		if got := e.world.Check(out.Token, action, req.Audience, 0); got != want {
			t.Errorf("PDP check of %s: %s, want %s", action, got, want)
		}
	}
	if got := e.world.Check(out.Token, "reports:read", audience, 0); got != "audience_mismatch" {
		t.Errorf("PDP check at another audience: %s, want audience_mismatch", got)
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
	written := e.world.CreatePartner("initech", time.Now().Add(time.Hour))
	if written <= key.PublishedSequence {
		t.Fatalf("write landed at %d, not after the key's %d", written, key.PublishedSequence)
	}
	for _, min := range []uint64{0, written} {
		req := e.request()
		req.MinSequence = min
		c := e.issue(req).Credential
		calls := e.calls.requests()
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
		{"by integration", issuer.Filter{IntegrationID: integration}, []issuer.Credential{d, b, a}},
		{"by integration and workload", issuer.Filter{IntegrationID: integration, WorkloadID: workload}, []issuer.Credential{d, a}},
		{"integration of another partner", issuer.Filter{PartnerID: "globex", IntegrationID: integration}, nil},
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
	if diff := cmp.Diff(ids([]issuer.Credential{a}), ids(mustList(t, e.iss, issuer.Filter{IntegrationID: integration, ExpiredOnly: true}))); diff != "" {
		t.Fatalf("expired ids (-want +got):\n%s", diff)
	}
	_, _, err = e.iss.ListCredentials(issuer.Filter{LiveOnly: true, ExpiredOnly: true}, 0, "")
	wantKind(t, err, fail.Invalid)

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

// lagging is the real Authorizer behind a PDP that has not yet applied the registry's latest
// changes: its first answers say workload_unknown, as such a PDP would.
type lagging struct {
	issuer.Authorizer
	behind atomic.Int32 // how many more answers lag
}

func (l *lagging) AuthorizeIssuance(ctx context.Context, req issuer.IssuanceRequest) (issuer.IssuanceDecision, error) {
	if l.behind.Add(-1) >= 0 {
		return issuer.IssuanceDecision{Reasons: []string{"workload_unknown"}, DecisionID: "lagging"}, nil
	}
	return l.Authorizer.AuthorizeIssuance(ctx, req)
}

// TestIssuanceWaitsForALaggingPDP: the registry has confirmed the workload, so a PDP that does
// not know it yet is behind, not right: the issuer asks again for a little while, and says
// "retry" rather than "denied" if the PDP stays behind.
func TestIssuanceWaitsForALaggingPDP(t *testing.T) {
	lag := &lagging{}
	e := newEnv(t, func(c *issuer.Config) { lag.Authorizer = c.Authorizer; c.Authorizer = lag })

	lag.behind.Store(2)
	if out := e.issue(e.request()); out.Credential.WorkloadID != workload {
		t.Fatalf("issued to %q", out.Credential.WorkloadID)
	}

	lag.behind.Store(1000)
	_, err := e.iss.Issue(context.Background(), e.request())
	wantKind(t, err, fail.Unavailable)
	if !strings.Contains(err.Error(), "not caught up with the registry") {
		t.Fatalf("error %q does not say the PDP is behind", err)
	}
}
