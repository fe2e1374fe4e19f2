package issuer

import (
	"fmt"

	"github.com/treaty-dev/treaty/store"
)

// syncKeys makes the signers in memory (i.active, i.next) those of the active and next keys in the
// store. The store is the one truth about which key signs: every key change is a store
// transaction, and where replicas share the store (etcd) another replica may have made it, so
// each key transaction here ends with a sync, and so does each change the store reports
// (followStore). A signer is kept while its key is active or next (a promoted next key keeps its
// signer, found by kid); a key new to this process is opened from its sealed record. A signer
// learns its feed sequence when its record gains one: the replica whose relay published the key
// records it, and issuance with the key waits for it (signer.waitPublished).
//
// fresh are signers of keys this process has just stored, taken rather than decrypted again. The
// caller holds rotateMu, or runs before the background work starts (loadKeys).
func (i *Issuer) syncKeys(fresh ...*signer) error {
	var active, next *keyRecord
	err := i.cfg.Store.View(func(tx store.Tx) error {
		var err error
		active, next, err = keyPair(tx)
		return err
	})
	if err == nil && active == nil {
		err = fmt.Errorf("no active signing key")
	}
	if err != nil {
		return fmt.Errorf("issuer: load signing keys: %w", err)
	}
	if active.Issuer != i.cfg.IssuerURL {
		// Another replica, configured with another issuer identifier, replaced the key. Tokens
		// signed with it under this identifier would all be denied (the feed binds the key to
		// the other): keep the signers this replica has, whose key stays published until its
		// tokens expire, and say what is wrong.
		return fmt.Errorf("issuer: the active signing key %s in the shared store is bound to issuer %q, but this replica is configured as %q: give every replica the same --issuer-url", active.Kid, active.Issuer, i.cfg.IssuerURL)
	}
	known := append([]*signer{i.active.Load(), i.next.Load()}, fresh...)
	a, err := i.signerFor(active, known)
	if err != nil {
		return err
	}
	n, err := i.signerFor(next, known)
	if err != nil {
		return err
	}
	i.active.Store(a)
	i.next.Store(n)
	return nil
}

// signerFor returns the signer of rec (nil for none): one of known if it holds the key, marked
// published if rec is, or else a new one opened from rec.
func (i *Issuer) signerFor(rec *keyRecord, known []*signer) (*signer, error) {
	if rec == nil {
		return nil, nil
	}
	for _, s := range known {
		if s != nil && s.kid == rec.Kid {
			if rec.Published != 0 {
				s.markPublished(rec.Published)
			}
			return s, nil
		}
	}
	k, err := i.openKey(rec)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	return newSigner(k, rec.Published)
}

// resync is syncKeys for a change another replica may have made. If it changed the signers, the
// schedule looks again at once: its next step was planned from the keys as they were.
func (i *Issuer) resync() error {
	i.rotateMu.Lock()
	defer i.rotateMu.Unlock()
	before := kidOf(i.active.Load()) + " " + kidOf(i.next.Load())
	if err := i.syncKeys(); err != nil {
		return err
	}
	if after := kidOf(i.active.Load()) + " " + kidOf(i.next.Load()); after != before {
		i.log.Info("issuer: took up the signing keys another replica changed",
			"kid", kidOf(i.active.Load()), "next_kid", kidOf(i.next.Load()))
		i.due.Store(0)
	}
	return nil
}

func kidOf(s *signer) string {
	if s == nil {
		return ""
	}
	return s.kid
}

// followStore syncs the signers whenever the signing keys change in a store other processes
// write too, and every scheduleTick in case the watch missed a change, until the issuer closes.
// Every key change writes a key record (a promotion, a retirement, a publication's sequence), so
// the keys bucket alone is watched; the state bucket holding the active and next pointers also
// holds the inventory counter, which every issuance writes.
func (i *Issuer) followStore(w store.Watcher) {
	store.Follow(i.ctx, w, bucketKeys, scheduleTick, scheduleTick, i.resync, i.log, "the issuer's signing keys")
}
