package pdp_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/token"
)

// Setups for the decision tables: each changes the feed after onboarding, through the real
// revoker, and returns the token to check.
type setup func(t *testing.T, e *env) string

func valid(t *testing.T, e *env) string { return e.token(t, nil) }

func claimsEdit(edit func(*token.Claims)) setup {
	return func(t *testing.T, e *env) string { return e.token(t, edit) }
}

func published(events ...*treatyv1.Event) setup {
	return func(t *testing.T, e *env) string {
		pdptest.Publish(t, e.log, events...)
		return e.token(t, nil)
	}
}

func blocked(kind treatyv1.TargetKind, id string) setup {
	return func(t *testing.T, e *env) string {
		pdptest.Revoke(t, e.log, kind, id)
		return e.token(t, nil)
	}
}

// restored blocks and restores a target, and mints a token whose tsq is offset from the restore's
// sequence. For a positive offset the feed first moves on past the restore, so the tsq is one the
// PDP has applied.
func restored(kind treatyv1.TargetKind, id string, offset int) setup {
	return func(t *testing.T, e *env) string {
		pdptest.Revoke(t, e.log, kind, id)
		r := pdptest.Restore(t, e.log, kind, id)
		for i := range offset {
			pdptest.Revoke(t, e.log, credentialK, fmt.Sprintf("unrelated-%d", i))
		}
		return e.token(t, func(c *token.Claims) { c.Sequence = uint64(int(r) + offset) })
	}
}

var (
	past        = time.Now().Add(-time.Hour)
	scopes      = []string{"read", "write"}
	audiences   = []string{"api"}
	integration = func(state treatyv1.IntegrationState, scopes, audiences []string) *treatyv1.Event {
		return pdptest.Integration("acme-api", "acme", state, scopes, audiences)
	}
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name             string
		setup            setup
		action, resource string // default read, api
		want             string
	}{
		{name: "valid token", setup: valid, want: pdp.ReasonGranted},
		{name: "second scope", setup: valid, action: "write", want: pdp.ReasonGranted},

		// The credential itself.
		{name: "not a JWS", setup: func(*testing.T, *env) string { return "not.a.token" }, want: pdp.ReasonMalformedToken},
		{name: "too large", setup: func(*testing.T, *env) string { return strings.Repeat("a", pdp.MaxTokenBytes+1) }, want: pdp.ReasonMalformedToken},
		{name: "not an access token (typ JWT)", setup: func(t *testing.T, e *env) string {
			return e.key.Sign(t, e.claims(), map[jose.HeaderKey]any{jose.HeaderType: "JWT"})
		}, want: pdp.ReasonMalformedToken},
		{name: "no typ", setup: func(t *testing.T, e *env) string { return e.key.Sign(t, e.claims(), nil) }, want: pdp.ReasonMalformedToken},
		{name: "no kid", setup: func(t *testing.T, e *env) string {
			return (&pdptest.Key{Kid: "", Issuer: pdptest.Issuer, Private: e.key.Private}).Mint(t, e.claims())
		}, want: pdp.ReasonMalformedToken},
		{name: "signed payload lacks jti", setup: claimsEdit(func(c *token.Claims) { c.ID = "" }), want: pdp.ReasonMalformedToken},
		{name: "signed payload is not claims", setup: func(t *testing.T, e *env) string {
			return e.key.Sign(t, map[string]any{"sub": 42}, map[jose.HeaderKey]any{jose.HeaderType: token.Type})
		}, want: pdp.ReasonMalformedToken},
		{name: "key never published", setup: func(t *testing.T, e *env) string {
			return pdptest.NewKey(t, "k2").Mint(t, e.claims())
		}, want: pdp.ReasonUnknownKey},
		{name: "key revoked", setup: blocked(treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY, "k1"), want: pdp.ReasonKeyRevoked},
		{name: "forged with another key under a published kid", setup: func(t *testing.T, e *env) string {
			return (&pdptest.Key{Kid: "k1", Issuer: pdptest.Issuer, Private: pdptest.NewKey(t, "x").Private}).Mint(t, e.claims())
		}, want: pdp.ReasonBadSignature},
		{name: "tampered payload", setup: func(t *testing.T, e *env) string {
			parts := strings.Split(e.token(t, nil), ".")
			c := e.claims()
			c.Scope = "read write admin"
			raw, _ := json.Marshal(c)
			parts[1] = base64.RawURLEncoding.EncodeToString(raw)
			return strings.Join(parts, ".")
		}, action: "admin", want: pdp.ReasonBadSignature},
		{name: "algorithm is not the key's", setup: func(t *testing.T, e *env) string {
			k := pdptest.NewKey(t, "k-es")
			ev := k.Published(t)
			ev.GetSigningKeyPublished().Algorithm = string(jose.ES256)
			pdptest.Publish(t, e.log, ev)
			return k.Mint(t, e.claims())
		}, want: pdp.ReasonBadSignature},
		{name: "wrong issuer", setup: claimsEdit(func(c *token.Claims) { c.Issuer = "https://elsewhere.test" }), want: pdp.ReasonWrongIssuer},
		{name: "expired", setup: claimsEdit(func(c *token.Claims) { c.Expiry = time.Now().Unix() - 1 }), want: pdp.ReasonExpired},
		{name: "expires now", setup: claimsEdit(func(c *token.Claims) { c.Expiry = time.Now().Unix() }), want: pdp.ReasonExpired},
		{name: "issued in the future", setup: claimsEdit(func(c *token.Claims) { c.IssuedAt = time.Now().Add(5 * time.Minute).Unix() }), want: pdp.ReasonNotYetValid},
		{name: "issued within the clock skew", setup: claimsEdit(func(c *token.Claims) { c.IssuedAt = time.Now().Add(30 * time.Second).Unix() }), want: pdp.ReasonGranted},
		{name: "jti revoked", setup: func(t *testing.T, e *env) string {
			c := e.claims()
			pdptest.Revoke(t, e.log, credentialK, c.ID)
			return e.key.Mint(t, c)
		}, want: pdp.ReasonRevoked},
		{name: "another jti revoked", setup: func(t *testing.T, e *env) string {
			pdptest.Revoke(t, e.log, credentialK, "someone-else")
			return e.token(t, nil)
		}, want: pdp.ReasonGranted},

		// Kill switch: blocks, and watermarks after a restore.
		{name: "partner blocked", setup: blocked(partnerK, "acme"), want: pdp.ReasonPartnerBlocked},
		{name: "integration blocked", setup: blocked(integrationK, "acme-api"), want: pdp.ReasonIntegrationBlocked},
		{name: "workload blocked", setup: blocked(workloadK, "acme-bot"), want: pdp.ReasonWorkloadBlocked},
		{name: "partner restored after tsq", setup: restored(partnerK, "acme", -1), want: pdp.ReasonPartnerRevoked},
		{name: "partner restored at tsq", setup: restored(partnerK, "acme", 0), want: pdp.ReasonGranted},
		{name: "partner restored before tsq", setup: restored(partnerK, "acme", 1), want: pdp.ReasonGranted},
		{name: "tsq beyond the feed", setup: claimsEdit(func(c *token.Claims) { c.Sequence += 50 }), want: pdp.ReasonSequenceAhead},
		{name: "token of another epoch", setup: claimsEdit(func(c *token.Claims) { c.Epoch = "0123456789abcdef" }), want: pdp.ReasonEpochMismatch},
		{name: "token without an epoch", setup: claimsEdit(func(c *token.Claims) { c.Epoch = "" }), want: pdp.ReasonEpochMismatch},
		{name: "token minted before the block", setup: restored(partnerK, "acme", -2), want: pdp.ReasonPartnerRevoked},
		{name: "integration restored after tsq", setup: restored(integrationK, "acme-api", -1), want: pdp.ReasonIntegrationRevoked},
		{name: "integration restored at tsq", setup: restored(integrationK, "acme-api", 0), want: pdp.ReasonGranted},
		{name: "workload restored after tsq", setup: restored(workloadK, "acme-bot", -1), want: pdp.ReasonWorkloadRevoked},
		{name: "workload restored at tsq", setup: restored(workloadK, "acme-bot", 0), want: pdp.ReasonGranted},
		{name: "partner block wins over workload block", setup: func(t *testing.T, e *env) string {
			pdptest.Revoke(t, e.log, workloadK, "acme-bot")
			pdptest.Revoke(t, e.log, partnerK, "acme")
			return e.token(t, nil)
		}, want: pdp.ReasonPartnerBlocked},

		// Lifecycle and contract.
		{name: "partner unknown", setup: claimsEdit(func(c *token.Claims) { c.Partner = "ghost" }), want: pdp.ReasonPartnerUnknown},
		{name: "partner proposed", setup: published(pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_PROPOSED, pdptest.ContractEnd)), want: pdp.ReasonPartnerInactive},
		{name: "partner suspended", setup: published(pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_SUSPENDED, pdptest.ContractEnd)), want: pdp.ReasonPartnerSuspended},
		{name: "partner offboarding", setup: published(pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING, pdptest.ContractEnd)), want: pdp.ReasonPartnerTerminated},
		{name: "partner terminated", setup: published(pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_TERMINATED, pdptest.ContractEnd)), want: pdp.ReasonPartnerTerminated},
		{name: "contract ended", setup: published(pdptest.Partner("acme", partnerActive, past)), want: pdp.ReasonContractEnded},
		{name: "integration unknown", setup: claimsEdit(func(c *token.Claims) { c.Integration = "ghost-api" }), want: pdp.ReasonIntegrationUnknown},
		{name: "integration suspended", setup: published(integration(treatyv1.IntegrationState_INTEGRATION_STATE_SUSPENDED, scopes, audiences)), want: pdp.ReasonIntegrationInactive},
		{name: "integration retired", setup: published(integration(treatyv1.IntegrationState_INTEGRATION_STATE_RETIRED, scopes, audiences)), want: pdp.ReasonIntegrationInactive},
		{name: "workload unknown", setup: claimsEdit(func(c *token.Claims) { c.Subject, c.ClientID = "ghost-bot", "ghost-bot" }), want: pdp.ReasonWorkloadUnknown},
		{name: "workload suspended", setup: published(pdptest.Workload("acme-bot", "acme-api", "acme", treatyv1.WorkloadState_WORKLOAD_STATE_SUSPENDED)), want: pdp.ReasonWorkloadInactive},
		{name: "token names another integration of the partner", setup: func(t *testing.T, e *env) string {
			pdptest.Publish(t, e.log, pdptest.Integration("acme-other", "acme", integrationActive, scopes, audiences))
			return e.token(t, func(c *token.Claims) { c.Integration = "acme-other" })
		}, want: pdp.ReasonSubjectMismatch},
		{name: "client_id is not the subject", setup: claimsEdit(func(c *token.Claims) { c.ClientID = "other-bot" }), want: pdp.ReasonSubjectMismatch},

		// Scopes and audience.
		{name: "action not in the token", setup: claimsEdit(func(c *token.Claims) { c.Scope = "read" }), action: "write", want: pdp.ReasonScopeMissing},
		{name: "action is a prefix of a scope", setup: valid, action: "rea", want: pdp.ReasonScopeMissing},
		{name: "ceiling narrowed after issuance", setup: published(integration(integrationActive, []string{"read"}, audiences)), action: "write", want: pdp.ReasonScopeNotAllowed},
		{name: "other resource", setup: valid, resource: "billing", want: pdp.ReasonAudienceMismatch},
		{name: "audience withdrawn after issuance", setup: published(integration(integrationActive, scopes, []string{"billing"})), want: pdp.ReasonAudienceNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, pdp.Config{})
			tok := tc.setup(t, e)
			action, resource := tc.action, tc.resource
			if action == "" {
				action = "read"
			}
			if resource == "" {
				resource = "api"
			}
			d := e.check(t, tok, action, resource)
			if got := reason(t, d); got != tc.want {
				t.Errorf("reason = %s, want %s", got, tc.want)
			}
			if d.Sequence != e.log.Head() {
				t.Errorf("decided at sequence %d, want the head %d", d.Sequence, e.log.Head())
			}
			if len(d.DecisionID.String()) != 32 || d.DecisionID.IsZero() {
				t.Errorf("decision id %q is not 128 bits of hex", d.DecisionID)
			}
		})
	}
}

func TestCheckIssuance(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, e *env)
		edit  func(*pdp.IssuanceRequest)
		want  string
	}{
		{name: "allowed", want: pdp.ReasonGranted},
		{name: "every scope of the ceiling", edit: func(r *pdp.IssuanceRequest) { r.Scopes = scopes }, want: pdp.ReasonGranted},
		{name: "restored workload (watermarks do not matter)", setup: func(t *testing.T, e *env) {
			pdptest.Revoke(t, e.log, workloadK, "acme-bot")
			pdptest.Restore(t, e.log, workloadK, "acme-bot")
		}, want: pdp.ReasonGranted},
		{name: "key never published", edit: func(r *pdp.IssuanceRequest) { r.Kid = "k9" }, want: pdp.ReasonUnknownKey},
		{name: "key revoked", setup: func(t *testing.T, e *env) { pdptest.Revoke(t, e.log, keyK, "k1") }, want: pdp.ReasonKeyRevoked},
		{name: "workload unknown", edit: func(r *pdp.IssuanceRequest) { r.WorkloadID = "ghost-bot" }, want: pdp.ReasonWorkloadUnknown},
		{name: "workload blocked", setup: func(t *testing.T, e *env) { pdptest.Revoke(t, e.log, workloadK, "acme-bot") }, want: pdp.ReasonWorkloadBlocked},
		{name: "integration blocked", setup: func(t *testing.T, e *env) { pdptest.Revoke(t, e.log, integrationK, "acme-api") }, want: pdp.ReasonIntegrationBlocked},
		{name: "partner blocked", setup: func(t *testing.T, e *env) { pdptest.Revoke(t, e.log, partnerK, "acme") }, want: pdp.ReasonPartnerBlocked},
		{name: "partner suspended", setup: publishing(pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_SUSPENDED, pdptest.ContractEnd)), want: pdp.ReasonPartnerSuspended},
		{name: "partner offboarding", setup: publishing(pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING, pdptest.ContractEnd)), want: pdp.ReasonPartnerTerminated},
		{name: "contract ended", setup: publishing(pdptest.Partner("acme", partnerActive, past)), want: pdp.ReasonContractEnded},
		{name: "integration requested", setup: publishing(integration(treatyv1.IntegrationState_INTEGRATION_STATE_REQUESTED, scopes, audiences)), want: pdp.ReasonIntegrationInactive},
		{name: "workload retired", setup: publishing(pdptest.Workload("acme-bot", "acme-api", "acme", treatyv1.WorkloadState_WORKLOAD_STATE_RETIRED)), want: pdp.ReasonWorkloadInactive},
		{name: "workload and integration disagree on the partner", setup: publishing(
			pdptest.Partner("other", partnerActive, pdptest.ContractEnd),
			pdptest.Workload("acme-bot", "acme-api", "other", workloadActive),
		), want: pdp.ReasonSubjectMismatch},
		{name: "no scope", edit: func(r *pdp.IssuanceRequest) { r.Scopes = nil }, want: pdp.ReasonScopeMissing},
		{name: "scope outside the ceiling", edit: func(r *pdp.IssuanceRequest) { r.Scopes = []string{"read", "admin"} }, want: pdp.ReasonScopeNotAllowed},
		{name: "audience not listed", edit: func(r *pdp.IssuanceRequest) { r.Audience = "billing" }, want: pdp.ReasonAudienceNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, pdp.Config{})
			if tc.setup != nil {
				tc.setup(t, e)
			}
			req := pdp.IssuanceRequest{WorkloadID: "acme-bot", Scopes: []string{"read"}, Audience: "api", Kid: "k1", MinSequence: e.log.Head()}
			if tc.edit != nil {
				tc.edit(&req)
			}
			d, err := e.pdp.CheckIssuance(context.Background(), req)
			if err != nil {
				t.Fatalf("CheckIssuance: %v", err)
			}
			if got := reason(t, d); got != tc.want {
				t.Errorf("reason = %s, want %s", got, tc.want)
			}
			if d.Sequence != e.log.Head() {
				t.Errorf("decided at sequence %d, want the head %d (the tsq to mint)", d.Sequence, e.log.Head())
			}
		})
	}
}

func publishing(events ...*treatyv1.Event) func(t *testing.T, e *env) {
	return func(t *testing.T, e *env) { pdptest.Publish(t, e.log, events...) }
}

// A token minted at the sequence an issuance decision reports is valid, and dies with a block
// and restore that follow it: tsq is what ties the two decisions together.
func TestIssuedTokenFollowsItsSequence(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	d, err := e.pdp.CheckIssuance(context.Background(), pdp.IssuanceRequest{WorkloadID: "acme-bot", Scopes: []string{"read"}, Audience: "api", Kid: "k1"})
	if err != nil || !d.Allow {
		t.Fatalf("CheckIssuance = %+v, %v", d, err)
	}
	tok := e.token(t, func(c *token.Claims) { c.Scope, c.Sequence = "read", d.Sequence })
	if got := reason(t, e.check(t, tok, "read", "api")); got != pdp.ReasonGranted {
		t.Fatalf("fresh token: %s", got)
	}
	pdptest.Revoke(t, e.log, workloadK, "acme-bot")
	pdptest.Restore(t, e.log, workloadK, "acme-bot")
	if got := reason(t, e.check(t, tok, "read", "api")); got != pdp.ReasonWorkloadRevoked {
		t.Fatalf("after block and restore: %s, want %s", got, pdp.ReasonWorkloadRevoked)
	}
}

// Whatever arrives as a token, Check answers with a deny and a reason, never an error or a panic.
func FuzzCheckToken(f *testing.F) {
	e := newEnv(f, pdp.Config{})
	c := e.claims()
	valid := e.key.Mint(f, c)
	for _, seed := range []string{"", "a.b.c", valid, valid[:len(valid)-3], valid + "x", strings.Replace(valid, ".", "..", 1),
		"eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		d, err := e.pdp.Check(context.Background(), pdp.CheckRequest{Token: tok, Action: "read", Resource: "api"})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		// A variant of the valid token may verify (base64 padding bits carry nothing), but only
		// with the very claims that were signed.
		if d.Allow && d.TokenID != c.ID {
			t.Fatalf("allowed a token that was never minted: %q", tok)
		}
		if len(d.Reasons) != 1 {
			t.Fatalf("reasons %q", d.Reasons)
		}
	})
}
