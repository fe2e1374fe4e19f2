package issuer

import (
	"context"
	"crypto"
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
)

// outboxSource prefixes the idempotency keys of the issuer's outbox entries.
const outboxSource = "issuer"

// publishWait bounds how long an issuance waits for a fresh signing key to be confirmed in the
// feed before answering UNAVAILABLE.
const publishWait = 3 * time.Second

var (
	keyNext = []byte("next_kid") // the key published ahead of its turn to sign
	keyKEK  = []byte("kek_id")   // the id of the KEK the private keys are sealed with
)

// KeyState is where a signing key is in its life.
type KeyState string

// A key is created next, becomes active, then retired, and expires once every token it signed
// has; or it is revoked, from any state.
const (
	// KeyNext is published (in the feed and the JWKS) ahead of its turn, and signs nothing yet.
	KeyNext KeyState = "next"
	// KeyActive signs new tokens.
	KeyActive KeyState = "active"
	// KeyRetired signs nothing more, and stays published until PublishedUntil, when the last
	// token it signed has expired. A retirement is not a revocation: its tokens stay valid.
	KeyRetired KeyState = "retired"
	// KeyExpired is a retired key past PublishedUntil: no live token needs it, so it has left
	// the JWKS.
	KeyExpired KeyState = "expired"
	// KeyRevoked was revoked in the feed: every token it signed is denied, and it left the JWKS
	// at once.
	KeyRevoked KeyState = "revoked"
)

// SigningKey is the public description of a signing key. It never holds private material.
type SigningKey struct {
	Kid       string
	Algorithm string
	// PublicJWK is the public key as a JSON Web Key, as published in the feed.
	PublicJWK []byte
	State     KeyState
	// Active is State == KeyActive: the key new tokens are signed with.
	Active bool
	// Revoked is State == KeyRevoked.
	Revoked bool
	Created time.Time
	// Activated is when the key started signing; zero if it never did.
	Activated time.Time
	// Retired is when it stopped; PublishedUntil, when its last token expires (both zero unless
	// the key retired).
	Retired        time.Time
	PublishedUntil time.Time
	// PublishedSequence is the feed sequence the key was published at; zero while pending.
	PublishedSequence uint64
}

// InJWKS reports whether the key belongs in the JWKS: it may verify a live token now or soon
// (next, active, or retired with tokens that have not all expired).
func (k SigningKey) InJWKS() bool {
	return k.State == KeyNext || k.State == KeyActive || k.State == KeyRetired
}

// signer is a signing key the issuer holds, with the state of its publication in the feed.
type signer struct {
	Signer
	kid    string
	header string // the encoded JWS protected header of the tokens it signs

	seq       atomic.Uint64 // the feed sequence the key was published at, once known
	published chan struct{} // closed once seq is set
}

func newSigner(s Signer, published uint64) (*signer, error) {
	h, err := jwsHeader(s)
	if err != nil {
		return nil, fmt.Errorf("issuer: header for key %s: %w", s.KeyID(), err)
	}
	out := &signer{Signer: s, kid: s.KeyID(), header: h, published: make(chan struct{})}
	if published != 0 {
		out.markPublished(published)
	}
	return out, nil
}

// sign returns claims as a compact JWS signed with the key.
func (s *signer) sign(ctx context.Context, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	return signCompact(ctx, s.Signer, s.header, payload)
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

// localKey is a freshly generated key, made before the transaction that stores it (an RSA key
// takes long enough to generate that the store's writers should not wait for it).
type localKey struct {
	priv crypto.Signer
	s    Signer
}

func newLocalKey(alg string) (*localKey, error) {
	priv, err := generateKey(alg)
	if err != nil {
		return nil, fmt.Errorf("issuer: generate %s signing key: %w", alg, err)
	}
	s, err := NewSigner(alg, priv)
	if err != nil {
		return nil, err
	}
	return &localKey{priv: priv, s: s}, nil
}

// pendingKey is a key stored in a transaction, with its publication queued.
type pendingKey struct {
	kid      string
	s        Signer // nil for a key stored earlier whose publication was queued again
	outboxID uint64
}

// storeKey stores k, its private half sealed, as the active key or as the next one, and queues
// its publication, in tx.
func (i *Issuer) storeKey(tx store.Tx, k *localKey, now time.Time, activate bool) (*keyRecord, pendingKey, error) {
	pub, err := publicJWK(k.s)
	if err != nil {
		return nil, pendingKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, pendingKey{}, fmt.Errorf("encode private key: %w", err)
	}
	rec := &keyRecord{Kid: k.s.KeyID(), Algorithm: k.s.Algorithm(), PublicJWK: pub, Created: now, Issuer: i.cfg.IssuerURL}
	if err := i.protect(rec, der); err != nil {
		return nil, pendingKey{}, err
	}
	ptr := keyNext
	if activate {
		rec.Activated, ptr = now, keyActive
	}
	id, err := queuePublication(tx, rec)
	if err != nil {
		return nil, pendingKey{}, err
	}
	if err := putJSON(tx, bucketKeys, []byte(rec.Kid), rec); err != nil {
		return nil, pendingKey{}, err
	}
	if err := tx.Put(bucketState, ptr, []byte(rec.Kid)); err != nil {
		return nil, pendingKey{}, err
	}
	return rec, pendingKey{kid: rec.Kid, s: k.s, outboxID: id}, nil
}

// protect puts the private key der into rec: sealed with the KEK, or in plaintext if the issuer
// has none.
func (i *Issuer) protect(rec *keyRecord, der []byte) error {
	if i.kek == nil {
		rec.Private, rec.Sealed = der, nil
		return nil
	}
	sealed, err := i.kek.seal(rec.Kid, der)
	if err != nil {
		return fmt.Errorf("encrypt signing key %s: %w", rec.Kid, err)
	}
	rec.Private, rec.Sealed = nil, sealed
	return nil
}

// openKey returns a Signer for a stored key's private half.
func (i *Issuer) openKey(rec *keyRecord) (Signer, error) {
	der := rec.Private
	if rec.Sealed != nil {
		if i.kek == nil {
			return nil, fmt.Errorf("signing key %s is encrypted, and no key-encryption key is configured", rec.Kid)
		}
		var err error
		if der, err = i.kek.open(rec.Kid, rec.Sealed); err != nil {
			return nil, err
		}
	}
	if len(der) == 0 {
		return nil, fmt.Errorf("signing key %s has no private key", rec.Kid)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("decode signing key %s: %w", rec.Kid, err) // x509 errors never quote key bytes
	}
	cs, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s is a %T, which cannot sign", rec.Kid, k)
	}
	s, err := NewSigner(rec.Algorithm, cs)
	if err != nil {
		return nil, err
	}
	if s.KeyID() != rec.Kid {
		return nil, fmt.Errorf("the private key stored for signing key %s belongs to key %s", rec.Kid, s.KeyID())
	}
	return s, nil
}

// retire stops a key from signing: it drops the private half and, for a key that signed tokens,
// keeps it published until the last of them expires. A key that never signed (a next key
// replaced early) leaves the JWKS at once. With revoked, it is marked revoked too.
func (i *Issuer) retire(tx store.Tx, rec *keyRecord, now time.Time, revoked bool) error {
	rec.Private, rec.Sealed = nil, nil
	rec.Revoked = rec.Revoked || revoked
	if rec.Retired.IsZero() {
		rec.Retired = now
		rec.PublishedUntil = now
		if !rec.Activated.IsZero() {
			rec.PublishedUntil = now.Add(i.cfg.MaxCredentialTTL + unpublishMargin)
		}
	}
	return putJSON(tx, bucketKeys, []byte(rec.Kid), rec)
}

// unpublishMargin keeps a retired key published a little past the expiry of its last token, for
// verifiers whose clocks run behind the issuer's.
const unpublishMargin = time.Minute

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
		i.due.Store(0) // a next key waiting for its publication may now take its turn
		i.log.Info("issuer: signing key published", "kid", s.kid, "sequence", seq)
	})
}

// keyPair reads the active and the next key records (nil if absent) in tx.
func keyPair(tx store.Tx) (active, next *keyRecord, err error) {
	get := func(ptr []byte) (*keyRecord, error) {
		kid := tx.Get(bucketState, ptr)
		if kid == nil {
			return nil, nil
		}
		rec := new(keyRecord)
		ok, err := getJSON(tx, bucketKeys, kid, rec)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("the %s signing key %s is missing from the store", ptr, kid)
		}
		return rec, nil
	}
	if active, err = get(keyActive); err != nil {
		return nil, nil, err
	}
	next, err = get(keyNext)
	return active, next, err
}

// rotate replaces the active key once the PDP reported it revoked (see revokeKey), and returns
// the key to sign with now.
func (i *Issuer) rotate(revoked string) (*signer, error) {
	if err := i.revokeKey(revoked); err != nil {
		return nil, err
	}
	return i.active.Load(), nil
}

// revokeKey acts on the revocation of signing key kid in the feed (see watchKeys) or as the PDP
// reported it: the key is dropped at once (its private half deleted, out of the JWKS). If it was
// the active key, a new key is created and activated at once, so issuance carries on as soon as
// the feed knows it; if it was the next key, the schedule creates another. A kid that is not the
// issuer's, or already revoked (by another replica too), changes nothing in the store; the signers
// are synced with it either way. A new key rather than the next one takes over from a revoked
// active key: a revocation may mean the store leaked, next key included.
func (i *Issuer) revokeKey(kid string) error {
	i.rotateMu.Lock()
	defer i.rotateMu.Unlock()
	// The store, not this process's signers, says whether kid is live and active: with replicas
	// sharing the store, another one may have revoked and replaced it already (then there is
	// nothing to do but take up its new key), or made it active.
	var live, current bool
	err := i.cfg.Store.View(func(tx store.Tx) error {
		var rec keyRecord
		ok, err := getJSON(tx, bucketKeys, []byte(kid), &rec)
		live = ok && !rec.Revoked
		current = string(tx.Get(bucketState, keyActive)) == kid || string(tx.Get(bucketState, keyNext)) == kid
		return err
	})
	if err != nil {
		return fmt.Errorf("issuer: revoke signing key %s: %w", kid, err)
	}
	if !live {
		return i.syncKeys()
	}
	var fresh *localKey
	if current { // the active key's replacement; a next key too may take its turn before the Update
		if fresh, err = newLocalKey(i.cfg.SigningAlgorithm); err != nil {
			return err
		}
	}
	now := i.cfg.Now().UTC()
	var (
		pending  pendingKey
		wasNext  bool
		replaced bool
	)
	err = i.cfg.Store.Update(func(tx store.Tx) error {
		pending, wasNext, replaced = pendingKey{}, false, false // fn runs again on a conflict
		var rec keyRecord
		ok, err := getJSON(tx, bucketKeys, []byte(kid), &rec)
		if err != nil {
			return err
		}
		if ok && !rec.Revoked {
			if err := i.retire(tx, &rec, now, true); err != nil {
				return err
			}
		}
		if wasNext = string(tx.Get(bucketState, keyNext)) == kid; wasNext {
			if err := tx.Delete(bucketState, keyNext); err != nil {
				return err
			}
		}
		if string(tx.Get(bucketState, keyActive)) == kid {
			if fresh == nil {
				return fmt.Errorf("the key became active meanwhile")
			}
			replaced = true
			_, pending, err = i.storeKey(tx, fresh, now, true)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("issuer: revoke signing key %s: %w", kid, err)
	}
	var s *signer
	if replaced {
		if s, err = newSigner(pending.s, 0); err != nil {
			return err
		}
	}
	if err := i.syncKeys(s); err != nil {
		return err
	}
	if replaced {
		i.awaitPublication(s, pending.outboxID)
		i.log.Warn("issuer: the active signing key was revoked; rotated to a new key", "revoked_kid", kid, "kid", s.kid)
	} else {
		i.log.Warn("issuer: a signing key was revoked; dropped it", "revoked_kid", kid, "was_next", wasNext)
	}
	i.due.Store(0) // let the schedule look again (a next key may be needed)
	return nil
}

// SigningKeys lists the issuer's signing keys, newest first, without private material.
func (i *Issuer) SigningKeys() ([]SigningKey, error) {
	var out []SigningKey
	now := i.cfg.Now()
	err := i.cfg.Store.View(func(tx store.Tx) error {
		active, next := string(tx.Get(bucketState, keyActive)), string(tx.Get(bucketState, keyNext))
		return tx.Scan(bucketKeys, nil, nil, func(_, v []byte) (bool, error) {
			var rec keyRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("decode signing key: %w", err)
			}
			k := SigningKey{
				Kid: rec.Kid, Algorithm: rec.Algorithm, PublicJWK: slices.Clone([]byte(rec.PublicJWK)),
				Created: rec.Created, Activated: rec.Activated, Retired: rec.Retired, PublishedUntil: rec.PublishedUntil,
				PublishedSequence: rec.Published,
			}
			switch {
			case rec.Revoked:
				k.State = KeyRevoked
			case rec.Kid == active:
				k.State = KeyActive
			case rec.Kid == next:
				k.State = KeyNext
			case now.Before(rec.PublishedUntil):
				k.State = KeyRetired
			default:
				k.State = KeyExpired
			}
			k.Active, k.Revoked = k.State == KeyActive, k.State == KeyRevoked
			out = append(out, k)
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

// JWKS returns the JSON Web Key Set (RFC 7517) a verifier needs for every live token and for
// those about to be signed: the active key first, then the next key, then the retired keys whose
// tokens have not all expired, newest first. Revoked and expired keys are left out. Each key is
// the JWK published in the feed, with kid, alg and use.
func (i *Issuer) JWKS() ([]byte, error) {
	keys, err := i.SigningKeys()
	if err != nil {
		return nil, err
	}
	rank := map[KeyState]int{KeyActive: 0, KeyNext: 1, KeyRetired: 2}
	keys = slices.DeleteFunc(keys, func(k SigningKey) bool { return !k.InJWKS() })
	slices.SortStableFunc(keys, func(a, b SigningKey) int { return rank[a.State] - rank[b.State] })
	set := struct {
		Keys []json.RawMessage `json:"keys"`
	}{Keys: make([]json.RawMessage, len(keys))}
	for n, k := range keys {
		set.Keys[n] = k.PublicJWK
	}
	return json.Marshal(set)
}
