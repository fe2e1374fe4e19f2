package ssf

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/store"
)

// keyBits is the RSA modulus size: the interoperability profile requires at least 2048 bits.
const keyBits = 2048

// loadKey reads the transmitter's RSA signing key from the store, generating and storing it on
// first use. The store's file has mode 0600; the key never leaves it except as its public half.
func (t *Transmitter) loadKey() error {
	var der []byte
	if err := t.st.View(func(tx store.Tx) error { der = tx.Get(bucketMeta, keyRSA); return nil }); err != nil {
		return err
	}
	if der == nil {
		k, err := rsa.GenerateKey(rand.Reader, keyBits)
		if err != nil {
			return err
		}
		fresh, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return err
		}
		// Two transmitters opening one new store at once cannot happen (bbolt locks the file),
		// but keep whichever key was stored first anyway.
		err = t.st.Update(func(tx store.Tx) error {
			if der = tx.Get(bucketMeta, keyRSA); der != nil {
				return nil
			}
			der = fresh
			return tx.Put(bucketMeta, keyRSA, fresh)
		})
		if err != nil {
			return err
		}
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return fmt.Errorf("stored key: %w", err)
	}
	k, ok := parsed.(*rsa.PrivateKey)
	if !ok || k.N.BitLen() < keyBits {
		return fmt.Errorf("stored key is not an RSA key of at least %d bits", keyBits)
	}
	thumb, err := (&jose.JSONWebKey{Key: &k.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return err
	}
	t.key, t.kid = k, base64.RawURLEncoding.EncodeToString(thumb)
	return nil
}

// KeyID returns the kid of the transmitter's signing key (its RFC 7638 thumbprint).
func (t *Transmitter) KeyID() string { return t.kid }

// JWKS returns the JSON Web Key Set receivers verify SETs with: the public signing key.
func (t *Transmitter) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &t.key.PublicKey, KeyID: t.kid, Algorithm: string(jose.RS256), Use: "sig",
	}}}
}

// sign serializes claims as a compact JWS signed RS256, typed secevent+jwt.
func (t *Transmitter) sign(claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: t.key, KeyID: t.kid}},
		(&jose.SignerOptions{}).WithType(SETType),
	)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
