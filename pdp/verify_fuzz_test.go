package pdp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/token"
)

// done is a context that has ended: a fuzzed tsq ahead of the feed then denies at once as
// sequence_ahead instead of waiting a second for the feed to get there.
func done() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// signPayload signs raw bytes as an access token with the env's published key (EdDSA, kid k1,
// typ at+jwt): the fuzzer then mutates the claims past the signature check.
func signPayload(tb testing.TB, k *pdptest.Key, payload []byte) string {
	tb.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: k.Private},
		(&jose.SignerOptions{}).WithType(token.Type).WithHeader("kid", k.Kid))
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// FuzzCheckClaims signs fuzzed claims with the issuer key the PDP trusts, so that every input gets
// past the signature: whatever the payload, Check answers a decision with one reason, and grants
// only claims that name the onboarded workload, its partner and integration, the issuer, the
// feed's epoch, an applied sequence, a live window, the requested scope and audience.
func FuzzCheckClaims(f *testing.F) {
	e := newEnv(f, pdp.Config{})
	c := e.claims()
	c.Expiry = time.Now().Add(24 * time.Hour).Unix() // seeds stay valid while the fuzzer runs
	seed := func(edit func(*token.Claims)) []byte {
		c := c
		if edit != nil {
			edit(&c)
		}
		raw, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		return raw
	}
	valid := seed(nil)
	if got := reason(f, e.check(f, signPayload(f, e.key, valid), "read", "api")); got != pdp.ReasonGranted {
		f.Fatalf("the valid seed is denied: %s", got) // the fuzzer would never reach a grant
	}
	f.Add(valid)
	f.Add(seed(func(c *token.Claims) { c.Confirmation = &token.Confirmation{JKT: "abc"} }))
	f.Add(seed(func(c *token.Claims) {
		c.Actor = &token.Actor{Subject: "acme-bot"}
		c.Ancestors = []token.Ancestor{{ID: "parent", KeyID: "k1", Sequence: c.Sequence}}
	}))
	f.Add(seed(func(c *token.Claims) { c.Actor = &token.Actor{Subject: "acme-bot", Actor: &token.Actor{Subject: "x"}} }))
	f.Add(seed(func(c *token.Claims) { c.Sequence = c.Sequence + 1000 }))
	f.Add(seed(func(c *token.Claims) { c.Scope = "write  read" }))
	f.Add([]byte(fmt.Sprintf(`{"iss":%q,"sub":"acme-bot","partner":"acme","integration":"acme-api","scope":"read","aud":"api","exp":1e99,"jti":"j","tsq":-1}`, pdptest.Issuer)))
	f.Add([]byte(`{"sub":"acme-bot","SUB":"other","exp":"soon"}`))
	f.Add([]byte(`{"act":{"act":{"act":{"act":{"act":{"sub":"a"}}}}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		tok := signPayload(t, e.key, payload)
		d, err := e.pdp.Check(done(), pdp.CheckRequest{Token: tok, Action: "read", Resource: "api"})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if len(d.Reasons) != 1 || d.Allow != (d.Reasons[0] == pdp.ReasonGranted) {
			t.Fatalf("decision allow=%v reasons %q", d.Allow, d.Reasons)
		}
		if !d.Allow {
			return
		}
		var got token.Claims
		if err := json.Unmarshal(payload, &got); err != nil {
			t.Fatalf("granted claims that do not decode: %v", err)
		}
		now := time.Now().Unix()
		switch {
		case got.Issuer != pdptest.Issuer, got.Subject != "acme-bot", got.Partner != "acme", got.Integration != "acme-api",
			got.ClientID != "" && got.ClientID != got.Presenter(), got.Presenter() != "acme-bot",
			got.Audience != "api", !got.HasScope("read"), got.ID == "",
			got.Expiry <= now-5, got.IssuedAt > now+int64(pdp.MaxClockSkew/time.Second)+5,
			got.Epoch != e.log.Epoch(), got.Sequence > e.log.Head(), got.Confirmation != nil,
			len(got.Ancestors) > token.MaxExchangeDepth, got.ActorDepth() != len(got.Ancestors):
			t.Fatalf("granted claims %+v", got)
		}
		if d.TokenID != got.ID || d.Subject != got.Subject || d.Partner != got.Partner {
			t.Fatalf("decision names %s/%s/%s, the claims %s/%s/%s", d.TokenID, d.Subject, d.Partner, got.ID, got.Subject, got.Partner)
		}
	})
}
