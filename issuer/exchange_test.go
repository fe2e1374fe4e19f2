package issuer_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/token"
)

const downstream = "https://other.acme.test" // the fixture integration's second audience

// CheckToken passes the issuer's token checks on to the real PDP client.
func (r *recorder) CheckToken(ctx context.Context, req issuer.TokenCheck) (issuer.IssuanceDecision, error) {
	return r.Authorizer.(issuer.TokenChecker).CheckToken(ctx, req)
}

// exchangeRequest asks, as workload id, to exchange parent for scopes on the downstream audience.
func (e *env) exchangeRequest(id, parent string, scopes ...string) issuer.ExchangeRequest {
	return issuer.ExchangeRequest{
		Request:      issuer.Request{Assertion: e.assertion(id), Scopes: scopes, Audience: downstream},
		SubjectToken: parent, SubjectTokenType: issuer.TokenTypeAccessToken,
	}
}

// exchange exchanges and fails the test on error.
func (e *env) exchange(req issuer.ExchangeRequest) issuer.Issued {
	e.t.Helper()
	out, err := e.iss.Exchange(context.Background(), req)
	if err != nil {
		e.t.Fatalf("Exchange: %v", err)
	}
	return out
}

// parent issues a token to the fixture workload for both invoice scopes on the fixture audience.
func (e *env) parent(ttl time.Duration) issuer.Issued {
	e.t.Helper()
	req := e.request()
	req.Scopes, req.TTL = []string{"invoices:read", "invoices:write"}, ttl
	return e.issue(req)
}

func TestExchangeNarrowsAndChains(t *testing.T) {
	e := newEnv(t)
	parent := e.parent(30 * time.Minute)
	pc := claimsOf(t, parent.Token)

	// Another workload of the integration exchanges the parent for one scope downstream.
	child := e.exchange(e.exchangeRequest(sibling, parent.Token, "invoices:read"))
	cc := claimsOf(t, child.Token)
	wantChild := token.Claims{
		Issuer: issuerURL, Subject: workload, ClientID: sibling, Partner: partner, Integration: integration,
		Scope: "invoices:read", Audience: downstream, IssuedAt: cc.IssuedAt, Expiry: cc.Expiry, ID: child.Credential.ID,
		Sequence: child.Credential.Sequence, Epoch: pc.Epoch,
		Actor:     &token.Actor{Subject: sibling},
		Ancestors: []token.Ancestor{{ID: pc.ID, KeyID: parent.Credential.Kid, Sequence: pc.Sequence}},
	}
	if d := cmp.Diff(wantChild, cc); d != "" {
		t.Errorf("child claims (-want +got):\n%s", d)
	}
	if cc.Expiry > pc.Expiry || cc.Sequence < pc.Sequence {
		t.Errorf("child exp %d tsq %d, parent exp %d tsq %d", cc.Expiry, cc.Sequence, pc.Expiry, pc.Sequence)
	}
	// The inventory records the child under the workload holding it, with its parent.
	rec, err := e.iss.Credential(child.Credential.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ParentID != pc.ID || rec.WorkloadID != sibling || rec.Audience != downstream {
		t.Errorf("inventory record %+v, want parent %s, workload %s, audience %s", rec, pc.ID, sibling, downstream)
	}
	if e.reopen(); mustCredential(t, e.iss, child.Credential.ID).ParentID != pc.ID {
		t.Error("the parent was not kept in the inventory across a restart")
	}

	// The PDP honours the child for what it grants, and nothing more.
	seq := child.Credential.Sequence
	for _, c := range []struct{ action, resource, want string }{
		{"invoices:read", downstream, "granted"},
		{"invoices:write", downstream, "scope_missing"},
		{"invoices:read", audience, "audience_mismatch"},
	} {
		if got := e.world.Check(child.Token, c.action, c.resource, seq); got != c.want {
			t.Errorf("child %s on %s: %s, want %s", c.action, c.resource, got, c.want)
		}
	}

	// A second hop, by the parent's own workload: act nests, anc grows, parent first.
	req := e.exchangeRequest(workload, child.Token)
	grandchild := e.exchange(req) // no scope asked: the child's
	gc := claimsOf(t, grandchild.Token)
	wantAct := &token.Actor{Subject: workload, Actor: &token.Actor{Subject: sibling}}
	wantAnc := []token.Ancestor{
		{ID: cc.ID, KeyID: child.Credential.Kid, Sequence: cc.Sequence},
		{ID: pc.ID, KeyID: parent.Credential.Kid, Sequence: pc.Sequence},
	}
	if d := cmp.Diff(wantAct, gc.Actor); d != "" {
		t.Errorf("grandchild act (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantAnc, gc.Ancestors); d != "" {
		t.Errorf("grandchild anc (-want +got):\n%s", d)
	}
	if gc.Subject != workload || gc.ClientID != workload || gc.Scope != "invoices:read" || gc.Expiry > cc.Expiry {
		t.Errorf("grandchild sub %s client_id %s scope %q exp %d (child exp %d)", gc.Subject, gc.ClientID, gc.Scope, gc.Expiry, cc.Expiry)
	}
	if got := e.world.Check(grandchild.Token, "invoices:read", downstream, grandchild.Credential.Sequence); got != "granted" {
		t.Errorf("grandchild: %s, want granted", got)
	}
}

func mustCredential(t *testing.T, iss *issuer.Issuer, jti string) issuer.Credential {
	t.Helper()
	c, err := iss.Credential(jti)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestExchangeNeverOutlivesParent(t *testing.T) {
	e := newEnv(t)
	parent := e.parent(2 * time.Minute)
	for _, ttl := range []time.Duration{0, time.Hour} { // the default (5 minutes) and more
		req := e.exchangeRequest(sibling, parent.Token, "invoices:read")
		req.TTL = ttl
		child := e.exchange(req)
		if !child.Credential.ExpireTime.Equal(parent.Credential.ExpireTime) {
			t.Errorf("ttl %s: child expires at %s, parent at %s", ttl, child.Credential.ExpireTime, parent.Credential.ExpireTime)
		}
	}
	req := e.exchangeRequest(sibling, parent.Token, "invoices:read")
	req.TTL = 30 * time.Second
	if child := e.exchange(req); !child.Credential.ExpireTime.Before(parent.Credential.ExpireTime) {
		t.Errorf("a shorter child lifetime was not kept: %s", child.Credential.ExpireTime)
	}
}

func TestExchangeDiesWithItsAncestors(t *testing.T) {
	e := newEnv(t)
	parent := e.parent(30 * time.Minute)
	child := e.exchange(e.exchangeRequest(sibling, parent.Token, "invoices:read"))
	grandchild := e.exchange(e.exchangeRequest(workload, child.Token, "invoices:read"))
	other := e.exchange(e.exchangeRequest(sibling, e.parent(30*time.Minute).Token, "invoices:read"))

	// The grandparent revoked: child and grandchild die with it; another chain lives.
	seq := e.world.Revoke(treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, parent.Credential.ID)
	for name, tok := range map[string]string{"child": child.Token, "grandchild": grandchild.Token} {
		if got := e.world.Check(tok, "invoices:read", downstream, seq); got != "parent_revoked" {
			t.Errorf("%s after its ancestor's revocation: %s, want parent_revoked", name, got)
		}
	}
	if got := e.world.Check(other.Token, "invoices:read", downstream, seq); got != "granted" {
		t.Errorf("another chain: %s, want granted", got)
	}
	// A revoked parent cannot be exchanged any more.
	req := e.exchangeRequest(sibling, parent.Token, "invoices:read")
	req.MinSequence = seq
	_, err := e.iss.Exchange(context.Background(), req)
	wantKind(t, err, fail.Invalid)
	if !strings.Contains(err.Error(), "not live: revoked") {
		t.Errorf("error %q does not say the subject token is revoked", err)
	}

	// Only the child revoked: the grandchild dies too, as parent_revoked.
	e2 := newEnv(t)
	parent = e2.parent(30 * time.Minute)
	child = e2.exchange(e2.exchangeRequest(sibling, parent.Token, "invoices:read"))
	grandchild = e2.exchange(e2.exchangeRequest(workload, child.Token, "invoices:read"))
	seq = e2.world.Revoke(treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, child.Credential.ID)
	if got := e2.world.Check(grandchild.Token, "invoices:read", downstream, seq); got != "parent_revoked" {
		t.Errorf("grandchild after its parent's revocation: %s, want parent_revoked", got)
	}
	if got := e2.world.Check(parent.Token, "invoices:read", audience, seq); got != "granted" {
		t.Errorf("the grandparent after its child's revocation: %s, want granted", got)
	}

	// The parent's workload blocked: the child, held by another workload, dies too, and stays
	// dead after the restore (it was minted before it).
	held := e2.exchange(e2.exchangeRequest(sibling, e2.parent(30*time.Minute).Token, "invoices:read"))
	seq = e2.world.Revoke(treatyv1.TargetKind_TARGET_KIND_WORKLOAD, workload)
	if got := e2.world.Check(held.Token, "invoices:read", downstream, seq); got != "workload_blocked" {
		t.Errorf("child after its subject's workload was blocked: %s, want workload_blocked", got)
	}
	seq = e2.world.Restore(treatyv1.TargetKind_TARGET_KIND_WORKLOAD, workload)
	if got := e2.world.Check(held.Token, "invoices:read", downstream, seq); got != "workload_revoked" {
		t.Errorf("child after its subject's workload was restored: %s, want workload_revoked", got)
	}
}

func TestExchangeRefusals(t *testing.T) {
	e := newEnv(t)
	parent := e.parent(10 * time.Minute)
	pc := claimsOf(t, parent.Token)

	// A token with the parent's claims and the active key's kid, signed by another key.
	forge := func(alg jose.SignatureAlgorithm, key any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
			(&jose.SignerOptions{}).WithType(token.Type).WithHeader("kid", parent.Credential.Kid))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jwt.Signed(s).Claims(pc).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	unsigned := func() string {
		p := strings.Split(parent.Token, ".")
		return "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + p[1] + "."
	}()
	// A token of another issuer with the same identifier, whose key is in the feed (the PDP would
	// honour it) but not among this issuer's keys.
	minter := e.world.StartIssuer()
	extra := e.world.CreateWorkload("acme-billing-extra", integration)
	a, err := issuer.SignAssertion(extra.ID, issuerURL, extra.Key, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := minter.Issuer.Issue(context.Background(), issuer.Request{
		Assertion: a, Scopes: []string{"invoices:read"}, Audience: audience, MinSequence: extra.Sequence,
	})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		as    string // the requesting workload; default sibling
		edit  func(r *issuer.ExchangeRequest)
		want  fail.Kind
		cause error
		msg   string
	}{
		{name: "no subject token", edit: func(r *issuer.ExchangeRequest) { r.SubjectToken = "" }, want: fail.Invalid, msg: "subject_token is required"},
		{name: "wrong subject token type", edit: func(r *issuer.ExchangeRequest) { r.SubjectTokenType = "urn:ietf:params:oauth:token-type:id_token" },
			want: fail.Invalid, msg: "subject_token_type must be"},
		{name: "actor token", edit: func(r *issuer.ExchangeRequest) {
			r.ActorToken, r.ActorTokenType = parent.Token, issuer.TokenTypeAccessToken
		}, want: fail.Invalid, msg: "actor_token is not supported"},
		{name: "resource and audience differ", edit: func(r *issuer.ExchangeRequest) { r.Resource = audience }, want: fail.Invalid, msg: "different targets"},
		{name: "no audience", edit: func(r *issuer.ExchangeRequest) { r.Audience = "" }, want: fail.Invalid, msg: "audience is required"},
		{name: "scope escalation beyond the parent", edit: func(r *issuer.ExchangeRequest) { r.Scopes = []string{"invoices:read", "reports:read"} },
			want: fail.Denied, cause: issuer.ErrInvalidScope, msg: `scope "reports:read" is not granted by the subject token`},
		{name: "scope outside the ceiling", edit: func(r *issuer.ExchangeRequest) { r.Scopes = []string{"admin"} },
			want: fail.Denied, cause: issuer.ErrInvalidScope, msg: `scope "admin" is not granted`},
		{name: "audience the integration does not list", edit: func(r *issuer.ExchangeRequest) { r.Audience = "https://evil.test" },
			want: fail.Denied, cause: issuer.ErrInvalidTarget, msg: `audience "https://evil.test" is not one`},
		{name: "garbage", edit: func(r *issuer.ExchangeRequest) { r.SubjectToken = "not.a.token" }, want: fail.Invalid, cause: issuer.ErrInvalidGrant, msg: "not a valid, unexpired access token"},
		{name: "alg none", edit: func(r *issuer.ExchangeRequest) { r.SubjectToken = unsigned }, want: fail.Invalid, cause: issuer.ErrInvalidGrant, msg: "not a valid, unexpired access token"},
		{name: "forged with the active kid", edit: func(r *issuer.ExchangeRequest) { r.SubjectToken = forge(jose.EdDSA, attacker) },
			want: fail.Invalid, cause: issuer.ErrInvalidGrant, msg: "not a valid, unexpired access token"},
		{name: "algorithm confusion: HMAC with the kid", edit: func(r *issuer.ExchangeRequest) {
			r.SubjectToken = forge(jose.HS256, []byte("0123456789abcdef0123456789abcdef"))
		}, want: fail.Invalid, cause: issuer.ErrInvalidGrant, msg: "not a valid, unexpired access token"},
		{name: "another issuer's token", edit: func(r *issuer.ExchangeRequest) { r.SubjectToken = foreign.Token },
			want: fail.Invalid, cause: issuer.ErrInvalidGrant, msg: "not a valid, unexpired access token"},
		{name: "a workload of another partner", as: "globex-bot", edit: func(r *issuer.ExchangeRequest) {}, want: fail.Denied,
			msg: `may only exchange tokens of its own integration`},
		{name: "bad client authentication", edit: func(r *issuer.ExchangeRequest) { r.Assertion = e.assertion("globex-bot")[:40] },
			want: fail.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := tt.as
			if as == "" {
				as = sibling
			}
			req := e.exchangeRequest(as, parent.Token, "invoices:read")
			tt.edit(&req)
			_, err := e.iss.Exchange(context.Background(), req)
			wantKind(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Errorf("error %q is not %v", err, tt.cause)
			}
			if strings.Contains(err.Error(), parent.Token) {
				t.Error("the error repeats the subject token")
			}
		})
	}

	t.Run("expired parent", func(t *testing.T) {
		e.clock.Advance(11 * time.Minute)
		defer e.clock.Reset()
		_, err := e.iss.Exchange(context.Background(), e.exchangeRequest(sibling, parent.Token, "invoices:read"))
		wantKind(t, err, fail.Invalid)
		if !strings.Contains(err.Error(), "subject_token has expired") {
			t.Errorf("error %q", err)
		}
	})
}

func TestExchangeDepthLimit(t *testing.T) {
	e := newEnv(t)
	tok := e.parent(10 * time.Minute).Token
	for hop := 1; hop <= token.MaxExchangeDepth; hop++ {
		out := e.exchange(e.exchangeRequest(sibling, tok, "invoices:read"))
		if got := len(claimsOf(t, out.Token).Ancestors); got != hop {
			t.Fatalf("hop %d: %d ancestors", hop, got)
		}
		if got := e.world.Check(out.Token, "invoices:read", downstream, out.Credential.Sequence); got != "granted" {
			t.Fatalf("hop %d: %s, want granted", hop, got)
		}
		tok = out.Token
	}
	_, err := e.iss.Exchange(context.Background(), e.exchangeRequest(sibling, tok, "invoices:read"))
	wantKind(t, err, fail.Denied)
	if !strings.Contains(err.Error(), "exchanged 4 times already") {
		t.Errorf("error %q", err)
	}
}

// An Authorizer that cannot check tokens leaves exchange unavailable, and says so.
func TestExchangeNeedsTokenChecker(t *testing.T) {
	e := newEnv(t, func(c *issuer.Config) { c.Authorizer = struct{ issuer.Authorizer }{c.Authorizer} })
	parent := e.parent(10 * time.Minute)
	_, err := e.iss.Exchange(context.Background(), e.exchangeRequest(sibling, parent.Token, "invoices:read"))
	wantKind(t, err, fail.Precondition)
}

// Tokens signed by the issuer's own key that it would never mint, or would not exchange.
func TestExchangeRefusesOddParents(t *testing.T) {
	e := newEnv(t)
	parent := e.parent(10 * time.Minute)
	pc := claimsOf(t, parent.Token)
	tests := []struct {
		name string
		edit func(c *token.Claims)
		want fail.Kind
		msg  string
	}{
		{name: "sender-constrained", edit: func(c *token.Claims) { c.Confirmation = &token.Confirmation{JKT: "thumbprint"} },
			want: fail.Denied, msg: "sender-constrained"},
		{name: "another issuer identifier", edit: func(c *token.Claims) { c.Issuer = "https://elsewhere.test" },
			want: fail.Invalid, msg: "not a valid, unexpired access token"},
		{name: "no jti", edit: func(c *token.Claims) { c.ID = "" }, want: fail.Invalid, msg: "not a valid, unexpired access token"},
		{name: "chain at the depth limit", edit: func(c *token.Claims) {
			for n := range token.MaxExchangeDepth {
				c.Ancestors = append(c.Ancestors, token.Ancestor{ID: fmt.Sprintf("a%d", n), KeyID: parent.Credential.Kid, Sequence: c.Sequence})
				c.Actor = &token.Actor{Subject: sibling, Actor: c.Actor}
			}
		}, want: fail.Denied, msg: "exchanged 4 times already"},
		// The PDP finds the chain broken (act without anc): the issuer exchanges only live tokens.
		{name: "a chain the PDP rejects", edit: func(c *token.Claims) { c.Actor = &token.Actor{Subject: sibling} },
			want: fail.Invalid, msg: "not live: malformed_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pc
			c.ID = pc.ID + "-" + strings.ReplaceAll(tt.name, " ", "-")
			tt.edit(&c)
			raw, err := issuer.SignClaims(e.iss, c)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.iss.Exchange(context.Background(), e.exchangeRequest(sibling, raw, "invoices:read"))
			wantKind(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestExchangeRequestFromForm(t *testing.T) {
	client := issuer.Request{Assertion: "assertion"}
	tests := []struct {
		name  string
		form  url.Values
		want  issuer.ExchangeRequest
		field string // the Invalid error's field, if the form is refused
	}{
		{name: "full", form: url.Values{
			"subject_token": {"tok"}, "subject_token_type": {issuer.TokenTypeAccessToken}, "scope": {"a  b"},
			"audience": {"https://x.test"}, "resource": {"https://x.test"}, "requested_token_type": {issuer.TokenTypeAccessToken},
		}, want: issuer.ExchangeRequest{
			Request:      issuer.Request{Assertion: "assertion", Scopes: []string{"a", "b"}, Audience: "https://x.test"},
			SubjectToken: "tok", SubjectTokenType: issuer.TokenTypeAccessToken,
		}},
		{name: "resource only, no scope", form: url.Values{"subject_token": {"tok"}, "resource": {"https://x.test"}}, want: issuer.ExchangeRequest{
			Request: issuer.Request{Assertion: "assertion", Audience: "https://x.test"}, SubjectToken: "tok",
		}},
		{name: "two targets", form: url.Values{"resource": {"https://x.test", "https://y.test"}}, field: "audience"},
		{name: "audience and resource differ", form: url.Values{"audience": {"https://x.test"}, "resource": {"https://y.test"}}, field: "audience"},
		{name: "another token type requested", form: url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}, field: "requested_token_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := issuer.ExchangeRequestFromForm(client, tt.form)
			if tt.field != "" {
				var fe *fail.Error
				if !errors.As(err, &fe) || fe.Kind != fail.Invalid || fe.Field != tt.field {
					t.Fatalf("error %v, want Invalid naming %s", err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(issuer.Request{})); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// A child is bound to what its requester proves now, like any issuance (RFC 8693 leaves binding
// open): a bearer parent exchanged with a DPoP proof gives a DPoP-bound child.
func TestExchangeBindsToTheRequestersProof(t *testing.T) {
	e := newEnv(t)
	parent := e.parent(10 * time.Minute)
	k := newDPoPKey(t)
	req := e.exchangeRequest(sibling, parent.Token, "invoices:read")
	proofed := e.withProof(k.proof(t, e.clock.Now(), nil, nil))
	req.DPoPProof, req.HTTPMethod, req.HTTPURL = proofed.DPoPProof, proofed.HTTPMethod, proofed.HTTPURL
	child := e.exchange(req)
	c := claimsOf(t, child.Token)
	if c.Confirmation == nil || c.Confirmation.JKT != k.jkt || child.TokenType != issuer.TokenTypeDPoP || child.Credential.Binding != issuer.BindingDPoP {
		t.Errorf("child cnf %+v, token type %q, binding %q; want bound to %s", c.Confirmation, child.TokenType, child.Credential.Binding, k.jkt)
	}
	if len(c.Ancestors) != 1 || c.Ancestors[0].ID != parent.Credential.ID {
		t.Errorf("child anc %+v", c.Ancestors)
	}
	// The bound child itself cannot be exchanged: its proof of possession is not carried.
	_, err := e.iss.Exchange(context.Background(), e.exchangeRequest(workload, child.Token, "invoices:read"))
	wantKind(t, err, fail.Denied)
}
