package pdp_test

import (
	"context"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/token"
)

func TestIntrospect(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*token.Claims)
		before func(t *testing.T, e *env, c token.Claims)
		want   string
	}{
		{name: "active", want: pdp.ReasonGranted},
		{name: "expired", edit: func(c *token.Claims) { c.IssuedAt -= 3600; c.Expiry = time.Now().Add(-time.Minute).Unix() }, want: pdp.ReasonExpired},
		{name: "not yet valid", edit: func(c *token.Claims) { c.IssuedAt = time.Now().Add(time.Hour).Unix() }, want: pdp.ReasonNotYetValid},
		{name: "revoked", before: func(t *testing.T, e *env, c token.Claims) { pdptest.Revoke(t, e.log, credentialK, c.ID) }, want: pdp.ReasonRevoked},
		{name: "workload blocked", before: func(t *testing.T, e *env, _ token.Claims) { pdptest.Revoke(t, e.log, workloadK, "acme-bot") }, want: pdp.ReasonWorkloadBlocked},
		{name: "key revoked", before: func(t *testing.T, e *env, _ token.Claims) { pdptest.Revoke(t, e.log, keyK, "k1") }, want: pdp.ReasonKeyRevoked},
		{name: "wrong issuer", edit: func(c *token.Claims) { c.Issuer = "https://elsewhere.test" }, want: pdp.ReasonWrongIssuer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, pdp.Config{})
			c := e.claims()
			if tc.edit != nil {
				tc.edit(&c)
			}
			tok := e.key.Mint(t, c)
			// Warm the cache first, so introspection after a revocation is answered from it.
			e.check(t, tok, "read", "api")
			if tc.before != nil {
				tc.before(t, e, c)
			}
			deadline := time.Now().Add(5 * time.Second)
			for e.pdp.Applied() < e.log.Head() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			in, err := e.pdp.Introspect(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if in.Reason != tc.want || in.Active != (tc.want == pdp.ReasonGranted) {
				t.Errorf("Introspect = %+v, want reason %s", in, tc.want)
			}
			if tc.want == pdp.ReasonGranted && (in.Claims == nil || in.Claims.ID != c.ID || in.KeyID != "k1") {
				t.Errorf("active introspection carries %+v, want the token's claims and kid k1", in)
			}
		})
	}
	t.Run("malformed", func(t *testing.T) {
		e := newEnv(t, pdp.Config{})
		in, err := e.pdp.Introspect(context.Background(), "not-a-token")
		if err != nil || in.Active || in.Reason != pdp.ReasonMalformedToken || in.Claims != nil {
			t.Errorf("Introspect = %+v, %v", in, err)
		}
	})
}
