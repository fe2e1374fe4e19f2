package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// The partner lifecycle (DESIGN.md): proposed → approved → active ⇄ suspended → offboarding →
// terminated. Each step is an explicit call with a precondition; a refused step is a
// FailedPrecondition error that says what is missing and which command supplies it.

const (
	partnerProposed    = treatyv1.PartnerState_PARTNER_STATE_PROPOSED
	partnerApproved    = treatyv1.PartnerState_PARTNER_STATE_APPROVED
	partnerActive      = treatyv1.PartnerState_PARTNER_STATE_ACTIVE
	partnerSuspended   = treatyv1.PartnerState_PARTNER_STATE_SUSPENDED
	partnerOffboarding = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING
)

// partnerStep is one lifecycle step of a partner.
type partnerStep struct {
	action string // audit action, "partner.approve"
	verb   string // "approve"
	from   treatyv1.PartnerState
	to     treatyv1.PartnerState
}

var (
	approvePartner    = partnerStep{action: "partner.approve", verb: "approve", from: partnerProposed, to: partnerApproved}
	activatePartner   = partnerStep{action: "partner.activate", verb: "activate", from: partnerApproved, to: partnerActive}
	reactivatePartner = partnerStep{action: "partner.reactivate", verb: "reactivate", from: partnerSuspended, to: partnerActive}
)

// partnerRefusal explains why partner id in state st cannot take step s, and what to do instead.
func partnerRefusal(id string, st treatyv1.PartnerState, s partnerStep) error {
	name := feed.StateName(st)
	switch {
	case st == s.to && s.verb != "reactivate":
		return fail.Preconditionf("partner %q is already %s", id, name)
	case st == partnerProposed:
		return fail.Preconditionf("partner %q is proposed; approve it first (treaty partner approve %s)", id, id)
	case st == partnerApproved:
		return fail.Preconditionf("partner %q is approved, not active yet; activate it (treaty partner activate %s)", id, id)
	case st == partnerSuspended && s.verb == "activate":
		return fail.Preconditionf("partner %q is suspended; lift the suspension with treaty partner reactivate %s --reason ...", id, id)
	case st == partnerActive && s.verb == "reactivate":
		return fail.Preconditionf("partner %q is active, not suspended; there is nothing to reactivate", id)
	case st == partnerOffboarding || st == partnerTerminated:
		return fail.Preconditionf("partner %q is %s; its access ended for good (a renewed contract is a new partner)", id, name)
	}
	return fail.Preconditionf("partner %q is %s; only a %s partner can be %sd", id, name, feed.StateName(s.from), s.verb)
}

// ApprovePartner approves a proposed partner, recording who approved it (approvedBy, or the actor
// when it is empty) and when. It returns the partner and the feed sequence of its PartnerChanged
// event.
func (r *Registry) ApprovePartner(ctx context.Context, id, approvedBy, actor string) (Partner, uint64, error) {
	approver, err := checkApproval(id, approvedBy, actor)
	if err != nil {
		return Partner{}, 0, err
	}
	return r.stepPartner(ctx, id, "approved by "+approver, actor, approvePartner, func(rec *partnerRecord, now time.Time) ([]*treatyv1.Event, error) {
		rec.ApprovedBy, rec.Approved = approver, now
		return []*treatyv1.Event{rec.changed(actor, "partner approved by "+approver)}, nil
	})
}

// ActivatePartner activates an approved partner: from then on its integrations can be activated
// and its workloads can obtain credentials. A partner whose contract has ended cannot be
// activated.
func (r *Registry) ActivatePartner(ctx context.Context, id, actor string) (Partner, uint64, error) {
	if err := checkStep(id, "", actor, false); err != nil {
		return Partner{}, 0, err
	}
	return r.stepPartner(ctx, id, "partner activated", actor, activatePartner, func(rec *partnerRecord, now time.Time) ([]*treatyv1.Event, error) {
		if err := contractRunning(rec, now); err != nil {
			return nil, err
		}
		return []*treatyv1.Event{rec.changed(actor, "partner activated")}, nil
	})
}

// ReactivatePartner lifts a partner's suspension: it is ACTIVE again, and the block its suspension
// placed is restored through the feed, so credentials issued before the restore stay invalid (the
// restore's sequence becomes the partner's watermark). It returns the partner and the feed
// sequence of the restore.
func (r *Registry) ReactivatePartner(ctx context.Context, id, reason, actor string) (Partner, uint64, error) {
	if err := checkStep(id, reason, actor, true); err != nil {
		return Partner{}, 0, err
	}
	return r.stepPartner(ctx, id, reason, actor, reactivatePartner, func(rec *partnerRecord, now time.Time) ([]*treatyv1.Event, error) {
		if err := contractRunning(rec, now); err != nil {
			return nil, err
		}
		return []*treatyv1.Event{
			rec.changed(actor, reason),
			restoreEvent(treatyv1.TargetKind_TARGET_KIND_PARTNER, id, actor, reason),
		}, nil
	})
}

// stepPartner moves partner id through step s in one transaction: it checks the precondition,
// applies the step (and whatever edit does to the record, which returns the events to publish),
// and writes the audit record.
func (r *Registry) stepPartner(ctx context.Context, id, reason, actor string, s partnerStep,
	edit func(rec *partnerRecord, now time.Time) ([]*treatyv1.Event, error)) (Partner, uint64, error) {
	now := r.now()
	var rec partnerRecord
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		if err := partners.load(tx, id, &rec); err != nil {
			return change{}, err
		}
		if rec.State != s.from {
			return change{}, partnerRefusal(id, rec.State, s)
		}
		before := rec.summary()
		rec.State, rec.Updated, rec.Revision = s.to, now, rec.Revision+1
		events, err := edit(&rec, now)
		if err != nil {
			return change{}, err
		}
		if err := partners.put(tx, rec.ID, "", &rec); err != nil {
			return change{}, err
		}
		return change{
			audit: AuditRecord{Time: now, Actor: actor, Action: s.action, Target: "partner/" + id, Reason: reason,
				Before: before, After: rec.summary()},
			events: events,
		}, nil
	})
	if !committed(err) {
		return Partner{}, 0, err
	}
	return rec.partner(), seq, err
}

// contractRunning refuses to give access to a partner whose contract has ended.
func contractRunning(rec *partnerRecord, now time.Time) error {
	if !now.Before(rec.ContractEnd) {
		return fail.Preconditionf("partner %q's contract ended at %s; a renewed contract is a new onboarding",
			rec.ID, rec.ContractEnd.Format(time.RFC3339))
	}
	return nil
}

// checkApproval validates an approval and returns the approver: approvedBy, or else the actor.
// Someone must be named: an approval records who approved.
func checkApproval(id, approvedBy, actor string) (string, error) {
	if err := checkStep(id, "", actor, false); err != nil {
		return "", err
	}
	approver := approvedBy
	if approver == "" {
		approver = actor
	}
	if approver == "" {
		return "", fail.Invalidf("approved_by", "approved_by is required (or an actor): an approval records who approved")
	}
	if err := CheckName("approved_by", approver); err != nil {
		return "", err
	}
	return approver, nil
}

// checkStep validates a lifecycle step's id, actor and, if withReason, its required reason.
func checkStep(id, reason, actor string, withReason bool) error {
	if err := fail.CheckID("id", id); err != nil {
		return err
	}
	if withReason {
		if err := CheckReason("reason", reason); err != nil {
			return err
		}
	}
	return CheckActor("actor", actor)
}

// restoreEvent lifts a (non-permanent) block on a target: the feed event a reactivation publishes
// after the entity's change. A permanent block is never lifted by it (the feed ignores such a
// restore).
func restoreEvent(kind treatyv1.TargetKind, id, actor, reason string) *treatyv1.Event {
	return &treatyv1.Event{Actor: actor, Reason: reason, Change: &treatyv1.Event_Restored{Restored: &treatyv1.Restored{
		TargetKind: kind, TargetId: id, Lifecycle: true, // never lifts an operator's block
	}}}
}

// blockEvent places a non-permanent block on a target: what a suspension publishes after the
// entity's change.
func blockEvent(kind treatyv1.TargetKind, id, actor, reason string) *treatyv1.Event {
	return &treatyv1.Event{Actor: actor, Reason: reason, Change: &treatyv1.Event_Blocked{Blocked: &treatyv1.Blocked{
		TargetKind: kind, TargetId: id, Lifecycle: true,
	}}}
}

// checkEtag compares the etag a caller read with the record's revision: missing is a malformed
// request, stale means someone changed the entity since (Aborted: read it again and retry).
func checkEtag(field, kind, id, got string, revision uint64) error {
	if got == "" {
		return fail.Invalidf(field, "%s is required: pass the etag of the %s as you read it, so that a concurrent change is not overwritten", field, kind)
	}
	if got != etag(revision) {
		return fail.Abortedf("%s %q changed since it was read (etag %s, now %s); read it again and retry", kind, id, got, etag(revision))
	}
	return nil
}

// approvalSummary is the audit note of a one-step create.
func approvalSummary(approvedBy string) string {
	return fmt.Sprintf("created, approved by %s and activated in one step", approvedBy)
}
