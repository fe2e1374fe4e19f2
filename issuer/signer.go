package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/token"
)

// The JWS algorithms the issuer signs access tokens with (Config.SigningAlgorithm).
const (
	// EdDSA is Ed25519 (RFC 8037), the default: small keys and signatures, the fastest to sign,
	// deterministic, with no parameters to get wrong.
	EdDSA = string(jose.EdDSA)
	// ES256 is ECDSA on P-256 with SHA-256, for verifiers that lack Ed25519 (FIPS-bound ones).
	ES256 = string(jose.ES256)
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key, for the oldest verifiers.
	RS256 = string(jose.RS256)
)

// DefaultSigningAlgorithm is the algorithm new signing keys use unless Config.SigningAlgorithm
// names another.
const DefaultSigningAlgorithm = EdDSA

// rsaBits is the size of RS256 signing keys. 2048 bits give 112-bit security (NIST SP 800-57,
// acceptable through 2030), and a signing key here is trusted for a day plus the longest token
// lifetime, not for decades: a forgery only matters while the key verifies live tokens. 3072 bits
// would cost about three times as much per signature (see BenchmarkSign) and seconds per key
// generation, for strength no rotated signing key needs.
const rsaBits = 2048

// SigningAlgorithms lists the algorithms Config.SigningAlgorithm accepts.
func SigningAlgorithms() []string { return []string{EdDSA, ES256, RS256} }

func checkAlgorithm(alg string) error {
	switch alg {
	case EdDSA, ES256, RS256:
		return nil
	}
	return fmt.Errorf("issuer: signing algorithm %q is not supported; use %s (the default), %s or %s", alg, EdDSA, ES256, RS256)
}

// Signer signs access tokens with one signing key. The issuer's own implementation (see
// NewSigner) holds the private key in memory, loaded from the issuer's store where it is kept
// encrypted; an implementation for a KMS or an HSM keeps the private key there and sends only the
// signing input, so the private key never enters the process.
type Signer interface {
	// KeyID returns the key's id, the kid header of every token it signs: the RFC 7638
	// thumbprint of the public key (see KeyID).
	KeyID() string
	// Algorithm returns the JWS algorithm (EdDSA, ES256 or RS256).
	Algorithm() string
	// Public returns the public key: ed25519.PublicKey, *ecdsa.PublicKey or *rsa.PublicKey.
	Public() crypto.PublicKey
	// Sign returns the JWS signature of signingInput (RFC 7515 section 5.1: the encoded header,
	// a dot and the encoded payload) in the JWS form for the algorithm: 64 bytes for EdDSA, the
	// 64-byte R||S for ES256 (RFC 7518 section 3.4, not ASN.1), the PKCS#1 v1.5 signature for
	// RS256.
	Sign(ctx context.Context, signingInput []byte) ([]byte, error)
}

// NewSigner returns a Signer for alg over any crypto.Signer holding a key of the matching type:
// an in-memory private key, or the crypto.Signer a PKCS#11 or KMS library offers. It hashes as
// the algorithm requires and converts ECDSA's ASN.1 signature into the JWS form.
func NewSigner(alg string, key crypto.Signer) (Signer, error) {
	if err := checkAlgorithm(alg); err != nil {
		return nil, err
	}
	pub := key.Public()
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if alg != EdDSA {
			return nil, fmt.Errorf("issuer: an Ed25519 key cannot sign %s", alg)
		}
	case *ecdsa.PublicKey:
		if alg != ES256 || p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("issuer: an ECDSA key signs ES256 on P-256 only, not %s on %s", alg, p.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if alg != RS256 || p.N.BitLen() < 2048 {
			return nil, fmt.Errorf("issuer: an RSA key signs RS256 with at least 2048 bits, not %s with %d", alg, p.N.BitLen())
		}
	default:
		return nil, fmt.Errorf("issuer: unsupported signing key type %T", pub)
	}
	kid, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &cryptoSigner{kid: kid, alg: alg, key: key}, nil
}

// cryptoSigner is a Signer over a crypto.Signer.
type cryptoSigner struct {
	kid string
	alg string
	key crypto.Signer
}

func (s *cryptoSigner) KeyID() string            { return s.kid }
func (s *cryptoSigner) Algorithm() string        { return s.alg }
func (s *cryptoSigner) Public() crypto.PublicKey { return s.key.Public() }

func (s *cryptoSigner) Sign(_ context.Context, input []byte) ([]byte, error) {
	if s.alg == EdDSA {
		return s.key.Sign(rand.Reader, input, crypto.Hash(0)) // Ed25519 signs the message itself
	}
	digest := sha256.Sum256(input)
	sig, err := s.key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil || s.alg != ES256 {
		return sig, err
	}
	return ecdsaJWS(sig)
}

// ecdsaJWS converts an ASN.1 ECDSA P-256 signature into the 64-byte JWS form.
func ecdsaJWS(der []byte) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
		return nil, errors.New("issuer: malformed ECDSA signature from the signer")
	}
	out := make([]byte, 64)
	rs.R.FillBytes(out[:32])
	rs.S.FillBytes(out[32:])
	return out, nil
}

// generateKey creates a private key for alg.
func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	}
	return nil, checkAlgorithm(alg)
}

// publicJWK encodes a signer's public key as a JWK for the feed and JWKS, refusing anything that
// is not public.
func publicJWK(s Signer) ([]byte, error) {
	jwk := jose.JSONWebKey{Key: s.Public(), KeyID: s.KeyID(), Algorithm: s.Algorithm(), Use: "sig"}
	if !jwk.Valid() || !jwk.IsPublic() { // never publish private material, whatever changes above
		return nil, errors.New("signing key JWK is not a valid public key")
	}
	raw, err := jwk.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return raw, nil
}

// jwsHeader returns the encoded protected header of every access token a signer signs.
func jwsHeader(s Signer) (string, error) {
	h, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{s.Algorithm(), s.KeyID(), token.Type})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(h), nil
}

// signCompact returns the compact JWS of payload under the encoded header.
func signCompact(ctx context.Context, s Signer, header string, payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	input := make([]byte, 0, len(header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(512))
	input = append(input, header...)
	input = append(input, '.')
	input = enc.AppendEncode(input, payload)
	sig, err := s.Sign(ctx, input)
	if err != nil {
		return "", fmt.Errorf("sign with key %s: %w", s.KeyID(), err)
	}
	input = append(input, '.')
	return string(enc.AppendEncode(input, sig)), nil
}
