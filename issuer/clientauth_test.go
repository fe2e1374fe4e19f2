package issuer_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/issuer"
)

func TestClientSecretAuthentication(t *testing.T) {
	logs := &logtest.Buffer{}
	e := newEnv(t, func(c *issuer.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := context.Background()
	_, secret := e.world.CreateClientSecret(workload, 0)
	revokedID, revoked := e.world.CreateClientSecret(sibling, 0)
	e.world.RevokeClientSecret(sibling, revokedID)
	_, short := e.world.CreateClientSecret(sibling, time.Minute)
	_, globexSecret := e.world.CreateClientSecret("globex-bot", 0)

	withSecret := func(id, secret, method string) issuer.Request {
		return issuer.Request{ClientID: id, ClientSecret: secret, AuthMethod: method, Scopes: []string{"invoices:read"}, Audience: audience}
	}
	for _, method := range []string{issuer.MethodClientSecretBasic, issuer.MethodClientSecretPost} {
		out := e.issue(withSecret(workload, secret, method))
		if out.Credential.WorkloadID != workload || out.Credential.AuthMethod != method {
			t.Errorf("issued %+v, want a credential of %s recording %s", out.Credential, workload, method)
		}
		if rec, err := e.iss.Credential(out.Credential.ID); err != nil || rec.AuthMethod != method {
			t.Errorf("inventory record %+v, %v; want auth method %s", rec, err, method)
		}
	}
	if out := e.issue(e.request()); out.Credential.AuthMethod != issuer.MethodPrivateKeyJWT {
		t.Errorf("assertion credential records %q", out.Credential.AuthMethod)
	}

	tests := []struct {
		name    string
		req     issuer.Request
		advance time.Duration
		kind    fail.Kind
	}{
		{"wrong secret", withSecret(workload, secret[:len(secret)-1]+"x", ""), 0, fail.Unauthenticated},
		{"another workload's secret", withSecret(workload, globexSecret, ""), 0, fail.Unauthenticated},
		{"unknown client", withSecret("nobody", secret, ""), 0, fail.Unauthenticated},
		{"malformed client id", withSecret("No Body", secret, ""), 0, fail.Unauthenticated},
		{"revoked secret", withSecret(sibling, revoked, ""), 0, fail.Unauthenticated},
		{"expired secret (the issuer's clock)", withSecret(sibling, short, ""), 2 * time.Minute, fail.Unauthenticated},
		{"oversized secret", withSecret(workload, strings.Repeat("s", 4096), ""), 0, fail.Unauthenticated},
		{"no client id", withSecret("", secret, ""), 0, fail.Invalid},
		{"unknown method", withSecret(workload, secret, "client_secret_jwt"), 0, fail.Invalid},
		{"secret and assertion", func() issuer.Request {
			r := withSecret(workload, secret, "")
			r.Assertion = e.assertion(workload)
			return r
		}(), 0, fail.Invalid},
		{"client_id of another workload beside an assertion", func() issuer.Request { r := e.request(); r.ClientID = sibling; return r }(), 0, fail.Unauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(tc.advance)
			defer e.clock.Reset()
			_, err := e.iss.Issue(ctx, tc.req)
			wantKind(t, err, tc.kind)
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "treaty_cs_") {
				t.Errorf("error %q repeats a secret", err)
			}
		})
	}
	// The short-lived secret works before it expires.
	if out := e.issue(withSecret(sibling, short, "")); out.Credential.AuthMethod != issuer.MethodClientSecretPost {
		t.Errorf("default method recorded %q", out.Credential.AuthMethod)
	}
	for _, s := range []string{secret, revoked, short, globexSecret, "treaty_cs_"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the issuer's logs hold a client secret")
		}
	}
	if !strings.Contains(logs.String(), "auth_method=client_secret_basic") {
		t.Errorf("the issuance log does not record the method")
	}
}
