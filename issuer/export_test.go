package issuer

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"

	"github.com/treaty-dev/treaty/store"
)

// ReplayEntries counts the entries of the replay cache and of its expiry index, for tests.
func ReplayEntries(i *Issuer) (entries, expiries int, err error) {
	err = i.cfg.Store.View(func(tx store.Tx) error {
		if err := tx.Scan(bucketReplay, nil, nil, func(_, _ []byte) (bool, error) { entries++; return true, nil }); err != nil {
			return err
		}
		return tx.Scan(bucketReplayExp, nil, nil, func(_, _ []byte) (bool, error) { expiries++; return true, nil })
	})
	return entries, expiries, err
}

// ForgetPublication clears the recorded feed sequence of signing key kid in st, as if the process
// had crashed after the relay published the key but before the issuer recorded where.
func ForgetPublication(st store.Store, kid string) error {
	return st.Update(func(tx store.Tx) error {
		var rec keyRecord
		if _, err := getJSON(tx, bucketKeys, []byte(kid), &rec); err != nil {
			return err
		}
		rec.Published = 0
		return putJSON(tx, bucketKeys, []byte(kid), &rec)
	})
}

// Tick takes the key schedule's due step now, for tests that move the issuer's clock.
func Tick(i *Issuer) error { return i.tick() }

// KeySecrets returns the private key material of the issuer's active and next keys: the PKCS#8
// encoding and the secret values inside it, so that a test can look for them in the store's
// file.
func KeySecrets(i *Issuer) ([][]byte, error) {
	var out [][]byte
	for _, s := range []*signer{i.active.Load(), i.next.Load()} {
		if s == nil {
			continue
		}
		priv := s.Signer.(*cryptoSigner).key
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		out = append(out, der)
		switch k := priv.(type) {
		case ed25519.PrivateKey:
			out = append(out, k.Seed())
		case *ecdsa.PrivateKey:
			out = append(out, k.D.FillBytes(make([]byte, 32)))
		case *rsa.PrivateKey:
			out = append(out, k.D.Bytes(), k.Primes[0].Bytes(), k.Primes[1].Bytes())
		}
	}
	return out, nil
}

// StoredPrivate reports how st keeps the private half of key kid: in plaintext, sealed, or both.
func StoredPrivate(st store.Store, kid string) (plaintext, sealed bool, err error) {
	err = st.View(func(tx store.Tx) error {
		var rec keyRecord
		_, err := getJSON(tx, bucketKeys, []byte(kid), &rec)
		plaintext, sealed = rec.Private != nil, rec.Sealed != nil
		return err
	})
	return plaintext, sealed, err
}

// MakeLegacy rewrites the records of st's signing keys as the issuer wrote them before keys were
// encrypted and rotated on a schedule (private keys in plaintext, no schedule fields). The keys
// must be in plaintext already (an issuer given no KEK).
func MakeLegacy(st store.Store) error {
	return st.Update(func(tx store.Tx) error {
		var recs []keyRecord
		err := tx.Scan(bucketKeys, nil, nil, func(_, v []byte) (bool, error) {
			var rec keyRecord
			err := json.Unmarshal(v, &rec)
			recs = append(recs, rec)
			return true, err
		})
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if rec.Sealed != nil {
				return errors.New("a key is sealed")
			}
			legacy := map[string]any{
				"kid": rec.Kid, "alg": rec.Algorithm, "public_jwk": rec.PublicJWK, "created": rec.Created,
				"published_sequence": rec.Published, "issuer": rec.Issuer,
			}
			if rec.Private != nil {
				legacy["private"] = rec.Private
			}
			if rec.Revoked {
				legacy["revoked"] = true
			}
			if err := putJSON(tx, bucketKeys, []byte(rec.Kid), legacy); err != nil {
				return err
			}
		}
		return errors.Join(tx.Delete(bucketState, keyNext), tx.Delete(bucketState, keyKEK))
	})
}

// SignerKids returns the kids of the signers the issuer holds in memory, active and next ("" for
// none): what it signs with, as opposed to what its store says.
func SignerKids(i *Issuer) (active, next string) { return kidOf(i.active.Load()), kidOf(i.next.Load()) }
