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

// replayStampLen is the length of a replay entry's stamp: its expiry and the time it was
// recorded (see putReplay).
const replayStampLen = 16

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
		used = old != nil && replayExpiry(old) > now.UnixNano()
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
// already and live, and purges expired entries. An entry is two writes: key -> stamp in
// bucketReplay, for the lookup, and stamp key -> empty in bucketReplayExp, for the purge, where
// stamp is the expiry then the time of recording (unix nanos, 8 bytes each). The time of
// recording keeps the expiry index's inserts local: keys arrive in time order among the few
// expiries live at once, so a batch's entries land on a page or two of the index instead of one
// random page each (its lookups use the key alone, whose place in bucketReplay is random anyway).
func putReplay(tx store.Tx, key []byte, expires, now time.Time, used error) error {
	if old := tx.Get(bucketReplay, key); old != nil {
		if replayExpiry(old) > now.UnixNano() {
			return used
		}
		if err := tx.Delete(bucketReplayExp, append(old, key...)); err != nil {
			return err
		}
	}
	stamp := binary.BigEndian.AppendUint64(store.Uint64Key(uint64(expires.UnixNano())), uint64(now.UnixNano()))
	if err := tx.Put(bucketReplay, key, stamp); err != nil {
		return err
	}
	if err := tx.Put(bucketReplayExp, append(stamp, key...), nil); err != nil {
		return err
	}
	return purgeReplay(tx, now)
}

// replayExpiry returns the expiry (unix nanos) of a bucketReplay entry's stamp.
func replayExpiry(stamp []byte) int64 {
	if len(stamp) < 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(stamp))
}

// purgeReplay deletes up to purgeBatch replay entries that expired before now.
func purgeReplay(tx store.Tx, now time.Time) error {
	limit := store.Uint64Key(uint64(now.UnixNano()))
	var expired [][]byte
	err := tx.Scan(bucketReplayExp, nil, nil, func(k, _ []byte) (bool, error) {
		if len(k) < replayStampLen || bytes.Compare(k[:8], limit) >= 0 {
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
		if key := indexedReplayKey(tx, k); key != nil {
			if err := tx.Delete(bucketReplay, key); err != nil {
				return err
			}
		}
	}
	return nil
}

// indexedReplayKey returns the key of the bucketReplay entry an expiry index key names, or nil if
// there is none. A layout-4 index key is stamp key; a layout-3 one, expiry key (written by a
// replica not yet upgraded that shares an etcd store with this one). An entry is only deleted if
// its own stamp (or expiry) is the index key's: a key cut at the wrong length never removes
// another entry, which would let its jti be used again.
func indexedReplayKey(tx store.Tx, k []byte) []byte {
	if key := k[replayStampLen:]; bytes.Equal(tx.Get(bucketReplay, key), k[:replayStampLen]) {
		return key
	}
	if key := k[8:]; bytes.Equal(tx.Get(bucketReplay, key), k[:8]) {
		return key
	}
	return nil
}
