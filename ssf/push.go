package ssf

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/store"
)

// superviseDelivery runs one push worker per stream, starting workers for new streams as they
// appear; a worker ends itself when its stream is deleted.
func (t *Transmitter) superviseDelivery(ctx context.Context) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		running = map[string]bool{}
	)
	defer wg.Wait()
	for ctx.Err() == nil {
		changed := t.changed()
		var ids []string
		err := t.st.View(func(tx store.Tx) error {
			return tx.Scan(bucketStreams, nil, nil, func(k, _ []byte) (bool, error) {
				ids = append(ids, string(k))
				return true, nil
			})
		})
		if err != nil {
			t.log.Error("ssf: list streams", "err", err)
		}
		mu.Lock()
		for _, id := range ids {
			if running[id] {
				continue
			}
			running[id] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.pushWorker(ctx, id)
				mu.Lock()
				delete(running, id)
				mu.Unlock()
				// A stream recreated under the same id (never, ids are random) or a worker that ended
				// early is picked up at the next change.
			}()
		}
		mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
		}
	}
}

// pushWorker delivers a stream's queued SETs in order while the stream is an enabled push
// stream. A failed attempt is retried with exponential backoff, never skipped, so the stream
// stays ordered and nothing is lost; the worker returns when the stream is deleted.
func (t *Transmitter) pushWorker(ctx context.Context, id string) {
	backoff := t.cfg.RetryMin
	for ctx.Err() == nil {
		changed := t.changed()
		var (
			s     *stored
			q     queued
			pos   uint64
			found bool
		)
		err := t.st.View(func(tx store.Tx) error {
			if tx.Get(bucketStreams, []byte(id)) == nil {
				return nil
			}
			var err error
			if s, err = getStream(tx, id); err != nil {
				return err
			}
			q, pos, found, err = head(tx, id)
			return err
		})
		switch {
		case err != nil:
			t.log.Error("ssf: read stream queue", "stream_id", id, "err", err)
			if !sleep(ctx, t.cfg.RetryMax) {
				return
			}
			continue
		case s == nil:
			return // deleted
		case !found || s.Status != StatusEnabled || s.Config.Delivery.Method != MethodPush:
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		if err := t.post(ctx, s.Config.Delivery, q.SET); err != nil {
			if ctx.Err() != nil {
				return
			}
			t.log.Warn("ssf: push delivery failed; will retry", "stream_id", id, "jti", q.JTI, "err", err, "retry_in", backoff)
			if t.backoff(ctx, id, s, backoff) {
				backoff = min(2*backoff, t.cfg.RetryMax)
			} else {
				backoff = t.cfg.RetryMin
			}
			continue
		}
		backoff = t.cfg.RetryMin
		err = t.st.Update(func(tx store.Tx) error { return remove(tx, id, pos, q.JTI) })
		if err != nil {
			// The SET stays queued and is pushed again: at least once.
			t.log.Error("ssf: could not record a delivered SET", "stream_id", id, "jti", q.JTI, "err", err)
		}
	}
}

// backoff waits d before the next attempt, or less if the receiver reconfigures the stream
// (delivery or status) meanwhile, so a fixed endpoint is tried at once. It reports whether the
// whole wait passed; new SETs arriving do not cut it short.
func (t *Transmitter) backoff(ctx context.Context, id string, was *stored, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		changed := t.changed()
		var now *stored
		err := t.st.View(func(tx store.Tx) (err error) {
			if tx.Get(bucketStreams, []byte(id)) == nil {
				return nil
			}
			now, err = getStream(tx, id)
			return err
		})
		if err == nil && (now == nil || now.Config.Delivery != was.Config.Delivery || now.Status != was.Status) {
			return false
		}
		select {
		case <-timer.C:
			return true
		case <-ctx.Done():
			return true
		case <-changed:
		}
	}
}

// post pushes one SET (RFC 8935 section 2). The receiver accepts it with 202; any other 2xx is
// taken as acceptance too, since the SET was received. Everything else is retried.
func (t *Transmitter) post(ctx context.Context, d Delivery, set string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.EndpointURL, strings.NewReader(set))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Accept", "application/json")
	if d.AuthorizationHeader != "" {
		req.Header.Set("Authorization", d.AuthorizationHeader)
	}
	resp, err := t.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// A short read of the body lets the connection be reused and reports the receiver's error.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return fmt.Errorf("receiver answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
}
