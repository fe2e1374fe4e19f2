package oauthhttp_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"go.uber.org/goleak"

	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/services/oauthhttp"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store/storetest"
	"github.com/treaty-dev/treaty/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The fixture: partner acme, integration acme-billing (scopes invoices:read, invoices:write;
// audience https://api.acme.test), workloads acme-bot (key and client secret) and acme-other.
const (
	partner     = "acme"
	integration = "acme-billing"
	workload    = "acme-bot"
	other       = "acme-other"
	audience    = "https://api.acme.test"
	scope       = "invoices:read"
	// issuerURL is the issuer identifier; the HTTP endpoints are reached on the test server's own
	// address, as behind a reverse proxy.
	issuerURL = issuertest.MinterURL
	rsID      = "gateway"
	rsSecret  = "a-resource-server-secret-of-32-bytes-at-least"
)

// env is the real issuer over a real bbolt file in a world of a real registry, PDP and revoker
// (gRPC on loopback), a second real PDP in-process for introspection, and the handler on a real
// loopback HTTP server.
type env struct {
	t      *testing.T
	world  *issuertest.World
	iss    *issuer.Issuer
	pdp    *pdp.PDP
	clock  *issuertest.Clock
	cfg    oauthhttp.Config
	srv    *httptest.Server
	logs   *logtest.Buffer
	keys   map[string]ed25519.PrivateKey
	secret string // acme-bot's client secret
	seq    uint64 // the feed sequence of the fixture's last write
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, world: issuertest.Start(t, issuertest.Config{}), clock: &issuertest.Clock{}, logs: &logtest.Buffer{},
		keys: map[string]ed25519.PrivateKey{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.world.CreatePartner(partner, time.Now().Add(90*24*time.Hour))
	e.world.CreateIntegration(issuertest.Integration{ID: integration, PartnerID: partner, MaxTTL: time.Hour,
		Scopes: []string{"invoices:read", "invoices:write"}, Audiences: []string{audience}})
	e.addWorkload(workload, integration)
	e.addWorkload(other, integration)
	_, e.secret = e.world.CreateClientSecret(workload, 0)

	st := storetest.OpenBolt(t, issuer.Schema)
	relay := outbox.NewRelay(st, e.world.Publisher(), issuertest.Quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); relay.Run(ctx) }()
	iss, err := issuer.New(issuer.Config{Store: st, Relay: relay, Directory: e.world.Directory(), Authorizer: e.world.Authorizer(),
		IssuerURL: issuerURL, Now: e.clock.Now, Logger: log})
	if err != nil {
		cancel()
		<-done
		t.Fatal(err)
	}
	t.Cleanup(func() { iss.Close(); cancel(); <-done })
	e.iss = iss

	e.pdp = pdptest.Start(t, pdp.Config{Store: storetest.OpenBolt(t, pdp.Schema), Source: revokersvc.NewSource(e.world.Conn()), Logger: issuertest.Quiet})
	pdptest.WaitReady(t, e.pdp)

	e.cfg = oauthhttp.Config{
		Issuer: iss, Revoker: oauthhttp.RevocationClient(e.world.Revocation), Introspector: e.pdp,
		ResourceServers: map[string]string{rsID: rsSecret}, Now: e.clock.Now, Logger: log,
	}
	e.srv = e.serve(nil)
	return e
}

// serve starts the handler with the env's config, changed by edit, on a loopback HTTP server.
func (e *env) serve(edit func(*oauthhttp.Config)) *httptest.Server {
	e.t.Helper()
	cfg := e.cfg
	if edit != nil {
		edit(&cfg)
	}
	h, err := oauthhttp.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	return srv
}

func (e *env) addWorkload(id, integ string) {
	e.t.Helper()
	w := e.world.CreateWorkload(id, integ)
	e.keys[id], e.seq = w.Key, w.Sequence
}

func (e *env) url(path string) string { return e.srv.URL + path }

// assertion signs a valid client assertion for id, addressed to the token endpoint.
func (e *env) assertion(id string) string {
	e.t.Helper()
	a, err := issuer.SignAssertion(id, e.iss.TokenEndpoint(), e.keys[id], e.clock.Now(), time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// post sends a form to path with optional Basic credentials and returns the status and the
// decoded JSON body.
func (e *env) post(path string, form url.Values, basicUser, basicPass string) (int, http.Header, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url(path), strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, http.Header, map[string]any) {
	e.t.Helper()
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			e.t.Fatalf("%s %s answered %d with a body that is not JSON: %q", req.Method, req.URL.Path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, resp.Header, body
}

// tokenForm is a client_credentials request for scope and the fixture's audience.
func tokenForm(extra url.Values) url.Values {
	f := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}, "resource": {audience}}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

// assertionForm is tokenForm authenticated by a client assertion.
func assertionForm(a string) url.Values {
	return tokenForm(url.Values{"client_assertion_type": {issuer.AssertionType}, "client_assertion": {a}})
}

// verifyJWKS fetches the published JWKS and verifies tok with it, pinning the algorithm to EdDSA
// (the issuer's default) and the type to at+jwt, and returns its claims.
func (e *env) verifyJWKS(tok string) token.Claims {
	e.t.Helper()
	resp, err := e.srv.Client().Get(e.url(oauthhttp.PathJWKS))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		e.t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		e.t.Fatalf("the token does not parse as an EdDSA JWT: %v", err)
	}
	h := parsed.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != token.Type {
		e.t.Errorf("token typ %q, want %q", typ, token.Type)
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		e.t.Fatalf("the JWKS holds %d keys with kid %q, want 1", len(keys), h.KeyID)
	}
	var c token.Claims
	if err := parsed.Claims(keys[0].Key, &c); err != nil {
		e.t.Fatalf("the token does not verify with the published key: %v", err)
	}
	return c
}

// wantOAuthError fails unless the answer is the OAuth error code with status.
func wantOAuthError(t *testing.T, status int, hdr http.Header, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["error"] != wantCode {
		t.Fatalf("answered %d %v, want %d %s", status, body, wantStatus, wantCode)
	}
	if wantStatus == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("401 without a Basic challenge: %q", hdr.Get("WWW-Authenticate"))
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("error response Cache-Control %q, want no-store", hdr.Get("Cache-Control"))
	}
}
