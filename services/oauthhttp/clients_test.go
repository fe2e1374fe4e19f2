package oauthhttp_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/rs"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/oauthhttp"
)

// Independent clients against the real endpoints: x/oauth2 with a client secret (both ways of
// sending it), a private_key_jwt assertion made by zitadel/oidc's client helper with a go-jose
// Ed25519 signer, and zitadel/oidc's resource server introspecting before and after an RFC 7009
// revocation. Every token is verified against the published JWKS with the algorithm pinned.
func TestIndependentClients(t *testing.T) {
	e := newEnv(t)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.srv.Client())

	var tokens []string
	for _, style := range []struct {
		name   string
		style  oauth2.AuthStyle
		method string
	}{{"secret in header", oauth2.AuthStyleInHeader, issuer.MethodClientSecretBasic}, {"secret in body", oauth2.AuthStyleInParams, issuer.MethodClientSecretPost}} {
		t.Run("x/oauth2 clientcredentials, "+style.name, func(t *testing.T) {
			cc := clientcredentials.Config{
				ClientID: workload, ClientSecret: e.secret, TokenURL: e.url(oauthhttp.PathToken), Scopes: []string{scope},
				EndpointParams: url.Values{"resource": {audience}}, AuthStyle: style.style,
			}
			tok, err := cc.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != "Bearer" || tok.Expiry.Before(time.Now().Add(4*time.Minute)) || tok.Extra("scope") != scope {
				t.Errorf("token response: type %q, expiry %s, scope %v", tok.TokenType, tok.Expiry, tok.Extra("scope"))
			}
			c := e.verifyJWKS(tok.AccessToken)
			if c.Subject != workload || c.Audience != audience || c.Scope != scope || c.Issuer != issuerURL {
				t.Errorf("claims %+v", c)
			}
			cred, err := e.iss.Credential(c.ID)
			if err != nil || cred.AuthMethod != style.method {
				t.Errorf("inventory record %+v, %v; want auth method %s", cred, err, style.method)
			}
			tokens = append(tokens, tok.AccessToken)
		})
	}

	t.Run("private_key_jwt by zitadel/oidc's assertion helper", func(t *testing.T) {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: e.keys[workload]}, (&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		assertion, err := client.SignedJWTProfileAssertion(workload, []string{e.iss.TokenEndpoint()}, time.Minute, signer)
		if err != nil {
			t.Fatal(err)
		}
		cc := clientcredentials.Config{
			ClientID: workload, TokenURL: e.url(oauthhttp.PathToken), Scopes: []string{scope}, AuthStyle: oauth2.AuthStyleInParams,
			EndpointParams: url.Values{"audience": {audience}, "client_assertion_type": {oidc.ClientAssertionTypeJWTAssertion}, "client_assertion": {assertion}},
		}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := e.verifyJWKS(tok.AccessToken)
		if cred, err := e.iss.Credential(c.ID); err != nil || cred.AuthMethod != issuer.MethodPrivateKeyJWT {
			t.Errorf("inventory record %+v, %v", cred, err)
		}
		// The same assertion again is a replay.
		if _, err := cc.Token(ctx); err == nil || !strings.Contains(err.Error(), "invalid_client") {
			t.Errorf("replayed assertion: %v, want invalid_client", err)
		}
		tokens = append(tokens, tok.AccessToken)
	})
	if t.Failed() {
		return
	}

	t.Run("zitadel/oidc resource server introspects, the client revokes", func(t *testing.T) {
		server, err := rs.NewResourceServerClientCredentials(ctx, issuerURL, rsID, rsSecret,
			rs.WithStaticEndpoints(e.url(oauthhttp.PathToken), e.url(oauthhttp.PathIntrospect)), rs.WithClient(e.srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		tok := tokens[0]
		in, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, server, tok)
		if err != nil {
			t.Fatal(err)
		}
		if !in.Active || in.Subject != workload || in.ClientID != workload || in.Scope.String() != scope ||
			!slices.Contains(in.Audience, audience) || in.Issuer != issuerURL || in.TokenType != "Bearer" {
			t.Errorf("introspection of a live token: %+v", in)
		}
		// Another workload asking to revoke acme-bot's token is answered 200 and changes nothing.
		status, _, _ := e.post(oauthhttp.PathRevoke, url.Values{"token": {tok}, "client_assertion_type": {issuer.AssertionType},
			"client_assertion": {e.assertion(other)}}, "", "")
		if status != http.StatusOK {
			t.Errorf("foreign revocation answered %d, want 200", status)
		}
		if in, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, server, tok); err != nil || !in.Active {
			t.Fatalf("after another workload's revocation attempt: %+v, %v; want still active", in, err)
		}
		// Its owner revokes it through RFC 7009, with x/oauth2's way of sending a secret.
		status, _, body := e.post(oauthhttp.PathRevoke, url.Values{"token": {tok}, "token_type_hint": {"access_token"}}, workload, e.secret)
		if status != http.StatusOK {
			t.Fatalf("revocation answered %d %v", status, body)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			in, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, server, tok)
			if err != nil {
				t.Fatal(err)
			}
			if !in.Active {
				if in.Subject != "" || in.Scope.String() != "" {
					t.Errorf("an inactive answer reveals %+v", in)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the revoked token is still active after 10 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The other tokens are still active.
		if in, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, server, tokens[1]); err != nil || !in.Active {
			t.Errorf("an unrevoked token: %+v, %v", in, err)
		}
	})
}
