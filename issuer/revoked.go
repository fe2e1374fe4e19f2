package issuer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// The inventory knows which of its credentials were revoked: the issuer follows the feed (see
// watch.go) and marks every credential a CredentialRevoked event names, so that "live" means
// unexpired and not revoked, and an offboarding can confirm from the inventory that no credential
// of a partner is left. The marks are the feed's facts as far as the issuer has applied it; a
// reader that must see a given revocation waits for it with WaitApplied.

// maxApplyBatch bounds how many feed messages one inventory transaction applies. A burst of
// revocations (an offboarding revokes thousands) then costs one fsync per batch, not one each.
const maxApplyBatch = 1024

// DefaultApplyWait is how long WaitApplied waits at most for the issuer to apply a sequence.
const DefaultApplyWait = 10 * time.Second

// appliedFeed is how far the issuer has applied the feed's revocations to its inventory.
type appliedFeed struct {
	mu      sync.Mutex
	seq     uint64
	changed chan struct{} // closed and cleared when seq changes; nil until someone waits
}

func (a *appliedFeed) set(seq uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if seq == a.seq {
		return
	}
	a.seq = seq
	if a.changed != nil {
		close(a.changed)
		a.changed = nil
	}
}

// at returns the applied sequence and a channel closed when it next changes.
func (a *appliedFeed) at() (uint64, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.changed == nil {
		a.changed = make(chan struct{})
	}
	return a.seq, a.changed
}

// AppliedSequence returns the feed sequence up to which the issuer has applied revocations to its
// inventory: zero before it first caught up, and always zero without Config.Feed.
func (i *Issuer) AppliedSequence() uint64 {
	seq, _ := i.applied.at()
	return seq
}

// WaitApplied waits until the issuer has applied the feed up to seq (zero: no wait) and returns
// the sequence applied. It fails Unavailable if that takes longer than DefaultApplyWait or ctx
// ends first, or at once if the issuer does not follow the feed.
func (i *Issuer) WaitApplied(ctx context.Context, seq uint64) (uint64, error) {
	applied, changed := i.applied.at()
	if applied >= seq {
		return applied, nil
	}
	if i.cfg.Feed == nil {
		return applied, fail.Unavailablef(nil, "the issuer does not follow the feed, so its inventory does not know revocations")
	}
	t := time.NewTimer(DefaultApplyWait)
	defer t.Stop()
	for applied < seq {
		select {
		case <-ctx.Done():
			return applied, fail.Unavailablef(ctx.Err(), "the issuer has applied the feed up to sequence %d, not yet %d", applied, seq)
		case <-t.C:
			return applied, fail.Unavailablef(nil, "the issuer has applied the feed up to sequence %d, not yet %d", applied, seq)
		case <-changed:
			applied, changed = i.applied.at()
		}
	}
	return applied, nil
}

// revokedSequence returns the feed sequence of the credential's revocation, zero if the inventory
// knows of none.
func revokedSequence(tx store.Tx, jti []byte) uint64 {
	return store.KeyUint64(tx.Get(bucketRevoked, jti))
}

// revocation is a credential revocation read from the feed.
type revocation struct {
	jti string
	seq uint64
}

// markRevoked records revocations in the inventory, in one transaction. Credentials the inventory
// does not hold (another issuer's, or ids never issued) and credentials marked already are
// skipped.
func (i *Issuer) markRevoked(revs []revocation) error {
	if len(revs) == 0 {
		return nil
	}
	err := i.cfg.Store.Update(func(tx store.Tx) error {
		for _, r := range revs {
			jti := []byte(r.jti)
			if tx.Get(bucketCreds, jti) == nil || tx.Get(bucketRevoked, jti) != nil {
				continue
			}
			if err := tx.Put(bucketRevoked, jti, store.Uint64Key(r.seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("issuer: mark revoked credentials: %w", err)
	}
	return nil
}

// markSnapshot marks the inventory's unexpired credentials that snap holds revoked: revocations
// that happened while the issuer was not following the feed.
func (i *Issuer) markSnapshot(snap *feed.State) error {
	cutoff := i.cfg.Now().Add(-i.cfg.MaxCredentialTTL - liveMargin)
	var revs []revocation
	err := i.cfg.Store.View(func(tx store.Tx) error {
		return tx.Scan(bucketByOrder, nil, nil, func(_, jti []byte) (bool, error) {
			rec, err := indexedRecord(tx, jti)
			if err != nil {
				return false, err
			}
			if rec.IssueTime.Before(cutoff) {
				return false, nil // everything older has expired
			}
			if r, ok := snap.RevokedCredential(rec.ID); ok && tx.Get(bucketRevoked, jti) == nil {
				revs = append(revs, revocation{rec.ID, r.Sequence})
			}
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("issuer: read the inventory: %w", err)
	}
	for len(revs) > 0 {
		n := min(len(revs), maxApplyBatch)
		if err := i.markRevoked(revs[:n]); err != nil {
			return err
		}
		revs = revs[n:]
	}
	return nil
}

// applyFeed applies a batch of feed messages: key revocations at once, credential revocations in
// one transaction, key publications in another (see recordPublished), then records the last
// event's sequence as applied. A heartbeat of another
// epoch ends it with errEpochChanged, after what came before it is applied.
func (i *Issuer) applyFeed(msgs []*treatyv1.SubscribeResponse, epoch string) error {
	var (
		revs []revocation
		pubs = map[string]uint64{}
		last uint64
		stop error
	)
	for _, m := range msgs {
		if hb := m.GetHeartbeat(); hb != nil && hb.GetEpoch() != epoch {
			stop = errEpochChanged // start over from a snapshot of the new log
			break
		}
		ev := m.GetEvent()
		if ev == nil {
			continue
		}
		switch c := ev.GetChange().(type) {
		case *treatyv1.Event_SigningKeyRevoked:
			if err := i.revokeKey(c.SigningKeyRevoked.GetKid()); err != nil { // a no-op for a kid that is not ours
				return err
			}
		case *treatyv1.Event_CredentialRevoked:
			revs = append(revs, revocation{c.CredentialRevoked.GetJti(), ev.GetSequence()})
		case *treatyv1.Event_SigningKeyPublished:
			if _, ok := pubs[c.SigningKeyPublished.GetKid()]; !ok { // the first publication counts
				pubs[c.SigningKeyPublished.GetKid()] = ev.GetSequence()
			}
		}
		last = max(last, ev.GetSequence())
	}
	if err := i.markRevoked(revs); err != nil {
		return err
	}
	if err := i.recordPublished(pubs); err != nil { // a no-op for keys that are not ours
		return err
	}
	if last != 0 {
		i.applied.set(last)
	}
	return stop
}

// nextBatch waits for a message and takes up to maxApplyBatch that are already queued.
func nextBatch(ctx context.Context, msgs <-chan *treatyv1.SubscribeResponse, errc <-chan error) ([]*treatyv1.SubscribeResponse, error) {
	var batch []*treatyv1.SubscribeResponse
	select {
	case m := <-msgs:
		batch = append(batch, m)
	case err := <-errc:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for len(batch) < maxApplyBatch {
		select {
		case m := <-msgs:
			batch = append(batch, m)
		default:
			return batch, nil
		}
	}
	return batch, nil
}
