package issuer

import (
	"bytes"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// purgeBatch bounds how many expired replay entries one assertion clears, so the cost of
// housekeeping is spread over requests and never stalls one.
const purgeBatch = 128

// consumeJTI records that workload used jti, until expires, in one durable transaction, and
// refuses a jti the workload used before while its entry is live. Only assertions whose
// signature verified reach it, so nobody without a workload key can fill the cache. Expired
// entries are purged on the way.
func (i *Issuer) consumeJTI(workload, jti string, expires, now time.Time) error {
	err := i.consumeOnce(scoped(workload, []byte(jti)), expires, now)
	if fail.KindOf(err) == fail.Unauthenticated {
		return fail.Unauthenticatedf("client assertion was already used (its jti is single-use); sign a new assertion for each request")
	}
	return err
}

// consumeOnce records key in the replay cache until expires, in one durable transaction, and
// returns an Unauthenticated error if key is there already and live. Expired entries are purged
// on the way. Callers scope their keys (scoped) so that kinds of one-time values never collide.
func (i *Issuer) consumeOnce(key []byte, expires, now time.Time) error {
	err := i.cfg.Store.Update(func(tx store.Tx) error {
		if old := tx.Get(bucketReplay, key); old != nil {
			if int64(store.KeyUint64(old)) > now.UnixNano() {
				return fail.Unauthenticatedf("already used")
			}
			if err := tx.Delete(bucketReplayExp, append(old, key...)); err != nil {
				return err
			}
		}
		exp := store.Uint64Key(uint64(expires.UnixNano()))
		if err := tx.Put(bucketReplay, key, exp); err != nil {
			return err
		}
		if err := tx.Put(bucketReplayExp, append(exp, key...), nil); err != nil {
			return err
		}
		return purgeReplay(tx, now)
	})
	if err != nil && fail.KindOf(err) == fail.Internal {
		return fmt.Errorf("issuer: record a single-use id in the replay cache: %w", err)
	}
	return err
}

// purgeReplay deletes up to purgeBatch replay entries that expired before now.
func purgeReplay(tx store.Tx, now time.Time) error {
	limit := store.Uint64Key(uint64(now.UnixNano()))
	var expired [][]byte
	err := tx.Scan(bucketReplayExp, nil, nil, func(k, _ []byte) (bool, error) {
		if len(k) < 8 || bytes.Compare(k[:8], limit) >= 0 {
			return false, nil
		}
		expired = append(expired, bytes.Clone(k))
		return len(expired) < purgeBatch, nil
	})
	if err != nil {
		return err
	}
	for _, k := range expired {
		if err := tx.Delete(bucketReplayExp, k); err != nil {
			return err
		}
		if err := tx.Delete(bucketReplay, k[8:]); err != nil {
			return err
		}
	}
	return nil
}
