package issuer

import (
	"context"
	"errors"
	"time"
)

// watchKeys follows the feed so that the moment the active signing key is revoked there, the
// issuer rotates to a new one: issuance carries on at once, instead of paying for the rotation on
// the next request that the PDP denies as key_revoked. It runs until the issuer closes.
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

// followKeys checks the feed's current state for a revocation of the active key (one may have
// happened while the issuer was away), then follows the feed from there.
func (i *Issuer) followKeys(ctx context.Context) error {
	snap, err := i.cfg.Feed.Snapshot(ctx)
	if err != nil {
		return err
	}
	if k, ok := snap.SigningKey(i.active.Load().kid); ok && k.Revoked() {
		if _, err := i.rotate(k.Kid); err != nil {
			return err
		}
	}
	stream, err := i.cfg.Feed.Subscribe(ctx, snap.Sequence())
	if err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		if hb := m.GetHeartbeat(); hb != nil && hb.GetEpoch() != snap.Epoch() {
			return errEpochChanged // start over from a snapshot of the new log
		}
		if r := m.GetEvent().GetSigningKeyRevoked(); r != nil && r.GetKid() == i.active.Load().kid {
			if _, err := i.rotate(r.GetKid()); err != nil {
				return err
			}
		}
	}
}
