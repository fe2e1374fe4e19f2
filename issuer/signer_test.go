package issuer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/token"
)

// TestSigningAlgorithms mints a token with each algorithm and has it verified by the real PDP,
// which knows the key only from its publication in the feed, and by go-jose pinned to the
// algorithm.
func TestSigningAlgorithms(t *testing.T) {
	all := []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256, jose.PS256, jose.ES384, jose.RS512}
	for _, alg := range issuer.SigningAlgorithms() {
		t.Run("alg="+alg, func(t *testing.T) {
			t.Parallel() // each case has its own world and issuer
			e := newEnv(t, func(c *issuer.Config) { c.SigningAlgorithm = alg })
			key := e.activeKey()
			if key.Algorithm != alg {
				t.Fatalf("active key is %s, want %s", key.Algorithm, alg)
			}
			checkJWK(t, key.PublicJWK, key.Kid, alg)
			evs := keyEvents(t, e.world)
			if len(evs) != 1 || evs[0].GetAlgorithm() != alg || evs[0].GetKid() != key.Kid {
				t.Fatalf("published %v, want the %s key %s", evs, alg, key.Kid)
			}
			fk, ok := e.world.State().SigningKey(key.Kid)
			if !ok || fk.Public == nil || fk.Algorithm != alg {
				t.Fatalf("the feed holds %+v for the key", fk)
			}

			out := e.issue(e.request())
			if out.Credential.Kid != key.Kid {
				t.Fatalf("credential names key %s, want %s", out.Credential.Kid, key.Kid)
			}
			jws, err := jose.ParseSignedCompact(out.Token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatalf("token does not parse pinned to %s: %v", alg, err)
			}
			h := jws.Signatures[0].Protected
			if string(h.Algorithm) != alg || h.KeyID != key.Kid || h.ExtraHeaders[jose.HeaderType] != token.Type {
				t.Fatalf("header alg=%s kid=%s typ=%v, want %s %s %s", h.Algorithm, h.KeyID, h.ExtraHeaders[jose.HeaderType], alg, key.Kid, token.Type)
			}
			if _, err := jws.Verify(fk.Public); err != nil {
				t.Fatalf("token does not verify with the published key: %v", err)
			}
			for _, other := range all {
				if string(other) == alg {
					continue
				}
				if _, err := jose.ParseSignedCompact(out.Token, []jose.SignatureAlgorithm{other}); err == nil {
					t.Errorf("token parses pinned to %s", other)
				}
			}
			if got := e.world.Check(out.Token, "invoices:read", audience, 0); got != "granted" {
				t.Fatalf("the PDP says %s for a %s token", got, alg)
			}
			// A flipped bit in the signature is a bad signature, whatever the algorithm.
			parts := strings.Split(out.Token, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[len(sig)/2] ^= 1
			forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
			if got := e.world.Check(forged, "invoices:read", audience, 0); got != "bad_signature" {
				t.Fatalf("the PDP says %s for a forged %s token", got, alg)
			}
		})
	}
}

// opaque hides the concrete type of a private key, as a PKCS#11 or KMS crypto.Signer does.
type opaque struct{ crypto.Signer }

func TestNewSigner(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, tc := range []struct {
		name string
		alg  string
		key  crypto.Signer
		ok   bool
	}{
		{"Ed25519 EdDSA", issuer.EdDSA, edKey, true},
		{"P-256 ES256", issuer.ES256, p256, true},
		{"RSA-2048 RS256", issuer.RS256, rsa2048, true},
		{"opaque P-256 ES256", issuer.ES256, opaque{p256}, true},
		{"opaque RSA RS256", issuer.RS256, opaque{rsa2048}, true},
		{"Ed25519 as ES256", issuer.ES256, edKey, false},
		{"P-256 as EdDSA", issuer.EdDSA, p256, false},
		{"P-384 as ES256", issuer.ES256, p384, false},
		{"RSA as ES256", issuer.ES256, rsa2048, false},
		{"RSA-1024 RS256", issuer.RS256, rsa1024, false},
		{"HS256", "HS256", edKey, false},
		{"none", "none", edKey, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := issuer.NewSigner(tc.alg, tc.key)
			if !tc.ok {
				if err == nil {
					t.Fatal("NewSigner accepted it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			kid, _ := issuer.KeyID(tc.key.Public())
			if s.KeyID() != kid || s.Algorithm() != tc.alg {
				t.Fatalf("signer %s/%s, want %s/%s", s.KeyID(), s.Algorithm(), kid, tc.alg)
			}
			// The signature is in the JWS form: go-jose verifies a JWS assembled from it.
			input := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"`+tc.alg+`"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte("payload"))
			sig, err := s.Sign(context.Background(), []byte(input))
			if err != nil {
				t.Fatal(err)
			}
			jws, err := jose.ParseSignedCompact(input+"."+base64.RawURLEncoding.EncodeToString(sig), []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tc.alg)})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := jws.Verify(s.Public()); err != nil || string(got) != "payload" {
				t.Fatalf("signature does not verify: %q, %v", got, err)
			}
		})
	}
}

// BenchmarkSign measures the cost of one access-token signature per algorithm, on a signing input
// the size of a real token's.
func BenchmarkSign(b *testing.B) {
	input := []byte(strings.Repeat("x", 520))
	keys := map[string]func() (crypto.Signer, error){
		issuer.EdDSA: func() (crypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err },
		issuer.ES256: func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
		issuer.RS256: func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
	}
	for _, alg := range issuer.SigningAlgorithms() {
		b.Run("alg="+alg, func(b *testing.B) {
			key, err := keys[alg]()
			if err != nil {
				b.Fatal(err)
			}
			s, err := issuer.NewSigner(alg, key)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(context.Background(), input); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
