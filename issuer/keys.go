package issuer

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/token"
)

// signingAlgorithm is the only algorithm the issuer signs with.
const signingAlgorithm = jose.EdDSA

// outboxSource prefixes the idempotency keys of the issuer's outbox entries.
const outboxSource = "issuer"

// publishWait bounds how long an issuance waits for a fresh signing key to be confirmed in the
// feed before answering UNAVAILABLE.
const publishWait = 3 * time.Second

// SigningKey is the public description of a signing key.
type SigningKey struct {
	Kid       string
	Algorithm string
	// PublicJWK is the public key as a JSON Web Key. It never holds private material.
	PublicJWK []byte
	// Active is true for the key new tokens are signed with.
	Active bool
	// Revoked is true once the PDP reported the key revoked and the issuer rotated away from it.
	Revoked bool
	Created time.Time
	// PublishedSequence is the feed sequence the key was published at; zero while pending.
	PublishedSequence uint64
}

// signer is a usable signing key.
type signer struct {
	kid  string
	jose jose.Signer

	seq       atomic.Uint64 // the feed sequence the key was published at, once known
	published chan struct{} // closed once seq is set
}

func newSigner(kid string, priv ed25519.PrivateKey, published uint64) (*signer, error) {
	opts := (&jose.SignerOptions{}).WithType(token.Type)
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: signingAlgorithm, Key: jose.JSONWebKey{Key: priv, KeyID: kid}}, opts)
	if err != nil {
		return nil, fmt.Errorf("issuer: signer for key %s: %w", kid, err)
	}
	s := &signer{kid: kid, jose: js, published: make(chan struct{})}
	if published != 0 {
		s.markPublished(published)
	}
	return s, nil
}

func (s *signer) markPublished(seq uint64) {
	if s.seq.CompareAndSwap(0, seq) {
		close(s.published)
	}
}

// waitPublished returns the feed sequence the key was published at, waiting up to publishWait.
func (s *signer) waitPublished(ctx context.Context) (uint64, error) {
	if seq := s.seq.Load(); seq != 0 {
		return seq, nil
	}
	t := time.NewTimer(publishWait)
	defer t.Stop()
	var cause error
	select {
	case <-s.published:
		return s.seq.Load(), nil
	case <-ctx.Done():
		cause = ctx.Err()
	case <-t.C:
		cause = errors.New("publication not confirmed in time")
	}
	return 0, fail.Unavailablef(cause, "the issuer's signing key %s is not yet published to the revoker's feed; retry shortly", s.kid)
}

// loadKeys loads the active signing key, creating one if the store has none, and makes sure its
// publication is under way.
func (i *Issuer) loadKeys() error {
	var (
		rec     keyRecord
		pendID  uint64
		pending bool
		priv    ed25519.PrivateKey
		fresh   bool
	)
	err := i.cfg.Store.Update(func(tx store.Tx) error {
		kid := tx.Get(bucketState, keyActive)
		if kid == nil {
			var err error
			rec, priv, pendID, err = i.createKey(tx)
			pending, fresh = true, true
			return err
		}
		ok, err := getJSON(tx, bucketKeys, kid, &rec)
		if err != nil {
			return err
		}
		if !ok || rec.Revoked || len(rec.Private) == 0 {
			return fmt.Errorf("the active signing key %s is missing, revoked or has no private key", kid)
		}
		if rec.Issuer != i.cfg.IssuerURL {
			// The issuer identifier changed (--issuer-url, or the listen address it defaults to).
			// The feed binds each key to the issuer it was published for, so tokens signed with
			// this key under the new identifier would all be denied: retire it (its tokens stay
			// valid until they expire) and publish a new key for the new identifier.
			i.log.Warn("issuer: the issuer identifier changed; retiring the signing key published for the old one",
				"kid", rec.Kid, "old_issuer", rec.Issuer, "issuer", i.cfg.IssuerURL)
			if err := retire(tx, &rec, false); err != nil {
				return err
			}
			rec, priv, pendID, err = i.createKey(tx)
			pending, fresh = true, true
			return err
		}
		if rec.Published != 0 {
			return nil
		}
		// The key's publication was queued but its sequence never recorded: the process stopped
		// first. Whether the earlier entry is still queued or was published already, queue it
		// again and wait for that: the outbox publishes in order, so the feed knows the key at
		// the new entry's sequence either way, and publishing a key twice changes nothing.
		pending = true
		pendID, err = queuePublication(tx, &rec)
		return err
	})
	if err != nil {
		return fmt.Errorf("issuer: load signing keys: %w", err)
	}
	if !fresh {
		k, err := x509.ParsePKCS8PrivateKey(rec.Private)
		if err != nil {
			return fmt.Errorf("issuer: decode signing key %s: %w", rec.Kid, err)
		}
		var ok bool
		if priv, ok = k.(ed25519.PrivateKey); !ok {
			return fmt.Errorf("issuer: signing key %s is a %T, not Ed25519", rec.Kid, k)
		}
	}
	s, err := newSigner(rec.Kid, priv, rec.Published)
	if err != nil {
		return err
	}
	i.active.Store(s)
	if fresh {
		i.log.Info("issuer: created signing key", "kid", rec.Kid)
	}
	if pending {
		i.awaitPublication(s, pendID)
	}
	return nil
}

// createKey generates an Ed25519 key, stores it as the active key and queues its publication, in
// tx.
func (i *Issuer) createKey(tx store.Tx) (keyRecord, ed25519.PrivateKey, uint64, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return keyRecord{}, nil, 0, fmt.Errorf("generate signing key: %w", err)
	}
	kid, err := KeyID(pub)
	if err != nil {
		return keyRecord{}, nil, 0, err
	}
	jwk := jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(signingAlgorithm), Use: "sig"}
	if !jwk.IsPublic() { // never publish private material, whatever changes above
		return keyRecord{}, nil, 0, errors.New("signing key JWK is not public")
	}
	pubJSON, err := jwk.MarshalJSON()
	if err != nil {
		return keyRecord{}, nil, 0, fmt.Errorf("encode public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return keyRecord{}, nil, 0, fmt.Errorf("encode private key: %w", err)
	}
	rec := keyRecord{
		Kid: kid, Algorithm: string(signingAlgorithm), PublicJWK: pubJSON, Private: der,
		Created: i.cfg.Now().UTC(), Issuer: i.cfg.IssuerURL,
	}
	id, err := queuePublication(tx, &rec)
	if err != nil {
		return keyRecord{}, nil, 0, err
	}
	if err := putJSON(tx, bucketKeys, []byte(kid), &rec); err != nil {
		return keyRecord{}, nil, 0, err
	}
	if err := tx.Put(bucketState, keyActive, []byte(kid)); err != nil {
		return keyRecord{}, nil, 0, err
	}
	return rec, priv, id, nil
}

// KeyID returns the RFC 7638 thumbprint (SHA-256, base64url) of a public key, the kid Treaty uses
// for signing keys and workload keys alike.
func KeyID(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func queuePublication(tx store.Tx, rec *keyRecord) (uint64, error) {
	id, err := outbox.Add(tx, outboxSource, &treatyv1.Event{
		Actor:  outboxSource,
		Reason: "issuer signing key published",
		Change: &treatyv1.Event_SigningKeyPublished{SigningKeyPublished: &treatyv1.SigningKeyPublished{
			Kid: rec.Kid, Algorithm: rec.Algorithm, PublicJwk: rec.PublicJWK, Issuer: rec.Issuer,
		}},
	})
	if err != nil {
		return 0, fmt.Errorf("queue publication of signing key %s: %w", rec.Kid, err)
	}
	return id, nil
}

// awaitPublication records the feed sequence of s once the relay has published outbox entry id.
func (i *Issuer) awaitPublication(s *signer, id uint64) {
	i.background(func() {
		seq, err := i.cfg.Relay.Wait(i.ctx, id)
		if err != nil {
			return // the issuer is closing; the next start publishes the key again
		}
		err = i.cfg.Store.Update(func(tx store.Tx) error {
			var rec keyRecord
			if ok, err := getJSON(tx, bucketKeys, []byte(s.kid), &rec); err != nil || !ok {
				return err
			}
			rec.Published = seq
			return putJSON(tx, bucketKeys, []byte(s.kid), &rec)
		})
		if err != nil {
			// The key is in the feed all the same; the next start publishes it again.
			i.log.Error("issuer: could not record the feed sequence of a signing key", "kid", s.kid, "sequence", seq, "err", err)
		}
		s.markPublished(seq)
		i.log.Info("issuer: signing key published", "kid", s.kid, "sequence", seq)
	})
}

// rotate replaces the active key once the feed (see watchKeys) or the PDP reported it revoked: it
// marks the old key revoked (dropping its private half), creates and activates a new one and
// queues its publication, all in one transaction. If another caller rotated already, it returns
// the current key.
func (i *Issuer) rotate(revoked string) (*signer, error) {
	i.rotateMu.Lock()
	defer i.rotateMu.Unlock()
	if cur := i.active.Load(); cur.kid != revoked {
		return cur, nil
	}
	var (
		rec  keyRecord
		priv ed25519.PrivateKey
		id   uint64
	)
	err := i.cfg.Store.Update(func(tx store.Tx) error {
		var old keyRecord
		ok, err := getJSON(tx, bucketKeys, []byte(revoked), &old)
		if err != nil {
			return err
		}
		if ok {
			if err := retire(tx, &old, true); err != nil {
				return err
			}
		}
		rec, priv, id, err = i.createKey(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("issuer: rotate signing key %s: %w", revoked, err)
	}
	s, err := newSigner(rec.Kid, priv, 0)
	if err != nil {
		return nil, err
	}
	i.active.Store(s)
	i.log.Warn("issuer: the active signing key was revoked; rotated to a new key", "revoked_kid", revoked, "kid", rec.Kid)
	i.awaitPublication(s, id)
	return s, nil
}

// retire drops a key's private half, so it signs nothing more, and marks it revoked if it was.
func retire(tx store.Tx, rec *keyRecord, revoked bool) error {
	rec.Private = nil
	rec.Revoked = rec.Revoked || revoked
	return putJSON(tx, bucketKeys, []byte(rec.Kid), rec)
}

// SigningKeys lists the issuer's signing keys, newest first, without private material.
func (i *Issuer) SigningKeys() ([]SigningKey, error) {
	var out []SigningKey
	active := i.active.Load().kid
	err := i.cfg.Store.View(func(tx store.Tx) error {
		return tx.Scan(bucketKeys, nil, nil, func(_, v []byte) (bool, error) {
			var rec keyRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("decode signing key: %w", err)
			}
			out = append(out, SigningKey{
				Kid: rec.Kid, Algorithm: rec.Algorithm, PublicJWK: slices.Clone([]byte(rec.PublicJWK)),
				Active: rec.Kid == active, Revoked: rec.Revoked, Created: rec.Created, PublishedSequence: rec.Published,
			})
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("issuer: list signing keys: %w", err)
	}
	slices.SortFunc(out, func(a, b SigningKey) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Kid, b.Kid)
	})
	return out, nil
}
