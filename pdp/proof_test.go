package pdp_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/token"
)

const (
	dpopMethod = "POST"
	dpopURI    = "https://api.example.test/orders"
)

// TestDPoP checks tokens bound to a DPoP key (cnf.jkt) with real RFC 9449 proofs.
func TestDPoP(t *testing.T) {
	type proofFor func(t *testing.T, k *pdptest.DPoPKey, tok string) string
	proof := func(edit func(p *pdptest.DPoPProof)) proofFor {
		return func(t *testing.T, k *pdptest.DPoPKey, tok string) string {
			p := pdptest.DPoPProof{Method: dpopMethod, URI: dpopURI, Token: tok}
			if edit != nil {
				edit(&p)
			}
			return k.Proof(t, p)
		}
	}
	tests := []struct {
		name  string
		proof proofFor
		edit  func(pr *pdp.Proof) // the request's method and URI
		want  string
	}{
		{name: "valid proof", proof: proof(nil), want: pdp.ReasonGranted},
		{name: "no proof", proof: func(*testing.T, *pdptest.DPoPKey, string) string { return "" }, want: pdp.ReasonProofMissing},
		{name: "not a JWS", proof: func(*testing.T, *pdptest.DPoPKey, string) string { return "a.b.c" }, want: pdp.ReasonProofInvalid},
		{name: "proof by another key", proof: func(t *testing.T, _ *pdptest.DPoPKey, tok string) string {
			return pdptest.NewDPoPKey(t).Proof(t, pdptest.DPoPProof{Method: dpopMethod, URI: dpopURI, Token: tok})
		}, want: pdp.ReasonProofMismatch},
		{name: "signed by another key than its jwk", proof: func(t *testing.T, k *pdptest.DPoPKey, tok string) string {
			return pdptest.NewDPoPKey(t).Proof(t, pdptest.DPoPProof{Method: dpopMethod, URI: dpopURI, Token: tok, JWK: &jose.JSONWebKey{Key: k.Private.Public()}})
		}, want: pdp.ReasonProofInvalid},
		{name: "private key in the jwk header", proof: func(t *testing.T, k *pdptest.DPoPKey, tok string) string {
			return k.Proof(t, pdptest.DPoPProof{Method: dpopMethod, URI: dpopURI, Token: tok, JWK: &jose.JSONWebKey{Key: k.Private}})
		}, want: pdp.ReasonProofInvalid},
		{name: "typ JWT", proof: proof(func(p *pdptest.DPoPProof) { p.Type = "JWT" }), want: pdp.ReasonProofInvalid},
		{name: "other method", proof: proof(func(p *pdptest.DPoPProof) { p.Method = "GET" }), want: pdp.ReasonProofInvalid},
		{name: "method case differs", proof: proof(func(p *pdptest.DPoPProof) { p.Method = "post" }), want: pdp.ReasonProofInvalid},
		{name: "other URI", proof: proof(func(p *pdptest.DPoPProof) { p.URI = "https://api.example.test/payments" }), want: pdp.ReasonProofInvalid},
		{name: "other host", proof: proof(func(p *pdptest.DPoPProof) { p.URI = "https://evil.example.test/orders" }), want: pdp.ReasonProofInvalid},
		{name: "http instead of https", proof: proof(func(p *pdptest.DPoPProof) { p.URI = "http://api.example.test/orders" }), want: pdp.ReasonProofInvalid},
		{name: "htu with query and fragment", proof: proof(func(p *pdptest.DPoPProof) { p.URI = dpopURI + "?page=2#top" }), want: pdp.ReasonGranted},
		{name: "htu normalized (case, default port, percent-encoding)", proof: proof(func(p *pdptest.DPoPProof) {
			p.URI = "HTTPS://API.Example.Test:443/%6Frders"
		}), want: pdp.ReasonGranted},
		{name: "request URI with a query", proof: proof(nil), edit: func(pr *pdp.Proof) { pr.URI = dpopURI + "?x=1" }, want: pdp.ReasonGranted},
		{name: "iat too old", proof: proof(func(p *pdptest.DPoPProof) { p.IAT = time.Now().Add(-5 * time.Minute) }), want: pdp.ReasonProofInvalid},
		{name: "iat ahead", proof: proof(func(p *pdptest.DPoPProof) { p.IAT = time.Now().Add(5 * time.Minute) }), want: pdp.ReasonProofInvalid},
		{name: "iat within the window", proof: proof(func(p *pdptest.DPoPProof) { p.IAT = time.Now().Add(-30 * time.Second) }), want: pdp.ReasonGranted},
		{name: "no ath", proof: proof(func(p *pdptest.DPoPProof) { p.Token = "" }), want: pdp.ReasonProofMismatch},
		{name: "ath of another token", proof: proof(func(p *pdptest.DPoPProof) { p.Token = "another.token.value" }), want: pdp.ReasonProofMismatch},
		{name: "no jti", proof: proof(func(p *pdptest.DPoPProof) {
			p.Claims = map[string]any{"htm": dpopMethod, "htu": dpopURI, "iat": time.Now().Unix()}
		}), want: pdp.ReasonProofInvalid},
		{name: "no iat", proof: proof(func(p *pdptest.DPoPProof) {
			p.Claims = map[string]any{"jti": "x", "htm": dpopMethod, "htu": dpopURI}
		}), want: pdp.ReasonProofInvalid},
		{name: "symmetric alg", proof: func(t *testing.T, _ *pdptest.DPoPKey, _ string) string {
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: make([]byte, 32)}, (&jose.SignerOptions{}).WithType("dpop+jwt"))
			if err != nil {
				t.Fatal(err)
			}
			jws, err := signer.Sign([]byte(`{"jti":"x","htm":"POST","htu":"` + dpopURI + `","iat":1}`))
			if err != nil {
				t.Fatal(err)
			}
			out, _ := jws.CompactSerialize()
			return out
		}, want: pdp.ReasonProofInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, pdp.Config{})
			k := pdptest.NewDPoPKey(t)
			tok := e.token(t, func(c *token.Claims) { c.Confirmation = &token.Confirmation{JKT: k.Thumbprint(t)} })
			pr := pdp.Proof{DPoP: tc.proof(t, k, tok), Method: dpopMethod, URI: dpopURI}
			if tc.edit != nil {
				tc.edit(&pr)
			}
			if got := reason(t, e.decide(t, pdp.CheckRequest{Token: tok, Proof: pr})); got != tc.want {
				t.Errorf("reason = %s, want %s", got, tc.want)
			}
		})
	}
}

// In claims mode, the proof's ath is checked against the token when the caller sends it too, and
// skipped when it does not.
func TestDPoPClaims(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	k := pdptest.NewDPoPKey(t)
	vc := &pdp.VerifiedClaims{Claims: e.claims(), KeyID: "k1"}
	vc.Confirmation = &token.Confirmation{JKT: k.Thumbprint(t)}
	tok := e.key.Mint(t, vc.Claims)
	withAth := k.Proof(t, pdptest.DPoPProof{Method: dpopMethod, URI: dpopURI, Token: tok})
	noAth := k.Proof(t, pdptest.DPoPProof{Method: dpopMethod, URI: dpopURI})
	tests := []struct {
		name, token, proof, want string
	}{
		{"no token, proof without ath", "", noAth, pdp.ReasonGranted},
		{"no token, proof with ath", "", withAth, pdp.ReasonGranted},
		{"token, proof with its ath", tok, withAth, pdp.ReasonGranted},
		{"token, proof without ath", tok, noAth, pdp.ReasonProofMismatch},
		{"no proof", "", "", pdp.ReasonProofMissing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := pdp.CheckRequest{Claims: vc, Trusted: true, Token: tc.token, Proof: pdp.Proof{DPoP: tc.proof, Method: dpopMethod, URI: dpopURI}}
			if got := reason(t, e.decide(t, req)); got != tc.want {
				t.Errorf("reason = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestCertificateBound checks tokens bound to a client certificate (cnf.x5t#S256, RFC 8705).
func TestCertificateBound(t *testing.T) {
	const thumb = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"
	tests := []struct {
		name  string
		cnf   *token.Confirmation
		proof pdp.Proof
		want  string
	}{
		{"matching certificate", &token.Confirmation{X5TS256: thumb}, pdp.Proof{CertThumbprint: thumb}, pdp.ReasonGranted},
		{"no certificate", &token.Confirmation{X5TS256: thumb}, pdp.Proof{}, pdp.ReasonProofMissing},
		{"another certificate", &token.Confirmation{X5TS256: thumb}, pdp.Proof{CertThumbprint: "A" + thumb[1:]}, pdp.ReasonProofMismatch},
		{"a prefix of the thumbprint", &token.Confirmation{X5TS256: thumb}, pdp.Proof{CertThumbprint: thumb[:20]}, pdp.ReasonProofMismatch},
		{"an empty cnf", &token.Confirmation{}, pdp.Proof{CertThumbprint: thumb}, pdp.ReasonProofMissing},
		{"certificate and DPoP both required", &token.Confirmation{X5TS256: thumb, JKT: "jkt"}, pdp.Proof{CertThumbprint: thumb}, pdp.ReasonProofMissing},
		{"unbound token, proof ignored", nil, pdp.Proof{CertThumbprint: thumb}, pdp.ReasonGranted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, pdp.Config{})
			tok := e.token(t, func(c *token.Claims) { c.Confirmation = tc.cnf })
			if got := reason(t, e.decide(t, pdp.CheckRequest{Token: tok, Proof: tc.proof})); got != tc.want {
				t.Errorf("reason = %s, want %s", got, tc.want)
			}
		})
	}
}

// A DPoP key of another kind (P-384 here) works as well: the jwk header names the algorithm's key.
func TestDPoPOtherCurve(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := &jose.JSONWebKey{Key: priv.Public()}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	tok := e.token(t, func(c *token.Claims) {
		c.Confirmation = &token.Confirmation{JKT: base64.RawURLEncoding.EncodeToString(thumb)}
	})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: priv}, (&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jwk))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok))
	payload, _ := json.Marshal(map[string]any{
		"jti": "p384", "htm": dpopMethod, "htu": dpopURI, "iat": time.Now().Unix(), "ath": base64.RawURLEncoding.EncodeToString(sum[:]),
	})
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	proof, _ := jws.CompactSerialize()
	if got := reason(t, e.decide(t, pdp.CheckRequest{Token: tok, Proof: pdp.Proof{DPoP: proof, Method: dpopMethod, URI: dpopURI}})); got != pdp.ReasonGranted {
		t.Errorf("reason = %s", got)
	}
}
