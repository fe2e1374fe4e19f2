package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/treaty-dev/treaty/store"
)

// deliverLoop delivers ep's due deliveries one at a time until ctx ends.
func (n *Notifier) deliverLoop(ctx context.Context, ep endpoint) {
	for ctx.Err() == nil {
		changed := n.changed()
		due, dkey, at, ok, err := n.nextDue(ep)
		if err != nil {
			n.log.Error("notify: read the delivery queue", "endpoint", ep.redacted, "err", err)
			if !sleep(ctx, n.cfg.RetryMin) {
				return
			}
			continue
		}
		if !ok {
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		if wait := time.Until(at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-changed: // something new may be due sooner
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}
		if err := n.attempt(ctx, ep, due, dkey); err != nil && ctx.Err() == nil {
			n.log.Error("notify: record a delivery attempt", "endpoint", ep.redacted, "err", err)
			if !sleep(ctx, n.cfg.RetryMin) {
				return
			}
		}
	}
}

// nextDue returns the due-index key of ep's earliest pending delivery, the delivery's key, and
// when it is due.
func (n *Notifier) nextDue(ep endpoint) (key, dkey []byte, at time.Time, ok bool, err error) {
	err = n.st.View(func(tx store.Tx) error {
		return tx.Scan(bucketDue, ep.key[:], nil, func(k, v []byte) (bool, error) {
			key, dkey, ok = bytes.Clone(k), bytes.Clone(v), true
			return false, nil
		})
	})
	if ok {
		at = time.Unix(0, int64(store.KeyUint64(key[8:16])))
	}
	return key, dkey, at, ok, err
}

// attempt tries one delivery and records the attempt: delivered on a 2xx, otherwise retried
// later, or dead once MaxAttempts were made.
func (n *Notifier) attempt(ctx context.Context, ep endpoint, due, dkey []byte) error {
	var (
		d     deliveryRecord
		nrec  notificationRecord
		found bool
	)
	err := n.st.View(func(tx store.Tx) error {
		var err error
		if found, err = getJSON(tx, bucketDeliveries, dkey, &d); err != nil || !found {
			return err
		}
		found, err = getJSON(tx, bucketNotifications, store.Uint64Key(d.Sequence), &nrec)
		return err
	})
	if err != nil {
		return err
	}
	if !found || d.State != StatePending {
		return n.st.Update(func(tx store.Tx) error { return tx.Delete(bucketDue, due) }) // stale index entry
	}
	start := time.Now()
	code, perr := n.post(ctx, ep, d, nrec)
	if ctx.Err() != nil {
		return nil // shutting down: the attempt does not count, the delivery stays due
	}
	a := Attempt{Time: start.UTC().Round(0), StatusCode: code, Duration: time.Since(start)}
	if perr != nil {
		a.Error = perr.Error()
	}
	var next time.Time
	err = n.st.Update(func(tx store.Tx) error {
		var cur deliveryRecord
		if ok, err := getJSON(tx, bucketDeliveries, dkey, &cur); err != nil || !ok {
			return err
		}
		if err := tx.Delete(bucketDue, due); err != nil {
			return err
		}
		cur.Attempts = append(cur.Attempts, a)
		switch {
		case perr == nil:
			cur.State, cur.NextAttempt = StateDelivered, time.Time{}
		case len(cur.Attempts)-cur.Round >= n.cfg.MaxAttempts:
			cur.State, cur.NextAttempt = StateDead, time.Time{}
		default:
			next = time.Now().Add(n.backoff(len(cur.Attempts) - cur.Round)).UTC().Round(0)
			cur.NextAttempt = next
			if err := tx.Put(bucketDue, dueKey(ep.key, next, cur.Sequence), dkey); err != nil {
				return err
			}
		}
		d = cur
		return putJSON(tx, bucketDeliveries, dkey, cur)
	})
	if err != nil {
		return err
	}
	attrs := []any{"delivery_id", d.ID, "notification_id", d.NotificationID, "type", d.Type, "endpoint", ep.redacted,
		"attempt", len(d.Attempts), "status_code", code}
	switch d.State {
	case StateDelivered:
		n.log.Info("notify: delivered", attrs...)
	case StateDead:
		n.log.Error("notify: delivery failed for good; giving up", append(attrs, "err", a.Error)...)
	default:
		n.log.Warn("notify: delivery failed; will retry", append(attrs, "err", a.Error, "next_attempt", next)...)
	}
	return nil
}

// backoff is the wait after the given number of failed attempts: RetryMin doubled per attempt,
// capped at RetryMax, with equal jitter so that many deliveries failing together spread out.
func (n *Notifier) backoff(failed int) time.Duration {
	d := n.cfg.RetryMin
	for i := 1; i < failed && d < n.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, n.cfg.RetryMax)
	return d/2 + rand.N(d/2+1)
}

// post sends one attempt. It returns the receiver's status code (0 if none) and an error for
// anything but a 2xx. Errors name neither the URL's path nor the body.
func (n *Notifier) post(ctx context.Context, ep endpoint, d deliveryRecord, nrec notificationRecord) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(nrec.Body))
	if err != nil {
		return 0, errors.New("cannot build the request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "treaty-notify")
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderEvent, d.Type)
	req.Header.Set(HeaderSignature, Sign(n.cfg.Secret, time.Now(), nrec.Body))
	resp, err := n.cfg.HTTPClient.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the url.Error would quote the full URL
		}
		return 0, fmt.Errorf("request failed: %v", err)
	}
	defer resp.Body.Close()
	// Drain a little so the connection can be reused; the receiver's body is not kept, since
	// some receivers echo what they were sent.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, fmt.Errorf("receiver answered %s", resp.Status)
}

// dropOrphans marks dead the pending deliveries to endpoints no longer configured.
func (n *Notifier) dropOrphans() error {
	configured := map[[8]byte]bool{}
	for _, ep := range n.endpoints {
		configured[ep.key] = true
	}
	dropped := 0
	err := n.st.Update(func(tx store.Tx) error {
		var orphans, dkeys [][]byte
		err := tx.Scan(bucketDue, nil, nil, func(k, v []byte) (bool, error) {
			if !configured[[8]byte(k[:8])] {
				orphans, dkeys = append(orphans, bytes.Clone(k)), append(dkeys, bytes.Clone(v))
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for i, k := range orphans {
			var d deliveryRecord
			if ok, err := getJSON(tx, bucketDeliveries, dkeys[i], &d); err != nil {
				return err
			} else if ok && d.State == StatePending {
				d.State, d.NextAttempt = StateDead, time.Time{}
				d.Attempts = append(d.Attempts, Attempt{Time: time.Now().UTC().Round(0), Error: "endpoint no longer configured"})
				if err := putJSON(tx, bucketDeliveries, dkeys[i], d); err != nil {
					return err
				}
				dropped++
			}
			if err := tx.Delete(bucketDue, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("notify: drop deliveries to removed endpoints: %w", err)
	}
	if dropped > 0 {
		n.log.Warn("notify: deliveries to endpoints no longer configured are dead", "count", dropped)
	}
	return nil
}
