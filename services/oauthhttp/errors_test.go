package oauthhttp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/services/oauthhttp"
)

// signClaims signs claims as a compact JWS with alg and key, with the kid header if given.
func signClaims(t *testing.T, claims map[string]any, alg jose.SignatureAlgorithm, key any, kid string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := sig.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every refusal through HTTP, each with its exact OAuth error. The client-authentication rows
// repeat the issuer's gRPC-level assertion tests (issuer/assertion_test.go) at the token endpoint.
func TestTokenEndpointRefusals(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	claims := func(id string, edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": id, "sub": id, "aud": e.iss.TokenEndpoint(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
			"jti": base64.RawURLEncoding.EncodeToString([]byte(time.Now().String()))}
		if edit != nil {
			edit(c)
		}
		return c
	}
	signed := func(edit func(map[string]any)) string {
		return signClaims(t, claims(workload, edit), jose.EdDSA, e.keys[workload], "")
	}
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(e.keys[workload].Public())
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body, _ := json.Marshal(claims(workload, nil))
	algNone := header + "." + base64.RawURLEncoding.EncodeToString(body) + "."
	replayed := e.assertion(workload)
	if status, _, body := e.post(oauthhttp.PathToken, assertionForm(replayed), "", ""); status != http.StatusOK {
		t.Fatalf("first use of the assertion: %d %v", status, body)
	}

	// Partners whose state refuses issuance, and a secret that expires in a minute.
	for _, p := range []struct {
		id  string
		end time.Duration
	}{{"suspended-co", 90 * 24 * time.Hour}, {"ending-co", 2 * time.Hour}} {
		e.world.CreatePartner(p.id, time.Now().Add(p.end))
		e.world.CreateIntegration(issuerIntegration(p.id))
		e.addWorkload(p.id+"-bot", p.id+"-integ")
	}
	e.world.SuspendPartner("suspended-co")
	_, shortSecret := e.world.CreateClientSecret(other, time.Minute)

	secretForm := func(id, secret string) url.Values {
		return tokenForm(url.Values{"client_id": {id}, "client_secret": {secret}})
	}
	tests := []struct {
		name    string
		form    func() url.Values
		basic   [2]string
		advance time.Duration // the issuer's clock moves forward first
		status  int
		code    string
	}{
		// Client authentication by assertion.
		{name: "replayed assertion", form: func() url.Values { return assertionForm(replayed) }, status: 401, code: "invalid_client"},
		{name: "wrong audience", form: func() url.Values {
			return assertionForm(signed(func(c map[string]any) { c["aud"] = "https://elsewhere.test" }))
		}, status: 401, code: "invalid_client"},
		{name: "expired assertion", form: func() url.Values {
			return assertionForm(signed(func(c map[string]any) {
				c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-2*time.Minute).Unix()
			}))
		}, status: 401, code: "invalid_client"},
		{name: "assertion not yet valid", form: func() url.Values {
			return assertionForm(signed(func(c map[string]any) { c["nbf"] = now.Add(3 * time.Minute).Unix() }))
		}, status: 401, code: "invalid_client"},
		{name: "assertion from the future", form: func() url.Values {
			return assertionForm(signed(func(c map[string]any) { c["iat"] = now.Add(3 * time.Minute).Unix() }))
		}, status: 401, code: "invalid_client"},
		{name: "wrong key", form: func() url.Values {
			return assertionForm(signClaims(t, claims(workload, nil), jose.EdDSA, strangerKey, ""))
		}, status: 401, code: "invalid_client"},
		{name: "alg none", form: func() url.Values { return assertionForm(algNone) }, status: 401, code: "invalid_client"},
		{name: "algorithm confusion: HS256 keyed with the public key", form: func() url.Values {
			return assertionForm(signClaims(t, claims(workload, nil), jose.HS256, publicPEM, ""))
		}, status: 401, code: "invalid_client"},
		{name: "oversized assertion", form: func() url.Values {
			return assertionForm(signed(func(c map[string]any) { c["pad"] = strings.Repeat("x", issuer.MaxAssertionSize) }))
		}, status: 401, code: "invalid_client"},
		{name: "unknown workload", form: func() url.Values {
			return assertionForm(signClaims(t, claims("nobody", nil), jose.EdDSA, strangerKey, ""))
		}, status: 401, code: "invalid_client"},
		{name: "no client authentication", form: func() url.Values { return tokenForm(nil) }, status: 401, code: "invalid_client"},
		{name: "wrong client_assertion_type", form: func() url.Values {
			f := assertionForm(e.assertion(workload))
			f.Set("client_assertion_type", "urn:example:other")
			return f
		}, status: 400, code: "invalid_request"},
		// Client authentication by secret.
		{name: "wrong secret", form: func() url.Values { return secretForm(workload, e.secret[:len(e.secret)-2]+"xx") }, status: 401, code: "invalid_client"},
		{name: "wrong secret in the header", form: func() url.Values { return tokenForm(nil) }, basic: [2]string{workload, "treaty_cs_wrong"}, status: 401, code: "invalid_client"},
		{name: "another workload's secret", form: func() url.Values { return secretForm(other, e.secret) }, status: 401, code: "invalid_client"},
		{name: "expired secret", form: func() url.Values { return secretForm(other, shortSecret) }, advance: 2 * time.Minute, status: 401, code: "invalid_client"},
		{name: "secret and assertion together", form: func() url.Values {
			f := assertionForm(e.assertion(workload))
			f.Set("client_secret", e.secret)
			return f
		}, status: 400, code: "invalid_request"},
		// Authenticated, but not authorized now.
		{name: "suspended partner", form: func() url.Values { return assertionForm(e.assertion("suspended-co-bot")) }, status: 400, code: "unauthorized_client"},
		{name: "contract ended", form: func() url.Values { return assertionForm(e.assertion("ending-co-bot")) }, advance: 3 * time.Hour, status: 400, code: "unauthorized_client"},
		// The request itself.
		{name: "scope escalation", form: func() url.Values {
			f := secretForm(workload, e.secret)
			f.Set("scope", "invoices:read admin")
			return f
		}, status: 400, code: "invalid_scope"},
		{name: "no scope", form: func() url.Values { f := secretForm(workload, e.secret); f.Del("scope"); return f }, status: 400, code: "invalid_scope"},
		{name: "audience not listed", form: func() url.Values {
			f := secretForm(workload, e.secret)
			f.Set("resource", "https://evil.test")
			return f
		}, status: 400, code: "invalid_target"},
		{name: "no audience", form: func() url.Values { f := secretForm(workload, e.secret); f.Del("resource"); return f }, status: 400, code: "invalid_target"},
		{name: "two audiences", form: func() url.Values {
			f := secretForm(workload, e.secret)
			f.Add("resource", "https://other.test")
			return f
		}, status: 400, code: "invalid_target"},
		{name: "resource and audience disagree", form: func() url.Values {
			f := secretForm(workload, e.secret)
			f.Set("audience", "https://other.test")
			return f
		}, status: 400, code: "invalid_target"},
		{name: "no grant type", form: func() url.Values { f := secretForm(workload, e.secret); f.Del("grant_type"); return f }, status: 400, code: "invalid_request"},
		{name: "password grant", form: func() url.Values { f := secretForm(workload, e.secret); f.Set("grant_type", "password"); return f }, status: 400, code: "unsupported_grant_type"},
		{name: "token exchange not enabled", form: func() url.Values {
			f := secretForm(workload, e.secret)
			f.Set("grant_type", oauthhttp.GrantTypeTokenExchange)
			return f
		}, status: 400, code: "unsupported_grant_type"},
		{name: "repeated parameter", form: func() url.Values { f := secretForm(workload, e.secret); f.Add("scope", scope); return f }, status: 400, code: "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(tc.advance)
			defer e.clock.Reset()
			status, hdr, body := e.post(oauthhttp.PathToken, tc.form(), tc.basic[0], tc.basic[1])
			wantOAuthError(t, status, hdr, body, tc.status, tc.code)
		})
	}

	// Secrets, assertions and tokens never reach the logs, whatever happened above.
	logs := e.logs.String()
	for name, s := range map[string]string{"client secret": e.secret, "short secret": shortSecret, "secret prefix": "treaty_cs_", "assertion": replayed} {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold a %s", name)
		}
	}
}

func issuerIntegration(partnerID string) issuertest.Integration {
	return issuertest.Integration{ID: partnerID + "-integ", PartnerID: partnerID, MaxTTL: time.Hour, Scopes: []string{scope}, Audiences: []string{audience}}
}
