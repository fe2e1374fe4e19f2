package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// RetryDead queues a dead delivery (id) or every dead delivery (id empty) again, once its
// receiver is fixed: each gets a new round of MaxAttempts attempts under the same delivery id,
// and keeps the attempts of its earlier rounds in the log. A delivery whose endpoint is no longer
// configured stays dead. It returns how many deliveries are pending again.
func (n *Notifier) RetryDead(ctx context.Context, id string) (int, error) {
	configured := map[string]endpoint{}
	for _, ep := range n.endpoints {
		configured[ep.url] = ep
	}
	retried := 0
	err := n.st.Update(func(tx store.Tx) error {
		retried = 0
		type hit struct {
			key []byte
			d   deliveryRecord
		}
		var hits []hit
		found := false
		err := tx.Scan(bucketDeliveries, nil, nil, func(k, v []byte) (bool, error) {
			var d deliveryRecord
			if err := json.Unmarshal(v, &d); err != nil {
				return false, fmt.Errorf("decode delivery: %w", err)
			}
			if id != "" && d.ID != id {
				return true, nil
			}
			found = true
			if d.State == StateDead {
				hits = append(hits, hit{bytes.Clone(k), d})
			} else if id != "" {
				return false, fail.Preconditionf("delivery %s is %s; only a dead delivery can be retried", id, d.State)
			}
			return id == "", nil
		})
		if err != nil {
			return err
		}
		if id != "" && !found {
			return fail.NotFoundf("delivery %s is not in the delivery log (it may have been pruned)", id)
		}
		now := time.Now().UTC().Round(0)
		for _, h := range hits {
			ep, ok := configured[h.d.Endpoint]
			if !ok {
				if id != "" {
					return fail.Preconditionf("delivery %s was for an endpoint that is no longer configured", id)
				}
				continue
			}
			h.d.State, h.d.NextAttempt, h.d.Round = StatePending, now, len(h.d.Attempts)
			if err := putJSON(tx, bucketDeliveries, h.key, h.d); err != nil {
				return err
			}
			if err := tx.Put(bucketDue, dueKey(ep.key, now, h.d.Sequence), h.key); err != nil {
				return err
			}
			retried++
		}
		return nil
	})
	if err != nil {
		if fail.KindOf(err) != fail.Internal {
			return 0, err
		}
		return 0, fmt.Errorf("notify: retry dead deliveries: %w", err)
	}
	if retried > 0 {
		n.log.Info("notify: dead deliveries queued again", "count", retried)
		n.wake()
	}
	return retried, nil
}
