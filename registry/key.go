package registry

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/fail"
)

// The JWS algorithms of the keys workloads register, one per key type: Ed25519 keys sign with
// EdDSA, ECDSA P-256 keys with ES256, RSA keys (at least MinRSABits) with RS256.
const (
	AlgorithmEdDSA = "EdDSA"
	AlgorithmES256 = "ES256"
	AlgorithmRS256 = "RS256"
)

// MinRSABits is the smallest RSA modulus a workload may register.
const MinRSABits = 2048

// Key is a public key a workload signs its client assertions (and DPoP proofs, and self-signed
// client certificates) with.
type Key struct {
	// KeyID is the key's RFC 7638 JWK thumbprint: base64url (unpadded) SHA-256.
	KeyID string `json:"kid"`
	// Algorithm is the JWS algorithm the key signs with: EdDSA, ES256 or RS256.
	Algorithm string `json:"alg"`
	// PublicKeyPEM is the public key as PKIX ("PUBLIC KEY") PEM, in canonical form.
	PublicKeyPEM string `json:"pem"`
}

// howToMakeKey ends every key error with what to do instead.
const howToMakeKey = "send the workload's public key (Ed25519, ECDSA P-256 or RSA of at least 2048 bits) as PKIX PEM " +
	"(-----BEGIN PUBLIC KEY-----), e.g. from `openssl genpkey -algorithm ed25519 -out key.pem && openssl pkey -in key.pem -pubout`"

// ParsePublicKey parses a workload's public key (Ed25519, ECDSA P-256 or RSA of at least
// MinRSABits) from PKIX ("PUBLIC KEY") PEM and returns it as a Key with its algorithm, thumbprint
// and canonical PEM. Anything else is an Invalid error naming field that says what to send
// instead; the input is never echoed, in case it is a private key.
func ParsePublicKey(field, pemText string) (Key, error) {
	pub, alg, err := parsePublic(field, pemText)
	if err != nil {
		return Key{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Key{}, fmt.Errorf("registry: encode public key: %w", err)
	}
	kid, err := Thumbprint(pub)
	if err != nil {
		return Key{}, err
	}
	return Key{
		KeyID: kid, Algorithm: alg,
		PublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}, nil
}

// PublicKey parses the key's PEM and checks that it matches the key id and algorithm, so a key
// read back from storage or from the registry's API is exactly the one that was registered.
func (k Key) PublicKey() (crypto.PublicKey, error) {
	pub, alg, err := parsePublic("public_key_pem", k.PublicKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", k.KeyID, err)
	}
	if alg != k.Algorithm {
		return nil, fmt.Errorf("key %q: algorithm %q does not match its %s key", k.KeyID, k.Algorithm, alg)
	}
	kid, err := Thumbprint(pub)
	if err != nil {
		return nil, err
	}
	if kid != k.KeyID {
		return nil, fmt.Errorf("key %q: the PEM's thumbprint is %q", k.KeyID, kid)
	}
	return pub, nil
}

// parsePublic parses one PKIX public key of an accepted kind and returns it with its algorithm.
func parsePublic(field, pemText string) (crypto.PublicKey, string, error) {
	if strings.TrimSpace(pemText) == "" {
		return nil, "", fail.Invalidf(field, "%s is required: %s", field, howToMakeKey)
	}
	if len(pemText) > maxPublicKeyPEM {
		return nil, "", fail.Invalidf(field, "%s is longer than %d bytes; %s", field, maxPublicKeyPEM, howToMakeKey)
	}
	block, rest := pem.Decode([]byte(pemText))
	switch {
	case block == nil:
		return nil, "", fail.Invalidf(field, "%s is not PEM; %s", field, howToMakeKey)
	case strings.Contains(block.Type, "PRIVATE"):
		return nil, "", fail.Invalidf(field, "%s holds a private key, which must never leave the workload; %s", field, howToMakeKey)
	case block.Type != "PUBLIC KEY":
		return nil, "", fail.Invalidf(field, "%s is a %.40q PEM block, not a \"PUBLIC KEY\"; %s", field, block.Type, howToMakeKey)
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, "", fail.Invalidf(field, "%s must hold exactly one PEM block; %s", field, howToMakeKey)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, "", fail.Invalidf(field, "%s is not a valid PKIX public key; %s", field, howToMakeKey)
	}
	switch pub := key.(type) {
	case ed25519.PublicKey:
		return pub, AlgorithmEdDSA, nil
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, "", fail.Invalidf(field, "%s is an ECDSA key on %s; only P-256 (ES256) is accepted: %s", field, pub.Curve.Params().Name, howToMakeKey)
		}
		return pub, AlgorithmES256, nil
	case *rsa.PublicKey:
		if pub.N.BitLen() < MinRSABits {
			return nil, "", fail.Invalidf(field, "%s is a %d-bit RSA key; RSA keys must have at least %d bits: %s", field, pub.N.BitLen(), MinRSABits, howToMakeKey)
		}
		return pub, AlgorithmRS256, nil
	}
	return nil, "", fail.Invalidf(field, "%s is %s key; %s", field, keyKind(key), howToMakeKey)
}

func keyKind(key any) string {
	switch key.(type) {
	case *rsa.PublicKey:
		return "an RSA"
	case *ecdsa.PublicKey:
		return "an ECDSA"
	}
	return "another kind of"
}

// Thumbprint returns the RFC 7638 JWK thumbprint of pub (SHA-256, base64url without padding):
// a workload key's id, and what a self-signed client certificate's key is matched by.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("registry: key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}
