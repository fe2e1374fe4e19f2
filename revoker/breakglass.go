package revoker

import (
	"context"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// RevokeAllRequest asks for the break-glass revocation, for an issuer compromise: every credential
// issued before a feed sequence is revoked, whatever it is for.
type RevokeAllRequest struct {
	// Below revokes every credential whose tsq is below it. Zero means the head plus one: every
	// credential issued so far (the watermark event itself lands there, and the issuer stamps
	// credentials it decides after seeing it with a tsq at or above it).
	Below  uint64
	Reason string
	Actor  string
	// RequestID, if set, makes the request idempotent: a retry returns the original sequence.
	RequestID string
}

// RevokeAllOutcome is where a break-glass revocation landed.
type RevokeAllOutcome struct {
	// Sequence is the feed sequence of the watermark event (an earlier one if AlreadyApplied).
	Sequence uint64
	// Below is the global watermark in force: credentials with a tsq below it are denied.
	Below uint64
	// AlreadyApplied is true when nothing was appended: the request id was seen before, or a
	// watermark at least as high was in force already.
	AlreadyApplied bool
}

// Check validates the request's shape: a reason, and bounded actor and request id.
func (r RevokeAllRequest) Check() error {
	return checkAudit(r.Reason, r.Actor, r.RequestID)
}

// RevokeAll appends a global watermark: every credential with a tsq below r.Below (by default,
// every credential issued so far) is denied from then on. The watermark only rises: asking for one
// at or below the one in force appends nothing and returns the earlier event's sequence. Asking
// for one above the head plus one is refused, since no credential can have been issued there.
func (l *Log) RevokeAll(ctx context.Context, r RevokeAllRequest) (RevokeAllOutcome, error) {
	if err := r.Check(); err != nil {
		return RevokeAllOutcome{}, err
	}
	var below uint64
	build := func(s *feed.State) (*treatyv1.Event, error) {
		next := s.Sequence() + 1
		below = r.Below
		if below == 0 {
			below = next
		}
		if below > next {
			return nil, fail.Invalidf("below_sequence", "below_sequence %d is past the head plus one (%d): no credential can have been issued there; omit it to revoke every credential issued so far", below, next)
		}
		if below <= s.GlobalWatermark() {
			return nil, alreadyInForce{s.GlobalWatermarkSequence()}
		}
		return &treatyv1.Event{Actor: r.Actor, Reason: r.Reason, Change: &treatyv1.Event_GlobalWatermark{
			GlobalWatermark: &treatyv1.GlobalWatermark{BelowSequence: below}}}, nil
	}
	res, err := l.append(ctx, []draft{{requestID: r.RequestID, build: build}})
	if err != nil {
		return RevokeAllOutcome{}, err
	}
	out := RevokeAllOutcome{Sequence: res[0].seq, Below: below, AlreadyApplied: res[0].existing}
	if !out.AlreadyApplied {
		return out, nil
	}
	out.Below = l.State().GlobalWatermark()
	if r.RequestID == "" {
		return out, nil
	}
	// A retry: answer with the watermark the original request set, if it was this kind of request.
	evs, err := l.Read(out.Sequence-1, 1)
	if err != nil || len(evs) != 1 || evs[0].GetRequestId() != r.RequestID {
		return out, nil // compacted, or in force through another event
	}
	gw := evs[0].GetGlobalWatermark()
	if gw == nil {
		_, target := feed.Describe(evs[0])
		return RevokeAllOutcome{}, fail.Preconditionf("request_id %q was already used for %s; use a new request id", r.RequestID, target)
	}
	out.Below = gw.GetBelowSequence()
	return out, nil
}
