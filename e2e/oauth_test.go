package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

// TestOAuthClientCredentials drives `treaty serve --http-listen` with an off-the-shelf OAuth
// client: the RFC 8414 metadata names the endpoints, golang.org/x/oauth2 obtains a token with a
// client secret the CLI created, the PDP allows it, and RFC 7009 revocation kills it.
func TestOAuthClientCredentials(t *testing.T) {
	t.Parallel()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	startServer(t, addr, "--data", t.TempDir(), "--http-listen", httpAddr)
	o := &operator{t: t, d: deployment{env: []string{"TREATY_SERVER=" + addr}}, dir: t.TempDir()}
	o.onboard("acme")
	secret, _ := o.json(0, "workload", "secret", "create", "acme-bot", "--ttl", "7d")["secret"].(string)
	if !strings.HasPrefix(secret, "treaty_cs_") {
		t.Fatalf("secret create printed %q, want a treaty_cs_ secret", secret)
	}

	base := "http://" + httpAddr
	resp, err := http.Get(base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if md["issuer"] != base || md["token_endpoint"] != base+"/oauth2/token" || md["revocation_endpoint"] != base+"/oauth2/revoke" {
		t.Fatalf("metadata = %v, want the endpoints under %s", md, base)
	}

	cc := clientcredentials.Config{
		ClientID: "acme-bot", ClientSecret: secret, TokenURL: md["token_endpoint"].(string),
		Scopes: []string{"orders.read"}, EndpointParams: url.Values{"resource": {"orders-api"}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("client credentials grant: %v", err)
	}
	if tok.TokenType != "Bearer" || strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("token %q of type %q", tok.AccessToken, tok.TokenType)
	}
	o.wantReason(o.check(tok.AccessToken, "orders.read", "orders-api", true, 0), "granted")

	// A wrong secret is invalid_client.
	bad := cc
	bad.ClientSecret = secret + "x"
	if _, err := bad.Token(ctx); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("wrong secret: %v, want invalid_client", err)
	}

	// RFC 7009: the client revokes its own token; the PDP then denies it.
	form := url.Values{"token": {tok.AccessToken}}
	req, _ := http.NewRequest(http.MethodPost, md["revocation_endpoint"].(string), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("acme-bot", secret)
	rr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rr.Body.Close()
	if rr.StatusCode != http.StatusOK {
		t.Fatalf("revocation: %d", rr.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := treaty(t, o.d.env, "", "check", "--token", tok.AccessToken, "--action", "orders.read", "--resource", "orders-api", "-o", "json")
		var out struct{ Reasons []string }
		json.Unmarshal([]byte(r.stdout), &out)
		if r.code == 3 && slices.Contains(out.Reasons, "revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after revocation the token still checks as %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
