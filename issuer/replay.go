package issuer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// purgeBatch bounds how many expired replay entries one assertion clears, so the cost of
// housekeeping is spread over requests and never stalls one.
const purgeBatch = 128

// replayIndexLen is the length of the prefix of a key of the replay cache's expiry index: the
// entry's expiry and the time it was recorded (see putReplay).
const replayIndexLen = 16

// replayClaim is a verified client assertion's jti, to be recorded in the replay cache in the
// transaction that records the credential it buys (see record), or on its own if issuance is
// refused (see consume). Either way it is used once: the transaction that records it first wins,
// and every other is refused inside its own transaction, so two requests racing with one
// assertion, even in one batch, never both succeed.
type replayClaim struct {
	workload, jti string
	expires       time.Time // when the assertion expires, skew included: the entry is kept until then
}

// errReplayed refuses an assertion whose jti is in the replay cache.
var errReplayed = fail.Unauthenticatedf("client assertion was already used (its jti is single-use); sign a new assertion for each request")

// seen refuses a jti the replay cache holds already, in a read-only transaction: it turns a
// replay away before any further work, but only take (inside the write) decides a race.
func (i *Issuer) seen(c *replayClaim, now time.Time) error {
	var used bool
	err := i.cfg.Store.View(func(tx store.Tx) error {
		old := tx.Get(bucketReplay, scoped(c.workload, []byte(c.jti)))
		used = old != nil && int64(store.KeyUint64(old)) > now.UnixNano()
		return nil
	})
	switch {
	case err != nil:
		return fmt.Errorf("issuer: read the assertion replay cache: %w", err)
	case used:
		return errReplayed
	}
	return nil
}

// take records the claim in tx, or returns errReplayed if the workload used the jti before
// while its entry is live. Expired entries are purged on the way. It only reads and writes tx,
// so it may run again when its batch is retried.
func (c *replayClaim) take(tx store.Tx, now time.Time) error {
	return putReplay(tx, scoped(c.workload, []byte(c.jti)), c.expires, now, errReplayed)
}

// consume records the claim on its own, durably, for an assertion whose issuance was refused:
// the assertion stays single-use whatever the outcome. A jti recorded already is no error here.
func (i *Issuer) consume(c *replayClaim) {
	if c == nil {
		return
	}
	now := i.cfg.Now()
	err := i.cfg.Store.Batch(func(tx store.Tx) error { return c.take(tx, now) })
	if err != nil && err != errReplayed {
		i.log.Error("issuer: record the jti of a refused client assertion", "workload", c.workload, "err", err)
	}
}

// consumeOnce records key in the replay cache until expires, in one durable transaction, and
// returns an Unauthenticated error if key is there already and live. Expired entries are purged
// on the way. Callers scope their keys (scoped) so that kinds of one-time values never collide.
// The transaction is a store.Batch shared with concurrent issuances: fn only reads and writes tx.
func (i *Issuer) consumeOnce(key []byte, expires, now time.Time) error {
	err := i.cfg.Store.Batch(func(tx store.Tx) error {
		return putReplay(tx, key, expires, now, fail.Unauthenticatedf("already used"))
	})
	if err != nil && fail.KindOf(err) == fail.Internal {
		return fmt.Errorf("issuer: record a single-use id in the replay cache: %w", err)
	}
	return err
}

// putReplay records key in the replay cache until expires, or returns used if key is there
// already and live, and purges expired entries. An entry is two writes: key -> expiry in
// bucketReplay, for the lookup, and expiry, time recorded, key -> empty in bucketReplayExp, for
// the purge (unix nanos, 8 bytes each). The time of recording keeps the expiry index's inserts
// local: keys arrive in time order among the few expiries live at once (assertions expire on
// whole seconds), so a batch's entries land on a page or two of the index instead of one random
// page each; the lookups use the key alone, whose place in bucketReplay is random anyway.
//
// A key reused after its entry expired leaves the old index entry behind, already expired: the
// purge (next, in this very transaction) drops it, and the new entry with it only if its expiry
// were the old one's, which it is not (see indexedReplayKeys).
func putReplay(tx store.Tx, key []byte, expires, now time.Time, used error) error {
	if old := tx.Get(bucketReplay, key); old != nil && int64(store.KeyUint64(old)) > now.UnixNano() {
		return used
	}
	exp := store.Uint64Key(uint64(expires.UnixNano()))
	if err := tx.Put(bucketReplay, key, exp); err != nil {
		return err
	}
	index := binary.BigEndian.AppendUint64(bytes.Clone(exp), uint64(now.UnixNano()))
	if err := tx.Put(bucketReplayExp, append(index, key...), nil); err != nil {
		return err
	}
	return purgeReplay(tx, now)
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
		for _, key := range indexedReplayKeys(tx, k) {
			if err := tx.Delete(bucketReplay, key); err != nil {
				return err
			}
		}
	}
	return nil
}

// indexedReplayKeys returns the keys of the bucketReplay entries an expired expiry index key k
// may name: its layout-4 reading (expiry, time recorded, key) and its layout-3 one (expiry, key;
// written by a replica not yet upgraded that shares an etcd store with this one), each only if
// that entry's expiry is k's. An entry is thus never deleted before it expires, whichever way a
// key is cut: a purge cannot let a live jti be used again.
func indexedReplayKeys(tx store.Tx, k []byte) [][]byte {
	var keys [][]byte
	for _, at := range []int{replayIndexLen, 8} {
		if len(k) > at && bytes.Equal(tx.Get(bucketReplay, k[at:]), k[:8]) {
			keys = append(keys, k[at:])
		}
	}
	return keys
}
