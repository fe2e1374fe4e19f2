package revoker

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// Request is a kill-switch request: a revocation, block or restore.
type Request struct {
	Kind   treatyv1.TargetKind
	Target string
	Reason string
	Actor  string
	// RequestID, if set, makes the request idempotent: a retry returns the original sequence.
	RequestID string
}

// Outcome is where a request landed in the feed.
type Outcome struct {
	Sequence uint64
	// AlreadyApplied is true when nothing was appended: the request id was seen before, or the
	// target was already revoked or blocked (Sequence is then that earlier event's).
	AlreadyApplied bool
}

const (
	maxReason    = 1024
	maxActor     = 256
	maxRequestID = 128
)

// Check validates the request's shape: a known target kind, a well-formed target id, a reason,
// and bounded actor and request id.
func (r Request) Check() error {
	if err := feed.CheckTarget("target_id", r.Kind, r.Target); err != nil {
		return err
	}
	return checkAudit(r.Reason, r.Actor, r.RequestID)
}

// checkAudit validates what every kill-switch request records: a reason, and bounded actor and
// request id.
func checkAudit(reason, actor, requestID string) error {
	switch {
	case reason == "":
		return fail.Invalidf("reason", "reason is required: say why, for the audit trail")
	case len(reason) > maxReason:
		return fail.Invalidf("reason", "reason is longer than %d bytes", maxReason)
	case len(actor) > maxActor:
		return fail.Invalidf("actor", "actor is longer than %d bytes", maxActor)
	case len(requestID) > maxRequestID:
		return fail.Invalidf("request_id", "request_id is longer than %d bytes", maxRequestID)
	}
	return nil
}

func (r Request) event() *treatyv1.Event {
	return &treatyv1.Event{Actor: r.Actor, Reason: r.Reason}
}

// Revoke revokes a credential or signing key, or blocks a workload, integration or partner.
// Revoking something already revoked or blocked appends nothing and returns the earlier sequence.
func (l *Log) Revoke(ctx context.Context, r Request) (Outcome, error) {
	if err := r.Check(); err != nil {
		return Outcome{}, err
	}
	var build func(*feed.State) (*treatyv1.Event, error)
	switch r.Kind {
	case treatyv1.TargetKind_TARGET_KIND_CREDENTIAL:
		expires, partnerID := l.credentialExpiry(ctx, r.Target)
		build = func(s *feed.State) (*treatyv1.Event, error) {
			if old, ok := s.RevokedCredential(r.Target); ok && !expires.After(old.Expires) {
				return nil, alreadyInForce{old.Sequence}
			}
			ev := r.event()
			ev.Change = &treatyv1.Event_CredentialRevoked{CredentialRevoked: &treatyv1.CredentialRevoked{
				Jti: r.Target, ExpireTime: timestamppb.New(expires), PartnerId: partnerID,
			}}
			return ev, nil
		}
	case treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY:
		build = func(s *feed.State) (*treatyv1.Event, error) {
			k, ok := s.SigningKey(r.Target)
			if !ok {
				return nil, fail.NotFoundf("signing key %q was never published into the feed; list keys with the issuer", r.Target)
			}
			if k.Revoked() {
				return nil, alreadyInForce{k.RevokedSequence}
			}
			ev := r.event()
			ev.Change = &treatyv1.Event_SigningKeyRevoked{SigningKeyRevoked: &treatyv1.SigningKeyRevoked{Kid: r.Target}}
			return ev, nil
		}
	default:
		build = func(s *feed.State) (*treatyv1.Event, error) {
			ctl, ok := s.Control(r.Kind, r.Target)
			if !ok {
				return nil, notKnown(r.Kind, r.Target)
			}
			if ctl.Block != nil && (ctl.Block.Operator || ctl.Block.Permanent) {
				return nil, alreadyInForce{ctl.Block.Sequence}
			}
			// A block the registry's lifecycle holds (a suspension) gains the operator's hold, so
			// that a reactivation cannot lift it.
			ev := r.event()
			ev.Change = &treatyv1.Event_Blocked{Blocked: &treatyv1.Blocked{TargetKind: r.Kind, TargetId: r.Target}}
			return ev, nil
		}
	}
	return l.one(ctx, r, build)
}

// Restore lifts a block on a workload, integration or partner. Credentials issued before the
// restore stay invalid: the restore's sequence becomes the target's watermark.
func (l *Log) Restore(ctx context.Context, r Request) (Outcome, error) {
	if err := r.Check(); err != nil {
		return Outcome{}, err
	}
	if r.Kind == treatyv1.TargetKind_TARGET_KIND_CREDENTIAL || r.Kind == treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY {
		return Outcome{}, fail.Invalidf("target_kind", "a revoked %s cannot be restored; issue a new one", feed.KindName(r.Kind))
	}
	return l.one(ctx, r, func(s *feed.State) (*treatyv1.Event, error) {
		ctl, ok := s.Control(r.Kind, r.Target)
		if !ok {
			return nil, notKnown(r.Kind, r.Target)
		}
		switch {
		case ctl.Block == nil:
			return nil, fail.Preconditionf("%s %q is not blocked; there is nothing to restore", feed.KindName(r.Kind), r.Target)
		case ctl.Block.Permanent:
			return nil, fail.Preconditionf("%s %q was offboarded; offboarding is permanent and cannot be restored", feed.KindName(r.Kind), r.Target)
		}
		if why := inactive(s, r.Kind, r.Target); why != "" {
			return nil, fail.Preconditionf("%s; lifting the block would not restore access", why)
		}
		ev := r.event()
		ev.Change = &treatyv1.Event_Restored{Restored: &treatyv1.Restored{TargetKind: r.Kind, TargetId: r.Target}}
		return ev, nil
	})
}

// inactive explains why the registry's own state for an entity denies access, or returns "".
func inactive(s *feed.State, kind treatyv1.TargetKind, id string) string {
	var state fmt.Stringer
	switch kind {
	case treatyv1.TargetKind_TARGET_KIND_PARTNER:
		if p, _ := s.Partner(id); p.State != treatyv1.PartnerState_PARTNER_STATE_ACTIVE {
			state = p.State
		}
	case treatyv1.TargetKind_TARGET_KIND_INTEGRATION:
		if i, _ := s.Integration(id); i.State != treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE {
			state = i.State
		}
	case treatyv1.TargetKind_TARGET_KIND_WORKLOAD:
		if w, _ := s.Workload(id); w.State != treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE {
			state = w.State
		}
	}
	if state == nil {
		return ""
	}
	return fmt.Sprintf("%s %q is %s in the registry", feed.KindName(kind), id, feed.StateName(state))
}

func (l *Log) one(ctx context.Context, r Request, build func(*feed.State) (*treatyv1.Event, error)) (Outcome, error) {
	res, err := l.append(ctx, []draft{{requestID: r.RequestID, build: build}})
	if err != nil {
		return Outcome{}, err
	}
	if res[0].existing && r.RequestID != "" {
		if err := l.checkReplay(res[0].seq, r); err != nil {
			return Outcome{}, err
		}
	}
	return Outcome{Sequence: res[0].seq, AlreadyApplied: res[0].existing}, nil
}

// checkReplay makes sure a reused request id names the same target as the request it was first
// used for, so a client bug cannot silently turn one revocation into another's answer.
func (l *Log) checkReplay(seq uint64, r Request) error {
	evs, err := l.Read(seq-1, 1)
	if fail.KindOf(err) == fail.OutOfRange {
		return nil // compacted: its request id went with it, so the id did not name it
	}
	if err != nil {
		return err
	}
	if len(evs) != 1 || evs[0].GetRequestId() != r.RequestID {
		return nil // the target was already in force: the sequence is that of another event
	}
	_, target := feed.Describe(evs[0])
	if target != feed.KindName(r.Kind)+"/"+r.Target {
		return fail.Preconditionf("request_id %q was already used for %s; use a new request id", r.RequestID, target)
	}
	return nil
}

// credentialExpiry returns how long a revoked credential must stay denylisted: its expiry if the
// inventory knows it, otherwise the global maximum lifetime from now. An inventory that cannot be
// reached never blocks a revocation; the entry is simply kept for the longer time.
func (l *Log) credentialExpiry(ctx context.Context, jti string) (time.Time, string) {
	fallback := l.cfg.Now().Add(l.cfg.MaxCredentialTTL)
	if l.cfg.Credentials == nil {
		return fallback, ""
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	exp, partnerID, found, err := l.cfg.Credentials.Credential(cctx, jti)
	if err != nil {
		l.cfg.Logger.Warn("revoker: credential inventory unreachable; keeping the revocation for the maximum credential lifetime", "err", err)
		return fallback, ""
	}
	if !found {
		return fallback, ""
	}
	return exp, partnerID
}

// Publish appends enforcement changes from a service's outbox, in order, in one durable
// transaction. Entries whose request id was appended before return their original sequence.
func (l *Log) Publish(ctx context.Context, entries []*treatyv1.PublishEntry) ([]uint64, error) {
	drafts := make([]draft, len(entries))
	for i, e := range entries {
		if e.GetRequestId() == "" || len(e.GetRequestId()) > maxRequestID {
			return nil, fail.Invalidf("entries.request_id", "entry %d: request_id is required (at most %d bytes)", i, maxRequestID)
		}
		if err := checkPublishable(e.GetEvent()); err != nil {
			return nil, err
		}
		ev := &treatyv1.Event{Actor: e.GetEvent().GetActor(), Reason: e.GetEvent().GetReason(), Change: e.GetEvent().GetChange()}
		drafts[i] = draft{requestID: e.GetRequestId(), build: func(s *feed.State) (*treatyv1.Event, error) {
			if err := checkKeyUnchanged(s, ev); err != nil {
				return nil, err
			}
			return ev, nil
		}}
	}
	res, err := l.append(ctx, drafts)
	if err != nil {
		return nil, err
	}
	seqs := make([]uint64, len(res))
	for i, r := range res {
		seqs[i] = r.seq
	}
	return seqs, nil
}

// checkKeyUnchanged refuses to publish different key material under a kid the feed knows:
// whoever could do that could swap the issuer's verification key for their own. Republishing the
// same key (an issuer restarting before it saw its publication confirmed) is fine.
func checkKeyUnchanged(s *feed.State, ev *treatyv1.Event) error {
	k := ev.GetSigningKeyPublished()
	if k == nil {
		return nil
	}
	if old, ok := s.SigningKey(k.GetKid()); ok && (!bytes.Equal(old.JWK, k.GetPublicJwk()) || old.Issuer != k.GetIssuer() || old.Algorithm != k.GetAlgorithm()) {
		return fail.Preconditionf("signing key %q is already published with other key material; a key id is never reused", k.GetKid())
	}
	return nil
}

// checkPublishable admits the changes a registry or issuer publishes. Revocations go through
// Revoke, which checks them against the state and the inventory.
func checkPublishable(ev *treatyv1.Event) error {
	switch ev.GetChange().(type) {
	case *treatyv1.Event_PartnerChanged, *treatyv1.Event_IntegrationChanged, *treatyv1.Event_WorkloadChanged,
		*treatyv1.Event_SigningKeyPublished, *treatyv1.Event_Blocked, *treatyv1.Event_PolicyChanged,
		// The registry lifts the block its own suspension placed when it reactivates a partner or
		// integration, in outbox order after the entity's change. A restore of a permanent block
		// changes nothing (the feed never lifts one), so it is accepted rather than refused: a
		// refused entry would hold back every later change of the publisher's outbox.
		*treatyv1.Event_Restored:
		if r := ev.GetRestored(); r != nil && !r.GetLifecycle() {
			// Only an operator lifts an operator's block, through Restore.
			return fail.Invalidf("entries.event", "a published restore must be a lifecycle restore (a reactivation); use Restore")
		}
		return feed.CheckChange(ev)
	case nil:
		return fail.Invalidf("entries.event", "an entry carries no change")
	}
	return fail.Invalidf("entries.event", "revocations cannot be published; use Revoke")
}

func notKnown(kind treatyv1.TargetKind, id string) error {
	return fail.NotFoundf("%s %q is not known to the feed; check the id with the registry", feed.KindName(kind), id)
}
