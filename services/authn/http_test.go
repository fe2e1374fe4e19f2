package authn_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/services/authn"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestHTTP(t *testing.T) {
	acc, err := access.Open(access.Config{Store: storetest.OpenBolt(t, access.Schema), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	tokens := map[string]string{}
	for name, role := range map[string]access.Role{"pdp": access.RolePDPClient, "ops": access.RoleOperator, "root": access.RoleAdmin} {
		_, tok, err := acc.CreateIdentity(ctx, name, []access.Role{role}, true, "", "test")
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = tok
	}
	a := authn.New(authn.Config{Access: acc})
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := authn.CallerFrom(r.Context())
		w.Write([]byte(c.Name))
	})
	mux := http.NewServeMux()
	mux.Handle("/access/v1/evaluation", a.HTTP(echo, access.RolePDPClient))
	mux.Handle("/whoami", a.HTTP(echo))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tc := range []struct {
		name, path, auth string
		want             int
		body             string
	}{
		{"pdp client evaluates", "/access/v1/evaluation", "Bearer " + tokens["pdp"], 200, "pdp"},
		{"admin evaluates", "/access/v1/evaluation", "Bearer " + tokens["root"], 200, "root"},
		{"operator may not", "/access/v1/evaluation", "Bearer " + tokens["ops"], 403, "needs one of the roles admin or pdp-client"},
		{"no credential", "/access/v1/evaluation", "", 401, "no credential"},
		{"bad token", "/access/v1/evaluation", "Bearer trt_nope", 401, "not valid"},
		{"not bearer", "/access/v1/evaluation", "Basic eDp5", 401, "Bearer"},
		{"any caller", "/whoami", "Bearer " + tokens["ops"], 200, "ops"},
		{"any caller needs one", "/whoami", "", 401, "no credential"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+tc.path+"?secret=x", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 200 {
				var b strings.Builder
				buf := make([]byte, 100)
				n, _ := resp.Body.Read(buf)
				b.Write(buf[:n])
				if b.String() != tc.body {
					t.Errorf("body = %q, want %q", b.String(), tc.body)
				}
				return
			}
			var e struct{ Error, ErrorDescription string }
			var raw map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
				t.Fatal(err)
			}
			e.Error, e.ErrorDescription = raw["error"], raw["error_description"]
			if !strings.Contains(e.ErrorDescription, tc.body) || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("refusal = %+v, want it to say %q", e, tc.body)
			}
			if (tc.want == 401) != (resp.Header.Get("WWW-Authenticate") != "") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	got := waitRefusals(t, acc, 5)
	if r := got[0]; r.Method != "HTTP POST /access/v1/evaluation" || r.Code != "PERMISSION_DENIED" || r.Caller != "ops" {
		t.Errorf("first HTTP refusal = %+v", r)
	}
}

func TestReadCredentialFile(t *testing.T) {
	dir := t.TempDir()
	good := "trt_" + strings.Repeat("A", 43)
	for _, tc := range []struct {
		name, content string
		ok            bool
	}{
		{"bootstrap's shape", good + "\n", true},
		{"spaces around", "  " + good + " \r\n", true},
		{"empty", "\n", false},
		{"not a token", "hunter2-but-longer-than-it-should-be-to-be-a-token", false},
		{"large", strings.Repeat("x", 10000), false},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		tok, err := access.ReadTokenFile(path)
		if (err == nil) != tc.ok || (tc.ok && tok != good) {
			t.Errorf("%s: %q, %v", tc.name, tok, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error quotes the file: %v", tc.name, err)
		}
	}
	if _, err := access.ReadTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file reads")
	}
}

func TestTokenCredentials(t *testing.T) {
	c := authn.Token("trt_x")
	md, err := c.GetRequestMetadata(ctx)
	if err != nil || md["authorization"] != "Bearer trt_x" || c.RequireTransportSecurity() {
		t.Errorf("Token = %v, %v, TLS %v", md, err, c.RequireTransportSecurity())
	}
}

// TestHTTPClientCertificate authenticates an HTTP caller by its verified client certificate.
func TestHTTPClientCertificate(t *testing.T) {
	acc, err := access.Open(access.Config{Store: storetest.OpenBolt(t, access.Schema), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	if _, _, err := acc.CreateIdentity(ctx, "spiffe://example.org/gw", []access.Role{access.RolePDPClient}, false, "", "gateway"); err != nil {
		t.Fatal(err)
	}
	ca := newCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	a := authn.New(authn.Config{Access: acc})
	srv := httptest.NewUnstartedServer(a.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := authn.CallerFrom(r.Context())
		w.Write([]byte(c.Name + " " + c.Via))
	}), access.RolePDPClient))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "localhost", nil, true)}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	defer srv.Close()
	for _, tc := range []struct {
		cn, uri string
		want    int
		body    string
	}{
		{"x", "spiffe://example.org/gw", 200, "spiffe://example.org/gw certificate"},
		{"stranger", "", 401, ""},
	} {
		var u *url.URL
		if tc.uri != "" {
			u = mustURL(t, tc.uri)
		}
		cert := ca.issue(t, tc.cn, u, false)
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{cert},
		}}}
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		client.CloseIdleConnections()
		if resp.StatusCode != tc.want || (tc.want == 200 && string(body) != tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.cn, resp.StatusCode, body, tc.want, tc.body)
		}
	}
}
