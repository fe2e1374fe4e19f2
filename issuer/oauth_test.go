package issuer_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
)

func TestOAuthFace(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if got := e.iss.TokenEndpoint(); got != issuerURL+"/oauth2/token" {
		t.Errorf("TokenEndpoint = %q", got)
	}
	// An assertion addressed to the token endpoint authenticates too.
	a, err := issuer.SignAssertion(workload, e.iss.TokenEndpoint(), e.keys[workload], e.clock.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id, method, err := e.iss.AuthenticateClient(ctx, issuer.Request{Assertion: a})
	if err != nil || id != workload || method != issuer.MethodPrivateKeyJWT {
		t.Fatalf("AuthenticateClient = %q, %q, %v", id, method, err)
	}
	// ... once: AuthenticateClient consumes the assertion like Issue does.
	if _, _, err := e.iss.AuthenticateClient(ctx, issuer.Request{Assertion: a}); fail.KindOf(err) != fail.Unauthenticated {
		t.Errorf("replayed assertion: %v", err)
	}

	for _, tc := range []struct {
		name string
		edit func(*issuer.Request)
		mark error
	}{
		{"scope outside the ceiling", func(r *issuer.Request) { r.Scopes = []string{"invoices:read", "admin"} }, issuer.ErrInvalidScope},
		{"audience not listed", func(r *issuer.Request) { r.Audience = "https://evil.test" }, issuer.ErrInvalidTarget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := e.request()
			tc.edit(&req)
			_, err := e.iss.Issue(ctx, req)
			if !errors.Is(err, tc.mark) || fail.KindOf(err) != fail.Denied {
				t.Errorf("Issue = %v (kind %v), want Denied marked %v", err, fail.KindOf(err), tc.mark)
			}
		})
	}
}

// AuthenticateClient (the revocation and introspection endpoints' way in) holds a client to the
// methods its integration allows, as issuance does.
func TestAuthenticateClientChecksAllowedMethods(t *testing.T) {
	e := newEnv(t)
	e.world.CreateIntegration(issuertest.Integration{
		ID: "acme-mtls-only", PartnerID: partner, MaxTTL: time.Hour, Scopes: []string{"invoices:read"}, Audiences: []string{audience},
		ClientAuthMethods: []treatyv1.ClientAuthMethod{treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_SELF_SIGNED_TLS_CLIENT_AUTH},
	})
	e.addWorkload("mtls-bot", "acme-mtls-only")
	if _, _, err := e.iss.AuthenticateClient(context.Background(), e.requestAs("mtls-bot")); !errors.Is(err, issuer.ErrUnauthorizedClient) {
		t.Fatalf("private_key_jwt where only self_signed_tls_client_auth is allowed: %v, want ErrUnauthorizedClient", err)
	}
}

// One assertion authenticates one AuthenticateClient call, however many race with it.
func TestAuthenticateClientConsumesTheAssertionOnce(t *testing.T) {
	e := newEnv(t)
	req := e.request()
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 8 {
		wg.Go(func() {
			if _, _, err := e.iss.AuthenticateClient(context.Background(), req); err == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("one assertion authenticated %d of 8 concurrent calls, want exactly 1", ok.Load())
	}
}
