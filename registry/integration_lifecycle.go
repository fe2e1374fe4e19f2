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

// The integration lifecycle (DESIGN.md): requested → approved → active ⇄ suspended → retired.

const (
	integrationRequested = treatyv1.IntegrationState_INTEGRATION_STATE_REQUESTED
	integrationApproved  = treatyv1.IntegrationState_INTEGRATION_STATE_APPROVED
	integrationActive    = treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE
	integrationSuspended = treatyv1.IntegrationState_INTEGRATION_STATE_SUSPENDED
)

// integrationStep is one lifecycle step of an integration; from empty means any state but
// retired (a step that changes no state, such as a recertification).
type integrationStep struct {
	action string
	verb   string
	from   treatyv1.IntegrationState
	to     treatyv1.IntegrationState
}

var (
	approveIntegration    = integrationStep{action: "integration.approve", verb: "approve", from: integrationRequested, to: integrationApproved}
	activateIntegration   = integrationStep{action: "integration.activate", verb: "activate", from: integrationApproved, to: integrationActive}
	suspendIntegration    = integrationStep{action: "integration.suspend", verb: "suspend", from: integrationActive, to: integrationSuspended}
	reactivateIntegration = integrationStep{action: "integration.reactivate", verb: "reactivate", from: integrationSuspended, to: integrationActive}
	recertifyIntegration  = integrationStep{action: "integration.recertify", verb: "recertify"}
)

// integrationRefusal explains why integration id in state st cannot take step s.
func integrationRefusal(id string, st treatyv1.IntegrationState, s integrationStep) error {
	name := feed.StateName(st)
	switch {
	case st == integrationRetired:
		return fail.Preconditionf("integration %q is retired; retirement is final", id)
	case st == s.to && s.verb != "reactivate":
		return fail.Preconditionf("integration %q is already %s", id, name)
	case st == integrationRequested:
		return fail.Preconditionf("integration %q is requested; approve it first (treaty integration approve %s)", id, id)
	case st == integrationApproved:
		return fail.Preconditionf("integration %q is approved, not active yet; activate it (treaty integration activate %s)", id, id)
	case st == integrationSuspended && s.verb == "activate":
		return fail.Preconditionf("integration %q is suspended; lift the suspension with treaty integration reactivate %s --reason ...", id, id)
	case st == integrationActive && s.verb == "reactivate":
		return fail.Preconditionf("integration %q is active, not suspended; there is nothing to reactivate", id)
	}
	return fail.Preconditionf("integration %q is %s; only a %s integration can be %sd", id, name, feed.StateName(s.from), s.verb)
}

// ApproveIntegration approves a requested integration, recording who approved it (approvedBy, or
// the actor), when, and under which ticket (optional). Its partner must not be offboarding or
// terminated.
func (r *Registry) ApproveIntegration(ctx context.Context, id, approvedBy, ticket, actor string) (Integration, uint64, error) {
	approver, err := checkApproval(id, approvedBy, actor)
	if err != nil {
		return Integration{}, 0, err
	}
	if err := checkOptionalText("approval_ticket", ticket); err != nil {
		return Integration{}, 0, err
	}
	return r.stepIntegration(ctx, id, "approved by "+approver, actor, approveIntegration, func(tx store.Tx, rec *integrationRecord, now time.Time) ([]*treatyv1.Event, error) {
		if err := partnerOpen(tx, rec.PartnerID, "integration", id); err != nil {
			return nil, err
		}
		rec.ApprovedBy, rec.Approved = approver, now
		if ticket != "" {
			rec.ApprovalTicket = ticket
		}
		return []*treatyv1.Event{rec.changed(actor, "integration approved by "+approver)}, nil
	})
}

// ActivateIntegration activates an approved integration of an active partner.
func (r *Registry) ActivateIntegration(ctx context.Context, id, actor string) (Integration, uint64, error) {
	if err := checkStep(id, "", actor, false); err != nil {
		return Integration{}, 0, err
	}
	return r.stepIntegration(ctx, id, "integration activated", actor, activateIntegration, func(tx store.Tx, rec *integrationRecord, _ time.Time) ([]*treatyv1.Event, error) {
		if err := partnerActiveFor(tx, rec.PartnerID, "activate integration "+id); err != nil {
			return nil, err
		}
		return []*treatyv1.Event{rec.changed(actor, "integration activated")}, nil
	})
}

// SuspendIntegration suspends an active integration and blocks every credential under it. It
// returns the integration and the feed sequence of the block.
func (r *Registry) SuspendIntegration(ctx context.Context, id, reason, actor string) (Integration, uint64, error) {
	if err := checkStep(id, reason, actor, true); err != nil {
		return Integration{}, 0, err
	}
	return r.stepIntegration(ctx, id, reason, actor, suspendIntegration, func(_ store.Tx, rec *integrationRecord, _ time.Time) ([]*treatyv1.Event, error) {
		return []*treatyv1.Event{
			rec.changed(actor, reason),
			blockEvent(treatyv1.TargetKind_TARGET_KIND_INTEGRATION, id, actor, reason),
		}, nil
	})
}

// ReactivateIntegration lifts an integration's suspension: it is ACTIVE again and its block is
// restored, so credentials issued before the restore stay invalid. Its partner must not be
// offboarding or terminated. It returns the integration and the feed sequence of the restore.
func (r *Registry) ReactivateIntegration(ctx context.Context, id, reason, actor string) (Integration, uint64, error) {
	if err := checkStep(id, reason, actor, true); err != nil {
		return Integration{}, 0, err
	}
	return r.stepIntegration(ctx, id, reason, actor, reactivateIntegration, func(tx store.Tx, rec *integrationRecord, _ time.Time) ([]*treatyv1.Event, error) {
		if err := partnerOpen(tx, rec.PartnerID, "integration", id); err != nil {
			return nil, err
		}
		return []*treatyv1.Event{
			rec.changed(actor, reason),
			restoreEvent(treatyv1.TargetKind_TARGET_KIND_INTEGRATION, id, actor, reason),
		}, nil
	})
}

// RecertifyIntegration records that the integration's access was reviewed and is still needed
// (its last recertification time), with an audit record; reason is an optional note. It publishes
// nothing: enforcement does not depend on it.
func (r *Registry) RecertifyIntegration(ctx context.Context, id, reason, actor string) (Integration, error) {
	if err := checkStep(id, "", actor, false); err != nil {
		return Integration{}, err
	}
	reason, err := optionalReason(reason, "integration recertified")
	if err != nil {
		return Integration{}, err
	}
	i, _, err := r.stepIntegration(ctx, id, reason, actor, recertifyIntegration, func(_ store.Tx, rec *integrationRecord, now time.Time) ([]*treatyv1.Event, error) {
		rec.LastRecertified = now
		return nil, nil
	})
	return i, err
}

// stepIntegration moves integration id through step s in one transaction (see stepPartner).
func (r *Registry) stepIntegration(ctx context.Context, id, reason, actor string, s integrationStep,
	edit func(tx store.Tx, rec *integrationRecord, now time.Time) ([]*treatyv1.Event, error)) (Integration, uint64, error) {
	now := r.now()
	var rec integrationRecord
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		if err := integrations.load(tx, id, &rec); err != nil {
			return change{}, err
		}
		anyState := s.from == treatyv1.IntegrationState_INTEGRATION_STATE_UNSPECIFIED
		if (anyState && rec.State == integrationRetired) || (!anyState && rec.State != s.from) {
			return change{}, integrationRefusal(id, rec.State, s)
		}
		before := rec.summary()
		if !anyState {
			rec.State = s.to
		}
		rec.Updated, rec.Revision = now, rec.Revision+1
		events, err := edit(tx, &rec, now)
		if err != nil {
			return change{}, err
		}
		if err := integrations.put(tx, rec.ID, rec.PartnerID, &rec); err != nil {
			return change{}, err
		}
		return change{
			audit: AuditRecord{Time: now, Actor: actor, Action: s.action, Target: "integration/" + id, Reason: reason,
				Before: before, After: rec.summary()},
			events: events,
		}, nil
	})
	if !committed(err) {
		return Integration{}, 0, err
	}
	return rec.integration(), seq, err
}

// partnerOpen refuses a change to an entity of a partner that is offboarding or terminated: its
// access is ending for good, and what happens to its entities is the offboarding workflow's.
func partnerOpen(tx store.Tx, partnerID, kind, id string) error {
	var p partnerRecord
	if err := partners.load(tx, partnerID, &p); err != nil {
		return err
	}
	if p.State == partnerOffboarding || p.State == partnerTerminated {
		return fail.Preconditionf("%s %q belongs to partner %q, which is %s; its access is ending for good",
			kind, id, partnerID, feed.StateName(p.State))
	}
	return nil
}

// partnerActiveFor refuses what needs an active partner, naming the step that is missing.
func partnerActiveFor(tx store.Tx, partnerID, what string) error {
	var p partnerRecord
	if err := partners.load(tx, partnerID, &p); err != nil {
		return err
	}
	var why string
	switch p.State {
	case partnerActive:
		return nil
	case partnerProposed:
		why = fmt.Sprintf("partner %q is proposed; approve and activate it first (treaty partner approve %s, treaty partner activate %s)", partnerID, partnerID, partnerID)
	case partnerApproved:
		why = fmt.Sprintf("partner %q is approved, not active yet; activate it first (treaty partner activate %s)", partnerID, partnerID)
	case partnerSuspended:
		why = fmt.Sprintf("partner %q is suspended; reactivate it first (treaty partner reactivate %s --reason ...)", partnerID, partnerID)
	default:
		why = fmt.Sprintf("partner %q is %s; its access ended for good", partnerID, feed.StateName(p.State))
	}
	return fail.Preconditionf("cannot %s: %s", what, why)
}
