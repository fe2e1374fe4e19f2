package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// watchKeys follows the feed so that the moment one of the issuer's signing keys is revoked
// there, the issuer drops it, and if it was the active key rotates to a new one: issuance
// carries on at once, instead of paying for the rotation on the next request that the PDP denies
// as key_revoked, and the JWKS stops offering the key. It runs until the issuer closes.
func (i *Issuer) watchKeys() {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		start := time.Now()
		err := i.followKeys(i.ctx)
		if i.ctx.Err() != nil {
			return
		}
		if time.Since(start) > maxBackoff {
			backoff = minBackoff // it ran well for a while; this is a fresh failure
		}
		i.log.Debug("issuer: feed subscription ended; reconnecting", "err", err, "in", backoff)
		select {
		case <-i.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

var errEpochChanged = errors.New("the feed's epoch changed")

// followKeys checks the feed's current state for revocations and publications of the issuer's
// keys and revocations of the inventory's credentials (some may have happened while the issuer
// was away, or been published by another replica's relay), then follows the
// feed from there, applying what arrives in batches (see applyFeed).
func (i *Issuer) followKeys(ctx context.Context) error {
	snap, err := i.cfg.Feed.Snapshot(ctx)
	if err != nil {
		return err
	}
	kids, err := i.liveKids()
	if err != nil {
		return err
	}
	known := map[string]uint64{}
	for _, kid := range kids {
		k, ok := snap.SigningKey(kid)
		switch {
		case ok && k.Revoked():
			if err := i.revokeKey(kid); err != nil {
				return err
			}
		case ok:
			known[kid] = snap.Sequence() // published at or before it
		}
	}
	if err := i.recordPublished(known); err != nil {
		return err
	}
	if err := i.markSnapshot(snap); err != nil {
		return err
	}
	i.applied.set(snap.Sequence())
	sctx, cancel := context.WithCancel(ctx)
	stream, err := i.cfg.Feed.Subscribe(sctx, snap.Sequence())
	if err != nil {
		cancel()
		return err
	}
	// One goroutine receives while this one writes, so that what arrives during a write is
	// applied by the next one, together.
	msgs := make(chan *treatyv1.SubscribeResponse, maxApplyBatch)
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() { defer close(done); feed.Receive(sctx, stream, msgs, errc) }()
	defer func() { cancel(); <-done }()
	for {
		batch, err := nextBatch(sctx, msgs, errc)
		if err != nil {
			return err
		}
		if err := i.applyFeed(batch, snap.Epoch()); err != nil {
			return err
		}
	}
}

// liveKids lists the issuer's keys that are not revoked.
func (i *Issuer) liveKids() ([]string, error) {
	var kids []string
	err := i.cfg.Store.View(func(tx store.Tx) error {
		return tx.Scan(bucketKeys, nil, nil, func(k, v []byte) (bool, error) {
			var rec keyRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("decode signing key: %w", err)
			}
			if !rec.Revoked {
				kids = append(kids, rec.Kid)
			}
			return true, nil
		})
	})
	return kids, err
}

// recordPublished records seqs (kid -> a feed sequence the feed knows the key at) as the feed
// sequences of the issuer's keys whose publication is not recorded yet. The relay that published
// a key normally records it (awaitPublication), but where replicas share the outbox another
// replica's relay may publish the entry first, and only the relay that published an entry learns
// its sequence: without this the key would never be recorded as published, so issuance with it
// would wait in vain and a next key would never take its turn.
func (i *Issuer) recordPublished(seqs map[string]uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	var recorded []string
	err := i.cfg.Store.Update(func(tx store.Tx) error {
		recorded = recorded[:0] // fn runs again on a conflict
		for kid, seq := range seqs {
			var rec keyRecord
			ok, err := getJSON(tx, bucketKeys, []byte(kid), &rec)
			if err != nil {
				return err
			}
			if !ok || rec.Published != 0 || rec.Revoked {
				continue
			}
			rec.Published = seq
			if err := putJSON(tx, bucketKeys, []byte(kid), &rec); err != nil {
				return err
			}
			recorded = append(recorded, kid)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("issuer: record the feed sequence of signing keys: %w", err)
	}
	if len(recorded) > 0 {
		if err := i.resync(); err != nil { // the signers learn their sequence
			// The record is saved; the store's follower (followStore) retries the sync.
			i.log.Warn("issuer: could not take up the signing keys in the store", "err", err)
		}
		i.due.Store(0)
		i.log.Info("issuer: learned from the feed that signing keys are published", "kids", recorded)
	}
	return nil
}
