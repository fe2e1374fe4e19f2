package extauthz

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// FuzzCertThumbprint reads arbitrary source certificates and x-forwarded-client-cert headers: the
// answer is empty or a SHA-256 thumbprint, an untrusted header is never read, and nothing panics.
func FuzzCertThumbprint(f *testing.F) {
	pemCert := "-----BEGIN%20CERTIFICATE-----%0AMIIB-----END%20CERTIFICATE-----%0A"
	for _, s := range [][2]string{
		{"", `By=spiffe://a;Hash=` + strings.Repeat("ab", 32) + `;Subject="CN=x,O=y";URI=spiffe://b`},
		{"", `Hash=aa,Hash=` + strings.Repeat("0f", 32)},
		{"", `Cert="` + pemCert + `"`},
		{pemCert, ""},
		{"", `"unterminated;Hash=` + strings.Repeat("ab", 32)},
		{"", `\`}, {"", `,,,;;;===`}, {"%zz", "Cert=%zz"},
	} {
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, source, xfcc string, trust bool) {
		a := &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Certificate: source},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Headers: map[string]string{"x-forwarded-client-cert": xfcc},
			}},
		}
		got := certThumbprint(a, trust)
		if got == "" {
			return
		}
		if sum, err := base64.RawURLEncoding.DecodeString(got); err != nil || len(sum) != 32 {
			t.Fatalf("thumbprint %q is not a base64url SHA-256", got)
		}
		if source == "" && !trust {
			t.Fatalf("read an untrusted x-forwarded-client-cert %q", xfcc)
		}
	})
}

// FuzzCredentialOf reads arbitrary Authorization headers: a token found has no spaces, and the
// scheme is Bearer or DPoP.
func FuzzCredentialOf(f *testing.F) {
	for _, s := range []string{"Bearer a.b.c", "DPoP a.b.c", "bearer  a.b.c ", "Basic eA==", "Bearer", "Bearer a b", "DPoP\ta", ""} {
		f.Add(s, "x.y.z")
	}
	f.Fuzz(func(t *testing.T, authz, dpop string) {
		c := credentialOf(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: "h", Path: "/p?q",
			Headers: map[string]string{"authorization": authz, "dpop": dpop}})
		if c.scheme != "Bearer" && c.scheme != "DPoP" {
			t.Fatalf("scheme %q", c.scheme)
		}
		if strings.ContainsAny(c.token, " \t") || (c.token != "" && !strings.Contains(authz, c.token)) {
			t.Fatalf("token %q from %q", c.token, authz)
		}
		if c.scheme == "Bearer" && c.proof.DPoP != "" {
			t.Fatal("a bearer token carries a DPoP proof")
		}
	})
}

// FuzzLoadRoutes reads arbitrary route files: an accepted table holds only valid routes, and
// match answers only with a route whose method and path or prefix fit the request.
func FuzzLoadRoutes(f *testing.F) {
	for _, s := range []string{
		`{"routes":[{"method":"GET","prefix":"/v1/orders","action":"orders.read","resource":"orders-api"}]}`,
		`{"routes":[{"path":"/v1/orders/*","action":"orders.write","resource":"orders-api"},{"method":"*","prefix":"/","action":"a","resource":"r"}]}`,
		`{"routes":[{"path":"/a/../b","action":"a","resource":"r"}]}`,
		`{"routes":[{"path":"/a","prefix":"/a","action":"a","resource":"r"}]}`,
		`{"routes":[{"pathh":"/a","action":"a","resource":"r"}]}`,
		`{"routes":[]}`, `{}`, `[]`, `{"routes":[{"path":"/a//b","action":"a b","resource":""}]}`,
	} {
		f.Add([]byte(s), "GET", "/v1/orders/42")
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body []byte, method, path string) {
		file := filepath.Join(dir, "routes.json")
		if err := os.WriteFile(file, body, 0o600); err != nil {
			t.Fatal(err)
		}
		routes, err := LoadRoutes(file)
		if err != nil {
			return
		}
		for _, r := range routes {
			if err := checkRoute(r); err != nil {
				t.Fatalf("accepted route %+v: %v", r, err)
			}
		}
		r, ok := match(routes, method, path)
		if !ok {
			return
		}
		if r.Method != "" && r.Method != "*" && r.Method != method {
			t.Fatalf("route %+v matched method %q", r, method)
		}
		if r.Path != "" && strings.Count(r.Path, "/") != strings.Count(path, "/") {
			t.Fatalf("route %+v matched path %q", r, path)
		}
		if p := strings.TrimSuffix(r.Prefix, "/"); r.Prefix != "" && p != "" && path != p && !strings.HasPrefix(path, p+"/") {
			t.Fatalf("route %+v matched path %q", r, path)
		}
	})
}
