package issuer_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
)

// signRaw signs payload as a compact JWS with an Ed25519 key, with the key's thumbprint as kid
// and the given typ: fuzzed claims then get past the signature check.
func signRaw(tb testing.TB, key ed25519.PrivateKey, typ string, payload []byte, extra map[jose.HeaderKey]any) string {
	tb.Helper()
	kid, err := issuer.KeyID(key.Public())
	if err != nil {
		tb.Fatal(err)
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid)
	for k, v := range extra {
		opts = opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, opts)
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

// wantRejection fails the test unless err is a clean refusal of bad client input: Invalid or
// Unauthenticated, and a message that never repeats the secret input.
func wantRejection(t *testing.T, err error, secret string) {
	t.Helper()
	switch fail.KindOf(err) {
	case fail.Invalid, fail.Unauthenticated:
	default:
		t.Fatalf("bad input answered with %v (kind %v), want Invalid or Unauthenticated", err, fail.KindOf(err))
	}
	if len(secret) >= 16 && strings.Contains(err.Error(), secret) {
		t.Fatalf("error %q repeats the client's input", err)
	}
}

// FuzzIssueAssertion sends arbitrary client assertions to a real issuer: every one is refused as
// Invalid or Unauthenticated without repeating the assertion, unless it verifies with the
// workload's registered key (a base64 variant of the valid seed may), and then only once.
func FuzzIssueAssertion(f *testing.F) {
	e := newEnv(f)
	valid := e.assertion(workload)
	for _, s := range []string{"", "a.b.c", valid, valid + "x", valid[:len(valid)-2], strings.Replace(valid, ".", "..", 1),
		"eyJhbGciOiJub25lIn0.eyJpc3MiOiJhY21lLWJpbGxpbmctc3luYyIsInN1YiI6ImFjbWUtYmlsbGluZy1zeW5jIn0.",
		"eyJhbGciOiJIUzI1NiJ9.e30.c2ln", `{"payload":"e30","signatures":[]}`, strings.Repeat("A", issuer.MaxAssertionSize+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, assertion string) {
		out, err := e.iss.Issue(context.Background(), issuer.Request{Assertion: assertion, Scopes: []string{"invoices:read"}, Audience: audience})
		if err != nil {
			wantRejection(t, err, assertion)
			return
		}
		if out.Credential.WorkloadID != workload {
			t.Fatalf("issued to %q on an assertion nobody but %s signed", out.Credential.WorkloadID, workload)
		}
	})
}

// FuzzAssertionClaims signs fuzzed assertion claims with the workload's registered key, so the
// fuzzer explores the claim checks behind the signature: an assertion is accepted only with iss and
// sub the workload, aud the issuer, a jti and a short, current lifetime.
func FuzzAssertionClaims(f *testing.F) {
	e := newEnv(f)
	now := time.Now().Unix()
	for _, s := range []string{
		fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":%q,"iat":%d,"exp":%d,"jti":"j1"}`, workload, workload, issuerURL, now, now+60),
		fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":[%q,"x"],"exp":%d,"nbf":%d,"jti":"j2"}`, workload, workload, issuerURL, now+60, now),
		fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":%q,"exp":1e300,"jti":"j3"}`, workload, workload, issuerURL),
		fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":%q,"exp":-1,"jti":""}`, workload, sibling, issuerURL),
		fmt.Sprintf(`{"iss":"globex-bot","sub":"globex-bot","aud":%q,"exp":%d,"jti":"j4"}`, issuerURL, now+60),
		`{"iss":"Not An Id","sub":"Not An Id"}`, `{"aud":{"x":1}}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	key := e.keys[workload]
	f.Fuzz(func(t *testing.T, payload []byte) {
		assertion := signRaw(t, key, "JWT", payload, nil)
		out, err := e.iss.Issue(context.Background(), issuer.Request{Assertion: assertion, Scopes: []string{"invoices:read"}, Audience: audience})
		if err != nil {
			wantRejection(t, err, assertion)
			return
		}
		var c struct {
			Iss, Sub, Jti string
			Aud           any
			Exp           *float64
		}
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatalf("accepted assertion claims that do not decode: %v", err)
		}
		n := float64(time.Now().Unix())
		lifetime := (issuer.MaxAssertionLifetime + issuer.ClockSkew).Seconds()
		switch {
		case out.Credential.WorkloadID != workload, c.Iss != workload, c.Sub != workload, c.Jti == "",
			!strings.Contains(fmt.Sprint(c.Aud), issuerURL), c.Exp == nil, *c.Exp < n-lifetime, *c.Exp > n+lifetime+5:
			t.Fatalf("accepted assertion claims %s", payload)
		}
	})
}
