package ssf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// cursor is the transmitter's position in the feed.
type cursor struct {
	// Epoch is the feed's epoch; empty until the first heartbeat.
	Epoch string `json:"epoch"`
	// After is the sequence of the last event handled.
	After uint64 `json:"after"`
	// Gen counts the times the feed was found replaced, so SETs of a replayed sequence get new jtis.
	Gen uint64 `json:"gen,omitempty"`
	// Mark fingerprints the event at After, to tell a restored log from the one followed.
	Mark string `json:"mark,omitempty"`
}

func getCursor(tx store.Tx) (cursor, error) {
	var c cursor
	raw := tx.Get(bucketMeta, keyCursor)
	if raw == nil {
		return c, nil
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("feed cursor: %w", err)
	}
	return c, nil
}

func putCursor(tx store.Tx, c cursor) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return tx.Put(bucketMeta, keyCursor, raw)
}

// queued is one SET waiting for its receiver.
type queued struct {
	JTI string `json:"jti"`
	SET string `json:"set"`
}

func queueKey(streamID string, pos uint64) []byte {
	return append([]byte(streamID), store.Uint64Key(pos)...)
}

func jtiKey(streamID, jti string) []byte { return []byte(streamID + jti) }

// enqueue signs claims and appends the SET to the stream's queue.
func (t *Transmitter) enqueue(tx store.Tx, s *stored, claims Claims) error {
	set, err := t.sign(claims)
	if err != nil {
		return fmt.Errorf("sign SET: %w", err)
	}
	raw, err := json.Marshal(queued{JTI: claims.Jti, SET: set})
	if err != nil {
		return err
	}
	pos := s.Next
	s.Next++
	if err := tx.Put(bucketQueue, queueKey(s.Config.StreamID, pos), raw); err != nil {
		return err
	}
	return tx.Put(bucketJTIs, jtiKey(s.Config.StreamID, claims.Jti), store.Uint64Key(pos))
}

// handle queues the SETs one feed event becomes on every stream that wants them, and advances
// the cursor past it, in one durable transaction. An event that concerns no receiver only moves
// the cursor in memory (skipped); the next write or heartbeat persists it, and a crash before
// that merely reads such events again.
func (t *Transmitter) handle(ev *treatyv1.Event) error {
	if ev.GetSequence() <= t.skipped {
		return nil
	}
	sig, ok := t.mapEvent(ev)
	if !ok {
		t.skipped, t.skippedMark = ev.GetSequence(), mark(ev)
		return nil
	}
	err := t.st.Update(func(tx store.Tx) error {
		cur, err := getCursor(tx)
		if err != nil {
			return err
		}
		if ev.GetSequence() <= cur.After {
			return nil // seen before; a resubscription may overlap
		}
		cur.After, cur.Mark = ev.GetSequence(), mark(ev)
		streams, err := allStreams(tx)
		if err != nil {
			return err
		}
		for _, s := range streams {
			if s.Status == StatusDisabled || !slices.Contains(s.Config.EventsDelivered, sig.eventType) {
				continue
			}
			claims := Claims{
				Iss: t.cfg.Issuer, Jti: setJTI(s.Config.StreamID, cur.Epoch, cur.Gen, ev.GetSequence()),
				Iat: t.cfg.Now().Unix(), Aud: s.Config.Aud, Txn: txn(cur.Epoch, ev.GetSequence()),
				SubID: sig.subject, Events: map[string]map[string]any{sig.eventType: sig.event},
			}
			if err := t.enqueue(tx, s, claims); err != nil {
				return err
			}
			if err := putStream(tx, s); err != nil {
				return err
			}
		}
		return putCursor(tx, cur)
	})
	if err != nil {
		return fmt.Errorf("queue SETs for feed event %d: %w", ev.GetSequence(), err)
	}
	t.skipped, t.skippedMark = ev.GetSequence(), mark(ev)
	t.wake()
	return nil
}

// head returns the oldest queued SET of a stream and its position.
func head(tx store.Tx, streamID string) (queued, uint64, bool, error) {
	var q queued
	var pos uint64
	found := false
	err := tx.Scan(bucketQueue, []byte(streamID), nil, func(k, v []byte) (bool, error) {
		pos, found = store.KeyUint64(k[len(streamID):]), true
		return false, json.Unmarshal(v, &q)
	})
	return q, pos, found, err
}

// remove drops a delivered SET from its stream's queue.
func remove(tx store.Tx, streamID string, pos uint64, jti string) error {
	if err := tx.Delete(bucketQueue, queueKey(streamID, pos)); err != nil {
		return err
	}
	return tx.Delete(bucketJTIs, jtiKey(streamID, jti))
}

// clearQueue drops every SET queued for a stream.
func clearQueue(tx store.Tx, streamID string) error {
	var keys [][]byte
	for _, b := range []string{bucketQueue, bucketJTIs} {
		keys = keys[:0]
		err := tx.Scan(b, []byte(streamID), nil, func(k, _ []byte) (bool, error) {
			keys = append(keys, append([]byte(nil), k...))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(b, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// Queued returns how many SETs wait for a stream's receiver.
func (t *Transmitter) Queued(ctx context.Context, id string) (int, error) {
	if err := CheckStreamID(id); err != nil {
		return 0, err
	}
	n := 0
	err := t.st.View(func(tx store.Tx) error {
		if _, err := getStream(tx, id); err != nil {
			return err
		}
		return tx.Scan(bucketQueue, []byte(id), nil, func(_, _ []byte) (bool, error) { n++; return true, nil })
	})
	return n, err
}

// ParseVerifyRequest decodes a verification request body.
func ParseVerifyRequest(body []byte) (streamID, state string, err error) {
	var r struct {
		StreamID string `json:"stream_id"`
		State    string `json:"state"`
	}
	if err := decodeObject(body, &r); err != nil {
		return "", "", err
	}
	return r.StreamID, r.State, nil
}

// ErrTooFrequent refuses a verification request that comes sooner than the stream's
// min_verification_interval after the previous one (HTTP 429).
var ErrTooFrequent = errors.New("ssf: verification requested more often than min_verification_interval allows")

// admitVerification applies Config.MinVerificationInterval.
func (t *Transmitter) admitVerification(id string) error {
	if t.cfg.MinVerificationInterval <= 0 {
		return nil
	}
	now := t.cfg.Now()
	t.verifyMu.Lock()
	defer t.verifyMu.Unlock()
	if last, ok := t.lastVerify[id]; ok && now.Sub(last) < t.cfg.MinVerificationInterval {
		return ErrTooFrequent
	}
	for k, v := range t.lastVerify { // keep the map small: forget what no longer limits anything
		if now.Sub(v) >= t.cfg.MinVerificationInterval {
			delete(t.lastVerify, k)
		}
	}
	t.lastVerify[id] = now
	return nil
}

// Verify queues a verification event on a stream, echoing state (SSF 1.0 section 8.1.4.2). A
// disabled stream holds no events, so the request is refused.
func (t *Transmitter) Verify(ctx context.Context, id, state string) error {
	if err := CheckStreamID(id); err != nil {
		return err
	}
	if len(state) > maxState {
		return fail.Invalidf("state", "state is longer than %d bytes", maxState)
	}
	if _, err := t.Stream(ctx, id); err != nil {
		return err
	}
	if err := t.admitVerification(id); err != nil {
		return err
	}
	err := t.st.Update(func(tx store.Tx) error {
		s, err := getStream(tx, id)
		if err != nil {
			return err
		}
		if s.Status == StatusDisabled {
			return fail.Preconditionf("stream %q is disabled; enable it before asking for verification", id)
		}
		event := map[string]any{}
		if state != "" {
			event["state"] = state
		}
		claims := Claims{
			Iss: t.cfg.Issuer, Jti: verificationJTI(id, s.Next), Iat: t.cfg.Now().Unix(), Aud: s.Config.Aud,
			SubID: opaque(id), Events: map[string]map[string]any{EventVerification: event},
		}
		if err := t.enqueue(tx, s, claims); err != nil {
			return err
		}
		return putStream(tx, s)
	})
	if err != nil {
		return err
	}
	t.wake()
	return nil
}

// Position returns the feed epoch and sequence the transmitter has handled up to; the epoch is
// empty until it first reached the feed. Readiness probes and tests watch it.
func (t *Transmitter) Position() (epoch string, after uint64, err error) {
	var c cursor
	err = t.st.View(func(tx store.Tx) (err error) { c, err = getCursor(tx); return err })
	return c.Epoch, c.After, err
}
