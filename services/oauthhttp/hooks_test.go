package oauthhttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/oauthhttp"
)

// The hooks other features plug into: the token-exchange grant and the transport (mTLS, DPoP).
func TestHooks(t *testing.T) {
	e := newEnv(t)
	var seen struct {
		dpop   string
		tls    bool
		client issuer.Request
	}
	srv := e.serve(func(c *oauthhttp.Config) {
		c.Transport = func(r *http.Request, req *issuer.Request) error {
			seen.dpop, seen.tls = r.Header.Get("X-Hook"), r.TLS != nil
			if r.Header.Get("X-Hook") == "bad" {
				return fail.Invalidf("dpop", "the DPoP proof is malformed")
			}
			return nil
		}
		// A stand-in exchange: it issues to the authenticated client, and refuses a subject token
		// other than "parent" as an invalid grant.
		c.TokenExchange = func(ctx context.Context, req oauthhttp.ExchangeRequest) (issuer.Issued, error) {
			seen.client = req.Client
			if req.Form.Get("subject_token") != "parent" {
				return issuer.Issued{}, issuer.Mark(fail.Deniedf("the subject token is not valid"), issuer.ErrInvalidGrant)
			}
			r := req.Client
			r.Scopes, r.Audience = strings.Fields(req.Form.Get("scope")), req.Form.Get("audience")
			return e.iss.Issue(ctx, r)
		}
		c.ExtraMetadata = map[string]any{"dpop_signing_alg_values_supported": []string{"EdDSA", "ES256"}}
	})
	post := func(form url.Values, dpop string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+oauthhttp.PathToken, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if dpop != "" {
			req.Header.Set("X-Hook", dpop) // what a Transport hook reads; real DPoP proofs are tested in issuer
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	exchange := url.Values{"grant_type": {oauthhttp.GrantTypeTokenExchange}, "subject_token": {"parent"},
		"subject_token_type": {oauthhttp.AccessTokenType}, "scope": {scope}, "audience": {audience},
		"client_id": {workload}, "client_secret": {e.secret}}
	status, body := post(exchange, "proof")
	if status != 200 || body["issued_token_type"] != oauthhttp.AccessTokenType || body["access_token"] == nil {
		t.Fatalf("exchange: %d %v", status, body)
	}
	if seen.dpop != "proof" || seen.tls || seen.client.ClientID != workload || seen.client.AuthMethod != issuer.MethodClientSecretPost {
		t.Errorf("hooks saw %+v", seen)
	}
	exchange.Set("subject_token", "forged")
	if status, body := post(exchange, ""); status != 400 || body["error"] != "invalid_request" {
		t.Errorf("bad subject token: %d %v, want invalid_request (RFC 8693 section 2.2.2)", status, body)
	}
	if status, body := post(tokenForm(url.Values{"client_id": {workload}, "client_secret": {e.secret}}), "bad"); status != 400 || body["error"] != "invalid_request" {
		t.Errorf("transport hook refusal: %d %v, want invalid_request", status, body)
	}

	resp, err := srv.Client().Get(srv.URL + oauthhttp.PathMetadata)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	grants, _ := json.Marshal(md["grant_types_supported"])
	algs, _ := json.Marshal(md["dpop_signing_alg_values_supported"])
	if string(grants) != `["client_credentials","`+oauthhttp.GrantTypeTokenExchange+`"]` || string(algs) != `["EdDSA","ES256"]` {
		t.Errorf("metadata grants %s, dpop algs %s", grants, algs)
	}
}
