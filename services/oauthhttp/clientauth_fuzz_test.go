package oauthhttp

import (
	"encoding/base64"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
)

// FuzzBasicAuth round-trips client credentials through the Authorization header as RFC 6749
// section 2.3.1 encodes them (form-encoded, then Base64), and feeds raw headers that must never
// make basicAuth panic.
func FuzzBasicAuth(f *testing.F) {
	for _, s := range [][3]string{
		{"acme-bot", "treaty_cs_abc", ""}, {"a:b", "p:q%", ""}, {"", "", "Basic"}, {"é", "\x00", "basic Zm9vOmJhcg=="},
		{"x", "y", "Basic !!!"}, {"x", "y", "Bearer abc"}, {"x", "y", "Basic " + base64.StdEncoding.EncodeToString([]byte("a%zz:b"))},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, id, secret, raw string) {
		r := httptest.NewRequest("POST", "/oauth2/token", nil)
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret))))
		if gid, gsecret, ok := basicAuth(r); !ok || gid != id || gsecret != secret {
			t.Fatalf("basicAuth(%q, %q) = %q, %q, %v", id, secret, gid, gsecret, ok)
		}
		r.Header.Set("Authorization", raw)
		basicAuth(r)
	})
}

// FuzzClientAuth reads arbitrary Authorization headers and form bodies as a token request's
// client authentication: a refusal is Invalid or Unauthenticated and never repeats a secret, and
// what is accepted is exactly one method, carried unchanged.
func FuzzClientAuth(f *testing.F) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("acme-bot:treaty_cs_secret"))
	at := url.QueryEscape(issuer.AssertionType)
	for _, s := range [][2]string{
		{"", "client_id=acme-bot&client_secret=treaty_cs_secret"},
		{basic, "grant_type=client_credentials"},
		{basic, "client_id=other"},
		{basic, "client_secret=treaty_cs_other"},
		{"", "client_assertion_type=" + at + "&client_assertion=a.b.c"},
		{"", "client_assertion_type=x&client_assertion=a.b.c"},
		{"", "client_assertion=a.b.c&client_secret=s"},
		{"", "client_assertion=t-bearer"}, // a credential that happens to be part of the message
		{"Basic", ""}, {"Basic Og==", ""}, {"Digest x", "client_secret=treaty_cs_x"}, {"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, header, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		r := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(body))
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		req, err := clientAuth(r, form)
		if err != nil {
			if k := fail.KindOf(err); k != fail.Invalid && k != fail.Unauthenticated {
				t.Fatalf("clientAuth error %v of kind %v", err, k)
			}
			// The same request with every credential replaced by filler of its length takes the
			// same path: text found in both messages is the message's own, not a repeated secret.
			masked := url.Values{}
			for k, v := range form {
				masked[k] = v
			}
			id, bsecret, basic := basicAuth(r)
			creds := []string{form.Get("client_secret"), form.Get("client_assertion"), bsecret}
			for _, k := range []string{"client_secret", "client_assertion"} {
				if v := form.Get(k); v != "" {
					masked.Set(k, strings.Repeat("\x01", len(v)))
				}
			}
			mr := httptest.NewRequest("POST", "/oauth2/token", nil)
			if header != "" {
				mr.Header.Set("Authorization", header)
			}
			if basic {
				mr.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+strings.Repeat("x", len(bsecret)))))
			}
			_, merr := clientAuth(mr, masked)
			for _, s := range creds {
				if len(s) >= 8 && strings.Contains(err.Error(), s) && (merr == nil || !strings.Contains(merr.Error(), s)) {
					t.Fatalf("error %q repeats a credential", err)
				}
			}
			return
		}
		switch {
		case (req.ClientSecret != "") == (req.AssertionType != ""): // an empty assertion is the issuer's to refuse
			t.Fatalf("accepted %+v: not exactly one method", req)
		case req.Assertion != "" && (req.AssertionType != issuer.AssertionType || req.Assertion != form.Get("client_assertion")):
			t.Fatalf("assertion changed: %+v", req)
		case r.Header.Get("Authorization") != "" && req.AuthMethod != issuer.MethodClientSecretBasic:
			t.Fatalf("Basic credentials read as %q", req.AuthMethod)
		case r.Header.Get("Authorization") == "" && req.ClientSecret != "" && (req.AuthMethod != issuer.MethodClientSecretPost || req.ClientSecret != form.Get("client_secret")):
			t.Fatalf("posted secret read as %+v", req)
		}
	})
}

// FuzzTokenID reads arbitrary revocation requests' tokens: the jti found, if any, is one the
// inventory could hold.
func FuzzTokenID(f *testing.F) {
	for _, s := range []string{"", "a.b.c", "eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJqMSJ9.c2ln", "eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiIgIn0.c2ln",
		"eyJhbGciOiJub25lIn0.eyJqdGkiOiJqMSJ9.", strings.Repeat("a", issuer.MaxAssertionSize+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if jti := tokenID(raw); jti != "" && fail.CheckOpaqueID("jti", jti) != nil {
			t.Fatalf("tokenID(%q) = %q, not an opaque id", raw, jti)
		}
	})
}
