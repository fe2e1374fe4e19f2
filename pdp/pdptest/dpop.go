package pdptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DPoPKey is a client's real DPoP key (ES256), making RFC 9449 proofs.
type DPoPKey struct {
	Private *ecdsa.PrivateKey
}

// NewDPoPKey generates a DPoP key.
func NewDPoPKey(tb testing.TB) *DPoPKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return &DPoPKey{Private: k}
}

// Thumbprint is the key's RFC 7638 SHA-256 thumbprint, base64url: a token's cnf.jkt.
func (k *DPoPKey) Thumbprint(tb testing.TB) string {
	tb.Helper()
	t, err := (&jose.JSONWebKey{Key: k.Private.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(t)
}

// DPoPProof is the content of a proof; Proof fills the zero fields from the request.
type DPoPProof struct {
	Method, URI string
	// Token, if set, is hashed into ath.
	Token string
	IAT   time.Time
	JTI   string
	// Type replaces the typ header (default dpop+jwt); Header adds headers.
	Type   string
	Header map[jose.HeaderKey]any
	// Claims replaces the whole payload, for proofs that are not quite right.
	Claims map[string]any
	// JWK replaces the embedded public key, for proofs that lie about their key.
	JWK *jose.JSONWebKey
}

// Proof signs a DPoP proof JWT.
func (k *DPoPKey) Proof(tb testing.TB, p DPoPProof) string {
	tb.Helper()
	if p.IAT.IsZero() {
		p.IAT = time.Now()
	}
	if p.JTI == "" {
		p.JTI = randomHex(8)
	}
	if p.Type == "" {
		p.Type = "dpop+jwt"
	}
	jwk := p.JWK
	if jwk == nil {
		jwk = &jose.JSONWebKey{Key: k.Private.Public()}
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(p.Type)).WithHeader("jwk", jwk)
	for h, v := range p.Header {
		opts = opts.WithHeader(h, v)
	}
	claims := p.Claims
	if claims == nil {
		claims = map[string]any{"jti": p.JTI, "htm": p.Method, "htu": p.URI, "iat": p.IAT.Unix()}
		if p.Token != "" {
			sum := sha256.Sum256([]byte(p.Token))
			claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
		}
	}
	return signJSON(tb, jose.SigningKey{Algorithm: jose.ES256, Key: k.Private}, opts, claims)
}
