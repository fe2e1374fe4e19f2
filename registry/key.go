package registry

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/fail"
)

// AlgorithmEdDSA is the JWS algorithm of Ed25519 keys, the only kind workloads register for now.
const AlgorithmEdDSA = "EdDSA"

// Key is a public key a workload signs its client assertions with.
type Key struct {
	// KeyID is the key's RFC 7638 JWK thumbprint: base64url (unpadded) SHA-256.
	KeyID string `json:"kid"`
	// Algorithm is the JWS algorithm the key signs with: "EdDSA".
	Algorithm string `json:"alg"`
	// PublicKeyPEM is the public key as PKIX ("PUBLIC KEY") PEM, in canonical form.
	PublicKeyPEM string `json:"pem"`
}

// howToMakeKey ends every key error with what to do instead.
const howToMakeKey = "send the workload's Ed25519 public key as PKIX PEM (-----BEGIN PUBLIC KEY-----), " +
	"e.g. from `openssl genpkey -algorithm ed25519 -out key.pem && openssl pkey -in key.pem -pubout`"

// ParsePublicKey parses a workload's Ed25519 public key from PKIX ("PUBLIC KEY") PEM and returns
// it as a Key with its thumbprint and canonical PEM. Anything else is an Invalid error naming
// field that says what to send instead; the input is never echoed, in case it is a private key.
func ParsePublicKey(field, pemText string) (Key, error) {
	pub, err := parseEd25519(field, pemText)
	if err != nil {
		return Key{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Key{}, fmt.Errorf("registry: encode public key: %w", err)
	}
	kid, err := thumbprint(pub)
	if err != nil {
		return Key{}, err
	}
	return Key{
		KeyID: kid, Algorithm: AlgorithmEdDSA,
		PublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}, nil
}

// PublicKey parses the key's PEM and checks that it matches the key id and algorithm, so a key
// read back from storage or from the registry's API is exactly the one that was registered.
func (k Key) PublicKey() (crypto.PublicKey, error) {
	if k.Algorithm != AlgorithmEdDSA {
		return nil, fmt.Errorf("key %q: unsupported algorithm %q", k.KeyID, k.Algorithm)
	}
	pub, err := parseEd25519("public_key_pem", k.PublicKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", k.KeyID, err)
	}
	kid, err := thumbprint(pub)
	if err != nil {
		return nil, err
	}
	if kid != k.KeyID {
		return nil, fmt.Errorf("key %q: the PEM's thumbprint is %q", k.KeyID, kid)
	}
	return pub, nil
}

func parseEd25519(field, pemText string) (ed25519.PublicKey, error) {
	if strings.TrimSpace(pemText) == "" {
		return nil, fail.Invalidf(field, "%s is required: %s", field, howToMakeKey)
	}
	if len(pemText) > maxPublicKeyPEM {
		return nil, fail.Invalidf(field, "%s is longer than %d bytes; %s", field, maxPublicKeyPEM, howToMakeKey)
	}
	block, rest := pem.Decode([]byte(pemText))
	switch {
	case block == nil:
		return nil, fail.Invalidf(field, "%s is not PEM; %s", field, howToMakeKey)
	case strings.Contains(block.Type, "PRIVATE"):
		return nil, fail.Invalidf(field, "%s holds a private key, which must never leave the workload; %s", field, howToMakeKey)
	case block.Type != "PUBLIC KEY":
		return nil, fail.Invalidf(field, "%s is a %.40q PEM block, not a \"PUBLIC KEY\"; %s", field, block.Type, howToMakeKey)
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, fail.Invalidf(field, "%s must hold exactly one PEM block; %s", field, howToMakeKey)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fail.Invalidf(field, "%s is not a valid PKIX public key; %s", field, howToMakeKey)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fail.Invalidf(field, "%s is %s key; workloads sign with Ed25519 (EdDSA): %s", field, keyKind(key), howToMakeKey)
	}
	return pub, nil
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

// thumbprint returns the RFC 7638 thumbprint of pub, base64url without padding.
func thumbprint(pub ed25519.PublicKey) (string, error) {
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("registry: key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}
