package issuer_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
)

// FuzzIssueDPoP sends valid issuance requests with arbitrary DPoP headers: a proof that is not
// valid is an Invalid error on dpop marked ErrInvalidDPoPProof that does not repeat the proof,
// and a token is bound only to a key that signed a proof for this request.
func FuzzIssueDPoP(f *testing.F) {
	e := newEnv(f)
	k := fuzzDPoPKey(f)
	claims := func(htu string) []byte {
		return []byte(fmt.Sprintf(`{"jti":"j-%d","htm":"POST","htu":%q,"iat":%d}`, time.Now().UnixNano(), htu, time.Now().Unix()))
	}
	for _, s := range []string{"", "a.b.c", "eyJhbGciOiJub25lIiwidHlwIjoiZHBvcCtqd3QifQ.e30.",
		signProof(f, k.priv, k.jwk, claims(tokenURL)),
		signProof(f, k.priv, map[string]any{"kty": "oct", "k": "AAAA"}, claims(tokenURL)),
		signProof(f, k.priv, map[string]any{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, claims(tokenURL)),
		signProof(f, k.priv, k.jwk, claims("https://TREATY.test:443/oauth2/token")),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, proof string) {
		out, err := e.iss.Issue(context.Background(), fuzzProofRequest(t, e, proof))
		if err != nil {
			if proof != "" {
				wantDPoPError(t, err, proof)
			}
			return
		}
		if proof == "" {
			return
		}
		if out.TokenType != issuer.TokenTypeDPoP || out.Credential.BindingThumbprint == "" {
			t.Fatalf("a proof gave a %s token bound to %q", out.TokenType, out.Credential.BindingThumbprint)
		}
		jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256})
		if err != nil {
			t.Fatalf("bound a token to a proof that does not parse: %v", err)
		}
		jwk := jws.Signatures[0].Protected.JSONWebKey
		if jwk == nil {
			t.Fatal("bound a token to a proof without a jwk")
		}
		if jkt, _ := issuer.KeyID(jwk.Key); jkt != out.Credential.BindingThumbprint {
			t.Fatalf("bound to %q, the proof's key is %q", out.Credential.BindingThumbprint, jkt)
		}
		if _, err := jws.Verify(jwk); err != nil {
			t.Fatalf("bound a token to a proof its key did not sign: %v", err)
		}
	})
}

// FuzzDPoPClaims signs fuzzed proof claims with a real DPoP key (the header valid), so the fuzzer
// explores the claim checks: a proof is accepted only with a jti, htm POST, the token endpoint as
// htu and a current iat.
func FuzzDPoPClaims(f *testing.F) {
	e := newEnv(f)
	k := fuzzDPoPKey(f)
	now := time.Now().Unix()
	for _, s := range []string{
		fmt.Sprintf(`{"jti":"j","htm":"POST","htu":%q,"iat":%d}`, tokenURL, now),
		fmt.Sprintf(`{"jti":"j","htm":"POST","htu":"HTTPS://Treaty.Test:443/oauth2/token","iat":%d,"nonce":"n","ath":"x"}`, now),
		fmt.Sprintf(`{"jti":"j","htm":"post","htu":%q,"iat":%d}`, tokenURL+"?x#y", now),
		`{"jti":"j","htm":"POST","htu":"https://treaty.test/oauth2/token","iat":1e300}`,
		`{"jti":"j","htm":"POST","htu":"https://treaty.test/oauth2/token","iat":-9223372036854775808}`,
		`{"jti":[],"iat":"now"}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		proof := signProof(t, k.priv, k.jwk, payload)
		out, err := e.iss.Issue(context.Background(), fuzzProofRequest(t, e, proof))
		if err != nil {
			wantDPoPError(t, err, proof)
			return
		}
		var c struct {
			JTI, HTM, HTU string
			IAT           *int64
		}
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatalf("accepted proof claims that do not decode: %v", err)
		}
		n := time.Now()
		switch {
		case out.Credential.BindingThumbprint != k.jkt, c.JTI == "", c.HTM != "POST", c.IAT == nil,
			time.Unix(*c.IAT, 0).Before(n.Add(-issuer.DefaultDPoPWindow - 5*time.Second)),
			time.Unix(*c.IAT, 0).After(n.Add(issuer.DefaultDPoPWindow + 5*time.Second)):
			t.Fatalf("accepted proof claims %s", payload)
		}
	})
}

// fuzzProofRequest is env.withProof inside a fuzz target (env's helpers report to the F, which a
// fuzz target may not use).
func fuzzProofRequest(t *testing.T, e *env, proof string) issuer.Request {
	t.Helper()
	a, err := issuer.SignAssertion(workload, issuerURL, e.keys[workload], e.clock.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return issuer.Request{Assertion: a, Scopes: []string{"invoices:read"}, Audience: audience,
		DPoPProof: proof, HTTPMethod: "POST", HTTPURL: tokenURL}
}

// fuzzDPoPKey is newDPoPKey for a fuzz target's setup.
func fuzzDPoPKey(tb testing.TB) dpopKey {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	jkt, err := issuer.KeyID(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return dpopKey{priv: priv, jwk: map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64.EncodeToString(pub)}, jkt: jkt}
}

// signProof signs payload as a DPoP proof with an Ed25519 key whose public JWK is jwk.
func signProof(t testing.TB, key ed25519.PrivateKey, jwk map[string]any, payload []byte) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key},
		(&jose.SignerOptions{}).WithType(issuer.DPoPType).WithHeader("jwk", jwk))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantDPoPError fails the test unless err is the issuer's answer to a bad proof.
func wantDPoPError(t *testing.T, err error, proof string) {
	t.Helper()
	var fe *fail.Error
	if !errors.As(err, &fe) || fe.Kind != fail.Invalid || fe.Field != "dpop" || !errors.Is(err, issuer.ErrInvalidDPoPProof) {
		t.Fatalf("bad DPoP proof answered with %v, want Invalid on dpop marked invalid_dpop_proof", err)
	}
	wantRejection(t, err, proof)
}
