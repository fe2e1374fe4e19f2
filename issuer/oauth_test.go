package issuer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
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
