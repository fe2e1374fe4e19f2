package oauthhttp_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/oauthhttp"
)

func TestMetadataAndJWKS(t *testing.T) {
	e := newEnv(t)
	resp, err := e.srv.Client().Get(e.url(oauthhttp.PathMetadata))
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	err = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"issuer": issuerURL, "token_endpoint": issuerURL + "/oauth2/token", "jwks_uri": issuerURL + "/.well-known/jwks.json",
		"revocation_endpoint": issuerURL + "/oauth2/revoke", "introspection_endpoint": issuerURL + "/oauth2/introspect",
	} {
		if md[k] != want {
			t.Errorf("metadata %s = %v, want %v", k, md[k], want)
		}
	}
	methods, _ := json.Marshal(md["token_endpoint_auth_methods_supported"])
	if string(methods) != `["private_key_jwt","client_secret_basic","client_secret_post"]` {
		t.Errorf("auth methods %s", methods)
	}
	if grants, _ := json.Marshal(md["grant_types_supported"]); string(grants) != `["client_credentials"]` {
		t.Errorf("grant types %s (token exchange is not configured)", grants)
	}

	resp, err = e.srv.Client().Get(e.url(oauthhttp.PathJWKS))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cc := resp.Header.Get("Cache-Control")
	age, err := strconv.Atoi(strings.TrimPrefix(cc, "public, max-age="))
	if err != nil || age <= 0 || float64(age) >= e.iss.KeyPrepublish().Seconds() {
		t.Errorf("JWKS Cache-Control %q: want a max-age shorter than the key prepublication (%s)", cc, e.iss.KeyPrepublish())
	}
}

func TestRequestShape(t *testing.T) {
	e := newEnv(t)
	valid := tokenForm(url.Values{"client_id": {workload}, "client_secret": {e.secret}}).Encode()
	request := func(method, path, contentType, body string) *http.Request {
		req, err := http.NewRequest(method, e.url(path), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		return req
	}
	const form = "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"valid", request("POST", oauthhttp.PathToken, form, valid), 200, ""},
		{"GET on the token endpoint", request("GET", oauthhttp.PathToken, "", ""), 405, "invalid_request"},
		{"JSON body", request("POST", oauthhttp.PathToken, "application/json", `{"grant_type":"client_credentials"}`), 400, "invalid_request"},
		{"parameters in the query", request("POST", oauthhttp.PathToken+"?"+valid, form, ""), 400, "invalid_request"},
		{"body over the bound", request("POST", oauthhttp.PathToken, form, valid+"&pad="+strings.Repeat("x", oauthhttp.DefaultMaxBodyBytes)), 400, "invalid_request"},
		{"Bearer instead of Basic", func() *http.Request {
			r := request("POST", oauthhttp.PathToken, form, tokenForm(nil).Encode())
			r.Header.Set("Authorization", "Bearer "+e.secret)
			return r
		}(), 401, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := e.do(tc.req)
			if tc.status == 200 {
				if status != 200 || body["access_token"] == nil || hdr.Get("Cache-Control") != "no-store" || body["token_type"] != "Bearer" {
					t.Fatalf("answered %d %v (Cache-Control %q)", status, body, hdr.Get("Cache-Control"))
				}
				return
			}
			wantOAuthError(t, status, hdr, body, tc.status, tc.code)
		})
	}
}

// Who may introspect: a configured resource server, any token; a workload, its own tokens only.
func TestIntrospectionCallers(t *testing.T) {
	e := newEnv(t)
	status, _, body := e.post(oauthhttp.PathToken, tokenForm(url.Values{"client_id": {workload}, "client_secret": {e.secret}}), "", "")
	if status != 200 {
		t.Fatalf("token: %d %v", status, body)
	}
	tok := body["access_token"].(string)
	withAssertion := func(id string) url.Values {
		return url.Values{"token": {tok}, "client_assertion_type": {issuer.AssertionType}, "client_assertion": {e.assertion(id)}}
	}
	for _, tc := range []struct {
		name   string
		form   func() url.Values
		basic  [2]string
		status int
		active bool
		code   string
	}{
		{"resource server", func() url.Values { return url.Values{"token": {tok}} }, [2]string{rsID, rsSecret}, 200, true, ""},
		{"the token's own workload", func() url.Values { return withAssertion(workload) }, [2]string{}, 200, true, ""},
		{"another workload", func() url.Values { return withAssertion(other) }, [2]string{}, 200, false, ""},
		{"resource server with a wrong secret", func() url.Values { return url.Values{"token": {tok}} }, [2]string{rsID, strings.Repeat("x", 40)}, 401, false, "invalid_client"},
		{"nobody", func() url.Values { return url.Values{"token": {tok}} }, [2]string{}, 401, false, "invalid_client"},
		{"no token", func() url.Values { return url.Values{} }, [2]string{rsID, rsSecret}, 400, false, "invalid_request"},
		{"garbage token", func() url.Values { return url.Values{"token": {"garbage"}} }, [2]string{rsID, rsSecret}, 200, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := e.post(oauthhttp.PathIntrospect, tc.form(), tc.basic[0], tc.basic[1])
			if tc.code != "" {
				wantOAuthError(t, status, hdr, body, tc.status, tc.code)
				return
			}
			if status != tc.status || body["active"] != tc.active || hdr.Get("Cache-Control") != "no-store" {
				t.Fatalf("answered %d %v, want %d active=%v", status, body, tc.status, tc.active)
			}
			if !tc.active && len(body) != 1 {
				t.Errorf("an inactive answer says more than active: %v", body)
			}
		})
	}
	// Revocation needs an authenticated client too.
	status, hdr, body := e.post(oauthhttp.PathRevoke, url.Values{"token": {tok}}, "", "")
	wantOAuthError(t, status, hdr, body, 401, "invalid_client")
}
