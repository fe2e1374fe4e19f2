package pdp_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/token"
)

// decide asks the PDP with req, first waiting for everything the log holds to be applied. Action
// and Resource default to read and api.
func (e *env) decide(t testing.TB, req pdp.CheckRequest) pdp.Decision {
	t.Helper()
	if req.Action == "" {
		req.Action = "read"
	}
	if req.Resource == "" {
		req.Resource = "api"
	}
	req.MinSequence = e.log.Head()
	d, err := e.pdp.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return d
}

func TestCheckClaims(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, e *env)
		edit    func(c *pdp.VerifiedClaims)
		req     func(r *pdp.CheckRequest)
		trusted bool // default true; see untrusted below
		want    string
	}{
		{name: "valid claims", want: pdp.ReasonGranted},
		{name: "untrusted caller", req: func(r *pdp.CheckRequest) { r.Trusted = false }, want: pdp.ReasonClaimsNotTrusted},
		{name: "no iss", edit: func(c *pdp.VerifiedClaims) { c.Issuer = "" }, want: pdp.ReasonClaimsIncomplete},
		{name: "no jti", edit: func(c *pdp.VerifiedClaims) { c.ID = "" }, want: pdp.ReasonClaimsIncomplete},
		{name: "no iat", edit: func(c *pdp.VerifiedClaims) { c.IssuedAt = 0 }, want: pdp.ReasonClaimsIncomplete},
		{name: "no exp", edit: func(c *pdp.VerifiedClaims) { c.Expiry = 0 }, want: pdp.ReasonClaimsIncomplete},
		{name: "no tsq", edit: func(c *pdp.VerifiedClaims) { c.Sequence = 0 }, want: pdp.ReasonClaimsIncomplete},
		{name: "no kid", edit: func(c *pdp.VerifiedClaims) { c.KeyID = "" }, want: pdp.ReasonClaimsIncomplete},
		{name: "no sub", edit: func(c *pdp.VerifiedClaims) { c.Subject = "" }, want: pdp.ReasonClaimsIncomplete},
		{name: "untrusted and incomplete", edit: func(c *pdp.VerifiedClaims) { c.ID = "" }, req: func(r *pdp.CheckRequest) { r.Trusted = false }, want: pdp.ReasonClaimsNotTrusted},
		{name: "unknown kid", edit: func(c *pdp.VerifiedClaims) { c.KeyID = "k9" }, want: pdp.ReasonUnknownKey},
		{name: "revoked kid", setup: func(t *testing.T, e *env) { pdptest.Revoke(t, e.log, keyK, "k1") }, want: pdp.ReasonKeyRevoked},
		{name: "issuer is not the key's", edit: func(c *pdp.VerifiedClaims) { c.Issuer = "https://elsewhere.test" }, want: pdp.ReasonWrongIssuer},
		{name: "expired", edit: func(c *pdp.VerifiedClaims) { c.Expiry = time.Now().Unix() - 1 }, want: pdp.ReasonExpired},
		{name: "issued in the future", edit: func(c *pdp.VerifiedClaims) { c.IssuedAt = time.Now().Add(time.Hour).Unix() }, want: pdp.ReasonNotYetValid},
		{name: "other epoch", edit: func(c *pdp.VerifiedClaims) { c.Epoch = "elsewhere" }, want: pdp.ReasonEpochMismatch},
		{name: "tsq ahead", edit: func(c *pdp.VerifiedClaims) { c.Sequence += 50 }, want: pdp.ReasonSequenceAhead},
		{name: "jti revoked", setup: func(t *testing.T, e *env) { pdptest.Revoke(t, e.log, credentialK, "jti-claims") }, want: pdp.ReasonRevoked},
		{name: "partner blocked", setup: func(t *testing.T, e *env) { pdptest.Revoke(t, e.log, partnerK, "acme") }, want: pdp.ReasonPartnerBlocked},
		{name: "workload restored after tsq", setup: func(t *testing.T, e *env) {
			pdptest.Revoke(t, e.log, workloadK, "acme-bot")
			pdptest.Restore(t, e.log, workloadK, "acme-bot")
		}, edit: func(c *pdp.VerifiedClaims) { c.Sequence = 1 }, want: pdp.ReasonWorkloadRevoked},
		{name: "integration suspended", setup: func(t *testing.T, e *env) {
			pdptest.Publish(t, e.log, integration(treatyv1.IntegrationState_INTEGRATION_STATE_SUSPENDED, scopes, audiences))
		}, want: pdp.ReasonIntegrationInactive},
		{name: "scope missing", req: func(r *pdp.CheckRequest) { r.Action = "admin" }, want: pdp.ReasonScopeMissing},
		{name: "other audience", req: func(r *pdp.CheckRequest) { r.Resource = "billing" }, want: pdp.ReasonAudienceMismatch},
		{name: "workload named is the subject", req: func(r *pdp.CheckRequest) { r.WorkloadID = "acme-bot" }, want: pdp.ReasonGranted},
		{name: "workload named is not the subject", req: func(r *pdp.CheckRequest) { r.WorkloadID = "other-bot" }, want: pdp.ReasonSubjectMismatch},
		{name: "bound to a certificate, none presented", edit: func(c *pdp.VerifiedClaims) {
			c.Confirmation = &token.Confirmation{X5TS256: "thumb"}
		}, want: pdp.ReasonProofMissing},
		{name: "bound to a certificate, presented", edit: func(c *pdp.VerifiedClaims) {
			c.Confirmation = &token.Confirmation{X5TS256: "thumb"}
		}, req: func(r *pdp.CheckRequest) { r.Proof.CertThumbprint = "thumb" }, want: pdp.ReasonGranted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, pdp.Config{})
			if tc.setup != nil {
				tc.setup(t, e)
			}
			vc := &pdp.VerifiedClaims{Claims: e.claims(), KeyID: "k1"}
			vc.ID = "jti-claims"
			if tc.edit != nil {
				tc.edit(vc)
			}
			req := pdp.CheckRequest{Claims: vc, Trusted: true, Action: "read", Resource: "api"}
			if tc.req != nil {
				tc.req(&req)
			}
			d := e.decide(t, req)
			if got := reason(t, d); got != tc.want {
				t.Errorf("reason = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestCheckWorkload(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, e *env)
		req   func(r *pdp.CheckRequest)
		want  string
	}{
		{name: "current grants allow", want: pdp.ReasonGranted},
		{name: "second scope of the ceiling", req: func(r *pdp.CheckRequest) { r.Action = "write" }, want: pdp.ReasonGranted},
		{name: "untrusted caller", req: func(r *pdp.CheckRequest) { r.Trusted = false }, want: pdp.ReasonSubjectNotTrusted},
		{name: "unknown workload", req: func(r *pdp.CheckRequest) { r.WorkloadID = "ghost-bot" }, want: pdp.ReasonWorkloadUnknown},
		{name: "action outside the ceiling", req: func(r *pdp.CheckRequest) { r.Action = "admin" }, want: pdp.ReasonScopeNotAllowed},
		{name: "resource outside the audiences", req: func(r *pdp.CheckRequest) { r.Resource = "billing" }, want: pdp.ReasonAudienceNotAllowed},
		{name: "partner blocked", setup: func(t *testing.T, e *env) { pdptest.Revoke(t, e.log, partnerK, "acme") }, want: pdp.ReasonPartnerBlocked},
		{name: "integration blocked", setup: func(t *testing.T, e *env) { pdptest.Revoke(t, e.log, integrationK, "acme-api") }, want: pdp.ReasonIntegrationBlocked},
		{name: "workload blocked", setup: func(t *testing.T, e *env) { pdptest.Revoke(t, e.log, workloadK, "acme-bot") }, want: pdp.ReasonWorkloadBlocked},
		{name: "restored workload (no credential, no watermark)", setup: func(t *testing.T, e *env) {
			pdptest.Revoke(t, e.log, workloadK, "acme-bot")
			pdptest.Restore(t, e.log, workloadK, "acme-bot")
		}, want: pdp.ReasonGranted},
		{name: "partner suspended", setup: publishing(pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_SUSPENDED, pdptest.ContractEnd)), want: pdp.ReasonPartnerSuspended},
		{name: "contract ended", setup: publishing(pdptest.Partner("acme", partnerActive, past)), want: pdp.ReasonContractEnded},
		{name: "integration retired", setup: publishing(integration(treatyv1.IntegrationState_INTEGRATION_STATE_RETIRED, scopes, audiences)), want: pdp.ReasonIntegrationInactive},
		{name: "workload suspended", setup: publishing(pdptest.Workload("acme-bot", "acme-api", "acme", treatyv1.WorkloadState_WORKLOAD_STATE_SUSPENDED)), want: pdp.ReasonWorkloadInactive},
		{name: "workload and integration disagree on the partner", setup: publishing(
			pdptest.Partner("other", partnerActive, pdptest.ContractEnd),
			pdptest.Workload("acme-bot", "acme-api", "other", workloadActive),
		), want: pdp.ReasonSubjectMismatch},
		{name: "ceiling narrowed", setup: publishing(integration(integrationActive, []string{"write"}, audiences)), want: pdp.ReasonScopeNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, pdp.Config{})
			if tc.setup != nil {
				tc.setup(t, e)
			}
			req := pdp.CheckRequest{WorkloadID: "acme-bot", Trusted: true}
			if tc.req != nil {
				tc.req(&req)
			}
			d := e.decide(t, req)
			if got := reason(t, d); got != tc.want {
				t.Errorf("reason = %s, want %s", got, tc.want)
			}
			if d.Allow && (d.Subject != "acme-bot" || d.Partner != "acme") {
				t.Errorf("allow names subject %q partner %q", d.Subject, d.Partner)
			}
		})
	}
}

// A token names its subject itself; a workload named beside it must be that subject.
func TestCheckTokenWithWorkload(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	tok := e.token(t, nil)
	if got := reason(t, e.decide(t, pdp.CheckRequest{Token: tok, WorkloadID: "acme-bot"})); got != pdp.ReasonGranted {
		t.Errorf("token with its own workload: %s", got)
	}
	if got := reason(t, e.decide(t, pdp.CheckRequest{Token: tok, WorkloadID: "other-bot"})); got != pdp.ReasonSubjectMismatch {
		t.Errorf("token with another workload: %s", got)
	}
	if got := reason(t, e.decide(t, pdp.CheckRequest{})); got != pdp.ReasonMalformedToken {
		t.Errorf("no subject: %s", got)
	}
}

// The cache skips the signature, never the checks that follow it: a token decided once (and so
// cached) is denied at once by each later change of the feed.
func TestCachedTokenFollowsTheFeed(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, e *env, c token.Claims)
		want   string
	}{
		{name: "jti revoked", change: func(t *testing.T, e *env, c token.Claims) { pdptest.Revoke(t, e.log, credentialK, c.ID) }, want: pdp.ReasonRevoked},
		{name: "key revoked", change: func(t *testing.T, e *env, _ token.Claims) { pdptest.Revoke(t, e.log, keyK, "k1") }, want: pdp.ReasonKeyRevoked},
		{name: "partner blocked", change: func(t *testing.T, e *env, _ token.Claims) { pdptest.Revoke(t, e.log, partnerK, "acme") }, want: pdp.ReasonPartnerBlocked},
		{name: "integration restored after tsq", change: func(t *testing.T, e *env, _ token.Claims) {
			pdptest.Revoke(t, e.log, integrationK, "acme-api")
			pdptest.Restore(t, e.log, integrationK, "acme-api")
		}, want: pdp.ReasonIntegrationRevoked},
		{name: "workload suspended", change: func(t *testing.T, e *env, _ token.Claims) {
			pdptest.Publish(t, e.log, pdptest.Workload("acme-bot", "acme-api", "acme", treatyv1.WorkloadState_WORKLOAD_STATE_SUSPENDED))
		}, want: pdp.ReasonWorkloadInactive},
		{name: "ceiling narrowed", change: func(t *testing.T, e *env, _ token.Claims) {
			pdptest.Publish(t, e.log, integration(integrationActive, []string{"write"}, audiences))
		}, want: pdp.ReasonScopeNotAllowed},
		{name: "key republished (a new record: verified again)", change: func(t *testing.T, e *env, _ token.Claims) {
			pdptest.Publish(t, e.log, e.key.Published(t))
		}, want: pdp.ReasonGranted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, pdp.Config{})
			c := e.claims()
			tok := e.key.Mint(t, c)
			for range 2 {
				if got := reason(t, e.check(t, tok, "read", "api")); got != pdp.ReasonGranted {
					t.Fatalf("before the change: %s", got)
				}
			}
			tc.change(t, e, c)
			if got := reason(t, e.check(t, tok, "read", "api")); got != tc.want {
				t.Errorf("after the change: %s, want %s", got, tc.want)
			}
		})
	}
}

// The cache is an optimization: every algorithm the feed accepts decides the same with and
// without it, first-seen and warm.
func TestCheckAlgorithms(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.ES384, jose.RS256, jose.PS256} {
		for _, size := range []int{0, -1} {
			t.Run(string(alg), func(t *testing.T) {
				e := newEnv(t, pdp.Config{TokenCacheSize: size})
				k := pdptest.NewKeyAlg(t, "k-"+string(alg), alg)
				pdptest.Publish(t, e.log, k.Published(t))
				tok := k.Mint(t, e.claims())
				for range 2 {
					if got := reason(t, e.check(t, tok, "read", "api")); got != pdp.ReasonGranted {
						t.Fatalf("reason = %s", got)
					}
				}
				forged := pdptest.NewKeyAlg(t, k.Kid, alg).Mint(t, e.claims())
				if got := reason(t, e.check(t, forged, "read", "api")); got != pdp.ReasonBadSignature {
					t.Errorf("forged: %s", got)
				}
			})
		}
	}
}

// The grant path, with a warm cache and no policies, allocates nothing, and handing the decision
// to a recorder adds nothing either.
func TestCheckDoesNotAllocate(t *testing.T) {
	// An exchanged token walks its act and anc chains on every decision: that must not allocate
	// either. Here acme-bot exchanged its own token twice.
	exchanged := func(e *env) func(*token.Claims) {
		return func(c *token.Claims) {
			c.Actor = &token.Actor{Subject: "acme-bot", Actor: &token.Actor{Subject: "acme-bot"}}
			c.Ancestors = []token.Ancestor{{ID: "parent", KeyID: e.key.Kid, Sequence: c.Sequence}, {ID: "grandparent", KeyID: e.key.Kid, Sequence: c.Sequence}}
		}
	}
	for _, rec := range []pdp.Recorder{nil, discard{}} {
		for _, chain := range []bool{false, true} {
			e := newEnv(t, pdp.Config{Recorder: rec})
			var edit func(*token.Claims)
			if chain {
				edit = exchanged(e)
			}
			req := pdp.CheckRequest{Token: e.token(t, edit), Action: "read", Resource: "api"}
			ctx := context.Background()
			if d, err := e.pdp.Check(ctx, req); err != nil || !d.Allow {
				t.Fatalf("Check (exchanged %v) = %+v, %v", chain, d, err)
			}
			if n := testing.AllocsPerRun(100, func() { _, _ = e.pdp.Check(ctx, req) }); n != 0 {
				t.Errorf("Check (recorder %T, exchanged %v) allocates %v times per decision, want 0", rec, chain, n)
			}
		}
	}
}

// discard is a Recorder that keeps nothing.
type discard struct{}

func (discard) Record(pdp.CheckRequest, pdp.Decision, time.Duration) {}
