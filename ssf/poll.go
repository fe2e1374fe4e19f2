package ssf

import (
	"context"
	"encoding/json"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// SETError is a receiver's report that a SET it received was not valid (RFC 8936 section 2.4.4).
type SETError struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// PollRequest is a poll (RFC 8936 section 2.4).
type PollRequest struct {
	// Ack lists the jtis of SETs the receiver has processed.
	Ack []string `json:"ack"`
	// SetErrs lists SETs the receiver received and rejected.
	SetErrs map[string]SETError `json:"setErrs"`
	// MaxEvents bounds the SETs returned; nil means DefaultMaxPollEvents, 0 an acknowledge-only
	// request.
	MaxEvents *int `json:"maxEvents"`
	// ReturnImmediately answers at once, even with no SET to return.
	ReturnImmediately bool `json:"returnImmediately"`
}

// PollResponse is the answer to a poll.
type PollResponse struct {
	// Sets maps jti to SET; never nil, so it is an empty object when there is nothing to send.
	Sets map[string]string `json:"sets"`
	// MoreAvailable tells there are SETs beyond those returned.
	MoreAvailable bool `json:"moreAvailable"`
}

const (
	maxAcks = 10000
	maxJTI  = 256
)

// ParsePollRequest decodes a poll request body; an empty body is a poll with defaults.
func ParsePollRequest(body []byte) (PollRequest, error) {
	var r PollRequest
	if len(body) == 0 {
		return r, nil
	}
	if err := decodeObject(body, &r); err != nil {
		return PollRequest{}, err
	}
	switch {
	case r.MaxEvents != nil && *r.MaxEvents < 0:
		return PollRequest{}, fail.Invalidf("maxEvents", "maxEvents must not be negative")
	case r.MaxEvents != nil && *r.MaxEvents > MaxPollEvents:
		return PollRequest{}, fail.Invalidf("maxEvents", "maxEvents is at most %d", MaxPollEvents)
	case len(r.Ack)+len(r.SetErrs) > maxAcks:
		return PollRequest{}, fail.Invalidf("ack", "a poll acknowledges at most %d SETs", maxAcks)
	}
	for _, jti := range r.Ack {
		if len(jti) > maxJTI {
			return PollRequest{}, fail.Invalidf("ack", "a jti is longer than %d bytes", maxJTI)
		}
	}
	for jti, e := range r.SetErrs {
		if len(jti) > maxJTI || len(e.Err) > maxReason || len(e.Description) > maxReason {
			return PollRequest{}, fail.Invalidf("setErrs", "a setErrs entry is longer than allowed")
		}
	}
	return r, nil
}

// Poll acknowledges the SETs a receiver has processed and returns the oldest of the rest, waiting
// up to Config.PollWait for one unless the request returns immediately. Unacknowledged SETs are
// returned again by the next poll. A stream that is not enabled returns nothing.
func (t *Transmitter) Poll(ctx context.Context, id string, r PollRequest) (PollResponse, error) {
	if err := CheckStreamID(id); err != nil {
		return PollResponse{}, err
	}
	if err := t.ack(id, r); err != nil {
		return PollResponse{}, err
	}
	limit := DefaultMaxPollEvents
	if r.MaxEvents != nil {
		limit = *r.MaxEvents
	}
	resp := PollResponse{Sets: map[string]string{}}
	if limit == 0 {
		return resp, nil
	}
	deadline := time.NewTimer(t.cfg.PollWait)
	defer deadline.Stop()
	for {
		changed := t.changed()
		err := t.st.View(func(tx store.Tx) error {
			s, err := getStream(tx, id)
			if err != nil {
				return err
			}
			if s.Config.Delivery.Method != MethodPoll {
				return fail.Preconditionf("stream %q is delivered by push, not poll", id)
			}
			if s.Status != StatusEnabled {
				return nil
			}
			return tx.Scan(bucketQueue, []byte(id), nil, func(_, v []byte) (bool, error) {
				if len(resp.Sets) == limit {
					resp.MoreAvailable = true
					return false, nil
				}
				var q queued
				if err := json.Unmarshal(v, &q); err != nil {
					return false, err
				}
				resp.Sets[q.JTI] = q.SET
				return true, nil
			})
		})
		if err != nil || len(resp.Sets) > 0 || r.ReturnImmediately {
			return resp, err
		}
		select {
		case <-changed:
		case <-deadline.C:
			return resp, nil
		case <-ctx.Done():
			return resp, nil
		}
	}
}

// ack drops the acknowledged and rejected SETs from the stream's queue. Unknown jtis (already
// acknowledged, or never sent) are ignored: acknowledgements may be repeated.
func (t *Transmitter) ack(id string, r PollRequest) error {
	if len(r.Ack) == 0 && len(r.SetErrs) == 0 {
		return nil
	}
	return t.st.Update(func(tx store.Tx) error {
		s, err := getStream(tx, id)
		if err != nil {
			return err
		}
		if s.Config.Delivery.Method != MethodPoll {
			return fail.Preconditionf("stream %q is delivered by push, not poll", id)
		}
		drop := func(jti string) error {
			raw := tx.Get(bucketJTIs, jtiKey(id, jti))
			if raw == nil {
				return nil
			}
			return remove(tx, id, store.KeyUint64(raw), jti)
		}
		for _, jti := range r.Ack {
			if err := drop(jti); err != nil {
				return err
			}
		}
		for jti, e := range r.SetErrs {
			t.log.Warn("ssf: receiver rejected a SET", "stream_id", id, "jti", jti, "err", e.Err, "description", e.Description)
			if err := drop(jti); err != nil {
				return err
			}
		}
		return nil
	})
}
