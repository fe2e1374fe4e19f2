package oauthhttp_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/client/tokenexchange"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/oauthhttp"
)

// TestTokenExchangeWithZitadel has zitadel/oidc's RFC 8693 client exchange a token for a narrower
// one through the token endpoint, as treaty serve wires it, and checks the result against the
// JWKS: act names the requester, anc the parent, and the child never outlives its parent.
// Escalation and a forged subject token are refused with RFC 8693's error codes.
func TestTokenExchangeWithZitadel(t *testing.T) {
	e := newEnv(t)
	e.srv = e.serve(func(c *oauthhttp.Config) {
		c.TokenExchange = func(ctx context.Context, r oauthhttp.ExchangeRequest) (issuer.Issued, error) {
			req, err := issuer.ExchangeRequestFromForm(r.Client, r.Form)
			if err != nil {
				return issuer.Issued{}, err
			}
			return e.iss.Exchange(ctx, req)
		}
	})
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.srv.Client())
	cc := clientcredentials.Config{
		ClientID: workload, ClientSecret: e.secret, TokenURL: e.url(oauthhttp.PathToken),
		Scopes: []string{"invoices:read", "invoices:write"}, EndpointParams: url.Values{"resource": {audience}},
	}
	parent, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pc := e.verifyJWKS(parent.AccessToken)

	te, err := tokenexchange.NewTokenExchangerClientCredentials(ctx, issuerURL, workload, e.secret,
		tokenexchange.WithStaticTokenEndpoint(issuerURL, e.url(oauthhttp.PathToken)), tokenexchange.WithHTTPClient(e.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	exchange := func(subject string, scopes ...string) (*oidc.TokenExchangeResponse, error) {
		return tokenexchange.ExchangeToken(ctx, te, subject, oidc.AccessTokenType, "", "", nil, []string{audience}, scopes, oidc.AccessTokenType)
	}
	resp, err := exchange(parent.AccessToken, "invoices:read")
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	if resp.IssuedTokenType != oidc.AccessTokenType || resp.TokenType != "Bearer" {
		t.Errorf("response: issued_token_type %q, token_type %q", resp.IssuedTokenType, resp.TokenType)
	}
	c := e.verifyJWKS(resp.AccessToken)
	if c.Scope != "invoices:read" || c.Subject != pc.Subject || c.Actor == nil || c.Actor.Subject != workload ||
		len(c.Ancestors) != 1 || c.Ancestors[0].ID != pc.ID || c.Expiry > pc.Expiry {
		t.Errorf("exchanged claims %+v (parent %+v)", c, pc)
	}

	// Escalation beyond the parent's scopes, and a subject token this issuer never signed.
	narrow, err := exchange(parent.AccessToken, "invoices:read")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exchange(narrow.AccessToken, "invoices:write"); err == nil || !strings.Contains(err.Error(), "invalid_scope") {
		t.Errorf("escalation: %v, want invalid_scope", err)
	}
	forged := parent.AccessToken[:len(parent.AccessToken)-4] + "AAAA"
	if _, err := exchange(forged, "invoices:read"); err == nil || !strings.Contains(err.Error(), "invalid_request") {
		t.Errorf("forged subject token: %v, want invalid_request", err)
	}
}
