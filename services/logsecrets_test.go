package services

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/issuer"
)

// secrets are the values that must never reach a log, each under a name for the failure message.
type secrets map[string]string

// add records a secret; for a JWS it also records its signature, so a log that repeats a token
// in part (or re-encoded around its signature) is caught too.
func (s secrets) add(name, v string) {
	s[name] = v
	if parts := strings.Split(v, "."); len(parts) == 3 && len(parts[2]) >= 16 {
		s[name+" (signature)"] = parts[2]
	}
}

// TestLogsHoldNoSecrets runs the server's paths that handle secrets, the good and the bad requests,
// with every service logging JSON at Debug level into a buffer, and then looks for every access
// token, client assertion, client secret, private key and DPoP proof in the captured logs.
func TestLogsHoldNoSecrets(t *testing.T) {
	logs := &logtest.Buffer{}
	dataDir := t.TempDir()
	srv, conn := serve(t, Config{
		DataDir: dataDir, HTTPListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitServing(ctx, t, srv)

	secret := secrets{}
	reg := treatyv1.NewRegistryServiceClient(conn)
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: "test", Activate: true, ApprovedBy: "test", Partner: &treatyv1.Partner{
		Id: "acme", DisplayName: "Acme", OwnerTeam: "partnerships", ContractEndTime: timestamppb.New(time.Now().Add(90 * 24 * time.Hour)),
	}}))
	must(reg.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: "test", Activate: true, ApprovedBy: "test", Integration: &treatyv1.Integration{
		Id: "acme-api", PartnerId: "acme", Environment: "production", AllowedScopes: []string{"orders.read", "orders.write"},
		Audiences: []string{"orders-api", "billing-api"}, MaxCredentialTtl: durationpb.New(time.Hour),
		AllowedClientAuthMethods: []treatyv1.ClientAuthMethod{
			treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_PRIVATE_KEY_JWT,
			treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC,
			treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_POST,
		},
	}}))
	keys := map[string]ed25519.PrivateKey{}
	for _, id := range []string{"acme-bot", "acme-relay"} {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[id] = priv
		pubDER, _ := x509.MarshalPKIXPublicKey(pub)
		privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
		privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
		secret[id+" private key PEM body"] = strings.Split(privPEM, "\n")[1]
		secret[id+" private key seed (base64url)"] = base64.RawURLEncoding.EncodeToString(priv.Seed())
		secret[id+" private key seed (base64)"] = base64.StdEncoding.EncodeToString(priv.Seed())
		must(reg.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{
			Id: id, IntegrationId: "acme-api", Actor: "test",
			PublicKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		}))
	}
	cs, err := reg.CreateClientSecret(ctx, &treatyv1.CreateClientSecretRequest{WorkloadId: "acme-bot", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	clientSecret := cs.GetSecret()
	if !strings.HasPrefix(clientSecret, "treaty_cs_") {
		t.Fatalf("client secret %q lacks the treaty_cs_ prefix this test looks for", clientSecret)
	}
	secret["client secret"] = clientSecret

	// Issuance over gRPC with private_key_jwt: a good assertion, the same one replayed, and a
	// tampered one.
	iss := treatyv1.NewIssuerServiceClient(conn)
	assertion := func(id string) string {
		a, err := issuer.SignAssertion(id, srv.IssuerURL(), keys[id], time.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		secret.add(id+" client assertion "+a[len(a)-8:], a)
		return a
	}
	a := assertion("acme-bot")
	issued, err := iss.IssueToken(ctx, &treatyv1.IssueTokenRequest{ClientAssertion: a, Scopes: []string{"orders.read", "orders.write"}, Audience: "orders-api"})
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	tok := issued.GetAccessToken()
	secret.add("access token (gRPC)", tok)
	if _, err := iss.IssueToken(ctx, &treatyv1.IssueTokenRequest{ClientAssertion: a, Scopes: []string{"orders.read"}, Audience: "orders-api"}); err == nil {
		t.Fatal("a replayed assertion was accepted")
	}
	bad := assertion("acme-bot")
	bad = bad[:len(bad)-4] + "AAAA"
	if _, err := iss.IssueToken(ctx, &treatyv1.IssueTokenRequest{ClientAssertion: bad, Scopes: []string{"orders.read"}, Audience: "orders-api"}); err == nil {
		t.Fatal("a tampered assertion was accepted")
	}

	// Token exchange over gRPC, by the other workload of the integration; and one with a forged
	// subject token.
	ex, err := iss.ExchangeToken(ctx, &treatyv1.ExchangeTokenRequest{
		Request:      &treatyv1.IssueTokenRequest{ClientAssertion: assertion("acme-relay"), Scopes: []string{"orders.read"}, Audience: "billing-api"},
		SubjectToken: tok, SubjectTokenType: issuer.TokenTypeAccessToken,
	})
	if err != nil {
		t.Fatalf("ExchangeToken: %v", err)
	}
	secret.add("exchanged token", ex.GetAccessToken())
	if _, err := iss.ExchangeToken(ctx, &treatyv1.ExchangeTokenRequest{
		Request:      &treatyv1.IssueTokenRequest{ClientAssertion: assertion("acme-relay"), Scopes: []string{"orders.read"}, Audience: "billing-api"},
		SubjectToken: tok[:len(tok)-4] + "AAAA", SubjectTokenType: issuer.TokenTypeAccessToken,
	}); err == nil {
		t.Fatal("a forged subject token was exchanged")
	}

	// Decisions: the tokens, and a tampered one.
	pdp := treatyv1.NewDecisionServiceClient(conn)
	for _, c := range []struct{ tok, resource string }{{tok, "orders-api"}, {ex.GetAccessToken(), "billing-api"}, {tok[:len(tok)-4] + "AAAA", "orders-api"}} {
		if _, err := pdp.Check(ctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: c.tok}, Action: "orders.read", Resource: c.resource}); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}

	// The OAuth endpoints: client_secret_post with a DPoP proof, client_secret_basic, a wrong
	// secret, introspection and revocation.
	base := "http://" + srv.HTTPAddr()
	var md map[string]any
	getJSON(t, base+"/.well-known/oauth-authorization-server", &md)
	tokenURL, _ := md["token_endpoint"].(string)
	introspectURL, _ := md["introspection_endpoint"].(string)
	revokeURL, _ := md["revocation_endpoint"].(string)
	if tokenURL == "" || introspectURL == "" || revokeURL == "" {
		t.Fatalf("metadata lacks endpoints: %v", md)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"orders.read"}, "resource": {"orders-api"},
		"client_id": {"acme-bot"}, "client_secret": {clientSecret}}
	proof := dpopProof(t, tokenURL)
	secret.add("DPoP proof", proof)
	var got map[string]any
	if status := postForm(t, tokenURL, form, map[string]string{"DPoP": proof}, &got); status != http.StatusOK {
		t.Fatalf("token endpoint with client_secret_post and DPoP: %d %v", status, got)
	}
	dpopTok, _ := got["access_token"].(string)
	secret.add("DPoP-bound access token", dpopTok)
	basic := url.Values{"grant_type": {"client_credentials"}, "scope": {"orders.read"}, "resource": {"orders-api"}}
	auth := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("acme-bot:"+clientSecret))}
	if status := postForm(t, tokenURL, basic, auth, &got); status != http.StatusOK {
		t.Fatalf("token endpoint with client_secret_basic: %d %v", status, got)
	}
	basicTok, _ := got["access_token"].(string)
	secret.add("access token (client_secret_basic)", basicTok)
	wrong := url.Values{"grant_type": {"client_credentials"}, "scope": {"orders.read"}, "resource": {"orders-api"},
		"client_id": {"acme-bot"}, "client_secret": {clientSecret[:len(clientSecret)-3] + "xyz"}}
	secret["wrong client secret"] = wrong.Get("client_secret")
	if status := postForm(t, tokenURL, wrong, nil, &got); status != http.StatusUnauthorized && status != http.StatusBadRequest {
		t.Fatalf("token endpoint with a wrong secret: %d %v", status, got)
	}
	owner := url.Values{"client_id": {"acme-bot"}, "client_secret": {clientSecret}}
	for _, tk := range []string{basicTok, tok[:len(tok)-4] + "AAAA"} {
		f := url.Values{"token": {tk}}
		for k, v := range owner {
			f[k] = v
		}
		if status := postForm(t, introspectURL, f, nil, &got); status != http.StatusOK {
			t.Fatalf("introspection: %d %v", status, got)
		}
	}
	f := url.Values{"token": {basicTok}}
	for k, v := range owner {
		f[k] = v
	}
	if status := postForm(t, revokeURL, f, nil, nil); status != http.StatusOK {
		t.Fatalf("revocation: %d", status)
	}

	// Callers' tokens: the admin's, one created for a gateway, and a forged and a revoked one
	// refused (a refusal is logged and recorded, the token never).
	secret["admin token"] = srv.BootstrapToken()
	accessAdmin := treatyv1.NewAccessServiceClient(conn)
	gw, err := accessAdmin.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{Name: "gateway", Roles: []string{"pdp-client"}, IssueToken: true, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	secret["gateway token"] = gw.GetToken()
	forged := "trt_" + strings.Repeat("Z", 43)
	secret["forged token"] = forged
	for _, tk := range []string{gw.GetToken(), forged} {
		c := dialToken(t, srv, tk)
		treatyv1.NewRegistryServiceClient(c).ListPartners(ctx, &treatyv1.ListPartnersRequest{}) // refused: no role, or unknown
	}
	must(accessAdmin.DeleteIdentity(ctx, &treatyv1.DeleteIdentityRequest{Name: "gateway", Reason: "test"}))
	treatyv1.NewDecisionServiceClient(dialToken(t, srv, gw.GetToken())).Check(ctx, &treatyv1.CheckRequest{}) // refused: deleted

	srv.Shutdown()
	// The issuer's key-encryption key, generated in the data folder at the first start.
	kek, err := os.ReadFile(filepath.Join(dataDir, issuer.KEKFileName))
	if err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(string(kek)); len(v) >= 16 {
		secret["issuer key-encryption key"] = v
	}
	captured := logs.String()
	if !strings.Contains(captured, `"level":"DEBUG"`) && !strings.Contains(captured, `"level":"INFO"`) {
		t.Fatalf("captured no logs: %q", captured)
	}
	for name, v := range secret {
		if v != "" && strings.Contains(captured, v) {
			i := strings.Index(captured, v)
			start, end := strings.LastIndexByte(captured[:i], '\n')+1, i+len(v)
			if j := strings.IndexByte(captured[end:], '\n'); j >= 0 {
				end += j
			}
			t.Errorf("the logs hold the %s:\n%s", name, captured[start:end])
		}
	}
	for _, marker := range []string{"treaty_cs_", "PRIVATE KEY"} {
		if strings.Contains(captured, marker) {
			t.Errorf("the logs hold %q", marker)
		}
	}
	if testing.Verbose() {
		t.Log(captured)
	}
	t.Logf("scanned %d bytes of logs (%d lines) for %d secrets", len(captured), strings.Count(captured, "\n"), len(secret))
}

// waitServing waits until the server is ready to decide.
func waitServing(ctx context.Context, t *testing.T, srv *Server) {
	t.Helper()
	for !srv.Ready() {
		if ctx.Err() != nil {
			t.Fatal("server not ready in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dpopProof makes an RFC 9449 proof for a POST to the token endpoint with a fresh Ed25519 key,
// whose private half is not kept.
func dpopProof(t *testing.T, htu string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(issuer.DPoPType))
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := json.Marshal(map[string]any{"jti": fmt.Sprint(time.Now().UnixNano()), "htm": "POST", "htu": htu, "iat": time.Now().Unix()})
	jws, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// postForm posts a form with extra headers and decodes a JSON answer into v (if not nil).
func postForm(t *testing.T, u string, form url.Values, header map[string]string, v any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, val := range header {
		req.Header.Set(k, val)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if v != nil && len(raw) > 0 {
		if m, ok := v.(*map[string]any); ok {
			*m = nil
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("POST %s: answer is not JSON: %s", u, raw)
		}
	}
	return resp.StatusCode
}
