package notify

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/store"
)

// pruneBatch bounds the notifications one pruning transaction removes.
const pruneBatch = 500

// Prune removes from the delivery log the notifications raised more than Retention ago whose
// every delivery is settled (delivered or dead), with their deliveries; a notification still
// pending stays however old. Dedupe keys stay, so a pruned contract warning or finding is not
// raised again. It returns how many notifications it removed.
func (n *Notifier) Prune(ctx context.Context) (int, error) {
	cutoff := n.now().Add(-n.cfg.Retention)
	removed := 0
	var start []byte
	for ctx.Err() == nil {
		done, k, next, err := n.pruneChunk(cutoff, start)
		removed += k
		if err != nil {
			return removed, fmt.Errorf("notify: prune the delivery log: %w", err)
		}
		if done {
			return removed, nil
		}
		start = next
	}
	return removed, ctx.Err()
}

// pruneChunk removes up to pruneBatch old settled notifications from start on, in one
// transaction. It reports whether it reached the first notification too recent to prune.
func (n *Notifier) pruneChunk(cutoff time.Time, start []byte) (done bool, removed int, next []byte, err error) {
	err = n.st.Update(func(tx store.Tx) error {
		done, removed, next = true, 0, nil
		var old []uint64
		err := tx.Scan(bucketNotifications, nil, start, func(k, v []byte) (bool, error) {
			if len(old) == pruneBatch {
				done, next = false, bytes.Clone(k)
				return false, nil
			}
			var rec notificationRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("decode notification: %w", err)
			}
			if !rec.Created.Before(cutoff) {
				return false, nil // sequences grow with time: the rest are newer
			}
			old = append(old, rec.Sequence)
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, seq := range old {
			prefix := binary.BigEndian.AppendUint64(nil, ^seq)
			var keys [][]byte
			settled := true
			err := tx.Scan(bucketDeliveries, prefix, nil, func(k, v []byte) (bool, error) {
				var d deliveryRecord
				if err := json.Unmarshal(v, &d); err != nil {
					return false, fmt.Errorf("decode delivery: %w", err)
				}
				if d.State == StatePending {
					settled = false
					return false, nil
				}
				keys = append(keys, bytes.Clone(k))
				return true, nil
			})
			if err != nil {
				return err
			}
			if !settled {
				continue
			}
			for _, k := range keys {
				if err := tx.Delete(bucketDeliveries, k); err != nil {
					return err
				}
			}
			if err := tx.Delete(bucketNotifications, store.Uint64Key(seq)); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	return done, removed, next, err
}

// pruneLoop prunes the delivery log now and every hour until ctx ends.
func (n *Notifier) pruneLoop(ctx context.Context) {
	for {
		if k, err := n.Prune(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("notify: pruning the delivery log failed; will retry", "err", err)
		} else if k > 0 {
			n.log.Info("notify: pruned old notifications from the delivery log", "count", k)
		}
		if !sleep(ctx, pruneInterval) {
			return
		}
	}
}

// pruneInterval is how often the delivery log is pruned.
const pruneInterval = time.Hour
