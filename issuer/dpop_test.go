package issuer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/token"
)

// tokenURL is the token endpoint DPoP proofs in these tests are made for.
const tokenURL = issuerURL + "/oauth2/token"

var b64 = base64.RawURLEncoding

// dpopKey is a client's DPoP key pair, with its public JWK and RFC 7638 thumbprint.
type dpopKey struct {
	priv ed25519.PrivateKey
	jwk  map[string]any
	jkt  string
}

func newDPoPKey(t *testing.T) dpopKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := issuer.KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	return dpopKey{priv: priv, jwk: map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64.EncodeToString(pub)}, jkt: jkt}
}

// proof builds a DPoP proof signed by k for a POST to the token endpoint at now; edit may spoil
// its header or claims first, and sign replaces the Ed25519 signature (nil: sign with k).
func (k dpopKey) proof(t *testing.T, now time.Time, edit func(h, c map[string]any), sign func(input []byte) []byte) string {
	t.Helper()
	jti := make([]byte, 12)
	rand.Read(jti)
	h := map[string]any{"typ": issuer.DPoPType, "alg": "EdDSA", "jwk": k.jwk}
	c := map[string]any{"jti": b64.EncodeToString(jti), "htm": "POST", "htu": tokenURL, "iat": now.Unix()}
	if edit != nil {
		edit(h, c)
	}
	hj, _ := json.Marshal(h)
	cj, _ := json.Marshal(c)
	input := b64.EncodeToString(hj) + "." + b64.EncodeToString(cj)
	if sign == nil {
		sign = func(in []byte) []byte { return ed25519.Sign(k.priv, in) }
	}
	return input + "." + b64.EncodeToString(sign([]byte(input)))
}

// joseProof builds a valid DPoP proof with go-jose, for keys of any algorithm.
func joseProof(t *testing.T, alg jose.SignatureAlgorithm, key crypto.Signer, now time.Time) (string, string) {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(issuer.DPoPType))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := json.Marshal(map[string]any{"jti": "j-" + string(alg), "htm": "POST", "htu": tokenURL, "iat": now.Unix()})
	jws, err := sig.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	jkt, _ := issuer.KeyID(key.Public())
	return out, jkt
}

// withProof is a valid request for workload carrying proof.
func (e *env) withProof(proof string) issuer.Request {
	req := e.request()
	req.DPoPProof, req.HTTPMethod, req.HTTPURL = proof, "POST", tokenURL
	return req
}

// claimsOf decodes an access token's claims (the issuer's own tests check the signature).
func claimsOf(t *testing.T, tok string) token.Claims {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c token.Claims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDPoPProofBindsTheToken(t *testing.T) {
	e := newEnv(t)
	k := newDPoPKey(t)
	out := e.issue(e.withProof(k.proof(t, e.clock.Now(), nil, nil)))
	c := claimsOf(t, out.Token)
	if c.Confirmation == nil || c.Confirmation.JKT != k.jkt || c.Confirmation.X5TS256 != "" {
		t.Fatalf("cnf = %+v, want jkt %s", c.Confirmation, k.jkt)
	}
	if out.TokenType != issuer.TokenTypeDPoP || out.Credential.Binding != issuer.BindingDPoP || out.Credential.AuthMethod != issuer.MethodPrivateKeyJWT {
		t.Errorf("token type %q, binding %q, method %q", out.TokenType, out.Credential.Binding, out.Credential.AuthMethod)
	}
	rec, err := e.iss.Credential(out.Credential.ID)
	if err != nil || rec.Binding != issuer.BindingDPoP || rec.AuthMethod != issuer.MethodPrivateKeyJWT {
		t.Errorf("inventory record %+v, %v", rec, err)
	}
	// Without a proof the same integration (sender constraint none) issues a bearer token.
	out = e.issue(e.request())
	if c := claimsOf(t, out.Token); c.Confirmation != nil || out.TokenType != issuer.TokenTypeBearer || out.Credential.Binding != issuer.BindingNone {
		t.Errorf("bearer: cnf %+v, type %q, binding %q", c.Confirmation, out.TokenType, out.Credential.Binding)
	}

	// ES256 and RS256 proofs bind too; the htu compares after normalization.
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	for alg, key := range map[jose.SignatureAlgorithm]crypto.Signer{jose.ES256: ec, jose.RS256: rk} {
		p, jkt := joseProof(t, alg, key, e.clock.Now())
		req := e.withProof(p)
		req.HTTPURL = "HTTPS://Treaty.TEST:443/oauth2/token"
		if got := claimsOf(t, e.issue(req).Token).Confirmation; got == nil || got.JKT != jkt {
			t.Errorf("%s: cnf %+v, want jkt %s", alg, got, jkt)
		}
	}
}

func TestDPoPProofDefectsAreRefused(t *testing.T) {
	e := newEnv(t)
	k, other := newDPoPKey(t), newDPoPKey(t)
	now := e.clock.Now()
	spoil := func(edit func(h, c map[string]any)) func() string {
		return func() string { return k.proof(t, now, edit, nil) }
	}
	tests := []struct {
		name    string
		proof   func() string
		mention string
	}{
		{"wrong typ", spoil(func(h, _ map[string]any) { h["typ"] = "JWT" }), "typ"},
		{"no typ", spoil(func(h, _ map[string]any) { delete(h, "typ") }), "typ"},
		{"alg none", func() string {
			p := k.proof(t, now, func(h, _ map[string]any) { h["alg"] = "none" }, nil)
			return p[:strings.LastIndex(p, ".")+1]
		}, "EdDSA, ES256 or RS256"},
		{"HS256 keyed with the public key", func() string {
			return k.proof(t, now, func(h, _ map[string]any) { h["alg"] = "HS256" }, func(in []byte) []byte {
				m := hmac.New(sha256.New, k.priv.Public().(ed25519.PublicKey))
				m.Write(in)
				return m.Sum(nil)
			})
		}, "EdDSA, ES256 or RS256"},
		{"ES384 not pinned", spoil(func(h, _ map[string]any) { h["alg"] = "ES384" }), "EdDSA, ES256 or RS256"},
		{"missing jwk", spoil(func(h, _ map[string]any) { delete(h, "jwk") }), "jwk"},
		{"private jwk", spoil(func(h, _ map[string]any) {
			h["jwk"] = map[string]any{"kty": "OKP", "crv": "Ed25519", "x": k.jwk["x"], "d": b64.EncodeToString(k.priv.Seed())}
		}), "public jwk"},
		{"bad signature", func() string {
			p := k.proof(t, now, nil, nil)
			return p[:len(p)-4] + strings.Repeat("A", 4)
		}, "signature"},
		{"signed by another key than its jwk", func() string {
			return k.proof(t, now, nil, func(in []byte) []byte { return ed25519.Sign(other.priv, in) })
		}, "signature"},
		{"wrong htm", spoil(func(_, c map[string]any) { c["htm"] = "GET" }), "htm"},
		{"lower-case htm", spoil(func(_, c map[string]any) { c["htm"] = "post" }), "htm"},
		{"wrong htu", spoil(func(_, c map[string]any) { c["htu"] = issuerURL + "/oauth2/revoke" }), "htu"},
		{"htu of another host", spoil(func(_, c map[string]any) { c["htu"] = "https://evil.test/oauth2/token" }), "htu"},
		{"htu with a query", spoil(func(_, c map[string]any) { c["htu"] = tokenURL + "?x=1" }), "htu"},
		{"iat too old", spoil(func(_, c map[string]any) { c["iat"] = now.Add(-2 * time.Minute).Unix() }), "iat"},
		{"iat in the future", spoil(func(_, c map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() }), "iat"},
		{"iat missing", spoil(func(_, c map[string]any) { delete(c, "iat") }), "iat"},
		{"jti missing", spoil(func(_, c map[string]any) { delete(c, "jti") }), "jti"},
		{"oversized", spoil(func(_, c map[string]any) { c["pad"] = strings.Repeat("x", issuer.MaxDPoPProofSize) }), "larger"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.iss.Issue(context.Background(), e.withProof(tc.proof()))
			wantKind(t, err, fail.Invalid)
			if !errors.Is(err, issuer.ErrInvalidDPoPProof) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q: want ErrInvalidDPoPProof mentioning %q", err, tc.mention)
			}
		})
	}
}

func TestDPoPProofIsSingleUseAcrossRestarts(t *testing.T) {
	e := newEnv(t)
	k := newDPoPKey(t)
	p := k.proof(t, e.clock.Now(), nil, nil)
	e.issue(e.withProof(p))
	_, err := e.iss.Issue(context.Background(), e.withProof(p))
	if !errors.Is(err, issuer.ErrInvalidDPoPProof) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replay: %v", err)
	}
	e.reopen()
	_, err = e.iss.Issue(context.Background(), e.withProof(p))
	if !errors.Is(err, issuer.ErrInvalidDPoPProof) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replay after a restart: %v", err)
	}
	// The same jti under another key is another proof.
	other := newDPoPKey(t)
	var jti any
	k.proof(t, e.clock.Now(), func(_, c map[string]any) { jti = c["jti"] }, nil)
	e.issue(e.withProof(k.proof(t, e.clock.Now(), func(_, c map[string]any) { c["jti"] = jti }, nil)))
	e.issue(e.withProof(other.proof(t, e.clock.Now(), func(_, c map[string]any) { c["jti"] = jti }, nil)))
}

func TestDPoPProofWithoutEndpointIsAnInternalError(t *testing.T) {
	e := newEnv(t)
	req := e.withProof(newDPoPKey(t).proof(t, e.clock.Now(), nil, nil))
	req.HTTPURL = ""
	_, err := e.iss.Issue(context.Background(), req)
	wantKind(t, err, fail.Internal)
}

// TestDPoPBoundTokenAtThePDP follows a DPoP-bound token from the issuer to the PDP: with a proof
// by its key it is allowed, without one it is proof_missing, with another key's proof
// proof_mismatch.
func TestDPoPBoundTokenAtThePDP(t *testing.T) {
	e := newEnv(t)
	k, other := newDPoPKey(t), newDPoPKey(t)
	out := e.issue(e.withProof(k.proof(t, e.clock.Now(), nil, nil)))
	const api = audience + "/invoices"
	at := func(key dpopKey) *treatyv1.Proof {
		sum := sha256.Sum256([]byte(out.Token))
		p := key.proof(t, time.Now(), func(_, c map[string]any) {
			c["htm"], c["htu"], c["ath"] = "GET", api, b64.EncodeToString(sum[:])
		}, nil)
		return &treatyv1.Proof{Dpop: p, HttpMethod: "GET", HttpUri: api}
	}
	for name, tc := range map[string]struct {
		proof *treatyv1.Proof
		want  string
	}{
		"proof by its key":      {at(k), "granted"},
		"no proof":              {nil, "proof_missing"},
		"proof by another key":  {at(other), "proof_mismatch"},
		"a certificate instead": {&treatyv1.Proof{ClientCertThumbprint: "abc"}, "proof_missing"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := e.world.CheckWithProof(out.Token, "invoices:read", audience, out.Credential.Sequence, tc.proof); got != tc.want {
				t.Errorf("PDP says %q, want %q", got, tc.want)
			}
		})
	}
}
