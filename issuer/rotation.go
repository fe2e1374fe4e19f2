package issuer

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/store"
)

// The default key schedule. A key signs for a day; its successor is published an hour ahead, so
// that a verifier caching the JWKS (for up to an hour; the JWKS endpoint should say less) knows it
// before it signs. A retired key stays published for the longest credential lifetime after its
// last signature (token.DefaultMaxLifetime, a day, by default), so the JWKS holds at most three
// keys at a time: retired, active, next.
const (
	DefaultKeyRotation   = 24 * time.Hour
	DefaultKeyPrepublish = time.Hour
)

// minKeyRotation keeps a misconfigured schedule from filling the JWKS with keys.
const minKeyRotation = time.Minute

// scheduleTick is how often the schedule looks at the clock; it only touches the store when a step
// is due.
const scheduleTick = time.Second

// publishPoll is how soon the schedule looks again when a next key is due to take over but its
// publication is not confirmed yet.
const publishPoll = time.Second

// keyPlan is what the schedule does now, and when it next has something to do.
type keyPlan struct {
	dropNext bool // the next key has another algorithm than the configured one
	create   bool // create a next key
	promote  bool // the next key becomes active, the active key retires
	due      time.Time
}

// plan decides the schedule's step at now, from the active and next keys (next may be nil).
//
// The next key is created KeyPrepublish before the active key's KeyRotation is up, and takes
// over once both the rotation is due and it has been published for KeyPrepublish (after a long
// downtime the active key signs a while longer, rather than a key verifiers have not fetched).
// When SigningAlgorithm changes, the rotation is due at once: a next key of the new algorithm is
// published and takes over after KeyPrepublish.
func (i *Issuer) plan(now time.Time, active, next *keyRecord) keyPlan {
	var p keyPlan
	rotateAt := active.Activated.Add(i.cfg.KeyRotation)
	if active.Algorithm != i.cfg.SigningAlgorithm && now.Before(rotateAt) {
		rotateAt = now
	}
	if next != nil && next.Algorithm != i.cfg.SigningAlgorithm {
		p.dropNext, next = true, nil
	}
	if next == nil {
		createAt := rotateAt.Add(-i.cfg.KeyPrepublish)
		if now.Before(createAt) {
			p.due = createAt
			return p
		}
		p.create = true
		p.due = later(rotateAt, now.Add(i.cfg.KeyPrepublish))
		return p
	}
	promoteAt := later(rotateAt, next.Created.Add(i.cfg.KeyPrepublish))
	switch {
	case now.Before(promoteAt):
		p.due = promoteAt
	case next.Published == 0:
		p.due = now.Add(publishPoll)
	default:
		p.promote = true
		p.due = now.Add(i.cfg.KeyRotation - i.cfg.KeyPrepublish)
	}
	return p
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// runSchedule runs the key schedule until the issuer closes.
func (i *Issuer) runSchedule() {
	t := time.NewTicker(scheduleTick)
	defer t.Stop()
	for {
		select {
		case <-i.ctx.Done():
			return
		case <-t.C:
		}
		if i.cfg.Now().UnixNano() < i.due.Load() {
			continue
		}
		if err := i.tick(); err != nil {
			i.log.Error("issuer: signing key schedule failed; retrying", "err", err)
			i.due.Store(i.cfg.Now().Add(10 * time.Second).UnixNano())
		}
	}
}

// tick takes the schedule's step that is due, if any: it creates and publishes the next key, or
// promotes it and retires the active key.
func (i *Issuer) tick() error {
	i.rotateMu.Lock()
	defer i.rotateMu.Unlock()
	now := i.cfg.Now().UTC()
	var p keyPlan
	err := i.cfg.Store.View(func(tx store.Tx) error {
		active, next, err := keyPair(tx)
		if err == nil && active == nil {
			err = fmt.Errorf("no active signing key")
		}
		if err == nil {
			p = i.plan(now, active, next)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("issuer: key schedule: %w", err)
	}
	if !p.dropNext && !p.create && !p.promote {
		i.due.Store(p.due.UnixNano())
		return i.syncKeys() // another replica may have taken the step
	}
	var fresh *localKey
	if p.create {
		if fresh, err = newLocalKey(i.cfg.SigningAlgorithm); err != nil {
			return err
		}
	}
	var (
		created  *pendingKey
		promoted *keyRecord
		retired  string
		dropped  string
	)
	err = i.cfg.Store.Update(func(tx store.Tx) error {
		// With a shared store (etcd) fn may run again on a conflict, after another replica took
		// the step itself: start from nothing each time.
		created, promoted, retired, dropped = nil, nil, "", ""
		active, next, err := keyPair(tx)
		if err != nil {
			return err
		}
		p = i.plan(now, active, next) // the same, but for a publication confirmed meanwhile
		if p.dropNext {
			dropped = next.Kid
			if err := i.retire(tx, next, now, false); err != nil {
				return err
			}
			if err := tx.Delete(bucketState, keyNext); err != nil {
				return err
			}
			next = nil
		}
		if p.create && fresh != nil {
			var pk pendingKey
			if next, pk, err = i.storeKey(tx, fresh, now, false); err != nil {
				return err
			}
			created = &pk
		}
		if p.promote {
			retired = active.Kid
			if err := i.retire(tx, active, now, false); err != nil {
				return err
			}
			next.Activated = now
			if err := putJSON(tx, bucketKeys, []byte(next.Kid), next); err != nil {
				return err
			}
			if err := tx.Put(bucketState, keyActive, []byte(next.Kid)); err != nil {
				return err
			}
			if err := tx.Delete(bucketState, keyNext); err != nil {
				return err
			}
			promoted, next = next, nil
			active = promoted
		}
		p.due = i.plan(now, active, next).due
		return nil
	})
	if err != nil {
		return fmt.Errorf("issuer: key schedule: %w", err)
	}
	var s *signer
	if created != nil {
		if s, err = newSigner(created.s, 0); err != nil {
			return err
		}
	}
	if err := i.syncKeys(s); err != nil {
		return err
	}
	if dropped != "" {
		i.log.Info("issuer: dropped the next signing key, made for another algorithm", "kid", dropped, "algorithm", i.cfg.SigningAlgorithm)
	}
	if s != nil {
		i.awaitPublication(s, created.outboxID)
		i.log.Info("issuer: created the next signing key; it is published ahead of its turn", "kid", s.kid, "algorithm", s.Algorithm())
	}
	if promoted != nil {
		i.log.Info("issuer: rotated signing keys; the retired key stays published until its tokens expire", "kid", promoted.Kid, "retired_kid", retired)
	}
	i.due.Store(p.due.UnixNano())
	return nil
}

// loadKeys opens the issuer's keys at start: it finds the key-encryption key, encrypts any
// private key stored in plaintext, loads the active and next keys (creating an active key if the
// store has none, or none for this issuer identifier), and makes sure their publication is under
// way. The schedule (tick) then runs.
func (i *Issuer) loadKeys() error {
	var stored string
	var active *keyRecord
	err := i.cfg.Store.View(func(tx store.Tx) error {
		stored = string(tx.Get(bucketState, keyKEK))
		var err error
		active, _, err = keyPair(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("issuer: load signing keys: %w", err)
	}
	k, generated, err := resolveKEK(kekSource{env: i.cfg.kekEnv, file: i.cfg.KEKFile, dataDir: i.cfg.DataDir}, stored)
	if err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	i.kek = k
	switch {
	case generated:
		i.log.Info("issuer: generated a key-encryption key for the private signing keys; back it up apart from the store backups: the keys cannot be read without it",
			"path", kekPath(i.cfg.DataDir), "kek_id", k.id)
	case k == nil:
		i.log.Warn("issuer: no key-encryption key configured (KEK file, " + KEKEnv + " or data folder): private signing keys are stored unencrypted")
	}
	var fresh *localKey
	if active == nil || active.Issuer != i.cfg.IssuerURL {
		if fresh, err = newLocalKey(i.cfg.SigningAlgorithm); err != nil {
			return err
		}
	}
	now := i.cfg.Now().UTC()
	var pending []pendingKey
	var oldIssuer string
	err = i.cfg.Store.Update(func(tx store.Tx) error {
		pending, oldIssuer = nil, "" // fn runs again on a conflict with another replica
		if err := i.migrateKeys(tx, now); err != nil {
			return err
		}
		active, next, err := keyPair(tx)
		if err != nil {
			return err
		}
		if active != nil && (active.Revoked || (active.Private == nil && active.Sealed == nil)) {
			return fmt.Errorf("the active signing key %s is revoked or has no private key", active.Kid)
		}
		if active != nil && active.Issuer != i.cfg.IssuerURL {
			// The issuer identifier changed (--issuer-url, or the listen address it defaults to).
			// The feed binds each key to the issuer it was published for, so tokens signed with
			// this key (or the next) under the new identifier would all be denied: retire them
			// (the active key's tokens stay valid until they expire) and publish a new key.
			oldIssuer = active.Issuer
			if err := i.retire(tx, active, now, false); err != nil {
				return err
			}
			if next != nil {
				if err := i.retire(tx, next, now, false); err != nil {
					return err
				}
				if err := tx.Delete(bucketState, keyNext); err != nil {
					return err
				}
				next = nil
			}
			active = nil
		}
		if active == nil {
			if fresh == nil {
				return fmt.Errorf("the active signing key changed while the issuer opened")
			}
			_, pk, err := i.storeKey(tx, fresh, now, true)
			if err != nil {
				return err
			}
			pending = append(pending, pk)
			return nil
		}
		for _, rec := range []*keyRecord{active, next} {
			if rec == nil || rec.Published != 0 {
				continue
			}
			// The key's publication was queued but its sequence never recorded: the process
			// stopped first. Whether the earlier entry is still queued or was published already,
			// queue it again and wait for that: the outbox publishes in order, so the feed knows
			// the key at the new entry's sequence either way, and publishing a key twice changes
			// nothing.
			id, err := queuePublication(tx, rec)
			if err != nil {
				return err
			}
			pending = append(pending, pendingKey{kid: rec.Kid, outboxID: id})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("issuer: load signing keys: %w", err)
	}
	if oldIssuer != "" {
		i.log.Warn("issuer: the issuer identifier changed; retired the signing key published for the old one",
			"old_issuer", oldIssuer, "issuer", i.cfg.IssuerURL)
	}
	if err := i.openKeys(pending); err != nil {
		return err
	}
	// Another replica opening the same new store may have stored its key first; then it is used.
	if fresh != nil && kidOf(i.active.Load()) == fresh.s.KeyID() {
		i.log.Info("issuer: created signing key", "kid", fresh.s.KeyID(), "algorithm", fresh.s.Algorithm())
	}
	return nil
}

// openKeys opens the active and next keys into signers and waits for the publications pending.
func (i *Issuer) openKeys(pending []pendingKey) error {
	var fresh []*signer
	for _, p := range pending {
		if p.s == nil {
			continue // stored earlier: opened from its record
		}
		s, err := newSigner(p.s, 0)
		if err != nil {
			return err
		}
		fresh = append(fresh, s)
	}
	if err := i.syncKeys(fresh...); err != nil {
		return err
	}
	for _, p := range pending {
		for _, s := range []*signer{i.active.Load(), i.next.Load()} {
			if s != nil && s.kid == p.kid {
				i.awaitPublication(s, p.outboxID)
			}
		}
	}
	return nil
}

// migrateKeys brings stored keys up to date, in tx: it encrypts private keys kept in plaintext
// (by stores written before keys were encrypted, or without a KEK), drops the private half of keys
// that sign nothing more, records the KEK's id, and fills in the schedule of keys stored before
// there was one.
func (i *Issuer) migrateKeys(tx store.Tx, now time.Time) error {
	active, next := string(tx.Get(bucketState, keyActive)), string(tx.Get(bucketState, keyNext))
	var recs []*keyRecord
	err := tx.Scan(bucketKeys, nil, nil, func(_, v []byte) (bool, error) {
		rec := new(keyRecord)
		if err := json.Unmarshal(v, rec); err != nil {
			return false, fmt.Errorf("decode signing key: %w", err)
		}
		recs = append(recs, rec)
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, rec := range recs {
		live := !rec.Revoked && (rec.Kid == active || rec.Kid == next)
		changed := false
		if live && rec.Kid == active && rec.Activated.IsZero() {
			rec.Activated, changed = rec.Created, true
		}
		if !live && !rec.Revoked && rec.Retired.IsZero() {
			// Retired before keys had a schedule (an issuer identifier change); when is unknown,
			// so keep it published for a whole credential lifetime from now.
			rec.Retired, rec.PublishedUntil, changed = now, now.Add(i.cfg.MaxCredentialTTL+unpublishMargin), true
		}
		if !live && (rec.Private != nil || rec.Sealed != nil) {
			rec.Private, rec.Sealed, changed = nil, nil, true
		}
		if live && rec.Private != nil && i.kek != nil {
			if err := i.protect(rec, rec.Private); err != nil {
				return err
			}
			changed = true
			i.log.Info("issuer: encrypted a signing key stored in plaintext", "kid", rec.Kid, "kek_id", i.kek.id)
		}
		if changed {
			if err := putJSON(tx, bucketKeys, []byte(rec.Kid), rec); err != nil {
				return err
			}
		}
	}
	if i.kek == nil {
		return nil
	}
	switch stored := string(tx.Get(bucketState, keyKEK)); stored {
	case i.kek.id:
		return nil
	case "":
		return tx.Put(bucketState, keyKEK, []byte(i.kek.id))
	default:
		// Checked before the transaction too (resolveKEK); here for a replica that started on
		// the same new store at the same moment with another KEK: its id must not replace the
		// one the keys are sealed with.
		return wrongKEK(stored, i.kek.id)
	}
}
